//! One HTTP/2 stream: its request handed to the pipeline, and the response hyper sends
//! back (the upstream's, its header fields through the header policy, or weir's own).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header, response};
use http_body::Body;
use hyper::body::Incoming;

use super::body::ResponseBody;
use super::idle::StreamGuard;
use super::source::StreamBody;
use crate::headers::{self, MapSink, ResponseEdits, valid_host};
use crate::http1::{Framing, ResponseHead};
use crate::pipeline::{self, Downstream, LocalReply, Prepared, RequestHead};
use crate::routing::{RequestHeaders, RequestView, strip_port};
use crate::state::Shared;
use crate::telemetry::{BodyMeter, RequestRecord};
use crate::upstream::{Failure, RawBody, Response as Upstream, ResponseSink};

/// Serves one stream. Never fails: every problem becomes a response with a flag.
pub(super) async fn serve(
    shared: Arc<Shared>,
    downstream: Arc<Downstream>,
    req: Request<Incoming>,
    stream: StreamGuard,
) -> Result<Response<ResponseBody>, Infallible> {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let authority = parts.uri.authority().map(|a| a.as_str());
    // The fields looked at here, in one pass: a lookup by name hashes the name, which
    // costs more than walking the few fields a request has.
    let (mut host_field, mut content_type, mut has_length) = (None, None, false);
    for (name, value) in &parts.headers {
        if *name == header::HOST {
            host_field.get_or_insert(value);
        } else if *name == header::CONTENT_TYPE {
            content_type.get_or_insert(value);
        } else if *name == header::CONTENT_LENGTH {
            has_length = true;
        }
    }
    let host = parts
        .uri
        .host()
        .or_else(|| host_field.and_then(|h| h.to_str().ok()).map(strip_port))
        .unwrap_or("");
    let framing = if body.is_end_stream() {
        Framing::Empty
    } else {
        match body.size_hint().exact() {
            Some(n) if has_length => Framing::Length(n),
            _ => Framing::Chunked,
        }
    };
    let grpc = content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let head = RequestHead {
        start,
        method: parts.method.as_str(),
        target: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        authority,
        absolute_form: false,
        content_length: None,
        view: RequestView {
            host,
            path: parts.uri.path(),
            method: parts.method.as_str(),
            query: parts.uri.query(),
            headers: RequestHeaders::Map(&parts.headers),
        },
        headers: &parts.headers,
        version: parts.version,
        body: framing,
        upgrade: None,
        expect_continue: false,
        grpc,
        http2: true,
    };
    // A host and nothing else: no user information (RFC 9113 §8.3.1), no spaces.
    let host_field = host_field.map(HeaderValue::as_bytes);
    if !authority.is_none_or(|a| valid_host(a.as_bytes())) || !host_field.is_none_or(valid_host) {
        let reply = LocalReply::bad_request("invalid :authority or host header\n");
        let (record, reply) = pipeline::refuse(&shared, &downstream, &head, reply);
        return Ok(local(reply, record, stream));
    }
    // `host` beside `:authority` must name the same (RFC 9113 §8.3.1): what is routed is
    // what is forwarded.
    if let (Some(authority), Some(host)) = (authority, host_field)
        && !host.eq_ignore_ascii_case(authority.as_bytes())
    {
        let reply = LocalReply::bad_request("the host header and :authority disagree\n");
        let (record, reply) = pipeline::refuse(&shared, &downstream, &head, reply);
        return Ok(local(reply, record, stream));
    }
    let mut upstream_head = Vec::with_capacity(512);
    let mut exchange = match pipeline::prepare(&shared, &downstream, &head, &mut upstream_head) {
        Prepared::Local(record, reply) => return Ok(local(reply, record, stream)),
        Prepared::Forward(exchange) => exchange,
    };
    drop(parts);
    let meter = (framing != Framing::Empty).then(|| {
        let meter = Arc::new(BodyMeter::with_activity(stream.activity().clone()));
        exchange.record.set_request_meter(meter.clone());
        meter
    });
    let mut source = StreamBody::new(body, meter);
    let mut sink = PartsSink(None);
    let forwarded = exchange
        .forward(&mut upstream_head, &mut source, &mut sink, None)
        .await;
    let clock = exchange.clock();
    let mut record = exchange.record;
    let response = match forwarded {
        Ok(response) => response,
        Err(failure) => return Ok(failed(&failure, record, stream)),
    };
    Ok(match response {
        Upstream::Http1 { start, body } => {
            let Some(parts) = sink.0.filter(|_| start.status != 101) else {
                // A 101 to a request that asked no upgrade cannot be honoured.
                let failure = Failure::Upstream("101 to a request that asked no upgrade".into());
                return Ok(failed(&failure, record, stream));
            };
            record.set_response(start.status, None);
            if grpc {
                // A trailers-only gRPC response carries its status in the headers.
                record.observe_grpc_headers(&parts.headers);
            }
            let body = ResponseBody::raw(RawBody::new(body), record, clock, stream);
            Response::from_parts(parts, body)
        }
        Upstream::Http2 {
            response,
            in_flight,
            ..
        } => {
            let (upstream_parts, incoming) = response.into_parts();
            let mut parts = Response::new(()).into_parts().0;
            parts.status = upstream_parts.status;
            let edits = ResponseEdits {
                upgrade: false,
                drop_content_length: false,
            };
            let mut sink = MapSink::new(&mut parts.headers);
            headers::forward_response(&upstream_parts.headers, &edits, &mut sink);
            record.set_response(parts.status.as_u16(), None);
            if grpc {
                record.observe_grpc_headers(&parts.headers);
            }
            let body = ResponseBody::hyper(incoming, in_flight, record, clock, stream);
            Response::from_parts(parts, body)
        }
    })
}

/// Builds the response parts from an HTTP/1.1 upstream's head while it is still in the
/// upstream's buffer.
struct PartsSink(Option<response::Parts>);

impl ResponseSink for PartsSink {
    fn http1_head(&mut self, head: &ResponseHead<'_, '_>, _body_sent: bool) {
        let mut parts = Response::new(()).into_parts().0;
        parts.status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
        parts.headers.reserve(head.headers.len());
        let edits = ResponseEdits {
            upgrade: false,
            drop_content_length: head.framing == Framing::Chunked,
        };
        headers::forward_response(
            &head.fields(),
            &edits,
            &mut MapSink::new(&mut parts.headers),
        );
        self.0 = Some(parts);
    }
}

/// weir's own answer for a request whose forwarding failed.
fn failed(failure: &Failure, record: RequestRecord, stream: StreamGuard) -> Response<ResponseBody> {
    // A client that went away gets no answer; the record says DC either way.
    let reply = LocalReply::for_failure(failure).unwrap_or_else(|| {
        LocalReply::for_flag(crate::telemetry::ResponseFlag::DownstreamConnectionTermination)
    });
    local(reply, record, stream)
}

/// One of weir's own responses: a short text body naming the flag.
fn local(
    reply: LocalReply,
    mut record: RequestRecord,
    stream: StreamGuard,
) -> Response<ResponseBody> {
    record.set_response(reply.status, reply.flag);
    let body = ResponseBody::local(Bytes::from_static(reply.body.as_bytes()), record, stream);
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(flag) = reply.flag {
        resp.headers_mut().insert(
            "x-weir-response-flags",
            HeaderValue::from_static(flag.code()),
        );
    }
    resp
}
