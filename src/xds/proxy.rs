//! The proxy as meshd sees it: parsed from the Envoy `Node` (Istio node id and metadata).

use super::bootstrap::NodeId;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeType {
    Sidecar,
    Router,
}

/// A connected (or simulated) proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    pub id: String,
    pub node_type: NodeType,
    pub ip: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

/// Why a node could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("missing node on the first request")]
    MissingNode,
    #[error(
        "node id {0:?} is not an Istio node id (TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local)"
    )]
    BadNodeId(String),
}

fn as_str(v: &Value) -> Option<String> {
    match v.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        Kind::NumberValue(n) => Some(n.to_string()),
        Kind::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn field<'a>(s: &'a Struct, key: &str) -> Option<&'a Value> {
    s.fields.get(key)
}

impl Proxy {
    /// Builds the proxy from a node (id + metadata `NAMESPACE`, `LABELS`, `INSTANCE_IPS`).
    pub fn from_node(node: Option<&Node>) -> Result<Proxy, ProxyError> {
        let node = node.ok_or(ProxyError::MissingNode)?;
        let nid = NodeId::parse(&node.id).ok_or_else(|| ProxyError::BadNodeId(node.id.clone()))?;
        let meta = node.metadata.clone().unwrap_or_default();
        let mut labels = BTreeMap::new();
        if let Some(Kind::StructValue(l)) = field(&meta, "LABELS").and_then(|v| v.kind.as_ref()) {
            for (k, v) in &l.fields {
                if let Some(s) = as_str(v) {
                    labels.insert(k.clone(), s);
                }
            }
        }
        let namespace = field(&meta, "NAMESPACE")
            .and_then(as_str)
            .unwrap_or_else(|| nid.namespace().to_string());
        let ip = field(&meta, "INSTANCE_IPS")
            .and_then(as_str)
            .and_then(|s| s.split(',').next().map(str::to_string))
            .filter(|s| !s.is_empty())
            .unwrap_or(nid.ip.clone());
        Ok(Proxy {
            id: node.id.clone(),
            node_type: if nid.node_type == "router" {
                NodeType::Router
            } else {
                NodeType::Sidecar
            },
            ip,
            namespace,
            labels,
        })
    }

    /// The inputs translation depends on (node type, namespace, labels; not the IP or pod name), so
    /// every replica of a workload shares one set of generated resources.
    pub fn cache_key(&self) -> ProxyKey {
        ProxyKey {
            node_type: self.node_type,
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// Cache key of generated resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyKey {
    pub node_type: NodeType,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_node() {
        let mut labels = Struct::default();
        labels.fields.insert(
            "istio".into(),
            Value {
                kind: Some(Kind::StringValue("ingressgateway".into())),
            },
        );
        let mut meta = Struct::default();
        meta.fields.insert(
            "LABELS".into(),
            Value {
                kind: Some(Kind::StructValue(labels)),
            },
        );
        let node = Node {
            id: "router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local".into(),
            metadata: Some(meta),
            ..Default::default()
        };
        let p = Proxy::from_node(Some(&node)).expect("proxy");
        assert_eq!(p.node_type, NodeType::Router);
        assert_eq!(p.namespace, "istio-system");
        assert_eq!(p.labels["istio"], "ingressgateway");
        assert!(Proxy::from_node(None).is_err());
        let bad = Node {
            id: "x".into(),
            ..Default::default()
        };
        assert!(Proxy::from_node(Some(&bad)).is_err());
    }
}
