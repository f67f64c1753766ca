//! A small HTTP/1.1 client for the admin API and Prometheus, on hyper's client
//! connection (already in the tree): one connection per request, a deadline on the whole
//! exchange, and retries with backoff for what is worth retrying.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Largest answer read: a Prometheus answer or a histogram is far smaller.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: bad URL")]
    Url { url: String },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
}

impl HttpError {
    /// Worth another try: the network, a timeout, 429 and 5xx (Prometheus and its
    /// proxies answer 503 under load; the talk's canary failed on a 429).
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Url { .. } => false,
            HttpError::Transport { .. } | HttpError::Timeout { .. } => true,
            HttpError::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: Method,
    pub url: &'a str,
    pub body: Option<Vec<u8>>,
    pub bearer: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn get(url: &'a str) -> Call<'a> {
        Call {
            method: Method::GET,
            url,
            body: None,
            bearer: None,
        }
    }
}

/// Sends `call` once, with `timeout` on the whole exchange; a non-2xx status is an error.
pub async fn send(call: &Call<'_>, timeout: Duration) -> Result<Bytes, HttpError> {
    let url = call.url.to_owned();
    match tokio::time::timeout(timeout, send_inner(call)).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Timeout { url, timeout }),
    }
}

async fn send_inner(call: &Call<'_>) -> Result<Bytes, HttpError> {
    let url = call.url;
    let uri: Uri = url
        .parse()
        .map_err(|_| HttpError::Url { url: url.into() })?;
    if uri.scheme_str() != Some("http") {
        return Err(HttpError::Url { url: url.into() });
    }
    let host = uri
        .host()
        .ok_or_else(|| HttpError::Url { url: url.into() })?;
    let port = uri.port_u16().unwrap_or(80);
    let transport = |e: &dyn std::fmt::Display| HttpError::Transport {
        url: url.into(),
        message: e.to_string(),
    };
    let host_trimmed = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((host_trimmed, port))
        .await
        .map_err(|e| transport(&e))?;
    let _ = stream.set_nodelay(true);
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| transport(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let mut req = Request::builder()
        .method(call.method.clone())
        .uri(path)
        .header(header::HOST, authority)
        .header(header::USER_AGENT, "weir-canary");
    if let Some(token) = call.bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if call.body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let body = Full::new(Bytes::from(call.body.clone().unwrap_or_default()));
    let req = req.body(body).map_err(|e| transport(&e))?;
    let resp = tx.send_request(req).await.map_err(|e| transport(&e))?;
    let status = resp.status();
    let bytes = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| transport(&*e))?
        .to_bytes();
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        let body = text.trim().chars().take(300).collect();
        return Err(HttpError::Status {
            url: url.into(),
            status,
            body,
        });
    }
    Ok(bytes)
}

/// Sends `call` until it succeeds, a failure is not transient, or `deadline` passes,
/// backing off from 100 ms (doubling, at most 2 s) between tries.
pub async fn send_retrying(call: &Call<'_>, deadline: Instant) -> Result<Bytes, HttpError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = send(call, left.max(Duration::from_millis(50))).await;
        match attempt {
            Ok(b) => return Ok(b),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) => {
                if Instant::now() + backoff >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
