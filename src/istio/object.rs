//! A whole Istio Kubernetes object (`apiVersion`, `kind`, `metadata`, `spec`): kind lookup by
//! group and kind (the version is ignored, as istiod does) and typed decoding of the spec.

use std::collections::BTreeMap;

use serde_json::Value;

use super::decode::{Decode, Decoder, FieldValue, Path};
use super::networking as net;
use super::security as sec;

/// The Istio API groups whose objects meshd validates.
pub const ISTIO_GROUPS: [&str; 4] = [
    "networking.istio.io",
    "security.istio.io",
    "telemetry.istio.io",
    "extensions.istio.io",
];

/// The kinds meshd models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// networking.istio.io VirtualService
    VirtualService,
    /// networking.istio.io DestinationRule
    DestinationRule,
    /// networking.istio.io Gateway
    Gateway,
    /// networking.istio.io ServiceEntry
    ServiceEntry,
    /// networking.istio.io Sidecar
    Sidecar,
    /// networking.istio.io WorkloadEntry
    WorkloadEntry,
    /// security.istio.io PeerAuthentication
    PeerAuthentication,
    /// security.istio.io AuthorizationPolicy
    AuthorizationPolicy,
    /// security.istio.io RequestAuthentication
    RequestAuthentication,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::Gateway => "Gateway",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::Sidecar => "Sidecar",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::RequestAuthentication => "RequestAuthentication",
        }
    }
}

/// What a (group, kind) pair is to meshd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A kind meshd models and validates.
    Known(Kind),
    /// A real Istio kind that meshd does not model (EnvoyFilter, Telemetry, ...): only metadata is checked.
    Unmodeled,
    /// A kind in an Istio group that Istio does not define.
    UnknownInIstioGroup,
    /// Not an Istio group.
    NotIstio,
}

/// Looks up a kind by API group and kind; the version is ignored.
pub fn lookup(group: &str, kind: &str) -> Lookup {
    let known = match (group, kind) {
        ("networking.istio.io", "VirtualService") => Some(Kind::VirtualService),
        ("networking.istio.io", "DestinationRule") => Some(Kind::DestinationRule),
        ("networking.istio.io", "Gateway") => Some(Kind::Gateway),
        ("networking.istio.io", "ServiceEntry") => Some(Kind::ServiceEntry),
        ("networking.istio.io", "Sidecar") => Some(Kind::Sidecar),
        ("networking.istio.io", "WorkloadEntry") => Some(Kind::WorkloadEntry),
        ("security.istio.io", "PeerAuthentication") => Some(Kind::PeerAuthentication),
        ("security.istio.io", "AuthorizationPolicy") => Some(Kind::AuthorizationPolicy),
        ("security.istio.io", "RequestAuthentication") => Some(Kind::RequestAuthentication),
        _ => None,
    };
    if let Some(k) = known {
        return Lookup::Known(k);
    }
    match (group, kind) {
        ("networking.istio.io", "WorkloadGroup" | "EnvoyFilter" | "ProxyConfig")
        | ("telemetry.istio.io", "Telemetry")
        | ("extensions.istio.io", "WasmPlugin" | "TrafficExtension") => Lookup::Unmodeled,
        _ if ISTIO_GROUPS.contains(&group) => Lookup::UnknownInIstioGroup,
        _ => Lookup::NotIstio,
    }
}

/// Splits `group/version` (a bare version is the core group).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The object metadata validation needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// `metadata.name`
    pub name: String,
    /// `metadata.namespace` (`default` when absent, as istioctl does).
    pub namespace: String,
    /// `metadata.labels`
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`
    pub annotations: BTreeMap<String, String>,
}

impl Metadata {
    /// Reads metadata leniently (only name, namespace, labels and annotations are looked at).
    pub fn decode(v: Option<&Value>, d: &mut Decoder) -> Metadata {
        let mut m = Metadata::default();
        let root = Path::Root("metadata");
        if let Some(v) = v {
            if let Some(o) = v.as_object() {
                for (k, val) in o {
                    let fp = root.field(k);
                    match k.as_str() {
                        "name" => m.name = FieldValue::from_field(val, &fp, d),
                        "namespace" => m.namespace = FieldValue::from_field(val, &fp, d),
                        "labels" => m.labels = FieldValue::from_field(val, &fp, d),
                        "annotations" => m.annotations = FieldValue::from_field(val, &fp, d),
                        _ => {}
                    }
                }
            } else if !v.is_null() {
                d.err(&root, "expected an object");
            }
        }
        if m.namespace.is_empty() {
            m.namespace = "default".to_string();
        }
        m
    }
}

/// A typed spec of one of the modeled kinds.
// Specs are decoded one at a time and moved rarely; boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// VirtualService
    VirtualService(net::VirtualService),
    /// DestinationRule
    DestinationRule(net::DestinationRule),
    /// Gateway
    Gateway(net::Gateway),
    /// ServiceEntry
    ServiceEntry(net::ServiceEntry),
    /// Sidecar
    Sidecar(net::Sidecar),
    /// WorkloadEntry
    WorkloadEntry(net::WorkloadEntry),
    /// PeerAuthentication
    PeerAuthentication(sec::PeerAuthentication),
    /// AuthorizationPolicy
    AuthorizationPolicy(sec::AuthorizationPolicy),
    /// RequestAuthentication
    RequestAuthentication(sec::RequestAuthentication),
}

/// A decoded Istio object.
#[derive(Debug, Clone, PartialEq)]
pub struct IstioObject {
    /// `apiVersion` as given.
    pub api_version: String,
    /// The kind.
    pub kind: Kind,
    /// Metadata.
    pub metadata: Metadata,
    /// The typed spec.
    pub spec: Spec,
}

/// Decodes the `spec` of a modeled kind. Errors (with `spec.` paths) go to `d`; a spec that
/// cannot be decoded at all yields `None`.
pub fn decode_spec(kind: Kind, spec: &Value, d: &mut Decoder) -> Option<Spec> {
    let p = Path::Root("spec");
    let empty = Value::Object(serde_json::Map::new());
    let spec = if spec.is_null() { &empty } else { spec };
    Some(match kind {
        Kind::VirtualService => Spec::VirtualService(Decode::decode(spec, &p, d)?),
        Kind::DestinationRule => Spec::DestinationRule(Decode::decode(spec, &p, d)?),
        Kind::Gateway => Spec::Gateway(Decode::decode(spec, &p, d)?),
        Kind::ServiceEntry => Spec::ServiceEntry(Decode::decode(spec, &p, d)?),
        Kind::Sidecar => Spec::Sidecar(Decode::decode(spec, &p, d)?),
        Kind::WorkloadEntry => Spec::WorkloadEntry(Decode::decode(spec, &p, d)?),
        Kind::PeerAuthentication => Spec::PeerAuthentication(Decode::decode(spec, &p, d)?),
        Kind::AuthorizationPolicy => Spec::AuthorizationPolicy(Decode::decode(spec, &p, d)?),
        Kind::RequestAuthentication => Spec::RequestAuthentication(Decode::decode(spec, &p, d)?),
    })
}

/// Decodes a whole object of a modeled kind. Returns `None` when it is not one; decoding errors
/// are left in `d` (the object is still returned when the spec is an object).
pub fn decode_object(obj: &Value, d: &mut Decoder) -> Option<IstioObject> {
    let api_version = obj.get("apiVersion")?.as_str()?.to_string();
    let kind_name = obj.get("kind")?.as_str()?;
    let (group, _) = split_api_version(&api_version);
    let Lookup::Known(kind) = lookup(group, kind_name) else {
        return None;
    };
    let metadata = Metadata::decode(obj.get("metadata"), d);
    let spec = decode_spec(kind, obj.get("spec").unwrap_or(&Value::Null), d)?;
    Some(IstioObject {
        api_version,
        kind,
        metadata,
        spec,
    })
}
