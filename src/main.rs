//! The `meshd` binary: parses the command line and calls the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use meshd::cli::xds::{
    BootstrapArgs, DiscoveryArgs, OutputFormat, ProxyConfigArgs, ProxyConfigKind,
};
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "meshd",
    version,
    about = "Istio-compatible sidecar injector, config validator and xDS control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate Istio config files strictly, like `istioctl validate`.
    Validate(meshd::cli::validate::Args),
    /// Print an Envoy bootstrap (JSON) that connects to meshd over ADS.
    Bootstrap(BootstrapArgs),
    /// Run the xDS discovery server alone (the discovery sidecar).
    Discovery(DiscoveryArgs),
    /// Show a running Envoy's listeners, routes, clusters or endpoints.
    ProxyConfig(ProxyConfigArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => std::process::exit(meshd::cli::validate::run(&args)),
        Command::Bootstrap(a) => bootstrap(a),
        Command::Discovery(a) => runtime()?.block_on(discovery(a)),
        Command::ProxyConfig(a) => runtime()?.block_on(proxy_config(a)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn bootstrap(a: BootstrapArgs) -> anyhow::Result<()> {
    let opts = meshd::xds::bootstrap::BootstrapOptions {
        xds_address: a.xds_address,
        node_id: a.node_id,
        labels: a.labels.into_iter().collect(),
        metadata: a.meta.into_iter().collect(),
        admin_port: a.admin_port,
        admin_address: a.admin_address,
        cluster: a.cluster,
        ..Default::default()
    };
    let json = meshd::xds::bootstrap::generate(&opts)?;
    let text = serde_json::to_string_pretty(&json)? + "\n";
    match a.output {
        Some(path) => {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

async fn discovery(a: DiscoveryArgs) -> anyhow::Result<()> {
    init_tracing();
    let config = meshd::xds::discovery::DiscoveryConfig {
        config_dir: a.config_dir,
        xds_addr: a.xds_addr,
        debounce: meshd::xds::server::Debounce {
            after: a.debounce_after,
            max: a.debounce_max,
        },
        ..Default::default()
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let server = meshd::xds::discovery::Discovery::bind(config, &mut registry).await?;
    let router = meshd::xds::discovery::monitoring_router(Arc::new(registry), server.debug_state());
    let mon = tokio::net::TcpListener::bind(a.monitoring_addr)
        .await
        .with_context(|| format!("binding monitoring address {}", a.monitoring_addr))?;
    tracing::info!(addr = %a.monitoring_addr, "monitoring listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
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

async fn proxy_config(a: ProxyConfigArgs) -> anyhow::Result<()> {
    use meshd::xds::proxy_config::{extract, fetch_config_dump, render, Section};
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
