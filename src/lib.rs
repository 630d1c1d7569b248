//! meshd: Istio-compatible sidecar injector, config validator and xDS control plane.
//!
//! Module map (one concern each, see DESIGN.md):
//! - [`config`]: MeshConfig, injection values and injector config with Istio's defaults.
//! - [`inject`]: the injection decision, template rendering, merge, post-processing and patch.
//! - [`admission`]: AdmissionReview decoding, body rules, responses and the axum router.
//! - [`tls`]: certificate authority, serving certificates, loading and hot reload.
//! - [`telemetry`]: tracing setup, the metrics registry and the `:15014` admin server.
//! - [`app`]: wiring for `meshd serve`; owns every long-lived task.
//! - [`istio`]: typed Istio API objects with lenient and strict decoding.
//! - [`validate`]: validation rules per Istio kind (pure).
//! - [`server`]: HTTPS/HTTP serving with timeouts and graceful shutdown.
//! - [`manifest`]: deployment manifests rendered from `deploy/` profiles and templates.
//! - [`kube`]: the Kubernetes client: webhook configuration upkeep (caBundle, failurePolicy).
//! - [`cli`]: clap definitions, one file per subcommand.
//! - [`store`]: the versioned config snapshot and its file source.
//! - [`xds`]: bootstrap, translation, ADS protocol and server.

pub mod admission;
pub mod app;
pub mod cli;
pub mod config;
pub mod inject;
pub mod istio;
pub mod kube;
pub mod manifest;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod validate;
pub mod xds;
