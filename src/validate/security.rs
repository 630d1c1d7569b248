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
            "targetRef namespace must not be set; cross namespace references are not supported",
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
        for (port, m) in pl {
            let ps = port.to_string();
            let kp = pp.key(&ps);
            if validate_port(*port).is_err() {
                r.err(&kp, "port must be in range 1..65535");
            }
            if let MtlsMode::Unknown(n) = m.mode {
                r.err(&kp.field("mode"), format!("unknown mTLS mode {n}"));
            }
        }
    }
    if let Some(m) = &pa.mtls {
        if let MtlsMode::Unknown(n) = m.mode {
            r.err(
                &spec.field("mtls").field("mode"),
                format!("unknown mTLS mode {n}"),
            );
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
    if rule.issuer.is_empty() && rule.jwks_uri.is_empty() {
        r.err(
            &p.field("issuer"),
            "issuer or jwksUri must be non-empty string",
        );
    }
    let ap = p.field("audiences");
    for (i, a) in rule.audiences.iter().enumerate() {
        if a.is_empty() {
            r.err(&ap.index(i), "audience must be non-empty string");
        }
    }
    if !rule.jwks_uri.is_empty() {
        if let Err(e) = validate_jwks_uri(&rule.jwks_uri) {
            r.err(&p.field("jwksUri"), e);
        }
    }
    if !rule.jwks.is_empty() {
        match parse_jwks(&rule.jwks) {
            Err(e) => r.err(&p.field("jwks"), format!("jwks parse error: {e}")),
            Ok(true) => r.warn(
                &p.field("jwks"),
                "jwks contains private key material; only public keys should be configured",
            ),
            Ok(false) => {}
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
                format!(
                    "outputClaimToHeaders header {:?} is invalid: only letters, digits, '-' and '_' are allowed",
                    c.header
                ),
            );
        }
    }
    check_duration(r, &p.field("timeout"), &rule.timeout);
}

fn validate_jwks_uri(uri: &str) -> Result<(), String> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
        .ok_or_else(|| format!("jwksUri {uri:?} must be an http or https URL"))?;
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("");
    if host.is_empty() || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("jwksUri {uri:?} is not a valid URL"));
    }
    Ok(())
}

/// Parses an inline JWK set; returns whether it holds private key material.
fn parse_jwks(s: &str) -> Result<bool, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    let keys: Vec<&Value> = match v.get("keys") {
        Some(Value::Array(k)) => k.iter().collect(),
        Some(_) => return Err("\"keys\" must be a list".to_string()),
        None => vec![&v],
    };
    let mut private = false;
    for k in keys {
        let Some(obj) = k.as_object() else {
            return Err("a key must be a JSON object".to_string());
        };
        match obj.get("kty").and_then(Value::as_str) {
            Some("RSA" | "EC" | "oct" | "OKP") => {}
            Some(other) => return Err(format!("unsupported key type {other:?}")),
            None => return Err("key has no \"kty\"".to_string()),
        }
        if obj.contains_key("d") || obj.contains_key("k") || obj.contains_key("p") {
            private = true;
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
    match ap.action {
        Action::Custom => {
            if ap.rules.is_empty() {
                r.err(&rp, "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request");
            } else if ap.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
                r.err(
                    &spec.field("provider").field("name"),
                    "`provider.name` must not be empty",
                );
            }
        }
        Action::Deny if ap.rules.is_empty() => {
            r.err(&rp, "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request");
        }
        Action::Unknown(n) => r.err(&spec.field("action"), format!("unknown action {n}")),
        _ => {}
    }
    if ap.action != Action::Custom && ap.provider.is_some() {
        r.err(
            &spec.field("provider"),
            format!(
                "`provider` must not be with non CUSTOM action, found {}",
                ap.action.name()
            ),
        );
    }

    for (i, rule) in ap.rules.iter().enumerate() {
        let ip = rp.index(i);
        validate_rule(r, ap.action, rule, i, &ip);
    }
    r.error_prefix = None;
}

fn check_values(r: &mut Report, p: &Path<'_>, field: &str, vals: &[String], rule: usize) {
    let fp = p.field(field);
    for (i, v) in vals.iter().enumerate() {
        if v.is_empty() {
            r.err(
                &fp.index(i),
                format!("empty value is not allowed, found at rule {rule}"),
            );
        }
    }
}

fn check_ips(r: &mut Report, p: &Path<'_>, field: &str, vals: &[String]) {
    let fp = p.field(field);
    for (i, v) in vals.iter().enumerate() {
        if let Err(e) = validate_ip_or_cidr(v) {
            r.err(
                &fp.index(i),
                format!("invalid IP address or CIDR range: {e}"),
            );
        }
    }
}

fn check_ports(r: &mut Report, p: &Path<'_>, field: &str, vals: &[String]) {
    let fp = p.field(field);
    for (i, v) in vals.iter().enumerate() {
        if !v.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n)) {
            r.err(&fp.index(i), format!("invalid port: {v:?}"));
        }
    }
}

fn check_paths(r: &mut Report, p: &Path<'_>, field: &str, vals: &[String]) {
    let fp = p.field(field);
    for (i, v) in vals.iter().enumerate() {
        if !v.contains('{') && !v.contains('}') {
            continue;
        }
        let segs: Vec<&str> = v.split('/').collect();
        let n = segs.len();
        let bad = segs.iter().enumerate().any(|(j, s)| {
            (s.contains('{') || s.contains('}')) && !(*s == "{*}" || (*s == "{**}" && j == n - 1))
        });
        if bad {
            r.err(
                &fp.index(i),
                format!("invalid path template {v:?}: only whole-segment {{*}} and a final {{**}} are supported"),
            );
        }
    }
}

fn validate_rule(r: &mut Report, action: Action, rule: &Rule, n: usize, p: &Path<'_>) {
    let fp = p.field("from");
    let mut http_attr = false;
    let mut has_port = false;
    for (i, from) in rule.from.iter().enumerate() {
        let ip = fp.index(i);
        let Some(s) = &from.source else {
            r.err(
                &ip.field("source"),
                format!("`from.source` must not be nil, found at rule {n}"),
            );
            continue;
        };
        let sp = ip.field("source");
        let lists: [(&str, &Vec<String>); 12] = [
            ("principals", &s.principals),
            ("notPrincipals", &s.not_principals),
            ("requestPrincipals", &s.request_principals),
            ("notRequestPrincipals", &s.not_request_principals),
            ("namespaces", &s.namespaces),
            ("notNamespaces", &s.not_namespaces),
            ("serviceAccounts", &s.service_accounts),
            ("notServiceAccounts", &s.not_service_accounts),
            ("ipBlocks", &s.ip_blocks),
            ("notIpBlocks", &s.not_ip_blocks),
            ("remoteIpBlocks", &s.remote_ip_blocks),
            ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
        ];
        if lists.iter().all(|(_, l)| l.is_empty()) {
            r.err(
                &sp,
                format!("`from.source` must not be empty, found at rule {n}"),
            );
        }
        for (f, l) in lists {
            check_values(r, &sp, f, l, n);
        }
        check_ips(r, &sp, "ipBlocks", &s.ip_blocks);
        check_ips(r, &sp, "notIpBlocks", &s.not_ip_blocks);
        check_ips(r, &sp, "remoteIpBlocks", &s.remote_ip_blocks);
        check_ips(r, &sp, "notRemoteIpBlocks", &s.not_remote_ip_blocks);
        if (!s.service_accounts.is_empty() || !s.not_service_accounts.is_empty())
            && (!s.namespaces.is_empty()
                || !s.not_namespaces.is_empty()
                || !s.principals.is_empty()
                || !s.not_principals.is_empty())
        {
            r.err(
                &sp.field("serviceAccounts"),
                format!(
                    "cannot set serviceAccounts with namespaces or principals, found at rule {n}"
                ),
            );
        }
        if action == Action::Custom {
            for (f, l) in [
                ("principals", &s.principals),
                ("notPrincipals", &s.not_principals),
                ("requestPrincipals", &s.request_principals),
                ("notRequestPrincipals", &s.not_request_principals),
                ("namespaces", &s.namespaces),
                ("notNamespaces", &s.not_namespaces),
                ("serviceAccounts", &s.service_accounts),
                ("notServiceAccounts", &s.not_service_accounts),
            ] {
                if !l.is_empty() {
                    r.err(
                        &sp.field(f),
                        format!("`{f}` not allowed with CUSTOM action, found at rule {n}"),
                    );
                }
            }
        }
        if !s.request_principals.is_empty() || !s.not_request_principals.is_empty() {
            http_attr = true;
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
        let op = ip.field("operation");
        let lists: [(&str, &Vec<String>); 8] = [
            ("hosts", &o.hosts),
            ("notHosts", &o.not_hosts),
            ("ports", &o.ports),
            ("notPorts", &o.not_ports),
            ("methods", &o.methods),
            ("notMethods", &o.not_methods),
            ("paths", &o.paths),
            ("notPaths", &o.not_paths),
        ];
        if lists.iter().all(|(_, l)| l.is_empty()) {
            r.err(
                &op,
                format!("`to.operation` must not be empty, found at rule {n}"),
            );
        }
        for (f, l) in lists {
            check_values(r, &op, f, l, n);
        }
        check_ports(r, &op, "ports", &o.ports);
        check_ports(r, &op, "notPorts", &o.not_ports);
        check_paths(r, &op, "paths", &o.paths);
        check_paths(r, &op, "notPaths", &o.not_paths);
        if !o.ports.is_empty() || !o.not_ports.is_empty() {
            has_port = true;
        }
        if !o.hosts.is_empty()
            || !o.not_hosts.is_empty()
            || !o.methods.is_empty()
            || !o.not_methods.is_empty()
            || !o.paths.is_empty()
            || !o.not_paths.is_empty()
        {
            http_attr = true;
        }
    }
    let wp = p.field("when");
    for (i, c) in rule.when.iter().enumerate() {
        let ip = wp.index(i);
        let key = c.key.as_str();
        if key.is_empty() {
            r.err(
                &ip.field("key"),
                format!("`key` must not be empty, found at rule {n}"),
            );
            continue;
        }
        if c.values.is_empty() && c.not_values.is_empty() {
            r.err(
                &ip,
                format!("at least one of `values` or `not_values` must be set for key {key}, found at rule {n}"),
            );
        } else {
            match validate_attribute(key) {
                Err(e) => r.err(
                    &ip.field("key"),
                    format!("invalid `value` for `key` {key}: {e}, found at rule {n}"),
                ),
                Ok(kind) => {
                    for (f, vals) in [("values", &c.values), ("notValues", &c.not_values)] {
                        match kind {
                            AttrKind::Ip => check_ips(r, &ip, f, vals),
                            AttrKind::Port => check_ports(r, &ip, f, vals),
                            AttrKind::Other => check_values(r, &ip, f, vals, n),
                        }
                    }
                }
            }
        }
        if action == Action::Custom
            && (key.starts_with("source.namespace")
                || key.starts_with("source.serviceAccount")
                || key.starts_with("source.trustDomain")
                || key.starts_with("source.principal")
                || key.starts_with("request.auth."))
        {
            r.err(
                &ip.field("key"),
                format!(
                    "`condition.key` ({key}) not allowed with CUSTOM action, found at rule {n}"
                ),
            );
        }
        if key == "destination.port" {
            has_port = true;
        }
        if key.starts_with("request.headers[") || key.starts_with("request.auth.") {
            http_attr = true;
        }
    }
    if action == Action::Deny && http_attr && !has_port {
        r.warn(
            p,
            "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port",
        );
    }
}

#[derive(Clone, Copy)]
enum AttrKind {
    Ip,
    Port,
    Other,
}

fn validate_attribute(key: &str) -> Result<AttrKind, String> {
    if let Some(rest) = key.strip_prefix("request.headers[") {
        if rest.len() > 1 && rest.ends_with(']') {
            return Ok(AttrKind::Other);
        }
        return Err(format!("invalid header attribute ({key})"));
    }
    if let Some(rest) = key.strip_prefix("request.auth.claims[") {
        if rest.len() > 1 && rest.ends_with(']') {
            return Ok(AttrKind::Other);
        }
        return Err(format!("invalid claim attribute ({key})"));
    }
    if key.starts_with("experimental.envoy.filters.") {
        return Ok(AttrKind::Other);
    }
    match key {
        "source.ip" | "remote.ip" | "destination.ip" => Ok(AttrKind::Ip),
        "destination.port" => Ok(AttrKind::Port),
        "source.namespace"
        | "source.principal"
        | "source.serviceAccount"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(AttrKind::Other),
        _ => Err(format!("unknown attribute ({key})")),
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
                Error("invalid port"),
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
                Error("unknown attribute (request.method)"),
            ),
            (
                "when no values",
                json!({"rules": [{"when": [{"key": "source.ip"}]}]}),
                Error("at least one of `values` or `not_values`"),
            ),
            (
                "when ip",
                json!({"rules": [{"when": [{"key": "source.ip", "values": ["x"]}]}]}),
                Error("invalid IP address or CIDR range"),
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
                Error("not allowed with CUSTOM action"),
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
                json!({"rules": [{"to": [{"operation": {"paths": ["/a/{**}/b"]}}]}]}),
                Error("invalid path template"),
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
