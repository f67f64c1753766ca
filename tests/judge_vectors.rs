//! The judge against Kayenta's own unit-test vectors (`tests/data/kayenta_vectors.json`,
//! copied from shared/reference/kayenta) and against p-values scipy computed once
//! (`tests/data/judge_scipy.json`, made by `tests/data/make_judge_scipy.py`).

use serde_json::Value;
use weir::canary::judge::fisher::{Alternative, fisher_exact};
use weir::canary::judge::input::{MetricData, MetricInput, Thresholds};
use weir::canary::judge::mann_whitney::{self, Samples};
use weir::canary::judge::settings::{Direction, EffectMeasure, MetricSettings, NanStrategy};
use weir::canary::judge::{self, Classification, JudgeInput, normal};

fn data(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read test data")).expect("JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn check(case: &str, what: &str, got: f64, expected: &Value) {
    let want = expected["value"].as_f64().unwrap();
    let tol = expected["tolerance"].as_f64().unwrap();
    assert!(
        (got - want).abs() <= tol,
        "{case}: {what} = {got}, Kayenta expects {want} (+/- {tol})"
    );
}

#[test]
fn every_mann_whitney_vector() {
    let vectors = data("kayenta_vectors.json");
    let cases = vectors["mann_whitney"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let confidence = case["confidence"].as_f64().unwrap();
        let e = &case["expected"];
        let (x, y) = match (case.get("canary"), case.get("x")) {
            (Some(c), _) => (floats(c), floats(&case["baseline"])),
            (None, Some(x)) => (floats(x), floats(&case["y"])),
            (None, None) => (Vec::new(), Vec::new()),
        };
        for (key, expected) in e.as_object().unwrap() {
            let got = match key.as_str() {
                "z_quantile_0.01" => normal::quantile(0.01),
                "wilcoxon_diff(mu=0, zq=0)" => {
                    Samples::new(&x, &y).unwrap().diff(0.0, 0.0).unwrap()
                }
                "wilcoxon_diff(mu=5, zq=0)" => {
                    Samples::new(&x, &y).unwrap().diff(5.0, 0.0).unwrap()
                }
                "lower" | "ciLower" => mann_whitney::test(&x, &y, confidence).unwrap().lower,
                "upper" | "ciUpper" => mann_whitney::test(&x, &y, confidence).unwrap().upper,
                "estimate" => mann_whitney::test(&x, &y, confidence).unwrap().estimate,
                "muMin" => Samples::new(&x, &y).unwrap().range().0,
                "muMax" => Samples::new(&x, &y).unwrap().range().1,
                "zqLower" => -normal::quantile((1.0 - confidence) / 2.0),
                "zqUpper" => normal::quantile((1.0 - confidence) / 2.0),
                "fLower1" | "fUpper1" | "fLower2" | "fUpper2" => {
                    let s = Samples::new(&x, &y).unwrap();
                    let (lo, hi) = s.range();
                    let z = -normal::quantile((1.0 - confidence) / 2.0);
                    let mu = if key.starts_with("fLower") { lo } else { hi };
                    let zq = if key.ends_with('1') { z } else { -z };
                    s.diff(mu, zq).unwrap()
                }
                other => panic!("{name}: no check for `{other}`"),
            };
            check(name, key, got, expected);
        }
    }
}

fn settings_of(case: &Value) -> MetricSettings {
    let f = |k: &str| case[k].as_f64().unwrap();
    MetricSettings {
        direction: match case["direction"].as_str().unwrap() {
            "increase" => Direction::Increase,
            "decrease" => Direction::Decrease,
            _ => Direction::Either,
        },
        critical: case["critical"].as_bool().unwrap(),
        nan_strategy: match case["nan_strategy"].as_str().unwrap() {
            "replace" => NanStrategy::Replace,
            _ => NanStrategy::Remove,
        },
        effect: match case["effect_size_measure"].as_str().unwrap() {
            "cles" => EffectMeasure::Cles,
            _ => EffectMeasure::MeanRatio,
        },
        allowed_increase: f("allowed_increase"),
        allowed_decrease: f("allowed_decrease"),
        critical_increase: f("critical_increase"),
        critical_decrease: f("critical_decrease"),
        tolerance: f("tolerance"),
        confidence: f("confidence"),
        ..MetricSettings::default()
    }
}

#[test]
fn every_classifier_vector() {
    let vectors = data("kayenta_vectors.json");
    let cases = vectors["classifier"].as_array().unwrap();
    assert_eq!(cases.len(), 34);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let metric = MetricInput {
            name: name.to_owned(),
            group: "g".into(),
            settings: settings_of(case),
            data: MetricData::Samples {
                canary: floats(&case["canary"]),
                baseline: floats(&case["baseline"]),
            },
        };
        let r = judge::classify::classify(&metric);
        let e = &case["expected"];
        if let Some(c) = e.get("classification") {
            assert_eq!(
                r.classification.as_str(),
                c.as_str().unwrap(),
                "{name}: {}",
                r.reason
            );
        }
        if let Some(c) = e.get("critical") {
            assert_eq!(
                r.critical,
                c.as_bool().unwrap(),
                "{name}: critical; {}",
                r.reason
            );
        }
        match e.get("deviation") {
            Some(Value::String(s)) if s == "NaN" => {
                assert!(r.deviation.is_nan(), "{name}: {}", r.deviation)
            }
            Some(d) => assert_eq!(r.deviation, d.as_f64().unwrap(), "{name}"),
            None => {}
        }
        if e.get("reason").is_some() {
            assert!(!r.reason.is_empty(), "{name}: no reason");
        }
        assert!(!r.reason.is_empty(), "{name}: every result says why");
    }
}

fn rel_err(got: f64, want: f64) -> f64 {
    if got == want {
        0.0
    } else {
        (got - want).abs() / want.abs()
    }
}

#[test]
fn mann_whitney_p_values_equal_scipy() {
    let reference = data("judge_scipy.json");
    let mut worst = (0.0f64, String::new());
    for case in reference["mann_whitney"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let s = Samples::new(&floats(&case["canary"]), &floats(&case["baseline"])).unwrap();
        let got = s.p_value().unwrap();
        let want = case["p_value"].as_f64().unwrap();
        let err = rel_err(got, want);
        assert!(
            err <= 1e-9,
            "{name}: p = {got}, scipy {want} (relative error {err:e})"
        );
        if err > worst.0 {
            worst = (err, name.to_owned());
        }
    }
    println!(
        "Mann-Whitney p-values: worst relative error vs scipy {:e} ({})",
        worst.0, worst.1
    );
}

#[test]
fn fisher_p_values_equal_scipy() {
    let reference = data("judge_scipy.json");
    let mut worst = (0.0f64, String::new());
    for case in reference["fisher"].as_array().unwrap() {
        let t: Vec<u64> = case["table"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let alternative = match case["alternative"].as_str().unwrap() {
            "less" => Alternative::Less,
            "greater" => Alternative::Greater,
            _ => Alternative::TwoSided,
        };
        let got = fisher_exact(t[0], t[1], t[2], t[3], alternative);
        let want = case["p_value"].as_f64().unwrap();
        let err = rel_err(got, want);
        let label = format!("{t:?} {alternative:?}");
        assert!(
            err <= 1e-6,
            "{label}: p = {got}, scipy {want} (relative error {err:e})"
        );
        if err > worst.0 {
            worst = (err, label);
        }
    }
    println!(
        "Fisher p-values: worst relative error vs scipy {:e} ({})",
        worst.0, worst.1
    );
}

fn metric(name: &str, group: &str, class_of: Classification) -> judge::MetricResult {
    // A result with the classification wanted, from data that gives it.
    let (canary, baseline) = match class_of {
        Classification::Pass => (vec![1.0, 2.0, 3.0], vec![1.0, 2.0, 3.0]),
        Classification::High => (
            vec![20.0, 22.0, 21.0, 25.0, 30.0],
            vec![1.0, 2.2, 1.1, 2.5, 3.0],
        ),
        Classification::Nodata => (vec![], vec![1.0]),
        other => panic!("{other:?}"),
    };
    let input = MetricInput {
        name: name.into(),
        group: group.into(),
        settings: MetricSettings::default(),
        data: MetricData::Samples { canary, baseline },
    };
    let r = judge::classify::classify(&input);
    assert_eq!(r.classification, class_of);
    r
}

fn weights() -> Vec<(String, f64)> {
    vec![("istio".into(), 60.0), ("kubernetes".into(), 40.0)]
}

const T: Thresholds = Thresholds {
    pass: 95.0,
    marginal: 75.0,
};

#[test]
fn kayenta_scoring_examples() {
    use Classification::*;
    // The talk: Istio metrics weigh 60, Kubernetes 40. One Istio metric of two failing
    // costs 30 points; one Kubernetes metric of two, 20.
    let all_pass = [
        metric("success", "istio", Pass),
        metric("p95", "istio", Pass),
        metric("cpu", "kubernetes", Pass),
        metric("memory", "kubernetes", Pass),
    ];
    let s = judge::score::score(&all_pass, &weights(), T);
    assert_eq!((s.score, s.verdict), (100.0, judge::Verdict::Pass));

    let istio_fails = [
        metric("success", "istio", High),
        metric("p95", "istio", Pass),
        metric("cpu", "kubernetes", Pass),
        metric("memory", "kubernetes", Pass),
    ];
    let s = judge::score::score(&istio_fails, &weights(), T);
    assert_eq!((s.score, s.verdict), (70.0, judge::Verdict::Fail));

    let kube_fails = [
        metric("success", "istio", Pass),
        metric("p95", "istio", Pass),
        metric("cpu", "kubernetes", High),
        metric("memory", "kubernetes", Pass),
    ];
    let s = judge::score::score(&kube_fails, &weights(), T);
    assert_eq!((s.score, s.verdict), (80.0, judge::Verdict::Marginal));

    // The talk's canary: better on Istio, but CPU and memory up: the resource group fails.
    let resources = [
        metric("success", "istio", Pass),
        metric("p95", "istio", Pass),
        metric("cpu", "kubernetes", High),
        metric("memory", "kubernetes", High),
    ];
    let s = judge::score::score(&resources, &weights(), T);
    assert_eq!((s.score, s.verdict), (60.0, judge::Verdict::Fail));

    // Nodata is not counted in its group...
    let nodata = [
        metric("success", "istio", Pass),
        metric("p95", "istio", Nodata),
        metric("cpu", "kubernetes", Pass),
        metric("memory", "kubernetes", Pass),
    ];
    assert_eq!(judge::score::score(&nodata, &weights(), T).score, 100.0);
    // ...but half the metrics without data score 0.
    let half = [
        metric("success", "istio", Nodata),
        metric("p95", "istio", Nodata),
        metric("cpu", "kubernetes", Pass),
        metric("memory", "kubernetes", Pass),
    ];
    assert_eq!(judge::score::score(&half, &weights(), T).score, 0.0);

    // A critical metric that fails scores 0 whatever the rest.
    let mut critical = metric("success", "istio", High);
    critical.critical = true;
    let s = judge::score::score(
        &[
            critical,
            metric("p95", "istio", Pass),
            metric("cpu", "kubernetes", Pass),
        ],
        &weights(),
        T,
    );
    assert_eq!((s.score, s.verdict), (0.0, judge::Verdict::Fail));

    // Groups without a weight share what is left; three metrics in thirds round to 2 places.
    let unweighted = [
        metric("a", "x", Pass),
        metric("b", "x", Pass),
        metric("c", "x", High),
    ];
    let s = judge::score::score(&unweighted, &[], T);
    assert_eq!(s.score, 66.67);
    let s = judge::score::score(&unweighted, &[("y".into(), 40.0)], T);
    assert_eq!(s.groups[1].weight, 60.0);
    assert_eq!(s.score, 40.0 + 40.0);
}

#[test]
fn sparse_errors_pass_mann_whitney_but_not_fisher() {
    // Kayenta's known weakness (kayenta#426): a canary with a few errors per interval
    // against a baseline with almost none passes Mann-Whitney, since lo never clears
    // 0.25 |estimate|; the proportions test on the same counts catches it.
    let per_interval = 100u64;
    // 12 errors in 8 of 30 intervals against 1 error in one interval.
    let canary_errors: Vec<f64> = (0..30)
        .map(|i| match i % 4 {
            0 if i < 16 => 2.0,
            2 if i < 16 => 1.0,
            _ => 0.0,
        })
        .collect();
    let baseline_errors: Vec<f64> = (0..30).map(|i| if i == 7 { 1.0 } else { 0.0 }).collect();
    assert_eq!(canary_errors.iter().sum::<f64>(), 12.0);
    let sum = |v: &[f64]| v.iter().sum::<f64>() as u64;
    let total = 30 * per_interval;
    let base = MetricSettings {
        direction: Direction::Increase,
        ..MetricSettings::default()
    };
    let input = JudgeInput {
        groups: vec![],
        thresholds: T,
        metrics: vec![
            MetricInput {
                name: "errors-mw".into(),
                group: "g".into(),
                settings: base.clone(),
                data: MetricData::Samples {
                    canary: canary_errors.clone(),
                    baseline: baseline_errors.clone(),
                },
            },
            MetricInput {
                name: "errors-fisher".into(),
                group: "g".into(),
                settings: MetricSettings {
                    test: judge::settings::Test::Proportions,
                    ..base
                },
                data: MetricData::Proportions {
                    canary: judge::Counts {
                        successes: sum(&canary_errors),
                        total,
                    },
                    baseline: judge::Counts {
                        successes: sum(&baseline_errors),
                        total,
                    },
                },
            },
        ],
    };
    let j = judge::judge(&input);
    assert_eq!(
        j.metrics[0].classification,
        Classification::Pass,
        "{}",
        j.metrics[0].reason
    );
    assert_eq!(
        j.metrics[1].classification,
        Classification::High,
        "{}",
        j.metrics[1].reason
    );
    assert!(
        j.metrics[1].reason.contains("Fisher"),
        "{}",
        j.metrics[1].reason
    );
}
