//! HTTP clients: hyper_util's pooled legacy client (HTTP/1.1 or h2c), single
//! connections, and responses read to the end with their trailers.

use super::*;

/// The request body type of the test clients.
pub type ReqBody = BoxBody<Bytes, Infallible>;

pub fn empty() -> ReqBody {
    Empty::new().boxed()
}

pub fn full(data: impl Into<Bytes>) -> ReqBody {
    Full::new(data.into()).boxed()
}

/// A pooled HTTP/1.1 keep-alive client (hyper_util's legacy client).
pub fn h1_client() -> Client<HttpConnector, ReqBody> {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .build_http()
}

/// An HTTP/2 prior-knowledge (h2c) client.
pub fn h2_client() -> Client<HttpConnector, ReqBody> {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_only(true)
        .build_http()
}

/// A response read to the end.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The destination that answered (`x-weir-upstream`).
    pub fn upstream(&self) -> &str {
        self.header("x-weir-upstream").unwrap_or("-")
    }
}

/// Reads a response to the end, with its trailers.
pub async fn read<B>(resp: Response<B>) -> Result<Got, BoxError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.map_err(Into::into)?;
    let trailers = collected.trailers().cloned();
    Ok(Got {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    })
}

/// Sends `req` with the pooled client and reads the response (hang guard: 30 s).
pub async fn fetch(client: &Client<HttpConnector, ReqBody>, req: Request<ReqBody>) -> Got {
    let uri = req.uri().clone();
    tokio::time::timeout(Duration::from_secs(30), async {
        let resp = client.request(req).await?;
        read(resp).await
    })
    .await
    .unwrap_or_else(|_| panic!("{uri}: no response within 30s"))
    .unwrap_or_else(|e| panic!("{uri}: {e:?}"))
}

/// GET `url` with the pooled client.
pub async fn get(client: &Client<HttpConnector, ReqBody>, url: &str) -> Got {
    fetch(client, Request::get(url).body(empty()).unwrap()).await
}

/// One HTTP/1.1 connection to `addr` (no pool: every request goes over it).
pub async fn h1_conn(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<ReqBody> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    tx
}

/// One HTTP/2 prior-knowledge connection to `addr`.
pub async fn h2_conn(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<ReqBody> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    tx
}
