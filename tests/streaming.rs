//! Bodies stream through weir both ways and are never buffered whole: a 1 GiB upload
//! and a 256 MiB download keep weir's resident memory within 50 MiB of where it was.
//! The test bodies are generated chunk by chunk; nothing allocates them whole. Each
//! case runs over HTTP/1.1 and h2c clients.

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use support::*;

const MIB: u64 = 1 << 20;
const UPLOAD: u64 = 1024 * MIB;
const DOWNLOAD: u64 = 256 * MIB;
/// How much weir's peak RSS may grow over its idle RSS.
const RSS_BUDGET_KIB: u64 = 50 * 1024;

/// `total` bytes in 64 KiB frames, all sharing one buffer.
struct Generated {
    chunk: Bytes,
    left: u64,
    exact: bool,
}

impl Generated {
    fn new(total: u64, exact: bool) -> Self {
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 253) as u8).collect();
        Generated {
            chunk: Bytes::from(chunk),
            left: total,
            exact,
        }
    }
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.left)
        } else {
            SizeHint::default()
        }
    }
}

async fn weir_to_synthetic(profile: weir::synthetic::Profile) -> Weir {
    let upstream = synthetic_with(profile).await;
    let weir = Weir::start(&format!(
        r#"
destinations:
  sink: {{ endpoints: ["{upstream}"] }}
routes:
  - name: all
    split: {{ sink: 1 }}
"#
    ))
    .await;
    // Warm up: the first request sets up pools, buffers and the log writer.
    let got = get(&h1_client(), &weir.url("/warmup")).await;
    assert_eq!(got.status, 200);
    weir
}

fn assert_rss_flat(weir: &Weir, idle_kib: u64, what: &str) {
    let peak = weir.proc_status_kib("VmHWM");
    let now = weir.proc_status_kib("VmRSS");
    eprintln!("{what}: weir RSS idle {idle_kib} KiB, peak {peak} KiB, now {now} KiB");
    assert!(
        peak.saturating_sub(idle_kib) < RSS_BUDGET_KIB,
        "{what}: weir's peak RSS grew by {} KiB (idle {idle_kib} KiB, peak {peak} KiB)",
        peak - idle_kib
    );
}

/// 1 GiB uploaded over HTTP/1.1 (with a Content-Length) and 256 MiB over HTTP/2
/// (flow-controlled streams, without a length) reach the upstream byte for byte, and
/// weir's memory stays flat. (The sizes differ only to keep the test short: the
/// length-framed 1 GiB is the case that would show buffering soonest.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_uploads_stream() {
    within(300, async {
        let weir = weir_to_synthetic(weir::synthetic::Profile::new("sink")).await;
        let idle = weir.proc_status_kib("VmRSS");
        for (proto, size, exact) in [(Proto::Http1, UPLOAD, true), (Proto::H2c, 256 * MIB, false)] {
            let started = std::time::Instant::now();
            let req = Request::post(weir.url(&format!("/upload-{}", proto.tag())))
                .body(Generated::new(size, exact).boxed())
                .unwrap();
            let got = fetch(&proto.client(), req).await;
            assert_eq!(got.status, 200, "{proto}: {}", got.text());
            assert_eq!(
                got.header("x-weir-request-bytes"),
                Some(&*size.to_string()),
                "{proto}"
            );
            eprintln!(
                "{} MiB {proto} upload took {:?}",
                size / MIB,
                started.elapsed()
            );
        }
        assert_rss_flat(&weir, idle, "uploads");
    })
    .await;
}

/// A 256 MiB response streams to the client over HTTP/1.1 and HTTP/2, read frame by
/// frame, with weir's memory flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_download_streams() {
    within(300, async {
        let mut profile = weir::synthetic::Profile::new("source");
        profile.body_bytes = Some(DOWNLOAD as usize);
        let weir = weir_to_synthetic(profile).await;
        let idle = weir.proc_status_kib("VmRSS");
        for proto in Proto::ALL {
            let started = std::time::Instant::now();
            let resp = proto
                .client()
                .request(Request::get(weir.url("/download")).body(empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{proto}");
            let mut body = resp.into_body();
            let mut received = 0u64;
            let mut last = 0u8;
            while let Some(frame) = body.frame().await {
                let frame = frame.unwrap();
                if let Some(data) = frame.data_ref() {
                    received += data.len() as u64;
                    last = *data.last().unwrap_or(&last);
                }
            }
            assert_eq!(received, DOWNLOAD, "{proto}");
            assert_eq!(
                last, b'\n',
                "{proto}: the synthetic body ends with a newline"
            );
            eprintln!("256 MiB {proto} download took {:?}", started.elapsed());
        }
        assert_rss_flat(&weir, idle, "downloads");
    })
    .await;
}

/// A client that stops reading a large download and hangs up: weir logs the status
/// it sent with `DC` and the bytes that went out, and stops reading the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_leaving_a_download_is_logged_dc() {
    within(120, async {
        let mut profile = weir::synthetic::Profile::new("source");
        profile.body_bytes = Some(DOWNLOAD as usize);
        let upstream = synthetic_with(profile).await;
        let weir = Weir::start(&format!(
            "access_log: true\ndestinations:\n  source: {{ endpoints: [\"{upstream}\"] }}\n\
             routes:\n  - name: all\n    split: {{ source: 1 }}\n"
        ))
        .await;
        for proto in Proto::ALL {
            let path = format!("/leave-{}", proto.tag());
            let client = proto.client();
            let resp = client
                .request(Request::get(weir.url(&path)).body(empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{proto}");
            let mut body = resp.into_body();
            let mut received = 0u64;
            while received < 4 * MIB {
                let frame = body.frame().await.expect("more body").unwrap();
                received += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            drop(body);
            drop(client);
            let line = weir
                .wait_access(&path, |v| v["path"] == path.as_str())
                .await;
            assert_eq!(line["status"], 200, "{proto}: {line}");
            assert_eq!(line["flags"], "DC", "{proto}: {line}");
            assert_eq!(line["protocol"], proto.logged(), "{proto}: {line}");
            let sent = line["response_bytes"].as_u64().unwrap();
            assert!(sent >= received && sent < DOWNLOAD, "{proto}: {line}");
        }
    })
    .await;
}

/// Backpressure: a client that stops reading a download, and an upstream that stops
/// reading an upload, make weir stop too instead of buffering what keeps coming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_hold_weir_back_instead_of_filling_its_memory() {
    within(120, async {
        // The upstream reads 16 MiB of each upload, pauses 1.5 s, then reads the rest.
        let paused = std::sync::Arc::new(tokio::sync::Notify::new());
        let upload_sink = {
            let paused = paused.clone();
            serve(false, move |req: http::Request<hyper::body::Incoming>| {
                let paused = paused.clone();
                async move {
                    let mut body = req.into_body();
                    let mut received = 0u64;
                    let mut stalled = false;
                    while let Some(frame) = body.frame().await {
                        received += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
                        if !stalled && received >= 16 * MIB {
                            stalled = true;
                            paused.notify_one();
                            tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
                        }
                    }
                    http::Response::new(server_body(received.to_string()))
                }
            })
            .await
        };
        let mut profile = weir::synthetic::Profile::new("source");
        profile.body_bytes = Some(DOWNLOAD as usize);
        let source = synthetic_with(profile).await;
        let weir = Weir::start(&format!(
            "destinations:\n  sink: {{ endpoints: [\"{upload_sink}\"] }}\n  \
             source: {{ endpoints: [\"{source}\"] }}\n\
             routes:\n  - name: up\n    match: {{ method: POST }}\n    split: {{ sink: 1 }}\n  \
             - name: down\n    split: {{ source: 1 }}\n"
        ))
        .await;
        let got = get(&h1_client(), &weir.url("/warmup")).await;
        assert_eq!(got.status, 200);
        let idle = weir.proc_status_kib("VmRSS");

        // Upload 256 MiB into the pausing upstream; look at weir during the pause.
        for proto in Proto::ALL {
            let req = Request::post(weir.url("/upload"))
                .body(Generated::new(256 * MIB, false).boxed())
                .unwrap();
            let client = proto.client();
            let upload = tokio::spawn(async move { fetch(&client, req).await });
            paused.notified().await;
            tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
            assert_rss_flat(
                &weir,
                idle,
                &format!("{proto}: upload paused by the upstream"),
            );
            let got = upload.await.unwrap();
            assert_eq!(got.status, 200, "{proto}");
            assert_eq!(got.text(), (256 * MIB).to_string(), "{proto}");
        }

        // Download 256 MiB, stop reading after 16 MiB for a second.
        for proto in Proto::ALL {
            let resp = proto
                .client()
                .request(Request::get(weir.url("/download")).body(empty()).unwrap())
                .await
                .unwrap();
            let mut body = resp.into_body();
            let mut received = 0u64;
            let mut paused_once = false;
            while let Some(frame) = body.frame().await {
                received += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
                if !paused_once && received >= 16 * MIB {
                    paused_once = true;
                    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
                    assert_rss_flat(
                        &weir,
                        idle,
                        &format!("{proto}: download paused by the client"),
                    );
                }
            }
            assert_eq!(received, DOWNLOAD, "{proto}");
        }
    })
    .await;
}
