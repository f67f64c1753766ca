//! `weir judge` as a user runs it: the table, `--json` with exactly the promised keys,
//! and the exit status for pass (0), marginal (3), fail (1) and bad input (2).

mod support;

use std::time::Duration;

use support::*;

fn points(centre: f64, n: usize) -> Vec<f64> {
    // Deterministic spread around `centre`.
    (0..n)
        .map(|i| centre * (1.0 + 0.05 * (((i * 7919) % 101) as f64 / 50.0 - 1.0)))
        .collect()
}

fn metric(name: &str, group: &str, canary: f64, baseline: f64) -> serde_json::Value {
    serde_json::json!({
        "name": name, "group": group, "direction": "increase",
        "canary": points(canary, 60), "baseline": points(baseline, 60)
    })
}

fn judge(dir: &TempDir, input: &serde_json::Value, extra: &[&str]) -> std::process::Output {
    let file = dir.write("samples.json", &input.to_string());
    let mut args = vec!["judge", "--samples", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    weir_output(&args, Duration::from_secs(20))
}

fn input(cpu_canary: f64, p95_canary: f64) -> serde_json::Value {
    serde_json::json!({
        "groups": {"istio": 60, "kubernetes": 40},
        "thresholds": {"pass": 95, "marginal": 75},
        "metrics": [
            metric("p95-latency", "istio", p95_canary, 5.0),
            metric("success", "istio", 10.0, 10.0),
            metric("cpu", "kubernetes", cpu_canary, 0.5),
            metric("memory", "kubernetes", 100.0, 100.0),
        ]
    })
}

#[test]
fn exit_status_follows_the_verdict() {
    let dir = TempDir::new("judge");
    let pass = judge(&dir, &input(0.5, 5.0), &[]);
    assert_eq!(
        pass.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&pass.stdout)
    );
    let table = String::from_utf8_lossy(&pass.stdout);
    assert!(table.contains("score 100.00: pass"), "{table}");
    assert!(table.contains("p95-latency"), "{table}");

    // One Kubernetes metric of two fails: 80, marginal.
    let marginal = judge(&dir, &input(1.0, 5.0), &[]);
    assert_eq!(
        marginal.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&marginal.stdout)
    );
    assert!(String::from_utf8_lossy(&marginal.stdout).contains("score 80.00: marginal"));

    // One Istio metric of two fails: 70, fail.
    let fail = judge(&dir, &input(0.5, 10.0), &[]);
    assert_eq!(
        fail.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&fail.stdout)
    );
}

#[test]
fn bad_input_says_what_and_where() {
    let dir = TempDir::new("judge-bad");
    let mut bad = input(0.5, 5.0);
    bad["metrics"][2]["canary"][3] = serde_json::json!("fast");
    let out = judge(&dir, &bad, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("samples.json:metrics[2].canary[3]: expected a number or null"),
        "{err}"
    );

    let file = dir.write("broken.json", "{\"metrics\": [\n  {\"name\": 1,}\n]}");
    let out = weir_output(
        &["judge", "--samples", file.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.json:2:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = weir_output(
        &["judge", "--samples", "/nonexistent/samples.json"],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_has_exactly_the_promised_keys() {
    let dir = TempDir::new("judge-json");
    let mut v = input(1.0, 5.0);
    v["metrics"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "healthy-responses", "group": "istio", "test": "proportions", "direction": "decrease",
        "baseline": {"successes": 9950, "total": 10000}, "canary": {"successes": 9890, "total": 10000}
    }));
    v["metrics"][1]["baseline"] = serde_json::json!([null, null, null]);
    let out_file = dir.path().join("out.json");
    let out = judge(&dir, &v, &["--json", out_file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&j),
        ["groups", "metrics", "score", "verdict", "warnings"]
    );
    assert_eq!(keys(&j["groups"]["istio"]), ["score", "weight"]);
    let metrics = j["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 5);
    for m in metrics {
        assert_eq!(
            keys(m),
            [
                "baseline",
                "canary",
                "classification",
                "critical",
                "deviation",
                "effect",
                "estimate",
                "group",
                "lower",
                "name",
                "p_value",
                "reason",
                "upper"
            ]
        );
        assert_eq!(keys(&m["canary"]), ["count", "mean", "median"]);
        assert!(!m["reason"].as_str().unwrap().is_empty());
    }
    // Input order; the no-data metric; the proportions metric decided by Fisher.
    assert_eq!(metrics[1]["name"], "success");
    assert_eq!(metrics[1]["classification"], "Nodata");
    assert_eq!(metrics[1]["deviation"], serde_json::Value::Null);
    assert_eq!(metrics[4]["classification"], "Low");
    assert!(metrics[4]["reason"].as_str().unwrap().contains("Fisher"));
    assert!(
        j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("fewer than 50"))
    );

    // `--json -`: only the JSON on stdout.
    let out = judge(&dir, &v, &["--json", "-"]);
    let stdout: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is the JSON alone");
    assert_eq!(stdout["verdict"], j["verdict"]);
}
