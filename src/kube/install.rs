//! `meshd install` (server-side apply of the rendered manifests, then waiting for the
//! Deployment) and `meshd verify-install` (each expected object present, missing or different).

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::Value;

use crate::manifest::object_key;

/// Field manager name for server-side apply.
pub const FIELD_MANAGER: &str = "meshd";

fn api_for(client: &Client, obj: &Value) -> Option<(Api<DynamicObject>, String)> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let name = obj.pointer("/metadata/name")?.as_str()?.to_string();
    let api = match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    Some((api, name))
}

/// Applies every object (server-side apply, field manager `meshd`, forced).
pub async fn apply_all(client: &Client, objs: &[Value]) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    for obj in objs {
        let key = object_key(obj);
        let (api, name) =
            api_for(client, obj).ok_or_else(|| format!("{key}: no apiVersion, kind or name"))?;
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &pp, &Patch::Apply(obj))
            .await
            .map_err(|e| format!("{key}: {e}"))?;
        done.push(key);
    }
    Ok(done)
}

/// Waits until every Deployment among `objs` has as many available replicas as it asks for.
pub async fn wait_ready(client: &Client, objs: &[Value], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    for obj in objs
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Deployment"))
    {
        let key = object_key(obj);
        let Some((api, name)) = api_for(client, obj) else {
            continue;
        };
        let want = obj
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        loop {
            let live = api.get(&name).await.map_err(|e| format!("{key}: {e}"))?;
            let have = live
                .data
                .pointer("/status/availableReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if have >= want {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{key}: {have}/{want} replicas available after {timeout:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// What `verify-install` found for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Present,
    Missing,
    Different(Vec<String>),
}

/// Fields meshd itself changes after install, not compared.
fn managed_at_runtime(path: &str) -> bool {
    path.ends_with(".clientConfig.caBundle")
        || path.ends_with(".failurePolicy") && path.contains("webhooks")
}

/// Every field the manifest sets must have the same value in the live object (extra live
/// fields, defaults and status are fine).
pub fn compare(path: &str, want: &Value, live: Option<&Value>, out: &mut Vec<String>) {
    if managed_at_runtime(path) {
        return;
    }
    match (want, live) {
        (_, None) => out.push(format!("{path}: missing (want {want})")),
        (Value::Object(w), Some(Value::Object(l))) => {
            for (k, v) in w {
                compare(&format!("{path}.{k}"), v, l.get(k), out);
            }
        }
        (Value::Array(w), Some(Value::Array(l))) if w.len() == l.len() => {
            for (i, (a, b)) in w.iter().zip(l).enumerate() {
                compare(&format!("{path}[{i}]"), a, Some(b), out);
            }
        }
        (w, Some(l)) if !same_scalar(w, l) => out.push(format!("{path}: {l} (want {w})")),
        _ => {}
    }
}

fn same_scalar(a: &Value, b: &Value) -> bool {
    // A quantity or port may come back as a string for a number (or the other way round).
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    a == b || (a.is_number() != b.is_number() && text(a).is_some() && text(a) == text(b))
}

/// Checks each expected object against the cluster.
pub async fn verify(client: &Client, objs: &[Value]) -> Result<Vec<(String, Found)>, String> {
    let mut report = Vec::new();
    for obj in objs {
        let key = object_key(obj);
        let (api, name) =
            api_for(client, obj).ok_or_else(|| format!("{key}: no apiVersion, kind or name"))?;
        let found = match api
            .get_opt(&name)
            .await
            .map_err(|e| format!("{key}: {e}"))?
        {
            None => Found::Missing,
            Some(live) => {
                let live = serde_json::to_value(&live).unwrap_or(Value::Null);
                let mut diffs = Vec::new();
                for (k, v) in obj.as_object().into_iter().flatten() {
                    if k == "status" {
                        continue;
                    }
                    compare(k, v, live.get(k), &mut diffs);
                }
                if diffs.is_empty() {
                    Found::Present
                } else {
                    Found::Different(diffs)
                }
            }
        };
        report.push((key, found));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compare_ignores_extras_and_runtime_fields() {
        let want = json!({"spec": {"replicas": 2, "ports": [{"port": 443}]}, "webhooks": [{"clientConfig": {"caBundle": ""}, "failurePolicy": "Ignore"}]});
        let live = json!({"spec": {"replicas": 2, "ports": [{"port": 443, "protocol": "TCP"}], "extra": 1},
            "webhooks": [{"clientConfig": {"caBundle": "QUJD"}, "failurePolicy": "Fail"}]});
        let mut out = Vec::new();
        for (k, v) in want.as_object().unwrap() {
            compare(k, v, live.get(k), &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        let live = json!({"spec": {"replicas": 1}});
        let mut out = Vec::new();
        compare("spec", &want["spec"], live.get("spec"), &mut out);
        assert_eq!(
            out,
            vec![
                "spec.replicas: 1 (want 2)".to_string(),
                "spec.ports: missing (want [{\"port\":443}])".to_string()
            ]
        );
    }
}
