//! The request path: match a route, pick a destination by weight, forward to one of its
//! endpoints, stream the response back, and record how it went.

pub mod body;
mod flags;
pub mod headers;
mod upgrade;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Body;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

pub use body::{Exchange, LogFields, ResponseBody};
pub use flags::{ResponseFlag, local_reply};
use headers::Forwarding;

use crate::config::Protocol;
use crate::http1::{self, RawBody, RawSendError};
use crate::routing::RequestView;
use crate::state::Shared;
use crate::telemetry::{RequestProtocol, SecurityPolicy};
use crate::tls::TlsInfo;
use crate::upstream::{ConnReturn, Destination, Endpoint, Replay, RequestBody, SendError};

/// How many times a request that a pooled connection handed back unsent is tried again
/// before weir gives up on the endpoint.
const MAX_UNSENT_RETRIES: usize = 3;

/// What the downstream connection tells the request path.
#[derive(Debug, Clone)]
pub struct Downstream {
    pub peer: SocketAddr,
    pub forwarding: Forwarding,
    /// HTTP/2 connections drain with GOAWAY; HTTP/1.1 ones get `Connection: close`.
    pub http2: bool,
    /// What the TLS handshake said; `None` for plaintext.
    pub tls: Option<TlsInfo>,
    /// Istio's `connection_security_policy`: `mutual_tls` when the client presented a
    /// verified certificate.
    pub security: SecurityPolicy,
}

impl Downstream {
    pub fn new(peer: SocketAddr, tls: Option<TlsInfo>, http2: bool) -> Self {
        let client_ip = HeaderValue::from_str(&peer.ip().to_string())
            .expect("an IP address is a valid header value");
        Downstream {
            peer,
            forwarding: Forwarding {
                client_ip,
                proto: HeaderValue::from_static(if tls.is_some() { "https" } else { "http" }),
            },
            http2,
            security: tls
                .as_ref()
                .map_or(SecurityPolicy::None, TlsInfo::security_policy),
            tls,
        }
    }

    /// Istio's `connection_security_policy` label for this connection.
    pub fn security_policy(&self) -> SecurityPolicy {
        self.security
    }
}

/// Serves one request. Never fails: every problem becomes a response with a flag.
pub async fn serve(
    shared: Arc<Shared>,
    downstream: Arc<Downstream>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let start = Instant::now();
    let (route, access_log) = {
        let snapshot = shared.snapshot.load();
        let route = snapshot.routes.find(&RequestView::of(&req)).cloned();
        (route, snapshot.access_log)
    };
    let log = access_log.then(|| {
        Box::new(LogFields {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            peer: downstream.peer,
            request_id: req.headers().get(&headers::X_REQUEST_ID).cloned(),
            tls_version: downstream.tls.as_ref().map_or("-", |t| t.version),
            client_subject: downstream
                .tls
                .as_ref()
                .and_then(|t| t.client_subject.clone()),
        })
    });
    let protocol = if is_grpc(&req) {
        RequestProtocol::Grpc
    } else {
        RequestProtocol::Http
    };
    let meta = (protocol, downstream.security);
    let Some(route) = route else {
        let exchange = Exchange::start(start, shared.stats.unknown(), None, meta, log);
        return Ok(local_reply(ResponseFlag::NoRoute, exchange));
    };
    let destination = route.split.pick().clone();
    let mut exchange = Exchange::start(
        start,
        destination.stats.clone(),
        Some(route.clone()),
        meta,
        log,
    );

    let (mut parts, body) = req.into_parts();
    let upgrade = destination.protocol == Protocol::Http1 && headers::is_upgrade(&parts);
    let on_upgrade = if upgrade {
        parts.extensions.remove::<OnUpgrade>()
    } else {
        None
    };
    // The route's timeout covers the whole exchange, response body included (Envoy's
    // route timeout), so the same timer moves into the body once headers arrive.
    let mut deadline = route
        .timeout
        .map(|t| Box::pin(tokio::time::sleep_until((start + t).into())));
    if destination.protocol == Protocol::Http1 && !upgrade && body.is_end_stream() {
        // The common case: no body to stream, so the raw pooled connections of weir's
        // own HTTP/1.1 path carry it, with no connection task or channel in between.
        drop(body);
        let mut head = Vec::with_capacity(512);
        let want_id = exchange.log_fields_mut().is_some();
        let id = http1::request_head(&mut head, &parts, &downstream.forwarding, want_id);
        if let Some(log) = exchange.log_fields_mut() {
            log.request_id = id;
        }
        let head_request = parts.method == http::Method::HEAD;
        drop(parts);
        let forwarded = match deadline.as_mut() {
            None => forward_raw(&destination, &head, head_request).await,
            Some(sleep) => tokio::select! {
                biased;
                result = forward_raw(&destination, &head, head_request) => result,
                () = sleep.as_mut() => Err(ResponseFlag::UpstreamTimeout),
            },
        };
        let (resp, endpoint) = match forwarded {
            Ok(ok) => ok,
            Err(flag) => return Ok(local_reply(flag, exchange)),
        };
        exchange.set_endpoint(endpoint.label.clone());
        let (parts, body) = resp.into_parts();
        exchange.set_response(parts.status, None);
        if protocol == RequestProtocol::Grpc {
            exchange.observe_grpc_status(&parts.headers);
        }
        let body = ResponseBody::raw(body, exchange, deadline);
        return Ok(Response::from_parts(parts, body));
    }
    headers::prepare_request(
        &mut parts,
        &downstream.forwarding,
        destination.protocol,
        upgrade,
    );
    if let Some(log) = exchange.log_fields_mut() {
        log.request_id = parts.headers.get(&headers::X_REQUEST_ID).cloned();
    }
    let body = if body.is_end_stream() {
        RequestBody::new(body, None)
    } else {
        let counter = Arc::new(AtomicU64::new(0));
        exchange.set_request_counter(counter.clone());
        RequestBody::new(body, Some(counter))
    };
    let req = Request::from_parts(parts, body);
    // Boxed: hyper's client futures are large, and inline they would make the future
    // of every request (most take the raw path above) that large.
    let forwarding = Box::pin(forward(&destination, req, upgrade));
    let forwarded = match deadline.as_mut() {
        None => forwarding.await,
        Some(sleep) => tokio::select! {
            biased;
            result = forwarding => result,
            () = sleep.as_mut() => Err(ResponseFlag::UpstreamTimeout),
        },
    };
    let (resp, conn, endpoint) = match forwarded {
        Ok(ok) => ok,
        Err(flag) => return Ok(local_reply(flag, exchange)),
    };

    exchange.set_endpoint(endpoint.label.clone());
    let (mut parts, body) = resp.into_parts();
    exchange.set_response(parts.status, None);
    if protocol == RequestProtocol::Grpc {
        // A trailers-only gRPC response carries its status in the headers.
        exchange.observe_grpc_status(&parts.headers);
    }
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = parts.extensions.remove::<OnUpgrade>();
        headers::prepare_response(&mut parts, true);
        if let (Some(down), Some(up)) = (on_upgrade, upstream_upgrade) {
            upgrade::tunnel(down, up, exchange);
            return Ok(Response::from_parts(parts, ResponseBody::empty()));
        }
        // A 101 without a requested upgrade cannot be honoured.
        return Ok(local_reply(
            ResponseFlag::UpstreamConnectionTermination,
            exchange,
        ));
    }
    headers::prepare_response(&mut parts, false);
    if !downstream.http2 && shared.is_draining() {
        // Draining: ask HTTP/1.1 clients to reconnect elsewhere after this response.
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let body = ResponseBody::upstream(body, exchange, conn, deadline);
    Ok(Response::from_parts(parts, body))
}

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Sends a body-less request to the destination's next endpoint over a raw pooled
/// HTTP/1.1 connection, with the same retries as [`forward`]: a connect failure once on
/// the next endpoint, and a pooled connection the upstream closed as it was taken once
/// on a new connection.
async fn forward_raw(
    destination: &Destination,
    head: &[u8],
    head_request: bool,
) -> Result<(Response<RawBody>, Arc<Endpoint>), ResponseFlag> {
    let mut cursor = destination.cursor();
    let mut fresh = false;
    loop {
        let endpoint = cursor.endpoint();
        let conn = match endpoint.checkout_raw(fresh).await {
            Ok(conn) => conn,
            Err(error) if cursor.connect_failed(&error) => continue,
            Err(_) => return Err(ResponseFlag::UpstreamConnectFailure),
        };
        let reused = conn.reused();
        match http1::send_bodyless(endpoint.clone(), conn, head, head_request).await {
            Ok(resp) => return Ok((resp, endpoint.clone())),
            Err(RawSendError::Stale) if reused && !fresh => fresh = true,
            Err(error) => {
                tracing::debug!(destination = %destination.name, endpoint = %endpoint.label, %error, "upstream failed");
                return Err(ResponseFlag::UpstreamConnectionTermination);
            }
        }
    }
}

/// Forwards to the destination's next endpoint. A connect failure is tried once more on
/// the next endpoint (Envoy's `connect-failure` retry), and a request an HTTP/2 upstream
/// refused unprocessed is sent again on a new connection (Envoy's `refused-stream`
/// retry); nothing else is retried, because the request may have had effects upstream.
pub(crate) async fn forward(
    destination: &Destination,
    mut req: Request<RequestBody>,
    upgrade: bool,
) -> Result<(Response<Incoming>, Option<ConnReturn>, Arc<Endpoint>), ResponseFlag> {
    let mut cursor = destination.cursor();
    let mut unsent_retries = 0;
    let replay = (destination.protocol == Protocol::Http2).then(|| Replay::keep(&mut req));
    loop {
        let endpoint = cursor.endpoint();
        let lease = match endpoint.checkout(upgrade).await {
            Ok(lease) => lease,
            Err(error) if cursor.connect_failed(&error) => continue,
            Err(_) => return Err(ResponseFlag::UpstreamConnectFailure),
        };
        match lease.send(req).await {
            Ok((resp, conn)) => return Ok((resp, conn, endpoint.clone())),
            Err(SendError::Unsent(unsent)) if unsent_retries < MAX_UNSENT_RETRIES => {
                unsent_retries += 1;
                req = *unsent;
            }
            Err(SendError::Refused(error)) => match replay.as_ref().and_then(Replay::again) {
                Some(again) if unsent_retries < MAX_UNSENT_RETRIES => {
                    tracing::debug!(destination = %destination.name, endpoint = %endpoint.label, %error, "stream refused unprocessed; sending again");
                    unsent_retries += 1;
                    req = again;
                }
                _ => {
                    tracing::debug!(destination = %destination.name, endpoint = %endpoint.label, %error, "stream refused; not sent again");
                    return Err(ResponseFlag::UpstreamConnectionTermination);
                }
            },
            Err(e) if e.is_downstream() => {
                return Err(ResponseFlag::DownstreamConnectionTermination);
            }
            Err(e) => {
                tracing::debug!(destination = %destination.name, endpoint = %endpoint.label, error = ?e, "upstream reset");
                return Err(ResponseFlag::UpstreamConnectionTermination);
            }
        }
    }
}
