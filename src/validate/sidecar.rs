//! Sidecar rules (spec §2.5).
use super::common::*;
use crate::istio::networking::*;
use crate::istio::object::Metadata;

/// Validates a Sidecar spec.
pub fn validate(_r: &mut Report, _meta: &Metadata, _s: &Sidecar) {}
