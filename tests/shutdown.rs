//! Graceful shutdown under load: on SIGTERM (and SIGINT) weir fails `/ready`, tells
//! HTTP/1.1 clients `Connection: close` and HTTP/2 clients GOAWAY, lets in-flight
//! requests finish, and exits 0 within the drain timeout, and no request fails.
//!
//! The load clients behave as correct clients do: an HTTP/1.1 connection whose
//! response said `Connection: close` (or that weir closed while idle) is not used
//! again, and an HTTP/2 connection that got GOAWAY opens no new streams. Each client
//! keeps a single connection and never reconnects, so every request counted was
//! admitted by weir: any error or non-2xx answer is a failure.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use support::*;

const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
const SLOW: Duration = Duration::from_millis(1_500);

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// Successful responses that completed after the signal was sent.
    ok_after_signal: AtomicU64,
    failures: Mutex<Vec<String>>,
    /// Requests the client library handed back unsent because the connection closed
    /// first (never admitted by weir, so not failures).
    unsent: AtomicU64,
    /// HTTP/1.1 responses that said `Connection: close`.
    closes: AtomicU64,
}

impl Tally {
    fn record(&self, result: Result<Got, String>, signalled: &AtomicBool) -> bool {
        match result {
            Ok(got) if got.status.is_success() => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                if signalled.load(Ordering::Relaxed) {
                    self.ok_after_signal.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Ok(got) => {
                self.failures
                    .lock()
                    .unwrap()
                    .push(format!("{}: {}", got.status, got.text()));
                false
            }
            Err(e) => {
                self.failures.lock().unwrap().push(e);
                false
            }
        }
    }
}

/// An upstream that answers after `latency`, counting the requests that arrived.
async fn delayed_upstream(latency: Duration, arrived: Arc<AtomicUsize>) -> SocketAddr {
    serve(false, move |req: Request<Incoming>| {
        let arrived = arrived.clone();
        async move {
            arrived.fetch_add(1, Ordering::SeqCst);
            let path = req.uri().path().to_owned();
            tokio::time::sleep(latency).await;
            Response::new(server_body(format!("done {path}\n")))
        }
    })
    .await
}

/// Sequential requests on one HTTP/1.1 keep-alive connection until weir closes it.
async fn h1_load(addr: SocketAddr, tally: Arc<Tally>, signalled: Arc<AtomicBool>) {
    let mut tx = h1_conn(addr).await;
    // `ready` fails once the connection is closing: after a `Connection: close`
    // response, or when weir closed it while idle. Nothing is sent then.
    while tx.ready().await.is_ok() {
        let req = Request::get("/load")
            .header("host", "shop")
            .body(empty())
            .unwrap();
        let result = match tx.try_send_request(req).await {
            Ok(resp) => read(resp).await.map_err(|e| format!("h1 body: {e}")),
            // The connection closed before the request went out: it was never sent,
            // and a client would send it elsewhere.
            Err(e) if e.message().is_some() => {
                tally.unsent.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(e) => Err(format!("h1 request: {:?}", e.into_error())),
        };
        let close = result
            .as_ref()
            .is_ok_and(|g| g.header("connection") == Some("close"));
        if close {
            tally.closes.fetch_add(1, Ordering::Relaxed);
        }
        if !tally.record(result, &signalled) || close {
            break;
        }
    }
}

/// Streams on one HTTP/2 connection until it goes away.
async fn h2_load(
    tx: hyper::client::conn::http2::SendRequest<ReqBody>,
    tally: Arc<Tally>,
    signalled: Arc<AtomicBool>,
) {
    let mut tx = tx;
    // `ready` fails once the connection got GOAWAY or closed.
    while tx.ready().await.is_ok() {
        let req = Request::get("http://shop/load").body(empty()).unwrap();
        let result = match tx.try_send_request(req).await {
            Ok(resp) => read(resp).await.map_err(|e| format!("h2 body: {e}")),
            // GOAWAY raced with this request and the connection closed before the
            // request was handed to it: never sent, and a client retries it elsewhere.
            Err(e) if e.message().is_some() => {
                tally.unsent.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(e) => Err(format!("h2 request: {:?}", e.into_error())),
        };
        if !tally.record(result, &signalled) {
            break;
        }
    }
}

async fn drain_under_load(signal: &str) {
    let steady_arrivals = Arc::new(AtomicUsize::new(0));
    let slow_arrivals = Arc::new(AtomicUsize::new(0));
    let steady = delayed_upstream(Duration::from_millis(20), steady_arrivals.clone()).await;
    let slow = delayed_upstream(SLOW, slow_arrivals.clone()).await;
    let mut weir = Weir::start(&format!(
        r#"
drain_timeout: {}s
destinations:
  steady: {{ endpoints: ["{steady}"] }}
  slow:   {{ endpoints: ["{slow}"] }}
routes:
  - name: slow
    match: {{ path: {{ prefix: /slow }} }}
    split: {{ slow: 1 }}
  - name: steady
    split: {{ steady: 1 }}
"#,
        DRAIN_TIMEOUT.as_secs()
    ))
    .await;

    let tally = Arc::new(Tally::default());
    let signalled = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        load.push(tokio::spawn(h1_load(
            weir.listen,
            tally.clone(),
            signalled.clone(),
        )));
    }
    let h2 = h2_conn(weir.listen).await;
    for _ in 0..8 {
        load.push(tokio::spawn(h2_load(
            h2.clone(),
            tally.clone(),
            signalled.clone(),
        )));
    }
    drop(h2);

    // Steady load first.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tally.ok.load(Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Then slow requests, in flight when the signal comes: two over HTTP/1.1, one
    // over HTTP/2. Each records when its answer arrived.
    let mut slow_requests = Vec::new();
    for (i, client) in [h1_client(), h1_client(), h2_client()]
        .into_iter()
        .enumerate()
    {
        let url = weir.url(&format!("/slow/{i}"));
        slow_requests.push(tokio::spawn(async move {
            let got = get(&client, &url).await;
            (got.status, got.text(), Instant::now())
        }));
    }
    while slow_arrivals.load(Ordering::SeqCst) < 3 {
        assert!(
            Instant::now() < deadline,
            "the slow requests did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        tally.failures.lock().unwrap().is_empty(),
        "failures before the signal: {:?}",
        tally.failures.lock().unwrap()
    );

    let ok_before = tally.ok.load(Ordering::Relaxed);
    signalled.store(true, Ordering::Relaxed);
    let sent = Instant::now();
    weir.signal(signal);

    // Readiness fails while the drain runs.
    let mut saw_unready = false;
    let status = loop {
        if !saw_unready && let Ok((code, _)) = admin_get(weir.admin, "/ready").await {
            saw_unready = code == 503;
        }
        if let Some(status) = weir.wait_exit(Duration::from_millis(20)).await {
            break status;
        }
        assert!(
            sent.elapsed() < DRAIN_TIMEOUT + Duration::from_secs(5),
            "weir still running {:?} after {signal}",
            sent.elapsed()
        );
    };
    let took = sent.elapsed();
    eprintln!(
        "{signal}: exited {status} after {took:?}; {ok_before} ok before, {} ok after the signal, {} unsent",
        tally.ok_after_signal.load(Ordering::Relaxed),
        tally.unsent.load(Ordering::Relaxed)
    );
    assert!(status.success(), "weir exited with {status}");
    assert!(
        saw_unready,
        "/ready never answered 503 during the drain; logs:\n{}",
        weir.logs().join("\n")
    );
    // The slow requests (1.5 s upstream) were in flight at the signal, held the drain
    // open, and all finished with 200 after it.
    assert!(took >= Duration::from_secs(1), "exited after {took:?}");
    for r in slow_requests {
        let (status, body, answered) = within(10, r).await.unwrap();
        assert_eq!(status, 200, "slow request: {body}");
        assert!(body.starts_with("done /slow/"), "{body}");
        assert!(
            answered > sent,
            "the slow request was answered after the signal"
        );
    }
    // Every load client stopped by itself: their connections were closed or went away.
    for l in load {
        within(10, l).await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} requests failed during the drain: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert_eq!(
        tally.closes.load(Ordering::Relaxed),
        4,
        "each HTTP/1.1 client was told `Connection: close`"
    );
    assert!(
        tally.ok_after_signal.load(Ordering::Relaxed) > 0,
        "no request completed during the drain: the test did not drain under load"
    );
    weir.wait_line("the drain finished", |l| l.contains("drained; exiting"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_under_load_without_failures() {
    within(60, drain_under_load("TERM")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_drains_too() {
    within(60, drain_under_load("INT")).await;
}

/// Idle keep-alive connections (HTTP/1.1 and HTTP/2) do not hold the drain open: they
/// are closed, and weir exits long before its 10 s drain timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_hold_the_drain() {
    within(60, async {
        let upstream = synthetic("up").await;
        let mut weir = Weir::start(&format!(
            "drain_timeout: 10s\ndestinations:\n  up: {{ endpoints: [\"{upstream}\"] }}\n\
             routes:\n  - name: all\n    split: {{ up: 1 }}\n"
        ))
        .await;
        let mut conns = Vec::new();
        for proto in Proto::ALL {
            let mut conn = proto.conn(weir.listen).await;
            let got = conn.get("/").await.unwrap();
            assert_eq!(got.status, 200, "{proto}");
            conns.push(conn);
        }
        let sent = Instant::now();
        weir.signal("TERM");
        let status = weir
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("weir exits");
        assert!(status.success(), "{status}");
        assert!(
            sent.elapsed() < Duration::from_secs(6),
            "idle connections held the drain for {:?}",
            sent.elapsed()
        );
        // Both connections were closed by weir.
        for mut conn in conns {
            let proto = conn.proto();
            assert!(
                conn.ready().await.is_err(),
                "the idle {proto} connection is closed"
            );
        }
    })
    .await;
}

/// A request that outlives `drain_timeout` does not keep weir from exiting: the drain
/// is bounded, and weir still exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_bounded_by_drain_timeout() {
    within(60, async {
        let arrived = Arc::new(AtomicUsize::new(0));
        let stuck = delayed_upstream(Duration::from_secs(3600), arrived.clone()).await;
        let mut weir = Weir::start(&format!(
            "drain_timeout: 1s\ndestinations:\n  stuck: {{ endpoints: [\"{stuck}\"] }}\n\
             routes:\n  - name: all\n    split: {{ stuck: 1 }}\n"
        ))
        .await;
        let url = weir.url("/forever");
        let hung = tokio::spawn(async move {
            h1_client()
                .request(Request::get(url).body(empty()).unwrap())
                .await
                .map(|r| r.status())
        });
        while arrived.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sent = Instant::now();
        weir.signal("TERM");
        let status = weir
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("weir exits");
        let took = sent.elapsed();
        assert!(status.success(), "{status}");
        assert!(
            took >= Duration::from_millis(900),
            "exited after {took:?}, before the drain timeout"
        );
        assert!(took < Duration::from_secs(5), "exited after {took:?}");
        // The request that could not finish was cut off, not answered.
        assert!(within(10, hung).await.unwrap().is_err());
        weir.wait_line("the drain timeout warning", |l| {
            l.contains("drain timeout reached")
        })
        .await;
    })
    .await;
}
