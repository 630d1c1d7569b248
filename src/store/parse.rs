//! Decoding of multi-document YAML/JSON text into typed store objects; bad objects become [`LoadError`]s.

use super::{k8s, Meta, Object, Snapshot};
use crate::istio::{decode_object, Decoder, Spec};
use crate::validate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An object (or document) that could not be loaded; the rest of the config is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{source_name}: {object}: {message}")]
pub struct LoadError {
    /// File (and document index) the object came from.
    pub source_name: String,
    /// `Kind namespace/name`, or `document N` when the document itself is unreadable.
    pub object: String,
    pub message: String,
}

#[derive(Deserialize)]
struct RawMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Parses every document in `text` (YAML or JSON, `---`-separated, `kind: List` expanded) into `snap`.
/// Unknown kinds are ignored; malformed ones are recorded in `snap.errors`.
pub fn parse_documents(source: &str, text: &str, snap: &mut Snapshot) {
    for (idx, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = match Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                snap.errors.push(LoadError {
                    source_name: source.to_string(),
                    object: format!("document {}", idx + 1),
                    message: format!("invalid YAML/JSON: {e}"),
                });
                // A syntax error stops the YAML stream; nothing after it is reliable.
                break;
            }
        };
        let src = format!("{source}#{}", idx + 1);
        add_value(&src, value, snap);
    }
}

/// Adds one object (or a `List`) to `snap`; a malformed one becomes a load error.
pub fn add_value(src: &str, value: Value, snap: &mut Snapshot) {
    if value.is_null() {
        return;
    }
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if kind == "List" || kind.ends_with("List") {
        if let Some(items) = value.get("items").and_then(Value::as_array) {
            for item in items.clone() {
                add_value(src, item, snap);
            }
        }
        return;
    }
    if let Err(e) = add_object(src, &kind, &value, snap) {
        snap.errors.push(e);
    }
}

fn add_object(src: &str, kind: &str, value: &Value, snap: &mut Snapshot) -> Result<(), LoadError> {
    let raw_meta = value.get("metadata").cloned().unwrap_or(Value::Null);
    let err = |object: String, message: String| LoadError {
        source_name: src.to_string(),
        object,
        message,
    };
    let meta: RawMeta = if raw_meta.is_null() {
        RawMeta {
            name: None,
            namespace: None,
            labels: None,
            annotations: None,
        }
    } else {
        serde_json::from_value(raw_meta)
            .map_err(|e| err(format!("{kind} <unknown>"), format!("metadata: {e}")))?
    };
    let name = meta.name.clone().unwrap_or_default();
    let namespace = if kind == "Namespace" {
        String::new()
    } else {
        meta.namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string())
    };
    let object_name = format!("{kind} {namespace}/{name}");
    if !known_kind(kind) {
        return Ok(());
    }
    if name.is_empty() {
        return Err(err(object_name, "metadata.name is required".into()));
    }
    let meta = Meta {
        name,
        namespace,
        labels: meta.labels.unwrap_or_default(),
        annotations: meta.annotations.unwrap_or_default(),
        source: src.to_string(),
    };
    fn spec<T: DeserializeOwned>(v: Option<&Value>) -> Result<T, String> {
        let v = v
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
    fn obj<T>(meta: Meta, spec: T) -> Object<T> {
        Object { meta, spec }
    }
    let whole = Some(value);
    let s = value.get("spec");
    let r: Result<(), String> = (|| {
        match kind {
            "Namespace" => snap.namespaces.push(obj(meta, ())),
            "Service" => {
                let sp: k8s::ServiceSpec = spec(s)?;
                for p in &sp.ports {
                    if p.port == 0 || p.port > 65535 {
                        return Err(format!("spec.ports: invalid port {}", p.port));
                    }
                }
                snap.services.push(obj(meta, sp))
            }
            "Endpoints" => snap.endpoints.push(obj(meta, spec(whole)?)),
            "EndpointSlice" => snap.endpoint_slices.push(obj(meta, spec(whole)?)),
            "Pod" => snap.pods.push(obj(meta, spec(whole)?)),
            _ => {
                let Some(spec) = istio_spec(value)? else {
                    return Ok(());
                };
                match spec {
                    Spec::ServiceEntry(x) => snap.service_entries.push(obj(meta, x)),
                    Spec::WorkloadEntry(x) => snap.workload_entries.push(obj(meta, x)),
                    Spec::VirtualService(x) => snap.virtual_services.push(obj(meta, x)),
                    Spec::DestinationRule(x) => snap.destination_rules.push(obj(meta, x)),
                    Spec::Gateway(x) => snap.gateways.push(obj(meta, x)),
                    Spec::Sidecar(x) => snap.sidecars.push(obj(meta, x)),
                    _ => {}
                }
            }
        }
        Ok(())
    })();
    r.map_err(|m| err(object_name, m))
}

/// Validates an Istio object like the webhook does (lenient decoding, Istio's rules) and decodes its
/// spec. A config that validates is a config that translates; one that doesn't is skipped.
fn istio_spec(value: &Value) -> Result<Option<Spec>, String> {
    if value.get("apiVersion").and_then(Value::as_str).is_none() {
        return Err("apiVersion is required (e.g. networking.istio.io/v1)".into());
    }
    let verdict = match validate::validate_object(value, validate::Mode::Lenient) {
        Ok(v) => v,
        Err(validate::ValidateError::NotIstio { .. }) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if !verdict.is_valid() {
        return Err(verdict.errors.join("; "));
    }
    let mut d = Decoder::new(false);
    Ok(decode_object(value, &mut d).map(|o| o.spec))
}

fn known_kind(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Service"
            | "Endpoints"
            | "EndpointSlice"
            | "Pod"
            | "ServiceEntry"
            | "WorkloadEntry"
            | "VirtualService"
            | "DestinationRule"
            | "Gateway"
            | "Sidecar"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_with_bad_object_keeps_the_rest() {
        let text = r#"
apiVersion: v1
kind: Service
metadata: {name: a, namespace: ns}
spec: {ports: [{port: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad}
spec: {hosts: [a], http: [{timeout: "ten", route: [{destination: {host: a}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: good}
spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}
"#;
        let mut snap = Snapshot::default();
        parse_documents("t.yaml", text, &mut snap);
        assert_eq!(snap.services.len(), 1);
        assert_eq!(snap.virtual_services.len(), 1);
        assert_eq!(snap.errors.len(), 1);
        let e = snap.errors[0].to_string();
        assert!(
            e.contains("t.yaml#2")
                && e.contains("VirtualService default/bad")
                && e.contains("timeout"),
            "{e}"
        );
    }

    #[test]
    fn json_and_list_and_garbage() {
        let mut snap = Snapshot::default();
        parse_documents(
            "l.json",
            r#"{"kind":"List","items":[{"kind":"Namespace","metadata":{"name":"x"}}]}"#,
            &mut snap,
        );
        assert_eq!(snap.namespaces.len(), 1);
        parse_documents(
            "g.yaml",
            "kind: Service\nmetadata: {name: s}\nspec: {ports: 7}\n",
            &mut snap,
        );
        parse_documents("h.yaml", ": : :\n\t- [", &mut snap);
        assert_eq!(snap.errors.len(), 2);
    }
}
