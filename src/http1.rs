//! The HTTP/1.1 wire format, for both sides of the proxy: heads parsed in place
//! (httparse) with the facts forwarding needs, message bodies delimited (length,
//! chunked, until close), chunked framing decoded strictly and written canonically, and
//! the read buffer connections reuse.
//!
//! Nothing here does I/O beyond reading into a [`Buffer`]; the client side is
//! `codec::h1`, the upstream side `upstream::h1`.

mod body;
mod buffer;
mod chunked;
mod head;
mod write;

pub(crate) use body::BodyState;
pub(crate) use buffer::Buffer;
pub(crate) use chunked::ChunkError;
pub(crate) use head::{
    Framing, HeadError, MAX_HEAD, ResponseHead, header_storage, parse_request, parse_response,
};
pub(crate) use write::{chunk_header, status_line};
