//! The admission webhooks over HTTPS: body and content-type rules, AdmissionReview decoding,
//! `/inject` (sidecar injection → JSON patch), `/validate` (Istio config) and the axum router.

pub mod review;
pub mod validation;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::post;
use axum::Router;

use crate::inject::{self, Injector, Outcome};
use crate::telemetry::{Metrics, ReasonLabel};
use review::{Response, Review};

/// Largest AdmissionReview accepted (as Istio).
pub const MAX_BODY: usize = 6 * 1024 * 1024;

/// Shared state of the webhook handlers.
#[derive(Clone)]
pub struct AdmissionState {
    pub injector: Arc<ArcSwap<Injector>>,
    pub metrics: Metrics,
}

/// The `:15017` router.
pub fn router(state: AdmissionState) -> Router {
    Router::new()
        .route("/inject", post(inject_handler))
        .route("/inject/", post(inject_handler))
        .route("/inject/{*rest}", post(inject_handler))
        .route("/validate", post(validate_handler))
        .route("/validate/", post(validate_handler))
        .route("/validate/{*rest}", post(validate_handler))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn plain(status: StatusCode, msg: String) -> HttpResponse {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg,
    )
        .into_response()
}

fn json_response(body: Vec<u8>) -> HttpResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Reads the body with the webhook rules: non-empty and at most 6 MiB (400), JSON content
/// type (415).
pub async fn read_review_body(headers: &HeaderMap, body: Body) -> Result<Bytes, HttpResponse> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            format!("request body too large: limit is {MAX_BODY} bytes\n"),
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        let too_big = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_big {
            plain(
                StatusCode::BAD_REQUEST,
                format!("request body too large: limit is {MAX_BODY} bytes\n"),
            )
        } else {
            plain(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}\n"),
            )
        }
    })?;
    if bytes.is_empty() {
        return Err(plain(StatusCode::BAD_REQUEST, "no body found\n".into()));
    }
    // Checked after reading, so HTTP/2 clients get the answer instead of a reset stream.
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("invalid Content-Type {content_type:?}, want application/json\n"),
        ));
    }
    Ok(bytes)
}

/// Env overrides from the path after `/inject`: `/cluster/c1/net/n1`, `/K/V`, or the deprecated
/// `/:ENV:cluster=c1:ENV:net=n1`. `--slash--` in a value stands for `/`.
pub fn path_env_overrides(path: &str) -> BTreeMap<String, String> {
    let rest = path
        .strip_prefix("/inject")
        .unwrap_or(path)
        .trim_start_matches('/');
    let mut pairs: Vec<(String, String)> = Vec::new();
    if rest.starts_with(":ENV:") {
        for kv in rest.split(":ENV:").filter(|s| !s.is_empty()) {
            if let Some((k, v)) = kv.split_once('=') {
                pairs.push((k.to_string(), v.to_string()));
            }
        }
    } else {
        let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        if !parts.len().is_multiple_of(2) {
            tracing::warn!(
                path,
                "odd number of segments in the injection path; ignoring the last one"
            );
        }
        for kv in parts.chunks_exact(2) {
            pairs.push((kv[0].to_string(), kv[1].to_string()));
        }
    }
    pairs
        .into_iter()
        .map(|(k, v)| {
            let key = match k.as_str() {
                "cluster" => "ISTIO_META_CLUSTER_ID".to_string(),
                "net" => "ISTIO_META_NETWORK".to_string(),
                other => other.to_uppercase(),
            };
            (key, v.replace("--slash--", "/"))
        })
        .collect()
}

async fn inject_handler(State(state): State<AdmissionState>, req: Request) -> HttpResponse {
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let bytes = match read_review_body(&parts.headers, body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let start = Instant::now();
    state.metrics.injection_requests.inc();
    let injector = state.injector.load_full();
    let body = handle_inject(
        &injector,
        &state.metrics,
        &bytes,
        &path_env_overrides(&path),
    );
    state
        .metrics
        .injection_time
        .observe(start.elapsed().as_secs_f64());
    json_response(body)
}

async fn validate_handler(State(state): State<AdmissionState>, req: Request) -> HttpResponse {
    let (parts, body) = req.into_parts();
    match read_review_body(&parts.headers, body).await {
        Ok(bytes) => json_response(validation::handle_validate(&state.metrics, &bytes)),
        Err(resp) => resp,
    }
}

fn failure(metrics: &Metrics, reason: &str) {
    metrics
        .injection_failure
        .get_or_create(&ReasonLabel {
            reason: reason.into(),
        })
        .inc();
}

/// The whole `/inject` exchange on bytes (no I/O): review in, review out.
pub fn handle_inject(
    injector: &Injector,
    metrics: &Metrics,
    body: &[u8],
    envs: &BTreeMap<String, String>,
) -> Vec<u8> {
    let review = match review::decode(body) {
        Ok(r) => r,
        Err(e) => {
            failure(metrics, "decode");
            tracing::warn!(error = %e, "undecodable AdmissionReview");
            return review::encode(
                review::V1BETA1,
                None,
                &Response::deny(format!("could not decode AdmissionReview: {e}")),
            );
        }
    };
    let resp = inject_review(injector, metrics, &review, envs);
    review::encode(&review.api_version, Some(&review.request.uid), &resp)
}

fn inject_review(
    injector: &Injector,
    metrics: &Metrics,
    review: &Review,
    envs: &BTreeMap<String, String>,
) -> Response {
    let req = &review.request;
    let Some(object) = req.object.clone() else {
        failure(metrics, "no_object");
        return Response::deny("request.object is missing: nothing to inject");
    };
    let original = {
        let mut o = object.clone();
        if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("managedFields");
        }
        if let Some(spec) = o.get_mut("spec") {
            inject::canonicalize_pod_quantities(spec);
        }
        o
    };
    let mut request = inject::Request::webhook(object, req.namespace.clone());
    request.proxy_envs = envs.clone();
    let pod_name = pod_display(&original, req);
    match injector.inject(request) {
        Ok(Outcome::Skipped(reason)) => {
            metrics.injection_skip.inc();
            tracing::debug!(pod = %pod_name, %reason, "injection skipped");
            Response::allow()
        }
        Ok(Outcome::Injected(mut pod)) => {
            // The namespace filled in from the request is not part of the patch.
            if original
                .get("metadata")
                .and_then(|m| m.get("namespace"))
                .is_none()
            {
                if let Some(m) = pod.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                    m.remove("namespace");
                }
            }
            let patch = inject::create_patch(&original, &pod);
            metrics.injection_success.inc();
            tracing::debug!(pod = %pod_name, ops = patch.0.len(), "injected");
            if patch.0.is_empty() {
                return Response::allow();
            }
            match serde_json::to_vec(&patch) {
                Ok(p) => Response {
                    allowed: true,
                    patch: Some(p),
                    ..Default::default()
                },
                Err(e) => {
                    failure(metrics, "patch");
                    Response::deny(format!("cannot encode patch: {e}"))
                }
            }
        }
        Err(e) => {
            failure(metrics, "inject");
            tracing::warn!(pod = %pod_name, error = %e, "injection failed");
            Response::deny(format!("pod {pod_name}: {e}"))
        }
    }
}

fn pod_display(pod: &serde_json::Value, req: &review::AdmissionRequest) -> String {
    let meta = pod.get("metadata");
    let get = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("")
    };
    let ns = match get("namespace") {
        "" => req.namespace.as_deref().unwrap_or(""),
        n => n,
    };
    let name = match (get("name"), get("generateName")) {
        ("", "") => req.name.as_deref().unwrap_or("<unnamed>"),
        ("", g) => g,
        (n, _) => n,
    };
    format!("{ns}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_mangled_reviews_never_panic() {
        let inj = Injector::with_defaults().unwrap();
        let mut reg = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut reg);
        let body = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "namespace": "ns", "operation": "CREATE", "object": {
                "metadata": {"name": "p", "annotations": {"sidecar.istio.io/status": "{}", "proxy.istio.io/config": "concurrency: 2"}},
                "spec": {"containers": [{"name": "a", "image": "b", "ports": [{"containerPort": 1}], "readinessProbe": {"httpGet": {"port": "x"}}}]}}}
        })
        .to_string();
        let envs = BTreeMap::new();
        for cut in 0..body.len() {
            let out = handle_inject(&inj, &metrics, &body.as_bytes()[..cut], &envs);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert!(v["response"]["allowed"].is_boolean());
            let _ = validation::handle_validate(&metrics, &body.as_bytes()[..cut]);
        }
        // Type confusion at every JSON value position of the object.
        for replacement in ["null", "[]", "7", "\"s\"", "{}"] {
            for (i, _) in body.match_indices(':') {
                let mut mangled = body[..=i].to_string();
                mangled.push_str(replacement);
                let rest = &body[i + 1..];
                let skip = rest.find([',', '}']).unwrap_or(rest.len());
                mangled.push_str(&rest[skip..]);
                let _ = handle_inject(&inj, &metrics, mangled.as_bytes(), &envs);
                let _ = validation::handle_validate(&metrics, mangled.as_bytes());
            }
        }
    }

    #[test]
    fn path_overrides() {
        let e = path_env_overrides("/inject/cluster/c1/net/n1");
        assert_eq!(
            e.get("ISTIO_META_CLUSTER_ID").map(String::as_str),
            Some("c1")
        );
        assert_eq!(e.get("ISTIO_META_NETWORK").map(String::as_str), Some("n1"));
        let e = path_env_overrides("/inject/foo/a--slash--b/odd");
        assert_eq!(e.get("FOO").map(String::as_str), Some("a/b"));
        assert_eq!(e.len(), 1);
        let e = path_env_overrides("/inject/:ENV:cluster=c2:ENV:net=n2");
        assert_eq!(
            e.get("ISTIO_META_CLUSTER_ID").map(String::as_str),
            Some("c2")
        );
        assert!(path_env_overrides("/inject").is_empty());
    }
}
