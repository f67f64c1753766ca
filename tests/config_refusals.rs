//! Every config refusal, through `weir check` and `weir run` alike: exit status 1 and
//! `FILE:LINE:COLUMN: message` on stderr, at the place in the file that is wrong.

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;

/// The mark that shows, in a test's YAML, where weir must report a problem. It is
/// removed before the file is written.
const MARK: char = '«';

/// Removes the marks; returns the text and each mark's 1-based line and column.
fn unmark(marked: &str) -> (String, Vec<(usize, usize)>) {
    let mut text = String::new();
    let mut marks = Vec::new();
    let (mut line, mut column) = (1, 1);
    for c in marked.chars() {
        if c == MARK {
            marks.push((line, column));
            continue;
        }
        text.push(c);
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (text, marks)
}

/// Asserts that both `weir check` and `weir run` refuse `marked` with status 1 and
/// print one line per problem, `FILE:LINE:COLUMN: ...message...`, where the n-th
/// message belongs at the n-th mark.
fn assert_refused(marked: &str, messages: &[&str]) {
    let (yaml, marks) = unmark(marked);
    assert_eq!(marks.len(), messages.len(), "one mark per expected message");
    let dir = TempDir::new("refused");
    let path = dir.write("weir.yaml", &yaml);
    let file = path.to_str().unwrap();
    for command in ["check", "run"] {
        let out = weir_output(&[command, "--config", file], Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "weir {command} should refuse this config; stderr:\n{stderr}\nconfig:\n{yaml}"
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            messages.len(),
            "weir {command}: one line per problem; stderr:\n{stderr}"
        );
        for ((line, column), (got, message)) in marks.iter().zip(lines.iter().zip(messages)) {
            let prefix = format!("{file}:{line}:{column}: ");
            assert!(
                got.starts_with(&prefix) && got.contains(message),
                "weir {command}: expected `{prefix}...{message}...`, got `{got}`"
            );
        }
        assert!(out.stdout.is_empty(), "weir {command} printed to stdout");
    }
}

const HEAD: &str = "\
# A config weir must refuse.
listen: 127.0.0.1:0
admin: 127.0.0.1:0
destinations:
  release: { endpoints: [\"127.0.0.1:8081\"] }
  canary:
    endpoints:
      - 127.0.0.1:8083
routes:
";

#[test]
fn all_zero_weights() {
    let yaml = format!(
        "{HEAD}  - name: primary\n    split: «{{ release: 0, canary: 0 }}\n    timeout: 5s\n"
    );
    assert_refused(&yaml, &["route `primary`: all weights are zero"]);
    // Block style: the position is the split's mapping.
    let yaml = format!("{HEAD}  - name: primary\n    split:\n      «release: 0\n      canary: 0\n");
    assert_refused(&yaml, &["route `primary`: all weights are zero"]);
}

#[test]
fn split_naming_an_unknown_destination() {
    let yaml = format!("{HEAD}  - name: primary\n    split: {{ release: 90, «canray: 10 }}\n");
    assert_refused(
        &yaml,
        &["split names unknown destination `canray`: known destinations are release, canary"],
    );
}

#[test]
fn duplicate_route_name() {
    let yaml = format!(
        "{HEAD}  - name: primary\n    match: {{ path: /a }}\n    split: {{ release: 1 }}\n  \
         - name: canary-route\n    split: {{ canary: 1 }}\n  - name: «primary\n    split: {{ canary: 1 }}\n"
    );
    assert_refused(
        &yaml,
        &["duplicate route name `primary`: route names must be unique"],
    );
}

#[test]
fn endpoints_that_are_not_host_port() {
    let yaml = "\
listen: 127.0.0.1:0
admin: 127.0.0.1:0
destinations:
  release:
    endpoints:
      - 127.0.0.1:8081
      - «localhost
      - «\"127.0.0.1:99999\"
  canary: { endpoints: [«\"http://canary:8080\", «\"canary:0\"] }
routes:
  - name: primary
    split: { release: 90, canary: 10 }
";
    assert_refused(
        yaml,
        &[
            "endpoint `localhost` is not host:port (missing port)",
            "endpoint `127.0.0.1:99999` is not host:port (bad port)",
            "endpoint `http://canary:8080` is not host:port",
            "endpoint `canary:0` is not host:port (port 0)",
        ],
    );
}

#[test]
fn bad_regex() {
    let yaml = format!(
        "{HEAD}  - name: versioned\n    match: {{ path: «{{ regex: \"/v[0-9\" }} }}\n    split: {{ canary: 1 }}\n  \
         - name: primary\n    match:\n      headers:\n        x-user:\n          «regex: \"(unclosed\"\n    split: {{ release: 1 }}\n"
    );
    assert_refused(&yaml, &["bad regex `/v[0-9`", "bad regex `(unclosed`"]);
}

#[test]
fn yaml_syntax_errors() {
    // An unclosed quote.
    let yaml = format!("{HEAD}  - name: «\"primary\n    split: {{ release: 1 }}\n");
    assert_refused(&yaml, &["unclosed quote"]);
    // A flow mapping that is never closed: reported where the parser gave up.
    let yaml = "\
listen: 127.0.0.1:0
admin: 127.0.0.1:0
destinations:
  release: { endpoints: [\"127.0.0.1:8081\"]
«routes:
  - name: primary
    split: { release: 1 }
";
    assert_refused(yaml, &["did not find expected ',' or '}'"]);
    // Bad indentation.
    let yaml = format!("{HEAD}  - name: primary\n    split:\n      release: 1\n     «canary: 2\n");
    assert_refused(&yaml, &["did not find expected key"]);
}

#[test]
fn unknown_keys() {
    // In a route.
    let yaml = format!("{HEAD}  - name: primary\n    split: {{ release: 1 }}\n    «timout: 5s\n");
    assert_refused(&yaml, &["unknown field `timout`"]);
    // At the top level.
    let yaml =
        format!("{HEAD}  - name: primary\n    split: {{ release: 1 }}\n«access_logs: true\n");
    assert_refused(&yaml, &["unknown field `access_logs`"]);
    // In a destination.
    let yaml = HEAD.replace("    endpoints:\n", "    «endpoint:\n")
        + "  - name: p\n    split: { release: 1 }\n";
    assert_refused(&yaml, &["unknown field `endpoint`"]);
}

/// The other refusals the README lists: weights that are not non-negative integers,
/// and durations without a known unit.
#[test]
fn bad_weights_and_durations() {
    let yaml = "\
listen: 127.0.0.1:0
admin: 127.0.0.1:0
drain_timeout: «fast
destinations:
  release: { endpoints: [\"127.0.0.1:8081\"], connect_timeout: «5 }
  canary: { endpoints: [\"127.0.0.1:8082\"] }
routes:
  - name: primary
    split: { release: «-1, canary: «2.5 }
    timeout: «5 seconds
  - name: other
    split: { release: «\"ten\" }
";
    assert_refused(
        yaml,
        &[
            "`fast` is not a duration",
            "`5` has no unit",
            "weight -1 is negative",
            "weight 2.5 is not an integer",
            "`5 seconds` has an unknown unit",
            "weight `ten` is not a number",
        ],
    );
}

/// Validation problems are reported all at once, in file order.
#[test]
fn several_problems_are_reported_together() {
    let yaml = "\
listen: 127.0.0.1:0
admin: 127.0.0.1:0
destinations:
  release: { endpoints: [«\"127.0.0.1\"] }
  canary: { endpoints: [\"127.0.0.1:8083\"] }
routes:
  - name: a
    match: { path: «{ regex: \"(\" } }
    split: «{ release: 0, canary: 0 }
  - name: «a
    split: { «nope: 1 }
";
    assert_refused(
        yaml,
        &[
            "is not host:port",
            "bad regex",
            "all weights are zero",
            "duplicate route name `a`",
            "unknown destination `nope`",
        ],
    );
}

#[test]
fn the_example_config_is_accepted() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/weir.yaml");
    let out = weir_output(
        &["check", "--config", example.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok (4 destinations, 3 routes)"), "{stdout}");
}
