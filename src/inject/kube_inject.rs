//! Offline injection of Kubernetes manifests (`meshd kube-inject`): multi-document YAML, `List`
//! items, every workload kind's pod template; other kinds pass through unchanged.

use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

use super::{Caller, DeployMeta, InjectError, Injector, Outcome, Request};

/// Why a manifest could not be injected.
#[derive(Debug, Error)]
pub enum KubeInjectError {
    #[error("document {index}: invalid YAML: {source}")]
    Yaml {
        index: usize,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{kind} {name}: {source}")]
    Inject {
        kind: String,
        name: String,
        source: InjectError,
    },
    #[error("{kind} {name}: {field} must be an object")]
    Shape {
        kind: String,
        name: String,
        field: String,
    },
    #[error("cannot write YAML: {0}")]
    Output(#[from] serde_norway::Error),
}

/// The injected manifests and the warnings for skipped workloads.
#[derive(Debug, Default)]
pub struct KubeInjectOutput {
    pub yaml: String,
    pub warnings: Vec<String>,
}

/// (path of the pod template, path of the object whose `metadata` injection uses).
type TemplatePaths = (&'static [&'static str], &'static [&'static str]);

/// Where a kind keeps its pod template, and whose `metadata` injection reads and writes.
/// For CronJob that is the job template's metadata, as `istioctl kube-inject` does it (Istio
/// quirk kept for output parity: the pod labels and annotations land on `jobTemplate.metadata`).
fn template_path(kind: &str) -> Option<TemplatePaths> {
    match kind {
        "Deployment"
        | "DaemonSet"
        | "ReplicaSet"
        | "StatefulSet"
        | "Job"
        | "ReplicationController"
        | "DeploymentConfig" => Some((&["spec", "template"], &["spec", "template"])),
        "CronJob" => Some((
            &["spec", "jobTemplate", "spec", "template"],
            &["spec", "jobTemplate"],
        )),
        _ => None,
    }
}

fn display_name(obj: &Value) -> String {
    let m = &obj["metadata"];
    let name = m.get("name").and_then(Value::as_str).unwrap_or("");
    match m.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

fn kind_of(obj: &Value) -> String {
    obj.get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Injects every workload of a multi-document YAML stream.
pub fn kube_inject(injector: &Injector, input: &str) -> Result<KubeInjectOutput, KubeInjectError> {
    let mut out = KubeInjectOutput::default();
    for (index, doc) in serde_norway::Deserializer::from_str(input).enumerate() {
        let value = Value::deserialize(doc).map_err(|source| KubeInjectError::Yaml {
            index: index + 1,
            source,
        })?;
        if value.is_null() {
            continue;
        }
        let injected = inject_object(injector, value, &mut out.warnings)?;
        out.yaml.push_str(&serde_norway::to_string(&injected)?);
        out.yaml.push_str("---\n");
    }
    Ok(out)
}

fn inject_object(
    injector: &Injector,
    mut obj: Value,
    warnings: &mut Vec<String>,
) -> Result<Value, KubeInjectError> {
    let kind = kind_of(&obj);
    if kind == "List" {
        if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
            for item in items.iter_mut() {
                let v = std::mem::take(item);
                *item = inject_object(injector, v, warnings)?;
            }
        }
        return Ok(obj);
    }
    let name = display_name(&obj);
    let shape = |field: &str| KubeInjectError::Shape {
        kind: kind.clone(),
        name: name.clone(),
        field: field.to_string(),
    };
    if obj.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(shape("metadata"));
    }
    let meta = &obj["metadata"];
    let mut deploy_meta = DeployMeta {
        name: meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        namespace: meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        kind: kind.clone(),
        api_version: obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    };
    let (pod, path): (Value, Option<TemplatePaths>) = if kind == "Pod" {
        // A pod names its workload through its controller reference, as in the webhook.
        deploy_meta = super::meta::from_pod(&obj);
        (obj.clone(), None)
    } else if let Some((path, meta_path)) = template_path(&kind) {
        let Some(template) = path.iter().try_fold(&obj, |cur, k| cur.get(*k)) else {
            return Ok(obj);
        };
        if !template.is_object() {
            return Err(shape(&path.join(".")));
        }
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod"});
        pod["metadata"] = meta_path
            .iter()
            .try_fold(&obj, |cur, k| cur.get(*k))
            .and_then(|m| m.get("metadata"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        pod["spec"] = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        if !pod["metadata"].is_object() {
            return Err(shape(&format!("{}.metadata", meta_path.join("."))));
        }
        (pod, Some((path, meta_path)))
    } else {
        return Ok(obj);
    };
    let template_had_ns = pod["metadata"].get("namespace").is_some();
    let req = Request {
        pod,
        namespace: Some(deploy_meta.namespace.clone()),
        deploy_meta: Some(deploy_meta),
        proxy_envs: Default::default(),
        caller: Caller::KubeInject,
    };
    let outcome = injector
        .inject(req)
        .map_err(|source| KubeInjectError::Inject {
            kind: kind.clone(),
            name: name.clone(),
            source,
        })?;
    let mut injected = match outcome {
        Outcome::Skipped(reason) => {
            warnings.push(format!(
                "===> Skipping injection because {kind} {name:?} {reason}"
            ));
            return Ok(obj);
        }
        Outcome::Injected(p) => p,
    };
    match path {
        None => Ok(injected),
        Some((path, meta_path)) => {
            if !template_had_ns {
                if let Some(m) = injected.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("namespace");
                }
            }
            let Some(template) = path.iter().try_fold(&mut obj, |cur, k| cur.get_mut(*k)) else {
                return Err(shape(&path.join(".")));
            };
            template["spec"] = injected["spec"].take();
            let Some(meta_parent) = meta_path
                .iter()
                .try_fold(&mut obj, |cur, k| cur.get_mut(*k))
            else {
                return Err(shape(&meta_path.join(".")));
            };
            meta_parent["metadata"] = injected["metadata"].take();
            if kind == "DeploymentConfig" {
                typed_deployment_config(&mut obj);
            }
            Ok(obj)
        }
    }
}

/// OpenShift `DeploymentConfig` written back the way Istio's typed client writes it, so output
/// matches `istioctl kube-inject`: zero `minReadySeconds` and false `paused` are omitted, `test`,
/// `replicas` and `strategy.resources` are always present.
fn typed_deployment_config(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("minReadySeconds").and_then(Value::as_i64) == Some(0) {
        spec.remove("minReadySeconds");
    }
    if spec.get("paused").and_then(Value::as_bool) == Some(false) {
        spec.remove("paused");
    }
    spec.entry("test").or_insert(Value::Bool(false));
    spec.entry("replicas").or_insert(json!(0));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(st) = strategy.as_object_mut() {
        st.entry("resources").or_insert_with(|| json!({}));
    }
}
