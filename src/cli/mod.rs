//! Command-line interface: clap definitions, one file per subcommand.

pub mod validate;
pub mod xds;
