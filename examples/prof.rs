use std::time::Instant;
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() {
    let inj = meshd::inject::Injector::with_defaults().unwrap();
    let mut reg = prometheus_client::registry::Registry::default();
    let m = meshd::telemetry::Metrics::register(&mut reg);
    let body = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "bench", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "default", "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "hello-6d9f8c7b5-", "labels": {"app": "hello", "pod-template-hash": "6d9f8c7b5"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "hello-6d9f8c7b5", "uid": "1", "controller": true}]},
                "spec": {"containers": [{"name": "hello", "image": "example.com/hello:1.0", "ports": [{"name": "http", "containerPort": 80}]}]}}}
    }).to_string();
    let n = 5000;
    let envs = Default::default();
    let t = Instant::now();
    for _ in 0..n {
        let _ = meshd::admission::handle_inject(&inj, &m, body.as_bytes(), &envs);
    }
    println!("handle_inject: {:?}/op", t.elapsed() / n);
    let review = meshd::admission::review::decode(body.as_bytes()).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let _ = meshd::admission::review::decode(body.as_bytes()).unwrap();
    }
    println!("decode: {:?}/op", t.elapsed() / n);
    let pod = review.request.object.clone().unwrap();
    let t = Instant::now();
    let mut out = serde_json::Value::Null;
    for _ in 0..n {
        if let meshd::inject::Outcome::Injected(p) = inj
            .inject(meshd::inject::Request::webhook(
                pod.clone(),
                Some("default".into()),
            ))
            .unwrap()
        {
            out = p;
        }
    }
    println!("inject: {:?}/op", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = meshd::inject::create_patch(&pod, &out);
    }
    println!("diff: {:?}/op", t.elapsed() / n);
    let patch = meshd::inject::create_patch(&pod, &out);
    let t = Instant::now();
    for _ in 0..n {
        let _ = serde_json::to_vec(&patch).unwrap();
    }
    println!("patch ser: {:?}/op", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = out.clone();
    }
    println!("pod clone: {:?}/op", t.elapsed() / n);
}
#[allow(dead_code)]
fn unused() {}
