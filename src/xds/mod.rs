//! xDS: Envoy bootstrap generation, the service model, pure translation to Envoy resources, the ADS
//! protocol state machine, and the tonic ADS server with debounced pushes.

pub mod bootstrap;
pub mod discovery;
pub mod grpc;
pub mod model;
pub mod protocol;
pub mod proxy;
pub mod proxy_config;
pub mod server;
pub mod synthetic;
pub mod translate;
