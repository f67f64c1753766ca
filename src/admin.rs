//! The admin listener: health and readiness for Kubernetes probes, and (in the
//! submodules) the config view, the weights API and the metrics.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::listener::DrainSignal;
use crate::state::Shared;

pub type AdminResponse = Response<Full<Bytes>>;

/// Serves the admin API until `stop`.
pub async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, mut stop: DrainSignal) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(%error, "admin listener unusable");
            return;
        }
    };
    loop {
        tokio::select! {
            () = stop.wait() => return,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(route(&shared, req).await) }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = conn.await {
                        tracing::debug!(%error, "admin connection ended with an error");
                    }
                });
            }
        }
    }
}

async fn route(shared: &Shared, req: Request<Incoming>) -> AdminResponse {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/ready") => {
            if shared.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        (&Method::GET, "/") => text(StatusCode::OK, INDEX),
        (_, "/healthz" | "/ready" | "/") => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; GET / lists the admin endpoints\n",
        ),
    }
}

const INDEX: &str = "weir admin\n\
GET /healthz   200 while the process is up\n\
GET /ready     200 when serving, 503 while draining\n";

pub fn text(status: StatusCode, body: &'static str) -> AdminResponse {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
