//! `meshd serve`: flags for the long-running server.
use clap::Args;
#[derive(Debug, Args)]
pub struct ServeArgs {}
