//! AdmissionReview wire types (`admission.k8s.io/v1` and `v1beta1`) and response building.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const V1: &str = "admission.k8s.io/v1";
pub const V1BETA1: &str = "admission.k8s.io/v1beta1";

/// `request.kind` / `request.resource`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, alias = "resource")]
    pub kind: String,
}

/// The fields of `request` meshd reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    #[serde(default)]
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// A decoded review: its apiVersion and request.
#[derive(Debug, Clone)]
pub struct Review {
    pub api_version: String,
    pub request: AdmissionRequest,
}

/// Why a body is not an AdmissionReview.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("apiVersion {0:?} is not admission.k8s.io/v1 or admission.k8s.io/v1beta1")]
    ApiVersion(String),
    #[error("kind {0:?} is not AdmissionReview")]
    Kind(String),
    #[error("AdmissionReview has no request")]
    NoRequest,
    #[error("request: {0}")]
    Request(serde_json::Error),
}

#[derive(Deserialize)]
struct RawReview {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    request: Option<Value>,
}

/// Decodes an AdmissionReview body.
pub fn decode(body: &[u8]) -> Result<Review, DecodeError> {
    let raw: RawReview = serde_json::from_slice(body)?;
    if raw.api_version != V1 && raw.api_version != V1BETA1 {
        return Err(DecodeError::ApiVersion(raw.api_version));
    }
    if raw.kind != "AdmissionReview" {
        return Err(DecodeError::Kind(raw.kind));
    }
    let req = raw
        .request
        .filter(|r| !r.is_null())
        .ok_or(DecodeError::NoRequest)?;
    let request: AdmissionRequest = serde_json::from_value(req).map_err(DecodeError::Request)?;
    Ok(Review {
        api_version: raw.api_version,
        request,
    })
}

/// A response to send back.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub allowed: bool,
    pub patch: Option<Vec<u8>>,
    pub message: Option<String>,
    pub code: Option<u16>,
    pub warnings: Vec<String>,
}

impl Response {
    pub fn allow() -> Self {
        Response {
            allowed: true,
            ..Default::default()
        }
    }

    pub fn deny(message: impl Into<String>) -> Self {
        Response {
            allowed: false,
            message: Some(message.into()),
            ..Default::default()
        }
    }
}

/// Serialises the AdmissionReview answer, echoing apiVersion and uid.
pub fn encode(api_version: &str, uid: Option<&str>, resp: &Response) -> Vec<u8> {
    use base64::Engine;
    let mut r = serde_json::Map::new();
    if let Some(uid) = uid {
        r.insert("uid".into(), json!(uid));
    }
    r.insert("allowed".into(), json!(resp.allowed));
    if let Some(patch) = &resp.patch {
        r.insert("patchType".into(), json!("JSONPatch"));
        r.insert(
            "patch".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(patch)),
        );
    }
    if resp.message.is_some() || resp.code.is_some() {
        let mut status = serde_json::Map::new();
        if let Some(code) = resp.code {
            status.insert("code".into(), json!(code));
        }
        if let Some(m) = &resp.message {
            status.insert("message".into(), json!(m));
        }
        if !resp.allowed {
            status.insert("status".into(), json!("Failure"));
        }
        r.insert("status".into(), serde_json::Value::Object(status));
    }
    if !resp.warnings.is_empty() {
        r.insert("warnings".into(), json!(resp.warnings));
    }
    let review = json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": r});
    serde_json::to_vec(&review).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_v1_and_v1beta1() {
        for v in [V1, V1BETA1] {
            let body = json!({"apiVersion": v, "kind": "AdmissionReview", "request": {"uid": "u1", "namespace": "ns"}});
            let r = decode(body.to_string().as_bytes()).unwrap();
            assert_eq!((r.api_version.as_str(), r.request.uid.as_str()), (v, "u1"));
        }
    }

    #[test]
    fn rejects_what_is_not_a_review() {
        assert!(matches!(decode(b"{"), Err(DecodeError::Json(_))));
        assert!(matches!(
            decode(br#"{"apiVersion":"v1","kind":"AdmissionReview"}"#),
            Err(DecodeError::ApiVersion(_))
        ));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#),
            Err(DecodeError::Kind(_))
        ));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(DecodeError::NoRequest)
        ));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}"#),
            Err(DecodeError::Request(_))
        ));
    }

    #[test]
    fn encodes_patch_and_echoes() {
        let out = encode(
            V1BETA1,
            Some("u"),
            &Response {
                allowed: true,
                patch: Some(b"[]".to_vec()),
                ..Default::default()
            },
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["apiVersion"], V1BETA1);
        assert_eq!(v["response"]["uid"], "u");
        assert_eq!(v["response"]["patch"], "W10=");
        assert_eq!(v["response"]["patchType"], "JSONPatch");
    }
}
