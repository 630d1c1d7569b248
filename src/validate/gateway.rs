//! Gateway rules (spec §2.3).
use super::common::*;
use crate::istio::networking::*;
use crate::istio::object::Metadata;

/// Validates a Gateway spec.
pub fn validate(_r: &mut Report, _meta: &Metadata, _s: &Gateway) {}
