//! Pure translation of the service model into Istio-shaped Envoy resources for one proxy.
//!
//! Sidecars get `virtualOutbound`/`virtualInbound`, per-port outbound listeners, route configs named
//! after the port, and `outbound|port|subset|host` clusters with EDS; gateways (`router~` nodes) get one
//! listener per bound server port and route configs `http.<port>`.

mod cluster;
mod gateway;
mod listener;
mod route;
pub mod util;

use super::model::PushContext;
use super::proxy::{NodeType, Proxy};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use std::collections::BTreeMap;

pub use cluster::{
    cluster_name, BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER,
};

/// Typed resources for one proxy, before encoding.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
}

/// Encoded resources of one type, by name.
pub type Encoded = BTreeMap<String, Any>;

/// Encoded resources for one proxy, ready to send.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub clusters: Encoded,
    pub endpoints: Encoded,
    pub listeners: Encoded,
    pub routes: Encoded,
    /// Typed form, kept for `/debug/config_dump`.
    pub typed: Generated,
}

impl Resources {
    /// Resources of one xDS type URL.
    pub fn of_type(&self, type_url: &str) -> Option<&Encoded> {
        match type_url {
            super::protocol::CLUSTER => Some(&self.clusters),
            super::protocol::ENDPOINT => Some(&self.endpoints),
            super::protocol::LISTENER => Some(&self.listeners),
            super::protocol::ROUTE => Some(&self.routes),
            _ => None,
        }
    }
}

/// Generates every resource for `proxy`.
pub fn generate(ctx: &PushContext, proxy: &Proxy) -> Generated {
    match proxy.node_type {
        NodeType::Sidecar => {
            let (clusters, endpoints) = cluster::sidecar_clusters(ctx, proxy);
            let (listeners, routes) = listener::sidecar_listeners(ctx, proxy);
            Generated {
                clusters,
                endpoints,
                listeners,
                routes,
            }
        }
        NodeType::Router => {
            let (clusters, endpoints) = cluster::gateway_clusters(ctx);
            let (listeners, routes) = gateway::gateway_config(ctx, proxy);
            Generated {
                clusters,
                endpoints,
                listeners,
                routes,
            }
        }
    }
}

/// Generates and encodes.
pub fn build(ctx: &PushContext, proxy: &Proxy) -> Resources {
    let g = generate(ctx, proxy);
    let enc = |v: Vec<(String, Any)>| v.into_iter().collect::<Encoded>();
    Resources {
        clusters: enc(g
            .clusters
            .iter()
            .map(|c| (c.name.clone(), pack_any(c.clone())))
            .collect()),
        endpoints: enc(g
            .endpoints
            .iter()
            .map(|c| (c.cluster_name.clone(), pack_any(c.clone())))
            .collect()),
        listeners: enc(g
            .listeners
            .iter()
            .map(|c| (c.name.clone(), pack_any(c.clone())))
            .collect()),
        routes: enc(g
            .routes
            .iter()
            .map(|c| (c.name.clone(), pack_any(c.clone())))
            .collect()),
        typed: g,
    }
}

#[cfg(test)]
mod tests;
