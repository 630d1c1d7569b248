//! The injector `config` (the `config` key of the istio-sidecar-injector ConfigMap): policy,
//! never/always selectors, injected annotations, default templates, aliases and custom templates.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{parse_yaml, ConfigError, Values};
use crate::inject::selector::LabelSelector;

/// The injection policy (`global.proxy.autoInject`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    Enabled,
    Disabled,
    /// Any other value: Istio logs an error and injects nothing.
    Other(String),
}

impl Policy {
    fn parse(s: &str) -> Self {
        match s {
            "enabled" | "" => Policy::Enabled,
            "disabled" => Policy::Disabled,
            other => Policy::Other(other.to_string()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    always_inject_selector: Vec<LabelSelector>,
    #[serde(default)]
    never_inject_selector: Vec<LabelSelector>,
    #[serde(default)]
    injected_annotations: BTreeMap<String, String>,
    #[serde(default)]
    default_templates: Vec<String>,
    #[serde(default)]
    templates: BTreeMap<String, String>,
    #[serde(default)]
    aliases: BTreeMap<String, Vec<String>>,
    /// Legacy single template: ignored like Istio does (it is a broken sentinel there).
    #[serde(default)]
    #[allow(dead_code)]
    template: Option<Value>,
}

/// The injector configuration, with Istio's defaults filled in.
#[derive(Debug, Clone)]
pub struct InjectorConfig {
    pub policy: Policy,
    pub always_inject_selector: Vec<LabelSelector>,
    pub never_inject_selector: Vec<LabelSelector>,
    pub injected_annotations: BTreeMap<String, String>,
    pub default_templates: Vec<String>,
    /// Custom templates by name (minijinja source); they shadow the built-in ones.
    pub templates: BTreeMap<String, String>,
    pub aliases: BTreeMap<String, Vec<String>>,
}

impl Default for InjectorConfig {
    fn default() -> Self {
        InjectorConfig {
            policy: Policy::Enabled,
            always_inject_selector: Vec::new(),
            never_inject_selector: Vec::new(),
            injected_annotations: BTreeMap::new(),
            default_templates: vec!["sidecar".to_string()],
            templates: BTreeMap::new(),
            aliases: BTreeMap::new(),
        }
    }
}

impl InjectorConfig {
    /// Builds the config from the values alone (what the chart writes into `config`).
    pub fn from_values(values: &Values) -> Result<Self, ConfigError> {
        let mut cfg = InjectorConfig::default();
        cfg.apply_values(values)?;
        Ok(cfg)
    }

    /// Parses an injector `config` document; values fill what it leaves out.
    pub fn from_yaml(text: &str, values: &Values) -> Result<Self, ConfigError> {
        let doc = parse_yaml("injection config", text)?;
        let raw: RawConfig = serde_json::from_value(doc).map_err(|e| ConfigError::Invalid {
            what: "injection config".into(),
            message: e.to_string(),
        })?;
        let mut cfg = InjectorConfig::default();
        cfg.apply_values(values)?;
        if let Some(p) = raw.policy {
            cfg.policy = Policy::parse(&p);
        }
        if !raw.always_inject_selector.is_empty() {
            cfg.always_inject_selector = raw.always_inject_selector;
        }
        if !raw.never_inject_selector.is_empty() {
            cfg.never_inject_selector = raw.never_inject_selector;
        }
        cfg.injected_annotations.extend(raw.injected_annotations);
        if !raw.default_templates.is_empty() {
            cfg.default_templates = raw.default_templates;
        }
        cfg.templates.extend(raw.templates);
        cfg.aliases.extend(raw.aliases);
        Ok(cfg)
    }

    fn apply_values(&mut self, values: &Values) -> Result<(), ConfigError> {
        let invalid = |field: &str, e: serde_json::Error| ConfigError::Invalid {
            what: format!("values sidecarInjectorWebhook.{field}"),
            message: e.to_string(),
        };
        self.policy = Policy::parse(&values.string("global.proxy.autoInject"));
        let swh = values.get("sidecarInjectorWebhook");
        let field = |name: &str| {
            swh.and_then(|s| s.get(name))
                .filter(|v| !v.is_null())
                .cloned()
        };
        if let Some(v) = field("alwaysInjectSelector") {
            self.always_inject_selector =
                serde_json::from_value(v).map_err(|e| invalid("alwaysInjectSelector", e))?;
        }
        if let Some(v) = field("neverInjectSelector") {
            self.never_inject_selector =
                serde_json::from_value(v).map_err(|e| invalid("neverInjectSelector", e))?;
        }
        if let Some(v) = field("injectedAnnotations") {
            self.injected_annotations =
                serde_json::from_value(v).map_err(|e| invalid("injectedAnnotations", e))?;
        }
        if let Some(v) = field("defaultTemplates") {
            let t: Vec<String> =
                serde_json::from_value(v).map_err(|e| invalid("defaultTemplates", e))?;
            if !t.is_empty() {
                self.default_templates = t;
            }
        }
        if let Some(v) = field("templates") {
            let t: BTreeMap<String, String> =
                serde_json::from_value(v).map_err(|e| invalid("templates", e))?;
            self.templates.extend(t);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_values() {
        let values = Values::from_yaml("global:\n  proxy:\n    autoInject: disabled\n").unwrap();
        let cfg = InjectorConfig::from_values(&values).unwrap();
        assert_eq!(cfg.policy, Policy::Disabled);
        assert_eq!(cfg.default_templates, vec!["sidecar".to_string()]);
    }

    #[test]
    fn config_document_overrides_values() {
        let cfg = InjectorConfig::from_yaml(
            "policy: enabled\nneverInjectSelector:\n- matchLabels:\n    skip: \"yes\"\ninjectedAnnotations:\n  a: b\n",
            &Values::default(),
        )
        .unwrap();
        assert_eq!(cfg.never_inject_selector.len(), 1);
        assert_eq!(
            cfg.injected_annotations.get("a").map(String::as_str),
            Some("b")
        );
    }

    #[test]
    fn bad_selector_is_an_error() {
        assert!(InjectorConfig::from_yaml("neverInjectSelector: 3\n", &Values::default()).is_err());
    }
}
