//! The xDS subcommands `bootstrap`, `discovery`, `proxy-config`: flags and the calls into the
//! library.

use std::sync::Arc;

use anyhow::Context;
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
    /// Config from the Kubernetes API (in-cluster); implied by --kubeconfig. Ignored with --config-dir.
    #[arg(long)]
    pub kube: bool,
    /// kubeconfig file for the Kubernetes API.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
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

/// `meshd bootstrap`.
pub fn run_bootstrap(a: BootstrapArgs) -> anyhow::Result<()> {
    let opts = crate::xds::bootstrap::BootstrapOptions {
        xds_address: a.xds_address,
        node_id: a.node_id,
        labels: a.labels.into_iter().collect(),
        metadata: a.meta.into_iter().collect(),
        admin_port: a.admin_port,
        admin_address: a.admin_address,
        cluster: a.cluster,
        ..Default::default()
    };
    let json = crate::xds::bootstrap::generate(&opts)?;
    let text = serde_json::to_string_pretty(&json)? + "\n";
    match a.output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `meshd discovery`: the xDS server alone, with its own monitoring server.
pub async fn run_discovery(a: DiscoveryArgs) -> anyhow::Result<()> {
    let config = crate::xds::discovery::DiscoveryConfig {
        config_dir: a.config_dir,
        xds_addr: a.xds_addr,
        debounce: crate::xds::server::Debounce {
            after: a.debounce_after,
            max: a.debounce_max,
        },
        ..Default::default()
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut kube_task = None;
    let server = if (a.kube || a.kubeconfig.is_some()) && config.config_dir.is_none() {
        let client = crate::kube::connect(a.kubeconfig.as_ref()).await?;
        let (snap_tx, snap_rx) =
            tokio::sync::watch::channel(Arc::new(crate::store::Snapshot::default()));
        let (synced_tx, _synced_rx) = tokio::sync::watch::channel(false);
        kube_task = Some(tokio::spawn(crate::kube::source::run(
            client,
            snap_tx,
            synced_tx,
            stop_rx.clone(),
        )));
        crate::xds::discovery::Discovery::bind_with_snapshots(config, snap_rx, &mut registry)
            .await?
    } else {
        crate::xds::discovery::Discovery::bind(config, &mut registry).await?
    };
    let router = crate::xds::discovery::monitoring_router(Arc::new(registry), server.debug_state());
    let mon = tokio::net::TcpListener::bind(a.monitoring_addr)
        .await
        .with_context(|| format!("binding monitoring address {}", a.monitoring_addr))?;
    tracing::info!(addr = %a.monitoring_addr, "monitoring listening");
    let mut mon_stop = stop_rx.clone();
    let mon_task = tokio::spawn(async move {
        axum::serve(mon, router)
            .with_graceful_shutdown(async move {
                let _ = mon_stop.changed().await;
            })
            .await
    });
    let mut xds_stop = stop_rx;
    let result = server.run(async move {
        let _ = xds_stop.changed().await;
    });
    tokio::pin!(result);
    let outcome = tokio::select! {
        r = &mut result => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
            result.await
        }
    };
    let _ = stop_tx.send(true);
    let _ = mon_task.await;
    if let Some(t) = kube_task {
        let _ = t.await;
    }
    outcome.map_err(Into::into)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `meshd proxy-config`.
pub async fn run_proxy_config(a: ProxyConfigArgs) -> anyhow::Result<()> {
    use crate::xds::proxy_config::{extract, fetch_config_dump, render, Section};
    let dump = fetch_config_dump(&a.admin).await?;
    let section = match a.kind {
        ProxyConfigKind::Listeners => Section::Listeners,
        ProxyConfigKind::Routes => Section::Routes,
        ProxyConfigKind::Clusters => Section::Clusters,
        ProxyConfigKind::Endpoints => Section::Endpoints,
    };
    let format = match a.output {
        OutputFormat::Short => "short",
        OutputFormat::Json => "json",
        OutputFormat::Yaml => "yaml",
    };
    print!("{}", render(section, &extract(&dump, section), format)?);
    Ok(())
}
