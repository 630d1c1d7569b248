//! End to end over real HTTPS: `meshd serve` as a process, clients verifying its generated CA,
//! patches applied with the real kubectl.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{json, Value};

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let r = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "status for {url}");
    r.json().await.unwrap()
}

fn decode_patch(resp: &Value) -> Option<Value> {
    let p = resp["response"]["patch"].as_str()?;
    Some(
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(p).unwrap())
            .unwrap(),
    )
}

#[tokio::test]
async fn deployment_pod_is_injected_and_the_patch_applies_with_kubectl() {
    let kubectl = require_tool(
        "kubectl",
        "apt-get install kubectl (or see https://kubernetes.io/docs/tasks/tools/)",
    );
    let server = Server::start(&[]);
    let pod = deployment_pod("reviews", json!({}));
    let resp = post(
        &server.client(),
        &server.url("/inject"),
        &review("admission.k8s.io/v1", "uid-1", &pod, "bookinfo", false),
    )
    .await;
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(resp["kind"], "AdmissionReview");
    assert_eq!(resp["response"]["uid"], "uid-1");
    assert_eq!(resp["response"]["allowed"], true);
    assert_eq!(resp["response"]["patchType"], "JSONPatch");
    let patch = decode_patch(&resp).expect("a patch");

    let dir = tempfile::tempdir().unwrap();
    let pod_file = write(dir.path(), "pod.json", &pod.to_string());
    let out = Command::new(kubectl)
        .args(["patch", "--local", "-f"])
        .arg(&pod_file)
        .args(["--type=json", "-o", "json", "-p", &patch.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl patch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patched: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = |l: &str| {
        patched["spec"][l]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("initContainers"), ["istio-init"]);
    assert_eq!(names("containers"), ["reviews", "istio-proxy"]);
    let proxy = &patched["spec"]["containers"][1];
    let env = |n: &str| container_env(proxy, n);
    assert_eq!(
        env("ISTIO_META_OWNER").unwrap(),
        "kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/reviews"
    );
    assert_eq!(env("ISTIO_META_WORKLOAD_NAME").unwrap(), "reviews");
    assert_eq!(
        patched["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"],
        15020
    );
    assert_eq!(
        patched["metadata"]["labels"]["service.istio.io/canonical-name"],
        "reviews"
    );
    // Injecting the injected pod again changes nothing.
    let again = post(
        &server.client(),
        &server.url("/inject"),
        &review("admission.k8s.io/v1", "uid-2", &patched, "bookinfo", false),
    )
    .await;
    assert_eq!(again["response"]["allowed"], true);
    assert!(
        decode_patch(&again).is_none_or(|p| p.as_array().unwrap().is_empty()),
        "re-injection patch: {again}"
    );
}

#[tokio::test]
async fn opted_out_pod_gets_no_patch_and_is_counted_as_skipped() {
    let server = Server::start(&[]);
    let pod = deployment_pod("legacy", json!({"sidecar.istio.io/inject": "false"}));
    let resp = post(
        &server.client(),
        &server.url("/inject"),
        &review("admission.k8s.io/v1", "u", &pod, "default", false),
    )
    .await;
    assert_eq!(resp["response"]["allowed"], true);
    assert!(resp["response"].get("patch").is_none());
    let metrics = server.metrics();
    assert!(
        metrics.contains("sidecar_injection_skip_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sidecar_injection_requests_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn http_rules_for_bad_requests() {
    let server = Server::start(&[]);
    let c = server.client();
    let url = server.url("/inject");
    // Wrong content type → 415.
    let r = c
        .post(&url)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Empty body → 400.
    let r = c
        .post(&url)
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Over 6 MiB → 400.
    let big = vec![b' '; 6 * 1024 * 1024 + 10];
    let r = c
        .post(&url)
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Undecodable review → 200, denied with a message, v1beta1 fallback, no uid.
    let r = c
        .post(&url)
        .header("Content-Type", "application/json")
        .body("{\"kind\": 1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(v["response"]["allowed"], false);
    assert!(v["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("decode"));
    assert!(v["response"].get("uid").is_none());
    // v1beta1 reviews are answered in v1beta1.
    let pod = deployment_pod("ratings", json!({}));
    let v = post(
        &c,
        &url,
        &review("admission.k8s.io/v1beta1", "b1", &pod, "default", false),
    )
    .await;
    assert_eq!(
        (v["apiVersion"].as_str(), v["response"]["uid"].as_str()),
        (Some("admission.k8s.io/v1beta1"), Some("b1"))
    );
    assert!(decode_patch(&v).is_some());
    // The server is still healthy after all of that.
    assert_eq!(
        http_get_status(&format!(
            "http://127.0.0.1:{}/healthz",
            server.monitoring_port
        ))
        .unwrap(),
        200
    );
}

#[tokio::test]
async fn bad_annotation_is_denied_naming_it() {
    let server = Server::start(&[]);
    let pod = deployment_pod(
        "web",
        json!({"traffic.sidecar.istio.io/excludeOutboundIPRanges": "*", "sidecar.istio.io/proxyMemory": "lots"}),
    );
    let v = post(
        &server.client(),
        &server.url("/inject"),
        &review("admission.k8s.io/v1", "x", &pod, "default", false),
    )
    .await;
    assert_eq!(v["response"]["allowed"], false);
    let msg = v["response"]["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("traffic.sidecar.istio.io/excludeOutboundIPRanges")
            && msg.contains("sidecar.istio.io/proxyMemory"),
        "{msg}"
    );
    assert!(v["response"].get("patch").is_none());
}

#[tokio::test]
async fn dry_run_gets_the_identical_answer() {
    let server = Server::start(&[]);
    let c = server.client();
    let pod = deployment_pod("details", json!({"sidecar.istio.io/proxyCPU": "250m"}));
    let a = post(
        &c,
        &server.url("/inject"),
        &review("admission.k8s.io/v1", "same", &pod, "default", false),
    )
    .await;
    let b = post(
        &c,
        &server.url("/inject"),
        &review("admission.k8s.io/v1", "same", &pod, "default", true),
    )
    .await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn path_segments_set_cluster_and_network() {
    let server = Server::start(&[]);
    let pod = deployment_pod("web", json!({}));
    let v = post(
        &server.client(),
        &server.url("/inject/cluster/east/net/net1"),
        &review("admission.k8s.io/v1", "p", &pod, "default", false),
    )
    .await;
    let patch = decode_patch(&v).unwrap();
    let mut applied = pod.clone();
    let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
    json_patch::patch(&mut applied, &patch).unwrap();
    let proxy = applied["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "istio-proxy")
        .unwrap();
    let env = |n: &str| {
        proxy["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(env("ISTIO_META_CLUSTER_ID"), "east");
    assert_eq!(env("ISTIO_META_NETWORK"), "net1");
    assert_eq!(
        applied["metadata"]["labels"]["topology.istio.io/network"],
        "net1"
    );
}

#[tokio::test]
async fn http2_and_http1_are_both_served() {
    let server = Server::start(&[]);
    let pod = deployment_pod("web", json!({}));
    let body = review("admission.k8s.io/v1", "h", &pod, "default", false).to_string();
    let h2 = server
        .client()
        .post(server.url("/inject"))
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .build()
        .unwrap()
        .post(server.url("/inject"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.status(), 200);
}

fn served_leaf(port: u16, roots: &[Vec<u8>]) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(r) {
            store.add(c.unwrap()).unwrap();
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(cfg), "localhost".try_into().unwrap())
            .unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    conn.peer_certificates().unwrap()[0].as_ref().to_vec()
}

fn pem_der(path: &std::path::Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(path)
        .unwrap()
        .as_ref()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_traffic_drops_nothing() {
    let server = Server::start(&["--cert-reload-interval", "200ms"]);
    let old_ca = server.ca_pem();
    // A new CA and certificate, prepared elsewhere, then moved into place atomically.
    let staging = tempfile::tempdir().unwrap();
    let out = Command::new(meshd_bin())
        .args(["certs", "generate", "--out"])
        .arg(staging.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let new_ca = std::fs::read(staging.path().join("ca.crt")).unwrap();
    assert_ne!(old_ca, new_ca);
    assert_eq!(
        served_leaf(server.webhook_port, std::slice::from_ref(&old_ca)),
        pem_der(&server.path("certs/tls.crt"))
    );

    let client = client_with_roots(&[old_ca.clone(), new_ca.clone()], true);
    let url = server.url("/inject");
    let body = review(
        "admission.k8s.io/v1",
        "r",
        &deployment_pod("web", json!({})),
        "default",
        false,
    );
    let traffic = tokio::spawn(async move {
        let (mut ok, mut failed) = (0u32, Vec::new());
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            match client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => ok += 1,
                Ok(r) => failed.push(format!("status {}", r.status())),
                Err(e) => failed.push(e.to_string()),
            }
        }
        (ok, failed)
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    for f in ["tls.key", "tls.crt"] {
        std::fs::rename(staging.path().join(f), server.path(&format!("certs/{f}"))).unwrap();
    }
    let new_leaf = pem_der(&server.path("certs/tls.crt"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let port = server.webhook_port;
    let roots = vec![new_ca.clone()];
    loop {
        let r = roots.clone();
        let seen = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(|| served_leaf(port, &r)).ok()
        })
        .await
        .unwrap();
        if seen.as_ref() == Some(&new_leaf) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 5s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, failed) = traffic.await.unwrap();
    assert!(
        failed.is_empty(),
        "requests failed during rotation: {failed:?}"
    );
    assert!(ok > 10, "too little traffic to mean anything: {ok}");
    assert!(server.log_text().contains("serving certificate reloaded"));
}

#[test]
fn sigterm_lets_an_in_flight_review_finish() {
    let mut server = Server::start(&[]);
    let body = review(
        "admission.k8s.io/v1",
        "drain",
        &deployment_pod("web", json!({})),
        "default",
        false,
    )
    .to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut conn = tls_stream(&server);
    write!(conn, "POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}", body.len()).unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.pid().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(tail.as_bytes()).unwrap();
    conn.flush().unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match std::io::Read::read(&mut conn, &mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if String::from_utf8_lossy(&buf).contains("\"uid\":\"drain\"") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "in-flight review was not answered: {text}"
    );
    assert!(text.contains("\"allowed\":true"));
    let status = server.terminate_after_signal();
    assert!(status.success(), "meshd exited with {status}");
}

#[test]
fn slow_headers_are_cut_off() {
    let server = Server::start(&["--header-read-timeout", "500ms"]);
    let mut conn = tls_stream(&server);
    write!(conn, "POST /inject HTTP/1.1\r\nHost: local").unwrap();
    conn.flush().unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let n = std::io::Read::read(&mut conn, &mut buf).unwrap_or(0);
    let waited = start.elapsed();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        n == 0 || text.contains("408"),
        "expected the connection to be closed, got {text:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "connection held for {waited:?}"
    );
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

fn tls_stream(server: &Server) -> TlsStream {
    use rustls_pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&server.ca_pem()) {
        store.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(cfg), "localhost".try_into().unwrap())
            .unwrap();
    let sock = std::net::TcpStream::connect(("127.0.0.1", server.webhook_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}
