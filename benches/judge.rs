//! The judge on a realistic load: 20 metrics of 2 x 1,000 points each (Mann-Whitney
//! interval, estimate and p-value for every one). The goal is under 50 ms.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use weir::canary::judge::input::{MetricData, MetricInput, Thresholds};
use weir::canary::judge::{self, JudgeInput, MetricSettings};

/// Deterministic pseudo-random points around `centre` (SplitMix64, Box-Muller).
fn points(seed: u64, centre: f64, n: usize) -> Vec<f64> {
    let mut s = seed;
    let mut next = move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (next().max(1e-12), next());
            centre * (1.0 + 0.1 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos())
        })
        .collect()
}

fn input() -> JudgeInput {
    let metrics = (0..20u64)
        .map(|i| MetricInput {
            name: format!("metric-{i}"),
            group: if i % 2 == 0 { "istio" } else { "kubernetes" }.into(),
            settings: MetricSettings::default(),
            data: MetricData::Samples {
                canary: points(i * 2 + 1, 10.0 + (i % 3) as f64 * 0.2, 1000),
                baseline: points(i * 2 + 2, 10.0, 1000),
            },
        })
        .collect();
    JudgeInput {
        groups: vec![("istio".into(), 60.0), ("kubernetes".into(), 40.0)],
        thresholds: Thresholds {
            pass: 95.0,
            marginal: 75.0,
        },
        metrics,
    }
}

fn bench(c: &mut Criterion) {
    let input = input();
    c.bench_function("judge 20 metrics x 2 x 1000 points", |b| {
        b.iter(|| judge::judge(black_box(&input)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
