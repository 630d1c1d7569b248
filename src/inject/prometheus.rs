//! Prometheus metrics merge: the app's scrape annotations are saved for the agent
//! (`ISTIO_PROMETHEUS_ANNOTATIONS`) and replaced by the agent's merged endpoint.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::annotations::{parse_bool, MERGE_METRICS};
use crate::config::MeshConfig;

pub const SCRAPE: &str = "prometheus.io/scrape";
pub const PORT: &str = "prometheus.io/port";
pub const PATH: &str = "prometheus.io/path";
/// Several scrape targets: `port:path,port:path`.
pub const SCRAPE_TARGETS: &str = "prometheus.istio.io/scrape-targets";

/// Ports the agent and Envoy own; scraping them would loop.
const RESERVED_PORTS: &[i64] = &[
    15000, 15001, 15004, 15006, 15008, 15009, 15020, 15021, 15053, 15090,
];

/// The result of the merge decision.
#[derive(Debug, Default)]
pub struct Merge {
    /// Whether the annotations are replaced by the agent's.
    pub merged: bool,
    /// The annotations to set when merged.
    pub annotations: Vec<(&'static str, String)>,
    /// `ISTIO_PROMETHEUS_ANNOTATIONS` value when the app had scrape settings.
    pub env: Option<String>,
}

/// Maps an entry of `ISTIO_PROMETHEUS_ANNOTATIONS` back to the annotation it was saved from.
pub fn restore_annotation(key: &str, value: &Value) -> Option<(String, String)> {
    let ann = match key {
        "scrape" => SCRAPE,
        "port" => PORT,
        "path" => PATH,
        "targets" => {
            let list: Vec<String> = value
                .as_array()?
                .iter()
                .filter_map(|t| {
                    Some(format!(
                        "{}:{}",
                        t.get("port")?.as_str()?,
                        t.get("path")?.as_str()?
                    ))
                })
                .collect();
            return Some((SCRAPE_TARGETS.to_string(), list.join(",")));
        }
        _ => return None,
    };
    Some((ann.to_string(), value.as_str()?.to_string()))
}

fn sanitized(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Parses `port:path,port:path` (a missing path means `/metrics`).
fn parse_targets(text: &str, status_port: i64) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (port, path) = entry.split_once(':').unwrap_or((entry, "/metrics"));
        let n = port.trim().parse::<i64>().map_err(|_| {
            format!("annotation {SCRAPE_TARGETS}={text:?}: {port:?} is not a port number")
        })?;
        if n == status_port || RESERVED_PORTS.contains(&n) {
            return Err(format!(
                "annotation {SCRAPE_TARGETS}={text:?}: port {n} is reserved for the sidecar"
            ));
        }
        let path = if path.trim().is_empty() {
            "/metrics"
        } else {
            path.trim()
        };
        out.push((port.trim().to_string(), path.to_string()));
    }
    Ok(out)
}

/// Decides the merge for a pod's annotations.
pub fn merge(
    mesh: &MeshConfig,
    annotations: &BTreeMap<String, String>,
    status_port: i64,
) -> Result<Merge, String> {
    let scrape_off = annotations
        .iter()
        .any(|(k, v)| sanitized(k) == "prometheus_io_scrape" && parse_bool(v) == Some(false));
    if scrape_off {
        return Ok(Merge::default());
    }
    let enabled = annotations
        .get(MERGE_METRICS)
        .and_then(|v| parse_bool(v))
        .unwrap_or_else(|| {
            mesh.0
                .get("enablePrometheusMerge")
                .and_then(Value::as_bool)
                .unwrap_or(true)
        });
    if !enabled {
        return Ok(Merge::default());
    }
    if let Some(p) = annotations.get(PORT) {
        let port = p
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("annotation {PORT}={p:?}: not a port number"))?;
        if port == status_port || RESERVED_PORTS.contains(&port) {
            return Err(format!(
                "annotation {PORT}={p:?}: port {port} is reserved for the sidecar (status port {status_port} or an Istio port); scrape the application's own port"
            ));
        }
    }
    let targets = match annotations.get(SCRAPE_TARGETS) {
        Some(t) => parse_targets(t, status_port)?,
        None => Vec::new(),
    };
    let mut saved = Map::new();
    for (key, ann) in [("scrape", SCRAPE), ("path", PATH), ("port", PORT)] {
        if let Some(v) = annotations.get(ann) {
            saved.insert(key.into(), Value::String(v.clone()));
        }
    }
    if let Some((port, path)) = targets.first() {
        saved
            .entry("path")
            .or_insert_with(|| Value::String(path.clone()));
        saved
            .entry("port")
            .or_insert_with(|| Value::String(port.clone()));
    }
    if !targets.is_empty() {
        let list = targets
            .iter()
            .map(|(port, path)| serde_json::json!({"port": port, "path": path}))
            .collect();
        saved.insert("targets".into(), Value::Array(list));
    }
    Ok(Merge {
        merged: true,
        annotations: vec![
            (PATH, "/stats/prometheus".to_string()),
            (PORT, status_port.to_string()),
            (SCRAPE, "true".to_string()),
        ],
        env: (!saved.is_empty()).then(|| Value::Object(saved).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anns(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn saves_app_settings_and_points_at_agent() {
        let m = merge(
            &MeshConfig::default(),
            &anns(&[(SCRAPE, "true"), (PORT, "8080"), (PATH, "/metrics")]),
            15020,
        )
        .unwrap();
        assert!(m.merged);
        let env: Value = serde_json::from_str(m.env.as_deref().unwrap()).unwrap();
        assert_eq!(
            env,
            serde_json::json!({"scrape": "true", "path": "/metrics", "port": "8080"})
        );
        assert!(m.annotations.contains(&(PORT, "15020".to_string())));
    }

    #[test]
    fn scrape_false_in_any_spelling_disables() {
        assert!(
            !merge(
                &MeshConfig::default(),
                &anns(&[("prometheus.io.scrape", "false")]),
                15020
            )
            .unwrap()
            .merged
        );
        assert!(
            !merge(
                &MeshConfig::default(),
                &anns(&[(MERGE_METRICS, "false")]),
                15020
            )
            .unwrap()
            .merged
        );
        let mesh = MeshConfig::from_yaml("enablePrometheusMerge: false").unwrap();
        assert!(!merge(&mesh, &anns(&[]), 15020).unwrap().merged);
    }

    #[test]
    fn scrape_targets_are_saved_with_the_first_as_default() {
        let m = merge(
            &MeshConfig::default(),
            &anns(&[
                (SCRAPE, "true"),
                (SCRAPE_TARGETS, "8080:/metrics, 9100:/custom,9200"),
            ]),
            15020,
        )
        .unwrap();
        let env: Value = serde_json::from_str(m.env.as_deref().unwrap()).unwrap();
        assert_eq!(
            env,
            serde_json::json!({"scrape": "true", "path": "/metrics", "port": "8080", "targets": [
                {"port": "8080", "path": "/metrics"}, {"port": "9100", "path": "/custom"}, {"port": "9200", "path": "/metrics"}]})
        );
        assert!(merge(
            &MeshConfig::default(),
            &anns(&[(SCRAPE_TARGETS, "15090:/x")]),
            15020
        )
        .is_err());
        assert!(merge(
            &MeshConfig::default(),
            &anns(&[(SCRAPE_TARGETS, "web:/x")]),
            15020
        )
        .is_err());
    }

    #[test]
    fn reserved_ports_are_errors() {
        assert!(
            merge(&MeshConfig::default(), &anns(&[(PORT, "15090")]), 15020)
                .unwrap_err()
                .contains(PORT)
        );
        assert!(merge(&MeshConfig::default(), &anns(&[(PORT, "x")]), 15020).is_err());
    }
}
