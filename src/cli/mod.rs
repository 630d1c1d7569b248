//! Command-line interface: clap definitions, one file per subcommand; no logic beyond parsing
//! arguments and calling the library.

pub mod certs;
pub mod install;
pub mod kube_inject;
pub mod manifest;
pub mod serve;
pub mod validate;
pub mod xds;

use clap::{Parser, Subcommand};

/// meshd: Istio-compatible sidecar injector, config validator and xDS control plane.
#[derive(Debug, Parser)]
#[command(name = "meshd", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the admission webhooks (:15017) and the monitoring server (:15014).
    Serve(Box<serve::ServeArgs>),
    /// Inject the sidecar into workloads of a YAML file, offline (like istioctl kube-inject).
    KubeInject(kube_inject::KubeInjectArgs),
    /// Certificate utilities.
    Certs(certs::CertsArgs),
    /// Render or compare the deployment manifests (deploy/).
    Manifest(manifest::ManifestArgs),
    /// List, print or compare installation profiles.
    Profile(manifest::ProfileArgs),
    /// Install meshd into a cluster (server-side apply of the rendered manifests) and wait for it.
    Install(install::InstallArgs),
    /// Check that every object of an installation is present and as rendered.
    VerifyInstall(install::VerifyArgs),
    /// Validate Istio config files strictly, like `istioctl validate` (exit 0 valid, 1 invalid, 2 usage/IO).
    Validate(validate::Args),
    /// Print an Envoy bootstrap (JSON) that connects to meshd over ADS.
    Bootstrap(xds::BootstrapArgs),
    /// Run the xDS discovery server alone (the discovery sidecar container).
    Discovery(xds::DiscoveryArgs),
    /// Show a running Envoy's listeners, routes, clusters or endpoints.
    ProxyConfig(xds::ProxyConfigArgs),
}

/// `true`/`false`/`auto` for `--native-sidecars`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum NativeFlag {
    #[default]
    False,
    True,
    Auto,
}
