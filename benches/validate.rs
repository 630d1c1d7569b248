//! Validation benchmarks: a bookinfo-like `reviews` VirtualService (three weighted subsets and a
//! header match) and a 500-route VirtualService, each decoded and validated in process.

use criterion::{criterion_group, criterion_main, Criterion};
use meshd::validate::{validate_object, Mode};
use serde_json::{json, Value};
use std::hint::black_box;

fn reviews() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "bookinfo"},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": "reviews", "subset": "v2"}}]
                },
                {
                    "route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 30},
                        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 20}
                    ]
                }
            ]
        }
    })
}

fn big(routes: usize) -> Value {
    let http: Vec<Value> = (0..routes)
        .map(|i| {
            let m = if i % 10 == 0 {
                json!([{"uri": {"regex": format!("/api/v{}/items/[0-9]+", i)}}])
            } else {
                json!([{"uri": {"prefix": format!("/api/svc-{i}/")}, "headers": {"x-tenant": {"exact": format!("t{}", i % 7)}}}])
            };
            json!({
                "name": format!("route-{i}"),
                "match": m,
                "route": [
                    {"destination": {"host": format!("svc-{i}.shop.svc.cluster.local"), "subset": "v1", "port": {"number": 8080}}, "weight": 90},
                    {"destination": {"host": format!("svc-{i}.shop.svc.cluster.local"), "subset": "v2", "port": {"number": 8080}}, "weight": 10}
                ],
                "timeout": "10s",
                "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset,connect-failure"},
                "headers": {"request": {"set": {"x-route": format!("r{i}")}}}
            })
        })
        .collect();
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "shop-api", "namespace": "shop"},
        "spec": {"hosts": ["api.shop.example.com"], "gateways": ["istio-system/public"], "http": http}
    })
}

fn bench(c: &mut Criterion) {
    let r = reviews();
    assert!(validate_object(&r, Mode::Lenient).unwrap().is_valid());
    c.bench_function("validate reviews VirtualService", |b| {
        b.iter(|| validate_object(black_box(&r), Mode::Lenient))
    });
    let v = big(500);
    let verdict = validate_object(&v, Mode::Strict).unwrap();
    assert!(verdict.is_valid(), "{verdict:?}");
    c.bench_function("validate 500-route VirtualService", |b| {
        b.iter(|| validate_object(black_box(&v), Mode::Strict))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
