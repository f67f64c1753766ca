//! The differential harness: every case of `tests/data/http1_corpus.txt` (malformed
//! and ambiguous HTTP/1.1: Content-Length and Transfer-Encoding conflicts and
//! obfuscations, chunk sizes and terminators, trailers, bare LF and CR, control bytes,
//! obs-fold, pipelining, absolute form) goes through weir, on a connection of its own,
//! to backends that report exactly which requests they answered: a raw-socket server
//! with a lenient parser (it reads bare LF as a line end, as nginx and HAProxy do),
//! and nginx and HAProxy themselves when they are installed (CI installs them).
//!
//! For every case and backend, the requests the backend answered must be exactly those
//! weir forwarded and logged (status, method, target, and for the raw backend the body
//! length), and the raw backend must never meet bytes it cannot read as HTTP/1.1. A
//! request smuggled past weir shows up as a request the backend saw and weir never
//! logged; a desync shows up in the case that caused it or in the next one.
//!
//! `WEIR_SMUGGLING_CASE=name` runs one case, `WEIR_SMUGGLING_DEBUG=1` prints weir's
//! log after each; the failure lists every case that failed. Against the build before
//! the fix of issue 12 it finds 13 failures: the bare-LF trailer and terminator cases
//! smuggle a request past weir to all three backends.

#[path = "smuggling/backends.rs"]
mod backends;
mod support;

use std::sync::Arc;
use std::time::Duration;

use backends::{Backend, Seen};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Case {
    name: String,
    bytes: Vec<u8>,
}

/// The corpus, with `{p}` in each case replaced by a path prefix of its own.
fn corpus() -> Vec<Case> {
    let text = include_str!("data/http1_corpus.txt");
    let only = std::env::var("WEIR_SMUGGLING_CASE").ok();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, line)| {
            let (name, raw) = line.split_once(" | ").expect("`name | bytes`");
            let raw = raw.replace("{p}", &format!("/c{i:03}"));
            Case {
                name: name.trim().to_owned(),
                bytes: unescape(&raw),
            }
        })
        .filter(|c| only.as_deref().is_none_or(|o| o == c.name))
        .collect()
}

/// `\r \n \t \0 \\ \xNN` in the corpus's notation.
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let (byte, used) = match bytes[i + 1] {
            b'r' => (b'\r', 2),
            b'n' => (b'\n', 2),
            b't' => (b'\t', 2),
            b'0' => (0, 2),
            b'\\' => (b'\\', 2),
            b'"' => (b'"', 2),
            b'x' => {
                let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).expect("\\xNN");
                (u8::from_str_radix(hex, 16).expect("\\xNN"), 4)
            }
            other => panic!("unknown escape \\{}", other as char),
        };
        out.push(byte);
        i += used;
    }
    out
}

/// Sends one case on a new connection and reads what comes back until weir closes it
/// or stays silent for a moment (a kept-alive connection, or a request weir waits to
/// see the rest of); then closes. The sending side is not closed first: weir (as Envoy
/// and nginx) takes a client's FIN for a client that left.
async fn send(weir: &Weir, bytes: &[u8]) {
    let Ok(mut stream) = TcpStream::connect(weir.listen).await else {
        return;
    };
    let _ = stream.write_all(bytes).await;
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
    }
}

/// The requests weir forwarded (an endpoint answered them) among its access-log lines
/// from `from` on, as the backend should have seen them; and how many lines there were.
fn forwarded(weir: &Weir, from: usize, with_body: bool) -> (Vec<Seen>, usize) {
    let logs = weir.access_logs();
    let seen = logs[from.min(logs.len())..]
        .iter()
        .filter(|l| l["endpoint"].as_str().is_some_and(|e| e != "-"))
        .map(|l| Seen {
            status: l["status"].as_u64().unwrap_or(0) as u16,
            method: l["method"].as_str().unwrap_or("").to_owned(),
            target: l["path"].as_str().unwrap_or("").to_owned(),
            body: with_body.then(|| l["request_bytes"].as_u64().unwrap_or(0)),
        })
        .collect();
    (seen, logs.len())
}

/// Waits until weir's access log stops growing (its lines are written by a thread of
/// their own) and returns its length.
async fn settled(weir: &Weir) -> usize {
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let now = weir.access_logs().len();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Runs every case against one backend; the failures, one line each.
async fn run_all(backend: &dyn Backend, cases: &[Case]) -> Vec<String> {
    let weir = Weir::start(&format!(
        "access_log: true\nrequest_header_timeout: 2s\nrequest_timeout: 3s\n\
         destinations:\n  backend: {{ endpoints: [\"{}\"] }}\n\
         routes:\n  - name: all\n    split: {{ backend: 1 }}\n",
        backend.addr()
    ))
    .await;
    let raw = backend.name() == "raw";
    let mut failures = Vec::new();
    let mut logged = 0;
    for case in cases {
        send(&weir, &case.bytes).await;
        let total = settled(&weir).await;
        if std::env::var("WEIR_SMUGGLING_DEBUG").is_ok() {
            eprintln!("{}: {:?}", case.name, weir.logs());
        }
        let (mut expected, _) = forwarded(&weir, logged, raw);
        logged = total;
        let mut seen: Vec<Seen> = backend.take();
        let garbage = backend.take_garbage();
        // nginx and HAProxy log requests that never completed, with a 4xx; weir logs
        // those with no endpoint. Only what both answered is compared there.
        if !raw {
            seen.retain(|s| s.status < 400);
            expected.retain(|s| s.status < 400);
        }
        expected.sort();
        seen.sort();
        if expected != seen || !garbage.is_empty() {
            failures.push(format!(
                "{}/{}: weir forwarded {expected:?}, the backend answered {seen:?}{}",
                backend.name(),
                case.name,
                if garbage.is_empty() {
                    String::new()
                } else {
                    format!(", and could not read {garbage:?}")
                }
            ));
        }
    }
    if weir.logs().iter().any(|l| l.contains("panicked")) {
        failures.push(format!("{}: weir panicked", backend.name()));
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_backend_sees_exactly_what_weir_forwarded() {
    within(300, async {
        let cases = corpus();
        assert!(
            std::env::var("WEIR_SMUGGLING_CASE").is_ok() || cases.len() >= 100,
            "the corpus has {} cases",
            cases.len()
        );
        let dir = TempDir::new("smuggling");
        // nginx's workers may run as another user and need the directory.
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777));
        }
        let mut backends: Vec<Arc<dyn Backend>> = vec![Arc::new(backends::Raw::start().await)];
        match backends::nginx(dir.path()).await {
            Some(nginx) => backends.push(Arc::new(nginx)),
            None => eprintln!("nginx is not installed: its run is skipped"),
        }
        match backends::haproxy(dir.path()).await {
            Some(haproxy) => backends.push(Arc::new(haproxy)),
            None => eprintln!("haproxy is not installed: its run is skipped"),
        }
        // The backends' passes run side by side, each with a weir of its own.
        let cases = Arc::new(cases);
        let runs: Vec<_> = backends
            .iter()
            .map(|b| {
                let (b, cases) = (b.clone(), cases.clone());
                tokio::spawn(async move { run_all(b.as_ref(), &cases).await })
            })
            .collect();
        let mut failures = Vec::new();
        for run in runs {
            failures.extend(run.await.expect("a backend's pass"));
        }
        let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
        eprintln!("{} cases against {names:?}", cases.len());
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    })
    .await;
}

#[test]
fn the_corpus_reads() {
    let cases = corpus();
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    assert_eq!(unescape(r"a\r\n\x00\\"), b"a\r\n\0\\");
}
