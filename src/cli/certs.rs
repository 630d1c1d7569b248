//! `meshd certs generate`: a CA and a serving certificate for the webhook.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write ca.crt, ca.key, tls.crt and tls.key into a directory (keys 0600; an existing CA is reused).
    Generate {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Service name the certificate is for.
        #[arg(long, default_value = "meshd")]
        service: String,
        /// Namespace of the service.
        #[arg(long, default_value = "istio-system")]
        namespace: String,
    },
}

pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    match args.command {
        CertsCommand::Generate {
            out,
            service,
            namespace,
        } => {
            let files = crate::tls::generate_into(&out, &service, &namespace)?;
            for f in [&files.ca_cert, &files.ca_key, &files.cert, &files.key] {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
    }
}
