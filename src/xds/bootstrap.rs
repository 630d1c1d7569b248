//! Envoy bootstrap generation (`meshd bootstrap`): Istio's node id / metadata shape and an ADS
//! connection to meshd over an HTTP/2 `xds-grpc` cluster.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The Istio version advertised in node metadata.
pub const ISTIO_VERSION: &str = "1.28.0";

/// Inputs of a bootstrap.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// `HOST:PORT` of meshd's ADS server.
    pub xds_address: String,
    /// Istio node id, `sidecar~IP~POD.NS~NS.svc.cluster.local` or `router~…`.
    pub node_id: String,
    /// Pod labels, sent as `LABELS`.
    pub labels: BTreeMap<String, String>,
    /// Extra metadata keys (strings).
    pub metadata: BTreeMap<String, String>,
    /// Admin port (Istio: 15000).
    pub admin_port: u16,
    /// Admin bind address.
    pub admin_address: String,
    /// `node.cluster`; defaults to `<app label or pod name>.<namespace>`.
    pub cluster: Option<String>,
    /// `CLUSTER_ID` metadata.
    pub cluster_id: String,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            xds_address: "127.0.0.1:15010".into(),
            node_id: "sidecar~127.0.0.1~meshd-proxy.default~default.svc.cluster.local".into(),
            labels: BTreeMap::new(),
            metadata: BTreeMap::new(),
            admin_port: 15000,
            admin_address: "127.0.0.1".into(),
            cluster: None,
            cluster_id: "Kubernetes".into(),
        }
    }
}

/// Errors of bootstrap generation (all caused by user input).
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("--xds-address {0:?}: expected HOST:PORT")]
    XdsAddress(String),
    #[error("--node-id {0:?}: expected TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local with TYPE sidecar or router")]
    NodeId(String),
}

/// The parts of an Istio node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeId {
    pub node_type: String,
    pub ip: String,
    /// `POD.NAMESPACE`
    pub id: String,
    pub domain: String,
}

impl NodeId {
    /// Parses `type~ip~id~domain`.
    pub fn parse(s: &str) -> Option<NodeId> {
        let parts: Vec<&str> = s.split('~').collect();
        if parts.len() != 4 || !matches!(parts[0], "sidecar" | "router") || parts[2].is_empty() {
            return None;
        }
        Some(NodeId {
            node_type: parts[0].into(),
            ip: parts[1].into(),
            id: parts[2].into(),
            domain: parts[3].into(),
        })
    }

    /// Pod name (the part of `id` before the first dot).
    pub fn pod_name(&self) -> &str {
        self.id.split_once('.').map(|(a, _)| a).unwrap_or(&self.id)
    }

    /// Namespace (from `id`, else from the domain, else `default`).
    pub fn namespace(&self) -> &str {
        if let Some((_, ns)) = self.id.split_once('.') {
            if !ns.is_empty() {
                return ns;
            }
        }
        self.domain
            .split('.')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
    }
}

/// Builds the bootstrap JSON.
pub fn generate(opts: &BootstrapOptions) -> Result<Value, BootstrapError> {
    let node =
        NodeId::parse(&opts.node_id).ok_or_else(|| BootstrapError::NodeId(opts.node_id.clone()))?;
    let (host, port) = opts
        .xds_address
        .rsplit_once(':')
        .and_then(|(h, p)| {
            Some((
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse::<u16>().ok()?,
            ))
        })
        .filter(|(h, p)| !h.is_empty() && *p != 0)
        .ok_or_else(|| BootstrapError::XdsAddress(opts.xds_address.clone()))?;
    let ns = node.namespace().to_string();
    let app = opts
        .labels
        .get("app")
        .or_else(|| opts.labels.get("istio"))
        .cloned()
        .unwrap_or_else(|| node.pod_name().to_string());
    let cluster = opts
        .cluster
        .clone()
        .unwrap_or_else(|| format!("{app}.{ns}"));
    let mut meta = Map::new();
    meta.insert("ISTIO_VERSION".into(), json!(ISTIO_VERSION));
    meta.insert("CLUSTER_ID".into(), json!(opts.cluster_id));
    meta.insert("NAMESPACE".into(), json!(ns));
    meta.insert("NAME".into(), json!(node.pod_name()));
    meta.insert("LABELS".into(), json!(opts.labels));
    meta.insert("INSTANCE_IPS".into(), json!(node.ip));
    meta.insert("INTERCEPTION_MODE".into(), json!("REDIRECT"));
    meta.insert("WORKLOAD_NAME".into(), json!(app));
    meta.insert("MESH_ID".into(), json!("cluster.local"));
    meta.insert("SERVICE_ACCOUNT".into(), json!("default"));
    meta.insert("ENVOY_STATUS_PORT".into(), json!(15021));
    meta.insert("ENVOY_PROMETHEUS_PORT".into(), json!(15090));
    for (k, v) in &opts.metadata {
        meta.insert(k.clone(), json!(v));
    }
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let ads_source =
        json!({"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"});
    Ok(json!({
        "node": {
            "id": opts.node_id,
            "cluster": cluster,
            "locality": {},
            "metadata": Value::Object(meta),
        },
        "admin": {
            "access_log": [{
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": "/dev/null"
                }
            }],
            "address": {"socket_address": {"address": opts.admin_address, "port_value": opts.admin_port}}
        },
        "dynamic_resources": {
            "lds_config": ads_source,
            "cds_config": ads_source,
            "ads_config": {
                "api_type": "GRPC",
                "set_node_on_first_message_only": true,
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]
            }
        },
        "static_resources": {
            "clusters": [{
                "name": "xds-grpc",
                "type": if is_ip { "STATIC" } else { "STRICT_DNS" },
                "connect_timeout": "1s",
                "lb_policy": "ROUND_ROBIN",
                "dns_lookup_family": "V4_PREFERRED",
                "circuit_breakers": {"thresholds": [
                    {"priority": "DEFAULT", "max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000},
                    {"priority": "HIGH", "max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}
                ]},
                "upstream_connection_options": {"tcp_keepalive": {"keepalive_time": 300}},
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}}
                    }
                },
                "load_assignment": {
                    "cluster_name": "xds-grpc",
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]
                }
            }]
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_parsing() {
        let n = NodeId::parse("sidecar~10.1.2.3~reviews-v1-xyz.default~default.svc.cluster.local")
            .expect("parse");
        assert_eq!(n.pod_name(), "reviews-v1-xyz");
        assert_eq!(n.namespace(), "default");
        assert!(NodeId::parse("foo~1~2~3").is_none());
        assert!(NodeId::parse("sidecar~1~2").is_none());
    }

    #[test]
    fn bootstrap_shape() {
        let opts = BootstrapOptions {
            node_id: "router~127.0.0.1~gw-1.istio-system~istio-system.svc.cluster.local".into(),
            labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
            ..Default::default()
        };
        let b = generate(&opts).expect("bootstrap");
        assert_eq!(b["node"]["metadata"]["NAMESPACE"], "istio-system");
        assert_eq!(b["node"]["metadata"]["LABELS"]["istio"], "ingressgateway");
        assert_eq!(b["node"]["cluster"], "ingressgateway.istio-system");
        assert!(
            b["static_resources"]["clusters"][0]["typed_extension_protocol_options"].is_object()
        );
        assert!(generate(&BootstrapOptions {
            xds_address: "nope".into(),
            ..Default::default()
        })
        .is_err());
    }
}
