//! `/validate`: Istio config validation for the ValidatingWebhookConfiguration. CREATE and
//! UPDATE are checked (leniently, like istiod: unknown spec fields are ignored); other operations
//! are allowed. dryRun changes nothing: validation has no side effects.

use crate::telemetry::{Metrics, ReasonLabel};
use crate::validate::{self, Mode};

use super::review::{self, Response, Review};

fn failed(metrics: &Metrics, reason: &str) {
    metrics
        .validation_failed
        .get_or_create(&ReasonLabel {
            reason: reason.into(),
        })
        .inc();
}

/// The whole `/validate` exchange on bytes (no I/O): review in, review out.
pub fn handle_validate(metrics: &Metrics, body: &[u8]) -> Vec<u8> {
    let review = match review::decode(body) {
        Ok(r) => r,
        Err(e) => {
            failed(metrics, "decode");
            return review::encode(
                review::V1BETA1,
                None,
                &Response::deny(format!("could not decode AdmissionReview: {e}")),
            );
        }
    };
    let resp = validate_review(metrics, &review);
    review::encode(&review.api_version, Some(&review.request.uid), &resp)
}

fn validate_review(metrics: &Metrics, review: &Review) -> Response {
    let req = &review.request;
    match req.operation.as_deref() {
        Some("CREATE") | Some("UPDATE") => {}
        _ => return Response::allow(),
    }
    let Some(obj) = req.object.as_ref() else {
        failed(metrics, "no_object");
        return Response {
            code: Some(400),
            ..Response::deny("request.object is missing: nothing to validate")
        };
    };
    let namespace = req.namespace.as_deref().unwrap_or("");
    match validate::validate_object_in(obj, Mode::Lenient, namespace) {
        Err(e) => {
            failed(metrics, "unknown_type");
            Response {
                code: Some(400),
                ..Response::deny(format!("{e}: meshd validates only Istio config"))
            }
        }
        Ok(verdict) if !verdict.errors.is_empty() => {
            failed(metrics, "invalid");
            tracing::info!(kind = %req.kind.kind, namespace = ?req.namespace, name = ?req.name, errors = ?verdict.errors, "config rejected");
            Response {
                code: Some(400),
                warnings: verdict.warnings,
                ..Response::deny(format!(
                    "configuration is invalid: {}",
                    verdict.errors.join("; ")
                ))
            }
        }
        Ok(verdict) => {
            metrics.validation_passed.inc();
            Response {
                warnings: verdict.warnings,
                ..Response::allow()
            }
        }
    }
}
