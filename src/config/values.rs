//! Istio's Helm `values` for the injector, merged onto the chart defaults meshd ships.

use serde_json::Value;

use super::{deep_merge, lookup, parse_yaml, scalar_string, truthy, ConfigError};

const DEFAULT_VALUES: &str = include_str!("default-values.yaml");

/// The effective values (defaults with the user's overlay).
#[derive(Debug, Clone)]
pub struct Values(pub Value);

impl Default for Values {
    fn default() -> Self {
        // The embedded defaults are a compile-time constant checked by a unit test.
        Values(parse_yaml("built-in values", DEFAULT_VALUES).unwrap_or(Value::Null))
    }
}

impl Values {
    /// Parses a values document (YAML or JSON) and merges it onto the defaults.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let overlay = parse_yaml("values", text)?;
        Ok(Self::from_overlay(&overlay))
    }

    /// Merges an already parsed overlay onto the defaults.
    pub fn from_overlay(overlay: &Value) -> Self {
        let mut v = Values::default();
        deep_merge(&mut v.0, overlay);
        v
    }

    /// A value by dotted path.
    pub fn get(&self, path: &str) -> Option<&Value> {
        lookup(&self.0, path)
    }

    /// A value by dotted path, printed as a Go template would.
    pub fn string(&self, path: &str) -> String {
        scalar_string(self.get(path))
    }

    /// Go-template truthiness of a value.
    pub fn truthy(&self, path: &str) -> bool {
        truthy(self.get(path))
    }

    /// The control-plane revision, `default` when empty.
    pub fn revision(&self) -> String {
        let r = self.string("revision");
        if r.is_empty() {
            "default".to_string()
        } else {
            r
        }
    }

    /// Whether Istio CNI is enabled (`pilot.cni.enabled` or the legacy `istio_cni.enabled`).
    pub fn cni_enabled(&self) -> bool {
        self.truthy("pilot.cni.enabled") || self.truthy("istio_cni.enabled")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse() {
        let v = Values::default();
        assert_eq!(v.string("global.proxy.statusPort"), "15020");
        assert_eq!(v.revision(), "default");
    }

    #[test]
    fn overlay_keeps_unrelated_defaults() {
        let v = Values::from_yaml("global:\n  proxy:\n    logLevel: debug\nrevision: canary\n")
            .unwrap();
        assert_eq!(v.string("global.proxy.logLevel"), "debug");
        assert_eq!(v.string("global.proxy.clusterDomain"), "cluster.local");
        assert_eq!(v.revision(), "canary");
    }
}
