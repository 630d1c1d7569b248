//! The workload a pod belongs to ("deployment meta"): from the workload object for
//! `kube-inject`, or from the pod's controller owner reference for the webhook, with Istio's
//! heuristics (ReplicaSet → Deployment, Job → CronJob, …).

use serde_json::Value;

/// Name, namespace and type of the owning workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeployMeta {
    pub name: String,
    pub namespace: String,
    pub kind: String,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |cur, k| cur.get(*k))?.as_str()
}

/// Istio's `GetDeployMetaFromPod`.
pub fn from_pod(pod: &Value) -> DeployMeta {
    let meta = pod.get("metadata").cloned().unwrap_or(Value::Null);
    let namespace = str_at(&meta, &["namespace"]).unwrap_or("").to_string();
    let pod_name = str_at(&meta, &["name"]).unwrap_or("").to_string();
    let generate_name = str_at(&meta, &["generateName"]).unwrap_or("");
    let label = |k: &str| {
        meta.get("labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
    };
    let controller = meta
        .get("ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        });
    let (Some(owner), false) = (controller, generate_name.is_empty()) else {
        return DeployMeta {
            name: pod_name,
            namespace,
            kind: "Pod".into(),
            api_version: "v1".into(),
        };
    };
    let mut dm = DeployMeta {
        name: str_at(owner, &["name"]).unwrap_or("").to_string(),
        namespace,
        kind: str_at(owner, &["kind"]).unwrap_or("").to_string(),
        api_version: str_at(owner, &["apiVersion"]).unwrap_or("").to_string(),
    };
    match dm.kind.as_str() {
        "ReplicaSet" => {
            if let Some(hash) = label("pod-template-hash") {
                if let Some(base) = dm.name.strip_suffix(&format!("-{hash}")) {
                    dm.name = base.to_string();
                    dm.kind = "Deployment".into();
                    dm.api_version = "apps/v1".into();
                }
            } else if let Some(hash) = label("rollouts-pod-template-hash") {
                if let Some(base) = dm.name.strip_suffix(&format!("-{hash}")) {
                    dm.name = base.to_string();
                    dm.kind = "Rollout".into();
                    dm.api_version = "argoproj.io/v1alpha1".into();
                }
            }
        }
        "ReplicationController" => {
            if let Some(dc) = label("deploymentconfig") {
                dm.name = dc.to_string();
                dm.kind = "DeploymentConfig".into();
                dm.api_version = "apps.openshift.io/v1".into();
            }
        }
        "Job" => {
            if let Some((base, suffix)) = dm.name.rsplit_once('-') {
                if (8..=10).contains(&suffix.len()) && suffix.bytes().all(|b| b.is_ascii_digit()) {
                    dm.name = base.to_string();
                    dm.kind = "CronJob".into();
                    dm.api_version = "batch/v1".into();
                }
            }
        }
        _ => {}
    }
    dm
}

/// `kubernetes://apis/<apiVersion>/namespaces/<ns>/<kind>s/<name>`, when known.
pub fn owner_uri(dm: &DeployMeta) -> Option<String> {
    if dm.api_version.is_empty() || dm.name.is_empty() {
        return None;
    }
    let ns = if dm.namespace.is_empty() {
        "default"
    } else {
        &dm.namespace
    };
    Some(format!(
        "kubernetes://apis/{}/namespaces/{}/{}s/{}",
        dm.api_version,
        ns,
        dm.kind.to_lowercase(),
        dm.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(owner_kind: &str, owner_name: &str, labels: Value) -> Value {
        json!({"metadata": {"generateName": "x-", "namespace": "ns", "labels": labels,
            "ownerReferences": [{"kind": owner_kind, "name": owner_name, "apiVersion": "apps/v1", "controller": true}]}})
    }

    #[test]
    fn owner_heuristics() {
        let d = from_pod(&pod(
            "ReplicaSet",
            "hello-5d8f7",
            json!({"pod-template-hash": "5d8f7"}),
        ));
        assert_eq!((d.kind.as_str(), d.name.as_str()), ("Deployment", "hello"));
        assert_eq!(
            owner_uri(&d).unwrap(),
            "kubernetes://apis/apps/v1/namespaces/ns/deployments/hello"
        );
        let d = from_pod(&pod("Job", "backup-28401234", json!({})));
        assert_eq!(
            (d.kind.as_str(), d.name.as_str(), d.api_version.as_str()),
            ("CronJob", "backup", "batch/v1")
        );
        let d = from_pod(&pod("Job", "backup-12", json!({})));
        assert_eq!(d.kind, "Job");
        let d = from_pod(&pod(
            "ReplicationController",
            "rc-1",
            json!({"deploymentconfig": "dc"}),
        ));
        assert_eq!(
            (d.kind.as_str(), d.name.as_str()),
            ("DeploymentConfig", "dc")
        );
        let d = from_pod(&pod("StatefulSet", "db", json!({})));
        assert_eq!((d.kind.as_str(), d.name.as_str()), ("StatefulSet", "db"));
    }

    #[test]
    fn bare_pod_is_its_own_owner() {
        let d = from_pod(&json!({"metadata": {"name": "p", "namespace": "ns"}}));
        assert_eq!(
            owner_uri(&d).unwrap(),
            "kubernetes://apis/v1/namespaces/ns/pods/p"
        );
        let d = from_pod(&json!({"metadata": {"generateName": "p-"}}));
        assert_eq!(owner_uri(&d), None);
    }
}
