//! OpenAPI v3 (structural) schemas derived from the typed API, for the CustomResourceDefinitions
//! meshd installs: every message field under its JSON (camelCase) name, enums and integers as
//! int-or-string (Istio accepts enum numbers and quoted integers), durations as strings.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::object::Kind;
use super::{networking as net, security as sec};

/// A type that can describe its JSON form.
pub trait Schema {
    fn schema() -> Value;
}

impl Schema for String {
    fn schema() -> Value {
        json!({"type": "string"})
    }
}

impl Schema for bool {
    fn schema() -> Value {
        json!({"type": "boolean"})
    }
}

macro_rules! int_schema {
    ($($t:ty),*) => {$(
        impl Schema for $t {
            fn schema() -> Value {
                json!({"x-kubernetes-int-or-string": true})
            }
        }
    )*};
}
int_schema!(u32, i32, u64, i64);

impl Schema for f64 {
    fn schema() -> Value {
        json!({"type": "number"})
    }
}

impl Schema for Value {
    fn schema() -> Value {
        json!({"x-kubernetes-preserve-unknown-fields": true})
    }
}

impl Schema for super::Duration {
    fn schema() -> Value {
        json!({"type": "string"})
    }
}

impl<T: Schema> Schema for Option<T> {
    fn schema() -> Value {
        T::schema()
    }
}

impl<T: Schema> Schema for Vec<T> {
    fn schema() -> Value {
        json!({"type": "array", "items": T::schema()})
    }
}

impl<T: Schema> Schema for BTreeMap<String, T> {
    fn schema() -> Value {
        json!({"type": "object", "additionalProperties": T::schema()})
    }
}

impl<T: Schema> Schema for BTreeMap<u32, T> {
    fn schema() -> Value {
        json!({"type": "object", "additionalProperties": T::schema()})
    }
}

impl Schema for net::StringMatch {
    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "exact": {"type": "string"}, "prefix": {"type": "string"}, "regex": {"type": "string"}}})
    }
}

/// The JSON name of a proto field identifier (`sni_hosts` → `sniHosts`, `r#type` → `type`).
pub fn json_name(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let mut out = String::with_capacity(ident.len());
    let mut upper = false;
    for c in ident.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// An object schema from (field identifier, field schema) pairs.
pub fn message_schema(fields: Vec<(&str, Value)>) -> Value {
    let props: Map<String, Value> = fields.into_iter().map(|(f, s)| (json_name(f), s)).collect();
    json!({"type": "object", "properties": props})
}

/// The `spec` schema of a kind.
pub fn spec_schema(kind: Kind) -> Value {
    match kind {
        Kind::VirtualService => net::VirtualService::schema(),
        Kind::DestinationRule => net::DestinationRule::schema(),
        Kind::Gateway => net::Gateway::schema(),
        Kind::ServiceEntry => net::ServiceEntry::schema(),
        Kind::Sidecar => net::Sidecar::schema(),
        Kind::WorkloadEntry => net::WorkloadEntry::schema(),
        Kind::PeerAuthentication => sec::PeerAuthentication::schema(),
        Kind::AuthorizationPolicy => sec::AuthorizationPolicy::schema(),
        Kind::RequestAuthentication => sec::RequestAuthentication::schema(),
    }
}

/// (kind, group, plural, short names, served versions; the first is stored).
pub type CrdEntry = (
    Kind,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// Every CRD meshd installs.
pub const CRDS: &[CrdEntry] = &[
    (
        Kind::VirtualService,
        "networking.istio.io",
        "virtualservices",
        &["vs"],
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        Kind::DestinationRule,
        "networking.istio.io",
        "destinationrules",
        &["dr"],
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        Kind::Gateway,
        "networking.istio.io",
        "gateways",
        &["gw"],
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        Kind::ServiceEntry,
        "networking.istio.io",
        "serviceentries",
        &["se"],
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        Kind::Sidecar,
        "networking.istio.io",
        "sidecars",
        &[],
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        Kind::WorkloadEntry,
        "networking.istio.io",
        "workloadentries",
        &["we"],
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        Kind::PeerAuthentication,
        "security.istio.io",
        "peerauthentications",
        &["pa"],
        &["v1", "v1beta1"],
    ),
    (
        Kind::AuthorizationPolicy,
        "security.istio.io",
        "authorizationpolicies",
        &["ap"],
        &["v1", "v1beta1"],
    ),
    (
        Kind::RequestAuthentication,
        "security.istio.io",
        "requestauthentications",
        &["ra"],
        &["v1", "v1beta1"],
    ),
];

/// The CustomResourceDefinitions of every kind meshd serves, with schemas from the typed API.
pub fn crds() -> Vec<Value> {
    CRDS.iter()
        .map(|(kind, group, plural, short, versions)| {
            let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {
                "spec": spec_schema(*kind),
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}});
            let versions: Vec<Value> = versions
                .iter()
                .enumerate()
                .map(|(i, v)| json!({"name": v, "served": true, "storage": i == 0, "schema": schema,
                    "subresources": {"status": {}}}))
                .collect();
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.{group}"), "labels": {"app.kubernetes.io/part-of": "meshd"}},
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {"kind": kind.as_str(), "plural": plural, "singular": kind.as_str().to_lowercase(),
                        "listKind": format!("{}List", kind.as_str()), "shortNames": short, "categories": ["istio-io"]},
                    "versions": versions,
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_name_fields_as_json_does() {
        let vs = spec_schema(Kind::VirtualService);
        let http = &vs["properties"]["http"]["items"]["properties"];
        assert!(
            http.get("match").is_some()
                && http.get("route").is_some()
                && http.get("corsPolicy").is_some(),
            "{http}"
        );
        assert_eq!(http["timeout"], json!({"type": "string"}));
        assert_eq!(json_name("r#type"), "type");
        assert_eq!(crds().len(), 9);
    }
}
