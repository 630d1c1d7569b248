//! The `meshd` binary: parses the command line and hands over to the library.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use meshd::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::KubeInject(args) => meshd::cli::kube_inject::run(args),
        Command::Certs(args) => meshd::cli::certs::run(args),
        Command::Manifest(args) => meshd::cli::manifest::run_manifest(args),
        Command::Profile(args) => meshd::cli::manifest::run_profile(args),
        Command::Install(args) => {
            runtime().and_then(|rt| rt.block_on(meshd::cli::install::run_install(args)))
        }
        Command::VerifyInstall(args) => {
            match runtime().and_then(|rt| rt.block_on(meshd::cli::install::run_verify(args))) {
                Ok(true) => Ok(()),
                Ok(false) => return std::process::ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        Command::Bootstrap(args) => meshd::cli::xds::run_bootstrap(args),
        Command::Discovery(args) => {
            meshd::telemetry::init_tracing(false);
            runtime().and_then(|rt| rt.block_on(meshd::cli::xds::run_discovery(args)))
        }
        Command::ProxyConfig(args) => {
            runtime().and_then(|rt| rt.block_on(meshd::cli::xds::run_proxy_config(args)))
        }
        Command::Validate(args) => {
            let code = meshd::cli::validate::run(&args);
            return std::process::ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
        Command::Serve(args) => {
            meshd::telemetry::init_tracing(args.log_json);
            runtime().and_then(|rt| rt.block_on(meshd::app::serve(*args)))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
