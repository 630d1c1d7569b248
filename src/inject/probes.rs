//! Application probe rewriting (Istio's `app_probe.go`): HTTP, TCP and gRPC probes and
//! lifecycle hooks of app containers are pointed at the agent's status port, and the original
//! targets are recorded in `ISTIO_KUBE_APP_PROBERS`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::PROXY_CONTAINER;

/// Env var holding the original probe targets.
pub const APP_PROBERS_ENV: &str = "ISTIO_KUBE_APP_PROBERS";

const PROBES: &[(&str, &str)] = &[
    ("readinessProbe", "readyz"),
    ("livenessProbe", "livez"),
    ("startupProbe", "startupz"),
];
const HOOKS: &[(&str, &str)] = &[("preStop", "prestopz"), ("postStart", "poststartz")];

fn resolve_port(port: &Value, container: &Value) -> Option<Value> {
    match port {
        Value::Number(_) => Some(port.clone()),
        Value::String(name) => container
            .get("ports")
            .and_then(Value::as_array)?
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .and_then(|p| p.get("containerPort"))
            .cloned(),
        _ => None,
    }
}

/// The prober entry for one probe or handler, or `None` when it is not rewritable.
fn prober_entry(
    handler: &Value,
    container: &Value,
    status_port: i64,
    with_timeout: bool,
) -> Option<Value> {
    let mut entry = Map::new();
    let mut found = false;
    for action in ["httpGet", "tcpSocket", "grpc"] {
        let Some(a) = handler.get(action).and_then(Value::as_object) else {
            continue;
        };
        let port = resolve_port(a.get("port")?, container)?;
        if port.as_i64() == Some(status_port) {
            return None;
        }
        let mut a = a.clone();
        a.insert("port".into(), port);
        if action == "grpc" && !a.contains_key("service") {
            a.insert("service".into(), Value::Null);
        }
        entry.insert(action.into(), Value::Object(a));
        found = true;
        break;
    }
    if !found {
        return None;
    }
    if with_timeout {
        if let Some(t) = handler
            .get("timeoutSeconds")
            .filter(|t| t.as_i64().unwrap_or(0) != 0)
        {
            entry.insert("timeoutSeconds".into(), t.clone());
        }
    }
    Some(Value::Object(entry))
}

fn app_containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .filter_map(|k| spec.get(k).and_then(Value::as_array))
        .flatten()
        .filter(|c| c.get("name").and_then(Value::as_str) != Some(PROXY_CONTAINER))
}

/// Collects the original probe targets of every app container, keyed by agent path.
pub fn dump_app_probers(spec: &Value, status_port: i64) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for c in app_containers(spec) {
        let Some(name) = c.get("name").and_then(Value::as_str) else {
            continue;
        };
        for (field, suffix) in PROBES {
            if let Some(e) = c
                .get(*field)
                .and_then(|p| prober_entry(p, c, status_port, true))
            {
                out.insert(format!("/app-health/{name}/{suffix}"), e);
            }
        }
        for (field, suffix) in HOOKS {
            let hook = c.get("lifecycle").and_then(|l| l.get(*field));
            if let Some(e) = hook.and_then(|h| prober_entry(h, c, status_port, false)) {
                out.insert(format!("/app-lifecycle/{name}/{suffix}"), e);
            }
        }
    }
    out
}

fn rewrite_handler(handler: &mut Value, path: &str, status_port: i64) {
    let Some(h) = handler.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(get)) = h.get_mut("httpGet") {
        get.insert("port".into(), json!(status_port));
        get.insert("path".into(), json!(path));
        if get.get("scheme").and_then(Value::as_str) == Some("HTTPS") {
            get.insert("scheme".into(), json!("HTTP"));
        }
        return;
    }
    for action in ["tcpSocket", "grpc"] {
        if h.remove(action).is_some() {
            h.insert("httpGet".into(), json!({"path": path, "port": status_port}));
            return;
        }
    }
}

/// Rewrites the probes recorded in `probers` to go through the agent on `status_port`.
pub fn rewrite_probes(spec: &mut Value, probers: &BTreeMap<String, Value>, status_port: i64) {
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let Some(name) = c.get("name").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            if name == PROXY_CONTAINER {
                continue;
            }
            for (field, suffix) in PROBES {
                let path = format!("/app-health/{name}/{suffix}");
                if probers.contains_key(&path) {
                    if let Some(p) = c.get_mut(*field) {
                        rewrite_handler(p, &path, status_port);
                    }
                }
            }
            for (field, suffix) in HOOKS {
                let path = format!("/app-lifecycle/{name}/{suffix}");
                if probers.contains_key(&path) {
                    if let Some(h) = c.get_mut("lifecycle").and_then(|l| l.get_mut(*field)) {
                        rewrite_handler(h, &path, status_port);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        json!({"containers": [{
            "name": "web",
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"port": "http", "path": "/ready", "scheme": "HTTPS"}, "timeoutSeconds": 2},
            "livenessProbe": {"tcpSocket": {"port": 9000}},
            "startupProbe": {"grpc": {"port": 9001}},
            "lifecycle": {"preStop": {"httpGet": {"port": 91}}, "postStart": {"exec": {"command": ["x"]}}}
        }, {
            "name": "other",
            "livenessProbe": {"httpGet": {"port": "missing"}},
            "readinessProbe": {"exec": {"command": ["cat"]}}
        }]})
    }

    #[test]
    fn dumps_and_rewrites_every_kind() {
        let mut s = spec();
        let probers = dump_app_probers(&s, 15020);
        assert_eq!(
            Value::Object(probers.clone().into_iter().collect()),
            json!({
                "/app-health/web/readyz": {"httpGet": {"port": 8080, "path": "/ready", "scheme": "HTTPS"}, "timeoutSeconds": 2},
                "/app-health/web/livez": {"tcpSocket": {"port": 9000}},
                "/app-health/web/startupz": {"grpc": {"port": 9001, "service": null}},
                "/app-lifecycle/web/prestopz": {"httpGet": {"port": 91}},
            })
        );
        rewrite_probes(&mut s, &probers, 15020);
        let web = &s["containers"][0];
        assert_eq!(
            web["readinessProbe"],
            json!({"httpGet": {"port": 15020, "path": "/app-health/web/readyz", "scheme": "HTTP"}, "timeoutSeconds": 2})
        );
        assert_eq!(
            web["livenessProbe"],
            json!({"httpGet": {"path": "/app-health/web/livez", "port": 15020}})
        );
        assert_eq!(
            web["startupProbe"],
            json!({"httpGet": {"path": "/app-health/web/startupz", "port": 15020}})
        );
        assert_eq!(
            web["lifecycle"]["preStop"],
            json!({"httpGet": {"port": 15020, "path": "/app-lifecycle/web/prestopz"}})
        );
        assert_eq!(
            web["lifecycle"]["postStart"],
            json!({"exec": {"command": ["x"]}})
        );
        // Unresolvable named port and exec probes are untouched.
        assert_eq!(s["containers"][1], spec()["containers"][1]);
    }

    #[test]
    fn already_rewritten_probes_are_skipped() {
        let mut s = spec();
        let probers = dump_app_probers(&s, 15020);
        rewrite_probes(&mut s, &probers, 15020);
        assert!(dump_app_probers(&s, 15020).is_empty());
    }
}
