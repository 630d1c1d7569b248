//! ServiceEntry and WorkloadEntry rules (spec §2.4).
use super::common::*;
use crate::istio::networking::*;
use crate::istio::object::Metadata;

/// Validates a ServiceEntry spec.
pub fn validate(_r: &mut Report, _meta: &Metadata, _s: &ServiceEntry) {}
/// Validates a WorkloadEntry spec.
pub fn validate_workload_entry(_r: &mut Report, _meta: &Metadata, _s: &WorkloadEntry) {}
