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

use super::model::{PushContext, SharedEncoded};
use super::proxy::{NodeType, Proxy};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// Encoded resources of one type, by name (shared allocations).
pub type Encoded = BTreeMap<String, Arc<Any>>;

/// Encoded resources for one proxy, ready to send.
#[derive(Debug, Default)]
pub struct Resources {
    pub clusters: Encoded,
    pub endpoints: Encoded,
    pub listeners: Encoded,
    pub routes: Encoded,
    /// Encoded `DiscoveryResponse.resources` fields by (type, requested names), shared by every stream
    /// with the same resources.
    bodies: std::sync::Mutex<std::collections::HashMap<(String, u64), (bytes::Bytes, u64)>>,
}

impl Resources {
    /// The encoded `resources` field (number 2 of `DiscoveryResponse`) for `type_url`, with all
    /// resources (`names == None`, wildcard) or the requested ones, plus a hash of it. Computed once per
    /// resource set and interned in `interner`, so equal bodies of different proxies share memory.
    pub fn response_body(
        &self,
        type_url: &str,
        names: Option<&std::collections::BTreeSet<String>>,
        interner: &super::model::Interner,
    ) -> Option<(bytes::Bytes, u64)> {
        use std::hash::{Hash, Hasher};
        let all = self.of_type(type_url)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        names.hash(&mut h);
        let key = (type_url.to_string(), h.finish());
        if let Some(b) = self.bodies.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Some(b);
        }
        let selected: Vec<&Arc<Any>> = match names {
            None => all.values().collect(),
            Some(names) => names.iter().filter_map(|n| all.get(n)).collect(),
        };
        let len: usize = selected
            .iter()
            .map(|a| prost::encoding::message::encoded_len(2, a.as_ref()))
            .sum();
        let mut buf = bytes::BytesMut::with_capacity(len);
        for a in selected {
            prost::encoding::message::encode(2, a.as_ref(), &mut buf);
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        buf.hash(&mut hasher);
        let hash = hasher.finish();
        let body = interner.intern_bytes(type_url, hash, buf.freeze());
        if let Ok(mut m) = self.bodies.lock() {
            if m.len() > 64 {
                m.clear();
            }
            m.insert(key, (body.clone(), hash));
        }
        Some((body, hash))
    }

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

/// Is an outbound cluster (or load assignment) named `name` visible under the proxy's Sidecar scope?
fn cluster_visible(
    ctx: &PushContext,
    scope: &super::model::EgressScope,
    ns: &str,
    name: &str,
) -> bool {
    if scope.hosts.is_none() || !name.starts_with("outbound|") {
        return true;
    }
    let host = name.splitn(4, '|').nth(3).unwrap_or("");
    ctx.by_host
        .get(host)
        .is_none_or(|svc| scope.visible(svc, ns))
}

/// Generates every resource for `proxy`.
pub fn generate(ctx: &PushContext, proxy: &Proxy) -> Generated {
    match proxy.node_type {
        NodeType::Sidecar => {
            let scope = ctx.sidecar_scope(&proxy.namespace, &proxy.labels);
            let (mut clusters, mut endpoints) = cluster::sidecar_clusters(ctx, proxy);
            clusters.retain(|c| cluster_visible(ctx, &scope, &proxy.namespace, &c.name));
            endpoints.retain(|c| cluster_visible(ctx, &scope, &proxy.namespace, &c.cluster_name));
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

/// Encodes without cloning the message (unlike `pack_any`).
fn any<T: prost::Message + prost::Name>(m: &T) -> Any {
    Any {
        type_url: T::type_url(),
        value: m.encode_to_vec(),
    }
}

fn outbound(ctx: &PushContext) -> &(SharedEncoded, SharedEncoded) {
    ctx.outbound.get_or_init(|| {
        let (clusters, endpoints) = cluster::outbound_clusters(ctx);
        (
            clusters
                .iter()
                .map(|c| (c.name.clone(), ctx.interner.intern(&c.name, any(c))))
                .collect(),
            endpoints
                .iter()
                .map(|c| {
                    (
                        c.cluster_name.clone(),
                        ctx.interner.intern(&c.cluster_name, any(c)),
                    )
                })
                .collect(),
        )
    })
}

fn encode_all<T: prost::Message + prost::Name>(
    ctx: &PushContext,
    items: &[T],
    name: impl Fn(&T) -> &str,
) -> Encoded {
    items
        .iter()
        .map(|i| (name(i).to_string(), ctx.interner.intern(name(i), any(i))))
        .collect()
}

/// Generates and encodes the resources of `proxy`. Outbound clusters and endpoints are computed once per
/// push; everything is interned, so overlapping configs share memory.
pub fn build(ctx: &PushContext, proxy: &Proxy) -> Resources {
    let (shared_clusters, shared_eds) = outbound(ctx);
    let scope = match proxy.node_type {
        NodeType::Sidecar => ctx.sidecar_scope(&proxy.namespace, &proxy.labels),
        NodeType::Router => super::model::EgressScope::default(),
    };
    let visible = |name: &String| cluster_visible(ctx, &scope, &proxy.namespace, name);
    let mut clusters: Encoded = shared_clusters
        .iter()
        .filter(|(n, _)| visible(n))
        .cloned()
        .collect();
    let endpoints: Encoded = shared_eds
        .iter()
        .filter(|(n, _)| visible(n))
        .cloned()
        .collect();
    let (extra, listeners, routes) = match proxy.node_type {
        NodeType::Sidecar => {
            let (l, r) = listener::sidecar_listeners(ctx, proxy);
            (cluster::sidecar_extra_clusters(ctx, proxy), l, r)
        }
        NodeType::Router => {
            let (l, r) = gateway::gateway_config(ctx, proxy);
            (cluster::gateway_extra_clusters(), l, r)
        }
    };
    for c in &extra {
        clusters
            .entry(c.name.clone())
            .or_insert_with(|| ctx.interner.intern(&c.name, any(c)));
    }
    Resources {
        clusters,
        endpoints,
        listeners: encode_all(ctx, &listeners, |l| &l.name),
        routes: encode_all(ctx, &routes, |r| &r.name),
        bodies: Default::default(),
    }
}

#[cfg(test)]
mod tests;
