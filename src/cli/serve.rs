//! `meshd serve`: flags for the long-running server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::NativeFlag;

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address of the HTTPS admission server (/inject, /validate).
    #[arg(long, default_value = "0.0.0.0:15017", env = "MESHD_WEBHOOK_ADDR")]
    pub webhook_addr: SocketAddr,
    /// Address of the xDS (ADS, gRPC, plaintext) discovery server.
    #[arg(long, default_value = "0.0.0.0:15010", env = "MESHD_XDS_ADDR")]
    pub xds_addr: SocketAddr,
    /// Config directory for xDS (Kubernetes objects in YAML/JSON; re-read on change). Without it
    /// the bundled samples are served.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// Run only the admission webhooks (the discovery server runs elsewhere, e.g. `meshd discovery`).
    #[arg(long)]
    pub no_xds: bool,
    /// Address of the plain-HTTP monitoring server (/metrics, /healthz, /ready).
    #[arg(long, default_value = "0.0.0.0:15014", env = "MESHD_MONITORING_ADDR")]
    pub monitoring_addr: SocketAddr,
    /// Serving certificate (PEM chain). Created with a private CA beside it when absent.
    #[arg(long, default_value = "certs/tls.crt")]
    pub tls_cert: PathBuf,
    /// Serving key (PEM).
    #[arg(long, default_value = "certs/tls.key")]
    pub tls_key: PathBuf,
    /// How often the certificate files are checked for changes.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub cert_reload_interval: std::time::Duration,
    /// Namespace meshd runs in (for certificate names).
    #[arg(long, env = "POD_NAMESPACE", default_value = "istio-system")]
    pub namespace: String,
    /// Service name in front of meshd (for certificate names).
    #[arg(long, default_value = "meshd")]
    pub service_name: String,
    /// Injector values (the `values` key of the istio-sidecar-injector ConfigMap).
    #[arg(long)]
    pub values: Option<PathBuf>,
    /// Mesh config (the `mesh` key of the istio ConfigMap).
    #[arg(long)]
    pub mesh_config: Option<PathBuf>,
    /// Injector config (the `config` key of the istio-sidecar-injector ConfigMap).
    #[arg(long)]
    pub injection_config: Option<PathBuf>,
    /// Directory of minijinja templates replacing or adding to the built-in ones.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Native sidecars: false (classic), true, or auto (needs node versions from the kube source).
    #[arg(long, value_enum, default_value = "false")]
    pub native_sidecars: NativeFlag,
    /// Control-plane revision (`default` is the default revision).
    #[arg(long)]
    pub revision: Option<String>,
    /// How long an HTTP/1.1 client may take to send its request headers.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: std::time::Duration,
    /// How long shutdown waits for in-flight requests.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: std::time::Duration,
    /// Keep meshd's webhook configurations up to date through the Kubernetes API (caBundle,
    /// failurePolicy). Implied by --kubeconfig; in-cluster configuration otherwise.
    #[arg(long)]
    pub kube: bool,
    /// kubeconfig file for the Kubernetes API.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// CA certificate written into the webhooks' caBundle (default: ca.crt beside --tls-cert).
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Name of meshd's MutatingWebhookConfiguration (default as `meshd manifest generate` names it).
    #[arg(long)]
    pub mutating_webhook_config: Option<String>,
    /// Name of meshd's ValidatingWebhookConfiguration (default as `meshd manifest generate` names it).
    #[arg(long)]
    pub validating_webhook_config: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

/// Parses a Go-style duration flag (`10s`, `1m30s`, `500ms`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match crate::config::mesh::parse_go_duration(s) {
        Some(n) if n >= 0 => Ok(std::time::Duration::from_nanos(
            u64::try_from(n).map_err(|_| "too long".to_string())?,
        )),
        _ => Err(format!("{s:?} is not a duration like 10s, 500ms or 1m30s")),
    }
}
