//! The admin listener: health and readiness for Kubernetes probes, the effective config,
//! the weights API, the statistics, and the live dashboard (`/ui`).
//!
//! When `admin_token_file` is set (the config requires it whenever `admin` is not a
//! loopback address), the mutating endpoints and `GET /config` (endpoints, file paths,
//! every route) need `Authorization: Bearer <token>`. Health, readiness, metrics, the
//! statistics and the dashboard's page stay open for probes, scrapers and autoscalers.

mod config_api;
mod series;
mod stats_api;
mod ui;

#[cfg(feature = "fuzzing")]
pub(crate) use config_api::parse_weights;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::runtime::DrainSignal;
use crate::state::Shared;

pub type AdminResponse = Response<Full<Bytes>>;

/// The shortest admin token accepted, at start and whenever the file is re-read.
const MIN_TOKEN_LEN: usize = 16;

/// Who may change things through the admin API.
#[derive(Debug, Clone, Default)]
pub struct AdminAuth {
    /// When set, writes and `GET /config` must carry this file's token.
    pub token_file: Option<PathBuf>,
}

/// Serves the admin API until `stop`.
pub async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    auth: AdminAuth,
    mut stop: DrainSignal,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(error) => {
            tracing::error!(%error, "admin listener unusable");
            return;
        }
    };
    let auth = Arc::new(auth);
    // The dashboard's history: a sample a second of counters the requests keep anyway.
    let series = Arc::new(series::Series::default());
    tokio::spawn(series::run(shared.clone(), series.clone(), stop.clone()));
    loop {
        tokio::select! {
            () = stop.wait() => return,
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let (shared, auth, series) = (shared.clone(), auth.clone(), series.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (shared, auth, series) = (shared.clone(), auth.clone(), series.clone());
                        async move { Ok::<_, Infallible>(route(&shared, &auth, &series, req).await) }
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

async fn route(
    shared: &Shared,
    auth: &AdminAuth,
    series: &series::Series,
    req: Request<Incoming>,
) -> AdminResponse {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => text(StatusCode::OK, "ok\n"),
        (&Method::GET, ["ready"]) => {
            if shared.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        (&Method::GET, [""]) => text(StatusCode::OK, INDEX),
        (&Method::GET, ["config"]) => {
            if let Err(denied) = authorize(auth, &req).await {
                return denied;
            }
            config_api::config(shared)
        }
        (&Method::GET, ["metrics"]) => stats_api::metrics(shared),
        (&Method::GET, ["stats", "connections"]) => stats_api::connections(shared),
        (&Method::GET, ["stats", "destinations"]) => stats_api::destinations(shared),
        (&Method::GET, ["stats", "latency"]) => stats_api::latency(shared),
        (&Method::GET, ["stats", "series"]) => {
            stats_api::series(shared, series, req.uri().query(), auth.token_file.is_some())
        }
        (&Method::GET, ["ui"]) => ui::serve(ui::Asset::Page),
        (&Method::GET, ["ui", file]) => match ui::Asset::named(file) {
            Some(asset) => ui::serve(asset),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        (&Method::GET, ["routes", route, "split"]) => config_api::get_split(shared, route),
        (&Method::PUT | &Method::DELETE, ["routes", route, "split"]) => {
            if let Err(denied) = authorize(auth, &req).await {
                return denied;
            }
            if method == Method::PUT {
                config_api::put_split(shared, route, req.into_body()).await
            } else {
                config_api::delete_split(shared, route)
            }
        }
        (_, ["healthz" | "ready" | "config" | "metrics" | "ui"] | ["stats" | "ui", _] | [""]) => {
            method_not_allowed("GET")
        }
        (_, ["routes", _, "split"]) => method_not_allowed("GET, PUT, DELETE"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; GET / lists the admin endpoints\n",
        ),
    }
}

const INDEX: &str = "weir admin\n\
GET    /healthz                 200 while the process is up\n\
GET    /ready                   200 when serving, 503 while draining\n\
GET    /config                  the effective configuration (JSON; needs the token when admin_token_file is set)\n\
GET    /metrics                 Prometheus metrics (Istio's standard names and labels)\n\
GET    /stats/connections       open connections and requests in flight (JSON, for autoscalers)\n\
GET    /stats/destinations      per destination: requests, status classes, p50/p95/p99, weights (JSON)\n\
GET    /stats/latency           per destination: cumulative counts and latency histogram since start (JSON)\n\
GET    /stats/series            per destination, a sample a second for 5 minutes: requests, 5xx, p50/p95/p99, connections, splits (JSON)\n\
GET    /ui                      the live dashboard (a page; it reads /stats and changes splits with the weights API)\n\
GET    /routes/{route}/split    a route's current split\n\
PUT    /routes/{route}/split    set a split: {\"release\": 34, \"baseline\": 33, \"canary\": 33} (token when set)\n\
DELETE /routes/{route}/split    drop the API split; the file's split applies again (token when set)\n";

/// Checks the bearer token of a request that needs it (writes, `/config`). The token
/// file is read per request, so a rotated token takes effect without a restart.
async fn authorize(auth: &AdminAuth, req: &Request<Incoming>) -> Result<(), AdminResponse> {
    let Some(file) = &auth.token_file else {
        return Ok(());
    };
    // The same minimum as at start: a token file rewritten with something short must
    // not make a guessable token valid.
    let expected = match tokio::fs::read_to_string(file).await {
        Ok(t) if t.trim().len() >= MIN_TOKEN_LEN => t.trim().to_owned(),
        Ok(_) => {
            tracing::error!(file = %file.display(), "admin token shorter than {MIN_TOKEN_LEN} characters; refusing admin writes and /config until the file holds a longer one");
            return Err(config_api::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the admin token file holds a token shorter than 16 characters; admin writes and /config are refused until it holds a longer one",
            ));
        }
        Err(_) => {
            tracing::error!(file = %file.display(), "admin token file unreadable; refusing admin writes and /config until it can be read");
            return Err(config_api::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the admin token file cannot be read; admin writes and /config are refused",
            ));
        }
    };
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => {
            let mut resp = config_api::error(
                StatusCode::UNAUTHORIZED,
                "this admin endpoint needs `Authorization: Bearer <token>` with the token from admin_token_file",
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(resp)
        }
    }
}

/// Compares without returning early, so response timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn method_not_allowed(allow: &'static str) -> AdminResponse {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

pub fn text(status: StatusCode, body: &'static str) -> AdminResponse {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> AdminResponse {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
