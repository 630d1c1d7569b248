//! Security kinds (spec §2.6).
use super::common::*;
use crate::istio::object::Metadata;
use crate::istio::security::*;

/// Validates a PeerAuthentication spec.
pub fn validate_peer_authentication(_r: &mut Report, _meta: &Metadata, _s: &PeerAuthentication) {}
/// Validates an AuthorizationPolicy spec.
pub fn validate_authorization_policy(_r: &mut Report, _meta: &Metadata, _s: &AuthorizationPolicy) {}
/// Validates a RequestAuthentication spec.
pub fn validate_request_authentication(_r: &mut Report, _meta: &Metadata, _s: &RequestAuthentication) {}
