//! TLS on weir's listener, end to end against the real binary: ALPN, strict and
//! permissive mutual TLS, the connection's TLS facts in the access log and
//! `x-forwarded-proto`, and certificate hot reload.

mod tls_support;

use std::time::Duration;

use tls_support::{
    Pki, TempDir, Weir, config, connector, echo, http_get, https_get, open_tls, refusal, within,
};

/// Writes the CA, a server certificate (serial 1) and a client certificate into `dir`.
fn write_pki(dir: &TempDir, pki: &Pki) {
    dir.write("ca.pem", &pki.ca_pem());
    let server = pki.server(1);
    dir.write("server.pem", &server.cert);
    dir.write("server-key.pem", &server.key);
}

#[tokio::test]
async fn https_serves_the_protocol_alpn_chose() {
    within(60, async {
        let dir = TempDir::new("alpn");
        let pki = Pki::new("weir test CA");
        write_pki(&dir, &pki);
        let upstream = echo(None).await;
        let cfg = dir.write(
            "weir.yaml",
            &config(
                "{ cert: server.pem, key: server-key.pem }",
                upstream.addr,
                "",
            ),
        );
        let weir = Weir::start(&cfg);
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
        assert_eq!(reply.header("x-seen-forwarded-proto"), "https");

        let (reply, hs) = https_get(weir.listen, &connector(&ca, None, &["http/1.1"]), "/b")
            .await
            .expect("http/1.1 over TLS");
        assert_eq!(hs.alpn.as_deref(), Some("http/1.1"));
        assert_eq!(reply.version, http::Version::HTTP_11);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-seen-forwarded-proto"), "https");

        // No ALPN at all: HTTP/1.1.
        let (reply, hs) = https_get(weir.listen, &connector(&ca, None, &[]), "/c")
            .await
            .expect("TLS without ALPN");
        assert_eq!(hs.alpn, None);
        assert_eq!(reply.version, http::Version::HTTP_11);

        // TLS 1.2 is accepted too.
        let tls12 = {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(tls_support::certs(&ca).remove(0)).unwrap();
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
        let line = weir.wait_for_log(&["path=/d", "tls=\"TLSv1.2\""], 5).await;
        assert!(
            line.is_some(),
            "access log has the TLS version:\n{}",
            weir.logs()
        );

        // A plaintext client on a strict TLS port is closed on.
        assert!(http_get(weir.listen, false, "/plain").await.is_err());
    })
    .await;
}

#[tokio::test]
async fn strict_mtls_refuses_clients_without_a_valid_certificate() {
    within(60, async {
        let dir = TempDir::new("strict");
        let pki = Pki::new("weir test CA");
        write_pki(&dir, &pki);
        let upstream = echo(None).await;
        let cfg = dir.write(
            "weir.yaml",
            &config(
                "{ cert: server.pem, key: server-key.pem, client_ca: ca.pem }",
                upstream.addr,
                "",
            ),
        );
        let weir = Weir::start(&cfg);
        let ca = pki.ca_pem();
        let alpn = ["h2", "http/1.1"];

        let client = pki.client("shop-frontend");
        let (reply, _) = https_get(weir.listen, &connector(&ca, Some(&client), &alpn), "/ok")
            .await
            .expect("a client with a valid certificate is served");
        assert_eq!(reply.status, 200);
        let line = weir
            .wait_for_log(
                &[
                    "path=/ok",
                    "client_subject=\"CN=shop-frontend,O=weir-tests\"",
                ],
                5,
            )
            .await;
        assert!(
            line.is_some(),
            "access log has the subject:\n{}",
            weir.logs()
        );

        let none = refusal(weir.listen, &connector(&ca, None, &["http/1.1"])).await;
        let why = none.expect("a client without a certificate is refused");
        assert!(why.contains("CertificateRequired"), "{why}");

        let other = Pki::new("some other CA").client("intruder");
        let wrong = refusal(weir.listen, &connector(&ca, Some(&other), &["http/1.1"])).await;
        let why = wrong.expect("a certificate from another CA is refused");
        assert!(why.contains("alert"), "{why}");

        assert!(http_get(weir.listen, false, "/plain").await.is_err());
        let (reply, _) = https_get(weir.listen, &connector(&ca, Some(&client), &alpn), "/again")
            .await
            .expect("still serving verified clients");
        assert_eq!(reply.status, 200);
        // Only verified requests reached the upstream.
        assert!(!weir.logs().contains("path=/refused"), "{}", weir.logs());
    })
    .await;
}

#[tokio::test]
async fn permissive_serves_plaintext_and_mtls_on_one_port() {
    within(60, async {
        let dir = TempDir::new("permissive");
        let pki = Pki::new("weir test CA");
        write_pki(&dir, &pki);
        let upstream = echo(None).await;
        let cfg = dir.write(
            "weir.yaml",
            &config(
                "{ cert: server.pem, key: server-key.pem, client_ca: ca.pem, mode: permissive }",
                upstream.addr,
                "",
            ),
        );
        let weir = Weir::start(&cfg);
        let ca = pki.ca_pem();
        let alpn = ["h2", "http/1.1"];

        let plain = http_get(weir.listen, false, "/plain-h1")
            .await
            .expect("plaintext h1");
        assert_eq!(plain.status, 200);
        assert_eq!(plain.header("x-seen-forwarded-proto"), "http");
        let h2c = http_get(weir.listen, true, "/plain-h2c")
            .await
            .expect("plaintext h2c");
        assert_eq!(h2c.status, 200);
        assert_eq!(h2c.version, http::Version::HTTP_2);

        let client = pki.client("mesh-peer");
        let (mtls, hs) = https_get(weir.listen, &connector(&ca, Some(&client), &alpn), "/mtls")
            .await
            .expect("mTLS");
        assert_eq!(mtls.status, 200);
        assert_eq!(hs.alpn.as_deref(), Some("h2"));
        assert_eq!(mtls.header("x-seen-forwarded-proto"), "https");

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
            ("/mtls", "TLSv1.3", "CN=mesh-peer,O=weir-tests"),
            ("/tls-anon", "TLSv1.3", "-"),
        ] {
            let tls = format!("tls=\"{tls}\"");
            let subject = format!("client_subject=\"{subject}\"");
            let line = weir
                .wait_for_log(&[&format!("path={path} "), &tls, &subject], 5)
                .await;
            assert!(line.is_some(), "{path} {tls} {subject}:\n{}", weir.logs());
        }
    })
    .await;
}

#[tokio::test]
async fn certificate_reload_reaches_new_connections_and_keeps_open_ones() {
    within(90, async {
        let dir = TempDir::new("reload");
        let pki = Pki::new("weir test CA");
        write_pki(&dir, &pki);
        let upstream = echo(None).await;
        let cfg = dir.write(
            "weir.yaml",
            &config(
                "{ cert: server.pem, key: server-key.pem }",
                upstream.addr,
                "",
            ),
        );
        let weir = Weir::start(&cfg);
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
        assert!(
            weir.wait_for_log(&["TLS certificate reloaded", "serial=02"], 5)
                .await
                .is_some(),
            "{}",
            weir.logs()
        );

        // A bad certificate (expired) is refused and logged; the current one keeps serving.
        let expired = pki.leaf(
            tls_support::Usage::Server,
            "localhost",
            3,
            Some((2020, 2021)),
        );
        dir.replace("server-key.pem", &expired.key);
        dir.replace("server.pem", &expired.cert);
        let refused = weir
            .wait_for_log(&["refused the changed TLS files", "expired"], 10)
            .await;
        assert!(refused.is_some(), "{}", weir.logs());
        let (mut conn, hs) = open_tls(weir.listen, &tls).await.expect("still serving");
        assert_eq!(hs.server_serial, "02");
        assert_eq!(conn.get("/still").await.expect("request").status, 200);
        assert_eq!(open.get("/still-open").await.expect("request").status, 200);
    })
    .await;
}
