//! Load benchmark over real HTTPS with keep-alive: the production admission router plus a
//! no-op handler on the same serving stack (TLS, HTTP/1.1, same body rules), measured in the
//! same run. Reports throughput, and p50/p99 latency at a fixed 1,000 req/s.
//!
//! `cargo bench --bench https_load [-- SECONDS CONNECTIONS]`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::post;
use meshd::admission::{self, AdmissionState};
use meshd::inject::Injector;
use meshd::server::{self, Timeouts};
use meshd::telemetry::Metrics;
use meshd::tls;
use serde_json::json;

fn review() -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "bench", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "default", "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "hello-6d9f8c7b5-", "labels": {"app": "hello", "pod-template-hash": "6d9f8c7b5"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "hello-6d9f8c7b5", "uid": "1", "controller": true}]},
                "spec": {"containers": [{"name": "hello", "image": "example.com/hello:1.0", "ports": [{"name": "http", "containerPort": 80}]}]}}}
    })
    .to_string()
}

async fn noop(req: Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    match admission::read_review_body(&parts.headers, body).await {
        Ok(_) => axum::response::Response::new(Body::from(
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"bench","allowed":true}}"#,
        )),
        Err(r) => r,
    }
}

fn vs_review() -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "bench", "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "namespace": "bookinfo", "name": "reviews", "operation": "CREATE",
            "object": {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "reviews", "namespace": "bookinfo"},
                "spec": {"hosts": ["reviews"], "http": [
                    {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
                    {"route": [
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
                        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 30},
                        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 20}]}]}}}
    })
    .to_string()
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn closed_loop(
    client: reqwest::Client,
    url: String,
    body: String,
    conns: usize,
    dur: Duration,
) -> (f64, Vec<u32>, usize) {
    let end = Instant::now() + dur;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (c, u, b) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < end {
                let t = Instant::now();
                match c
                    .post(&u)
                    .header("Content-Type", "application/json")
                    .body(b.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_micros() as u32);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let start = Instant::now();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(dur.as_secs_f64());
    all.sort_unstable();
    (all.len() as f64 / secs, all, errors)
}

async fn open_loop(
    client: reqwest::Client,
    url: String,
    body: String,
    rate: u32,
    dur: Duration,
) -> (Vec<u32>, usize) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + dur;
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < end {
        tick.tick().await;
        let (c, u, b) = (client.clone(), url.clone(), body.clone());
        tasks.spawn(async move {
            let t = Instant::now();
            match c
                .post(&u)
                .header("Content-Type", "application/json")
                .body(b)
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => {
                    let _ = r.bytes().await;
                    Some(t.elapsed().as_micros() as u32)
                }
                _ => None,
            }
        });
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Some(l)) => lat.push(l),
            _ => errors += 1,
        }
    }
    lat.sort_unstable();
    (lat, errors)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let conns: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let dir = tempfile::tempdir().expect("tempdir");
    let files = tls::generate_into(dir.path(), "meshd", "istio-system").expect("certs");
    let loaded = tls::load(&tls::CertPaths {
        cert: files.cert.clone(),
        key: files.key.clone(),
    })
    .expect("load");
    let tls_cfg = Arc::new(tls::server_config(tls::Resolver::new(loaded.key)).expect("tls"));
    let mut registry = prometheus_client::registry::Registry::default();
    let state = AdmissionState {
        injector: Arc::new(ArcSwap::from_pointee(
            Injector::with_defaults().expect("injector"),
        )),
        metrics: Metrics::register(&mut registry),
    };
    let router = admission::router(state).route("/noop", post(noop));
    // The server gets its own runtime so client and server do not share worker threads.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let listener = server_rt
        .block_on(server::bind("bench", "127.0.0.1:0".parse().expect("addr")))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    server_rt.spawn(server::serve_tls(
        listener,
        tls_cfg,
        router,
        Timeouts::default(),
        rx,
    ));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let ca = std::fs::read(&files.ca_cert).expect("ca");
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .pool_max_idle_per_host(conns)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca pem"))
        .build()
        .expect("client");
    let body = review();
    let url = |p: &str| format!("https://localhost:{port}{p}");
    client_rt.block_on(async {
        // Warm up connections and caches.
        let _ = closed_loop(client.clone(), url("/inject"), body.clone(), conns, Duration::from_secs(1)).await;
        let (noop_rps, noop_lat, e1) = closed_loop(client.clone(), url("/noop"), body.clone(), conns, Duration::from_secs(secs)).await;
        let (inj_rps, inj_lat, e2) = closed_loop(client.clone(), url("/inject"), body.clone(), conns, Duration::from_secs(secs)).await;
        let (val_rps, val_lat, e4) = closed_loop(client.clone(), url("/validate"), vs_review(), conns, Duration::from_secs(secs)).await;
        let (fixed, e3) = open_loop(client.clone(), url("/inject"), body.clone(), 1000, Duration::from_secs(secs)).await;
        assert_eq!(e1 + e2 + e3 + e4, 0, "requests failed under load");
        println!("HTTPS keep-alive, HTTP/1.1, {conns} connections, {secs}s per phase, client and server on this machine");
        println!("noop    : {noop_rps:>8.0} req/s  p50 {:>6} µs  p99 {:>6} µs  errors {e1}", percentile(&noop_lat, 0.5), percentile(&noop_lat, 0.99));
        println!("inject  : {inj_rps:>8.0} req/s  p50 {:>6} µs  p99 {:>6} µs  errors {e2}", percentile(&inj_lat, 0.5), percentile(&inj_lat, 0.99));
        println!("validate: {val_rps:>8.0} req/s  p50 {:>6} µs  p99 {:>6} µs  errors {e4}", percentile(&val_lat, 0.5), percentile(&val_lat, 0.99));
        println!("ratio   : inject/noop = {:.2}", inj_rps / noop_rps.max(1.0));
        println!("inject @1000 req/s: {} requests  p50 {} µs  p99 {} µs  errors {e3}", fixed.len(), percentile(&fixed, 0.5), percentile(&fixed, 0.99));
    });
    let _ = tx.send(true);
}
