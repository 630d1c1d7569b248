//! `meshd kube-inject`: offline injection of manifests.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::inject::kube_inject::kube_inject;
use crate::inject::{read_input, Injector, InjectorSettings, NativeSidecars};

#[derive(Debug, Args)]
pub struct KubeInjectArgs {
    /// Input manifest file, or `-` for stdin.
    #[arg(short = 'f', long = "filename")]
    pub filename: String,
    /// Helm values of the injector (the `values` key of the istio-sidecar-injector ConfigMap).
    #[arg(long = "values", alias = "valuesFile")]
    pub values: Option<PathBuf>,
    /// Mesh config (the `mesh` key of the istio ConfigMap).
    #[arg(long = "mesh-config", alias = "meshConfigFile")]
    pub mesh_config: Option<PathBuf>,
    /// Injector config (the `config` key of the istio-sidecar-injector ConfigMap).
    #[arg(long = "injection-config", alias = "injectConfigFile")]
    pub injection_config: Option<PathBuf>,
    /// Directory of minijinja templates that replace or add to the built-in ones.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Put istio-proxy in initContainers with restartPolicy Always (Kubernetes native sidecars).
    #[arg(long = "native-sidecars", default_value = "false", action = clap::ArgAction::Set)]
    pub native_sidecars: bool,
    /// Control-plane revision (`default` is the default revision).
    #[arg(short = 'r', long)]
    pub revision: Option<String>,
    /// Output file (default stdout).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

pub fn run(args: KubeInjectArgs) -> anyhow::Result<()> {
    let read = |flag: &str, p: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
        p.as_ref()
            .map(|p| read_input(flag, p))
            .transpose()
            .map_err(Into::into)
    };
    let settings = InjectorSettings {
        values_yaml: read("--values", &args.values)?,
        mesh_yaml: read("--mesh-config", &args.mesh_config)?,
        injection_config_yaml: read("--injection-config", &args.injection_config)?,
        templates_dir: args.templates.clone(),
        native: if args.native_sidecars {
            NativeSidecars::Enabled
        } else {
            NativeSidecars::Disabled
        },
        revision: args.revision.clone(),
    };
    let injector = Injector::new(&settings)?;
    let input = if args.filename == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.filename).with_context(|| format!("-f {}", args.filename))?
    };
    let out = kube_inject(&injector, &input).with_context(|| format!("-f {}", args.filename))?;
    for w in &out.warnings {
        eprintln!("{w}");
    }
    match &args.output {
        Some(path) => {
            std::fs::write(path, &out.yaml).with_context(|| format!("-o {}", path.display()))?
        }
        None => std::io::stdout()
            .lock()
            .write_all(out.yaml.as_bytes())
            .context("writing stdout")?,
    }
    Ok(())
}
