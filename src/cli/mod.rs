//! clap definitions, one file per subcommand.

pub mod xds;
