//! Certificate and key mistakes a user can make, each refused by `weir check` (exit 1)
//! and at startup with `file:line:column: message` naming the config key and the file.

mod support;

use std::time::Duration;

use support::*;

/// The certificate files every case starts from, all valid.
fn valid_files(dir: &TempDir, pki: &Pki) {
    dir.write("ca.pem", &pki.ca_pem());
    let server = pki.server(1);
    dir.write("server.pem", &server.cert);
    dir.write("server-key.pem", &server.key);
    let client = pki.client("sidecar");
    dir.write("client.pem", &client.cert);
    dir.write("client-key.pem", &client.key);
}

/// A config whose `tls` block puts `cert` at 4:9, `key` at 5:8 and `client_ca` at 6:14,
/// and whose destination's `tls` puts `ca` at 11:11, `cert` at 12:13, `key` at 13:12.
fn config(
    cert: &str,
    key: &str,
    client_ca: &str,
    up_ca: &str,
    up_cert: &str,
    up_key: &str,
) -> String {
    format!(
        "listen: 127.0.0.1:0
admin: 127.0.0.1:0
tls:
  cert: {cert}
  key: {key}
  client_ca: {client_ca}
destinations:
  canary:
    endpoints: [\"127.0.0.1:9\"]
    tls:
      ca: {up_ca}
      cert: {up_cert}
      key: {up_key}
routes:
  - name: all
    split: {{ canary: 100 }}
"
    )
}

fn valid_config() -> String {
    config(
        "server.pem",
        "server-key.pem",
        "ca.pem",
        "ca.pem",
        "client.pem",
        "client-key.pem",
    )
}

/// Runs `weir check` and asserts exit 1 with each of `expected` in stderr: a
/// `line:column: message` right after the config's path, or any other text anywhere.
fn refused(dir: &TempDir, text: &str, expected: &[&str]) -> String {
    let cfg = dir.write("weir.yaml", text);
    let (code, stderr) = check(&cfg, &[]);
    assert_eq!(code, 1, "weir check should refuse it:\n{stderr}");
    for want in expected {
        // `line:column: ...` follows the config's path; anything else is just a substring.
        let want = if want.starts_with(|c: char| c.is_ascii_digit()) {
            format!("{}:{want}", cfg.display())
        } else {
            (*want).to_owned()
        };
        assert!(stderr.contains(&want), "expected `{want}` in:\n{stderr}");
    }
    stderr
}

#[test]
fn a_valid_config_passes() {
    let dir = TempDir::new("check-ok");
    valid_files(&dir, &Pki::new("weir test CA"));
    let cfg = dir.write("weir.yaml", &valid_config());
    let (code, stderr) = check(&cfg, &[]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn missing_and_unreadable_files_are_named() {
    let dir = TempDir::new("check-missing");
    valid_files(&dir, &Pki::new("weir test CA"));
    let missing = dir.path().join("nope.pem");
    let stderr = refused(
        &dir,
        &config(
            "nope.pem",
            "server-key.pem",
            "ca.pem",
            "missing-ca.pem",
            "client.pem",
            "client-key.pem",
        ),
        &[
            &format!(
                "4:9: `tls.cert`: {}: cannot read it: No such file or directory",
                missing.display()
            ),
            "11:11: destination `canary`: `tls.ca`: ",
        ],
    );
    assert!(
        stderr.contains("missing-ca.pem: cannot read it"),
        "{stderr}"
    );

    // A directory where a file should be (permissions cannot make a file unreadable to
    // root, which the tests may run as).
    std::fs::create_dir_all(dir.path().join("certs-dir")).unwrap();
    refused(
        &dir,
        &config(
            "server.pem",
            "certs-dir",
            "ca.pem",
            "ca.pem",
            "client.pem",
            "client-key.pem",
        ),
        &["5:8: `tls.key`: ", "certs-dir: cannot read it"],
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate() {
    let dir = TempDir::new("check-mismatch");
    let pki = Pki::new("weir test CA");
    valid_files(&dir, &pki);
    dir.write("other-key.pem", &pki.server(2).key);
    let key = dir.path().join("other-key.pem");
    let cert = dir.path().join("server.pem");
    refused(
        &dir,
        &config(
            "server.pem",
            "other-key.pem",
            "ca.pem",
            "ca.pem",
            "client.pem",
            "other-key.pem",
        ),
        &[
            &format!(
                "5:8: `tls.key`: the private key in {} does not match the certificate in {}",
                key.display(),
                cert.display()
            ),
            "13:12: destination `canary`: `tls.key`: the private key in",
        ],
    );
}

#[test]
fn an_expired_certificate() {
    let dir = TempDir::new("check-expired");
    let pki = Pki::new("weir test CA");
    valid_files(&dir, &pki);
    let old = pki.leaf(Usage::Server, "localhost", 9, Some((2020, 2021)));
    dir.write("old.pem", &old.cert);
    dir.write("old-key.pem", &old.key);
    let old_client = pki.leaf(Usage::Client, "old-sidecar", 10, Some((2019, 2020)));
    dir.write("old-client.pem", &old_client.cert);
    dir.write("old-client-key.pem", &old_client.key);
    refused(
        &dir,
        &config(
            "old.pem",
            "old-key.pem",
            "ca.pem",
            "ca.pem",
            "old-client.pem",
            "old-client-key.pem",
        ),
        &[
            &format!(
                "4:9: `tls.cert`: {}: the certificate `CN=localhost,O=weir-tests` expired on 2021-01-01 00:00:00 UTC",
                dir.path().join("old.pem").display()
            ),
            "12:13: destination `canary`: `tls.cert`: ",
        ],
    );
}

#[test]
fn files_without_what_they_should_hold() {
    let dir = TempDir::new("check-empty");
    let pki = Pki::new("weir test CA");
    valid_files(&dir, &pki);
    dir.write("empty-ca.pem", "# the CA bundle goes here\n");
    let stderr = refused(
        &dir,
        // A key where the certificate should be, a certificate where the key should be.
        &config(
            "server-key.pem",
            "server.pem",
            "empty-ca.pem",
            "empty-ca.pem",
            "client.pem",
            "client-key.pem",
        ),
        &[
            "4:9: `tls.cert`: ",
            "11:11: destination `canary`: `tls.ca`: ",
        ],
    );
    assert!(
        stderr.contains("server-key.pem: no certificate in it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("empty-ca.pem: no certificate in it"),
        "{stderr}"
    );

    refused(
        &dir,
        &config(
            "server.pem",
            "server.pem",
            "empty-ca.pem",
            "ca.pem",
            "client.pem",
            "client-key.pem",
        ),
        &["5:8: `tls.key`: ", "server.pem: no private key in it"],
    );
    refused(
        &dir,
        &config(
            "server.pem",
            "server-key.pem",
            "empty-ca.pem",
            "ca.pem",
            "client.pem",
            "client-key.pem",
        ),
        &[
            "6:14: `tls.client_ca`: ",
            "empty-ca.pem: no certificate in it",
        ],
    );
}

#[test]
fn bad_tls_keys() {
    let dir = TempDir::new("check-keys");
    valid_files(&dir, &Pki::new("weir test CA"));
    let text = "listen: 127.0.0.1:0
admin: 127.0.0.1:0
tls: { cert: server.pem, mode: sometimes }
destinations:
  canary: { endpoints: [\"bad_host:9\"], tls: { cert: client.pem } }
  named: { endpoints: [\"127.0.0.1:9\"], tls: { server_name: \"not a name\" } }
routes:
  - name: all
    split: { canary: 50, named: 50 }
";
    refused(
        &dir,
        text,
        &[
            "3:6: `tls` has no `key`",
            "3:32: `tls.mode` is `sometimes`",
            "5:45: destination `canary`: `tls` needs both `cert` and `key`",
            "6:60: `not a name` is not a valid TLS server name",
        ],
    );
}

#[test]
fn startup_refuses_a_bad_certificate_too() {
    let dir = TempDir::new("run-refused");
    let pki = Pki::new("weir test CA");
    valid_files(&dir, &pki);
    let text = config(
        "nope.pem",
        "server-key.pem",
        "ca.pem",
        "ca.pem",
        "client.pem",
        "client-key.pem",
    );
    let cfg = dir.write("weir.yaml", &text);
    let out = weir_output(
        &["run", "--config", cfg.to_str().unwrap()],
        Duration::from_secs(20),
    );
    let status = out.status;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:9: `tls.cert`: ", cfg.display()))
            && stderr.contains("nope.pem: cannot read it"),
        "{stderr}"
    );
}

#[test]
fn upstream_tls_without_ca_needs_system_roots() {
    let dir = TempDir::new("check-roots");
    let pki = Pki::new("weir test CA");
    valid_files(&dir, &pki);
    let text = "listen: 127.0.0.1:0
admin: 127.0.0.1:0
destinations:
  public: { endpoints: [\"api.example.com:443\"], tls: {} }
routes:
  - name: all
    split: { public: 100 }
";
    let cfg = dir.write("weir.yaml", text);
    // The system store, as rustls-native-certs finds it, pointed at the test CA.
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let (code, stderr) = check(&cfg, &[("SSL_CERT_FILE", ca), ("SSL_CERT_DIR", "")]);
    assert_eq!(code, 0, "{stderr}");

    let missing = dir.path().join("no-such-bundle.pem");
    let (code, stderr) = check(
        &cfg,
        &[
            ("SSL_CERT_FILE", missing.to_str().unwrap()),
            ("SSL_CERT_DIR", ""),
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    let want = format!(
        "{}:4:54: destination `public`: `tls`: no system root certificates were found",
        cfg.display()
    );
    assert!(stderr.contains(&want), "expected `{want}` in:\n{stderr}");
    assert!(stderr.contains("set `ca`"), "{stderr}");
}
