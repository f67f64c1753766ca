//! Upstream servers for the tests: weir's synthetic upstream, small hyper servers
//! with special behaviour, a request-echoing upstream, and ports where nothing listens.

use super::*;

/// A synthetic upstream (`weir::synthetic`) named `name` on 127.0.0.1 port 0, on the
/// current runtime.
pub async fn synthetic(name: &str) -> SocketAddr {
    synthetic_with(weir::synthetic::Profile::new(name)).await
}

pub async fn synthetic_with(profile: weir::synthetic::Profile) -> SocketAddr {
    let (addr, _task) = weir::synthetic::spawn("127.0.0.1:0".parse().unwrap(), profile)
        .await
        .expect("bind synthetic upstream");
    addr
}

/// A local port where nothing listens: connecting to it is refused. The port stays
/// bound (without `listen`) for as long as this lives, so no other socket can take it
/// and turn a "dead" endpoint alive mid-test.
pub struct DeadPort {
    pub addr: SocketAddr,
    _socket: socket2::Socket,
}

pub fn dead_port() -> DeadPort {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("an inet address");
    DeadPort {
        addr,
        _socket: socket,
    }
}

pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The response body type of test servers.
pub type ServerBody = BoxBody<Bytes, BoxError>;

/// Serves `handler` on 127.0.0.1 port 0 over HTTP/1.1 (`http2 == false`, with
/// upgrades) or h2c with prior knowledge.
pub async fn serve<F, Fut>(http2: bool, handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ServerBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let io = TokioIo::new(stream);
                if http2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(io, service)
                        .with_upgrades()
                        .await;
                }
            });
        }
    });
    addr
}

pub fn server_body(text: impl Into<Bytes>) -> ServerBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An upstream that answers every request with a JSON echo of it:
/// `{"method", "uri", "version", "headers": [[name, value], ...], "body_bytes"}`.
pub async fn echo_upstream(http2: bool) -> SocketAddr {
    serve(http2, |req: Request<Incoming>| async move {
        let (parts, body) = req.into_parts();
        let body_bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let json = serde_json::json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "version": format!("{:?}", parts.version),
            "headers": headers,
            "body_bytes": body_bytes,
        });
        let mut resp = Response::new(server_body(json.to_string()));
        resp.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        resp.headers_mut()
            .insert("x-weir-upstream", "echo".parse().unwrap());
        resp
    })
    .await
}

/// The request an [`echo_upstream`] saw.
#[derive(Debug)]
pub struct Echoed {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Echoed {
    pub fn parse(body: &[u8]) -> Echoed {
        let v: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("echo body is not JSON ({e}): {body:?}"));
        Echoed {
            method: v["method"].as_str().unwrap().to_owned(),
            uri: v["uri"].as_str().unwrap().to_owned(),
            version: v["version"].as_str().unwrap().to_owned(),
            headers: v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_owned(),
                        p[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        }
    }

    /// Every value of header `name` (lowercase).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "header {name} repeated: {all:?}");
        all.first().copied()
    }
}
