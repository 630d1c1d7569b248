//! Kubernetes strategic merge patch, restricted to what pod injection needs: maps merge, named
//! lists (`containers`, `volumes`, `env`, `volumeMounts`, `ports`, …) merge item by item with new
//! items appended, other lists are replaced, and `null` deletes a key.

use serde_json::{Map, Value};

/// The merge key of a list field of a Pod, by field name.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "readinessGates" => Some(match field {
            "readinessGates" => "conditionType",
            _ => "name",
        }),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => Some("containerPort"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

/// Where items of a named list that only the patch has end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrder {
    /// Kubernetes' order (`mergeSortedSlice`): patch items keep their relative order and go
    /// before server-only items unless both are positioned in the original list.
    Kubernetes,
    /// New items are appended after the existing ones.
    Append,
}

/// Applies `patch` onto `target` with strategic-merge semantics and Kubernetes' list order.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    merge_with(target, patch, ListOrder::Kubernetes)
}

/// Applies `patch` onto `target` with strategic-merge semantics and the given list order.
pub fn merge_with(target: &mut Value, patch: &Value, order: ListOrder) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => merge_maps(t, p, order),
        (t, p) => *t = p.clone(),
    }
}

fn merge_maps(target: &mut Map<String, Value>, patch: &Map<String, Value>, order: ListOrder) {
    for (key, pv) in patch {
        if pv.is_null() {
            target.remove(key);
            continue;
        }
        match (target.get_mut(key), pv) {
            (Some(Value::Object(t)), Value::Object(p)) => merge_maps(t, p, order),
            (Some(Value::Array(t)), Value::Array(p)) => match merge_key(key) {
                Some(mk) => merge_named_lists(t, p, mk, order),
                None => *t = p.clone(),
            },
            (_, pv) => {
                target.insert(key.clone(), strip_nulls(pv));
            }
        }
    }
}

fn merge_named_lists(target: &mut Vec<Value>, patch: &[Value], key: &str, order: ListOrder) {
    let original_keys: Vec<Option<Value>> = target.iter().map(|t| t.get(key).cloned()).collect();
    for item in patch {
        let id = item.get(key);
        let existing = id.and_then(|id| target.iter_mut().find(|t| t.get(key) == Some(id)));
        match existing {
            Some(t) => merge_with(t, item, order),
            None => target.push(strip_nulls(item)),
        }
    }
    if order == ListOrder::Append {
        return;
    }
    // Partition into patch items (in patch order) and server-only items (in original order),
    // then interleave them as Kubernetes' mergeSortedSlice does.
    let in_patch = |v: &Value| {
        patch
            .iter()
            .any(|p| p.get(key).is_some() && p.get(key) == v.get(key))
    };
    let merged = std::mem::take(target);
    let (mut patch_items, server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| in_patch(v));
    let patch_pos = |v: &Value| {
        patch
            .iter()
            .position(|p| p.get(key) == v.get(key))
            .unwrap_or(usize::MAX)
    };
    patch_items.sort_by_key(|v| patch_pos(v));
    let server_pos = |v: &Value| {
        let id = v.get(key).cloned();
        original_keys.iter().position(|k| id.is_some() && *k == id)
    };
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        patch_items.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                matches!((server_pos(l), server_pos(r)), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        target.extend(next);
    }
}

/// A patch value being added fresh: `null` entries of maps mean "absent".
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_in_kubernetes_order() {
        let mut pod = json!({"spec": {"containers": [{"name": "app", "image": "a"}]}});
        let patch = json!({"spec": {"containers": [{"name": "istio-proxy", "image": "p"}, {"name": "app", "tty": true}]}});
        let mut appended = pod.clone();
        strategic_merge(&mut pod, &patch);
        // New patch items go first; known items keep their relative order.
        assert_eq!(
            pod,
            json!({"spec": {"containers": [{"name": "istio-proxy", "image": "p"}, {"name": "app", "image": "a", "tty": true}]}})
        );
        merge_with(&mut appended, &patch, ListOrder::Append);
        assert_eq!(
            appended,
            json!({"spec": {"containers": [{"name": "app", "image": "a", "tty": true}, {"name": "istio-proxy", "image": "p"}]}})
        );
    }

    #[test]
    fn server_only_items_keep_position_between_known_items() {
        let mut v = json!({"volumes": [{"name": "a"}, {"name": "user"}, {"name": "b"}]});
        strategic_merge(
            &mut v,
            &json!({"volumes": [{"name": "a"}, {"name": "b"}, {"name": "new"}]}),
        );
        let names: Vec<_> = v["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a", "user", "b", "new"]);
    }

    #[test]
    fn scalar_lists_replace_and_nulls_delete() {
        let mut c = json!({"args": ["a", "b"], "volumeMounts": [{"mountPath": "/x", "name": "x"}], "keep": 1, "drop": 2});
        merge_with(
            &mut c,
            &json!({"args": ["c"], "volumeMounts": [{"mountPath": "/y", "name": "y"}], "drop": null}),
            ListOrder::Append,
        );
        assert_eq!(
            c,
            json!({"args": ["c"], "volumeMounts": [{"mountPath": "/x", "name": "x"}, {"mountPath": "/y", "name": "y"}], "keep": 1})
        );
    }

    #[test]
    fn nulls_in_new_items_are_absent() {
        let mut pod = json!({"volumes": []});
        strategic_merge(
            &mut pod,
            &json!({"volumes": [{"name": "v", "emptyDir": null}]}),
        );
        assert_eq!(pod, json!({"volumes": [{"name": "v"}]}));
    }
}
