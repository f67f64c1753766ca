//! The record of one request: who asked, where it went, how it ended. It is counted
//! into the destination's statistics and written to the access log exactly once, when
//! it is dropped: after the response's last byte, or when the client went away.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::{HeaderValue, Method, Uri, Version};

use super::flags::ResponseFlag;
use super::series::{RequestProtocol, SecurityPolicy};
use super::stats::{DestinationStats, Outcome};

/// Fields only the access log needs; captured only when it is on.
#[derive(Debug)]
pub struct LogFields {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub peer: SocketAddr,
    pub request_id: Option<HeaderValue>,
    /// `TLSv1.3`, `TLSv1.2`, or `-` for plaintext.
    pub tls_version: &'static str,
    /// The verified client certificate's subject.
    pub client_subject: Option<Arc<str>>,
}

/// Whether something moved on an HTTP/2 stream: it counts every frame it passes, and
/// its connection tells a stalled stream from a busy one by whether the count
/// changed. A count, not a time: no clock is read per frame.
#[derive(Debug, Default)]
pub struct Activity {
    moves: AtomicU64,
    /// The response body handed a frame (or its head went out) and has not been asked
    /// for the next one: what waits is the client's flow-control window, not the
    /// upstream.
    on_client: std::sync::atomic::AtomicBool,
}

impl Activity {
    #[inline]
    pub fn moved(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }

    /// Whether the stream waits on its client (see the field).
    #[inline]
    pub fn set_waiting_on_client(&self, waiting: bool) {
        self.on_client.store(waiting, Ordering::Relaxed);
    }

    pub fn waiting_on_client(&self) -> bool {
        self.on_client.load(Ordering::Relaxed)
    }
}

/// What a request body that streams on its own (handed to hyper's client) reports as
/// it goes: bytes sent, how many times data moved, and whether it ended; and, when it
/// has one, its stream's [`Activity`].
#[derive(Debug, Default)]
pub struct BodyMeter {
    bytes: AtomicU64,
    moves: AtomicU64,
    ended: std::sync::atomic::AtomicBool,
    activity: Option<Arc<Activity>>,
}

impl BodyMeter {
    pub fn with_activity(activity: Arc<Activity>) -> Self {
        BodyMeter {
            activity: Some(activity),
            ..Self::default()
        }
    }

    pub fn moved(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.moves.fetch_add(1, Ordering::Relaxed);
        if let Some(activity) = &self.activity {
            activity.moved();
        }
    }

    pub fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// A number that changes whenever data moves (or the body ends).
    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }

    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// What is known about a request before it is forwarded.
#[derive(Debug, Clone, Copy)]
pub struct RequestMeta {
    pub start: Instant,
    pub protocol: RequestProtocol,
    pub security: SecurityPolicy,
}

/// One request's journey, recorded (stats, access log) exactly once, when dropped.
pub struct RequestRecord {
    meta: RequestMeta,
    stats: Arc<DestinationStats>,
    /// `None` when no route matched.
    route: Option<Arc<str>>,
    endpoint: Option<Arc<str>>,
    status: u16,
    flag: Option<ResponseFlag>,
    /// Counted by a request body that streams on its own.
    request_meter: Option<Arc<BodyMeter>>,
    /// Counted directly by whoever copies the request body.
    request_bytes: u64,
    response_bytes: u64,
    log: Option<Box<LogFields>>,
    /// False until a response (upstream or local) is known.
    answered: bool,
    grpc_status: Option<u8>,
}

impl fmt::Debug for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestRecord")
            .field("destination", &self.stats.name)
            .field("status", &self.status)
            .field("flag", &self.flag)
            .finish_non_exhaustive()
    }
}

impl RequestRecord {
    /// Starts the record; `stats` is the destination's, or the `unknown` one when no
    /// route matched (and `route` is `None`).
    pub fn start(
        meta: RequestMeta,
        stats: Arc<DestinationStats>,
        route: Option<Arc<str>>,
        log: Option<Box<LogFields>>,
    ) -> Self {
        stats.request_started();
        RequestRecord {
            meta,
            stats,
            route,
            endpoint: None,
            status: 0,
            flag: None,
            request_meter: None,
            request_bytes: 0,
            response_bytes: 0,
            log,
            answered: false,
            grpc_status: None,
        }
    }

    pub fn protocol(&self) -> RequestProtocol {
        self.meta.protocol
    }

    pub fn set_endpoint(&mut self, endpoint: Arc<str>) {
        self.endpoint = Some(endpoint);
    }

    /// The meter the request body reports its bytes to as it streams.
    pub fn set_request_meter(&mut self, meter: Arc<BodyMeter>) {
        self.request_meter = Some(meter);
    }

    pub fn add_request_bytes(&mut self, n: u64) {
        self.request_bytes += n;
    }

    /// The status of the response, once one is known.
    pub fn status(&self) -> Option<u16> {
        self.answered.then_some(self.status)
    }

    pub fn set_response(&mut self, status: u16, flag: Option<ResponseFlag>) {
        self.status = status;
        self.flag = flag;
        self.answered = true;
    }

    pub fn add_response_bytes(&mut self, n: u64) {
        self.response_bytes += n;
    }

    /// Marks a failure that happened after the response started (the status stays).
    pub fn set_flag(&mut self, flag: ResponseFlag) {
        self.flag.get_or_insert(flag);
    }

    /// Notes a `grpc-status` value seen in response headers or trailers.
    pub fn observe_grpc_status(&mut self, value: &[u8]) {
        if let Some(code) = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse::<u8>().ok())
        {
            self.grpc_status = Some(code);
        }
    }

    /// [`RequestRecord::observe_grpc_status`] for a header map (gRPC trailers).
    pub fn observe_grpc_headers(&mut self, headers: &http::HeaderMap) {
        if let Some(v) = headers.get("grpc-status") {
            self.observe_grpc_status(v.as_bytes());
        }
    }

    /// The access log's fields, when the access log is on.
    pub fn log_fields_mut(&mut self) -> Option<&mut LogFields> {
        self.log.as_deref_mut()
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        if !self.answered {
            // The client went away before any response: Envoy logs status 0 and DC.
            self.status = 0;
            self.flag = Some(ResponseFlag::DownstreamConnectionTermination);
        }
        let outcome = Outcome {
            status: self.status,
            flag: self.flag,
            duration: self.meta.start.elapsed(),
            request_bytes: self.request_bytes
                + self.request_meter.as_ref().map_or(0, |m| m.bytes()),
            response_bytes: self.response_bytes,
            protocol: self.meta.protocol,
            grpc_status: self.grpc_status,
            security: self.meta.security,
        };
        self.stats.request_finished(&outcome);
        if let Some(log) = &self.log {
            tracing::info!(
                target: "weir::access",
                method = %log.method,
                path = %log.uri.path_and_query().map_or("/", |p| p.as_str()),
                protocol = ?log.version,
                route = self.route.as_deref().unwrap_or("-"),
                destination = self.route.as_ref().map_or("-", |_| &*self.stats.name),
                endpoint = self.endpoint.as_deref().unwrap_or("-"),
                status = outcome.status,
                flags = outcome.flag.map_or("-", ResponseFlag::code),
                duration_ms = %Millis(outcome.duration),
                request_bytes = outcome.request_bytes,
                response_bytes = outcome.response_bytes,
                peer = %log.peer,
                tls = log.tls_version,
                client_subject = log.client_subject.as_deref().unwrap_or("-"),
                request_id = log.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
                "access"
            );
        }
    }
}

/// A duration printed as milliseconds with microsecond precision: `2.085`.
struct Millis(std::time::Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.0.as_secs_f64() * 1e3)
    }
}
