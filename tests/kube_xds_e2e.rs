//! Config from the Kubernetes API reaches a real Envoy: objects applied with the real kubectl to
//! the API-server stand-in (tests/apiserver, a test double), watched by `meshd serve
//! --kubeconfig`, translated and pushed over ADS to Envoy, which routes real HTTP.

mod apiserver;
mod common;

use std::process::Command;
use std::time::Duration;

use apiserver::ApiServer;
use common::*;

fn kubectl(kubeconfig: &std::path::Path, home: &std::path::Path, args: &[&str]) -> (bool, String) {
    let kubectl = require_tool(
        "kubectl",
        "install kubectl (https://kubernetes.io/docs/tasks/tools/; e.g. apt-get install kubectl)",
    );
    let out = Command::new(kubectl)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_service_applied_with_kubectl_changes_envoy_routing_and_delete_reverts() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = api.write_kubeconfig(dir.path());
    let home = dir.path().join("home");
    let apply = |name: &str, text: &str| {
        let f = write(dir.path(), name, text);
        let (ok, out) = kubectl(&kc, &home, &["apply", "-f", f.to_str().unwrap()]);
        assert!(ok, "kubectl apply {name}: {out}");
    };
    let up = upstream("v1", 0).await;
    let port = free_port();
    apply("service.yaml", &httpbin_service(&[&up]));
    apply("gateway.yaml", &gateway(port, false));

    let meshd = Server::start(&["--kubeconfig", kc.to_str().unwrap()]);
    assert!(
        meshd
            .log_text()
            .contains("config synced from the Kubernetes API"),
        "{}",
        meshd.log_text()
    );
    let envoy = Envoy::start(
        format!("127.0.0.1:{}", meshd.xds_port).parse().unwrap(),
        ROUTER,
        &[("istio", "ingressgateway")],
    )
    .await;
    let status = || async { get(port, "httpbin.example.com", "/status/200", &[]).await.0 };
    let within = |d: u64| Duration::from_secs(d);

    // No VirtualService yet: nothing routes to the upstream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(status().await, 200, "routed before any VirtualService");

    apply("vs.yaml", &virtual_service("  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, port: {number: 8000}}\n"));
    let t = eventually(within(10), || async { status().await == 200 }).await;
    assert!(
        t.is_some(),
        "VirtualService from kubectl did not reach Envoy; envoy log:\n{}\nmeshd log:\n{}",
        envoy.log(),
        meshd.log_text()
    );

    apply(
        "vs-fault.yaml",
        &virtual_service("  - fault:\n      abort: {httpStatus: 418, percentage: {value: 100}}\n    route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, port: {number: 8000}}\n"),
    );
    assert!(
        eventually(within(10), || async { status().await == 418 })
            .await
            .is_some(),
        "changed VirtualService not applied"
    );

    let (ok, out) = kubectl(
        &kc,
        &home,
        &["delete", "virtualservice", "httpbin", "-n", "httpbin"],
    );
    assert!(ok, "{out}");
    assert!(
        eventually(within(10), || async {
            let s = status().await;
            s != 418 && s != 200
        })
        .await
        .is_some(),
        "deleting the VirtualService did not revert the routing"
    );
    let metrics = meshd.metrics();
    assert!(metrics.contains("pilot_xds_pushes_total"), "{metrics}");
}

/// The discovery sidecar (`meshd discovery --kubeconfig`) serves the same config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_sidecar_serves_config_from_the_kubernetes_api() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = api.write_kubeconfig(dir.path());
    let home = dir.path().join("home");
    let up = upstream("v1", 0).await;
    let port = free_port();
    for (name, text) in [
        ("service.yaml", httpbin_service(&[&up])),
        ("gateway.yaml", gateway(port, false)),
        ("vs.yaml", virtual_service("  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, port: {number: 8000}}\n")),
    ] {
        let f = write(dir.path(), name, &text);
        let (ok, out) = kubectl(&kc, &home, &["apply", "-f", f.to_str().unwrap()]);
        assert!(ok, "kubectl apply {name}: {out}");
    }
    let (xds_port, mon_port) = (free_port(), free_port());
    let mut child = Command::new(meshd_bin())
        .args(["discovery", "--kubeconfig", kc.to_str().unwrap()])
        .args([
            "--xds-addr",
            &format!("127.0.0.1:{xds_port}"),
            "--monitoring-addr",
            &format!("127.0.0.1:{mon_port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _envoy = Envoy::start(
        format!("127.0.0.1:{xds_port}").parse().unwrap(),
        ROUTER,
        &[("istio", "ingressgateway")],
    )
    .await;
    let ok = eventually(Duration::from_secs(15), || async {
        get(port, "httpbin.example.com", "/status/200", &[]).await.0 == 200
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok.is_some(),
        "meshd discovery --kubeconfig did not route the kubectl-applied config"
    );
}
