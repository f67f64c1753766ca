//! The shared plaintext port: HTTP/2 prefaces that go wrong get HTTP/2's answer (a
//! GOAWAY with PROTOCOL_ERROR, h2spec's "invalid connection preface" case) and are
//! never forwarded; the SETTINGS weir advertises carry its stream limit; and telling
//! the protocols apart reads the first bytes, so a client that stalls is timed out and
//! one that closes is released at once, without weir spinning on either.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::*;

/// GOAWAY, stream 0, last stream 0, PROTOCOL_ERROR.
const GOAWAY_PROTOCOL_ERROR: [u8; 17] = [
    0x00, 0x00, 0x08, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01,
];

#[tokio::test]
async fn bad_http2_prefaces_get_goaway_protocol_error_and_are_not_forwarded() {
    within(60, async {
        let recorder = recording_upstream().await;
        let weir = weir_to(recorder.addr, "").await;
        for preface in [
            &b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"[..],
            b"PRI * HTTP/1.1\r\n\r\n",
            b"PRI / HTTP/1.1\r\nHost: shop\r\n\r\n",
        ] {
            let what = String::from_utf8_lossy(preface);
            let answer = raw_exchange(weir.listen, preface)
                .await
                .unwrap_or_else(|e| panic!("{what:?}: not closed: {e}"));
            assert_eq!(
                answer,
                GOAWAY_PROTOCOL_ERROR,
                "{what:?}: the answer was {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(recorder.connections(), 0, "something was forwarded");
        assert!(weir.access_logs().is_empty(), "{:?}", weir.access_logs());
    })
    .await;
}

#[tokio::test]
async fn settings_advertise_the_stream_limit() {
    within(60, async {
        let upstream = synthetic("app").await;
        for (extra, expected) in [("", 100), ("http2_max_concurrent_streams: 7", 7)] {
            let weir = weir_to(upstream, extra).await;
            let (_stream, settings) = frames::open(weir.listen).await;
            let advertised = settings
                .iter()
                .find(|(id, _)| *id == frames::MAX_CONCURRENT_STREAMS)
                .map(|(_, v)| *v);
            assert_eq!(
                advertised,
                Some(expected),
                "config {extra:?}: SETTINGS {settings:?}"
            );
        }
    })
    .await;
}

/// A client that ignores the advertised limit: the stream over it is refused
/// (REFUSED_STREAM), the 100 before it are served.
#[tokio::test]
async fn streams_over_the_limit_are_refused() {
    within(60, async {
        let mut profile = weir::synthetic::Profile::new("app");
        profile.latency = weir::synthetic::LatencyRange::fixed(Duration::from_secs(2));
        let upstream = synthetic_with(profile).await;
        let weir = weir_to(upstream, "access_log: false").await;
        let (mut stream, _) = frames::open(weir.listen).await;
        // Let weir take our SETTINGS ack (its limit applies from then on).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut burst = Vec::new();
        for i in 0..101u32 {
            burst.extend(frames::frame(
                frames::HEADERS,
                frames::END_STREAM_HEADERS,
                1 + 2 * i,
                frames::GET_SHOP,
            ));
        }
        stream.write_all(&burst).await.unwrap();
        // Everything weir sends within a second (the upstream answers after 2 s).
        let mut resets = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some((kind, _, id, payload)) = frames::read(&mut stream).await {
                if kind == frames::RST_STREAM {
                    let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    resets.push((id, code));
                }
            }
        })
        .await;
        assert_eq!(
            resets,
            [(201, frames::REFUSED_STREAM)],
            "RST_STREAM frames (stream, code)"
        );
        let json = connections(&weir).await;
        assert_eq!(json["requests_active"], 100, "{json}");
    })
    .await;
}

#[tokio::test]
async fn a_client_that_sends_one_byte_and_stalls_is_closed_after_the_header_timeout() {
    within(60, async {
        let upstream = synthetic("app").await;
        let weir = weir_to(upstream, "request_header_timeout: 1s\nidle_timeout: 60s").await;
        let mut stream = TcpStream::connect(weir.listen).await.unwrap();
        stream.write_all(b"P").await.unwrap();
        let start = Instant::now();
        let (_, closed) = read_until_close(&mut stream, Duration::from_secs(10)).await;
        let took = start.elapsed();
        assert!(closed, "still open after 10 s");
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(3),
            "closed after {took:?}, not about request_header_timeout (1s)"
        );
    })
    .await;
}

/// The CPU time (user + system) the process has used, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Duration::from_millis(ticks * 10)
}

#[tokio::test]
async fn stalled_and_closed_one_byte_connections_neither_spin_nor_linger() {
    within(90, async {
        let upstream = synthetic("app").await;
        // The idle timeout long, the request-header timeout at its default (10 s): only
        // reading the first bytes (not a timeout) can release them in time.
        let weir = weir_to(upstream, "idle_timeout: 60s").await;
        let mut clients = Vec::new();
        for _ in 0..200 {
            let mut stream = TcpStream::connect(weir.listen).await.unwrap();
            stream.write_all(b"P").await.unwrap();
            clients.push(stream);
        }
        wait_connections(
            &weir,
            "200 connections counted",
            Duration::from_secs(10),
            |j| downstream_active(j) == 200,
        )
        .await;
        let before = cpu_time(weir.pid());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let used = cpu_time(weir.pid()) - before;
        eprintln!("200 stalled one-byte connections: weir used {used:?} of CPU in 2 s");
        assert!(
            used < Duration::from_millis(150),
            "200 stalled one-byte connections cost weir {used:?} of CPU in 2 s"
        );
        drop(clients);
        let took = wait_connections(
            &weir,
            "closed one-byte connections released",
            Duration::from_secs(5),
            |j| downstream_active(j) == 0,
        )
        .await;
        assert!(took < Duration::from_secs(2), "released after {took:?}");
        // weir serves normally after it.
        let got = http_get(weir.listen, Proto::Http1, "/").await.unwrap();
        assert_eq!(got.status, 200);
    })
    .await;
}
