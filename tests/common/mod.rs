//! Shared helpers for end-to-end tests: running the real `meshd` binary on free ports with
//! certificates it generated, and HTTPS clients that verify its CA.
#![allow(dead_code)]

pub mod xds;
#[allow(unused_imports)]
pub use xds::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn meshd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_meshd")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `meshd serve`, killed on drop.
pub struct Server {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub webhook_port: u16,
    pub monitoring_port: u16,
    pub xds_port: u16,
    pub log: PathBuf,
}

impl Server {
    /// Starts `meshd serve` in a fresh directory (it creates `certs/` itself) with extra flags.
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        let webhook_port = free_port();
        let monitoring_port = free_port();
        let xds_port = free_port();
        let log = dir.path().join("meshd.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(meshd_bin())
            .current_dir(dir.path())
            .args([
                "serve",
                "--webhook-addr",
                &format!("127.0.0.1:{webhook_port}"),
            ])
            .args(["--monitoring-addr", &format!("127.0.0.1:{monitoring_port}")])
            .args(["--xds-addr", &format!("127.0.0.1:{xds_port}")])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn meshd");
        let s = Server {
            child: Some(child),
            dir,
            webhook_port,
            monitoring_port,
            xds_port,
            log,
        };
        s.wait_ready();
        s
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) =
                http_get_status(&format!("http://127.0.0.1:{}/ready", self.monitoring_port))
            {
                if r == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("meshd did not become ready; log:\n{}", self.log_text());
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.webhook_port, path)
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("certs/ca.crt")).unwrap()
    }

    pub fn client(&self) -> reqwest::Client {
        client_with_roots(&[self.ca_pem()], false)
    }

    /// The Prometheus text of `:15014/metrics`.
    pub fn metrics(&self) -> String {
        http_get(&format!(
            "http://127.0.0.1:{}/metrics",
            self.monitoring_port
        ))
        .map(|(_, body)| body)
        .unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.pid().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.terminate_after_signal()
    }

    /// Waits for the exit status after a signal was sent.
    pub fn terminate_after_signal(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "meshd did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An HTTPS client trusting only the given CAs (PEM). `fresh` disables connection reuse.
pub fn client_with_roots(cas: &[Vec<u8>], fresh: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10));
    for ca in cas {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap());
    }
    if fresh {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().unwrap()
}

/// Tiny blocking GET over plain HTTP; returns the status code.
pub fn http_get_status(url: &str) -> std::io::Result<u16> {
    Ok(http_get(url)?.0)
}

/// Tiny blocking GET over plain HTTP; returns status and body.
pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// An AdmissionReview for a pod.
pub fn review(
    api_version: &str,
    uid: &str,
    pod: &serde_json::Value,
    namespace: &str,
    dry_run: bool,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "dryRun": dry_run,
            "object": pod,
        }
    })
}

/// The pod a Deployment's ReplicaSet creates (generateName + controller owner reference).
pub fn deployment_pod(name: &str, annotations: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": format!("{name}-5c9d7f6b8d-"),
            "labels": {"app": name, "pod-template-hash": "5c9d7f6b8d"},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-5c9d7f6b8d"), "uid": "6f1c", "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "serviceAccountName": name,
            "containers": [{"name": name, "image": format!("registry.example/{name}:2.1"), "ports": [{"name": "http", "containerPort": 9080}],
                "readinessProbe": {"httpGet": {"path": "/health", "port": 9080}}}]
        }
    })
}

/// Requires a tool on PATH, failing with install instructions when it is missing.
pub fn require_tool(tool: &str, how: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let cand = dir.join(tool);
        if cand.is_file() {
            return cand;
        }
    }
    panic!("{tool} is required for this test but was not found on PATH; install it: {how}");
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Names of the containers in `obj.spec.<list>` (a pod or a pod template).
pub fn container_names(obj: &serde_json::Value, list: &str) -> Vec<String> {
    obj["spec"][list]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of env var `name` of a container, if set.
pub fn container_env(container: &serde_json::Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_string)
}
