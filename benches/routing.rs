//! Micro-benchmarks of the routing hot path: finding the route (1, 10, 100 and 1,000
//! routes, the request matching the last, catch-all route) and the weighted pick
//! (2 to 16 destinations).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::header::HeaderName;
use weir::routing::{RequestMatch, RequestView, RouteTable, StringMatch, WeightedSplit};

/// `n` routes in the shapes real configs use (a header per tenant, a path prefix per
/// service, exact paths, a few regexes), then a catch-all the probe request lands on.
fn table(n: usize) -> RouteTable<usize> {
    let mut routes = Vec::with_capacity(n);
    for i in 0..n.saturating_sub(1) {
        let m = match i % 4 {
            0 => RequestMatch {
                headers: vec![(
                    HeaderName::from_static("x-tenant"),
                    StringMatch::Exact(format!("t{i}")),
                )],
                ..Default::default()
            },
            1 => RequestMatch {
                path: Some(StringMatch::Prefix(format!("/svc/{i}/"))),
                ..Default::default()
            },
            2 => RequestMatch {
                path: Some(StringMatch::Exact(format!("/exact/{i}"))),
                ..Default::default()
            },
            _ => RequestMatch {
                authority: Some(StringMatch::regex(&format!("tenant-{i}\\..*")).unwrap()),
                ..Default::default()
            },
        };
        routes.push((m, i));
    }
    routes.push((RequestMatch::default(), n));
    RouteTable::new(routes)
}

fn route_matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_match");
    let req = http::Request::get("/api/v1/orders?id=7")
        .header("host", "shop.example.com")
        .header("user-agent", "bench")
        .header("x-tenant", "none")
        .body(())
        .unwrap();
    for n in [1usize, 10, 100, 1000] {
        let t = table(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &t, |b, t| {
            b.iter(|| black_box(t.find(&RequestView::of(black_box(&req)))))
        });
    }
    group.finish();
}

fn weighted_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("weighted_pick");
    for n in [2usize, 3, 4, 8, 16] {
        let split = WeightedSplit::new((0..n).map(|i| (i, (i as u32 + 1) * 10))).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &split, |b, s| {
            b.iter(|| black_box(*s.pick()))
        });
    }
    group.finish();
}

criterion_group!(benches, route_matching, weighted_pick);
criterion_main!(benches);
