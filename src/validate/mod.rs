//! Validation of Istio config objects with Istio parity (spec/validation.md §1.6, §2): one module
//! per kind plus shared checks. Pure: values in, a [`Verdict`] (errors and warnings apart) out.

pub mod common;
pub mod destination_rule;
pub mod documents;
pub mod gateway;
pub mod security;
pub mod service_entry;
pub mod sidecar;
pub mod virtual_service;

#[cfg(test)]
mod testutil;

use serde_json::Value;

use crate::istio::decode::Decoder;
use crate::istio::object::{self, split_api_version, Lookup, Metadata};
use crate::istio::security::Action;
use crate::istio::{Kind, Spec};

pub use common::Report;

/// Decoding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Unknown `spec` fields are ignored (the webhook, like istiod).
    Lenient,
    /// Unknown `spec` fields are errors (the CLI, like `istioctl validate`).
    Strict,
}

/// The outcome for one object: it is valid when `errors` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Errors (the object is rejected), deterministically ordered.
    pub errors: Vec<String>,
    /// Warnings (the object is accepted), each under 256 characters.
    pub warnings: Vec<String>,
}

impl Verdict {
    /// No errors.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The text of an admission denial, Istio-style and deterministic:
    /// `configuration is invalid: <error>` or `configuration is invalid: N errors occurred: a; b`.
    /// `None` when the object is valid.
    pub fn denial_message(&self) -> Option<String> {
        match self.errors.as_slice() {
            [] => None,
            [one] => Some(format!("configuration is invalid: {one}")),
            many => Some(format!(
                "configuration is invalid: {} errors occurred: {}",
                many.len(),
                many.join("; ")
            )),
        }
    }
}

/// Why an object could not be validated at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidateError {
    /// The value is not a JSON object.
    #[error("object is not a JSON object")]
    NotAnObject,
    /// `apiVersion` or `kind` is missing or not a string.
    #[error("object has no apiVersion or kind")]
    MissingTypeInfo,
    /// The object is not in an Istio API group.
    #[error("{api_version}, Kind={kind} is not an Istio config type")]
    NotIstio {
        /// `apiVersion`
        api_version: String,
        /// `kind`
        kind: String,
    },
}

/// The longest warning text handed out (kubectl/apiserver truncate longer ones).
pub const MAX_WARNING_LEN: usize = 255;

/// Validates one Kubernetes object (apiVersion/kind/metadata/spec as JSON).
/// Unknown kinds in the Istio groups give an error in the verdict; kinds outside the Istio groups
/// give `Err(NotIstio)`.
pub fn validate_object(obj: &Value, mode: Mode) -> Result<Verdict, ValidateError> {
    validate_object_in(obj, mode, "default")
}

/// Like [`validate_object`], for an object without `metadata.namespace` that belongs to
/// `namespace` (the webhook passes `request.namespace`; the CLI uses `default`, as istioctl does).
pub fn validate_object_in(
    obj: &Value,
    mode: Mode,
    namespace: &str,
) -> Result<Verdict, ValidateError> {
    let map = obj.as_object().ok_or(ValidateError::NotAnObject)?;
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(ValidateError::MissingTypeInfo)?;
    let kind_name = map
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(ValidateError::MissingTypeInfo)?;
    let (group, version) = split_api_version(api_version);
    let lookup = object::lookup(group, kind_name);
    let mut d = Decoder::new(mode == Mode::Strict);
    let mut meta = Metadata::decode(map.get("metadata"), &mut d);
    if !namespace.is_empty() && !has_namespace(map.get("metadata")) {
        meta.namespace = namespace.to_string();
    }
    let mut r = Report::new(kind_name, &meta.namespace, &meta.name);
    match lookup {
        Lookup::NotIstio => {
            return Err(ValidateError::NotIstio {
                api_version: api_version.to_string(),
                kind: kind_name.to_string(),
            })
        }
        Lookup::UnknownInIstioGroup => {
            r.err_raw(format!(
                "unrecognized type {group}/{version}, Kind={kind_name}"
            ));
            return Ok(finish(r));
        }
        Lookup::Unmodeled => {
            for e in d.errors.drain(..) {
                r.err_raw(e);
            }
            check_metadata(&mut r, None, &meta, None);
        }
        Lookup::Known(kind) => {
            let spec = object::decode_spec(kind, map.get("spec").unwrap_or(&Value::Null), &mut d);
            if !d.errors.is_empty() {
                for e in d.errors.drain(..) {
                    r.err_raw(e);
                }
            } else if let Some(spec) = spec {
                r.aliases = std::mem::take(&mut d.aliases);
                let action = match &spec {
                    Spec::AuthorizationPolicy(ap) => Some(ap.action),
                    _ => None,
                };
                check_metadata(&mut r, Some(kind), &meta, action);
                validate_spec(&mut r, &meta, &spec);
            }
        }
    }
    for k in map.keys() {
        if !matches!(
            k.as_str(),
            "apiVersion" | "kind" | "metadata" | "spec" | "status"
        ) {
            r.err_raw(format!(
                "unknown field {k:?} on {kind_name} resource {}/{}",
                meta.namespace, meta.name
            ));
        }
    }
    Ok(finish(r))
}

/// Runs the validator of the spec's kind.
pub fn validate_spec(r: &mut Report, meta: &Metadata, spec: &Spec) {
    match spec {
        Spec::VirtualService(s) => virtual_service::validate(r, meta, s),
        Spec::DestinationRule(s) => destination_rule::validate(r, meta, s),
        Spec::Gateway(s) => gateway::validate(r, meta, s),
        Spec::ServiceEntry(s) => service_entry::validate(r, meta, s),
        Spec::Sidecar(s) => sidecar::validate(r, meta, s),
        Spec::WorkloadEntry(s) => service_entry::validate_workload_entry(r, meta, s),
        Spec::PeerAuthentication(s) => security::validate_peer_authentication(r, meta, s),
        Spec::AuthorizationPolicy(s) => security::validate_authorization_policy(r, meta, s),
        Spec::RequestAuthentication(s) => security::validate_request_authentication(r, meta, s),
    }
}

fn has_namespace(meta: Option<&Value>) -> bool {
    meta.and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

fn finish(r: Report) -> Verdict {
    let mut warnings = Vec::with_capacity(r.warnings.len());
    for w in r.warnings {
        if !warnings.contains(&w) {
            warnings.push(truncate(w));
        }
    }
    let mut errors: Vec<String> = Vec::with_capacity(r.errors.len());
    for e in r.errors {
        if !errors.contains(&e) {
            errors.push(e);
        }
    }
    Verdict { errors, warnings }
}

fn truncate(mut w: String) -> String {
    if w.len() <= MAX_WARNING_LEN {
        return w;
    }
    let mut cut = MAX_WARNING_LEN - 3;
    while !w.is_char_boundary(cut) {
        cut -= 1;
    }
    w.truncate(cut);
    w.push_str("...");
    w
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Metadata checks applied to every kind (spec §1.6) plus label and annotation key syntax.
fn check_metadata(r: &mut Report, kind: Option<Kind>, meta: &Metadata, action: Option<Action>) {
    use crate::istio::Path;
    let root = Path::Root("metadata");
    let labels = root.field("labels");
    common::check_labels(r, &labels, &meta.labels);
    let ann = root.field("annotations");
    for (k, v) in &meta.annotations {
        let ap = ann.key(k);
        if !common::is_label_key(k) {
            r.err(&ap, format!("invalid annotation key: {k:?}"));
        }
        match k.as_str() {
            "istio.io/dry-run" => {
                if kind != Some(Kind::AuthorizationPolicy) {
                    r.err(
                        &ap,
                        format!(
                            "{}/{} has unsupported annotation istio.io/dry-run, please remove the annotation",
                            meta.namespace, meta.name
                        ),
                    );
                } else if parse_go_bool(v).is_none() {
                    r.err(
                        &ap,
                        format!(
                            "{}/{} has annotation istio.io/dry-run with invalid value ({v:?}): must be a boolean",
                            meta.namespace, meta.name
                        ),
                    );
                } else if let Some(a) = action {
                    if !matches!(a, Action::Allow | Action::Deny) {
                        r.err(
                            &ap,
                            format!(
                                "the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action {}",
                                a.name()
                            ),
                        );
                    }
                }
            }
            "internal.istio.io/webhook-always-reject" => {
                r.err(
                    &ap,
                    "\"internal.istio.io/webhook-always-reject\" annotation found, rejecting",
                );
            }
            "internal.istio.io/parent-namespace" | "internal.istio.io/parents" => {
                r.err(
                    &ap,
                    format!("{k:?} annotation found, this may not be set by users"),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn not_istio() {
        let o = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert!(matches!(
            validate_object(&o, Mode::Strict),
            Err(ValidateError::NotIstio { .. })
        ));
        assert_eq!(
            validate_object(&json!([]), Mode::Strict),
            Err(ValidateError::NotAnObject)
        );
    }

    #[test]
    fn unknown_istio_kind() {
        let o = json!({"apiVersion": "networking.istio.io/v1", "kind": "Foo", "metadata": {"name": "p"}});
        let v = validate_object(&o, Mode::Lenient).unwrap();
        assert!(v.errors[0].contains("unrecognized type networking.istio.io/v1, Kind=Foo"));
    }

    #[test]
    fn top_level_and_strictness() {
        let o = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "r", "namespace": "ns"}, "extra": 1,
            "spec": {"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r"}}], "foo": 1}]}});
        let v = validate_object(&o, Mode::Strict).unwrap();
        assert_eq!(
            v.errors,
            vec![
                "VirtualService ns/r: spec.http[0].foo: unknown field",
                "VirtualService ns/r: unknown field \"extra\" on VirtualService resource ns/r"
            ]
        );
        let v = validate_object(&o, Mode::Lenient).unwrap();
        assert_eq!(v.errors.len(), 1);
    }

    #[test]
    fn metadata_annotations() {
        let o = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "g", "annotations": {"istio.io/dry-run": "true"}},
            "spec": {"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["a.b"]}]}});
        let v = validate_object(&o, Mode::Strict).unwrap();
        assert!(v.errors[0].contains("unsupported annotation istio.io/dry-run"));
    }

    #[test]
    fn denial_message() {
        let mut v = Verdict::default();
        assert_eq!(v.denial_message(), None);
        v.errors.push("a".into());
        assert_eq!(
            v.denial_message().as_deref(),
            Some("configuration is invalid: a")
        );
        v.errors.push("b".into());
        assert_eq!(
            v.denial_message().as_deref(),
            Some("configuration is invalid: 2 errors occurred: a; b")
        );
    }

    #[test]
    fn warnings_are_short() {
        let w = truncate("x".repeat(1000));
        assert!(w.len() < 256);
    }
}
