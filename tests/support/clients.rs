//! HTTP clients: the two plaintext client protocols the behaviour tests run over
//! ([`Proto`]: HTTP/1.1 and HTTP/2 with prior knowledge), one connection of either
//! protocol over TCP or TLS ([`Conn`]), hyper_util's pooled legacy client, and
//! responses read to the end with their trailers ([`Got`]).

use super::*;

/// The request body type of the test clients.
pub type ReqBody = BoxBody<Bytes, Infallible>;

pub fn empty() -> ReqBody {
    Empty::new().boxed()
}

pub fn full(data: impl Into<Bytes>) -> ReqBody {
    Full::new(data.into()).boxed()
}

/// How long one request on a [`Conn`] may take before the test calls it hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

// === Proto ===

/// A client protocol on weir's plaintext listener. Behaviour that should not depend on
/// the client's protocol is tested from one table: `for proto in Proto::ALL`, with the
/// protocol named in every assertion message (`{proto}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 (weir's own codec).
    Http1,
    /// HTTP/2 with prior knowledge, cleartext (hyper's server in weir).
    H2c,
}

impl Proto {
    pub const ALL: [Proto; 2] = [Proto::Http1, Proto::H2c];

    pub fn is_http2(self) -> bool {
        self == Proto::H2c
    }

    /// A short name for paths and queries: `h1`, `h2c`.
    pub fn tag(self) -> &'static str {
        match self {
            Proto::Http1 => "h1",
            Proto::H2c => "h2c",
        }
    }

    /// The HTTP version the client speaks, as hyper reports it.
    pub fn version(self) -> Version {
        match self {
            Proto::Http1 => Version::HTTP_11,
            Proto::H2c => Version::HTTP_2,
        }
    }

    /// The `protocol` field of weir's access-log lines for this client.
    pub fn logged(self) -> &'static str {
        match self {
            Proto::Http1 => "HTTP/1.1",
            Proto::H2c => "HTTP/2.0",
        }
    }

    /// A pooled client (hyper_util's legacy client) speaking this protocol.
    pub fn client(self) -> Client<HttpConnector, ReqBody> {
        match self {
            Proto::Http1 => h1_client(),
            Proto::H2c => h2_client(),
        }
    }

    /// One new connection to `addr` (panics if it cannot be opened).
    pub async fn conn(self, addr: SocketAddr) -> Conn {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Conn::over(tcp, self, "http")
            .await
            .unwrap_or_else(|e| panic!("{self}: {e}"))
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Http1 => "HTTP/1.1",
            Proto::H2c => "h2c",
        })
    }
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

// === Got ===

/// A response read to the end.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub version: Version,
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
        version: parts.version,
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

// === Conn ===

/// One open client connection, HTTP/1.1 or HTTP/2, over TCP or TLS: every request
/// goes over it.
pub struct Conn {
    tx: Tx,
    /// `http` or `https`: the scheme of HTTP/2 requests' URIs.
    scheme: &'static str,
}

enum Tx {
    H1(hyper::client::conn::http1::SendRequest<ReqBody>),
    H2(hyper::client::conn::http2::SendRequest<ReqBody>),
}

impl Conn {
    /// Speaks `proto` over `io` (the TLS tests pass a TLS stream and `https`).
    pub async fn over<I>(io: I, proto: Proto, scheme: &'static str) -> Result<Conn, String>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let tx = match proto {
            Proto::H2c => {
                let (tx, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
                tokio::spawn(conn);
                Tx::H2(tx)
            }
            Proto::Http1 => {
                let (tx, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| format!("h1 handshake: {e}"))?;
                tokio::spawn(conn);
                Tx::H1(tx)
            }
        };
        Ok(Conn { tx, scheme })
    }

    pub fn proto(&self) -> Proto {
        match self.tx {
            Tx::H1(_) => Proto::Http1,
            Tx::H2(_) => Proto::H2c,
        }
    }

    /// A request for `host` and `path` (with its query) as this protocol carries them:
    /// HTTP/1.1 in origin form with a `Host` header, HTTP/2 with the host as
    /// `:authority` and no `Host` header.
    pub fn request(&self, method: &str, host: &str, path: &str) -> http::request::Builder {
        let builder = Request::builder().method(method);
        match self.tx {
            Tx::H1(_) => builder.uri(path).header("host", host),
            Tx::H2(_) => builder.uri(format!("{}://{host}{path}", self.scheme)),
        }
    }

    /// Waits until the connection can take a request (fails once it is closed or, on
    /// HTTP/2, going away).
    pub async fn ready(&mut self) -> Result<(), String> {
        match &mut self.tx {
            Tx::H1(tx) => tx.ready().await,
            Tx::H2(tx) => tx.ready().await,
        }
        .map_err(|e| format!("{}: not ready: {e}", self.proto()))
    }

    /// Sends `req` and reads the whole response (hang guard: 10 s).
    pub async fn send(&mut self, req: Request<ReqBody>) -> Result<Got, String> {
        let proto = self.proto();
        let what = format!("{proto} {} {}", req.method(), req.uri());
        let fut = async {
            self.ready().await?;
            let resp = match &mut self.tx {
                Tx::H1(tx) => tx.send_request(req).await,
                Tx::H2(tx) => tx.send_request(req).await,
            }
            .map_err(|e| format!("{what}: request: {e:?}"))?;
            read(resp).await.map_err(|e| format!("{what}: body: {e}"))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| format!("{what}: no response within {REQUEST_TIMEOUT:?}"))?
    }

    /// `GET path` for host `localhost`.
    pub async fn get(&mut self, path: &str) -> Result<Got, String> {
        let req = self
            .request("GET", "localhost", path)
            .body(empty())
            .unwrap();
        self.send(req).await
    }
}

/// One `GET path` over a new plaintext connection speaking `proto`.
pub async fn http_get(addr: SocketAddr, proto: Proto, path: &str) -> Result<Got, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut conn = Conn::over(tcp, proto, "http").await?;
    conn.get(path).await
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
