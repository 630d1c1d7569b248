//! The config store: a typed, versioned snapshot of Kubernetes and Istio objects, and its sources.
//!
//! Sources ([`file`]) parse documents into a [`Snapshot`] and publish it on a `tokio::sync::watch`
//! channel; consumers (xDS, admission lookups) read the latest `Arc<Snapshot>` without locking.

pub mod file;
pub mod k8s;
pub mod parse;

use crate::istio::networking as net;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use parse::{parse_documents, LoadError};

/// Metadata common to every stored object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Meta {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Where the object came from (`file[#doc]`), for error messages and debugging.
    pub source: String,
}

/// One stored object: metadata plus its typed body.
#[derive(Debug, Clone, PartialEq)]
pub struct Object<T> {
    pub meta: Meta,
    pub spec: T,
}

impl<T> Object<T> {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.meta.namespace, self.meta.name)
    }
}

/// An immutable, versioned view of all config. Cheap to share (`Arc`).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Monotonic version; bumps on every change the source observes.
    pub version: u64,
    pub namespaces: Vec<Object<()>>,
    pub services: Vec<Object<k8s::ServiceSpec>>,
    pub endpoints: Vec<Object<k8s::Endpoints>>,
    pub endpoint_slices: Vec<Object<k8s::EndpointSlice>>,
    pub pods: Vec<Object<k8s::Pod>>,
    pub service_entries: Vec<Object<net::ServiceEntry>>,
    pub workload_entries: Vec<Object<net::WorkloadEntry>>,
    pub virtual_services: Vec<Object<net::VirtualService>>,
    pub destination_rules: Vec<Object<net::DestinationRule>>,
    pub gateways: Vec<Object<net::Gateway>>,
    pub sidecars: Vec<Object<net::Sidecar>>,
    /// Objects that were skipped, with the reason.
    pub errors: Vec<LoadError>,
}

impl Snapshot {
    /// Total number of stored objects (errors excluded).
    pub fn len(&self) -> usize {
        self.namespaces.len()
            + self.services.len()
            + self.endpoints.len()
            + self.endpoint_slices.len()
            + self.pods.len()
            + self.service_entries.len()
            + self.workload_entries.len()
            + self.virtual_services.len()
            + self.destination_rules.len()
            + self.gateways.len()
            + self.sidecars.len()
    }

    /// A summary for `/debug/configz`: every object's kind, key and source, plus load errors.
    pub fn summary(&self) -> serde_json::Value {
        fn list<T>(v: &[Object<T>]) -> serde_json::Value {
            v.iter()
                .map(|o| serde_json::json!({"name": o.meta.name, "namespace": o.meta.namespace, "source": o.meta.source}))
                .collect()
        }
        serde_json::json!({
            "version": self.version,
            "Namespace": list(&self.namespaces),
            "Service": list(&self.services),
            "Endpoints": list(&self.endpoints),
            "EndpointSlice": list(&self.endpoint_slices),
            "Pod": list(&self.pods),
            "ServiceEntry": list(&self.service_entries),
            "WorkloadEntry": list(&self.workload_entries),
            "VirtualService": list(&self.virtual_services),
            "DestinationRule": list(&self.destination_rules),
            "Gateway": list(&self.gateways),
            "Sidecar": list(&self.sidecars),
            "errors": self.errors,
        })
    }

    /// True when no object is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorts every collection by namespace/name so equal inputs give equal snapshots.
    pub fn normalize(&mut self) {
        fn sort<T>(v: &mut [Object<T>]) {
            v.sort_by(|a, b| {
                (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name))
            });
        }
        sort(&mut self.namespaces);
        sort(&mut self.services);
        sort(&mut self.endpoints);
        sort(&mut self.endpoint_slices);
        sort(&mut self.pods);
        sort(&mut self.service_entries);
        sort(&mut self.workload_entries);
        sort(&mut self.virtual_services);
        sort(&mut self.destination_rules);
        sort(&mut self.gateways);
        sort(&mut self.sidecars);
    }
}

/// Shared handle to the latest snapshot.
pub type SnapshotRx = tokio::sync::watch::Receiver<Arc<Snapshot>>;

/// The bundled sample configuration (bookinfo-like services plus an `httpbin.example.com` gateway),
/// used when no `--config-dir` is given.
pub const SAMPLES: &[(&str, &str)] = &[
    (
        "bookinfo.yaml",
        include_str!("../../config/samples/bookinfo.yaml"),
    ),
    (
        "httpbin-gateway.yaml",
        include_str!("../../config/samples/httpbin-gateway.yaml"),
    ),
];

/// Parses the embedded samples into a snapshot (version 1).
pub fn sample_snapshot() -> Snapshot {
    let mut snap = Snapshot {
        version: 1,
        ..Default::default()
    };
    for (name, text) in SAMPLES {
        parse_documents(&format!("<embedded>/{name}"), text, &mut snap);
    }
    snap.normalize();
    snap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_parse_without_errors() {
        let snap = sample_snapshot();
        assert!(snap.errors.is_empty(), "{:?}", snap.errors);
        assert!(snap.services.len() >= 4);
        assert_eq!(snap.gateways.len(), 1);
        assert!(!snap.virtual_services.is_empty());
    }
}
