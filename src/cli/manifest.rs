//! `meshd manifest generate|diff` and `meshd profile list|dump|diff`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;

use crate::manifest::{self, Bundle};

#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(subcommand)]
    pub command: ManifestCommand,
}

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Render the deployment manifests of a profile.
    Generate {
        #[arg(long, default_value = "default")]
        profile: String,
        #[arg(long)]
        revision: Option<String>,
        /// Override a profile value: `--set replicas=3` (repeatable).
        #[arg(long = "set")]
        sets: Vec<String>,
        /// A directory laid out like deploy/ (profiles/, templates/) instead of the built-in one.
        #[arg(long)]
        manifests: Option<PathBuf>,
    },
    /// Compare two manifest files object by object.
    Diff { a: PathBuf, b: PathBuf },
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
    #[arg(long, global = true)]
    pub manifests: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the profiles.
    List,
    /// Print a profile's effective values.
    Dump {
        #[arg(default_value = "default")]
        profile: String,
    },
    /// Compare the rendered manifests of two profiles.
    Diff { a: String, b: String },
}

fn bundle(dir: &Option<PathBuf>) -> anyhow::Result<Bundle> {
    Ok(match dir {
        Some(d) => Bundle::from_dir(d).with_context(|| format!("--manifests {}", d.display()))?,
        None => Bundle::builtin(),
    })
}

fn read_objects(path: &PathBuf) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut out = Vec::new();
    for d in serde_norway::Deserializer::from_str(&text) {
        let v =
            Value::deserialize(d).with_context(|| format!("{}: invalid YAML", path.display()))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

fn print_diff(lines: &[String]) -> anyhow::Result<()> {
    for l in lines {
        println!("{l}");
    }
    if lines.is_empty() {
        println!("no differences");
        Ok(())
    } else {
        Err(anyhow::anyhow!("{} difference(s)", lines.len()))
    }
}

pub fn run_manifest(args: ManifestArgs) -> anyhow::Result<()> {
    match args.command {
        ManifestCommand::Generate {
            profile,
            revision,
            sets,
            manifests,
        } => {
            let objs =
                manifest::render(&bundle(&manifests)?, &profile, revision.as_deref(), &sets)?;
            print!("{}", manifest::to_yaml_stream(&objs));
            Ok(())
        }
        ManifestCommand::Diff { a, b } => {
            print_diff(&manifest::diff(&read_objects(&a)?, &read_objects(&b)?))
        }
    }
}

pub fn run_profile(args: ProfileArgs) -> anyhow::Result<()> {
    let b = bundle(&args.manifests)?;
    match args.command {
        ProfileCommand::List => {
            for n in b.profile_names() {
                println!("{n}");
            }
            Ok(())
        }
        ProfileCommand::Dump { profile } => {
            print!("{}", serde_norway::to_string(&b.profile(&profile, &[])?)?);
            Ok(())
        }
        ProfileCommand::Diff { a, b: other } => {
            let ra = manifest::render(&b, &a, None, &[])?;
            let rb = manifest::render(&b, &other, None, &[])?;
            print_diff(&manifest::diff(&ra, &rb))
        }
    }
}
