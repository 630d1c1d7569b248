use clap::{Parser, Subcommand};

/// meshd: Istio-compatible sidecar injector, config validator and xDS control plane.
#[derive(Debug, Parser)]
#[command(name = "meshd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate Istio config files strictly, like `istioctl validate`.
    Validate(meshd::cli::validate::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Validate(args) => meshd::cli::validate::run(&args),
    };
    std::process::exit(code);
}
