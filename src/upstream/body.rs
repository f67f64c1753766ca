//! The request body weir hands hyper's HTTP/2 client: the client's body, streamed and
//! counted; and kept, up to a limit, for sending again to an upstream that refused a
//! stream.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::telemetry::BodyMeter;
use tokio::sync::mpsc;

/// One piece of a body handed over a channel by a source hyper cannot read itself.
#[derive(Debug)]
pub(super) enum BodyChunk {
    Data(Bytes),
    /// The body ended cleanly, with trailer fields or none. A channel that closes
    /// without this means the client went away mid-body, and the upstream must not see
    /// a complete request.
    End(Option<HeaderMap>),
}

/// Why the request body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("client request body failed: {0}")]
    Downstream(#[source] hyper::Error),
    #[error("the client went away before its request body ended")]
    ClientGone,
}

/// The downstream request body, passed through frame by frame (never buffered whole),
/// counting the bytes for the `istio_request_bytes` histogram.
#[derive(Debug)]
pub struct RequestBody {
    inner: Inner,
    meter: Option<Arc<BodyMeter>>,
}

#[derive(Debug)]
enum Inner {
    Empty,
    Hyper(Incoming),
    Channel {
        rx: mpsc::Receiver<BodyChunk>,
        ended: bool,
    },
    /// One reading of a body shared by every attempt to send it (see [`Replay`]).
    Replay {
        tap: Arc<Mutex<Tap>>,
        /// How many of the tap's kept chunks this reading has sent.
        next: usize,
        trailers_sent: bool,
    },
}

impl RequestBody {
    /// `meter` receives the body bytes as they are sent, and the body's end.
    pub fn new(inner: Incoming, meter: Option<Arc<BodyMeter>>) -> Self {
        RequestBody {
            inner: Inner::Hyper(inner),
            meter,
        }
    }

    /// A body fed through a channel (the sender counts the bytes).
    pub(super) fn channel(rx: mpsc::Receiver<BodyChunk>) -> Self {
        RequestBody {
            inner: Inner::Channel { rx, ended: false },
            meter: None,
        }
    }

    pub fn empty() -> Self {
        RequestBody {
            inner: Inner::Empty,
            meter: None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = &mut *self;
        match &mut this.inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Replay {
                tap,
                next,
                trailers_sent,
            } => lock(tap).poll_frame(cx, next, trailers_sent),
            Inner::Hyper(inner) => {
                let polled = Pin::new(inner).poll_frame(cx);
                if let Some(meter) = &this.meter {
                    match &polled {
                        Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                            Some(data) => meter.moved(data.len()),
                            None => meter.end(),
                        },
                        Poll::Ready(None) => meter.end(),
                        _ => {}
                    }
                }
                polled.map(|f| f.map(|r| r.map_err(RequestBodyError::Downstream)))
            }
            Inner::Channel { ended: true, .. } => Poll::Ready(None),
            Inner::Channel { rx, ended } => match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(BodyChunk::Data(data))) => {
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Poll::Ready(Some(BodyChunk::End(last))) => {
                    // Trailers, if any, are the last frame.
                    *ended = true;
                    Poll::Ready(last.map(|t| Ok(Frame::trailers(t))))
                }
                Poll::Ready(None) => Poll::Ready(Some(Err(RequestBodyError::ClientGone))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Replay {
                tap,
                next,
                trailers_sent,
            } => lock(tap).is_end(*next, *trailers_sent),
            Inner::Hyper(inner) => inner.is_end_stream(),
            Inner::Channel { ended, .. } => *ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Hyper(inner) => inner.size_hint(),
            Inner::Channel { .. } | Inner::Replay { .. } => SizeHint::default(),
        }
    }
}

/// How much of a request body is kept for sending it again. A larger body is streamed
/// as usual, but a refusal of its stream is then answered 502 (Envoy's retries buffer
/// up to a limit in the same way).
const REPLAY_LIMIT: usize = 64 * 1024;

/// A request to an HTTP/2 upstream, kept so that it can be sent again when the
/// upstream refuses its stream unprocessed: the head is cloned, and the body is read
/// through a tap that keeps what passed (up to [`REPLAY_LIMIT`]) and leaves the rest
/// to whichever attempt reads on.
#[derive(Debug)]
pub struct Replay {
    head: http::request::Parts,
    /// `None` for a body-less request.
    tap: Option<Arc<Mutex<Tap>>>,
}

#[derive(Debug)]
struct Tap {
    source: RequestBody,
    /// The chunks read so far, while they fit in the limit.
    kept: Vec<Bytes>,
    kept_bytes: usize,
    /// Set once a chunk did not fit, or the source failed: no attempt can start over.
    spoiled: bool,
    trailers: Option<HeaderMap>,
    ended: bool,
}

fn lock(tap: &Mutex<Tap>) -> MutexGuard<'_, Tap> {
    tap.lock().unwrap_or_else(|e| e.into_inner())
}

impl Replay {
    /// Puts a tap on `req`'s body and keeps its head.
    pub fn keep(req: &mut Request<RequestBody>) -> Replay {
        let tap = (!req.body().is_end_stream()).then(|| {
            let source = std::mem::replace(req.body_mut(), RequestBody::empty());
            let tap = Arc::new(Mutex::new(Tap {
                source,
                kept: Vec::new(),
                kept_bytes: 0,
                spoiled: false,
                trailers: None,
                ended: false,
            }));
            *req.body_mut() = Tap::reading(&tap);
            tap
        });
        let mut head = Request::new(());
        *head.method_mut() = req.method().clone();
        *head.uri_mut() = req.uri().clone();
        *head.version_mut() = req.version();
        *head.headers_mut() = req.headers().clone();
        Replay {
            head: head.into_parts().0,
            tap,
        }
    }

    /// The request again, from the start of its body; `None` when the body was too
    /// large to keep or failed.
    pub fn again(&self) -> Option<Request<RequestBody>> {
        let body = match &self.tap {
            None => RequestBody::empty(),
            Some(tap) if lock(tap).spoiled => return None,
            Some(tap) => Tap::reading(tap),
        };
        let mut req = Request::new(body);
        *req.method_mut() = self.head.method.clone();
        *req.uri_mut() = self.head.uri.clone();
        *req.version_mut() = self.head.version;
        *req.headers_mut() = self.head.headers.clone();
        Some(req)
    }
}

impl Tap {
    fn reading(tap: &Arc<Mutex<Tap>>) -> RequestBody {
        RequestBody {
            inner: Inner::Replay {
                tap: tap.clone(),
                next: 0,
                trailers_sent: false,
            },
            meter: None,
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        next: &mut usize,
        trailers_sent: &mut bool,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        if let Some(chunk) = self.kept.get(*next) {
            *next += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        if self.ended {
            return match &self.trailers {
                Some(trailers) if !*trailers_sent => {
                    *trailers_sent = true;
                    Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))))
                }
                _ => Poll::Ready(None),
            };
        }
        // This reading is at the front: read on from the client.
        let frame = match Pin::new(&mut self.source).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                self.ended = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(e))) => {
                self.spoiled = true;
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                if !self.spoiled && self.kept_bytes + data.len() <= REPLAY_LIMIT {
                    self.kept_bytes += data.len();
                    self.kept.push(data.clone());
                    *next += 1;
                } else if !self.spoiled {
                    // Too large to keep: the memory goes back, and this reading
                    // streams on alone.
                    self.spoiled = true;
                    self.kept = Vec::new();
                    *next = 0;
                }
                Frame::data(data)
            }
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => {
                    self.ended = true;
                    self.trailers = Some(trailers.clone());
                    *trailers_sent = true;
                    Frame::trailers(trailers)
                }
                Err(other) => other,
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end(&self, next: usize, trailers_sent: bool) -> bool {
        if next < self.kept.len() {
            return false;
        }
        if self.ended {
            return self.trailers.is_none() || trailers_sent;
        }
        self.source.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn request(body: RequestBody) -> Request<RequestBody> {
        let mut req = Request::new(body);
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = "http://shop/cart".parse().unwrap();
        req.headers_mut()
            .insert("x-tenant", http::HeaderValue::from_static("t1"));
        req
    }

    async fn read_all(body: RequestBody) -> Vec<u8> {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    /// A request whose body comes over a channel, kept for replay, with "ab" sent.
    async fn tapped() -> (mpsc::Sender<BodyChunk>, Request<RequestBody>, Replay) {
        let (tx, rx) = mpsc::channel(8);
        let mut req = request(RequestBody::channel(rx));
        let replay = Replay::keep(&mut req);
        tx.send(BodyChunk::Data(Bytes::from_static(b"ab")))
            .await
            .unwrap();
        (tx, req, replay)
    }

    #[tokio::test]
    async fn a_refused_request_is_sent_again_whole() {
        let (tx, req, replay) = tapped().await;
        // The first attempt read a chunk, then its stream was refused.
        let mut first = req.into_body();
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        drop(first);
        tx.send(BodyChunk::Data(Bytes::from_static(b"cd")))
            .await
            .unwrap();
        tx.send(BodyChunk::End(None)).await.unwrap();
        let again = replay.again().expect("a small body can be sent again");
        assert_eq!(again.method(), http::Method::POST);
        assert_eq!(again.uri(), "http://shop/cart");
        assert_eq!(again.headers()["x-tenant"], "t1");
        assert_eq!(read_all(again.into_body()).await, b"abcd");
        // And once more, all from what was kept.
        let third = replay.again().unwrap();
        assert!(!third.body().is_end_stream());
        assert_eq!(read_all(third.into_body()).await, b"abcd");
    }

    #[tokio::test]
    async fn a_body_past_the_limit_streams_on_but_is_not_sent_again() {
        let (tx, rx) = mpsc::channel(8);
        let mut req = request(RequestBody::channel(rx));
        let replay = Replay::keep(&mut req);
        let sender = tokio::spawn(async move {
            for _ in 0..5 {
                let chunk = Bytes::from(vec![b'x'; 20 * 1024]);
                tx.send(BodyChunk::Data(chunk)).await.unwrap();
            }
            tx.send(BodyChunk::End(None)).await.unwrap();
        });
        assert_eq!(read_all(req.into_body()).await.len(), 100 * 1024);
        sender.await.unwrap();
        assert!(replay.again().is_none());
    }

    #[tokio::test]
    async fn a_bodyless_request_is_sent_again_bodyless() {
        let mut req = request(RequestBody::empty());
        let replay = Replay::keep(&mut req);
        assert!(req.body().is_end_stream());
        let again = replay.again().unwrap();
        assert!(again.body().is_end_stream());
        assert_eq!(again.headers()["x-tenant"], "t1");
    }

    #[tokio::test]
    async fn a_client_gone_mid_body_is_not_sent_again() {
        let (tx, req, replay) = tapped().await;
        drop(tx);
        assert!(req.into_body().collect().await.is_err());
        assert!(replay.again().is_none());
    }
}
