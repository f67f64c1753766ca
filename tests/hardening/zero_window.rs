//! The headline HTTP/2 attack: clients that open as many streams as they may,
//! grant no flow-control window, and never read. Each stream to an HTTP/1.1 upstream
//! holds an upstream connection; before the fix 22 such clients took every file
//! descriptor. Now each connection has at most 100 streams, the admin port and other
//! clients are still answered, and with `stream_idle_timeout` the attackers are
//! closed and their upstream connections released.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use tokio::net::TcpStream;

use super::*;

/// Attacking connections and what became of their streams.
struct Attack {
    /// Streams whose request was sent, per connection.
    opened: Vec<usize>,
    /// Connections weir closed (or that failed).
    closed: Arc<AtomicUsize>,
    /// Response statuses the streams got (their bodies are never read).
    statuses: Arc<Mutex<BTreeMap<u16, usize>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Attack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Opens `conns` HTTP/2 connections with a zero initial stream window and sends
/// `streams` requests on each (h2 opens as many as weir allows and queues the rest).
/// Returns once they are sent; the streams stay open, their response bodies never
/// read.
async fn attack(addr: SocketAddr, conns: usize, streams: usize) -> Attack {
    let closed = Arc::new(AtomicUsize::new(0));
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let mut tasks = Vec::new();
    let mut openers = Vec::new();
    for _ in 0..conns {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, Bytes>(tcp)
            .await
            .expect("h2 handshake");
        let closed = closed.clone();
        tasks.push(tokio::spawn(async move {
            let _ = conn.await;
            closed.fetch_add(1, Ordering::Relaxed);
        }));
        let statuses = statuses.clone();
        let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
        tasks.push(tokio::spawn(async move {
            let mut send = send;
            let mut opened = 0;
            let mut waiting = Vec::new();
            for _ in 0..streams {
                match tokio::time::timeout(Duration::from_millis(300), send.clone().ready()).await {
                    Ok(Ok(ready)) => send = ready,
                    _ => break,
                }
                let req = Request::get("http://shop/zero").body(()).unwrap();
                match send.send_request(req, true) {
                    Ok((response, _)) => {
                        opened += 1;
                        waiting.push(response);
                    }
                    Err(_) => break,
                }
            }
            let _ = opened_tx.send(opened);
            // Hold every stream: note its status, keep its body unread. The set
            // drops (and aborts) the holders when this task is aborted.
            let mut holders = tokio::task::JoinSet::new();
            for response in waiting {
                let statuses = statuses.clone();
                holders.spawn(async move {
                    if let Ok(response) = response.await {
                        *statuses
                            .lock()
                            .unwrap()
                            .entry(response.status().as_u16())
                            .or_default() += 1;
                        let _unread = response.into_body();
                        std::future::pending::<()>().await;
                    }
                });
            }
            std::future::pending::<()>().await;
            drop(holders);
        }));
        openers.push(opened_rx);
    }
    let mut opened = Vec::new();
    for rx in openers {
        opened.push(rx.await.unwrap_or(0));
    }
    Attack {
        opened,
        closed,
        statuses,
        tasks,
    }
}

async fn big_upstream() -> SocketAddr {
    let mut profile = weir::synthetic::Profile::new("app");
    profile.body_bytes = Some(64 * 1024);
    synthetic_with(profile).await
}

/// Other clients (both protocols, new connections) are answered, 200 when `served`,
/// and the admin port answers. "At once" is told from the failure (waiting out the
/// 300 s stream idle timeout behind the attack) with a bound far from both, so a loaded
/// machine does not fail it.
async fn others_are_answered(weir: &Weir, what: &str, served: bool) {
    for proto in Proto::ALL {
        let start = Instant::now();
        let got = http_get(weir.listen, proto, "/other")
            .await
            .unwrap_or_else(|e| panic!("{what}: {proto}: {e}"));
        let flags = got.header("x-weir-response-flags");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: {proto}: {} {flags:?} after {:?}",
            got.status,
            start.elapsed()
        );
        if served {
            assert_eq!(got.status, 200, "{what}: {proto}: {} {flags:?}", got.text());
            assert_eq!(got.body.len(), 64 * 1024, "{what}: {proto}");
        }
    }
    for path in ["/ready", "/healthz"] {
        let (status, body) = admin_get(weir.admin, path)
            .await
            .unwrap_or_else(|e| panic!("{what}: admin {path}: {e}"));
        assert_eq!(status, 200, "{what}: admin {path}: {body}");
    }
}

/// The attack on the defaults (100 streams per connection, the stream idle timeout 300 s
/// away): at most 100 streams per connection reach weir; new connections and the
/// admin port are answered at once (before the fix, accept failed for want of file
/// descriptors); and other clients are served, not refused with 503 `UO`, because the
/// full destination sheds the connections whose streams wait on a window.
async fn attack_on_defaults(served: bool) {
    let upstream = big_upstream().await;
    let weir = weir_to(upstream, "access_log: false").await;
    let attack = attack(weir.listen, 22, 1000).await;
    // h2 queues the streams over weir's limit on the client side; let the ones weir
    // allows reach it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let json = connections(&weir).await;
    let active = json["requests_active"].as_i64().unwrap();
    assert!(
        active <= 22 * 100,
        "{active} requests in flight from 22 connections; {json}"
    );
    eprintln!(
        "zero-window attack on the defaults: statuses {:?}, {json}",
        attack.statuses.lock().unwrap()
    );
    others_are_answered(&weir, "during the attack", served).await;
    if served {
        // They were served because the attackers' connections were shed: their streams
        // held the destination's places while waiting on a window that never came.
        let shed = metric(&weir, "weir_downstream_connections_shed_total").await;
        assert!(shed.unwrap_or(0) >= 1, "shed: {shed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_window_attack_leaves_new_connections_and_the_admin_port_answered() {
    within(180, attack_on_defaults(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_window_attack_leaves_other_clients_served() {
    within(180, attack_on_defaults(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_window_attackers_are_closed_after_the_stream_idle_timeout() {
    within(180, async {
        let upstream = big_upstream().await;
        let weir = weir_to(
            upstream,
            "access_log: false\nstream_idle_timeout: 2s\ndrain_timeout: 1s",
        )
        .await;
        let attack = attack(weir.listen, 22, 1000).await;
        let opened_at = Instant::now();
        let during = connections(&weir).await;
        assert!(
            upstream_active(&during) > 0,
            "the attack holds no upstream connection: {during}"
        );
        // One or two stall checks (2 s each), then GOAWAY and the drain timeout (1 s).
        let deadline = Duration::from_secs(12);
        while attack.closed.load(Ordering::Relaxed) < 22 {
            assert!(
                opened_at.elapsed() < deadline,
                "{} of 22 attacking connections closed after {deadline:?}; {}",
                attack.closed.load(Ordering::Relaxed),
                connections(&weir).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let closed_after = opened_at.elapsed();
        wait_connections(
            &weir,
            "the attack's upstream connections released",
            Duration::from_secs(5),
            |j| upstream_active(j) == 0 && downstream_active(j) == 0,
        )
        .await;
        eprintln!(
            "zero-window attack: streams sent {:?}, statuses {:?}, during {during}, \
             all 22 connections closed {closed_after:?} after the opening",
            attack.opened,
            attack.statuses.lock().unwrap()
        );
        others_are_answered(&weir, "after the attack", true).await;
    })
    .await;
}

/// The stream idle timeout applies to each stream: a stalled stream is cut however
/// busy its connection's other streams are. Here one connection holds 50 streams with
/// no window, and opens (and cancels) one more stream every 500 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_streams_are_cut_while_other_streams_of_their_connection_move() {
    within(60, async {
        let upstream = big_upstream().await;
        let weir = weir_to(
            upstream,
            "access_log: false\nstream_idle_timeout: 2s\ndrain_timeout: 1s",
        )
        .await;
        let tcp = TcpStream::connect(weir.listen).await.unwrap();
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, Bytes>(tcp)
            .await
            .expect("h2 handshake");
        let driver = tokio::spawn(conn);
        let mut held = Vec::new();
        let mut send = send;
        for _ in 0..50 {
            send = send.ready().await.unwrap();
            let req = Request::get("http://shop/stall").body(()).unwrap();
            held.push(send.send_request(req, true).unwrap().0);
        }
        let churn = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Ok(ready) = send.clone().ready().await else {
                    return;
                };
                let req = Request::get("http://shop/churn").body(()).unwrap();
                // Dropped at once: the stream is reset (CANCEL).
                let _ = ready.clone().send_request(req, true);
            }
        });
        wait_connections(&weir, "50 stalled streams", Duration::from_secs(5), |j| {
            upstream_active(j) >= 50
        })
        .await;
        let start = Instant::now();
        // Each stalled stream is cut after about 2 s of nothing moving on it.
        wait_connections(
            &weir,
            "the stalled streams' upstream connections released",
            Duration::from_secs(10),
            |j| upstream_active(j) <= 1,
        )
        .await;
        eprintln!("stalled streams released after {:?}", start.elapsed());
        churn.abort();
        driver.abort();
        drop(held);
    })
    .await;
}
