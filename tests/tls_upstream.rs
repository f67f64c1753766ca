//! TLS from weir to its upstreams, end to end against the real binary: verification
//! against `ca` and `server_name` (or the endpoint's host), the client certificate,
//! ALPN for HTTP/2 destinations, and reloading the client certificate; for HTTP/1.1
//! and h2c clients alike (the upstream side does not depend on the client's protocol).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;

/// A config with one route per destination, each matched by its path prefix
/// (`/NAME/...`). `destinations` are `(name, endpoint, extra keys)`.
fn routed_config(destinations: &[(&str, SocketAddr, &str)]) -> String {
    let mut text = String::from("workers: 1\naccess_log: true\ndestinations:\n");
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
        let open = tls_echo(Some(upstream_tls(&server, None))).await;
        let mutual = tls_echo(Some(upstream_tls(&server, Some(&pki.ca_pem())))).await;
        let config = routed_config(&[
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
        ]);
        let weir = Weir::start_in(dir, &config, LogFormat::Text).await;
        let get = |proto: Proto, path: &'static str| {
            let listen = weir.listen;
            async move {
                http_get(listen, proto, path)
                    .await
                    .unwrap_or_else(|e| panic!("{proto} {path}: {e}"))
            }
        };

        for proto in Proto::ALL {
            let named = get(proto, "/named/x").await;
            assert_eq!(named.status, 200, "{proto}: {named:?}");
            assert_eq!(named.header("x-seen-alpn"), Some("http/1.1"), "{proto}");
            assert_eq!(named.header("x-seen-client"), Some("-"), "{proto}");
            assert_eq!(
                named.header("x-seen-forwarded-proto"),
                Some("http"),
                "{proto}"
            );

            // Without `server_name`, the endpoint's host (here an IP address) is verified.
            let by_ip = get(proto, "/by-ip/x").await;
            assert_eq!(by_ip.status, 200, "{proto}: {by_ip:?}");

            let h2 = get(proto, "/h2/x").await;
            assert_eq!(h2.status, 200, "{proto}: {h2:?}");
            assert_eq!(h2.header("x-seen-alpn"), Some("h2"), "{proto}");
            assert_eq!(h2.header("x-seen-version"), Some("HTTP/2.0"), "{proto}");

            // A certificate that does not carry the name, or that another CA signed: the
            // handshake fails, so the endpoint cannot be connected to.
            for path in ["/wrong-name/x", "/other-ca/x"] {
                let reply = get(proto, path).await;
                assert_eq!(reply.status, 503, "{proto} {path}: {reply:?}");
                assert_eq!(
                    reply.header("x-weir-response-flags"),
                    Some("UF"),
                    "{proto} {path}"
                );
            }

            let mtls = get(proto, "/mtls/x").await;
            assert_eq!(mtls.status, 200, "{proto}: {mtls:?}");
            assert_eq!(
                mtls.header("x-seen-client"),
                Some("CN=weir-sidecar,O=weir-tests"),
                "{proto}"
            );

            // An upstream that requires a client certificate refuses weir without one.
            let refused = get(proto, "/no-cert/x").await;
            assert_ne!(refused.status, 200, "{proto}: {refused:?}");
        }

        // The client certificate is reloaded: new upstream connections present the new
        // one (the echo upstream closes each HTTP/1.1 connection after its response).
        let renewed = pki.client("weir-sidecar-renewed");
        weir.dir().replace("client-key.pem", &renewed.key);
        weir.dir().replace("client.pem", &renewed.cert);
        for proto in Proto::ALL {
            let mut seen = String::new();
            for _ in 0..100 {
                let reply = get(proto, "/mtls/y").await;
                seen = reply.header("x-seen-client").unwrap_or_default().to_owned();
                if seen.contains("renewed") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(
                seen,
                "CN=weir-sidecar-renewed,O=weir-tests",
                "{proto}: {}",
                weir.logs().join("\n")
            );
        }
    })
    .await;
}
