//! End-to-end: a sidecar (`sidecar~` node) gets Istio's listener/cluster layout, checked on Envoy's own
//! `config_dump`; the CLI (`meshd discovery`, `meshd bootstrap`, `meshd proxy-config`) against real Envoy.

mod common;

use common::*;
use meshd::xds::proxy_config::{extract, Section};
use std::process::{Command, Stdio};
use std::time::Duration;

const MESH: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.1.10
  selector: {app: web}
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  clusterIP: 10.96.1.11
  selector: {app: cart}
  ports: [{name: http-api, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: 10.96.1.12
  selector: {app: db}
  ports: [{name: tcp-pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web, version: v1}}
status: {podIP: 10.244.1.5}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-1, namespace: shop, labels: {app: cart, version: v1}}
status: {podIP: 10.244.1.6}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db}}
status: {podIP: 10.244.1.7}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
  subsets: [{name: v1, labels: {version: v1}}]
"#;

fn names(items: &[serde_json::Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_layout_on_envoy_config_dump() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mesh.yaml"), MESH).expect("write");
    let meshd = Meshd::start(dir.path()).await;
    let envoy = Envoy::start(
        meshd.xds,
        "sidecar~10.244.1.5~web-1.shop~shop.svc.cluster.local",
        &[("app", "web"), ("version", "v1")],
    )
    .await;
    let ok = eventually(Duration::from_secs(10), || async {
        envoy.stat("listener_manager.lds.update_success").await >= 1
            && envoy.stat("cluster_manager.cds.update_success").await >= 1
    })
    .await;
    assert!(ok.is_some(), "no LDS/CDS; log:\n{}", envoy.log());
    let dump = envoy.config_dump().await;
    let listeners = names(&extract(&dump, Section::Listeners));
    for l in [
        "virtualOutbound",
        "virtualInbound",
        "0.0.0.0_9080",
        "10.96.1.12_5432",
    ] {
        assert!(
            listeners.contains(&l.to_string()),
            "missing listener {l} in {listeners:?}"
        );
    }
    let clusters = names(&extract(&dump, Section::Clusters));
    for c in [
        "outbound|9080||web.shop.svc.cluster.local",
        "outbound|9080||cart.shop.svc.cluster.local",
        "outbound|9080|v1|cart.shop.svc.cluster.local",
        "outbound|5432||db.shop.svc.cluster.local",
        "inbound|8080||",
        "BlackHoleCluster",
        "PassthroughCluster",
        "InboundPassthroughCluster",
    ] {
        assert!(
            clusters.contains(&c.to_string()),
            "missing cluster {c} in {clusters:?}"
        );
    }
    let cart = extract(&dump, Section::Clusters)
        .into_iter()
        .find(|c| c["name"] == "outbound|9080||cart.shop.svc.cluster.local")
        .expect("cart");
    assert_eq!(cart["type"], "EDS");
    assert_eq!(cart["outlier_detection"]["consecutive_5xx"], 5);
    assert_eq!(
        cart["circuit_breakers"]["thresholds"][0]["max_connections"],
        100
    );
    let routes = extract(&dump, Section::Routes);
    let r9080 = routes
        .iter()
        .find(|r| r["name"] == "9080")
        .expect("route 9080");
    let vhosts: Vec<_> = r9080["virtual_hosts"]
        .as_array()
        .expect("vhosts")
        .iter()
        .collect();
    let cart_vh = vhosts
        .iter()
        .find(|v| v["name"] == "cart.shop.svc.cluster.local:9080")
        .expect("cart vhost");
    let domains: Vec<&str> = cart_vh["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert!(
        domains.contains(&"cart") && domains.contains(&"10.96.1.11"),
        "{domains:?}"
    );
    assert_eq!(cart_vh["routes"][0]["route"]["timeout"], "0s");
    assert_eq!(
        vhosts.last().map(|v| v["name"].clone()),
        Some(serde_json::json!("allow_any"))
    );
    let eps = extract(&dump, Section::Endpoints);
    let cart_eps = eps
        .iter()
        .find(|e| e["cluster_name"] == "outbound|9080|v1|cart.shop.svc.cluster.local")
        .expect("eds for cart v1");
    assert_eq!(
        cart_eps["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
            ["address"],
        "10.244.1.6"
    );
    assert_eq!(envoy.stat("listener_manager.lds.update_rejected").await, 0);
    assert_eq!(envoy.stat("cluster_manager.cds.update_rejected").await, 0);
    meshd.stop().await;
}

fn meshd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_meshd")
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_discovery_bootstrap_and_proxy_config() {
    cli_stack_bootstrap_and_proxy_config(&["discovery"]).await;
}

/// The same through `meshd serve --config-dir`, which runs discovery beside the webhooks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serve_runs_discovery_with_the_webhooks() {
    let certs = tempfile::tempdir().expect("tempdir");
    let cert = certs.path().join("tls.crt");
    let key = certs.path().join("tls.key");
    let webhook = format!("127.0.0.1:{}", free_port());
    cli_stack_bootstrap_and_proxy_config(&[
        "serve",
        "--webhook-addr",
        &webhook,
        "--tls-cert",
        cert.to_str().expect("utf8"),
        "--tls-key",
        key.to_str().expect("utf8"),
    ])
    .await;
}

async fn cli_stack_bootstrap_and_proxy_config(subcommand: &[&str]) {
    let up = upstream("v1", 0).await;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("service.yaml"), httpbin_service(&[&up])).expect("write");
    std::fs::write(dir.path().join("gateway.yaml"), gateway(port, false)).expect("write");
    std::fs::write(
        dir.path().join("vs.yaml"),
        virtual_service("  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, port: {number: 8000}}\n"),
    )
    .expect("write");
    let (xds_port, mon_port, admin_port) = (free_port(), free_port(), free_port());
    let _server = Killed(
        Command::new(meshd_bin())
            .args(subcommand)
            .arg("--config-dir")
            .arg(dir.path())
            .args([
                "--xds-addr",
                &format!("127.0.0.1:{xds_port}"),
                "--monitoring-addr",
                &format!("127.0.0.1:{mon_port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn meshd discovery"),
    );
    let out = Command::new(meshd_bin())
        .args([
            "bootstrap",
            "--xds-address",
            &format!("127.0.0.1:{xds_port}"),
            "--node-id",
            ROUTER,
        ])
        .args([
            "--label",
            "istio=ingressgateway",
            "--admin-port",
            &admin_port.to_string(),
        ])
        .output()
        .expect("meshd bootstrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bpath = dir.path().join("bootstrap.json.out");
    std::fs::write(&bpath, &out.stdout).expect("write");
    let v = Command::new(envoy_path())
        .args(["--mode", "validate", "-c"])
        .arg(&bpath)
        .output()
        .expect("validate");
    let vout = String::from_utf8_lossy(&v.stdout).to_string() + &String::from_utf8_lossy(&v.stderr);
    assert!(
        v.status.success() && vout.contains("OK"),
        "envoy --mode validate failed: {vout}"
    );
    let _envoy = Killed(
        Command::new(envoy_path())
            .arg("-c")
            .arg(&bpath)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "-l",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn envoy"),
    );
    let ok = eventually(Duration::from_secs(20), || async {
        get(port, "httpbin.example.com", "/status/200", &[]).await.0 == 200
    })
    .await;
    assert!(ok.is_some(), "no 200 through the CLI-started stack");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let pc = |kind: &str, fmt: &str| {
        let o = Command::new(meshd_bin())
            .args(["proxy-config", kind, "--admin", &admin, "-o", fmt])
            .output()
            .expect("proxy-config");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let clusters = pc("clusters", "short");
    assert!(
        clusters.contains("httpbin.httpbin.svc.cluster.local") && clusters.contains("outbound"),
        "{clusters}"
    );
    let routes = pc("routes", "short");
    assert!(
        routes.contains(&format!("http.{port}")) && routes.contains("httpbin.example.com"),
        "{routes}"
    );
    let listeners: serde_json::Value =
        serde_json::from_str(&pc("listeners", "json")).expect("json");
    assert!(listeners
        .as_array()
        .is_some_and(|a| a.iter().any(|l| l["name"] == format!("0.0.0.0_{port}"))));
    let eps = pc("endpoints", "yaml");
    assert!(eps.contains(&up.addr.port().to_string()), "{eps}");
    // Monitoring of the standalone process.
    let metrics = client()
        .get(format!("http://127.0.0.1:{mon_port}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("pilot_xds_pushes_total") && metrics.contains("pilot_xds "),
        "{metrics}"
    );
    let conns = client()
        .get(format!("http://127.0.0.1:{mon_port}/debug/connections"))
        .send()
        .await
        .expect("conns")
        .text()
        .await
        .expect("text");
    assert!(conns.contains("istio-ingressgateway-1"), "{conns}");
    let dump = client()
        .get(format!(
            "http://127.0.0.1:{mon_port}/debug/config_dump?proxy={ROUTER}"
        ))
        .send()
        .await
        .expect("dump")
        .text()
        .await
        .expect("text");
    assert!(dump.contains(&format!("http.{port}")), "{dump}");
}

#[test]
fn bootstrap_variants_pass_envoy_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [&[&str]; 3] = [
        &[
            "--xds-address",
            "localhost:15010",
            "--node-id",
            "sidecar~10.1.2.3~web-1.shop~shop.svc.cluster.local",
            "--label",
            "app=web",
            "--label",
            "version=v1",
        ],
        &[
            "--xds-address",
            "127.0.0.1:15010",
            "--node-id",
            ROUTER,
            "--label",
            "istio=ingressgateway",
            "--admin-port",
            "19000",
        ],
        &[
            "--xds-address",
            "[::1]:15010",
            "--node-id",
            ROUTER,
            "--meta",
            "CLUSTER_ID=Kubernetes",
        ],
    ];
    for (i, args) in cases.iter().enumerate() {
        let out = Command::new(meshd_bin())
            .arg("bootstrap")
            .args(*args)
            .output()
            .expect("bootstrap");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert!(json["node"]["metadata"]["ISTIO_VERSION"].is_string());
        let path = dir.path().join(format!("b{i}.json"));
        std::fs::write(&path, &out.stdout).expect("write");
        let v = Command::new(envoy_path())
            .args(["--mode", "validate", "-c"])
            .arg(&path)
            .output()
            .expect("validate");
        let text =
            String::from_utf8_lossy(&v.stdout).to_string() + &String::from_utf8_lossy(&v.stderr);
        assert!(
            v.status.success() && text.contains("OK"),
            "case {i}: {text}"
        );
    }
    // Bad input: a clear error, non-zero exit.
    let out = Command::new(meshd_bin())
        .args(["bootstrap", "--node-id", "nonsense"])
        .output()
        .expect("bootstrap");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node-id"));
}
