//! Injection speed in-process: a typical Deployment pod and a pathological one (1,500 env vars).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use meshd::inject::{Injector, Outcome, Request};
use serde_json::{json, Value};

fn hello_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "hello-6d9f8c7b5-", "namespace": "default",
            "labels": {"app": "hello", "tier": "backend", "track": "stable", "pod-template-hash": "6d9f8c7b5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "hello-6d9f8c7b5", "uid": "1", "controller": true}]},
        "spec": {"containers": [{"name": "hello", "image": "example.com/hello:1.0", "ports": [{"name": "http", "containerPort": 80}]}]}
    })
}

fn big_pod() -> Value {
    let env: Vec<Value> = (0..1500)
        .map(
            |i| json!({"name": format!("VAR_{i:04}"), "value": format!("v{i}-{}", "x".repeat(12))}),
        )
        .collect();
    let mut p = hello_pod();
    p["spec"]["containers"][0]["env"] = Value::Array(env);
    p
}

fn inject_once(inj: &Injector, pod: &Value) -> usize {
    let out = inj
        .inject(Request::webhook(pod.clone(), Some("default".into())))
        .expect("inject");
    match out {
        Outcome::Injected(p) => meshd::inject::create_patch(pod, &p).0.len(),
        Outcome::Skipped(_) => 0,
    }
}

fn bench(c: &mut Criterion) {
    let inj = Injector::with_defaults().expect("injector");
    let hello = hello_pod();
    let big = big_pod();
    eprintln!(
        "pathological pod: {} bytes",
        serde_json::to_vec(&big).map(|v| v.len()).unwrap_or(0)
    );
    c.bench_function("inject_hello_pod", |b| b.iter(|| inject_once(&inj, &hello)));
    c.bench_function("inject_1500_env_pod", |b| {
        b.iter(|| inject_once(&inj, &big))
    });
    // Every pod distinct (a label changes), so the template is rendered and parsed each time.
    let mut n = 0u64;
    let mut distinct = |base: &Value| {
        n += 1;
        let mut p = base.clone();
        p["metadata"]["labels"]["version"] = json!(format!("v{n}"));
        p
    };
    c.bench_function("inject_hello_pod_uncached", |b| {
        b.iter_batched(
            || distinct(&hello),
            |p| inject_once(&inj, &p),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("inject_1500_env_pod_uncached", |b| {
        b.iter_batched(
            || distinct(&big),
            |p| inject_once(&inj, &p),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
