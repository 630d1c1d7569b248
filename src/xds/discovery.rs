//! Entry points for running the discovery server: standalone (`meshd discovery`) or wired into
//! `meshd serve`. Owns the config source task, the debouncer and the gRPC server; everything is drained
//! on shutdown.

use super::server::{debouncer, AdsService, Debounce, XdsMetrics};
use crate::store::{self, file::SourceMetrics, Snapshot};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Discovery server settings.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Config directory; `None` serves the embedded samples.
    pub config_dir: Option<PathBuf>,
    /// ADS listen address (Istio: `:15010`).
    pub xds_addr: SocketAddr,
    pub debounce: Debounce,
    /// How often the config directory is polled.
    pub poll_interval: Duration,
    /// Streams pushing at once (Istio: `min(15 + 5 × cores, 100)`).
    pub push_concurrency: usize,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            config_dir: None,
            xds_addr: SocketAddr::from(([127, 0, 0, 1], 15010)),
            debounce: Debounce::default(),
            poll_interval: Duration::from_millis(200),
            push_concurrency: std::thread::available_parallelism()
                .map(|n| (15 + 5 * n.get()).min(100))
                .unwrap_or(25),
        }
    }
}

/// Errors starting or running the discovery server.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("binding xDS address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("config directory {0}: not a directory")]
    ConfigDir(PathBuf),
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A bound, not yet running discovery server.
pub struct Discovery {
    config: DiscoveryConfig,
    listener: tokio::net::TcpListener,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    snapshot_rx: watch::Receiver<Arc<Snapshot>>,
    source_metrics: SourceMetrics,
    metrics: XdsMetrics,
    ads: AdsService,
    shutdown_tx: watch::Sender<bool>,
    debounce_task: tokio::task::JoinHandle<()>,
}

impl Discovery {
    /// Loads the config, registers metrics and binds the ADS port. Must be called inside a tokio runtime.
    pub async fn bind(
        config: DiscoveryConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Discovery, DiscoveryError> {
        let source_metrics = SourceMetrics::default();
        source_metrics.register(registry);
        let initial = match &config.config_dir {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(DiscoveryError::ConfigDir(dir.clone()));
                }
                store::file::initial(dir, &source_metrics)
            }
            None => Arc::new(store::sample_snapshot()),
        };
        let (snapshot_tx, snapshot_rx) = watch::channel(initial);
        Self::bind_with(config, snapshot_tx, snapshot_rx, source_metrics, registry).await
    }

    /// Like [`Discovery::bind`], but fed by an external snapshot channel (e.g. a Kubernetes source);
    /// `config.config_dir` is then ignored.
    pub async fn bind_with_snapshots(
        config: DiscoveryConfig,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Discovery, DiscoveryError> {
        let (tx, _) = watch::channel(snapshots.borrow().clone());
        let rx = snapshots;
        let config = DiscoveryConfig {
            config_dir: None,
            ..config
        };
        Self::bind_with(config, tx, rx, SourceMetrics::default(), registry).await
    }

    async fn bind_with(
        config: DiscoveryConfig,
        snapshot_tx: watch::Sender<Arc<Snapshot>>,
        snapshot_rx: watch::Receiver<Arc<Snapshot>>,
        source_metrics: SourceMetrics,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Discovery, DiscoveryError> {
        let metrics = XdsMetrics::default();
        metrics.register(registry);
        let listener = tokio::net::TcpListener::bind(config.xds_addr)
            .await
            .map_err(|source| DiscoveryError::Bind {
                addr: config.xds_addr,
                source,
            })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (push_rx, debounce_task) = debouncer(
            snapshot_rx.clone(),
            config.debounce,
            metrics.clone(),
            shutdown_rx.clone(),
        );
        let ads = AdsService::new(
            push_rx,
            metrics.clone(),
            shutdown_rx,
            config.push_concurrency,
        );
        Ok(Discovery {
            config,
            listener,
            snapshot_tx,
            snapshot_rx,
            source_metrics,
            metrics,
            ads,
            shutdown_tx,
            debounce_task,
        })
    }

    /// The bound ADS address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// State for the debug router.
    pub fn debug_state(&self) -> DebugState {
        DebugState {
            ads: self.ads.clone(),
            snapshots: self.snapshot_rx.clone(),
        }
    }

    /// xDS metrics handles.
    pub fn metrics(&self) -> &XdsMetrics {
        &self.metrics
    }

    /// Serves until `shutdown` resolves, then stops the source, the debouncer and every stream.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DiscoveryError> {
        let Discovery {
            config,
            listener,
            snapshot_tx,
            source_metrics,
            ads,
            shutdown_tx,
            debounce_task,
            ..
        } = self;
        let mut stop_rx = shutdown_tx.subscribe();
        let source_task = config.config_dir.clone().map(|dir| {
            let mut stop = stop_rx.clone();
            tokio::spawn(store::file::watch_dir(
                dir,
                config.poll_interval,
                snapshot_tx.clone(),
                source_metrics,
                async move {
                    let _ = stop.changed().await;
                },
            ))
        });
        tracing::info!(addr = ?listener.local_addr().ok(), "xDS (ADS) server listening");
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let stop_signal = async move {
            shutdown.await;
            let _ = shutdown_tx.send(true);
        };
        let result = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(super::grpc::AdsGrpc { ads: ads.clone() })
            .serve_with_incoming_shutdown(incoming, async move {
                stop_signal.await;
            })
            .await;
        // Whatever ended the server, stop every task and drain the streams.
        let _ = stop_rx.borrow_and_update();
        drop(snapshot_tx);
        ads.drain(Duration::from_secs(5)).await;
        let _ = debounce_task.await;
        if let Some(t) = source_task {
            let _ = t.await;
        }
        result.map_err(DiscoveryError::from)
    }
}

/// Binds and runs with a fresh config; metrics go into `registry`.
pub async fn run(
    config: DiscoveryConfig,
    registry: &mut prometheus_client::registry::Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DiscoveryError> {
    Discovery::bind(config, registry).await?.run(shutdown).await
}

/// State behind `/debug/*`.
#[derive(Clone)]
pub struct DebugState {
    ads: AdsService,
    snapshots: watch::Receiver<Arc<Snapshot>>,
}

struct DumpQuery {
    proxy: Option<String>,
    format: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(uri: &axum::http::Uri) -> DumpQuery {
    let mut q = DumpQuery {
        proxy: None,
        format: None,
    };
    for pair in uri.query().unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "proxy" => q.proxy = Some(percent_decode(v)),
            "format" => q.format = Some(percent_decode(v)),
            _ => {}
        }
    }
    q
}

impl DebugState {
    /// How many per-proxy translations were computed (cache misses) so far.
    pub fn builds(&self) -> u64 {
        self.ads
            .shared
            .builds
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connected proxies.
    pub fn connections(&self) -> Vec<super::server::ConnectionInfo> {
        self.ads.shared.connections()
    }
}

/// `/debug/connections`, `/debug/config_dump?proxy=ID[&format=debug]`, `/debug/configz` (the store).
pub fn debug_router(state: DebugState) -> Router {
    Router::new()
        .route("/debug/connections", get(connections))
        .route("/debug/config_dump", get(config_dump))
        .route("/debug/configz", get(configz))
        .with_state(state)
}

/// The `/debug/connections` document as a JSON string.
pub fn connections_json(state: &DebugState) -> String {
    serde_json::to_string(&state.ads.shared.connections()).unwrap_or_default()
}

async fn connections(State(s): State<DebugState>) -> impl IntoResponse {
    Json(s.ads.shared.connections())
}

async fn configz(State(s): State<DebugState>) -> impl IntoResponse {
    let snap = s.snapshots.borrow().clone();
    Json(snap.summary())
}

async fn config_dump(
    State(s): State<DebugState>,
    uri: axum::http::Uri,
) -> axum::response::Response {
    let q = parse_query(&uri);
    let Some(id) = q.proxy else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "query parameter proxy=ID is required\n",
        )
            .into_response();
    };
    let conns = s.ads.shared.connections();
    let Some(proxy) = conns
        .iter()
        .find(|c| c.proxy == id)
        .and_then(|c| c.proxy_value.clone())
    else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            format!("proxy {id:?} is not connected\n"),
        )
            .into_response();
    };
    let push = s.ads.shared.current();
    let debug = q.format.as_deref() == Some("debug");
    let section = |names: Vec<(String, String)>| -> serde_json::Value {
        names
            .into_iter()
            .map(|(n, d)| {
                if debug {
                    serde_json::json!({"name": n, "config": d})
                } else {
                    serde_json::json!({"name": n})
                }
            })
            .collect()
    };

    let t = &crate::xds::translate::generate(&push.ctx, &proxy);
    Json(serde_json::json!({
        "proxy": id,
        "version": push.ctx.version,
        "clusters": section(t.clusters.iter().map(|c| (c.name.clone(), format!("{c:?}"))).collect()),
        "endpoints": section(t.endpoints.iter().map(|c| (c.cluster_name.clone(), format!("{c:?}"))).collect()),
        "listeners": section(t.listeners.iter().map(|c| (c.name.clone(), format!("{c:?}"))).collect()),
        "routes": section(t.routes.iter().map(|c| (c.name.clone(), format!("{c:?}"))).collect()),
    }))
    .into_response()
}

/// A minimal `:15014`-style router for the standalone discovery process: `/metrics`, `/healthz`,
/// `/ready` plus the debug routes.
pub fn monitoring_router(
    registry: Arc<prometheus_client::registry::Registry>,
    state: DebugState,
) -> Router {
    let metrics = move || {
        let registry = registry.clone();
        async move {
            let mut out = String::new();
            match prometheus_client::encoding::text::encode(&mut out, &registry) {
                Ok(()) => (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    out,
                )
                    .into_response(),
                Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
    };
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ready", get(|| async { "ready\n" }))
        .merge(debug_router(state))
}
