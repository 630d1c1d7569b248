//! Observability: tracing setup, the Prometheus metrics meshd exports (named like Istio's), and
//! the plain-HTTP monitoring server on :15014 (`/metrics`, `/healthz`, `/ready`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label set for failures: the kind of failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Webhook metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub injection_requests: Counter,
    pub injection_success: Counter,
    pub injection_skip: Counter,
    pub injection_failure: Family<ReasonLabel, Counter>,
    pub injection_time: Histogram,
    pub validation_passed: Counter,
    pub validation_failed: Family<ReasonLabel, Counter>,
    pub cert_reloads: Counter,
    pub cert_reload_failures: Counter,
    pub cert_expiry_seconds: Gauge,
    pub webhook_patch_attempts: Counter,
    pub webhook_patch_failures: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            injection_requests: Counter::default(),
            injection_success: Counter::default(),
            injection_skip: Counter::default(),
            injection_failure: Family::default(),
            injection_time: Histogram::new([
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            validation_passed: Counter::default(),
            validation_failed: Family::default(),
            cert_reloads: Counter::default(),
            cert_reload_failures: Counter::default(),
            cert_expiry_seconds: Gauge::default(),
            webhook_patch_attempts: Counter::default(),
            webhook_patch_failures: Counter::default(),
        };
        registry.register(
            "sidecar_injection_requests",
            "Total injection requests",
            m.injection_requests.clone(),
        );
        registry.register(
            "sidecar_injection_success",
            "Successful injections",
            m.injection_success.clone(),
        );
        registry.register(
            "sidecar_injection_skip",
            "Requests for which injection was skipped",
            m.injection_skip.clone(),
        );
        registry.register(
            "sidecar_injection_failure",
            "Failed injection requests",
            m.injection_failure.clone(),
        );
        registry.register(
            "sidecar_injection_time_seconds",
            "Time taken by an injection request",
            m.injection_time.clone(),
        );
        registry.register(
            "galley_validation_passed",
            "Resources that passed validation",
            m.validation_passed.clone(),
        );
        registry.register(
            "galley_validation_failed",
            "Resources that failed validation",
            m.validation_failed.clone(),
        );
        registry.register(
            "meshd_cert_reloads",
            "Serving certificate reloads",
            m.cert_reloads.clone(),
        );
        registry.register(
            "meshd_cert_reload_failures",
            "Rejected certificate reloads",
            m.cert_reload_failures.clone(),
        );
        registry.register(
            "webhook_patch_attempts",
            "caBundle patch attempts",
            m.webhook_patch_attempts.clone(),
        );
        registry.register(
            "webhook_patch_failures",
            "Failed caBundle patches",
            m.webhook_patch_failures.clone(),
        );
        m
    }
}

/// Readiness flags; `/ready` is 200 once all are set.
#[derive(Debug, Default)]
pub struct Readiness {
    pub certs_loaded: AtomicBool,
    pub config_synced: AtomicBool,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.certs_loaded.load(Ordering::Acquire) && self.config_synced.load(Ordering::Acquire)
    }
}

/// Shared state of the monitoring server.
#[derive(Clone)]
pub struct AdminState {
    pub registry: Arc<Mutex<Registry>>,
    pub readiness: Arc<Readiness>,
}

/// The `:15014` router; other modules may merge their `/debug/...` routes into it.
pub fn admin_router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .with_state(state)
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    let result = match s.registry.lock() {
        Ok(reg) => {
            prometheus_client::encoding::text::encode(&mut body, &reg).map_err(|e| e.to_string())
        }
        Err(_) => Err("metrics registry unavailable".to_string()),
    };
    match result {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn ready(State(s): State<AdminState>) -> impl IntoResponse {
    if s.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Installs the tracing subscriber (`RUST_LOG`, default `info`; `--log-json` for JSON lines).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
