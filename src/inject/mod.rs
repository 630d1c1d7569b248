//! Sidecar injection: the decision, template rendering, the merge into the pod, Istio's
//! post-processing (overrides, cluster env, prometheus merge, probe rewrite, metadata, ordering)
//! and the JSON patch. Pure: values in, values out.

pub mod annotations;
pub mod fastyaml;
pub mod kube_inject;
pub mod merge;
pub mod meta;
pub mod policy;
pub mod probes;
pub mod prometheus;
pub mod quantity;
pub mod selector;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::config::mesh::{effective_proxy_config, normalize_proxy_config, proxy_config_env};
use crate::config::{ConfigError, InjectorConfig, MeshConfig, Values};
use annotations as ann;
pub use meta::DeployMeta;
pub use policy::{Decision, SkipReason};
use template::{TemplateError, Templates};

pub const PROXY_CONTAINER: &str = "istio-proxy";
pub const INIT_CONTAINER: &str = "istio-init";
pub const VALIDATION_CONTAINER: &str = "istio-validation";
const CORE_DUMP_CONTAINER: &str = "enable-core-dump";
const INJECTED_NAMES: &[&str] = &[PROXY_CONTAINER, INIT_CONTAINER, VALIDATION_CONTAINER];
const PROMETHEUS_ENV: &str = "ISTIO_PROMETHEUS_ANNOTATIONS";
const NETWORK_LABEL: &str = "topology.istio.io/network";
const CNCF_NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// Multus networks with `default/istio-cni` added (flat list or JSON form), unless present.
fn multus_networks(existing: Option<&String>) -> String {
    let Some(current) = existing.map(|s| s.trim()).filter(|s| !s.is_empty()) else {
        return "default/istio-cni".into();
    };
    if current.starts_with('[') {
        // Appended as text, keeping the user's formatting (as Istio does).
        if let Ok(Value::Array(list)) = serde_json::from_str::<Value>(current) {
            let has = list
                .iter()
                .any(|n| n.get("name").and_then(Value::as_str) == Some("istio-cni"));
            if let (false, Some(head)) = (has, current.strip_suffix(']')) {
                let sep = if list.is_empty() { "" } else { ", " };
                return format!(
                    "{}{sep}{{\"name\": \"istio-cni\", \"namespace\": \"default\"}}]",
                    head.trim_end()
                );
            }
        }
        return current.to_string();
    }
    if current
        .split(',')
        .any(|n| matches!(n.trim(), "istio-cni" | "default/istio-cni"))
    {
        return current.to_string();
    }
    format!("{current}, default/istio-cni")
}
const DEFAULT_PROXY_UID: i64 = 1337;

/// Everything that can make an injection fail. Each message names the field or annotation.
#[derive(Debug, Error)]
pub enum InjectError {
    #[error("object is not a Pod: {0}")]
    NotAPod(String),
    #[error("injection failed due to invalid annotations: {}", .0.join("; "))]
    InvalidAnnotations(Vec<String>),
    #[error("annotation {key}: {message}")]
    Annotation { key: &'static str, message: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("template {template:?} output: {message}")]
    TemplateOutput { template: String, message: String },
    #[error("{0}")]
    Prometheus(String),
}

/// Native-sidecar layout selection before the per-pod annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NativeSidecars {
    #[default]
    Disabled,
    Enabled,
}

/// Who is asking: the webhook applies selectors and policy; `kube-inject` ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Webhook,
    KubeInject,
}

/// One injection request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The pod (JSON as the API server sends it).
    pub pod: Value,
    /// `request.namespace` of the review (used when the pod has none).
    pub namespace: Option<String>,
    /// The owning workload when known (kube-inject); otherwise derived from owner references.
    pub deploy_meta: Option<DeployMeta>,
    /// Env overrides from the webhook path (`/inject/cluster/c1/net/n1`).
    pub proxy_envs: BTreeMap<String, String>,
    pub caller: Caller,
}

impl Request {
    pub fn webhook(pod: Value, namespace: Option<String>) -> Self {
        Request {
            pod,
            namespace,
            deploy_meta: None,
            proxy_envs: BTreeMap::new(),
            caller: Caller::Webhook,
        }
    }
}

/// What happened to the pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not injected (the reason is for logs and warnings).
    Skipped(SkipReason),
    /// The injected pod.
    Injected(Value),
}

/// The injector: configuration plus compiled templates. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Injector {
    pub values: Values,
    pub mesh: MeshConfig,
    pub config: InjectorConfig,
    pub native: NativeSidecars,
    templates: Templates,
    values_ctx: minijinja::Value,
    mesh_ctx: minijinja::Value,
    cache: std::sync::Mutex<std::collections::HashMap<Vec<u8>, std::sync::Arc<Value>>>,
}

/// Rendered template outputs kept per injector (cleared when full).
const RENDER_CACHE_ENTRIES: usize = 512;

/// How to build an [`Injector`].
#[derive(Debug, Default, Clone)]
pub struct InjectorSettings {
    pub values_yaml: Option<String>,
    pub mesh_yaml: Option<String>,
    pub injection_config_yaml: Option<String>,
    pub templates_dir: Option<std::path::PathBuf>,
    pub native: NativeSidecars,
    /// Overrides `values.revision` (`default` means the default revision).
    pub revision: Option<String>,
}

/// Building an injector failed.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

fn labels_of(meta: &Value, key: &str) -> BTreeMap<String, String> {
    meta.get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn name_of(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

fn list_mut<'a>(spec: &'a mut Value, key: &str) -> Option<&'a mut Vec<Value>> {
    spec.get_mut(key).and_then(Value::as_array_mut)
}

/// The object at `key` of `v` (created when missing or not an object).
fn ensure_object<'a>(
    v: &'a mut Value,
    key: &str,
) -> Result<&'a mut Map<String, Value>, InjectError> {
    let parent = v
        .as_object_mut()
        .ok_or_else(|| InjectError::NotAPod("expected a JSON object".into()))?;
    let slot = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| InjectError::NotAPod(format!("{key} must be an object")))
}

/// Canonicalises resource quantities of every container, as a typed round trip would.
pub fn canonicalize_pod_quantities(spec: &mut Value) {
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(cs) = list_mut(spec, list) {
            for c in cs {
                if let Some(r) = c.get_mut("resources") {
                    quantity::canonicalize_resources(r);
                }
            }
        }
    }
}

impl Injector {
    /// Builds an injector from Istio-format inputs.
    pub fn new(s: &InjectorSettings) -> Result<Self, SetupError> {
        let mut values = match &s.values_yaml {
            Some(y) => Values::from_yaml(y)?,
            None => Values::default(),
        };
        if let Some(rev) = &s.revision {
            let rev = if rev == "default" { "" } else { rev.as_str() };
            if let Some(o) = values.0.as_object_mut() {
                o.insert("revision".into(), Value::String(rev.to_string()));
            }
        }
        let mesh = match &s.mesh_yaml {
            Some(y) => MeshConfig::from_yaml(y)?,
            None => MeshConfig::default(),
        };
        let config = match &s.injection_config_yaml {
            Some(y) => InjectorConfig::from_yaml(y, &values)?,
            None => InjectorConfig::from_values(&values)?,
        };
        let templates = Templates::load(s.templates_dir.as_deref(), &config.templates)?;
        Ok(Injector {
            values_ctx: minijinja::Value::from_serialize(&values.0),
            mesh_ctx: minijinja::Value::from_serialize(&mesh.0),
            values,
            mesh,
            config,
            native: s.native,
            templates,
            cache: Default::default(),
        })
    }

    /// Convenience for tests and defaults.
    pub fn with_defaults() -> Result<Self, SetupError> {
        Self::new(&InjectorSettings::default())
    }

    /// Names of the available templates.
    pub fn template_names(&self) -> &[String] {
        self.templates.names()
    }

    /// Injects one pod (webhook or kube-inject flow).
    pub fn inject(&self, req: Request) -> Result<Outcome, InjectError> {
        let mut pod = req.pod;
        if !pod.is_object() {
            return Err(InjectError::NotAPod("expected a JSON object".into()));
        }
        if pod.get("spec").is_some_and(|s| !s.is_object())
            || pod.get("metadata").is_some_and(|s| !s.is_object())
        {
            return Err(InjectError::NotAPod(
                "metadata and spec must be objects".into(),
            ));
        }
        let meta = ensure_object(&mut pod, "metadata")?;
        meta.remove("managedFields");
        let has_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if !has_ns {
            if let Some(ns) = req.namespace.as_ref().filter(|n| !n.is_empty()) {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
        }
        ensure_object(&mut pod, "spec")?;
        let namespace = pod["metadata"]
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let labels = labels_of(&pod["metadata"], "labels");
        let annotations = labels_of(&pod["metadata"], "annotations");
        let host_network = pod["spec"]
            .get("hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false);

        let decision_cfg;
        let cfg = match req.caller {
            Caller::Webhook => &self.config,
            Caller::KubeInject => {
                decision_cfg = InjectorConfig {
                    policy: crate::config::Policy::Enabled,
                    ..InjectorConfig::default()
                };
                &decision_cfg
            }
        };
        let facts = policy::PodFacts {
            namespace: &namespace,
            host_network,
            labels: &labels,
            annotations: &annotations,
        };
        if let Decision::Skip(reason) = policy::inject_required(cfg, facts) {
            return Ok(Outcome::Skipped(reason));
        }
        let problems = ann::validate(&annotations);
        if !problems.is_empty() {
            return Err(InjectError::InvalidAnnotations(problems));
        }
        let deploy_meta = req
            .deploy_meta
            .clone()
            .unwrap_or_else(|| meta::from_pod(&pod));
        canonicalize_pod_quantities(&mut pod["spec"]);
        self.inject_pod(pod, annotations, labels, &deploy_meta, &req.proxy_envs)
            .map(Outcome::Injected)
    }

    fn status_port(&self, annotations: &BTreeMap<String, String>, pc: &Value) -> i64 {
        if let Some(p) = annotations
            .get(ann::STATUS_PORT)
            .and_then(|p| p.trim().parse::<i64>().ok())
        {
            return p;
        }
        self.values
            .get("global.proxy.statusPort")
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .or_else(|| pc.get("statusPort").and_then(Value::as_i64))
            .unwrap_or(15020)
    }

    fn image(&self, which: &str, annotations: &BTreeMap<String, String>) -> String {
        if let Some(img) = annotations
            .get(ann::PROXY_IMAGE)
            .filter(|i| i.contains('/'))
        {
            return img.clone();
        }
        let name = self.values.string(&format!("global.{which}.image"));
        let name = if name.is_empty() {
            "proxyv2".to_string()
        } else {
            name
        };
        if name.contains('/') {
            return name;
        }
        let mut tag = self.values.string("global.tag");
        let image_type = annotations
            .get(ann::PROXY_IMAGE_TYPE)
            .cloned()
            .unwrap_or_else(|| self.values.string("global.variant"));
        if !image_type.is_empty() {
            for suffix in ["-distroless", "-debug"] {
                if let Some(t) = tag.strip_suffix(suffix) {
                    tag = t.to_string();
                }
            }
            if image_type != "default" {
                tag = format!("{tag}-{image_type}");
            }
        }
        format!("{}/{}:{}", self.values.string("global.hub"), name, tag)
    }

    fn proxy_resources(&self, annotations: &BTreeMap<String, String>) -> Option<Value> {
        let keys = [
            (ann::PROXY_CPU, "requests", "cpu"),
            (ann::PROXY_MEMORY, "requests", "memory"),
            (ann::PROXY_CPU_LIMIT, "limits", "cpu"),
            (ann::PROXY_MEMORY_LIMIT, "limits", "memory"),
        ];
        let mut res = if keys.iter().any(|(k, _, _)| annotations.contains_key(*k)) {
            let mut r = Map::new();
            for (key, section, resource) in keys {
                if let Some(v) = annotations.get(key) {
                    let sec = r.entry(section).or_insert_with(|| json!({}));
                    if let Some(m) = sec.as_object_mut() {
                        m.insert(resource.into(), json!(v));
                    }
                }
            }
            Value::Object(r)
        } else {
            let mut r = self
                .values
                .get("global.proxy.resources")
                .cloned()
                .unwrap_or(Value::Null);
            if let Some(m) = r.as_object_mut() {
                m.retain(|_, v| !v.is_null());
                for sec in m.values_mut() {
                    if let Some(s) = sec.as_object_mut() {
                        s.retain(|_, v| !v.is_null());
                    }
                }
                m.retain(|_, v| v.as_object().is_none_or(|o| !o.is_empty()));
            }
            r
        };
        quantity::canonicalize_resources(&mut res);
        let empty = res.as_object().is_none_or(|m| m.is_empty());
        (!empty).then_some(res)
    }

    fn inject_pod(
        &self,
        mut pod: Value,
        mut annotations: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        deploy_meta: &DeployMeta,
        proxy_envs: &BTreeMap<String, String>,
    ) -> Result<Value, InjectError> {
        // Effective ProxyConfig (mesh defaultConfig < pod annotation).
        let pc_annotation = match annotations.get(ann::PROXY_CONFIG) {
            Some(text) => {
                let doc = crate::config::parse_yaml(ann::PROXY_CONFIG, text).map_err(|e| {
                    InjectError::Annotation {
                        key: ann::PROXY_CONFIG,
                        message: e.to_string(),
                    }
                })?;
                Some(
                    normalize_proxy_config(ann::PROXY_CONFIG, &doc).map_err(|e| {
                        InjectError::Annotation {
                            key: ann::PROXY_CONFIG,
                            message: e.to_string(),
                        }
                    })?,
                )
            }
            None => None,
        };
        let pc = effective_proxy_config(&self.mesh, pc_annotation.as_ref());
        let status_port = self.status_port(&annotations, &pc);
        let mesh_status_port = pc
            .get("statusPort")
            .and_then(Value::as_i64)
            .unwrap_or(15020);
        let agent_status_port = annotations
            .get(ann::STATUS_PORT)
            .and_then(|p| p.trim().parse::<i64>().ok())
            .or_else(|| pc.get("statusPort").and_then(Value::as_i64))
            .unwrap_or(15020);

        // Re-injection: strip what an earlier injection added, keeping what it recorded.
        let mut previous_probers: BTreeMap<String, Value> = BTreeMap::new();
        let overrides_json = annotations.get(ann::OVERRIDES).cloned();
        let already_injected = annotations.contains_key(ann::STATUS);
        // The pod as it came, before an earlier injection is stripped: user containers named
        // like template containers are looked up here.
        let original_lists: [Vec<Value>; 2] = ["initContainers", "containers"].map(|l| {
            pod["spec"]
                .get(l)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        });
        let mut previous_status: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        if let Some(status) = annotations.get(ann::STATUS).cloned() {
            let status: Value = serde_json::from_str(&status).unwrap_or(Value::Null);
            let names = |k: &str| -> Vec<String> {
                status
                    .get(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (inits, conts, vols, secrets) = (
                names("initContainers"),
                names("containers"),
                names("volumes"),
                names("imagePullSecrets"),
            );
            previous_status = [inits.clone(), conts.clone()];
            let spec = &mut pod["spec"];
            let mut restored_prometheus: Vec<(String, String)> = Vec::new();
            for list in ["initContainers", "containers"] {
                if let Some(cs) = list_mut(spec, list) {
                    if let Some(old) = cs.iter().find(|c| name_of(c) == Some(PROXY_CONTAINER)) {
                        for e in old
                            .get("env")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            let value = e.get("value").and_then(Value::as_str);
                            match name_of(e) {
                                Some(probes::APP_PROBERS_ENV) => {
                                    if let Some(Ok(Value::Object(m))) =
                                        value.map(serde_json::from_str::<Value>)
                                    {
                                        previous_probers.extend(m);
                                    }
                                }
                                Some(PROMETHEUS_ENV) => {
                                    if let Some(Ok(Value::Object(m))) =
                                        value.map(serde_json::from_str::<Value>)
                                    {
                                        for (k, v) in m {
                                            if let Some(r) = prometheus::restore_annotation(&k, &v)
                                            {
                                                restored_prometheus.push(r);
                                            }
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    cs.retain(|c| {
                        let n = name_of(c).unwrap_or("");
                        !(inits.iter().any(|i| i == n) || conts.iter().any(|i| i == n))
                    });
                }
            }
            if let Some(vs) = list_mut(spec, "volumes") {
                vs.retain(|v| !vols.iter().any(|n| Some(n.as_str()) == name_of(v)));
            }
            if let Some(ps) = list_mut(spec, "imagePullSecrets") {
                ps.retain(|v| !secrets.iter().any(|n| Some(n.as_str()) == name_of(v)));
            }
            // Prometheus: drop what the earlier merge wrote, then restore the app's originals.
            if annotations
                .get(prometheus::PORT)
                .and_then(|p| p.parse::<i64>().ok())
                == Some(mesh_status_port)
            {
                for k in [prometheus::SCRAPE, prometheus::PORT, prometheus::PATH] {
                    annotations.remove(k);
                }
            }
            annotations.extend(restored_prometheus);
            annotations.remove(ann::STATUS);
        }

        // Overrides recorded by an earlier injection: (list index, container).
        let mut recorded_overrides: Vec<(usize, Value)> = Vec::new();
        if let Some(text) = &overrides_json {
            let parsed: Value =
                serde_json::from_str(text).map_err(|e| InjectError::Annotation {
                    key: ann::OVERRIDES,
                    message: format!("invalid JSON: {e}"),
                })?;
            for (idx, list) in ["initContainers", "containers"].iter().enumerate() {
                for c in parsed
                    .get(*list)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    recorded_overrides.push((idx, c.clone()));
                }
            }
        }
        // Recorded overrides go back into the pod (where the earlier injection removed them),
        // so a re-injection merges exactly like the first injection did.
        for (idx, c) in &recorded_overrides {
            let Some(n) = name_of(c) else { continue };
            let present = ["initContainers", "containers"].iter().any(|l| {
                pod["spec"]
                    .get(*l)
                    .and_then(Value::as_array)
                    .is_some_and(|cs| cs.iter().any(|x| name_of(x) == Some(n)))
            });
            if !present {
                let list = if *idx == 0 {
                    "initContainers"
                } else {
                    "containers"
                };
                if let Some(spec) = pod["spec"].as_object_mut() {
                    let l = spec.entry(list).or_insert_with(|| json!([]));
                    if let Some(a) = l.as_array_mut() {
                        a.push(c.clone());
                    }
                }
            }
        }
        // Templates see the pod without user definitions of injected containers.
        let mut template_pod = pod.clone();
        for list in ["initContainers", "containers"] {
            if let Some(cs) = list_mut(&mut template_pod["spec"], list) {
                cs.retain(|c| !name_of(c).is_some_and(|n| INJECTED_NAMES.contains(&n)));
            }
        }
        // Native or classic layout.
        let native = match annotations.get(ann::NATIVE_SIDECAR).map(String::as_str) {
            Some("true") => true,
            Some("false") => false,
            _ => self.native == NativeSidecars::Enabled,
        };
        let interception_mode = annotations
            .get(ann::INTERCEPTION_MODE)
            .cloned()
            .or_else(|| {
                pc.get("interceptionMode")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "REDIRECT".into());
        let hold = pc
            .get("holdApplicationUntilProxyStarts")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || self
                .values
                .truthy("global.proxy.holdApplicationUntilProxyStarts");

        let ctx = self.template_context(TemplateInputs {
            pod: &template_pod,
            annotations: &annotations,
            labels: &labels,
            deploy_meta,
            pc: &pc,
            status_port,
            interception_mode: &interception_mode,
            native,
            hold,
        })?;

        // Render every requested template and merge each onto the pod.
        let names: Vec<String> = match annotations.get(ann::TEMPLATES) {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            None => self.config.default_templates.clone(),
        };
        let mut expanded = Vec::new();
        for n in names {
            match self.config.aliases.get(&n) {
                Some(targets) => expanded.extend(targets.iter().cloned()),
                None => expanded.push(n),
            }
        }
        let mut status_lists: [(&str, Vec<String>); 4] = [
            ("initContainers", vec![]),
            ("containers", vec![]),
            ("volumes", vec![]),
            ("imagePullSecrets", vec![]),
        ];
        let mut rendered_all = Vec::with_capacity(expanded.len());
        for name in &expanded {
            let rendered = self.render_cached(name, &ctx)?;
            if let Some(spec) = rendered.get("spec") {
                for (key, names) in status_lists.iter_mut() {
                    for item in spec
                        .get(*key)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(n) = name_of(item) {
                            if !names.iter().any(|x| x == n) {
                                names.push(n.to_string());
                            }
                        }
                    }
                }
            }
            rendered_all.push(rendered);
        }
        // A user container the templates render in the other list (istio-proxy under native
        // sidecars) moves to the template's list before merging.
        for (from, to, names) in [
            ("containers", "initContainers", &status_lists[0].1),
            ("initContainers", "containers", &status_lists[1].1),
        ] {
            for name in names {
                let moved = list_mut(&mut pod["spec"], from).and_then(|cs| {
                    let i = cs.iter().position(|c| name_of(c) == Some(name.as_str()))?;
                    Some(cs.remove(i))
                });
                if let (Some(c), Some(spec)) = (moved, pod["spec"].as_object_mut()) {
                    let l = spec.entry(to).or_insert_with(|| json!([]));
                    if let Some(a) = l.as_array_mut() {
                        a.push(c);
                    }
                }
            }
        }
        for rendered in &rendered_all {
            merge::strategic_merge(&mut pod, rendered);
        }

        // Containers the templates render that the user also defined are overrides, merged
        // back on top (as in Istio): first a recorded override, then, unless the earlier
        // injection rendered that container itself, the pod's own definition.
        let mut overrides: Vec<(String, Value)> = Vec::new();
        for (idx, names) in [&status_lists[0].1, &status_lists[1].1]
            .into_iter()
            .enumerate()
        {
            for name in names {
                let named = |c: &&Value| name_of(c) == Some(name.as_str());
                let found = recorded_overrides
                    .iter()
                    .filter(|(i, _)| *i == idx)
                    .map(|(_, c)| c)
                    .find(named)
                    .or_else(|| recorded_overrides.iter().map(|(_, c)| c).find(named))
                    .cloned()
                    .or_else(|| {
                        if previous_status[idx].iter().any(|n| n == name) {
                            return None;
                        }
                        // Init containers may come from either list (the layout can change).
                        let lists: &[usize] = if idx == 0 { &[0, 1] } else { &[1] };
                        lists
                            .iter()
                            .find_map(|l| original_lists[*l].iter().find(named))
                            .cloned()
                    });
                if let Some(mut c) = found {
                    if let Some(o) = c.as_object_mut() {
                        if o.get("image").and_then(Value::as_str) == Some("auto") {
                            o.remove("image");
                        }
                    }
                    if let Some(r) = c.get_mut("resources") {
                        quantity::canonicalize_resources(r);
                    }
                    overrides.push((name.clone(), c));
                }
            }
        }
        // Re-apply user overrides on top of the rendered containers.
        let mut recorded = Map::new();
        for (name, ov) in &overrides {
            // Recorded in the list the template put the container in.
            let list = if status_lists[0].1.iter().any(|n| n == name) {
                "initContainers"
            } else {
                "containers"
            };
            for l in ["initContainers", "containers"] {
                if let Some(c) = list_mut(&mut pod["spec"], l)
                    .and_then(|cs| cs.iter_mut().find(|c| name_of(c) == Some(name)))
                {
                    merge::strategic_merge(c, ov);
                }
            }
            if !already_injected {
                let entry = recorded.entry(list).or_insert_with(|| json!([]));
                if let Some(a) = entry.as_array_mut() {
                    a.push(ov.clone());
                }
            }
        }
        self.apply_override_uid(&mut pod["spec"], &overrides, &interception_mode);

        // Post-processing.
        let mut cluster_envs = proxy_envs.clone();
        let values_network = self.values.string("global.network");
        if !values_network.is_empty() {
            cluster_envs
                .entry("ISTIO_META_NETWORK".into())
                .or_insert(values_network);
        }
        if let Some(net) = labels.get(NETWORK_LABEL).filter(|n| !n.is_empty()) {
            cluster_envs.insert("ISTIO_META_NETWORK".into(), net.clone());
        }
        if !cluster_envs.is_empty() {
            update_cluster_env(&mut pod["spec"], &cluster_envs);
        }
        let prom = prometheus::merge(&self.mesh, &annotations, mesh_status_port)
            .map_err(InjectError::Prometheus)?;
        if let Some(env) = &prom.env {
            push_proxy_env(&mut pod["spec"], PROMETHEUS_ENV, env);
        }
        // Templates may set the rewrite annotation themselves, so read the merged pod.
        let merged_annotations = labels_of(&pod["metadata"], "annotations");
        let rewrite = merged_annotations
            .get(ann::REWRITE_PROBES)
            .and_then(|v| ann::parse_bool(v))
            .unwrap_or_else(|| {
                self.values
                    .get("sidecarInjectorWebhook.rewriteAppHTTPProbe")
                    .and_then(Value::as_bool)
                    .unwrap_or(true)
            });
        if rewrite {
            let mut probers = previous_probers;
            probers.extend(probes::dump_app_probers(&pod["spec"], agent_status_port));
            if !probers.is_empty() {
                probes::rewrite_probes(&mut pod["spec"], &probers, agent_status_port);
                let json = Value::Object(probers.into_iter().collect()).to_string();
                push_proxy_env(&mut pod["spec"], probes::APP_PROBERS_ENV, &json);
            }
        }

        // Metadata: network label, prometheus annotations, status, overrides, injectedAnnotations.
        let revision = self.values.revision();
        let status = {
            let mut m = Map::new();
            for (key, names) in &status_lists {
                m.insert(
                    (*key).to_string(),
                    if names.is_empty() {
                        Value::Null
                    } else {
                        json!(names)
                    },
                );
            }
            m.insert("revision".into(), json!(revision));
            Value::Object(m).to_string()
        };
        {
            let meta = ensure_object(&mut pod, "metadata")?;
            if let Some(net) = cluster_envs.get("ISTIO_META_NETWORK") {
                let l = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = l.as_object_mut() {
                    l.insert(NETWORK_LABEL.into(), json!(net));
                }
            }
            let a = meta.entry("annotations").or_insert_with(|| json!({}));
            if !a.is_object() {
                *a = json!({});
            }
            if let Some(a) = a.as_object_mut() {
                // The app's own scrape settings (restored on re-injection), then the merge.
                for k in [
                    prometheus::SCRAPE,
                    prometheus::PORT,
                    prometheus::PATH,
                    prometheus::SCRAPE_TARGETS,
                ] {
                    match annotations.get(k) {
                        Some(v) if !(prom.merged && k == prometheus::SCRAPE_TARGETS) => {
                            a.insert(k.to_string(), json!(v))
                        }
                        _ => a.remove(k),
                    };
                }
                for (k, v) in &prom.annotations {
                    a.insert((*k).to_string(), json!(v));
                }
                a.insert(ann::STATUS.into(), json!(status));
                if !already_injected && overrides_json.is_none() && !recorded.is_empty() {
                    a.insert(
                        ann::OVERRIDES.into(),
                        json!(Value::Object(recorded).to_string()),
                    );
                }
                for (k, v) in &self.config.injected_annotations {
                    a.insert(k.clone(), json!(v));
                }
            }
        }
        reorder(&mut pod["spec"], native, hold);
        Ok(pod)
    }

    fn apply_override_uid(&self, spec: &mut Value, overrides: &[(String, Value)], mode: &str) {
        let Some((_, proxy)) = overrides.iter().find(|(n, _)| n == PROXY_CONTAINER) else {
            return;
        };
        let uid = proxy
            .get("securityContext")
            .and_then(|s| s.get("runAsUser"))
            .and_then(Value::as_i64);
        let user_init_args = overrides
            .iter()
            .any(|(n, o)| n == INIT_CONTAINER && o.get("args").is_some());
        let gid = proxy
            .get("securityContext")
            .and_then(|s| s.get("runAsGroup"))
            .and_then(Value::as_i64);
        for l in ["initContainers", "containers"] {
            for c in list_mut(spec, l).into_iter().flatten() {
                let is_init = name_of(c) == Some(INIT_CONTAINER);
                let is_validation = name_of(c) == Some(VALIDATION_CONTAINER);
                if !(is_init || is_validation) {
                    continue;
                }
                if let Some(uid) = uid.filter(|u| *u != 0 && !(is_init && user_init_args)) {
                    if let Some(args) = c.get_mut("args").and_then(Value::as_array_mut) {
                        if let Some(i) = args.iter().position(|a| a == "-u") {
                            if let Some(slot) = args.get_mut(i + 1) {
                                *slot = json!(uid.to_string());
                            }
                        }
                    }
                }
                if is_validation {
                    if let Some(sc) = c.get_mut("securityContext").and_then(Value::as_object_mut) {
                        if let Some(uid) = uid {
                            sc.insert("runAsUser".into(), json!(uid));
                        }
                        if let Some(gid) = gid {
                            sc.insert("runAsGroup".into(), json!(gid));
                        }
                    }
                }
            }
        }
        if mode == "TPROXY" {
            for l in ["initContainers", "containers"] {
                for c in list_mut(spec, l).into_iter().flatten() {
                    if name_of(c) == Some(PROXY_CONTAINER) {
                        if let Some(sc) =
                            c.get_mut("securityContext").and_then(Value::as_object_mut)
                        {
                            sc.insert("runAsUser".into(), json!(0));
                        }
                    }
                }
            }
        }
    }
}

struct TemplateInputs<'a> {
    pod: &'a Value,
    annotations: &'a BTreeMap<String, String>,
    labels: &'a BTreeMap<String, String>,
    deploy_meta: &'a DeployMeta,
    pc: &'a Value,
    status_port: i64,
    interception_mode: &'a str,
    native: bool,
    hold: bool,
}

fn canonical_name(labels: &BTreeMap<String, String>, dm: &DeployMeta) -> String {
    let raw = [
        "service.istio.io/canonical-name",
        "app.kubernetes.io/name",
        "app",
    ]
    .iter()
    .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
    .cloned()
    .unwrap_or_else(|| dm.name.clone());
    let truncated: String = raw.chars().take(63).collect();
    truncated
        .trim_matches(|c| matches!(c, '-' | '_' | '.'))
        .to_string()
}

fn canonical_revision(labels: &BTreeMap<String, String>) -> String {
    [
        "service.istio.io/canonical-revision",
        "app.kubernetes.io/version",
        "version",
    ]
    .iter()
    .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
    .cloned()
    .unwrap_or_else(|| "latest".into())
}

/// `ISTIO_META_POD_PORTS`: every container port of the app containers, in Istio's layout.
fn pod_ports_json(spec: &Value) -> String {
    let mut items = Vec::new();
    for c in spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut m = Map::new();
            for k in ["name", "hostPort", "containerPort", "protocol", "hostIP"] {
                if let Some(v) = p.get(k).filter(|v| !v.is_null() && *v != "" && *v != 0) {
                    m.insert(k.into(), v.clone());
                }
            }
            if !m.is_empty() {
                items.push(Value::Object(m).to_string());
            }
        }
    }
    if items.is_empty() {
        return "[\n]".into();
    }
    format!("[\n    {}\n]", items.join("\n    ,"))
}

fn user_map_list(annotations: &BTreeMap<String, String>, key: &str) -> Vec<Value> {
    let Some(Ok(Value::Object(m))) = annotations
        .get(key)
        .map(|t| serde_json::from_str::<Value>(t))
    else {
        return Vec::new();
    };
    let mut out: Vec<(String, Value)> = m.into_iter().collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter()
        .map(|(name, v)| {
            let mut o = Map::new();
            o.insert("name".into(), json!(name));
            if let Value::Object(rest) = v {
                for (k, v) in rest {
                    if k != "name" {
                        o.insert(k, v);
                    }
                }
            }
            Value::Object(o)
        })
        .collect()
}

impl Injector {
    /// Renders a template for a per-pod context, reusing the parsed output of an identical
    /// earlier context (replicas of one workload render the same sidecar). Keys are the exact
    /// context bytes, so a hit can never hand one pod another pod's output.
    fn render_cached(
        &self,
        name: &str,
        pod_ctx: &Value,
    ) -> Result<std::sync::Arc<Value>, InjectError> {
        let mut key = serde_json::to_vec(pod_ctx).unwrap_or_default();
        key.extend_from_slice(name.as_bytes());
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let ctx = minijinja::context! {
            values => self.values_ctx.clone(),
            mesh => self.mesh_ctx.clone(),
            ..minijinja::Value::from_serialize(pod_ctx)
        };
        let mut rendered = self.templates.render(name, &ctx)?;
        if !rendered.is_object() {
            return Err(InjectError::TemplateOutput {
                template: name.to_string(),
                message: "expected a mapping with metadata/spec".into(),
            });
        }
        // Only metadata and spec may be set; anything else is an error, not silently merged.
        if let Some(extra) = rendered
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "metadata" && *k != "spec"))
        {
            return Err(InjectError::TemplateOutput {
                template: name.to_string(),
                message: format!("unexpected top-level key {extra:?} (only metadata and spec)"),
            });
        }
        if let Some(spec) = rendered.get_mut("spec") {
            canonicalize_pod_quantities(spec);
        }
        let rendered = std::sync::Arc::new(rendered);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= RENDER_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, rendered.clone());
        }
        Ok(rendered)
    }

    fn template_context(&self, i: TemplateInputs<'_>) -> Result<Value, InjectError> {
        let spec = &i.pod["spec"];
        let app_names: Vec<&str> = spec
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(name_of)
            .filter(|n| *n != PROXY_CONTAINER)
            .collect();
        let trust_domain = {
            let t = self.mesh.string("trustDomain");
            if t.is_empty() {
                self.values.string("global.trustDomain")
            } else {
                t
            }
        };
        let workload_name = i
            .labels
            .get("service.istio.io/workload-name")
            .cloned()
            .unwrap_or_else(|| i.deploy_meta.name.clone());
        let mut cni_annotations = BTreeMap::new();
        if self.values.cni_enabled() {
            let a = |k: &str, d: String| i.annotations.get(k).cloned().unwrap_or(d);
            cni_annotations.insert(
                ann::INCLUDE_OUTBOUND_IP_RANGES,
                a(
                    ann::INCLUDE_OUTBOUND_IP_RANGES,
                    self.values.string("global.proxy.includeIPRanges"),
                ),
            );
            cni_annotations.insert(
                ann::EXCLUDE_OUTBOUND_IP_RANGES,
                a(
                    ann::EXCLUDE_OUTBOUND_IP_RANGES,
                    self.values.string("global.proxy.excludeIPRanges"),
                ),
            );
            cni_annotations.insert(
                ann::INCLUDE_INBOUND_PORTS,
                a(
                    ann::INCLUDE_INBOUND_PORTS,
                    self.values.string("global.proxy.includeInboundPorts"),
                ),
            );
            let excl = a(
                ann::EXCLUDE_INBOUND_PORTS,
                self.values.string("global.proxy.excludeInboundPorts"),
            );
            let sp = i.status_port.to_string();
            let excl = if sp == "0" || excl.split(',').any(|p| p.trim() == sp) {
                excl
            } else if excl.trim().is_empty() {
                sp
            } else {
                format!("{excl},{sp}")
            };
            cni_annotations.insert(ann::EXCLUDE_INBOUND_PORTS, excl);
            cni_annotations.insert(
                ann::INCLUDE_OUTBOUND_PORTS,
                a(
                    ann::INCLUDE_OUTBOUND_PORTS,
                    self.values.string("global.proxy.includeOutboundPorts"),
                ),
            );
            cni_annotations.insert(
                ann::EXCLUDE_OUTBOUND_PORTS,
                a(
                    ann::EXCLUDE_OUTBOUND_PORTS,
                    self.values.string("global.proxy.excludeOutboundPorts"),
                ),
            );
            for k in [
                ann::KUBEVIRT_INTERFACES,
                ann::REROUTE_VIRTUAL_INTERFACES,
                ann::EXCLUDE_INTERFACES,
            ] {
                if let Some(v) = i.annotations.get(k) {
                    cni_annotations.insert(k, v.clone());
                }
            }
            cni_annotations.retain(|_, v| !v.is_empty());
            if self.values.string("pilot.cni.provider") == "multus" {
                cni_annotations.insert(
                    CNCF_NETWORKS,
                    multus_networks(i.annotations.get(CNCF_NETWORKS)),
                );
            }
        }
        let proxy_resources = self.proxy_resources(i.annotations);
        let ctx = json!({
            "annotations": i.annotations,
            "labels": i.labels,
            "namespace": i.pod["metadata"].get("namespace").cloned().unwrap_or(json!("")),
            "spec": spec,
            "proxy_config": i.pc,
            "deployment_meta": i.deploy_meta,
            "revision": self.values.revision(),
            "native_sidecars": i.native,
            "hold_application": i.hold,
            "proxy_image": self.image("proxy", i.annotations),
            "proxy_init_image": self.image("proxy_init", i.annotations),
            "proxy_uid": DEFAULT_PROXY_UID,
            "proxy_gid": DEFAULT_PROXY_UID,
            "status_port": i.status_port,
            "interception_mode": i.interception_mode,
            "proxy_resources": proxy_resources,
            "annotation_resources": proxy_resources.clone().filter(|_| {
                [ann::PROXY_CPU, ann::PROXY_MEMORY, ann::PROXY_CPU_LIMIT, ann::PROXY_MEMORY_LIMIT]
                    .iter()
                    .any(|k| i.annotations.contains_key(*k))
            }),
            "proxy_config_json": proxy_config_env(i.pc),
            "pod_ports_json": pod_ports_json(spec),
            "app_containers": app_names.join(","),
            "default_container": app_names.first(),
            "canonical_name": canonical_name(i.labels, i.deploy_meta),
            "canonical_revision": canonical_revision(i.labels),
            "workload_name": workload_name,
            "owner": meta::owner_uri(i.deploy_meta),
            "trust_domain": trust_domain,
            "cni": self.values.cni_enabled(),
            "cni_annotations": cni_annotations,
            "user_volumes": user_map_list(i.annotations, ann::USER_VOLUME),
            "user_volume_mounts": user_map_list(i.annotations, ann::USER_VOLUME_MOUNT),
        });
        Ok(ctx)
    }
}

fn proxy_container(spec: &mut Value) -> Option<&mut Value> {
    for l in ["containers", "initContainers"] {
        if let Some(idx) = spec
            .get(l)
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().position(|c| name_of(c) == Some(PROXY_CONTAINER)))
        {
            return list_mut(spec, l).and_then(|cs| cs.get_mut(idx));
        }
    }
    None
}

/// Sets (or appends) an env var on `istio-proxy`.
fn push_proxy_env(spec: &mut Value, name: &str, value: &str) {
    let Some(c) = proxy_container(spec).and_then(Value::as_object_mut) else {
        return;
    };
    let env = c.entry("env").or_insert_with(|| json!([]));
    let Some(env) = env.as_array_mut() else {
        return;
    };
    match env.iter_mut().find(|e| name_of(e) == Some(name)) {
        Some(e) => *e = json!({"name": name, "value": value}),
        None => env.push(json!({"name": name, "value": value})),
    }
}

/// Cluster and network env (webhook path, values, network label): existing entries are
/// replaced in place, missing ones appended in name order.
fn update_cluster_env(spec: &mut Value, envs: &BTreeMap<String, String>) {
    let Some(c) = proxy_container(spec).and_then(Value::as_object_mut) else {
        return;
    };
    let env = c.entry("env").or_insert_with(|| json!([]));
    let Some(env) = env.as_array_mut() else {
        return;
    };
    for (k, v) in envs {
        match env.iter_mut().find(|e| name_of(e) == Some(k.as_str())) {
            Some(e) => *e = json!({"name": k, "value": v}),
            None => env.push(json!({"name": k, "value": v})),
        }
    }
}

/// Istio's ordering of injected containers (classic and native layouts).
fn reorder(spec: &mut Value, native: bool, hold: bool) {
    let rank_init = |c: &Value| -> u8 {
        match name_of(c) {
            Some(VALIDATION_CONTAINER) => 0,
            Some(INIT_CONTAINER) if native => 0,
            Some(PROXY_CONTAINER) => 1,
            Some(CORE_DUMP_CONTAINER) => 2,
            Some(INIT_CONTAINER) => 4,
            _ => 3,
        }
    };
    if let Some(inits) = list_mut(spec, "initContainers") {
        inits.sort_by_key(|c| rank_init(c));
    }
    if let Some(cs) = list_mut(spec, "containers") {
        if let Some(i) = cs.iter().position(|c| name_of(c) == Some(PROXY_CONTAINER)) {
            let proxy = cs.remove(i);
            if hold {
                cs.insert(0, proxy);
            } else {
                cs.push(proxy);
            }
        }
    }
}

/// Computes the RFC 6902 patch from the original pod to the injected one.
pub fn create_patch(original: &Value, injected: &Value) -> json_patch::Patch {
    json_patch::diff(original, injected)
}

/// Reads a file for the injector settings, naming the flag on error.
pub fn read_input(flag: &str, path: &Path) -> Result<String, std::io::Error> {
    std::fs::read_to_string(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{flag} {}: {e}", path.display())))
}

#[cfg(test)]
mod tests;
