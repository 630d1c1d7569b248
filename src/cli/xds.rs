//! clap definitions for the xDS subcommands: `bootstrap`, `discovery`, `proxy-config`.

use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// `meshd bootstrap`: print an Envoy bootstrap (JSON) that connects to meshd over ADS.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// meshd's ADS address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub xds_address: String,
    /// Istio node id: sidecar~IP~POD.NS~NS.svc.cluster.local or router~…
    #[arg(long)]
    pub node_id: String,
    /// Pod label (repeatable), sent as node metadata LABELS.
    #[arg(long = "label", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
    /// Extra node metadata (repeatable).
    #[arg(long = "meta", value_parser = key_value)]
    pub meta: Vec<(String, String)>,
    /// Envoy admin port.
    #[arg(long, default_value_t = 15000)]
    pub admin_port: u16,
    /// Envoy admin bind address.
    #[arg(long, default_value = "127.0.0.1")]
    pub admin_address: String,
    /// node.cluster (default: <app label>.<namespace>).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// `meshd discovery`: the xDS discovery server alone (the deployment's discovery sidecar).
#[derive(Debug, Args)]
pub struct DiscoveryArgs {
    /// Config directory (default: the embedded samples).
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// ADS listen address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub xds_addr: SocketAddr,
    /// Monitoring address (/metrics, /healthz, /ready, /debug/*).
    #[arg(long, default_value = "127.0.0.1:15014")]
    pub monitoring_addr: SocketAddr,
    /// Quiet period before a push (Istio PILOT_DEBOUNCE_AFTER).
    #[arg(long, default_value = "100ms", value_parser = parse_dur)]
    pub debounce_after: std::time::Duration,
    /// Longest delay of a push under constant changes (Istio PILOT_DEBOUNCE_MAX).
    #[arg(long, default_value = "10s", value_parser = parse_dur)]
    pub debounce_max: std::time::Duration,
}

fn parse_dur(s: &str) -> Result<std::time::Duration, String> {
    crate::istio::Duration::parse_go(s)
        .map(|d| d.to_std())
        .map_err(|e| format!("{e} (e.g. 100ms, 1s)"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProxyConfigKind {
    Listeners,
    Routes,
    Clusters,
    Endpoints,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Short,
    Json,
    Yaml,
}

/// `meshd proxy-config`: show a running Envoy's config like `istioctl proxy-config`.
#[derive(Debug, Args)]
pub struct ProxyConfigArgs {
    #[arg(value_enum)]
    pub kind: ProxyConfigKind,
    /// Envoy admin URL.
    #[arg(long, default_value = "http://127.0.0.1:15000")]
    pub admin: String,
    #[arg(short = 'o', long, value_enum, default_value = "short")]
    pub output: OutputFormat,
}
