//! `GET /ui`: the live dashboard. The page and its script and stylesheet are compiled
//! into the binary (`ui/index.html`, `ui/app.js`, `ui/app.css`) and hold no data: the
//! script reads `/stats/series` and `/stats/destinations` every second and changes
//! weights through `PUT`/`DELETE /routes/{route}/split`, with the token the person types
//! (kept only in the page's memory) when the admin API wants one.
//!
//! A Content-Security-Policy keeps the page to its own origin: no other script, style,
//! image or connection, no framing (against clickjacking of the weights control).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use super::AdminResponse;

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Page,
    Script,
    Style,
}

impl Asset {
    /// The file at `/ui/NAME`.
    pub fn named(name: &str) -> Option<Asset> {
        match name {
            "" | "index.html" => Some(Asset::Page),
            "app.js" => Some(Asset::Script),
            "app.css" => Some(Asset::Style),
            _ => None,
        }
    }
}

/// Serves one of the dashboard's files.
pub fn serve(asset: Asset) -> AdminResponse {
    let (body, kind) = match asset {
        Asset::Page => (INDEX, "text/html; charset=utf-8"),
        Asset::Script => (SCRIPT, "text/javascript; charset=utf-8"),
        Asset::Style => (STYLE, "text/css; charset=utf-8"),
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Served from the binary: a new weir may bring a new page.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
