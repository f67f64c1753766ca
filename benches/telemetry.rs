//! Micro-benchmark of recording one request's telemetry: the Istio series (a counter and
//! three histograms), the latency window and the per-class counters.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use weir::config::{DestinationConfig, EndpointAddr, Protocol, ServiceLabels};
use weir::telemetry::{Outcome, ProxyStats, RequestProtocol, SecurityPolicy};

fn record(c: &mut Criterion) {
    let labels = ServiceLabels {
        service: "shop".into(),
        namespace: "prod".into(),
        reporter: "destination".into(),
        workload: "shop-gateway".into(),
    };
    let dest = DestinationConfig {
        name: "canary".into(),
        endpoints: vec![EndpointAddr {
            host: "127.0.0.1".into(),
            port: 8083,
        }],
        protocol: Protocol::Http1,
        connect_timeout: Duration::from_secs(10),
        workload: "shop-canary".into(),
        version: "v2".into(),
        tls: None,
        pool: Default::default(),
    };
    let outcome = |status| Outcome {
        status,
        flag: None,
        duration: Duration::from_micros(2345),
        request_bytes: 0,
        response_bytes: 128,
        protocol: RequestProtocol::Http,
        grpc_status: None,
        security: SecurityPolicy::None,
    };
    let mut group = c.benchmark_group("telemetry");
    for (name, detailed) in [("record_on", true), ("record_off", false)] {
        let stats = ProxyStats::new(detailed, Duration::from_secs(60), &labels);
        let d = stats.destination(&dest, &labels);
        let ok = outcome(200);
        group.bench_function(name, |b| {
            b.iter(|| {
                d.request_started();
                d.request_finished(black_box(&ok));
            })
        });
    }
    let stats = ProxyStats::new(true, Duration::from_secs(60), &labels);
    let d = stats.destination(&dest, &labels);
    let grpc = Outcome {
        protocol: RequestProtocol::Grpc,
        grpc_status: Some(14),
        ..outcome(200)
    };
    group.bench_function("record_grpc_slow_path", |b| {
        b.iter(|| {
            d.request_started();
            d.request_finished(black_box(&grpc));
        })
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
