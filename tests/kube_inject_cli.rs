//! `meshd kube-inject` through the real binary, on the project's own manifests.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde::Deserialize;
use serde_json::Value;

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/kube-inject/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn injects_every_workload_kind_and_passes_other_kinds_through() {
    let out = Command::new(meshd_bin())
        .args(["kube-inject", "-f", &fixture("shop.yaml")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let d = docs(&stdout);
    assert_eq!(d.len(), 5);
    // Service untouched.
    let input = docs(&std::fs::read_to_string(fixture("shop.yaml")).unwrap());
    assert_eq!(d[0], input[0]);
    // Deployment: classic layout, prometheus merge, probe rewrite, owner.
    let t = &d[1]["spec"]["template"];
    assert_eq!(container_names(t, "initContainers"), ["istio-init"]);
    assert_eq!(container_names(t, "containers"), ["cart", "istio-proxy"]);
    assert_eq!(t["metadata"]["annotations"]["prometheus.io/port"], "15020");
    assert_eq!(
        t["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"],
        "/app-health/cart/livez"
    );
    let proxy = &t["spec"]["containers"][1];
    let env = |n: &str| container_env(proxy, n);
    assert_eq!(
        env("ISTIO_META_OWNER").unwrap(),
        "kubernetes://apis/apps/v1/namespaces/shop/deployments/cart"
    );
    assert_eq!(
        env("ISTIO_PROMETHEUS_ANNOTATIONS").map(|s| serde_json::from_str::<Value>(&s).unwrap()),
        Some(serde_json::json!({"scrape": "true", "port": "9102"}))
    );
    assert!(
        t["metadata"].get("namespace").is_none(),
        "namespace must not leak into the template"
    );
    // CronJob: the job template's pod.
    let cj = &d[2]["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(container_names(cj, "containers"), ["report", "istio-proxy"]);
    // List item.
    let ss = &d[3]["items"][0]["spec"]["template"];
    assert_eq!(container_names(ss, "containers"), ["ledger", "istio-proxy"]);
    // Host network: unchanged, with a warning.
    assert_eq!(d[4], input[4]);
    assert!(
        stderr.contains(
            "Skipping injection because DaemonSet \"shop/node-agent\" has host networking enabled"
        ),
        "{stderr}"
    );
    // Every document ends with a separator; stdout holds only YAML.
    assert!(stdout.ends_with("---\n"));
}

#[test]
fn native_sidecars_stdin_and_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.yaml");
    let mut child = Command::new(meshd_bin())
        .args([
            "kube-inject",
            "-f",
            "-",
            "--native-sidecars",
            "true",
            "--revision",
            "canary",
            "-o",
        ])
        .arg(&out_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = std::fs::read_to_string(fixture("shop.yaml")).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let d = docs(&std::fs::read_to_string(&out_file).unwrap());
    let t = &d[1]["spec"]["template"];
    assert_eq!(
        container_names(t, "initContainers"),
        ["istio-init", "istio-proxy"]
    );
    assert_eq!(t["spec"]["initContainers"][1]["restartPolicy"], "Always");
    assert_eq!(t["metadata"]["annotations"]["istio.io/rev"], "canary");
    let status: Value = serde_json::from_str(
        t["metadata"]["annotations"]["sidecar.istio.io/status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["revision"], "canary");
}

#[test]
fn values_and_mesh_files_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let values = write(
        dir.path(),
        "values.yaml",
        "global:\n  hub: mirror.example/istio\n  tag: 9.9.9\n  proxy:\n    logLevel: debug\n",
    );
    let mesh = write(
        dir.path(),
        "mesh.yaml",
        "trustDomain: corp.example\ndefaultConfig:\n  proxyMetadata:\n    DNS_CAPTURE: \"true\"\n",
    );
    let out = Command::new(meshd_bin())
        .args(["kube-inject", "-f", &fixture("shop.yaml"), "--values"])
        .arg(&values)
        .arg("--mesh-config")
        .arg(&mesh)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = docs(&String::from_utf8(out.stdout).unwrap());
    let proxy = &d[1]["spec"]["template"]["spec"]["containers"][1];
    assert_eq!(proxy["image"], "mirror.example/istio/proxyv2:9.9.9");
    assert!(proxy["args"]
        .as_array()
        .unwrap()
        .contains(&Value::from("--proxyLogLevel=debug")));
    let env = |n: &str| container_env(proxy, n);
    assert_eq!(env("TRUST_DOMAIN").unwrap(), "corp.example");
    assert_eq!(env("DNS_CAPTURE").unwrap(), "true");
}

#[test]
fn errors_exit_non_zero_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    traffic.sidecar.istio.io/includeInboundPorts: \"eighty\"\nspec:\n  containers:\n  - name: a\n    image: x\n",
    );
    let out = Command::new(meshd_bin())
        .args(["kube-inject", "-f"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Pod p") && err.contains("includeInboundPorts"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing is written for a failed input"
    );

    let broken = write(dir.path(), "broken.yaml", "kind: Pod\nmetadata: [\n");
    let out = Command::new(meshd_bin())
        .args(["kube-inject", "-f"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line"),
        "YAML errors carry a position"
    );

    let out = Command::new(meshd_bin())
        .args(["kube-inject", "-f", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.yaml"));

    let go = write(dir.path(), "inj.yaml", "templates:\n  sidecar: |\n    spec:\n      containers:\n      - name: istio-proxy\n        image: {{ .Values.global.hub }}\n");
    let out = Command::new(meshd_bin())
        .args([
            "kube-inject",
            "-f",
            &fixture("shop.yaml"),
            "--injection-config",
        ])
        .arg(&go)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Go template"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
