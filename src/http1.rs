//! weir's own HTTP/1.1 path, for client connections that speak HTTP/1.1 (plaintext or
//! TLS).
//!
//! Why not hyper here: a profile of the proxy under load showed most of its work was
//! building a `HeaderMap` for each request and response on both sides, and handing
//! each request to a separate upstream connection task through a channel. This path
//! parses heads in place (httparse), forwards header lines as bytes with only the
//! proxy's edits, and drives the upstream socket from the client connection's own task
//! with buffers reused for the life of the connection. HTTP/2 clients are served by
//! hyper's server, and their body-less requests to HTTP/1.1 upstreams use the same raw
//! connections (`client`); HTTP/2 destinations, and requests with a body from HTTP/2
//! clients, go through hyper's client.

mod body;
mod buffer;
mod chunked;
mod client;
mod conn;
mod encode;
mod exchange;
mod fallback;
mod head;

pub use client::{RawBody, RawSendError, request_head, send_bodyless};
pub use conn::serve;
