//! Wiring for `meshd serve`: loads certificates and injection inputs, then starts and owns the
//! HTTPS admission server, the monitoring server and the certificate watcher, and drains them
//! all on SIGTERM/SIGINT.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admission::{self, AdmissionState};
use crate::cli::serve::ServeArgs;
use crate::cli::NativeFlag;
use crate::inject::{read_input, Injector, InjectorSettings, NativeSidecars};
use crate::server::{self, Timeouts};
use crate::telemetry::{self, AdminState, Metrics, Readiness};
use crate::tls::{self, CertPaths};

/// Makes sure a serving certificate exists: when both files are missing, a CA (`ca.crt`,
/// `ca.key` beside `--tls-cert`) and a serving certificate signed by it are created.
pub fn ensure_certificates(args: &ServeArgs) -> anyhow::Result<()> {
    if args.tls_cert.exists() || args.tls_key.exists() {
        return Ok(());
    }
    let dir = args
        .tls_cert
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let ca_cert = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let ca = match (
        std::fs::read_to_string(&ca_cert),
        std::fs::read_to_string(&ca_key),
    ) {
        (Ok(c), Ok(k)) => {
            tls::Ca::load(&c, &k).with_context(|| format!("existing CA {}", ca_cert.display()))?
        }
        _ => {
            let ca = tls::Ca::generate("meshd-ca")?;
            tls::write_file(&ca_key, &ca.key_pem, true)?;
            tls::write_file(&ca_cert, &ca.cert_pem, false)?;
            ca
        }
    };
    let (cert, key) = ca.issue(&tls::default_sans(&args.service_name, &args.namespace), 365)?;
    tls::write_file(&args.tls_key, &key, true)?;
    tls::write_file(&args.tls_cert, &cert, false)?;
    tracing::info!(cert = %args.tls_cert.display(), ca = %ca_cert.display(), "created a CA and a serving certificate");
    Ok(())
}

/// meshd's webhook configuration names: the flags, else the names `meshd manifest generate` uses.
fn webhook_names(args: &ServeArgs) -> crate::kube::WebhookNames {
    let revision = args
        .revision
        .clone()
        .filter(|r| r != "default")
        .unwrap_or_default();
    let rev = if revision.is_empty() {
        String::new()
    } else {
        format!("-{revision}")
    };
    let ns = if args.namespace == "istio-system" {
        String::new()
    } else {
        format!("-{}", args.namespace)
    };
    crate::kube::WebhookNames {
        mutating: args
            .mutating_webhook_config
            .clone()
            .unwrap_or_else(|| format!("meshd-sidecar-injector{rev}{ns}")),
        validating: args
            .validating_webhook_config
            .clone()
            .unwrap_or_else(|| format!("meshd-validator{rev}{ns}")),
        namespace: args.namespace.clone(),
        revision,
    }
}

/// Builds the injector from the serve flags, with ConfigMap contents (when present) taking the
/// place of the corresponding files.
pub fn build_injector_with(
    args: &ServeArgs,
    maps: &crate::kube::source::InjectionConfigMaps,
) -> anyhow::Result<Injector> {
    let mut settings = injector_settings(args)?;
    if maps.values.is_some() {
        settings.values_yaml = maps.values.clone();
    }
    if maps.mesh.is_some() {
        settings.mesh_yaml = maps.mesh.clone();
    }
    if maps.config.is_some() {
        settings.injection_config_yaml = maps.config.clone();
    }
    Ok(Injector::new(&settings)?)
}

/// Builds the injector from the serve flags.
pub fn build_injector(args: &ServeArgs) -> anyhow::Result<Injector> {
    Ok(Injector::new(&injector_settings(args)?)?)
}

fn injector_settings(args: &ServeArgs) -> anyhow::Result<InjectorSettings> {
    let read = |flag: &str, p: &Option<std::path::PathBuf>| -> anyhow::Result<Option<String>> {
        p.as_ref()
            .map(|p| read_input(flag, p))
            .transpose()
            .map_err(Into::into)
    };
    let native = match args.native_sidecars {
        NativeFlag::True => NativeSidecars::Enabled,
        NativeFlag::False => NativeSidecars::Disabled,
        NativeFlag::Auto => {
            tracing::info!("--native-sidecars auto: classic layout until node versions are known (needs --kube)");
            NativeSidecars::Disabled
        }
    };
    let settings = InjectorSettings {
        values_yaml: read("--values", &args.values)?,
        mesh_yaml: read("--mesh-config", &args.mesh_config)?,
        injection_config_yaml: read("--injection-config", &args.injection_config)?,
        templates_dir: args.templates.clone(),
        native,
        revision: args.revision.clone(),
    };
    Ok(settings)
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `meshd serve` until a termination signal, then drains every task.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    ensure_certificates(&args)?;
    let paths = CertPaths {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    };
    let loaded = tls::load(&paths)?;
    tracing::info!(subject = %loaded.info.subject, names = ?loaded.info.dns_names, not_after = %loaded.info.not_after, "serving certificate loaded");
    let resolver = tls::Resolver::new(loaded.key.clone());
    let tls_config = Arc::new(tls::server_config(resolver.clone()).context("TLS configuration")?);
    let injector = build_injector(&args)?;

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let readiness = Arc::new(Readiness::default());
    readiness.certs_loaded.store(true, Ordering::Release);
    readiness.config_synced.store(true, Ordering::Release);

    let webhook_listener = server::bind("--webhook-addr", args.webhook_addr).await?;
    let monitoring_listener = server::bind("--monitoring-addr", args.monitoring_addr).await?;
    tracing::info!(webhook = %args.webhook_addr, monitoring = %args.monitoring_addr, "meshd serving");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let timeouts = Timeouts {
        header_read: args.header_read_timeout,
        drain: args.drain_timeout,
        ..Timeouts::default()
    };
    // One Kubernetes client for every kube task (--kube / --kubeconfig).
    let kube_client = if args.kube || args.kubeconfig.is_some() {
        Some(crate::kube::connect(args.kubeconfig.as_ref()).await?)
    } else {
        None
    };
    let injector_slot = Arc::new(ArcSwap::from_pointee(injector));
    let admission_state = AdmissionState {
        injector: injector_slot.clone(),
        metrics: metrics.clone(),
    };
    // The discovery server (xDS over ADS) with its config source, unless --no-xds.
    let mut debug_routes = None;
    let mut xds_task = None;
    let mut kube_source = None;
    let mut kube_synced = None;
    if !args.no_xds {
        let config = crate::xds::discovery::DiscoveryConfig {
            config_dir: args.config_dir.clone(),
            xds_addr: args.xds_addr,
            ..Default::default()
        };
        let kube_for_xds = kube_client.clone().filter(|_| args.config_dir.is_none());
        let discovery = if let Some(client) = kube_for_xds {
            // Config from the Kubernetes API: ready once every watched kind has listed.
            readiness.config_synced.store(false, Ordering::Release);
            let (snap_tx, snap_rx) = watch::channel(Arc::new(crate::store::Snapshot::default()));
            let (synced_tx, mut synced_rx) = watch::channel(false);
            kube_source = Some(crate::kube::source::run(
                client,
                snap_tx,
                synced_tx,
                shutdown_rx.clone(),
            ));
            let ready = readiness.clone();
            kube_synced = Some(async move {
                if synced_rx.wait_for(|s| *s).await.is_ok() {
                    ready.config_synced.store(true, Ordering::Release);
                    tracing::info!("config synced from the Kubernetes API");
                }
            });
            crate::xds::discovery::Discovery::bind_with_snapshots(config, snap_rx, &mut registry)
                .await
        } else {
            crate::xds::discovery::Discovery::bind(config, &mut registry).await
        }
        .map_err(|e| anyhow::anyhow!("--xds-addr/--config-dir: {e}"))?;
        debug_routes = Some(crate::xds::discovery::debug_router(discovery.debug_state()));
        let mut stop = shutdown_rx.clone();
        xds_task = Some(async move {
            let result = discovery
                .run(async move {
                    let _ = stop.changed().await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "discovery server failed");
            }
        });
        tracing::info!(xds = %args.xds_addr, config_dir = ?args.config_dir, "discovery serving");
    }
    let admin_state = AdminState {
        registry: Arc::new(Mutex::new(registry)),
        readiness: readiness.clone(),
    };

    let mut tasks = JoinSet::new();
    if let Some(t) = xds_task {
        tasks.spawn(t);
    }
    if let Some(t) = kube_source {
        tasks.spawn(t);
    }
    if let Some(t) = kube_synced {
        tasks.spawn(t);
    }
    tasks.spawn(server::serve_tls(
        webhook_listener,
        tls_config,
        admission::router(admission_state),
        timeouts,
        shutdown_rx.clone(),
    ));
    tasks.spawn(server::serve_plain(
        monitoring_listener,
        match debug_routes {
            Some(debug) => telemetry::admin_router(admin_state).merge(debug),
            None => telemetry::admin_router(admin_state),
        },
        timeouts,
        shutdown_rx.clone(),
    ));
    // The CA the webhooks must trust: ca.crt beside the certificate, else the chain's last cert.
    let ca_path = args.ca_cert.clone().unwrap_or_else(|| {
        args.tls_cert
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("ca.crt")
    });
    let read_ca = {
        let ca_path = ca_path.clone();
        move |chain_pem: &str| {
            std::fs::read_to_string(&ca_path).unwrap_or_else(|_| chain_pem.to_string())
        }
    };
    let (ca_tx, ca_rx) = watch::channel(read_ca(&loaded.chain_pem));
    let (patched_tx, patched_rx) = watch::channel(String::new());
    let kube_enabled = kube_client.is_some();
    if let Some(client) = kube_client.clone() {
        // Injection inputs from the istio / istio-sidecar-injector ConfigMaps, applied without
        // restart: a bad new config is logged and the running injector stays.
        let (cm_tx, mut cm_rx) =
            watch::channel(crate::kube::source::InjectionConfigMaps::default());
        let revision = args
            .revision
            .clone()
            .filter(|r| r != "default")
            .unwrap_or_default();
        tasks.spawn(crate::kube::source::watch_injection_config(
            client.clone(),
            args.namespace.clone(),
            revision,
            cm_tx,
            shutdown_rx.clone(),
        ));
        // --native-sidecars auto: the layout follows the nodes' kubelet versions.
        let (nodes_tx, mut nodes_rx) = watch::channel(None::<bool>);
        if args.native_sidecars == NativeFlag::Auto {
            tasks.spawn(crate::kube::source::watch_node_versions(
                client.clone(),
                nodes_tx,
                shutdown_rx.clone(),
            ));
        } else {
            drop(nodes_tx);
        }
        let injector_slot = injector_slot.clone();
        let base = args.clone();
        let mut stop = shutdown_rx.clone();
        let mut nodes_open = args.native_sidecars == NativeFlag::Auto;
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    r = cm_rx.changed() => if r.is_err() { return },
                    r = nodes_rx.changed(), if nodes_open => if r.is_err() { nodes_open = false; continue },
                    _ = stop.changed() => return,
                }
                let mut base = base.clone();
                if base.native_sidecars == NativeFlag::Auto {
                    base.native_sidecars = match *nodes_rx.borrow_and_update() {
                        Some(true) => NativeFlag::True,
                        _ => NativeFlag::False,
                    };
                }
                let maps = cm_rx.borrow_and_update().clone();
                match build_injector_with(&base, &maps) {
                    Ok(inj) => {
                        injector_slot.store(Arc::new(inj));
                        tracing::info!(mesh = maps.mesh.is_some(), values = maps.values.is_some(), config = maps.config.is_some(), native = ?base.native_sidecars, "injection config reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "injection ConfigMaps rejected; keeping the running config"),
                }
            }
        });
    }
    if let Some(client) = kube_client {
        let names = webhook_names(&args);
        tracing::info!(mutating = %names.mutating, validating = %names.validating, ca = %ca_path.display(), "keeping webhook configurations up to date");
        tasks.spawn(crate::kube::run_upkeep(
            client,
            names,
            ca_rx,
            patched_tx,
            metrics.clone(),
            shutdown_rx.clone(),
        ));
    }
    let reload_metrics = metrics.clone();
    tasks.spawn(tls::watch(
        paths,
        resolver,
        args.cert_reload_interval,
        // With the kube source, a new CA is in the webhooks' caBundle before it is served.
        move |loaded: &tls::LoadedCert| {
            let ca = read_ca(&loaded.chain_pem);
            let ca_tx = ca_tx.clone();
            let mut patched = patched_rx.clone();
            async move {
                ca_tx.send_if_modified(|cur| {
                    let changed = *cur != ca;
                    if changed {
                        *cur = ca.clone();
                    }
                    changed
                });
                if kube_enabled {
                    let wait = patched.wait_for(|p| *p == ca);
                    if tokio::time::timeout(std::time::Duration::from_secs(10), wait)
                        .await
                        .is_err()
                    {
                        tracing::warn!(
                            "caBundle not updated within 10s; serving the new certificate anyway"
                        );
                    }
                }
            }
        },
        move |_| {
            reload_metrics.cert_reloads.inc();
        },
        shutdown_rx.clone(),
    ));

    termination().await;
    tracing::info!("shutting down: draining in-flight requests");
    let _ = shutdown_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::error!(error = %e, "task failed during shutdown");
        }
    }
    tracing::info!("stopped");
    Ok(())
}
