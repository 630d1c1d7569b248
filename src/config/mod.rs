//! Injection inputs in Istio's own formats: Helm `values`, `MeshConfig` (with `ProxyConfig`
//! defaults) and the injector `config` (policy, selectors, templates), each merged onto
//! Istio's built-in defaults.

pub mod injector;
pub mod mesh;
pub mod values;

use serde_json::Value;
use thiserror::Error;

pub use injector::{InjectorConfig, Policy};
pub use mesh::MeshConfig;
pub use values::Values;

/// An input file or document that could not be understood.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{what}: {source}")]
    Yaml {
        what: String,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

/// Parses YAML (or JSON, which is YAML) into a JSON value. An empty document is `{}`.
pub fn parse_yaml(what: &str, text: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let v: Value = serde_norway::from_str(text).map_err(|source| ConfigError::Yaml {
        what: what.to_string(),
        source,
    })?;
    match v {
        Value::Null => Ok(Value::Object(Default::default())),
        Value::Object(_) => Ok(v),
        _ => Err(ConfigError::Invalid {
            what: what.to_string(),
            message: "expected a mapping at the top level".to_string(),
        }),
    }
}

/// Deep-merges `overlay` onto `base`: maps merge key by key, anything else replaces.
/// A `null` in the overlay leaves the base value alone, as Helm does for unset keys.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if v.is_object() && existing.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ if v.is_null() => {}
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => {
            if !o.is_null() {
                *b = o.clone();
            }
        }
    }
}

/// Looks up a dotted path (`global.proxy.statusPort`) in a JSON value.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| cur.get(key))
}

/// A JSON value as the string a Go template would print for it (`""` for null).
pub fn scalar_string(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Go-template truthiness: false, 0, "", empty list/map and null are false.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deep_merge_merges_maps_and_replaces_scalars() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "s": "x"});
        deep_merge(
            &mut base,
            &json!({"a": {"c": 3, "d": 4}, "l": [9], "s": null}),
        );
        assert_eq!(
            base,
            json!({"a": {"b": 1, "c": 3, "d": 4}, "l": [9], "s": "x"})
        );
    }

    #[test]
    fn parse_yaml_rejects_non_mapping() {
        assert!(parse_yaml("values", "- a\n- b\n").is_err());
        assert_eq!(parse_yaml("values", "").unwrap(), json!({}));
        assert!(parse_yaml("values", "a: [").is_err());
    }
}
