//! The command line as a new user meets it: every option of every command described in
//! `--help`, the global flags after each command's own, messages that say a thing once
//! and in plain words, log fields without Rust's debug formatting, and `weir demo`
//! ending on its own with a summary (its table drawn in place on a terminal).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const COMMANDS: [&str; 7] = [
    "run", "check", "upstream", "judge", "canary", "report", "demo",
];

fn help(args: &[&str]) -> String {
    let out = weir_output(args, Duration::from_secs(10));
    assert!(out.status.success(), "weir {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The options of a help page without a description: clap writes an option's text on
/// its line or, when the page is too wide, on the lines below it.
fn undescribed(page: &str) -> Vec<String> {
    let lines: Vec<&str> = page.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if !(t.starts_with("--") || (t.starts_with('-') && t.chars().nth(2) == Some(','))) {
            continue;
        }
        let same_line = t.split("  ").skip(1).any(|s| !s.trim().is_empty());
        let below = lines.get(i + 1).is_some_and(|next| {
            let n = next.trim_start();
            !n.is_empty() && !n.starts_with('-') && next.len() - n.len() > line.len() - t.len()
        });
        if !same_line && !below {
            missing.push(t.to_owned());
        }
    }
    missing
}

#[test]
fn every_option_of_every_command_is_described() {
    let top = help(&["--help"]);
    assert!(undescribed(&top).is_empty(), "{top}");
    for command in COMMANDS {
        let page = help(&[command, "--help"]);
        let missing = undescribed(&page);
        assert!(
            missing.is_empty(),
            "weir {command} --help: {missing:?}\n{page}"
        );
        // The command's own options first, the global ones after, under their heading.
        let own = page.find("Options:").expect("an Options section");
        let global = page
            .find("Global options:")
            .expect("a Global options section");
        assert!(own < global, "weir {command} --help:\n{page}");
        assert!(page.find("--log-format").unwrap() > global, "{page}");
    }
    let run = help(&["run", "--help"]);
    assert!(
        run.contains("Takes precedence over `workers` in the config file"),
        "{run}"
    );
    let demo = help(&["demo", "--help"]);
    assert!(
        demo.contains("[default: 60s]") && demo.contains("`0` runs"),
        "{demo}"
    );
}

#[test]
fn check_counts_in_words() {
    let dir = TempDir::new("cli-check");
    let one = dir.write(
        "one.yaml",
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\ndestinations:\n  release: { endpoints: [\"127.0.0.1:9\"] }\nroutes:\n  - name: primary\n    split: { release: 1 }\n",
    );
    let out = weir_output(
        &["check", "-c", one.to_str().unwrap()],
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with(": ok (1 destination, 1 route)\n"), "{text}");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/weir.yaml");
    let out = weir_output(&["check", "--config", example], Duration::from_secs(10));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with(": ok (4 destinations, 3 routes)\n"),
        "{text}"
    );
}

/// A port another process holds: said once, with the address, the key and what to do.
#[test]
fn a_busy_port_is_reported_once() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let dir = TempDir::new("cli-busy");
    let config = dir.write(
        "weir.yaml",
        &format!(
            "listen: {addr}\nadmin: 127.0.0.1:0\ndestinations:\n  release: {{ endpoints: [\"127.0.0.1:9\"] }}\nroutes:\n  - name: primary\n    split: {{ release: 1 }}\n"
        ),
    );
    let cases: [(&[&str], &str); 3] = [
        (
            &["run", "--config", config.to_str().unwrap()],
            "the config's `listen`",
        ),
        (
            &["demo", "--listen", &addr, "--admin", "127.0.0.1:0"],
            "--listen ADDR --admin ADDR",
        ),
        (&["upstream", "--listen", &addr], "Pass another --listen"),
    ];
    for (args, hint) in cases {
        let out = weir_output(args, Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| l.starts_with("weir: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line in {err}"));
        assert_eq!(line.matches("cannot listen").count(), 1, "{line}");
        assert_eq!(line.matches(&addr).count(), 1, "{line}");
        assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
        assert!(line.contains(hint), "{args:?}: {line}");
    }
}

/// `weir upstream`'s startup line and the weights API's log line show values as they
/// are written, not as Rust's debug formatting.
#[tokio::test]
async fn log_fields_are_written_as_people_write_them() {
    within(30, async {
        let mut child = Command::new(weir_bin())
            .args(["upstream", "--listen", "127.0.0.1:0", "--latency", "2ms..6ms"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(first.contains("latency=2ms..6ms"), "{first}");
        assert!(!first.contains("LatencyRange"), "{first}");

        let (a, b) = (synthetic("a").await, synthetic("b").await);
        let w = Weir::start_with(
            &format!(
                "destinations:\n  a: {{ endpoints: [\"{a}\"] }}\n  b: {{ endpoints: [\"{b}\"] }}\nroutes:\n  - name: primary\n    split: {{ a: 1 }}\n"
            ),
            LogFormat::Text,
        )
        .await;
        let (status, body) =
            admin_request(w.admin, "PUT", "/routes/primary/split", r#"{"a": 3, "b": 1}"#, None)
                .await
                .unwrap();
        assert_eq!(status, http::StatusCode::OK, "{body}");
        let line = w
            .wait_line("the split's log line", |l| l.contains("split set through the admin API"))
            .await;
        assert!(line.contains("split=a=3,b=1"), "{line}");
        assert!(!line.contains("(\""), "{line}");
    })
    .await;
}

/// `weir demo` ends by itself after `--duration` with a summary; off a terminal its
/// output has no control sequence.
#[test]
fn the_demo_ends_on_its_own_with_a_summary() {
    let started = Instant::now();
    let out = weir_output(
        &[
            "demo",
            "--duration",
            "3s",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\x1b'), "{text}");
    assert_eq!(
        text.matches("destination  requests").count(),
        4,
        "3 tables and the summary: {text}"
    );
    let summary = &text[text.find("weir demo: 3 s, client sent").expect("a summary")..];
    let row = |name: &str| -> Vec<String> {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {summary}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    let (release, baseline, canary) = (row("release"), row("baseline"), row("canary"));
    assert_eq!(
        [&release[3], &baseline[3], &canary[3]],
        ["80.0%", "10.0%", "10.0%"],
        "weights: {summary}"
    );
    let share: f64 = release[2].trim_end_matches('%').parse().unwrap();
    assert!(
        (65.0..=92.0).contains(&share),
        "release share {share}: {summary}"
    );
}

/// On a terminal (a pty, through util-linux's `script`), each second's table is drawn
/// over the last one.
#[test]
fn on_a_terminal_the_demo_redraws_in_place() {
    let command = format!(
        "{} --log-level warn demo --duration 3s --listen 127.0.0.1:0 --admin 127.0.0.1:0",
        weir_bin().display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("util-linux `script` (Debian: bsdutils) runs the demo on a pty");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Two redraws: up over the 5 lines of the table (a heading and 4 lines), clear down.
    assert_eq!(text.matches("\x1b[5A\x1b[J").count(), 2, "{text:?}");
    assert!(text.contains("weir demo: 3 s, client sent"), "{text}");
}

/// `--duration 0` runs until Ctrl-C, then prints the summary and exits 0.
#[test]
fn with_duration_0_the_demo_runs_until_interrupted() {
    let child = Command::new(weir_bin())
        .args([
            "demo",
            "--duration",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let status = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(Ctrl-C stops)"), "{text}");
    assert!(
        text.contains("client sent") && text.contains("Per destination:"),
        "{text}"
    );
}

/// `weir canary --check` validates a rollout without contacting anything.
#[test]
fn canary_check_validates_a_rollout_offline() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/canary.yaml");
    let out = weir_output(
        &["canary", "--check", "--config", example],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with(": ok (2 stages, 4 metrics, route `primary`)\n"),
        "{text}"
    );
    let dir = TempDir::new("cli-canary-check");
    let typo = dir.write(
        "typo.yaml",
        &std::fs::read_to_string(example)
            .unwrap()
            .replace("interval: 10s", "intervall: 10s"),
    );
    let out = weir_output(
        &["canary", "--check", "-c", typo.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("typo.yaml:intervall: unknown key"), "{err}");
    let missing = dir.path().join("missing.yaml");
    let out = weir_output(
        &["canary", "--check", "-c", missing.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("missing.yaml").count(), 1, "{err}");
}
