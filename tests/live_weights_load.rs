//! Live weights under load: while clients keep sending on several keep-alive
//! connections (HTTP/1.1 and HTTP/2), 100 weight changes through the file and 100 through
//! the API, interleaved, fail no request, and after each change every request sent
//! after the change took effect goes where the new split says.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Request;
use support::*;

const CHANGES: usize = 200;
const H1_CONNECTIONS: usize = 4;

fn config(a: SocketAddr, b: SocketAddr, to: &str, n: usize) -> String {
    let split = if to == "a" {
        "{ a: 1, b: 0 }"
    } else {
        "{ a: 0, b: 1 }"
    };
    // The change number makes every file write a real content change.
    format!(
        "# change {n}\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\ndestinations:\n  a: {{ endpoints: [\"{a}\"] }}\n  b: {{ endpoints: [\"{b}\"] }}\nroutes:\n  - name: primary\n    split: {split}\n"
    )
}

/// What one client saw: when each request was sent, who answered, and failures.
#[derive(Default)]
struct Seen {
    /// When the request was handed to the client, when its response arrived, and who
    /// answered.
    answers: Vec<(Instant, Instant, String)>,
    failures: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_changes_under_load_fail_nothing() {
    within(240, async {
        let (a, b) = (synthetic("a").await, synthetic("b").await);
        let dir = TempDir::new("live-load");
        let file = dir.write("weir.yaml", &config(a, b, "a", 0));
        let w = Weir::start_file(&file, LogFormat::Json).await;
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Vec<Arc<Mutex<Seen>>> = (0..=H1_CONNECTIONS).map(|_| Arc::default()).collect();

        let mut clients = Vec::new();
        for (i, seen) in seen.iter().enumerate() {
            let (stop, seen, listen) = (stop.clone(), seen.clone(), w.listen);
            clients.push(tokio::spawn(async move {
                let http2 = i == H1_CONNECTIONS;
                let mut h1 = if http2 { None } else { Some(h1_conn(listen).await) };
                let mut h2 = if http2 { Some(h2_conn(listen).await) } else { None };
                while !stop.load(Ordering::Relaxed) {
                    // The host weir routes by: `Host` over HTTP/1.1, `:authority` over
                    // HTTP/2 (where a `host` naming another authority is refused).
                    let req = if http2 {
                        Request::get("http://shop/").body(empty()).unwrap()
                    } else {
                        Request::get("/").header("host", "shop").body(empty()).unwrap()
                    };
                    let sent = Instant::now();
                    let resp = match (&mut h1, &mut h2) {
                        (Some(tx), _) => match tx.ready().await {
                            Ok(()) => tx.send_request(req).await,
                            Err(e) => Err(e),
                        },
                        (_, Some(tx)) => tx.send_request(req).await,
                        _ => unreachable!(),
                    };
                    let mut s = seen.lock().unwrap();
                    match resp {
                        Ok(resp) if resp.status() == 200 => {
                            let received = Instant::now();
                            let who = resp.headers()["x-weir-upstream"].to_str().unwrap().to_owned();
                            drop(s);
                            let body = read(resp).await;
                            let mut s = seen.lock().unwrap();
                            match body {
                                Ok(_) => s.answers.push((sent, received, who)),
                                Err(e) => s.failures.push(format!("body: {e}")),
                            }
                        }
                        Ok(resp) => s.failures.push(format!("status {}", resp.status())),
                        Err(e) => {
                            s.failures.push(format!("error: {e}"));
                            break;
                        }
                    }
                }
            }));
        }

        // The prober watches where requests go after each change, on its own connection.
        let mut probe = h1_conn(w.listen).await;
        let mut switched_at = Vec::with_capacity(CHANGES);
        let mut file_latency = Vec::new();
        let mut api_latency = Vec::new();
        tokio::time::sleep(Duration::from_millis(200)).await;
        for n in 1..=CHANGES {
            let to = if n % 2 == 1 { "b" } else { "a" };
            let by_file = (n / 2) % 2 == 0;
            let changed = Instant::now();
            if by_file {
                let tmp = dir.path().join("weir.yaml.tmp");
                std::fs::write(&tmp, config(a, b, to, n)).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
            } else {
                let body = if to == "a" { r#"{"a": 1, "b": 0}"# } else { r#"{"a": 0, "b": 1}"# };
                let (status, text) = admin_request(w.admin, "PUT", "/routes/primary/split", body, None)
                    .await
                    .unwrap();
                assert_eq!(status, 200, "{text}");
            }
            loop {
                probe.ready().await.unwrap();
                let resp = probe
                    .send_request(Request::get("/").header("host", "shop").body(empty()).unwrap())
                    .await
                    .unwrap();
                let who = resp.headers()["x-weir-upstream"].to_str().unwrap().to_owned();
                read(resp).await.unwrap();
                if who == to {
                    break;
                }
                assert!(changed.elapsed() < Duration::from_secs(2), "change {n} never took effect");
            }
            let took = changed.elapsed();
            if by_file { file_latency.push(took) } else { api_latency.push(took) }
            switched_at.push((changed, Instant::now(), to));
            // Let the load clients send a few requests under this split.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }

        let mut total = 0;
        let mut misrouted = Vec::new();
        for s in &seen {
            let s = s.lock().unwrap();
            assert!(s.failures.is_empty(), "failed requests: {:?}", s.failures);
            total += s.answers.len();
            for (sent, received, who) in &s.answers {
                // A request sent after the prober saw change k take effect, and answered
                // before change k+1 was started, was routed wholly under change k.
                for (k, (_, seen_at, to)) in switched_at.iter().enumerate() {
                    let next_start = switched_at.get(k + 1).map(|(start, _, _)| *start);
                    if sent > seen_at && next_start.is_none_or(|next| *received < next) && who != to {
                        misrouted.push(format!(
                            "change {}: sent {:?} after it took effect, to {to}, answered by {who}",
                            k + 1,
                            sent.duration_since(*seen_at)
                        ));
                    }
                }
            }
        }
        assert!(misrouted.is_empty(), "{} misrouted: {:?}", misrouted.len(), &misrouted[..misrouted.len().min(5)]);
        assert!(total > CHANGES * 5, "the load was too thin to mean anything: {total} requests");
        file_latency.sort();
        api_latency.sort();
        println!(
            "live weights under load: {total} requests on {} connections, 0 failed, 0 misrouted; {} file changes (reload to traffic: median {:?}, max {:?}), {} API changes (median {:?}, max {:?})",
            H1_CONNECTIONS + 1,
            file_latency.len(),
            file_latency[file_latency.len() / 2],
            file_latency.last().unwrap(),
            api_latency.len(),
            api_latency[api_latency.len() / 2],
            api_latency.last().unwrap(),
        );
        let (_, metrics) = admin_get(w.admin, "/metrics").await.unwrap();
        assert!(metrics.contains(&format!("weir_config_reloads_total{{result=\"success\"}} {}", file_latency.len())), "{metrics}");
    })
    .await;
}
