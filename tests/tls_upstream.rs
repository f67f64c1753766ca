//! TLS from weir to its upstreams, end to end against the real binary: verification
//! against `ca` and `server_name` (or the endpoint's host), the client certificate,
//! ALPN for HTTP/2 destinations, and reloading the client certificate.

mod tls_support;

use std::net::SocketAddr;
use std::time::Duration;

use tls_support::{Pki, TempDir, Weir, echo, http_get, upstream_tls, within};

/// A config with one route per destination, each matched by its path prefix
/// (`/NAME/...`). `destinations` are `(name, endpoint, extra keys)`.
fn routed_config(destinations: &[(&str, SocketAddr, &str)]) -> String {
    let mut text = String::from(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nworkers: 1\naccess_log: true\ndestinations:\n",
    );
    for (name, addr, extra) in destinations {
        text.push_str(&format!("  {name}: {{ endpoints: [\"{addr}\"]{extra} }}\n"));
    }
    text.push_str("routes:\n");
    for (name, _, _) in destinations {
        text.push_str(&format!(
            "  - name: {name}\n    match: {{ path: {{ prefix: /{name}/ }} }}\n    split: {{ {name}: 100 }}\n"
        ));
    }
    text
}

#[tokio::test]
async fn upstream_tls_verifies_the_upstream_and_presents_the_client_certificate() {
    within(60, async {
        let dir = TempDir::new("upstream");
        let pki = Pki::new("weir test CA");
        dir.write("ca.pem", &pki.ca_pem());
        dir.write("other-ca.pem", &Pki::new("some other CA").ca_pem());
        let sidecar = pki.client("weir-sidecar");
        dir.write("client.pem", &sidecar.cert);
        dir.write("client-key.pem", &sidecar.key);
        let server = pki.server(7);
        // One upstream without client authentication, one requiring a client certificate.
        let open = echo(Some(upstream_tls(&server, None))).await;
        let mutual = echo(Some(upstream_tls(&server, Some(&pki.ca_pem())))).await;
        let cfg = dir.write(
            "weir.yaml",
            &routed_config(&[
                (
                    "named",
                    open.addr,
                    ", tls: { ca: ca.pem, server_name: localhost }",
                ),
                ("by-ip", open.addr, ", tls: { ca: ca.pem }"),
                ("h2", open.addr, ", protocol: http2, tls: { ca: ca.pem }"),
                (
                    "wrong-name",
                    open.addr,
                    ", tls: { ca: ca.pem, server_name: shop.internal }",
                ),
                ("other-ca", open.addr, ", tls: { ca: other-ca.pem }"),
                (
                    "mtls",
                    mutual.addr,
                    ", tls: { ca: ca.pem, cert: client.pem, key: client-key.pem }",
                ),
                ("no-cert", mutual.addr, ", tls: { ca: ca.pem }"),
            ]),
        );
        let weir = Weir::start(&cfg);

        let named = http_get(weir.listen, false, "/named/x")
            .await
            .expect("request");
        assert_eq!(named.status, 200, "{named:?}");
        assert_eq!(named.header("x-seen-alpn"), "http/1.1");
        assert_eq!(named.header("x-seen-client"), "-");
        assert_eq!(named.header("x-seen-forwarded-proto"), "http");

        // Without `server_name`, the endpoint's host (here an IP address) is verified.
        let by_ip = http_get(weir.listen, false, "/by-ip/x")
            .await
            .expect("request");
        assert_eq!(by_ip.status, 200, "{by_ip:?}");

        let h2 = http_get(weir.listen, false, "/h2/x")
            .await
            .expect("request");
        assert_eq!(h2.status, 200, "{h2:?}");
        assert_eq!(h2.header("x-seen-alpn"), "h2");
        assert_eq!(h2.header("x-seen-version"), "HTTP/2.0");

        // A certificate that does not carry the name, or that another CA signed: the
        // handshake fails, so the endpoint cannot be connected to.
        for path in ["/wrong-name/x", "/other-ca/x"] {
            let reply = http_get(weir.listen, false, path).await.expect("request");
            assert_eq!(reply.status, 503, "{path}: {reply:?}");
            assert_eq!(reply.header("x-weir-response-flags"), "UF");
        }

        let mtls = http_get(weir.listen, false, "/mtls/x")
            .await
            .expect("request");
        assert_eq!(mtls.status, 200, "{mtls:?}");
        assert_eq!(mtls.header("x-seen-client"), "CN=weir-sidecar,O=weir-tests");

        // An upstream that requires a client certificate refuses weir without one.
        let refused = http_get(weir.listen, false, "/no-cert/x")
            .await
            .expect("request");
        assert_ne!(refused.status, 200, "{refused:?}");

        // The client certificate is reloaded: new upstream connections present the new
        // one (the echo upstream closes each HTTP/1.1 connection after its response).
        let renewed = pki.client("weir-sidecar-renewed");
        dir.replace("client-key.pem", &renewed.key);
        dir.replace("client.pem", &renewed.cert);
        let mut seen = String::new();
        for _ in 0..100 {
            let reply = http_get(weir.listen, false, "/mtls/y")
                .await
                .expect("request");
            seen = reply.header("x-seen-client").to_owned();
            if seen.contains("renewed") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            seen,
            "CN=weir-sidecar-renewed,O=weir-tests",
            "{}",
            weir.logs()
        );
    })
    .await;
}
