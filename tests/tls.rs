//! TLS on weir's listener, end to end against the real binary: ALPN, strict and
//! permissive mutual TLS, the connection's TLS facts in the access log and
//! `x-forwarded-proto`, and certificate hot reload.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;

/// A directory holding the CA and a server certificate (serial 1) with its key.
fn pki_dir(tag: &str, pki: &Pki) -> TempDir {
    let dir = TempDir::new(tag);
    dir.write("ca.pem", &pki.ca_pem());
    let server = pki.server(1);
    dir.write("server.pem", &server.cert);
    dir.write("server-key.pem", &server.key);
    dir
}

/// Starts weir (text logs, access log on, one worker) in `dir` with the listener's
/// `tls:` value and one route to `endpoint`.
async fn weir_in(dir: TempDir, listener_tls: &str, endpoint: SocketAddr) -> Weir {
    let yaml = format!(
        "workers: 1\naccess_log: true\ntls: {listener_tls}\n\
         destinations:\n  echo: {{ endpoints: [\"{endpoint}\"] }}\n\
         routes:\n  - name: all\n    split: {{ echo: 100 }}\n"
    );
    Weir::start_in(dir, &yaml, LogFormat::Text).await
}

/// How long an access-log line may trail its response.
const LOG_WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn https_serves_the_protocol_alpn_chose() {
    within(60, async {
        let pki = Pki::new("weir test CA");
        let upstream = tls_echo(None).await;
        let weir = weir_in(
            pki_dir("alpn", &pki),
            "{ cert: server.pem, key: server-key.pem }",
            upstream.addr,
        )
        .await;
        let ca = pki.ca_pem();

        let (reply, hs) = https_get(
            weir.listen,
            &connector(&ca, None, &["h2", "http/1.1"]),
            "/a",
        )
        .await
        .expect("h2 over TLS");
        assert_eq!(hs.alpn.as_deref(), Some("h2"));
        assert_eq!(reply.version, http::Version::HTTP_2);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("x-seen-forwarded-proto"), Some("https"));

        let (reply, hs) = https_get(weir.listen, &connector(&ca, None, &["http/1.1"]), "/b")
            .await
            .expect("http/1.1 over TLS");
        assert_eq!(hs.alpn.as_deref(), Some("http/1.1"));
        assert_eq!(reply.version, http::Version::HTTP_11);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-seen-forwarded-proto"), Some("https"));

        // No ALPN at all: HTTP/1.1.
        let (reply, hs) = https_get(weir.listen, &connector(&ca, None, &[]), "/c")
            .await
            .expect("TLS without ALPN");
        assert_eq!(hs.alpn, None);
        assert_eq!(reply.version, http::Version::HTTP_11);

        // TLS 1.2 is accepted too.
        let tls12 = {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(certs(&ca).remove(0)).unwrap();
            let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        };
        let (reply, hs) = https_get(weir.listen, &tls12, "/d").await.expect("TLS 1.2");
        assert_eq!(hs.version, Some(rustls::ProtocolVersion::TLSv1_2));
        assert_eq!(reply.status, 200);
        weir.wait_line_for(
            "the TLS version in the access log",
            LOG_WAIT,
            with_all(&["path=/d", "tls=\"TLSv1.2\""]),
        )
        .await;

        // A plaintext client on a strict TLS port is closed on.
        for proto in Proto::ALL {
            let plain = http_get(weir.listen, proto, "/plain").await;
            assert!(plain.is_err(), "{proto} in plaintext: {plain:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn strict_mtls_refuses_clients_without_a_valid_certificate() {
    within(60, async {
        let pki = Pki::new("weir test CA");
        let upstream = tls_echo(None).await;
        let weir = weir_in(
            pki_dir("strict", &pki),
            "{ cert: server.pem, key: server-key.pem, client_ca: ca.pem }",
            upstream.addr,
        )
        .await;
        let ca = pki.ca_pem();
        let alpn = ["h2", "http/1.1"];

        let client = pki.client("shop-frontend");
        let (reply, _) = https_get(weir.listen, &connector(&ca, Some(&client), &alpn), "/ok")
            .await
            .expect("a client with a valid certificate is served");
        assert_eq!(reply.status, 200);
        weir.wait_line_for(
            "the subject in the access log",
            LOG_WAIT,
            with_all(&[
                "path=/ok",
                "client_subject=\"CN=shop-frontend,O=weir-tests\"",
            ]),
        )
        .await;

        let none = refusal(weir.listen, &connector(&ca, None, &["http/1.1"])).await;
        let why = none.expect("a client without a certificate is refused");
        assert!(why.contains("CertificateRequired"), "{why}");

        let other = Pki::new("some other CA").client("intruder");
        let wrong = refusal(weir.listen, &connector(&ca, Some(&other), &["http/1.1"])).await;
        let why = wrong.expect("a certificate from another CA is refused");
        assert!(why.contains("alert"), "{why}");

        for proto in Proto::ALL {
            let plain = http_get(weir.listen, proto, "/plain").await;
            assert!(plain.is_err(), "{proto} in plaintext: {plain:?}");
        }
        let (reply, _) = https_get(weir.listen, &connector(&ca, Some(&client), &alpn), "/again")
            .await
            .expect("still serving verified clients");
        assert_eq!(reply.status, 200);
        // Only verified requests reached the upstream.
        let logs = weir.logs();
        assert!(
            !logs.iter().any(|l| l.contains("path=/refused")),
            "{}",
            logs.join("\n")
        );
    })
    .await;
}

#[tokio::test]
async fn permissive_serves_plaintext_and_mtls_on_one_port() {
    within(60, async {
        let pki = Pki::new("weir test CA");
        let upstream = tls_echo(None).await;
        let weir = weir_in(
            pki_dir("permissive", &pki),
            "{ cert: server.pem, key: server-key.pem, client_ca: ca.pem, mode: permissive }",
            upstream.addr,
        )
        .await;
        let ca = pki.ca_pem();
        let alpn = ["h2", "http/1.1"];

        for proto in Proto::ALL {
            let plain = http_get(weir.listen, proto, &format!("/plain-{}", proto.tag()))
                .await
                .unwrap_or_else(|e| panic!("plaintext {proto}: {e}"));
            assert_eq!(plain.status, 200, "{proto}");
            assert_eq!(plain.version, proto.version(), "{proto}");
            assert_eq!(
                plain.header("x-seen-forwarded-proto"),
                Some("http"),
                "{proto}"
            );
        }

        let client = pki.client("mesh-peer");
        let (mtls, hs) = https_get(weir.listen, &connector(&ca, Some(&client), &alpn), "/mtls")
            .await
            .expect("mTLS");
        assert_eq!(mtls.status, 200);
        assert_eq!(hs.alpn.as_deref(), Some("h2"));
        assert_eq!(mtls.header("x-seen-forwarded-proto"), Some("https"));

        let (anon, _) = https_get(weir.listen, &connector(&ca, None, &alpn), "/tls-anon")
            .await
            .expect("TLS without a client certificate is served in permissive mode");
        assert_eq!(anon.status, 200);

        // A certificate that is presented is verified.
        let other = Pki::new("some other CA").client("intruder");
        let wrong = refusal(weir.listen, &connector(&ca, Some(&other), &["http/1.1"])).await;
        let why = wrong.expect("a presented certificate from another CA is refused");
        assert!(why.contains("alert"), "{why}");

        for (path, tls, subject) in [
            ("/plain-h1", "-", "-"),
            ("/plain-h2c", "-", "-"),
            ("/mtls", "TLSv1.3", "CN=mesh-peer,O=weir-tests"),
            ("/tls-anon", "TLSv1.3", "-"),
        ] {
            let tls = format!("tls=\"{tls}\"");
            let subject = format!("client_subject=\"{subject}\"");
            let path = format!("path={path} ");
            weir.wait_line_for(
                &format!("{path} {tls} {subject}"),
                LOG_WAIT,
                with_all(&[&path, &tls, &subject]),
            )
            .await;
        }
    })
    .await;
}

#[tokio::test]
async fn certificate_reload_reaches_new_connections_and_keeps_open_ones() {
    within(90, async {
        let pki = Pki::new("weir test CA");
        let upstream = tls_echo(None).await;
        let weir = weir_in(
            pki_dir("reload", &pki),
            "{ cert: server.pem, key: server-key.pem }",
            upstream.addr,
        )
        .await;
        let dir = weir.dir();
        let tls = connector(&pki.ca_pem(), None, &["http/1.1"]);

        let (mut open, hs) = open_tls(weir.listen, &tls).await.expect("first connection");
        assert_eq!(hs.server_serial, "01");
        assert_eq!(open.get("/before").await.expect("request").status, 200);

        // Key first, then the certificate, each replaced atomically: between the two
        // the pair does not match, which must be refused without harm.
        let next = pki.server(2);
        dir.replace("server-key.pem", &next.key);
        dir.replace("server.pem", &next.cert);
        let mut seen = String::new();
        for _ in 0..100 {
            let (_, hs) = open_tls(weir.listen, &tls).await.expect("new connection");
            seen = hs.server_serial;
            if seen == "02" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seen, "02", "new connections get the new certificate");
        let reply = open
            .get("/after")
            .await
            .expect("the open connection still works");
        assert_eq!(reply.status, 200);
        weir.wait_line_for(
            "the reload",
            Duration::from_secs(5),
            with_all(&["TLS certificate reloaded", "serial=02"]),
        )
        .await;

        // A bad certificate (expired) is refused and logged; the current one keeps serving.
        let expired = pki.leaf(Usage::Server, "localhost", 3, Some((2020, 2021)));
        dir.replace("server-key.pem", &expired.key);
        dir.replace("server.pem", &expired.cert);
        weir.wait_line_for(
            "the refusal",
            Duration::from_secs(10),
            with_all(&["refused the changed TLS files", "expired"]),
        )
        .await;
        let (mut conn, hs) = open_tls(weir.listen, &tls).await.expect("still serving");
        assert_eq!(hs.server_serial, "02");
        assert_eq!(conn.get("/still").await.expect("request").status, 200);
        assert_eq!(open.get("/still-open").await.expect("request").status, 200);
    })
    .await;
}
