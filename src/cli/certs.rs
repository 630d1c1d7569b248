//! `meshd certs`: certificate utilities.
use clap::Args;
#[derive(Debug, Args)]
pub struct CertsArgs {}
