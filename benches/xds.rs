//! xDS benchmarks for the scale targets.
//!
//! 1. criterion: full translation for one sidecar with 1,000 services × 10 endpoints, 300 VirtualServices
//!    and 300 DestinationRules (model build + resource generation + encoding).
//! 2. load (after criterion; `MESHD_BENCH_LOAD=0` skips it): a real `meshd discovery` process fed by a
//!    config directory, N fake ADS clients (tonic, envoy-types) that subscribe like Envoy and ACK every
//!    response; measures initial sync, the end-to-end push of a one-VirtualService file change to all
//!    clients, and meshd's RSS.

use criterion::Criterion;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use meshd::xds::model::PushContext;
use meshd::xds::protocol::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use meshd::xds::proxy::{NodeType, Proxy};
use meshd::xds::synthetic::{mesh_yaml, Shape};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn snapshot(shape: Shape) -> meshd::store::Snapshot {
    let mut snap = meshd::store::Snapshot {
        version: 1,
        ..Default::default()
    };
    meshd::store::parse_documents("synthetic", &mesh_yaml(shape, 0), &mut snap);
    snap.normalize();
    snap
}

fn sidecar() -> Proxy {
    Proxy {
        id: "sidecar~10.0.0.1~svc1-abc.ns1~ns1.svc.cluster.local".into(),
        node_type: NodeType::Sidecar,
        ip: "10.0.0.1".into(),
        namespace: "ns1".into(),
        labels: [("app".to_string(), "svc1".to_string())].into(),
    }
}

fn bench_translation(c: &mut Criterion) {
    let snap = Arc::new(snapshot(Shape::default()));
    let proxy = sidecar();
    let mut g = c.benchmark_group("translate_1000svc_x10ep_300vs_300dr");
    g.sample_size(10);
    g.bench_function("push_context", |b| {
        b.iter(|| PushContext::new(snap.clone()))
    });
    let ctx = PushContext::new(snap.clone());
    g.bench_function("sidecar_generate_and_encode", |b| {
        b.iter(|| meshd::xds::translate::build(&ctx, &proxy))
    });
    g.bench_function("sidecar_full_from_snapshot", |b| {
        b.iter(|| {
            let ctx = PushContext::new(snap.clone());
            meshd::xds::translate::build(&ctx, &proxy)
        })
    });
    g.finish();
    let r = meshd::xds::translate::build(&ctx, &proxy);
    let size =
        |m: &meshd::xds::translate::Encoded| m.values().map(|a| a.value.len()).sum::<usize>();
    println!(
        "sidecar resources: {} clusters ({} B), {} endpoints ({} B), {} listeners ({} B), {} routes ({} B)",
        r.clusters.len(),
        size(&r.clusters),
        r.endpoints.len(),
        size(&r.endpoints),
        r.listeners.len(),
        size(&r.listeners),
        r.routes.len(),
        size(&r.routes)
    );
}

fn sv(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

fn node(i: usize, workloads: usize) -> Node {
    let app = format!("svc{}", i % workloads);
    let ns = format!("ns{}", (i % workloads) % 10);
    let mut labels = Struct::default();
    labels.fields.insert("app".into(), sv(&app));
    let mut meta = Struct::default();
    meta.fields.insert(
        "LABELS".into(),
        Value {
            kind: Some(Kind::StructValue(labels)),
        },
    );
    meta.fields.insert("NAMESPACE".into(), sv(&ns));
    meta.fields.insert("ISTIO_VERSION".into(), sv("1.28.0"));
    Node {
        id: format!(
            "sidecar~10.1.{}.{}~{app}-{i}.{ns}~{ns}.svc.cluster.local",
            i / 256,
            i % 256
        ),
        metadata: Some(meta),
        ..Default::default()
    }
}

struct Stats {
    synced: AtomicU64,
    /// Clients that received an RDS response with version >= target.
    updated: AtomicU64,
    target: AtomicU64,
}

fn req(
    type_url: &str,
    names: Vec<String>,
    version: &str,
    nonce: &str,
    node: Option<Node>,
) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names: names,
        version_info: version.to_string(),
        response_nonce: nonce.to_string(),
        node,
        ..Default::default()
    }
}

async fn client(channel: tonic::transport::Channel, i: usize, workloads: usize, stats: Arc<Stats>) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut c = AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20);
    let _ = tx
        .send(req(CLUSTER, vec![], "", "", Some(node(i, workloads))))
        .await;
    let Ok(resp) = c
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    else {
        return;
    };
    let mut stream = resp.into_inner();
    let eds_names: Vec<String> = (0..10)
        .map(|k| format!("outbound|8080||svc{k}.ns{k}.svc.cluster.local"))
        .collect();
    let (mut eds_sub, mut lds_sub, mut rds_sub, mut synced) = (false, false, false, false);
    while let Ok(Some(r)) = stream.message().await {
        let names = match r.type_url.as_str() {
            t if t == ENDPOINT => eds_names.clone(),
            t if t == ROUTE => vec!["8080".to_string()],
            _ => vec![],
        };
        let _ = tx
            .send(req(&r.type_url, names, &r.version_info, &r.nonce, None))
            .await;
        if r.type_url == CLUSTER && !eds_sub {
            eds_sub = true;
            let _ = tx
                .send(req(ENDPOINT, eds_names.clone(), "", "", None))
                .await;
            if !lds_sub {
                lds_sub = true;
                let _ = tx.send(req(LISTENER, vec![], "", "", None)).await;
            }
        }
        if r.type_url == LISTENER && !rds_sub {
            rds_sub = true;
            let _ = tx.send(req(ROUTE, vec!["8080".into()], "", "", None)).await;
        }
        if r.type_url == ROUTE {
            if !synced {
                synced = true;
                stats.synced.fetch_add(1, Ordering::SeqCst);
            }
            let v: u64 = r.version_info.parse().unwrap_or(0);
            let target = stats.target.load(Ordering::SeqCst);
            if target > 0 && v >= target {
                stats.updated.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn wait_for(what: &str, timeout: Duration, f: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!("  timeout waiting for {what}");
    None
}

async fn load(clients: usize, workloads: usize) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return println!("tempdir: {e}"),
    };
    let file = dir.path().join("mesh.yaml");
    if std::fs::write(&file, mesh_yaml(Shape::default(), 0)).is_err() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0);
    let mon = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0);
    let mut child = match std::process::Command::new(env!("CARGO_BIN_EXE_meshd"))
        .args(["discovery", "--config-dir"])
        .arg(dir.path())
        .args([
            "--xds-addr",
            &format!("127.0.0.1:{port}"),
            "--monitoring-addr",
            &format!("127.0.0.1:{mon}"),
        ])
        .env("RUST_LOG", "warn")
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return println!("spawn meshd: {e}"),
    };
    let pid = child.id();
    let idle_rss = {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        rss_kib(pid)
    };
    let stats = Arc::new(Stats {
        synced: AtomicU64::new(0),
        updated: AtomicU64::new(0),
        target: AtomicU64::new(0),
    });
    let mut channels = Vec::new();
    for _ in 0..clients.div_ceil(100) {
        let ep = match tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")) {
            Ok(e) => e,
            Err(_) => return,
        };
        match ep.connect().await {
            Ok(ch) => channels.push(ch),
            Err(e) => {
                let _ = child.kill();
                return println!("connect: {e}");
            }
        }
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        tasks.push(tokio::spawn(client(
            channels[i % channels.len()].clone(),
            i,
            workloads,
            stats.clone(),
        )));
    }
    let s = stats.clone();
    let sync = wait_for("initial sync", Duration::from_secs(120), move || {
        s.synced.load(Ordering::SeqCst) as usize >= clients
    })
    .await;
    println!(
        "load: {clients} ADS clients ({workloads} distinct workloads): initial sync of all clients {:?}",
        sync.map(|_| start.elapsed())
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = rss_kib(pid);
    println!(
        "load: meshd RSS idle {} MiB, with {clients} clients connected {} MiB",
        idle_rss / 1024,
        rss / 1024
    );
    // One VirtualService changes (file rewrite) → version 2 must reach every client.
    stats.target.store(2, Ordering::SeqCst);
    let t0 = Instant::now();
    if std::fs::write(&file, mesh_yaml(Shape::default(), 1)).is_err() {
        return;
    }
    let s = stats.clone();
    let pushed = wait_for("push", Duration::from_secs(60), move || {
        s.updated.load(Ordering::SeqCst) as usize >= clients
    })
    .await;
    println!(
        "load: one-VirtualService change pushed to all {clients} clients in {:?} end to end (file write → RDS received; includes 200 ms poll + 100 ms debounce)",
        pushed.map(|_| t0.elapsed())
    );
    println!("load: meshd RSS after push {} MiB", rss_kib(pid) / 1024);
    let _ = child.kill();
    let _ = child.wait();
    for t in tasks {
        t.abort();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_translation(&mut c);
    c.final_summary();
    if std::env::var("MESHD_BENCH_LOAD").as_deref() == Ok("0") {
        return;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return println!("runtime: {e}"),
    };
    rt.block_on(load(200, 20));
    rt.block_on(load(2000, 100));
}
