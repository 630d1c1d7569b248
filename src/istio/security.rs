//! `security.istio.io` (v1, v1beta1) specs: PeerAuthentication, AuthorizationPolicy and
//! RequestAuthentication, field for field as in `istio/api`.

use std::collections::BTreeMap;

use super::decode::{message, proto_enum};
use super::networking::TypeWorkloadSelector;
use super::Duration;

message! {
    /// `istio.type.v1beta1.PolicyTargetReference`
    pub struct PolicyTargetReference {
        group: String,
        kind: String,
        name: String,
        namespace: String,
    }
}

// ---------------------------------------------------------------- PeerAuthentication

proto_enum! {
    /// `PeerAuthentication.MutualTLS.Mode`
    pub enum MtlsMode {
        Unset = 0 => "UNSET",
        Disable = 1 => "DISABLE",
        Permissive = 2 => "PERMISSIVE",
        Strict = 3 => "STRICT",
    }
}

message! {
    /// `PeerAuthentication.MutualTLS`
    pub struct MutualTls {
        mode: MtlsMode,
    }
}

message! {
    /// `PeerAuthentication` spec.
    pub struct PeerAuthentication {
        selector: Option<TypeWorkloadSelector>,
        mtls: Option<MutualTls>,
        port_level_mtls: Option<BTreeMap<u32, MutualTls>>,
    }
}

// ---------------------------------------------------------------- AuthorizationPolicy

proto_enum! {
    /// `AuthorizationPolicy.Action`
    pub enum Action {
        Allow = 0 => "ALLOW",
        Deny = 1 => "DENY",
        Audit = 2 => "AUDIT",
        Custom = 3 => "CUSTOM",
    }
}

message! {
    /// `AuthorizationPolicy.ExtensionProvider`
    pub struct ExtensionProvider {
        name: String,
    }
}

message! {
    /// `AuthorizationPolicy` spec.
    pub struct AuthorizationPolicy {
        selector: Option<TypeWorkloadSelector>,
        target_ref: Option<PolicyTargetReference>,
        target_refs: Vec<PolicyTargetReference>,
        rules: Vec<Rule>,
        action: Action,
        provider: Option<ExtensionProvider>,
    }
}

message! {
    /// `Rule`
    pub struct Rule {
        from: Vec<RuleFrom>,
        to: Vec<RuleTo>,
        when: Vec<Condition>,
    }
}

message! {
    /// `Rule.From`
    pub struct RuleFrom {
        source: Option<Source>,
    }
}

message! {
    /// `Rule.To`
    pub struct RuleTo {
        operation: Option<Operation>,
    }
}

message! {
    /// `Source`
    pub struct Source {
        principals: Vec<String>,
        not_principals: Vec<String>,
        request_principals: Vec<String>,
        not_request_principals: Vec<String>,
        namespaces: Vec<String>,
        not_namespaces: Vec<String>,
        service_accounts: Vec<String>,
        not_service_accounts: Vec<String>,
        ip_blocks: Vec<String>,
        not_ip_blocks: Vec<String>,
        remote_ip_blocks: Vec<String>,
        not_remote_ip_blocks: Vec<String>,
        trust_domains: Vec<String>,
        not_trust_domains: Vec<String>,
    }
}

message! {
    /// `Operation`
    pub struct Operation {
        hosts: Vec<String>,
        not_hosts: Vec<String>,
        ports: Vec<String>,
        not_ports: Vec<String>,
        methods: Vec<String>,
        not_methods: Vec<String>,
        paths: Vec<String>,
        not_paths: Vec<String>,
    }
}

message! {
    /// `Condition`
    pub struct Condition {
        key: String,
        values: Vec<String>,
        not_values: Vec<String>,
    }
}

// ---------------------------------------------------------------- RequestAuthentication

message! {
    /// `RequestAuthentication` spec.
    pub struct RequestAuthentication {
        selector: Option<TypeWorkloadSelector>,
        target_ref: Option<PolicyTargetReference>,
        target_refs: Vec<PolicyTargetReference>,
        jwt_rules: Vec<JwtRule>,
    }
}

message! {
    /// `JWTRule`
    pub struct JwtRule {
        issuer: String,
        audiences: Vec<String>,
        jwks_uri: String,
        jwks: String,
        from_headers: Vec<JwtHeader>,
        from_params: Vec<String>,
        output_payload_to_header: String,
        from_cookies: Vec<String>,
        forward_original_token: bool,
        output_claim_to_headers: Vec<ClaimToHeader>,
        timeout: Option<Duration>,
        space_delimited_claims: Vec<String>,
        presence: JwtPresence,
    }
}

proto_enum! {
    /// Whether the JWT must be present in the request.
    pub enum JwtPresence {
        Optional = 0 => "OPTIONAL",
        Required = 1 => "REQUIRED",
    }
}

message! {
    /// `JWTHeader`
    pub struct JwtHeader {
        name: String,
        prefix: String,
    }
}

message! {
    /// `ClaimToHeader`
    pub struct ClaimToHeader {
        header: String,
        claim: String,
    }
}
