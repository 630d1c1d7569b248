//! The `meshd` binary: parses the command line and hands over to the library.

use clap::Parser;
use meshd::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::KubeInject(args) => meshd::cli::kube_inject::run(args),
        Command::Serve(_) | Command::Certs(_) => Err(anyhow::anyhow!("not yet")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
