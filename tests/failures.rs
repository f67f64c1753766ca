//! weir's own answers, each with its Envoy response flag in the response and in the
//! access log: 404 NR, 503 UF, 504 UT, 502 UC, and DC for a client that went away;
//! plus the one connect retry on the next endpoint of the same destination. Every case
//! runs for HTTP/1.1 and h2c clients from one table: the answers and flags do not
//! depend on the client's protocol.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Request;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that accepts connections and reads requests, but never answers.
async fn silent_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// An upstream that reads the request head, then closes the connection without a
/// word (`reset == false`: FIN) or resets it (`reset == true`: RST).
async fn hangup_upstream(reset: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if reset {
                    let _ = stream.set_zero_linger();
                }
                drop(stream);
            });
        }
    });
    addr
}

struct Setup {
    weir: Weir,
    _dead_ports: [DeadPort; 2],
    dead: SocketAddr,
    live: SocketAddr,
}

async fn setup(format: LogFormat) -> Setup {
    let dead1_port = dead_port();
    let dead2_port = dead_port();
    let (dead, dead2) = (dead1_port.addr, dead2_port.addr);
    let silent = silent_upstream().await;
    let closer = hangup_upstream(false).await;
    let resetter = hangup_upstream(true).await;
    let live = synthetic("live").await;
    let yaml = format!(
        r#"
access_log: true
destinations:
  refused:  {{ endpoints: ["{dead}"] }}
  silent:   {{ endpoints: ["{silent}"] }}
  closer:   {{ endpoints: ["{closer}"] }}
  resetter: {{ endpoints: ["{resetter}"] }}
  mixed:    {{ endpoints: ["{dead}", "{live}"] }}
  mostly-dead: {{ endpoints: ["{dead}", "{dead2}", "{live}"] }}
routes:
  - name: uf
    match: {{ path: /uf }}
    split: {{ refused: 1 }}
  - name: ut
    match: {{ path: /ut }}
    split: {{ silent: 1 }}
    timeout: 200ms
  - name: dc
    match: {{ path: /dc }}
    split: {{ silent: 1 }}
  - name: uc-close
    match: {{ path: /uc-close }}
    split: {{ closer: 1 }}
  - name: uc-reset
    match: {{ path: /uc-reset }}
    split: {{ resetter: 1 }}
  - name: retry
    match: {{ path: /retry }}
    split: {{ mixed: 1 }}
  - name: retry-once
    match: {{ path: /retry-once }}
    split: {{ mostly-dead: 1 }}
"#
    );
    Setup {
        weir: Weir::start_with(&yaml, format).await,
        _dead_ports: [dead1_port, dead2_port],
        dead,
        live,
    }
}

/// Checks a local answer: status, the flag header, and a one-line body naming the flag.
fn assert_local(got: &Got, status: u16, flag: &str, what: &str) {
    assert_eq!(got.status, status, "{what}: {}", got.text());
    assert_eq!(got.header("x-weir-response-flags"), Some(flag), "{what}");
    let body = got.text();
    assert!(
        body.ends_with('\n') && body.trim_end().lines().count() == 1,
        "{what}: body is not one short line: {body:?}"
    );
    assert!(body.contains(&format!("({flag})")), "{what}: {body:?}");
}

/// Sends GET `path` with each client protocol, expects the same local answer from
/// both, and finds the matching access-log lines.
async fn expect_failure(s: &Setup, path: &str, status: u16, flag: &str) {
    let url = s.weir.url(path);
    for proto in Proto::ALL {
        let got = get(&proto.client(), &url).await;
        assert_local(&got, status, flag, &format!("{proto} {path}"));
    }
    for proto in Proto::ALL {
        let line = s
            .weir
            .wait_access(&format!("{proto} {path}"), |v| {
                v["path"] == path && v["protocol"] == proto.logged()
            })
            .await;
        assert_eq!(line["status"], status, "{proto}: {line}");
        assert_eq!(line["flags"], flag, "{proto}: {line}");
        assert_eq!(line["method"], "GET", "{proto}: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_404_nr() {
    within(60, async {
        let s = setup(LogFormat::Json).await;
        expect_failure(&s, "/nowhere", 404, "NR").await;
        let line = s.weir.wait_access("NR", |v| v["path"] == "/nowhere").await;
        assert_eq!(line["route"], "-");
        assert_eq!(line["destination"], "-");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_503_uf() {
    within(60, async {
        let s = setup(LogFormat::Json).await;
        expect_failure(&s, "/uf", 503, "UF").await;
        let line = s.weir.wait_access("UF", |v| v["path"] == "/uf").await;
        assert_eq!(line["route"], "uf");
        assert_eq!(line["destination"], "refused");
        // The failed endpoint is also reported (rate-limited) as a warning.
        let dead = s.dead.to_string();
        s.weir
            .wait_line("a connect warning", |l| {
                l.contains("upstream connect failed") && l.contains(&dead)
            })
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_is_504_ut_after_the_route_timeout() {
    within(60, async {
        let s = setup(LogFormat::Json).await;
        let started = Instant::now();
        expect_failure(&s, "/ut", 504, "UT").await;
        // Two requests, each waited out its 200ms timeout.
        assert!(started.elapsed() >= Duration::from_millis(400));
        let line = s.weir.wait_access("UT", |v| v["path"] == "/ut").await;
        let ms: f64 = line["duration_ms"].as_str().unwrap().parse().unwrap();
        assert!(ms >= 200.0, "{line}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_hangup_is_502_uc() {
    within(60, async {
        let s = setup(LogFormat::Json).await;
        expect_failure(&s, "/uc-close", 502, "UC").await;
        expect_failure(&s, "/uc-reset", 502, "UC").await;
    })
    .await;
}

/// The client leaves while weir waits on a silent upstream. How it leaves differs by
/// protocol (an HTTP/1.1 client can only close its connection; an HTTP/2 client
/// cancels its stream with RST_STREAM and keeps the connection), the log line does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_goes_away_is_logged_dc() {
    within(60, async {
        let s = setup(LogFormat::Json).await;
        for proto in Proto::ALL {
            let path = format!("/dc?{}", proto.tag());
            match proto {
                Proto::Http1 => {
                    let mut stream = tokio::net::TcpStream::connect(s.weir.listen).await.unwrap();
                    stream
                        .write_all(format!("GET {path} HTTP/1.1\r\nHost: shop\r\n\r\n").as_bytes())
                        .await
                        .unwrap();
                    // Let the request reach the (silent) upstream, then hang up.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    drop(stream);
                }
                Proto::H2c => {
                    let mut tx = h2_conn(s.weir.listen).await;
                    let uri = format!("http://shop{path}");
                    let pending = tx.send_request(Request::get(uri).body(empty()).unwrap());
                    assert!(
                        tokio::time::timeout(Duration::from_millis(300), pending)
                            .await
                            .is_err(),
                        "{proto}: the silent upstream answered"
                    );
                }
            }
            let line = s
                .weir
                .wait_access(&format!("{proto} DC"), |v| v["path"] == path.as_str())
                .await;
            assert_eq!(line["status"], 0, "{proto}: {line}");
            assert_eq!(line["flags"], "DC", "{proto}: {line}");
            assert_eq!(line["protocol"], proto.logged(), "{proto}: {line}");
        }
    })
    .await;
}

/// A destination with a dead endpoint and a live one: the connect failure is retried
/// on the next endpoint, so every request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_retried_on_the_next_endpoint() {
    within(60, async {
        let s = setup(LogFormat::Json).await;
        let live = s.live.to_string();
        for proto in Proto::ALL {
            let client = proto.client();
            for i in 0..10 {
                let got = get(&client, &s.weir.url("/retry")).await;
                assert_eq!(got.status, 200, "{proto} request {i}: {}", got.text());
                assert_eq!(got.upstream(), "live", "{proto} request {i}");
                assert_eq!(
                    got.header("x-weir-response-flags"),
                    None,
                    "{proto} request {i}"
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<_> = s
                .weir
                .access_logs()
                .into_iter()
                .filter(|v| v["path"] == "/retry")
                .collect();
            if lines.len() == 20 {
                for proto in Proto::ALL {
                    let n = lines
                        .iter()
                        .filter(|v| v["protocol"] == proto.logged())
                        .count();
                    assert_eq!(n, 10, "{proto}: {n} of 10 lines");
                }
                for line in lines {
                    assert_eq!(line["status"], 200, "{line}");
                    assert_eq!(line["flags"], "-", "{line}");
                    assert_eq!(line["endpoint"], live.as_str(), "{line}");
                }
                break;
            }
            assert!(Instant::now() < deadline, "{} of 20 lines", lines.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// The retry is one retry, and a dead endpoint backs off: with endpoints [dead, dead,
/// live] balanced round robin, the very first request starts on the first dead
/// endpoint, retries on the second one and fails; both then back off, and the
/// requests after it go to the live endpoint (a backoff that runs out lets one request
/// probe a dead endpoint, which may fail it once more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_retried_only_once() {
    within(60, async {
        let s = setup(LogFormat::Json).await;
        let mut failed = Vec::new();
        for proto in Proto::ALL {
            let mut conn = proto.conn(s.weir.listen).await;
            for i in 0..30 {
                let req = conn
                    .request("GET", "shop", "/retry-once")
                    .body(empty())
                    .unwrap();
                let got = conn
                    .send(req)
                    .await
                    .unwrap_or_else(|e| panic!("{proto} request {i}: {e}"));
                match got.status.as_u16() {
                    200 => assert_eq!(got.upstream(), "live", "{proto}"),
                    503 => {
                        assert_local(&got, 503, "UF", &format!("{proto} retry-once"));
                        failed.push((proto, i));
                    }
                    other => panic!("{proto}: unexpected {other}: {}", got.text()),
                }
            }
        }
        assert_eq!(
            failed.first(),
            Some(&(Proto::ALL[0], 0)),
            "the first request fails after one retry: {failed:?}"
        );
        assert!(
            failed.len() <= 3,
            "dead endpoints back off instead of failing one request in three: {failed:?}"
        );
    })
    .await;
}

/// The text log format carries the same fields: `status=503 flags="UF"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_access_log_shows_the_flags() {
    within(60, async {
        let s = setup(LogFormat::Text).await;
        for proto in Proto::ALL {
            for (path, status, flag) in [
                ("/nowhere", 404, "NR"),
                ("/uf", 503, "UF"),
                ("/ut", 504, "UT"),
                ("/uc-close", 502, "UC"),
            ] {
                let got = get(&proto.client(), &s.weir.url(path)).await;
                assert_local(&got, status, flag, &format!("{proto} {path}"));
                s.weir
                    .wait_line(&format!("{proto} text access line for {path}"), |l| {
                        l.contains("weir::access")
                            && l.contains(&format!("path={path} "))
                            && l.contains(&format!("protocol={} ", proto.logged()))
                            && l.contains(&format!("status={status} "))
                            && l.contains(&format!("flags=\"{flag}\""))
                    })
                    .await;
            }
        }
    })
    .await;
}

/// weir's own replies carry a `Date` (RFC 9110 section 6.6.1), over both protocols
/// and for every kind of local answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_replies_carry_a_date() {
    within(60, async {
        let s = setup(LogFormat::Json).await;
        for proto in Proto::ALL {
            for (path, status, flag) in [
                ("/nowhere", 404, "NR"),
                ("/uf", 503, "UF"),
                ("/ut", 504, "UT"),
                ("/uc-close", 502, "UC"),
            ] {
                let what = format!("{proto} {path}");
                let got = get(&proto.client(), &s.weir.url(path)).await;
                assert_local(&got, status, flag, &what);
                let date = got
                    .header("date")
                    .unwrap_or_else(|| panic!("{what}: a date header"));
                assert!(date.ends_with(" GMT") && date.len() == 29, "{what}: {date}");
            }
        }
    })
    .await;
}

/// An upstream that answers 200 with a 100-byte `Content-Length`, sends `first`
/// bytes of it, then either stalls (`stall == true`) or closes the connection.
async fn partial_body_upstream(first: usize, stall: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
                resp.extend(std::iter::repeat_n(b'a', first));
                if stream.write_all(&resp).await.is_err() {
                    return;
                }
                if stall {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    addr
}

/// Failures after the response started: the status (200) is already sent, so the
/// client sees a cut body, and the access log keeps the status with the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_mid_body_cut_the_response_and_are_logged() {
    within(60, async {
        let stalls = partial_body_upstream(10, true).await;
        let closes = partial_body_upstream(10, false).await;
        let weir = Weir::start(&format!(
            r#"
access_log: true
destinations:
  stalls: {{ endpoints: ["{stalls}"] }}
  closes: {{ endpoints: ["{closes}"] }}
routes:
  - name: slow-body
    match: {{ path: /slow-body }}
    split: {{ stalls: 1 }}
    timeout: 300ms
  - name: cut-body
    split: {{ closes: 1 }}
"#
        ))
        .await;
        for (path, flag) in [("/slow-body", "UT"), ("/cut-body", "UC")] {
            for proto in Proto::ALL {
                let resp = proto
                    .client()
                    .request(Request::get(weir.url(path)).body(empty()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{proto} {path}");
                let body = tokio::time::timeout(Duration::from_secs(10), read(resp))
                    .await
                    .expect("the cut body ends");
                assert!(
                    body.is_err(),
                    "{proto} {path}: the client must see a cut body, got {body:?}"
                );
            }
            for proto in Proto::ALL {
                let line = weir
                    .wait_access(&format!("{proto} {path}"), |v| {
                        v["path"] == path && v["protocol"] == proto.logged()
                    })
                    .await;
                assert_eq!(line["status"], 200, "{proto}: {line}");
                assert_eq!(line["flags"], flag, "{proto}: {line}");
                assert_eq!(line["response_bytes"], 10, "{proto}: {line}");
            }
        }
    })
    .await;
}

/// An upstream's own error answer is passed through as it is: not a local reply, no
/// flag.
#[tokio::test]
async fn upstream_errors_pass_through_unflagged() {
    within(60, async {
        let mut profile = weir::synthetic::Profile::new("broken");
        profile.error_rate = 1.0;
        let upstream = synthetic_with(profile).await;
        let weir = Weir::start(&format!(
            "access_log: true\ndestinations:\n  broken: {{ endpoints: [\"{upstream}\"] }}\n\
             routes:\n  - name: all\n    split: {{ broken: 1 }}\n"
        ))
        .await;
        for proto in Proto::ALL {
            let path = format!("/err?{}", proto.tag());
            let got = get(&proto.client(), &weir.url(&path)).await;
            assert_eq!(got.status, 500, "{proto}");
            assert_eq!(got.text(), "broken: injected error\n", "{proto}");
            assert_eq!(got.header("x-weir-response-flags"), None, "{proto}");
            let line = weir
                .wait_access(&format!("{proto}: the 500"), |v| v["path"] == path.as_str())
                .await;
            assert_eq!(line["status"], 500, "{proto}: {line}");
            assert_eq!(line["flags"], "-", "{proto}: {line}");
        }
    })
    .await;
}

/// The connect retry for an HTTP/2 destination, under a burst: requests that waited
/// for the worker's connection to a dead endpoint fail over with it, to the live one.
/// (h2c clients send the burst as streams of one connection, HTTP/1.1 clients on 100
/// connections.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_retried_for_http2_destinations_in_a_burst() {
    within(60, async {
        let dead = dead_port();
        let live = synthetic("live-h2").await;
        let weir = Weir::start(&format!(
            "destinations:\n  mixed: {{ endpoints: [\"{}\", \"{live}\"], protocol: http2 }}\n\
             routes:\n  - name: all\n    split: {{ mixed: 1 }}\n",
            dead.addr
        ))
        .await;
        for proto in Proto::ALL {
            let client = proto.client();
            let tasks: Vec<_> = (0..100)
                .map(|i| {
                    let client = client.clone();
                    let url = weir.url(&format!("/b{i}"));
                    tokio::spawn(async move {
                        let got = get(&client, &url).await;
                        (got.status, got.text())
                    })
                })
                .collect();
            for t in tasks {
                let (status, text) = t.await.unwrap();
                assert_eq!(status, 200, "{proto}: {text}");
                assert_eq!(text, "live-h2\n", "{proto}");
            }
        }
    })
    .await;
}
