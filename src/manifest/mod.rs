//! Deployment manifests: profiles (`deploy/profiles/*.yaml`, each layered on `default`) rendered
//! through the minijinja templates of `deploy/templates/` into Kubernetes objects, after the
//! CustomResourceDefinitions generated from the typed Istio API. The webhook
//! selectors come from the same code the injector's truth-table tests check. Built in; a
//! directory with the same layout can replace it.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::Environment;
use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

use crate::config::{deep_merge, parse_yaml};
use crate::inject::policy::webhook_entries;

const BUILTIN_PROFILES: &[(&str, &str)] = &[
    (
        "default",
        include_str!("../../deploy/profiles/default.yaml"),
    ),
    ("demo", include_str!("../../deploy/profiles/demo.yaml")),
    (
        "minimal",
        include_str!("../../deploy/profiles/minimal.yaml"),
    ),
];
const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "00-namespace.yaml",
        include_str!("../../deploy/templates/00-namespace.yaml"),
    ),
    (
        "10-serviceaccount.yaml",
        include_str!("../../deploy/templates/10-serviceaccount.yaml"),
    ),
    (
        "20-rbac.yaml",
        include_str!("../../deploy/templates/20-rbac.yaml"),
    ),
    (
        "30-configmaps.yaml",
        include_str!("../../deploy/templates/30-configmaps.yaml"),
    ),
    (
        "40-deployment.yaml",
        include_str!("../../deploy/templates/40-deployment.yaml"),
    ),
    (
        "50-service.yaml",
        include_str!("../../deploy/templates/50-service.yaml"),
    ),
    (
        "60-pdb.yaml",
        include_str!("../../deploy/templates/60-pdb.yaml"),
    ),
    (
        "70-webhooks.yaml",
        include_str!("../../deploy/templates/70-webhooks.yaml"),
    ),
];

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("unknown profile {name:?}; have {have}")]
    UnknownProfile { name: String, have: String },
    #[error("profile {name}: {message}")]
    Profile { name: String, message: String },
    #[error("--set {0:?}: expected key.path=value")]
    BadSet(String),
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Profiles and templates, built in or read from a directory laid out like `deploy/`.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub profiles: BTreeMap<String, String>,
    pub templates: BTreeMap<String, String>,
}

impl Bundle {
    pub fn builtin() -> Self {
        Bundle {
            profiles: BUILTIN_PROFILES
                .iter()
                .map(|(n, t)| ((*n).into(), (*t).into()))
                .collect(),
            templates: BUILTIN_TEMPLATES
                .iter()
                .map(|(n, t)| ((*n).into(), (*t).into()))
                .collect(),
        }
    }

    /// Reads `DIR/profiles/*.yaml` and `DIR/templates/*.yaml`.
    pub fn from_dir(dir: &Path) -> Result<Self, ManifestError> {
        let read = |sub: &str| -> Result<BTreeMap<String, String>, ManifestError> {
            let d = dir.join(sub);
            let io = |source| ManifestError::Io {
                path: d.display().to_string(),
                source,
            };
            let mut out = BTreeMap::new();
            for e in std::fs::read_dir(&d).map_err(io)? {
                let p = e.map_err(io)?.path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    let text = std::fs::read_to_string(&p).map_err(|source| ManifestError::Io {
                        path: p.display().to_string(),
                        source,
                    })?;
                    let name = if sub == "profiles" {
                        p.file_stem()
                    } else {
                        p.file_name()
                    };
                    if let Some(n) = name.and_then(|n| n.to_str()) {
                        out.insert(n.to_string(), text);
                    }
                }
            }
            Ok(out)
        };
        Ok(Bundle {
            profiles: read("profiles")?,
            templates: read("templates")?,
        })
    }

    /// Profile names, sorted.
    pub fn profile_names(&self) -> Vec<String> {
        self.profiles.keys().cloned().collect()
    }

    /// The effective values of a profile (`default` with the profile on top) plus `--set`s.
    pub fn profile(&self, name: &str, sets: &[String]) -> Result<Value, ManifestError> {
        let parse = |n: &str| -> Result<Value, ManifestError> {
            let text = self
                .profiles
                .get(n)
                .ok_or_else(|| ManifestError::UnknownProfile {
                    name: n.to_string(),
                    have: self.profile_names().join(", "),
                })?;
            parse_yaml(&format!("profile {n}"), text).map_err(|e| ManifestError::Profile {
                name: n.into(),
                message: e.to_string(),
            })
        };
        let mut v = parse("default")?;
        if name != "default" {
            deep_merge(&mut v, &parse(name)?);
        }
        for s in sets {
            apply_set(&mut v, s)?;
        }
        Ok(v)
    }
}

/// Applies `a.b.c=value` (value parsed as a YAML scalar) to a values tree.
pub fn apply_set(v: &mut Value, set: &str) -> Result<(), ManifestError> {
    let (path, raw) = set
        .split_once('=')
        .ok_or_else(|| ManifestError::BadSet(set.into()))?;
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(ManifestError::BadSet(set.into()));
    }
    let value: Value =
        serde_norway::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    let value = if value.is_null() && !raw.is_empty() && raw != "null" && raw != "~" {
        Value::String(raw.into())
    } else {
        value
    };
    let mut cur = v;
    let keys: Vec<&str> = path.split('.').collect();
    for (i, k) in keys.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(obj) = cur.as_object_mut() else {
            return Err(ManifestError::BadSet(set.into()));
        };
        if i + 1 == keys.len() {
            obj.insert((*k).to_string(), value);
            return Ok(());
        }
        cur = obj.entry((*k).to_string()).or_insert_with(|| json!({}));
    }
    Ok(())
}

fn to_yaml(v: minijinja::Value) -> Result<String, minijinja::Error> {
    let json: Value = serde_json::to_value(&v).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    serde_norway::to_string(&json)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

/// Renders the manifests of a profile into Kubernetes objects, in template order.
pub fn render(
    bundle: &Bundle,
    profile: &str,
    revision: Option<&str>,
    sets: &[String],
) -> Result<Vec<Value>, ManifestError> {
    let mut p = bundle.profile(profile, sets)?;
    if let (Some(r), Some(o)) = (revision, p.as_object_mut()) {
        o.insert(
            "revision".into(),
            json!(if r == "default" { "" } else { r }),
        );
    }
    let revision = p
        .get("revision")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let namespace = p
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("istio-system")
        .to_string();
    if let Some(values) = p.get_mut("values").and_then(Value::as_object_mut) {
        values.insert("revision".into(), json!(revision));
    }
    let suffix = if revision.is_empty() {
        String::new()
    } else {
        format!("-{revision}")
    };
    let name = format!("meshd{suffix}");
    let ns_suffix = if namespace == "istio-system" {
        String::new()
    } else {
        format!("-{namespace}")
    };
    let by_default = p
        .pointer("/webhook/enableNamespacesByDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let rev_label = if revision.is_empty() {
        "default".to_string()
    } else {
        revision.clone()
    };
    let ctx = json!({
        "p": p,
        "name": name,
        "rev_suffix": suffix,
        "mwc_name": format!("meshd-sidecar-injector{suffix}{ns_suffix}"),
        "vwc_name": format!("meshd-validator{suffix}{ns_suffix}"),
        "labels": {"app.kubernetes.io/name": "meshd", "app.kubernetes.io/part-of": "meshd", "app": "meshd", "istio.io/rev": rev_label},
        "selector": {"app": "meshd", "istio.io/rev": rev_label},
        "webhooks": webhook_entries(&revision, by_default),
    });
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("to_yaml", to_yaml);
    let ctx = minijinja::Value::from_serialize(&ctx);
    // CRDs of the Istio kinds meshd serves, with schemas generated from the typed API.
    let mut out = crate::istio::schema::crds();
    for (tname, src) in &bundle.templates {
        let err = |message: String| ManifestError::Template {
            name: tname.clone(),
            message,
        };
        let text = env.render_str(src, &ctx).map_err(|e| err(e.to_string()))?;
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v =
                Value::deserialize(doc).map_err(|e| err(format!("rendered invalid YAML: {e}")))?;
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// Multi-document YAML of rendered objects.
pub fn to_yaml_stream(objs: &[Value]) -> String {
    let mut s = String::new();
    for o in objs {
        s.push_str("---\n");
        s.push_str(&serde_norway::to_string(o).unwrap_or_default());
    }
    s
}

/// `Kind namespace/name` of an object.
pub fn object_key(o: &Value) -> String {
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("?");
    let m = o.get("metadata");
    let name = m
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    match m.and_then(|m| m.get("namespace")).and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Semantic differences between two sets of objects (matched by kind, namespace and name).
pub fn diff(a: &[Value], b: &[Value]) -> Vec<String> {
    let index = |objs: &[Value]| -> BTreeMap<String, Value> {
        objs.iter().map(|o| (object_key(o), o.clone())).collect()
    };
    let (ia, ib) = (index(a), index(b));
    let mut out = Vec::new();
    for (k, va) in &ia {
        match ib.get(k) {
            None => out.push(format!("- {k}: only in the first")),
            Some(vb) if vb != va => {
                let mut paths = Vec::new();
                diff_values("", va, vb, &mut paths);
                for p in paths {
                    out.push(format!("~ {k}: {p}"));
                }
            }
            _ => {}
        }
    }
    for k in ib.keys().filter(|k| !ia.contains_key(*k)) {
        out.push(format!("+ {k}: only in the second"));
    }
    out
}

fn named(items: &[Value]) -> bool {
    !items.is_empty()
        && items
            .iter()
            .all(|i| i.get("name").and_then(Value::as_str).is_some())
}

fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = format!("{path}.{k}");
                match y.get(k) {
                    Some(vb) => diff_values(&p, va, vb, out),
                    None => out.push(format!("{p}: {va} -> <missing>")),
                }
            }
            for (k, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                out.push(format!("{path}.{k}: <missing> -> {vb}"));
            }
        }
        (Value::Array(x), Value::Array(y)) if named(x) && named(y) => {
            let name = |v: &Value| {
                v.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            for va in x {
                let p = format!("{path}[name={}]", name(va));
                match y.iter().find(|vb| name(vb) == name(va)) {
                    Some(vb) => diff_values(&p, va, vb, out),
                    None => out.push(format!("{p}: only in the first")),
                }
            }
            for vb in y
                .iter()
                .filter(|vb| !x.iter().any(|va| name(va) == name(vb)))
            {
                out.push(format!("{path}[name={}]: only in the second", name(vb)));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff_values(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!(
            "{}: {a} -> {b}",
            if path.is_empty() { "." } else { path }
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(objs: &[Value]) -> Vec<String> {
        objs.iter().map(object_key).collect()
    }

    #[test]
    fn default_profile_renders_every_object() {
        let objs = render(&Bundle::builtin(), "default", None, &[]).unwrap();
        let k = kinds(&objs);
        for want in [
            "Namespace istio-system",
            "ServiceAccount istio-system/meshd",
            "ClusterRole meshd-istio-system",
            "Deployment istio-system/meshd",
            "Service istio-system/meshd",
            "PodDisruptionBudget istio-system/meshd",
            "MutatingWebhookConfiguration meshd-sidecar-injector",
            "ValidatingWebhookConfiguration meshd-validator",
            "ConfigMap istio-system/istio",
            "ConfigMap istio-system/istio-sidecar-injector",
            "CustomResourceDefinition virtualservices.networking.istio.io",
            "CustomResourceDefinition authorizationpolicies.security.istio.io",
        ] {
            assert!(k.iter().any(|x| x == want), "missing {want} in {k:?}");
        }
        let mwc = objs
            .iter()
            .find(|o| o["kind"] == "MutatingWebhookConfiguration")
            .unwrap();
        let names: Vec<_> = mwc["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "rev.namespace.sidecar-injector.istio.io",
                "rev.object.sidecar-injector.istio.io",
                "namespace.sidecar-injector.istio.io",
                "object.sidecar-injector.istio.io"
            ]
        );
        let vwc = objs
            .iter()
            .find(|o| o["kind"] == "ValidatingWebhookConfiguration")
            .unwrap();
        assert_eq!(vwc["webhooks"][0]["sideEffects"], "None");
        assert_eq!(vwc["webhooks"][0]["failurePolicy"], "Ignore");
        // The injector ConfigMap carries values the injector can load.
        let cm = objs
            .iter()
            .find(|o| object_key(o) == "ConfigMap istio-system/istio-sidecar-injector")
            .unwrap();
        let values =
            crate::config::Values::from_yaml(cm["data"]["values"].as_str().unwrap()).unwrap();
        assert_eq!(values.string("global.proxy.autoInject"), "enabled");
        crate::config::MeshConfig::from_yaml(
            objs.iter()
                .find(|o| object_key(o) == "ConfigMap istio-system/istio")
                .unwrap()["data"]["mesh"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn minimal_has_no_discovery_and_revision_renames() {
        let objs = render(&Bundle::builtin(), "minimal", Some("canary"), &[]).unwrap();
        let dep = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
        assert_eq!(dep["metadata"]["name"], "meshd-canary");
        assert_eq!(
            dep["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(!kinds(&objs)
            .iter()
            .any(|k| k.starts_with("PodDisruptionBudget")));
        let mwc = objs
            .iter()
            .find(|o| o["kind"] == "MutatingWebhookConfiguration")
            .unwrap();
        assert_eq!(
            mwc["webhooks"].as_array().unwrap().len(),
            2,
            "a revision renders only the rev.* entries"
        );
    }

    #[test]
    fn sets_and_diffs() {
        let b = Bundle::builtin();
        let a = render(&b, "default", None, &[]).unwrap();
        let c = render(
            &b,
            "default",
            None,
            &["replicas=3".into(), "image.tag=9.9".into()],
        )
        .unwrap();
        let d = diff(&a, &c);
        assert!(
            d.iter()
                .any(|l| l.contains("Deployment istio-system/meshd: .spec.replicas: 2 -> 3")),
            "{d:?}"
        );
        assert!(diff(&a, &a).is_empty());
        assert!(apply_set(&mut json!({}), "novalue").is_err());
        assert!(render(&b, "nope", None, &[])
            .unwrap_err()
            .to_string()
            .contains("have default, demo, minimal"));
    }
}
