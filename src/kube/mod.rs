//! The only module that holds a `kube::Client`: connecting (in-cluster or `--kubeconfig`) and
//! the upkeep of meshd's own webhook configurations — the CA written into every webhook's
//! `caBundle` at start and after every certificate change, and the validating webhook switched
//! from `failurePolicy: Ignore` to `Fail` once a dry-run of a known-bad object shows that the
//! API server reaches meshd and meshd rejects bad config (as istiod's validation controller).

pub mod install;
pub mod source;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::{Client, Config};
use serde_json::{json, Value};
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Error)]
pub enum KubeError {
    #[error("--kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("no Kubernetes configuration found (in-cluster or ~/.kube/config): {0}")]
    Infer(String),
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// Connects with `--kubeconfig`, or in-cluster / the default kubeconfig.
pub async fn connect(kubeconfig: Option<&PathBuf>) -> Result<Client, KubeError> {
    let config = match kubeconfig {
        Some(path) => {
            let err = |message: String| KubeError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let kc = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| err(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| KubeError::Infer(e.to_string()))?,
    };
    Ok(Client::try_from(config)?)
}

/// Names of meshd's webhook configurations and where the self-check object goes.
#[derive(Debug, Clone)]
pub struct WebhookNames {
    pub mutating: String,
    pub validating: String,
    pub namespace: String,
    pub revision: String,
}

/// JSON patch operations setting `caBundle` on every webhook whose value differs.
fn ca_bundle_ops(webhooks: &[Value], bundle: &str) -> Vec<Value> {
    webhooks
        .iter()
        .enumerate()
        .filter(|(_, w)| w.pointer("/clientConfig/caBundle").and_then(Value::as_str) != Some(bundle))
        .map(|(i, _)| json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": bundle}))
        .collect()
}

async fn patch_config<K>(api: &Api<K>, name: &str, bundle: &str) -> Result<usize, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let current = api.get(name).await?;
    let v = serde_json::to_value(&current).unwrap_or(Value::Null);
    let webhooks = v
        .get("webhooks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ops = ca_bundle_ops(&webhooks, bundle);
    if ops.is_empty() {
        return Ok(0);
    }
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops.clone())).map_err(kube::Error::SerdeError)?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(ops.len())
}

/// Writes `ca_pem` into the `caBundle` of every webhook of both configurations. Returns the
/// number of webhooks changed, or `None` when a configuration does not exist (yet).
pub async fn patch_ca_bundles(
    client: &Client,
    names: &WebhookNames,
    ca_pem: &str,
) -> Result<Option<usize>, kube::Error> {
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let m: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let v: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mut n = 0;
    let mut missing = false;
    for result in [
        patch_config(&m, &names.mutating, &bundle).await,
        patch_config(&v, &names.validating, &bundle).await,
    ] {
        match result {
            Ok(k) => n += k,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::info!(error = %e.message, "webhook configuration not found yet");
                missing = true;
            }
            Err(e) => return Err(e),
        }
    }
    Ok((!missing).then_some(n))
}

/// Dry-runs the creation of a Gateway meshd always rejects. `Ok(true)`: the API server called
/// meshd and meshd denied it, so validation is live.
pub async fn validation_is_live(
    client: &Client,
    names: &WebhookNames,
) -> Result<bool, kube::Error> {
    let ar = ApiResource {
        group: "networking.istio.io".into(),
        version: "v1".into(),
        api_version: "networking.istio.io/v1".into(),
        kind: "Gateway".into(),
        plural: "gateways".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &names.namespace, &ar);
    // Labelled with the revision only for a revision install: the default install's validator
    // selects objects without an `istio.io/rev` label (deploy/templates/70-webhooks.yaml).
    let labels = if names.revision.is_empty() {
        json!({})
    } else {
        json!({"istio.io/rev": names.revision})
    };
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": "invalid-gateway",
            "namespace": names.namespace,
            "labels": labels,
            "annotations": {"internal.istio.io/webhook-always-reject": "true"}
        },
        "spec": {}
    }))
    .map_err(kube::Error::SerdeError)?;
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match api.create(&pp, &obj).await {
        Ok(_) => Ok(false),
        Err(kube::Error::Api(e)) if e.message.contains("denied the request") => Ok(true),
        // No Gateway CRD: nothing to protect yet; Istio treats this as ready too.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(true),
        Err(e) => Err(e),
    }
}

/// Sets `failurePolicy: Fail` on every webhook of the validating configuration.
pub async fn fail_closed(client: &Client, names: &WebhookNames) -> Result<(), kube::Error> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let current = api.get(&names.validating).await?;
    let count = current.webhooks.as_ref().map(Vec::len).unwrap_or(0);
    let ops: Vec<Value> = (0..count)
        .filter(|i| current.webhooks.as_ref().and_then(|w| w.get(*i)).and_then(|w| w.failure_policy.as_deref()) != Some("Fail"))
        .map(|i| json!({"op": "add", "path": format!("/webhooks/{i}/failurePolicy"), "value": "Fail"}))
        .collect();
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).map_err(kube::Error::SerdeError)?;
    api.patch(
        &names.validating,
        &PatchParams::default(),
        &Patch::<()>::Json(patch),
    )
    .await?;
    Ok(())
}

/// Long-running upkeep: patches the CA now and whenever `ca` changes, then switches validation
/// to fail-closed once the self-check passes. After a CA change the bundle holds the new and
/// the previous CA, so connections verify across the switch; `patched` reports each CA once it
/// is in place. Errors back off and are retried.
pub async fn run_upkeep(
    client: Client,
    names: WebhookNames,
    mut ca: watch::Receiver<String>,
    patched: watch::Sender<String>,
    metrics: crate::telemetry::Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    let mut patched_for: Option<String> = None;
    let mut previous: Option<String> = None;
    let mut fail_closed_done = false;
    loop {
        let current = ca.borrow().clone();
        let mut ok = true;
        if patched_for.as_deref() != Some(current.as_str()) {
            metrics.webhook_patch_attempts.inc();
            let bundle = match previous.as_deref().filter(|p| *p != current) {
                Some(p) => format!("{}\n{}", current.trim_end(), p.trim_end()),
                None => current.clone(),
            };
            match patch_ca_bundles(&client, &names, &bundle).await {
                Ok(Some(n)) => {
                    tracing::info!(webhooks = n, mutating = %names.mutating, validating = %names.validating, "caBundle up to date");
                    previous = Some(current.clone());
                    patched_for = Some(current.clone());
                    let _ = patched.send(current);
                }
                Ok(None) => ok = false,
                Err(e) => {
                    metrics.webhook_patch_failures.inc();
                    tracing::warn!(error = %e, "caBundle patch failed; retrying");
                    ok = false;
                }
            }
        }
        if ok && !fail_closed_done {
            match validation_is_live(&client, &names).await {
                Ok(true) => match fail_closed(&client, &names).await {
                    Ok(()) => {
                        tracing::info!(validating = %names.validating, "validation webhook reachable and rejecting bad config: failurePolicy Fail");
                        fail_closed_done = true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot set failurePolicy Fail; retrying");
                        ok = false;
                    }
                },
                Ok(false) => {
                    tracing::info!("validation self-check: the known-bad object was accepted; webhook not live yet");
                    ok = false;
                }
                Err(e) => {
                    tracing::info!(error = %e, "validation self-check failed; retrying");
                    ok = false;
                }
            }
        }
        let wait = if ok {
            Duration::from_secs(3600)
        } else {
            backoff
        };
        backoff = if ok {
            Duration::from_millis(200)
        } else {
            (backoff * 2).min(Duration::from_secs(30))
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = ca.changed() => { if r.is_err() { return; } }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_differing_bundles_are_patched() {
        let hooks = vec![
            json!({"clientConfig": {"caBundle": "QQ=="}}),
            json!({"clientConfig": {}}),
        ];
        let ops = ca_bundle_ops(&hooks, "QQ==");
        assert_eq!(
            ops,
            vec![
                json!({"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": "QQ=="})
            ]
        );
        assert_eq!(ca_bundle_ops(&hooks, "Qg==").len(), 2);
    }
}
