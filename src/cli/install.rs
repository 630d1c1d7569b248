//! `meshd install` and `meshd verify-install`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use crate::kube::install::{self, Found};
use crate::manifest::{self, Bundle};

/// Which manifests: a rendered profile, or a file.
#[derive(Debug, Args, Clone)]
pub struct Source {
    #[arg(long, default_value = "default")]
    pub profile: String,
    #[arg(long)]
    pub revision: Option<String>,
    /// Override a profile value (repeatable).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// kubeconfig file (default: in-cluster or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub source: Source,
    /// How long to wait for the Deployment to become available (0s: do not wait).
    #[arg(long, default_value = "300s", value_parser = super::serve::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub source: Source,
    /// Verify the objects of this manifest file instead of a rendered profile.
    #[arg(short = 'f', long = "filename")]
    pub filename: Option<PathBuf>,
}

fn objects(source: &Source, file: Option<&PathBuf>) -> anyhow::Result<Vec<Value>> {
    match file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("-f {}", path.display()))?;
            let mut out = Vec::new();
            for d in serde_norway::Deserializer::from_str(&text) {
                let v = Value::deserialize(d)
                    .with_context(|| format!("-f {}: invalid YAML", path.display()))?;
                if !v.is_null() {
                    out.push(v);
                }
            }
            Ok(out)
        }
        None => Ok(manifest::render(
            &Bundle::builtin(),
            &source.profile,
            source.revision.as_deref(),
            &source.sets,
        )?),
    }
}

pub async fn run_install(args: InstallArgs) -> anyhow::Result<()> {
    let objs = objects(&args.source, None)?;
    let client = crate::kube::connect(args.source.kubeconfig.as_ref()).await?;
    for key in install::apply_all(&client, &objs)
        .await
        .map_err(anyhow::Error::msg)?
    {
        println!("applied {key}");
    }
    if !args.timeout.is_zero() {
        install::wait_ready(&client, &objs, args.timeout)
            .await
            .map_err(anyhow::Error::msg)?;
        println!("meshd is ready");
    }
    Ok(())
}

/// Prints the report; `Ok(false)` when something is missing or different.
pub async fn run_verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let objs = objects(&args.source, args.filename.as_ref())?;
    let client = crate::kube::connect(args.source.kubeconfig.as_ref()).await?;
    let report = install::verify(&client, &objs)
        .await
        .map_err(anyhow::Error::msg)?;
    let mut ok = true;
    for (key, found) in &report {
        match found {
            Found::Present => println!("✔ {key}: present"),
            Found::Missing => {
                ok = false;
                println!("✘ {key}: missing");
            }
            Found::Different(diffs) => {
                ok = false;
                println!("✘ {key}: different");
                for d in diffs {
                    println!("    {d}");
                }
            }
        }
    }
    let bad = report.iter().filter(|(_, f)| *f != Found::Present).count();
    println!(
        "{} objects checked, {} present, {bad} missing or different",
        report.len(),
        report.len() - bad
    );
    Ok(ok)
}
