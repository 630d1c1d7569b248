//! The ADS server: a tonic `AggregatedDiscoveryService` on `:15010`, one task per stream driving the pure
//! [`AdsState`], debounced pushes from store snapshots, a shared per-proxy resource cache and metrics.

use super::model::PushContext;
use super::protocol::{self, Action, AdsState, Request};
use super::proxy::{NodeType, Proxy, ProxyKey};
use super::translate::{self, Resources};
use crate::store::Snapshot;
use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

type Labels = Vec<(String, String)>;

/// Metrics named like Istio's pilot metrics.
#[derive(Clone)]
pub struct XdsMetrics {
    /// `pilot_xds_pushes{type}`: responses sent.
    pub pushes: Family<Labels, Counter>,
    /// `pilot_xds_push_time`: time to build and send one type to one proxy.
    pub push_time: Family<Labels, Histogram>,
    /// `pilot_proxy_convergence_time`: push start (debounced event) → config sent to a proxy.
    pub convergence: Histogram,
    /// `pilot_xds`: connected proxies.
    pub connected: Gauge,
    /// `pilot_total_xds_rejects{type}`: NACKs.
    pub rejects: Family<Labels, Counter>,
    /// `pilot_push_triggers`: debounced pushes.
    pub push_triggers: Counter,
    /// `pilot_xds_config_size_bytes` total bytes sent.
    pub config_bytes: Counter,
}

impl Default for XdsMetrics {
    fn default() -> Self {
        Self {
            pushes: Family::default(),
            push_time: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 4.0, 10))
            }),
            convergence: Histogram::new([0.01, 0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0]),
            connected: Gauge::default(),
            rejects: Family::default(),
            push_triggers: Counter::default(),
            config_bytes: Counter::default(),
        }
    }
}

impl XdsMetrics {
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "pilot_xds_pushes",
            "Pilot build and send errors for lds, rds, cds and eds",
            self.pushes.clone(),
        );
        r.register(
            "pilot_xds_push_time",
            "Time to build and send one xDS type to one proxy",
            self.push_time.clone(),
        );
        r.register(
            "pilot_proxy_convergence_time",
            "Delay between a config change and a proxy receiving all required configuration",
            self.convergence.clone(),
        );
        r.register(
            "pilot_xds",
            "Number of endpoints connected to this pilot using XDS",
            self.connected.clone(),
        );
        r.register(
            "pilot_total_xds_rejects",
            "Total number of XDS responses from pilot rejected by proxy",
            self.rejects.clone(),
        );
        r.register(
            "pilot_push_triggers",
            "Total number of times a push was triggered",
            self.push_triggers.clone(),
        );
        r.register(
            "pilot_xds_config_size_bytes",
            "Bytes of xDS config sent",
            self.config_bytes.clone(),
        );
    }
}

/// Debounce settings (Istio: `PILOT_DEBOUNCE_AFTER` 100 ms, `PILOT_DEBOUNCE_MAX` 10 s).
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    pub after: Duration,
    pub max: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Self {
            after: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

/// One debounced push: the model plus when its triggering event arrived.
#[derive(Debug)]
pub struct Push {
    pub ctx: Arc<PushContext>,
    pub started: Instant,
}

/// What `/debug/connections` shows for one stream.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionInfo {
    pub conn_id: u64,
    pub proxy: String,
    pub node_type: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub connected_at_unix: u64,
    pub push_version: u64,
    pub watches: BTreeMap<String, WatchInfo>,
    #[serde(skip)]
    pub proxy_value: Option<Proxy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchInfo {
    pub names: usize,
    pub version_sent: Option<String>,
    pub nonce_sent: Option<String>,
    pub version_acked: Option<String>,
    pub nonce_acked: Option<String>,
    pub nacks: u64,
    pub last_nack: Option<String>,
}

#[derive(Default)]
struct Cache {
    version: u64,
    entries: HashMap<ProxyKey, Arc<OnceLock<Arc<Resources>>>>,
}

/// State shared by every stream.
pub struct Shared {
    pub metrics: XdsMetrics,
    push_rx: watch::Receiver<Arc<Push>>,
    cache: Mutex<Cache>,
    connections: Mutex<BTreeMap<u64, ConnectionInfo>>,
    next_conn: AtomicU64,
    next_nonce: AtomicU64,
    shutdown: watch::Receiver<bool>,
    /// Count of translations actually computed (cache misses), for tests and benchmarks.
    pub builds: AtomicU64,
    push_permits: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    /// The latest push.
    pub fn current(&self) -> Arc<Push> {
        self.push_rx.borrow().clone()
    }

    /// Connected streams.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.connections
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Resources for `proxy` under `ctx`, computed once per (snapshot version, proxy inputs).
    pub fn resources(&self, ctx: &Arc<PushContext>, proxy: &Proxy) -> Arc<Resources> {
        let cell = {
            let Ok(mut cache) = self.cache.lock() else {
                return Arc::new(translate::build(ctx, proxy));
            };
            if ctx.version > cache.version {
                cache.version = ctx.version;
                cache.entries.clear();
            }
            if ctx.version < cache.version {
                None
            } else {
                Some(cache.entries.entry(proxy.cache_key()).or_default().clone())
            }
        };
        match cell {
            Some(cell) => cell
                .get_or_init(|| {
                    self.builds.fetch_add(1, Ordering::Relaxed);
                    Arc::new(translate::build(ctx, proxy))
                })
                .clone(),
            None => Arc::new(translate::build(ctx, proxy)),
        }
    }

    fn nonce(&self) -> String {
        let n = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        format!("{n:x}")
    }
}

/// Starts the debouncer: snapshots in, pushes out. Returns the push receiver and the task.
pub fn debouncer(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    debounce: Debounce,
    metrics: XdsMetrics,
    mut shutdown: watch::Receiver<bool>,
) -> (watch::Receiver<Arc<Push>>, tokio::task::JoinHandle<()>) {
    let first = snapshots.borrow_and_update().clone();
    let (tx, rx) = watch::channel(Arc::new(Push {
        ctx: Arc::new(PushContext::new(first)),
        started: Instant::now(),
    }));
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                r = snapshots.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
            let first_event = Instant::now();
            let mut last_event = first_event;
            loop {
                let deadline = (last_event + debounce.after).min(first_event + debounce.max);
                tokio::select! {
                    r = snapshots.changed() => {
                        if r.is_err() { return }
                        last_event = Instant::now();
                    }
                    _ = tokio::time::sleep_until(deadline.into()) => break,
                    _ = shutdown.changed() => return,
                }
            }
            let snap = snapshots.borrow_and_update().clone();
            let version = snap.version;
            let Ok(ctx) = tokio::task::spawn_blocking(move || PushContext::new(snap)).await else {
                continue;
            };
            metrics.push_triggers.inc();
            tracing::info!(
                version,
                debounce_ms = first_event.elapsed().as_millis() as u64,
                "pushing config"
            );
            tx.send_replace(Arc::new(Push {
                ctx: Arc::new(ctx),
                started: first_event,
            }));
        }
    });
    (rx, task)
}

/// The tonic service.
#[derive(Clone)]
pub struct AdsService {
    pub shared: Arc<Shared>,
}

impl AdsService {
    /// `push_concurrency` bounds how many streams push at once (Istio's `PILOT_PUSH_THROTTLE`); a stream
    /// holds its slot until Envoy answers the push (or 5 s pass), which bounds in-flight memory.
    pub fn new(
        push_rx: watch::Receiver<Arc<Push>>,
        metrics: XdsMetrics,
        shutdown: watch::Receiver<bool>,
        push_concurrency: usize,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                push_permits: Arc::new(tokio::sync::Semaphore::new(push_concurrency.max(1))),
                metrics,
                push_rx,
                cache: Mutex::new(Cache::default()),
                connections: Mutex::new(BTreeMap::new()),
                next_conn: AtomicU64::new(1),
                next_nonce: AtomicU64::new(1),
                shutdown,
                builds: AtomicU64::new(0),
            }),
        }
    }

    /// Waits (bounded) until every stream task has finished.
    pub async fn drain(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .shared
                .connections
                .lock()
                .map(|c| c.is_empty())
                .unwrap_or(true)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What a stream task hands to the HTTP body: encoded gRPC message chunks or a final status.
#[derive(Debug)]
pub enum Out {
    /// Bytes of the gRPC framing (length-prefixed messages, possibly split across chunks).
    Data(bytes::Bytes),
    /// End the stream with this status.
    Error(Status),
}

impl AdsService {
    /// Starts the task of one ADS stream; its output goes to `tx`.
    pub fn spawn_stream(&self, input: Streaming<DiscoveryRequest>, tx: mpsc::Sender<Out>) {
        let shared = self.shared.clone();
        let conn_id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut conn = Connection {
                shared: shared.clone(),
                conn_id,
                tx,
                state: AdsState::default(),
                proxy: None,
                push: shared.current(),
                pending_convergence: None,
                permit: None,
                permit_deadline: Instant::now(),
                sent_bodies: HashMap::new(),
            };
            conn.run(input).await;
            if conn.proxy.is_some() {
                shared.metrics.connected.dec();
            }
            if let Ok(mut c) = shared.connections.lock() {
                c.remove(&conn_id);
            }
        });
    }
}

/// gRPC framing of a `DiscoveryResponse` whose `resources` field (2) is already encoded: the small fields
/// are encoded here, the shared resource bytes are appended as-is (protobuf fields may come in any order).
fn frame(head: &DiscoveryResponse, resources: &bytes::Bytes) -> (bytes::Bytes, bytes::Bytes) {
    use bytes::BufMut;
    use prost::Message;
    let prefix_len = head.encoded_len();
    let total = prefix_len + resources.len();
    let mut buf = bytes::BytesMut::with_capacity(5 + prefix_len);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(total).unwrap_or(u32::MAX));
    // Encoding into a BytesMut with enough capacity cannot fail.
    let _ = head.encode(&mut buf);
    (buf.freeze(), resources.clone())
}

struct Connection {
    shared: Arc<Shared>,
    conn_id: u64,
    tx: mpsc::Sender<Out>,
    state: AdsState,
    proxy: Option<Proxy>,
    push: Arc<Push>,
    /// Start time of a push whose convergence is not yet recorded.
    pending_convergence: Option<Instant>,
    /// Push slot held until Envoy answers the push.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    permit_deadline: Instant,
    /// Content hash of the last response body sent per type (to skip unchanged types on a push).
    sent_bodies: HashMap<String, u64>,
}

impl Connection {
    async fn run(&mut self, mut input: Streaming<DiscoveryRequest>) {
        let mut push_rx = self.shared.push_rx.clone();
        push_rx.borrow_and_update();
        self.push = push_rx.borrow().clone();
        let mut shutdown = self.shared.shutdown.clone();
        if *shutdown.borrow() {
            return;
        }
        loop {
            let holding = self.permit.is_some();
            let deadline = self.permit_deadline;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()), if holding => {
                    self.permit = None;
                }
                msg = input.message() => match msg {
                    Ok(Some(req)) => {
                        if self.on_request(req).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(conn = self.conn_id, %status, "ADS stream ended");
                        break;
                    }
                },
                r = push_rx.changed() => {
                    if r.is_err() { break }
                    self.push = push_rx.borrow_and_update().clone();
                    if self.proxy.is_some() {
                        if self.permit.is_none() {
                            match self.shared.push_permits.clone().acquire_owned().await {
                                Ok(p) => self.permit = Some(p),
                                Err(_) => break,
                            }
                            // The wait may have outlived this push; send the latest.
                            self.push = push_rx.borrow_and_update().clone();
                        }
                        self.permit_deadline = Instant::now() + Duration::from_secs(5);
                        if self.push_all().await.is_err() {
                            break;
                        }
                        if self.state.answered() {
                            self.permit = None;
                        }
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        if let Some(p) = &self.proxy {
            tracing::info!(conn = self.conn_id, proxy = %p.id, "proxy disconnected");
        }
    }

    async fn on_request(&mut self, req: DiscoveryRequest) -> Result<(), ()> {
        if self.proxy.is_none() {
            match Proxy::from_node(req.node.as_ref()) {
                Ok(p) => {
                    tracing::info!(conn = self.conn_id, proxy = %p.id, "proxy connected");
                    self.shared.metrics.connected.inc();
                    if let Ok(mut c) = self.shared.connections.lock() {
                        c.insert(
                            self.conn_id,
                            ConnectionInfo {
                                conn_id: self.conn_id,
                                proxy: p.id.clone(),
                                node_type: match p.node_type {
                                    NodeType::Sidecar => "sidecar".into(),
                                    NodeType::Router => "router".into(),
                                },
                                namespace: p.namespace.clone(),
                                labels: p.labels.clone(),
                                connected_at_unix: SystemTime::now()
                                    .duration_since(SystemTime::UNIX_EPOCH)
                                    .map(|d| d.as_secs())
                                    .unwrap_or(0),
                                push_version: self.push.ctx.version,
                                watches: BTreeMap::new(),
                                proxy_value: Some(p.clone()),
                            },
                        );
                    }
                    self.proxy = Some(p);
                }
                Err(e) => {
                    tracing::warn!(conn = self.conn_id, error = %e, "rejecting ADS stream");
                    let _ = self
                        .tx
                        .send(Out::Error(Status::invalid_argument(e.to_string())))
                        .await;
                    return Err(());
                }
            }
        }
        let error = req.error_detail.as_ref().map(|e| e.message.as_str());
        let action = self.state.on_request(&Request {
            type_url: &req.type_url,
            version_info: &req.version_info,
            nonce: &req.response_nonce,
            names: &req.resource_names,
            error,
        });
        let short = protocol::short_name(&req.type_url);
        match action {
            Action::Respond => {
                tracing::debug!(conn = self.conn_id, r#type = short, "request");
                if self.permit.is_none() {
                    match self.shared.push_permits.clone().acquire_owned().await {
                        Ok(p) => self.permit = Some(p),
                        Err(_) => return Err(()),
                    }
                }
                self.permit_deadline = Instant::now() + Duration::from_secs(5);
                self.send(&req.type_url).await?;
            }
            Action::Unknown => {
                let resp = DiscoveryResponse {
                    version_info: self.version(),
                    type_url: req.type_url.clone(),
                    nonce: self.shared.nonce(),
                    ..Default::default()
                };
                let (head, _) = frame(&resp, &bytes::Bytes::new());
                self.tx.send(Out::Data(head)).await.map_err(|_| ())?;
            }
            Action::Nack {
                version,
                nonce,
                message,
            } => {
                let proxy = self.proxy.as_ref().map(|p| p.id.as_str()).unwrap_or("");
                tracing::warn!(conn = self.conn_id, proxy, r#type = short, %version, %nonce, error = %message, "proxy rejected config (NACK); it keeps its last good config");
                self.shared
                    .metrics
                    .rejects
                    .get_or_create(&vec![("type".into(), short.into())])
                    .inc();
            }
            Action::Ack => {
                tracing::trace!(conn = self.conn_id, r#type = short, "ack");
            }
            Action::Stale | Action::Unsubscribe => {}
        }
        if self.permit.is_some() && self.state.answered() {
            self.permit = None;
        }
        self.update_info();
        Ok(())
    }

    fn version(&self) -> String {
        format!("{}", self.push.ctx.version)
    }

    async fn push_all(&mut self) -> Result<(), ()> {
        self.pending_convergence = Some(self.push.started);
        let mut cds_sent = false;
        for t in self.state.push_types() {
            // A type whose resources did not change is not re-sent, except EDS after CDS (Envoy only
            // finishes warming a changed cluster with a fresh EDS response).
            let must = t == protocol::ENDPOINT && cds_sent;
            if !must && self.unchanged(t) {
                continue;
            }
            self.send(t).await?;
            cds_sent |= t == protocol::CLUSTER;
        }
        if let Some(start) = self.pending_convergence.take() {
            self.shared
                .metrics
                .convergence
                .observe(start.elapsed().as_secs_f64());
        }
        self.update_info();
        Ok(())
    }

    /// Would the response for `type_url` carry exactly what was last sent on this stream?
    fn unchanged(&self, type_url: &str) -> bool {
        let Some(proxy) = self.proxy.as_ref() else {
            return false;
        };
        let Some(last) = self.sent_bodies.get(type_url) else {
            return false;
        };
        let res = self.shared.resources(&self.push.ctx, proxy);
        res.response_body(
            type_url,
            self.state.requested(type_url),
            &self.push.ctx.interner,
        )
        .is_some_and(|(_, hash)| hash == *last)
    }

    async fn send(&mut self, type_url: &str) -> Result<(), ()> {
        let Some(proxy) = self.proxy.clone() else {
            return Ok(());
        };
        let started = Instant::now();
        let ctx = self.push.ctx.clone();
        let res = self.shared.resources(&ctx, &proxy);
        let Some((body, hash)) =
            res.response_body(type_url, self.state.requested(type_url), &ctx.interner)
        else {
            return Ok(());
        };
        let version = self.version();
        let nonce = self.shared.nonce();
        let bytes = body.len();
        let head = DiscoveryResponse {
            version_info: version.clone(),
            type_url: type_url.to_string(),
            nonce: nonce.clone(),
            control_plane: Some(ControlPlane {
                identifier: "meshd".into(),
            }),
            ..Default::default()
        };
        self.sent_bodies.insert(type_url.to_string(), hash);
        let (prefix, resources) = frame(&head, &body);
        self.tx.send(Out::Data(prefix)).await.map_err(|_| ())?;
        if !resources.is_empty() {
            self.tx.send(Out::Data(resources)).await.map_err(|_| ())?;
        }
        self.state.on_sent(type_url, &version, &nonce);
        let labels = vec![(
            "type".to_string(),
            protocol::short_name(type_url).to_string(),
        )];
        self.shared.metrics.pushes.get_or_create(&labels).inc();
        self.shared.metrics.config_bytes.inc_by(bytes as u64);
        self.shared
            .metrics
            .push_time
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn update_info(&self) {
        let Ok(mut c) = self.shared.connections.lock() else {
            return;
        };
        let Some(info) = c.get_mut(&self.conn_id) else {
            return;
        };
        info.push_version = self.push.ctx.version;
        info.watches = self
            .state
            .watches
            .iter()
            .map(|(t, w)| {
                (
                    protocol::short_name(t).to_string(),
                    WatchInfo {
                        names: w.names.len(),
                        version_sent: w.version_sent.clone(),
                        nonce_sent: w.nonce_sent.clone(),
                        version_acked: w.version_acked.clone(),
                        nonce_acked: w.nonce_acked.clone(),
                        nacks: w.nacks,
                        last_nack: w.last_nack.clone(),
                    },
                )
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(v: u64) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            version: v,
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn debounce_waits_for_quiet_and_caps_at_max() {
        let (tx, rx) = watch::channel(snap(1));
        let (_stop_tx, stop_rx) = watch::channel(false);
        let d = Debounce {
            after: Duration::from_millis(100),
            max: Duration::from_millis(400),
        };
        let (mut push_rx, task) = debouncer(rx, d, XdsMetrics::default(), stop_rx);
        push_rx.borrow_and_update();
        // Quiet case: one change, pushed about `after` later.
        let t = Instant::now();
        tx.send_replace(snap(2));
        push_rx.changed().await.expect("push");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(90) && took < Duration::from_millis(400),
            "{took:?}"
        );
        assert_eq!(push_rx.borrow_and_update().ctx.version, 2);
        // Constant changes every 30 ms: the push still happens by `max`.
        let t = Instant::now();
        let feeder = tokio::spawn(async move {
            for v in 3..40 {
                tx.send_replace(snap(v));
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
        push_rx.changed().await.expect("push");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(350) && took < Duration::from_millis(900),
            "{took:?}"
        );
        feeder.abort();
        task.abort();
    }
}
