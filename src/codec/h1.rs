//! weir's own HTTP/1.1 codec, for client connections that speak HTTP/1.1 (plaintext or
//! TLS): request heads parsed in place, the client's body decoded from the connection's
//! buffer as the upstream client pulls it, responses written with the framing the
//! client needs.
//!
//! Why not hyper here: a profile of the proxy under load showed most of its work was
//! building a `HeaderMap` for each request and response on both sides, and handing
//! each request to a separate connection task through a channel. This codec keeps heads
//! as bytes, edited in place by the header policy, and the request's own task drives
//! the upstream socket (`upstream::h1`), with buffers reused for the life of the
//! connection.

mod conn;
mod respond;
mod source;
mod stream;
mod tunnel;

pub(crate) use conn::serve;
