//! Security kinds (spec §2.6): PeerAuthentication, RequestAuthentication (JWT rules, target
//! references) and AuthorizationPolicy (actions, sources, operations, conditions).

use serde_json::Value;

use super::common::*;
use crate::istio::networking::TypeWorkloadSelector;
use crate::istio::object::Metadata;
use crate::istio::security::*;
use crate::istio::Path;

fn check_selector(r: &mut Report, p: &Path<'_>, sel: &Option<TypeWorkloadSelector>) {
    if let Some(s) = sel {
        check_selector_labels(
            r,
            &p.field("matchLabels"),
            &s.match_labels,
            "workload selector specified without labels",
        );
    }
}

fn check_one_of_selector(
    r: &mut Report,
    spec: &Path<'_>,
    sel: &Option<TypeWorkloadSelector>,
    target_ref: &Option<PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    let n = [sel.is_some(), target_ref.is_some(), !target_refs.is_empty()]
        .iter()
        .filter(|x| **x)
        .count();
    if n > 1 {
        r.err(spec, "only one of targetRefs or workloadSelector can be set (selector, targetRef, targetRefs)");
    }
}

fn check_target_ref(r: &mut Report, p: &Path<'_>, t: &PolicyTargetReference) {
    if t.name.is_empty() {
        r.err(&p.field("name"), "targetRef name must be set");
    }
    if !t.namespace.is_empty() {
        r.err(
            &p.field("namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
    let group = if t.group.is_empty() {
        "core"
    } else {
        t.group.as_str()
    };
    let ok = matches!(
        (group, t.kind.as_str()),
        ("core", "Service")
            | ("networking.istio.io", "ServiceEntry")
            | ("gateway.networking.k8s.io", "Gateway" | "GatewayClass")
    );
    if !ok {
        r.err(
            &p.field("kind"),
            format!(
                "targetRef must be to one of [core/Service networking.istio.io/ServiceEntry gateway.networking.k8s.io/Gateway gateway.networking.k8s.io/GatewayClass] but was {}/{}",
                group, t.kind
            ),
        );
    }
}

fn check_target_refs(
    r: &mut Report,
    spec: &Path<'_>,
    target_ref: &Option<PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    if let Some(t) = target_ref {
        check_target_ref(r, &spec.field("targetRef"), t);
    }
    let tp = spec.field("targetRefs");
    for (i, t) in target_refs.iter().enumerate() {
        check_target_ref(r, &tp.index(i), t);
    }
}

// ---------------------------------------------------------------- PeerAuthentication

/// Validates a PeerAuthentication spec.
pub fn validate_peer_authentication(r: &mut Report, _meta: &Metadata, pa: &PeerAuthentication) {
    let spec = Path::Root("spec");
    check_selector(r, &spec.field("selector"), &pa.selector);
    let empty_selector = pa
        .selector
        .as_ref()
        .is_none_or(|s| s.match_labels.is_empty());
    let pp = spec.field("portLevelMtls");
    if let Some(pl) = &pa.port_level_mtls {
        if empty_selector && !pl.is_empty() {
            r.err(
                &pp,
                "mesh/namespace peer authentication cannot have port level mTLS",
            );
        }
        if pl.is_empty() {
            r.err(
                &pp,
                "port level mTLS, if defined, must have at least one element",
            );
        }
        for port in pl.keys() {
            let ps = port.to_string();
            let kp = pp.key(&ps);
            if validate_port(*port).is_err() {
                r.err(&kp, "port must be in range 1..65535");
            }
        }
    }
}

// ---------------------------------------------------------------- RequestAuthentication

/// Validates a RequestAuthentication spec.
pub fn validate_request_authentication(
    r: &mut Report,
    _meta: &Metadata,
    ra: &RequestAuthentication,
) {
    let spec = Path::Root("spec");
    check_one_of_selector(r, &spec, &ra.selector, &ra.target_ref, &ra.target_refs);
    check_selector(r, &spec.field("selector"), &ra.selector);
    check_target_refs(r, &spec, &ra.target_ref, &ra.target_refs);
    let jp = spec.field("jwtRules");
    for (i, rule) in ra.jwt_rules.iter().enumerate() {
        validate_jwt_rule(r, rule, &jp.index(i));
    }
}

fn validate_jwt_rule(r: &mut Report, rule: &JwtRule, p: &Path<'_>) {
    let ap = p.field("audiences");
    for (i, a) in rule.audiences.iter().enumerate() {
        if a.is_empty() {
            r.err(&ap.index(i), "audience must be non-empty string");
        }
    }
    if rule.issuer.is_empty() && rule.jwks_uri.is_empty() {
        r.err(
            &p.field("issuer"),
            "issuer or jwksUri must be non-empty string",
        );
    }
    if !rule.jwks_uri.is_empty() && !rule.jwks.is_empty() {
        r.err(&p.field("jwks"), "only one of jwks or jwksUri can be set");
    }
    if !rule.jwks_uri.is_empty() {
        if let Err(e) = validate_jwks_uri(&rule.jwks_uri) {
            r.err(&p.field("jwksUri"), e);
        }
    }
    if !rule.jwks.is_empty() {
        match parse_jwks(&rule.jwks) {
            Err(e) => r.err(&p.field("jwks"), format!("jwks parse error: {e}")),
            Ok(private) => {
                for i in private {
                    r.warn(
                        &p.field("jwks"),
                        format!("jwks key at index {i} contains private key material; only public keys are used for verification"),
                    );
                }
            }
        }
    }
    let hp = p.field("fromHeaders");
    for (i, h) in rule.from_headers.iter().enumerate() {
        if h.name.is_empty() {
            r.err(
                &hp.index(i).field("name"),
                "location header name must be non-empty string",
            );
        }
    }
    let qp = p.field("fromParams");
    for (i, q) in rule.from_params.iter().enumerate() {
        if q.is_empty() {
            r.err(&qp.index(i), "location query must be non-empty string");
        }
    }
    let cp = p.field("fromCookies");
    for (i, c) in rule.from_cookies.iter().enumerate() {
        if c.is_empty() {
            r.err(&cp.index(i), "cookie name must be non-empty string");
        }
    }
    let op = p.field("outputClaimToHeaders");
    for (i, c) in rule.output_claim_to_headers.iter().enumerate() {
        let ip = op.index(i);
        if c.claim.is_empty() || c.header.is_empty() {
            r.err(
                &ip,
                "outputClaimToHeaders header and claim value must be non-empty string",
            );
            continue;
        }
        let valid = c
            .header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            r.err(
                &ip.field("header"),
                format!("header name {} is not a valid header name", c.header),
            );
        }
    }
    check_duration(r, &p.field("timeout"), &rule.timeout);
    let sp = p.field("spaceDelimitedClaims");
    for (i, c) in rule.space_delimited_claims.iter().enumerate() {
        if c.is_empty() {
            r.err(
                &sp.index(i),
                "space delimited claim must be non-empty string",
            );
        }
    }
}

fn validate_jwks_uri(uri: &str) -> Result<(), String> {
    if uri.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("parse {uri:?}: invalid character in URL"));
    }
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or("");
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("URI scheme {scheme:?} is not supported"));
    }
    Ok(())
}

/// Parses an inline JWK set (or a single JWK); returns the indexes of keys that hold private
/// key material (RSA/EC/OKP `d`, or any symmetric `oct` key).
fn parse_jwks(s: &str) -> Result<Vec<usize>, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    let keys: Vec<&Value> = match v.get("keys") {
        Some(Value::Array(k)) => k.iter().collect(),
        Some(_) => return Err("\"keys\" must be a list".to_string()),
        None => vec![&v],
    };
    let mut private = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let Some(obj) = k.as_object() else {
            return Err("a key must be a JSON object".to_string());
        };
        let kty = match obj.get("kty").and_then(Value::as_str) {
            Some(k @ ("RSA" | "EC" | "OKP" | "oct")) => k,
            Some(other) => return Err(format!("unsupported key type {other:?}")),
            None => return Err("key has no \"kty\"".to_string()),
        };
        let required: &[&str] = match kty {
            "RSA" => &["n", "e"],
            "EC" => &["crv", "x", "y"],
            "OKP" => &["crv", "x"],
            _ => &["k"],
        };
        if let Some(missing) = required.iter().find(|f| !obj.contains_key(**f)) {
            return Err(format!(
                "key {i} ({kty}): required field {missing:?} is missing"
            ));
        }
        if kty == "oct" || obj.contains_key("d") {
            private.push(i);
        }
    }
    Ok(private)
}

// ---------------------------------------------------------------- AuthorizationPolicy

/// Validates an AuthorizationPolicy spec. Every error names the policy as Istio does
/// (`invalid policy name.ns: ...`).
pub fn validate_authorization_policy(r: &mut Report, meta: &Metadata, ap: &AuthorizationPolicy) {
    let spec = Path::Root("spec");
    r.error_prefix = Some(format!("invalid policy {}.{}: ", meta.name, meta.namespace));
    check_one_of_selector(r, &spec, &ap.selector, &ap.target_ref, &ap.target_refs);
    check_selector(r, &spec.field("selector"), &ap.selector);
    check_target_refs(r, &spec, &ap.target_ref, &ap.target_refs);

    let rp = spec.field("rules");
    if ap.action == Action::Custom {
        if ap.rules.is_empty() {
            r.err(&rp, "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request");
        } else if ap.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
            r.err(
                &spec.field("provider").field("name"),
                "`provider.name` must not be empty",
            );
        }
        for (i, rule) in ap.rules.iter().enumerate() {
            check_custom_rule(r, rule, &rp.index(i));
        }
    }
    if ap.provider.is_some() && ap.action != Action::Custom {
        r.err(
            &spec.field("provider"),
            format!(
                "`provider` must not be with non CUSTOM action, found {}",
                ap.action.name()
            ),
        );
    }
    if ap.action == Action::Deny && ap.rules.is_empty() {
        r.err(&rp, "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request");
    }
    for (i, rule) in ap.rules.iter().enumerate() {
        validate_rule(r, ap.action, rule, i, &rp.index(i));
    }
    r.error_prefix = None;
}

fn check_custom_rule(r: &mut Report, rule: &Rule, p: &Path<'_>) {
    let fp = p.field("from");
    for (i, from) in rule.from.iter().enumerate() {
        let Some(s) = &from.source else { continue };
        let sp = fp.index(i);
        let sp = sp.field("source");
        let fields: [(&str, &str, &Vec<String>); 10] = [
            ("namespaces", "From.Namespaces", &s.namespaces),
            ("notNamespaces", "From.NotNamespaces", &s.not_namespaces),
            (
                "serviceAccounts",
                "From.ServiceAccounts",
                &s.service_accounts,
            ),
            (
                "notServiceAccounts",
                "From.NotServiceAccounts",
                &s.not_service_accounts,
            ),
            ("trustDomains", "From.TrustDomains", &s.trust_domains),
            (
                "notTrustDomains",
                "From.NotTrustDomains",
                &s.not_trust_domains,
            ),
            ("principals", "From.Principals", &s.principals),
            ("notPrincipals", "From.NotPrincipals", &s.not_principals),
            (
                "requestPrincipals",
                "From.RequestPrincipals",
                &s.request_principals,
            ),
            (
                "notRequestPrincipals",
                "From.NotRequestPrincipals",
                &s.not_request_principals,
            ),
        ];
        for (field, name, list) in fields {
            if !list.is_empty() {
                r.err(
                    &sp.field(field),
                    format!("{name} is currently not supported with CUSTOM action"),
                );
            }
        }
    }
    let wp = p.field("when");
    for (i, c) in rule.when.iter().enumerate() {
        let k = c.key.as_str();
        if matches!(
            k,
            "source.namespace"
                | "source.serviceAccount"
                | "source.trustDomain"
                | "source.principal"
        ) || k.starts_with("request.auth.")
        {
            r.err(
                &wp.index(i).field("key"),
                format!("{k} is currently not supported with CUSTOM action"),
            );
        }
    }
}

/// Istio's `security.CheckEmptyValues`.
fn check_empty_values(r: &mut Report, p: &Path<'_>, name: &str, vals: &[String]) {
    if vals.iter().any(String::is_empty) {
        r.err(p, format!("empty value not allowed, found in {name}"));
    }
}

/// Istio's `security.ValidateIPs`.
fn check_ips(r: &mut Report, p: &Path<'_>, vals: &[String]) {
    for (i, v) in vals.iter().enumerate() {
        if v.contains('/') {
            if v.parse::<ipnet::IpNet>().is_err() {
                r.err(&p.index(i), format!("bad CIDR range ({v})"));
            }
        } else if !is_ip(v) {
            r.err(&p.index(i), format!("bad IP address ({v})"));
        }
    }
}

/// Istio's `security.ValidatePorts` (0..65535).
fn check_ports(r: &mut Report, p: &Path<'_>, vals: &[String]) {
    for (i, v) in vals.iter().enumerate() {
        if !v.parse::<u32>().is_ok_and(|n| n <= 65535) {
            r.err(&p.index(i), format!("bad port ({v})"));
        }
    }
}

/// Istio's `security.CheckServiceAccount`.
fn check_service_accounts(name: &str, vals: &[String]) -> Result<(), String> {
    if vals.len() > 16 {
        return Err("may not have more than 16 values".to_string());
    }
    for v in vals {
        if v.is_empty() {
            return Err(format!("empty value not allowed, found in {name}"));
        }
        if v.contains('*') {
            return Err(format!("wildcard not allowed, found in {name}"));
        }
        if v.matches('/').count() > 1 {
            return Err(format!("expected format 'serviceAccount' or 'namespace/serviceAccount', found {v:?} in {name}"));
        }
        if v.len() > 320 {
            return Err(format!(
                "value cannot exceed 320 characters, found {v:?} in {name}"
            ));
        }
        if let Some((ns, sa)) = v.split_once('/') {
            if ns.is_empty() {
                return Err(format!("expected format 'serviceAccount' or 'namespace/serviceAccount', found empty namespace {v:?} in {name}"));
            }
            if sa.is_empty() {
                return Err(format!("expected format 'serviceAccount' or 'namespace/serviceAccount', found empty serviceAccount {v:?} in {name}"));
            }
        }
    }
    Ok(())
}

/// Istio's `security.CheckWildcardValues`.
fn check_wildcard_values(name: &str, vals: &[String]) -> Result<(), String> {
    for v in vals {
        if v.is_empty() {
            return Err(format!("empty value not allowed, found in {name}"));
        }
        let n = v.matches('*').count();
        if n > 1 {
            return Err(format!(
                "at most one wildcard is allowed, found in {name}: {v:?}"
            ));
        }
        if n == 1 && v != "*" && !v.starts_with('*') && !v.ends_with('*') {
            return Err(format!(
                "wildcard is only allowed at the start or end, found in {name}: {v:?}"
            ));
        }
    }
    Ok(())
}

/// Istio's `security.CheckTrustDomainValues`.
fn check_trust_domains(name: &str, vals: &[String]) -> Result<(), String> {
    check_wildcard_values(name, vals)?;
    if let Some(v) = vals.iter().find(|v| v.contains('/')) {
        return Err(format!(
            "trust domain must not contain '/', found in {name}: {v:?}"
        ));
    }
    Ok(())
}

/// Istio's `security.CheckValidPathTemplate`.
fn check_path_templates(name: &str, paths: &[String]) -> Result<(), String> {
    for path in paths {
        let has_template = path.contains("{*}") || path.contains("{**}");
        let mut any_seen = false;
        let trimmed = path.trim_matches('/');
        for glob in trimmed.split('/') {
            if glob == "{*}" && !any_seen {
                continue;
            }
            if glob == "{**}" && !any_seen {
                any_seen = true;
                continue;
            }
            if glob == "{*}" || glob == "{**}" {
                return Err(format!("invalid or unsupported path {trimmed}, found in {name}. {{**}} is not the last operator"));
            }
            if glob.contains(['{', '}']) {
                return Err(format!("invalid or unsupported path {trimmed}, found in {name}. Contains '{{' or '}}' beyond a supported path template"));
            }
            let literal = !glob.is_empty()
                && glob
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&c));
            if has_template && !literal {
                return Err(format!("invalid or unsupported path {trimmed}, found in {name}. Contains segment {glob} with invalid string literal"));
            }
        }
    }
    Ok(())
}

fn validate_rule(r: &mut Report, action: Action, rule: &Rule, n: usize, p: &Path<'_>) {
    let fp = p.field("from");
    let (mut from_exists, mut to_exists, mut tcp_in_from, mut tcp_in_to) =
        (false, false, false, false);
    for (i, from) in rule.from.iter().enumerate() {
        let ip = fp.index(i);
        let Some(s) = &from.source else {
            r.err(
                &ip.field("source"),
                format!("`from.source` must not be nil, found at rule {n}"),
            );
            continue;
        };
        from_exists = true;
        let sp = ip.field("source");
        let has_identity = !s.principals.is_empty()
            || !s.not_principals.is_empty()
            || !s.namespaces.is_empty()
            || !s.not_namespaces.is_empty();
        let has_sa = !s.service_accounts.is_empty() || !s.not_service_accounts.is_empty();
        if has_identity && has_sa {
            r.err(
                &sp.field("serviceAccounts"),
                format!(
                    "cannot set serviceAccounts with namespaces or principals, found at rule {n}"
                ),
            );
        }
        let all: [&Vec<String>; 14] = [
            &s.principals,
            &s.not_principals,
            &s.request_principals,
            &s.not_request_principals,
            &s.namespaces,
            &s.not_namespaces,
            &s.service_accounts,
            &s.not_service_accounts,
            &s.ip_blocks,
            &s.not_ip_blocks,
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
            &s.trust_domains,
            &s.not_trust_domains,
        ];
        if all.iter().all(|l| l.is_empty()) {
            r.err(
                &sp,
                format!("`from.source` must not be empty, found at rule {n}"),
            );
        }
        check_ips(r, &sp.field("ipBlocks"), &s.ip_blocks);
        check_ips(r, &sp.field("notIpBlocks"), &s.not_ip_blocks);
        check_ips(r, &sp.field("remoteIpBlocks"), &s.remote_ip_blocks);
        check_ips(r, &sp.field("notRemoteIpBlocks"), &s.not_remote_ip_blocks);
        for (field, name, list) in [
            ("principals", "Principals", &s.principals),
            (
                "requestPrincipals",
                "RequestPrincipals",
                &s.request_principals,
            ),
            ("namespaces", "Namespaces", &s.namespaces),
            ("ipBlocks", "IpBlocks", &s.ip_blocks),
            ("remoteIpBlocks", "RemoteIpBlocks", &s.remote_ip_blocks),
            ("notPrincipals", "NotPrincipals", &s.not_principals),
            (
                "notRequestPrincipals",
                "NotRequestPrincipals",
                &s.not_request_principals,
            ),
            ("notNamespaces", "NotNamespaces", &s.not_namespaces),
            ("notIpBlocks", "NotIpBlocks", &s.not_ip_blocks),
            (
                "notRemoteIpBlocks",
                "NotRemoteIpBlocks",
                &s.not_remote_ip_blocks,
            ),
        ] {
            check_empty_values(r, &sp.field(field), name, list);
        }
        for (field, name, list) in [
            ("serviceAccounts", "ServiceAccounts", &s.service_accounts),
            (
                "notServiceAccounts",
                "NotServiceAccounts",
                &s.not_service_accounts,
            ),
        ] {
            if let Err(e) = check_service_accounts(name, list) {
                r.err(&sp.field(field), e);
            }
        }
        for (field, name, list) in [
            ("trustDomains", "TrustDomains", &s.trust_domains),
            ("notTrustDomains", "NotTrustDomains", &s.not_trust_domains),
        ] {
            if let Err(e) = check_trust_domains(name, list) {
                r.err(&sp.field(field), e);
            }
        }
        if !(s.principals.is_empty()
            && s.not_principals.is_empty()
            && s.ip_blocks.is_empty()
            && s.not_ip_blocks.is_empty()
            && s.namespaces.is_empty()
            && s.not_namespaces.is_empty()
            && s.remote_ip_blocks.is_empty()
            && s.not_remote_ip_blocks.is_empty()
            && s.service_accounts.is_empty()
            && s.not_service_accounts.is_empty())
        {
            tcp_in_from = true;
        }
    }
    let tp = p.field("to");
    for (i, to) in rule.to.iter().enumerate() {
        let ip = tp.index(i);
        let Some(o) = &to.operation else {
            r.err(
                &ip.field("operation"),
                format!("`to.operation` must not be nil, found at rule {n}"),
            );
            continue;
        };
        to_exists = true;
        let op = ip.field("operation");
        let lists: [(&str, &str, &Vec<String>); 8] = [
            ("ports", "Ports", &o.ports),
            ("methods", "Methods", &o.methods),
            ("paths", "Paths", &o.paths),
            ("hosts", "Hosts", &o.hosts),
            ("notPorts", "NotPorts", &o.not_ports),
            ("notMethods", "NotMethods", &o.not_methods),
            ("notPaths", "NotPaths", &o.not_paths),
            ("notHosts", "NotHosts", &o.not_hosts),
        ];
        if lists.iter().all(|(_, _, l)| l.is_empty()) {
            r.err(
                &op,
                format!("`to.operation` must not be empty, found at rule {n}"),
            );
        }
        check_ports(r, &op.field("ports"), &o.ports);
        check_ports(r, &op.field("notPorts"), &o.not_ports);
        for (field, name, list) in lists {
            check_empty_values(r, &op.field(field), name, list);
        }
        for (field, name, list) in [
            ("paths", "Paths", &o.paths),
            ("notPaths", "NotPaths", &o.not_paths),
        ] {
            if let Err(e) = check_path_templates(name, list) {
                r.err(&op.field(field), e);
            }
        }
        if !o.ports.is_empty() || !o.not_ports.is_empty() {
            tcp_in_to = true;
        }
    }
    let wp = p.field("when");
    for (i, c) in rule.when.iter().enumerate() {
        let ip = wp.index(i);
        let key = c.key.as_str();
        if key.is_empty() {
            r.err(&ip.field("key"), "`key` must not be empty");
            continue;
        }
        if c.values.is_empty() && c.not_values.is_empty() {
            r.err(
                &ip,
                format!("at least one of `values` or `notValues` must be set for key {key}"),
            );
            continue;
        }
        for (field, what, vals) in [
            ("values", "value", &c.values),
            ("notValues", "notValue", &c.not_values),
        ] {
            if let Err(e) = validate_attribute(key, vals) {
                r.err(
                    &ip.field(
                        if e.starts_with("unknown")
                            || e.starts_with("bad key")
                            || e.contains("attribute")
                        {
                            "key"
                        } else {
                            field
                        },
                    ),
                    format!("invalid `{what}` for `key` {key}: {e}"),
                );
            }
        }
    }
    if action == Action::Deny
        && ((from_exists && !to_exists && !tcp_in_from) || (to_exists && !tcp_in_to))
    {
        r.warn(
            p,
            "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
        );
    }
}

/// Istio's `security.ValidateAttribute` for `when` conditions.
fn validate_attribute(key: &str, values: &[String]) -> Result<(), String> {
    if values.iter().any(String::is_empty) {
        return Err(format!("empty value not allowed, found in {key}"));
    }
    let map_key = |k: &str| -> Result<(), String> {
        match k.find('[') {
            Some(open) if k.ends_with(']') && open > 0 && open + 2 < k.len() => Ok(()),
            _ => Err(format!("bad key ({k}): should have format a[b]")),
        }
    };
    let ips = |vals: &[String]| -> Result<(), String> {
        for v in vals {
            let ok = if v.contains('/') {
                v.parse::<ipnet::IpNet>().is_ok()
            } else {
                is_ip(v)
            };
            if !ok {
                return Err(if v.contains('/') {
                    format!("bad CIDR range ({v})")
                } else {
                    format!("bad IP address ({v})")
                });
            }
        }
        Ok(())
    };
    if key.starts_with("request.headers")
        || key.starts_with("request.auth.claims")
        || key.starts_with("experimental.envoy.filters.")
    {
        return map_key(key);
    }
    match key {
        "source.ip" | "remote.ip" | "destination.ip" => ips(values),
        "source.serviceAccount" => check_service_accounts(key, values),
        "source.trustDomain" => check_wildcard_values(key, values),
        "destination.port" => {
            match values
                .iter()
                .find(|v| !v.parse::<u32>().is_ok_and(|n| n <= 65535))
            {
                Some(v) => Err(format!("bad port ({v})")),
                None => Ok(()),
            }
        }
        "source.namespace"
        | "source.principal"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(()),
        "destination.namespace" => Err(format!(
            "attribute {key} is replaced by the metadata.namespace"
        )),
        "destination.name" | "destination.user" => Err(format!(
            "deprecated attribute {key}: only supported in v1alpha1"
        )),
        k if k.starts_with("destination.labels") => Err(format!(
            "attribute {key} is replaced by the workload selector"
        )),
        _ => Err(format!("unknown attribute: {key}")),
    }
}
#[cfg(test)]
mod tests {
    use super::super::testutil::{run_table, Want::*};
    use serde_json::json;

    #[test]
    fn peer_authentication() {
        let cases = vec![
            ("mesh strict", json!({"mtls": {"mode": "STRICT"}}), Valid),
            (
                "port level",
                json!({"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}}),
                Valid,
            ),
            (
                "port level no selector",
                json!({"portLevelMtls": {"8080": {"mode": "DISABLE"}}}),
                Error("mesh/namespace peer authentication cannot have port level mTLS"),
            ),
            (
                "port level empty",
                json!({"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {}}),
                Error("must have at least one element"),
            ),
            (
                "port zero",
                json!({"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"0": {"mode": "DISABLE"}}}),
                Error("port must be in range 1..65535"),
            ),
            (
                "bad key",
                json!({"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"http": {"mode": "DISABLE"}}}),
                Error("invalid map key"),
            ),
            (
                "empty selector",
                json!({"selector": {}, "mtls": {"mode": "STRICT"}}),
                Warning("workload selector specified without labels"),
            ),
            (
                "bad mode",
                json!({"mtls": {"mode": "strict"}}),
                Error("unknown value \"strict\""),
            ),
        ];
        run_table("security.istio.io/v1", "PeerAuthentication", &cases);
    }

    #[test]
    fn request_authentication() {
        let rule = |r: serde_json::Value| json!({"selector": {"matchLabels": {"app": "a"}}, "jwtRules": [r]});
        let cases = vec![
            (
                "ok",
                rule(
                    json!({"issuer": "https://a", "jwksUri": "https://a/jwks", "audiences": ["x"]}),
                ),
                Valid,
            ),
            (
                "target ref",
                json!({"targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "w"}, "jwtRules": [{"issuer": "a"}]}),
                Valid,
            ),
            (
                "target ref kind",
                json!({"targetRef": {"group": "apps", "kind": "Deployment", "name": "w"}}),
                Error("targetRef must be to one of"),
            ),
            (
                "selector and target",
                json!({"selector": {"matchLabels": {"a": "b"}}, "targetRef": {"kind": "Service", "name": "s"}}),
                Error("only one of targetRefs or workloadSelector"),
            ),
            (
                "no issuer",
                rule(json!({"audiences": ["x"]})),
                Error("issuer or jwksUri must be non-empty string"),
            ),
            (
                "bad uri",
                rule(json!({"issuer": "a", "jwksUri": "ftp://x"})),
                Error("jwksUri"),
            ),
            (
                "jwks garbage",
                rule(json!({"issuer": "a", "jwks": "not-json"})),
                Error("jwks parse error"),
            ),
            (
                "jwks ok",
                rule(
                    json!({"issuer": "a", "jwks": "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"x\",\"e\":\"AQAB\"}]}"}),
                ),
                Valid,
            ),
            (
                "jwks private",
                rule(
                    json!({"issuer": "a", "jwks": "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"x\",\"e\":\"AQAB\",\"d\":\"y\"}]}"}),
                ),
                Warning("private key material"),
            ),
            (
                "claim header",
                rule(
                    json!({"issuer": "a", "outputClaimToHeaders": [{"header": "x.tenant", "claim": "t"}]}),
                ),
                Error("outputClaimToHeaders[0].header"),
            ),
            (
                "empty audience",
                rule(json!({"issuer": "a", "audiences": [""]})),
                Error("audience must be non-empty string"),
            ),
            (
                "from header",
                rule(json!({"issuer": "a", "fromHeaders": [{"prefix": "Bearer "}]})),
                Error("location header name must be non-empty"),
            ),
            (
                "timeout",
                rule(json!({"issuer": "a", "timeout": "0s"})),
                Error("duration must be greater than 1ms"),
            ),
            (
                "unknown field",
                rule(json!({"issuer": "a", "jwksUrl": "https://x"})),
                Error("spec.jwtRules[0].jwksUrl: unknown field"),
            ),
        ];
        run_table("security.istio.io/v1", "RequestAuthentication", &cases);
    }

    #[test]
    fn authorization_policy() {
        let cases = vec![
            ("allow nothing", json!({}), Valid),
            (
                "allow",
                json!({"selector": {"matchLabels": {"app": "r"}}, "action": "ALLOW", "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"]}}], "to": [{"operation": {"methods": ["GET"], "paths": ["/r/*"]}}]}]}),
                Valid,
            ),
            (
                "deny no rules",
                json!({"action": "DENY"}),
                Error("DENY action without `rules` is meaningless"),
            ),
            (
                "deny http only",
                json!({"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]}),
                Warning("will deny all traffic to TCP ports"),
            ),
            (
                "deny with port",
                json!({"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"], "ports": ["8080"]}}]}]}),
                Valid,
            ),
            (
                "deny tcp only",
                json!({"action": "DENY", "rules": [{"from": [{"source": {"ipBlocks": ["1.2.3.0/24"]}}]}]}),
                Valid,
            ),
            (
                "bad ip",
                json!({"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.300"]}}]}]}),
                Error("spec.rules[0].from[0].source.ipBlocks[0]"),
            ),
            (
                "bad port",
                json!({"rules": [{"to": [{"operation": {"ports": ["http"]}}]}]}),
                Error("bad port (http)"),
            ),
            (
                "empty source",
                json!({"rules": [{"from": [{"source": {}}]}]}),
                Error("`from.source` must not be empty"),
            ),
            (
                "empty operation",
                json!({"rules": [{"to": [{"operation": {}}]}]}),
                Error("`to.operation` must not be empty"),
            ),
            (
                "unknown when key",
                json!({"rules": [{"when": [{"key": "request.method", "values": ["GET"]}]}]}),
                Error("unknown attribute: request.method"),
            ),
            (
                "when no values",
                json!({"rules": [{"when": [{"key": "source.ip"}]}]}),
                Error("at least one of `values` or `notValues`"),
            ),
            (
                "when ip",
                json!({"rules": [{"when": [{"key": "source.ip", "values": ["x"]}]}]}),
                Error("bad IP address (x)"),
            ),
            (
                "when header",
                json!({"rules": [{"when": [{"key": "request.headers[x-a]", "values": ["v"]}]}]}),
                Valid,
            ),
            (
                "custom no provider",
                json!({"action": "CUSTOM", "rules": [{}]}),
                Error("`provider.name` must not be empty"),
            ),
            (
                "custom principals",
                json!({"action": "CUSTOM", "provider": {"name": "ext"}, "rules": [{"from": [{"source": {"principals": ["a"]}}]}]}),
                Error("is currently not supported with CUSTOM action"),
            ),
            (
                "provider non custom",
                json!({"action": "ALLOW", "provider": {"name": "ext"}, "rules": [{}]}),
                Error("`provider` must not be with non CUSTOM action"),
            ),
            (
                "sa and ns",
                json!({"rules": [{"from": [{"source": {"serviceAccounts": ["a/b"], "namespaces": ["a"]}}]}]}),
                Error("cannot set serviceAccounts with namespaces or principals"),
            ),
            (
                "path template",
                json!({"rules": [{"to": [{"operation": {"paths": ["/a/{**}/{*}"]}}]}]}),
                Error("is not the last operator"),
            ),
            (
                "prefix",
                json!({"action": "DENY"}),
                Error("invalid policy obj.ns:"),
            ),
        ];
        run_table("security.istio.io/v1", "AuthorizationPolicy", &cases);
    }

    #[test]
    fn dry_run_annotation() {
        let obj = |v: &str, action: &str| {
            json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                "metadata": {"name": "p", "namespace": "ns", "annotations": {"istio.io/dry-run": v}},
                "spec": {"action": action, "rules": [{}]}})
        };
        let run = |o| crate::validate::validate_object(&o, crate::validate::Mode::Strict).unwrap();
        assert!(run(obj("true", "ALLOW")).errors.is_empty());
        assert!(run(obj("maybe", "ALLOW")).errors[0].contains("dry-run with invalid value"));
        assert!(run(obj("true", "AUDIT")).errors[0].contains("only supports action ALLOW/DENY"));
    }
}
