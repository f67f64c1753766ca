//! The client side's codecs: each turns a client connection's bytes into request
//! heads for the pipeline (`crate::pipeline`), request bodies the upstream clients pull
//! from, and responses back into bytes. Nothing else happens here.
//!
//! - [`h1`]: weir's own HTTP/1.1 codec;
//! - [`h2`]: HTTP/2 (cleartext with prior knowledge, or ALPN `h2` over TLS), with
//!   hyper's server.

pub(crate) mod h1;
pub(crate) mod h2;
