//! The demo's client: a steady request rate over a few keep-alive connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What the load generator saw, for the demo's footer.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

/// Sends `rate` requests per second in total over `connections` connections, forever.
pub async fn run(target: SocketAddr, rate: u32, connections: u32, stats: Arc<LoadStats>) {
    let per_conn = (f64::from(rate) / f64::from(connections.max(1))).max(0.1);
    let period = Duration::from_secs_f64(1.0 / per_conn);
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let Ok(stream) = TcpStream::connect(target).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let Ok((mut tx, conn)) =
                    http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
                else {
                    continue;
                };
                tokio::spawn(conn);
                loop {
                    tick.tick().await;
                    if tx.ready().await.is_err() {
                        break;
                    }
                    let req = Request::get("/")
                        .header("host", "shop.demo")
                        .body(Empty::new())
                        .expect("a static request builds");
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    match tx.send_request(req).await {
                        Ok(resp) => {
                            let ok = resp.status().is_success();
                            if resp.into_body().collect().await.is_err() || !ok {
                                stats.failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}
