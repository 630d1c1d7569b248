//! VirtualService rules (spec §2.1): hosts, gateways, HTTP/TCP/TLS routes and matches,
//! destinations and weights, redirects, rewrites, retries, faults, mirrors, CORS, header
//! operations, delegation, and the unreachable-rule warnings.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;

use super::common::*;
use crate::istio::networking::*;
use crate::istio::object::Metadata;
use crate::istio::Path;

const RETRY_ON_POLICIES: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

const HTTP_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// HTTP status codes Go's `http.StatusText` knows.
pub fn go_knows_status(code: i64) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

struct Ctx<'a> {
    hosts: &'a [String],
    gateways: &'a [String],
    delegate_vs: bool,
    gateway_only: bool,
}

/// Validates a VirtualService spec.
pub fn validate(r: &mut Report, meta: &Metadata, vs: &VirtualService) {
    let spec = Path::Root("spec");
    let is_delegate = vs.hosts.is_empty();
    let applies_to_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
    let ctx = Ctx {
        hosts: &vs.hosts,
        gateways: &vs.gateways,
        delegate_vs: is_delegate,
        gateway_only: !applies_to_mesh,
    };

    if is_delegate {
        if !vs.gateways.is_empty() {
            r.err(
                &spec.field("gateways"),
                "delegate virtual service must have no gateways specified",
            );
        }
        if !vs.tls.is_empty() {
            r.err(
                &spec.field("tls"),
                "delegate virtual service must have no tls route specified",
            );
        }
        if !vs.tcp.is_empty() {
            r.err(
                &spec.field("tcp"),
                "delegate virtual service must have no tcp route specified",
            );
        }
    }

    let hp = spec.field("hosts");
    let mut all_valid = true;
    for (i, h) in vs.hosts.iter().enumerate() {
        let p = hp.index(i);
        if let Err(e) = validate_vs_host(h, ctx.gateway_only && is_sni_host(vs)) {
            if !is_ip(h) {
                r.err(&p, e);
                all_valid = false;
            }
        } else if applies_to_mesh && h == "*" {
            r.err(
                &p,
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            );
            all_valid = false;
        }
    }
    if all_valid {
        for i in 0..vs.hosts.len() {
            for j in i + 1..vs.hosts.len() {
                if hosts_match(&vs.hosts[i], &vs.hosts[j]) {
                    r.err(
                        &hp.index(j),
                        format!(
                            "duplicate hosts in virtual service: {} & {}",
                            vs.hosts[i], vs.hosts[j]
                        ),
                    );
                }
            }
        }
    }

    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        r.err(
            &spec,
            "http, tcp or tls must be provided in virtual service",
        );
    }
    check_gateway_names(r, &spec.field("gateways"), &vs.gateways);

    let http = spec.field("http");
    for (i, route) in vs.http.iter().enumerate() {
        validate_http_route(r, &ctx, route, &http.index(i));
    }
    analyze_unreachable_http(r, &http, &vs.http);

    let tls = spec.field("tls");
    for (i, route) in vs.tls.iter().enumerate() {
        validate_tls_route(r, &ctx, route, &tls.index(i));
    }
    let matches: Vec<Vec<&TlsMatchAttributes>> =
        vs.tls.iter().map(|t| t.r#match.iter().collect()).collect();
    analyze_unreachable_l4(r, &tls, &matches);

    let tcp = spec.field("tcp");
    for (i, route) in vs.tcp.iter().enumerate() {
        validate_tcp_route(r, &ctx, route, &tcp.index(i));
    }
    let matches: Vec<Vec<&L4MatchAttributes>> =
        vs.tcp.iter().map(|t| t.r#match.iter().collect()).collect();
    analyze_unreachable_l4(r, &tcp, &matches);

    check_export_to(
        r,
        &spec.field("exportTo"),
        &meta.namespace,
        &vs.export_to,
        false,
        false,
    );
}

/// A VirtualService host (or SNI host): a wildcard domain; gateway-bound services also accept
/// `outbound_.<port>_._.<host>`.
fn validate_vs_host(h: &str, sni_ok: bool) -> Result<(), String> {
    if h.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    if h.len() > 255 {
        return Err(format!("domain name {h:?} too long (max 255)"));
    }
    if sni_ok && h.starts_with("outbound_") {
        // Istio's auto-generated SNI form `outbound_.<port>_._.<host>`.
        let parts: Vec<&str> = h.split('_').collect();
        if parts.len() < 4 {
            return Err(format!(
                "domain name {h} invalid, should follow 'outbound_.<port>_._.<hostname>' format"
            ));
        }
        if parts[0] != "outbound" {
            return Err(format!(
                "domain name {h:?} invalid (label {:?} invalid)",
                parts[0]
            ));
        }
        let port = parts[1].trim_matches('.');
        let host = parts[3].trim_matches('.');
        if !port.bytes().any(|c| c.is_ascii_digit()) {
            return Err(format!("domain name {h:?} invalid (label {port:?} invalid). should follow outbound_.<port>_._.<hostname> format"));
        }
        if !host.bytes().any(|c| c.is_ascii_alphabetic()) {
            return Err(format!("domain name {h:?} invalid (label {host:?} invalid). should follow outbound_.<port>_._.<hostname> format"));
        }
        return Ok(());
    }
    validate_wildcard_domain(h)
}

/// Whether some TLS route of the VirtualService matches on SNI hosts.
fn is_sni_host(vs: &VirtualService) -> bool {
    vs.tls
        .iter()
        .any(|t| t.r#match.iter().any(|m| !m.sni_hosts.is_empty()))
}

fn route_name(name: &str, i: usize) -> String {
    if name.is_empty() {
        format!("#{i}")
    } else {
        format!("{name:?}")
    }
}

fn validate_http_route(r: &mut Report, ctx: &Ctx<'_>, h: &HttpRoute, p: &Path<'_>) {
    // Conflicts (H1-H6).
    let is_root = !ctx.delegate_vs && h.delegate.is_some();
    if is_root {
        if h.redirect.is_some() {
            r.err(
                &p.field("redirect"),
                format!("root HTTP route {} must not specify redirect", h.name),
            );
        }
        if !h.route.is_empty() {
            r.err(
                &p.field("route"),
                format!("root HTTP route {} must not specify route", h.name),
            );
        }
    } else {
        if ctx.delegate_vs && h.delegate.is_some() {
            r.err(
                &p.field("delegate"),
                "delegate HTTP route cannot contain delegate",
            );
        }
        if h.redirect.is_some() {
            let rp = p.field("redirect");
            if !h.route.is_empty() {
                r.err(&rp, "HTTP route cannot contain both route and redirect");
            }
            if h.fault.is_some() {
                r.err(&rp, "HTTP route cannot contain both fault and redirect");
            }
            if h.rewrite.is_some() {
                r.err(
                    &rp,
                    "HTTP route rule cannot contain both rewrite and redirect",
                );
            }
            if h.direct_response.is_some() {
                r.err(
                    &rp,
                    "HTTP route cannot contain both direct_response and redirect",
                );
            }
        } else if h.direct_response.is_some() {
            let dp = p.field("directResponse");
            if !h.route.is_empty() {
                r.err(
                    &dp,
                    "HTTP route cannot contain both route and direct_response",
                );
            }
            if h.fault.is_some() {
                r.err(
                    &dp,
                    "HTTP route cannot contain both fault and direct_response",
                );
            }
            if h.rewrite.is_some() {
                r.err(
                    &dp,
                    "HTTP route rule cannot contain both rewrite and direct_response",
                );
            }
        } else if h.route.is_empty() {
            r.err(
                &p.field("route"),
                "HTTP route, redirect or direct_response is required",
            );
        }
    }
    if !is_root && h.mirror.is_some() && !h.mirrors.is_empty() {
        r.err(
            &p.field("mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
        );
    }

    // Matches (M1-M7, V7).
    let mp = p.field("match");
    for (i, m) in h.r#match.iter().enumerate() {
        validate_http_match(r, ctx, m, &mp.index(i));
    }

    // Header operations (HD1-HD4).
    if let Some(hd) = &h.headers {
        validate_headers(r, hd, &p.field("headers"));
    }
    validate_authority(r, h, p);

    if let Some(c) = &h.cors_policy {
        validate_cors(r, c, &p.field("corsPolicy"));
    }
    if let Some(f) = &h.fault {
        validate_fault(r, f, &p.field("fault"));
    }
    if let Some(mp) = h.mirror_percent {
        let pp = p.field("mirrorPercent");
        if mp > 100 {
            r.err(
                &pp,
                format!("mirror_percent must have a max value of 100 (it has {mp})"),
            );
        }
        r.warn(
            &pp,
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    if let Some(pct) = &h.mirror_percentage {
        let mpp = p.field("mirrorPercentage");
        let pp = mpp.field("value");
        if pct.value > 100.0 {
            r.err(
                &pp,
                format!(
                    "mirror_percentage must have a max value of 100 (it has {:.6})",
                    pct.value
                ),
            );
        }
        if pct.value < 0.0 {
            r.err(
                &pp,
                format!(
                    "mirror_percentage must have a min value of 0 (it has {:.6})",
                    pct.value
                ),
            );
        }
    }
    if let Some(m) = &h.mirror {
        validate_destination(r, m, &p.field("mirror"));
    }
    let msp = p.field("mirrors");
    for (i, m) in h.mirrors.iter().enumerate() {
        let ip = msp.index(i);
        match &m.destination {
            None => r.err(
                &ip.field("destination"),
                "destination is required for mirrors",
            ),
            Some(d) => validate_destination(r, d, &ip.field("destination")),
        }
        if let Some(pct) = &m.percentage {
            let ipp = ip.field("percentage");
            let pp = ipp.field("value");
            if pct.value > 100.0 {
                r.err(
                    &pp,
                    format!(
                        "mirror percentage must have a max value of 100 (it has {:.6})",
                        pct.value
                    ),
                );
            }
            if pct.value < 0.0 {
                r.err(
                    &pp,
                    format!(
                        "mirror percentage must have a min value of 0 (it has {:.6})",
                        pct.value
                    ),
                );
            }
        }
    }
    if let Some(rd) = &h.redirect {
        validate_redirect(r, rd, &h.r#match, &p.field("redirect"));
    }
    if let Some(dr) = &h.direct_response {
        validate_direct_response(r, dr, &p.field("directResponse"));
    }
    if let Some(rt) = &h.retries {
        validate_retry(r, rt, &p.field("retries"));
    }
    if let Some(rw) = &h.rewrite {
        validate_rewrite(r, rw, &p.field("rewrite"));
    }

    // Destinations and weights (D1-D6).
    let rp = p.field("route");
    let mut total: i64 = 0;
    for (i, d) in h.route.iter().enumerate() {
        let ip = rp.index(i);
        match &d.destination {
            None => r.err(&ip.field("destination"), "destination is required"),
            Some(dest) => validate_destination(r, dest, &ip.field("destination")),
        }
        if let Some(hd) = &d.headers {
            validate_headers(r, hd, &ip.field("headers"));
        }
        if d.weight < 0 {
            r.err(
                &ip.field("weight"),
                format!("weight {} < 0 (must not be negative)", d.weight),
            );
        }
        total += i64::from(d.weight);
    }
    if h.route.len() > 1 && total == 0 {
        r.err(
            &rp,
            "total destination weight = 0 (weights are relative and must not all be 0)",
        );
    }

    if let Some(t) = &h.timeout {
        if let Err(e) = validate_duration(t) {
            r.err(&p.field("timeout"), e);
        }
    }
}

fn validate_string_match(
    r: &mut Report,
    sm: &StringMatch,
    p: &Path<'_>,
    where_: &str,
    allow_empty_prefix: bool,
) {
    match sm {
        StringMatch::Prefix(s) if s.is_empty() && !allow_empty_prefix => {
            r.err(
                &p.field("prefix"),
                format!("{where_:?}: prefix string match should not be empty"),
            );
        }
        StringMatch::Regex(re) => {
            if re.is_empty() {
                r.err(
                    &p.field("regex"),
                    format!("{where_:?}: regex string match should not be empty"),
                );
            } else {
                r.regex(&p.field("regex"), re);
            }
        }
        _ => {}
    }
}

fn validate_http_match(r: &mut Report, ctx: &Ctx<'_>, m: &HttpMatchRequest, p: &Path<'_>) {
    let hp = p.field("headers");
    for (name, sm) in &m.headers {
        let kp = hp.key(name);
        if let Err(e) = validate_match_header_name(name) {
            r.err(&kp, e);
        }
        check_jwt_claim(r, ctx, name, &kp);
        validate_string_match(r, sm, &kp, "headers", false);
    }
    let wp = p.field("withoutHeaders");
    for (name, sm) in &m.without_headers {
        let kp = wp.key(name);
        if let Err(e) = validate_match_header_name(name) {
            r.err(&kp, e);
        }
        check_jwt_claim(r, ctx, name, &kp);
        if matches!(sm, StringMatch::Regex(re) if re == "*") {
            continue;
        }
        validate_string_match(r, sm, &kp, "withoutHeaders", false);
    }
    let qp = p.field("queryParams");
    for (name, sm) in &m.query_params {
        validate_string_match(r, sm, &qp.key(name), "queryParams", false);
    }
    if let Some(u) = &m.uri {
        validate_string_match(r, u, &p.field("uri"), "uri", true);
    }
    if let Some(s) = &m.scheme {
        validate_string_match(r, s, &p.field("scheme"), "scheme", false);
    }
    if let Some(s) = &m.method {
        validate_string_match(r, s, &p.field("method"), "method", false);
    }
    if let Some(s) = &m.authority {
        validate_string_match(r, s, &p.field("authority"), "authority", false);
    }
    if m.port != 0 {
        if let Err(e) = validate_port(m.port) {
            r.err(&p.field("port"), e);
        }
    }
    check_labels(r, &p.field("sourceLabels"), &m.source_labels);
    check_gateway_names(r, &p.field("gateways"), &m.gateways);
    if !m.source_namespace.is_empty() && !is_dns1123_label(&m.source_namespace) {
        r.err(
            &p.field("sourceNamespace"),
            format!("sourceNamespace match {} is invalid", m.source_namespace),
        );
    }
}

fn check_jwt_claim(r: &mut Report, ctx: &Ctx<'_>, name: &str, p: &Path<'_>) {
    if is_jwt_claim_key(name) && !ctx.gateway_only {
        r.err(
            p,
            format!(
                "JWT claim based routing (key: {name}) is only supported for gateway, found no gateways: [{}]",
                ctx.gateways.join(" ")
            ),
        );
    }
}

fn validate_destination(r: &mut Report, d: &Destination, p: &Path<'_>) {
    let hp = p.field("host");
    if d.host == "*" {
        r.err(&hp, "invalid destination host *");
    } else if let Err(e) = validate_wildcard_domain(&d.host) {
        r.err(&hp, e);
    }
    if !d.subset.is_empty() && !is_dns1123_label(&d.subset) {
        r.err(
            &p.field("subset"),
            format!("subset name is invalid: {}", d.subset),
        );
    }
    if let Some(port) = &d.port {
        if let Err(e) = validate_port(port.number) {
            r.err(&p.field("port").field("number"), e);
        }
    }
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

fn validate_header_op_name(name: &str, allow_authority: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if allow_authority && is_authority_header(name) {
        return Ok(());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!("invalid header {name:?}: cannot set Host header"));
    }
    if name.starts_with(':') {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

fn validate_header_ops(r: &mut Report, ops: &HeaderOperations, p: &Path<'_>, request: bool) {
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        let fp = p.field(field);
        for (name, value) in map {
            let kp = fp.key(name);
            if let Err(e) = validate_header_op_name(name, request) {
                r.err(&kp, e);
            }
            if let Err(e) = validate_header_value(value) {
                r.err(&kp, e);
            }
        }
    }
    let rp = p.field("remove");
    for (i, name) in ops.remove.iter().enumerate() {
        if let Err(e) = validate_header_op_name(name, false) {
            r.err(&rp.index(i), e);
        }
    }
}

fn validate_headers(r: &mut Report, h: &Headers, p: &Path<'_>) {
    if let Some(req) = &h.request {
        validate_header_ops(r, req, &p.field("request"), true);
    }
    if let Some(resp) = &h.response {
        validate_header_ops(r, resp, &p.field("response"), false);
    }
}

fn validate_authority(r: &mut Report, h: &HttpRoute, p: &Path<'_>) {
    let mut current: String = h
        .rewrite
        .as_ref()
        .map(|rw| rw.authority.clone())
        .unwrap_or_default();
    let Some(req) = h.headers.as_ref().and_then(|x| x.request.as_ref()) else {
        return;
    };
    let hp = p.field("headers");
    let rp = hp.field("request");
    for (field, map) in [("set", &req.set), ("add", &req.add)] {
        let fp = rp.field(field);
        for (k, v) in map {
            if is_authority_header(k) {
                if !current.is_empty() {
                    r.err(
                        &fp.key(k),
                        format!(
                            "authority header cannot be set multiple times: have {current:?}, attempting to set {v:?}"
                        ),
                    );
                }
                current = v.clone();
            }
        }
    }
}

fn validate_cors(r: &mut Report, c: &CorsPolicy, p: &Path<'_>) {
    let op = p.field("allowOrigins");
    for (i, o) in c.allow_origins.iter().enumerate() {
        let ip = op.index(i);
        match o {
            StringMatch::Exact(s) | StringMatch::Prefix(s) if s.is_empty() => {
                r.err(
                    &ip,
                    "'' is not a valid match type for CORS allow origins (empty exact or prefix)",
                );
            }
            StringMatch::Regex(s) if s.is_empty() => {
                r.err(
                    &ip.field("regex"),
                    "'' is not a valid match type for CORS allow origins (empty regex)",
                );
            }
            StringMatch::Regex(s) => r.regex(&ip.field("regex"), s),
            StringMatch::Unset => r.err(
                &ip,
                "'' is not a valid match type for CORS allow origins (set exact, prefix or regex)",
            ),
            _ => {}
        }
    }
    let mp = p.field("allowMethods");
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !HTTP_METHODS.contains(&m.as_str()) {
            r.err(
                &mp.index(i),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for (field, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        let fp = p.field(field);
        for (i, name) in list.iter().enumerate() {
            if name != "*" && !is_token(name) {
                r.err(
                    &fp.index(i),
                    format!("header name {name} is not a valid header name"),
                );
            }
        }
    }
    if let Some(ma) = &c.max_age {
        let ap = p.field("maxAge");
        if let Err(e) = validate_duration(ma) {
            r.err(&ap, e);
        } else if ma.nanos % crate::istio::Duration::SECOND != 0 {
            r.err(
                &ap,
                "max_age duration is accurate only to seconds precision",
            );
        }
    }
}

fn validate_fault(r: &mut Report, f: &HttpFaultInjection, p: &Path<'_>) {
    if f.abort.is_none() && f.delay.is_none() {
        r.err(p, "HTTP fault injection must have an abort and/or a delay");
    }
    if let Some(a) = &f.abort {
        let ap = p.field("abort");
        if let Some(pct) = &a.percentage {
            if let Err(e) = validate_percentage(pct.value) {
                r.err(&ap.field("percentage").field("value"), e);
            }
        }
        let set = [
            a.http_status.is_some(),
            a.grpc_status.is_some(),
            a.http2_error.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if set > 1 {
            r.err(
                &ap,
                "only one of httpStatus, grpcStatus or http2Error may be set",
            );
        }
        if let Some(s) = a.http_status {
            if !(200..=600).contains(&s) {
                r.err(
                    &ap.field("httpStatus"),
                    format!("HTTP status {s} is not in range 200-599"),
                );
            }
        } else if let Some(g) = &a.grpc_status {
            if !crate::istio::GRPC_STATUS_CODES.contains(&g.as_str()) {
                r.err(
                    &ap.field("grpcStatus"),
                    format!(
                        "gRPC status {g:?} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'"
                    ),
                );
            }
        } else if a.http2_error.is_some() {
            r.err(
                &ap.field("http2Error"),
                "HTTP/2 abort fault injection not supported yet",
            );
        } else {
            r.warn(&ap, "abort configured, but error type not set");
        }
    }
    if let Some(d) = &f.delay {
        let dp = p.field("delay");
        if let Some(pct) = &d.percentage {
            if let Err(e) = validate_percentage(pct.value) {
                r.err(&dp.field("percentage").field("value"), e);
            }
        }
        if d.fixed_delay.is_some() && d.exponential_delay.is_some() {
            r.err(&dp, "only one of fixedDelay or exponentialDelay may be set");
        }
        check_duration(r, &dp.field("fixedDelay"), &d.fixed_delay);
        if let Some(e) = &d.exponential_delay {
            let ep = dp.field("exponentialDelay");
            if let Err(msg) = validate_duration(e) {
                r.err(&ep, msg);
            }
            r.err(&ep, "exponentialDelay not supported yet");
        }
    }
}

fn validate_redirect(
    r: &mut Report,
    rd: &HttpRedirect,
    matches: &[HttpMatchRequest],
    p: &Path<'_>,
) {
    if rd.uri.is_empty()
        && rd.prefix_rewrite.is_empty()
        && rd.authority.is_empty()
        && rd.port.is_none()
        && rd.derive_port.is_none()
        && rd.scheme.is_empty()
    {
        r.err(p, "redirect must specify URI, authority, scheme, or port");
    }
    if !rd.uri.is_empty() && !rd.prefix_rewrite.is_empty() {
        r.err(p, "redirect may only specify one of uri or prefix_rewrite");
    }
    if !rd.prefix_rewrite.is_empty() {
        for (i, m) in matches.iter().enumerate() {
            if let Some(u) = &m.uri {
                if !matches!(u, StringMatch::Prefix(_)) {
                    r.err(
                        &p.field("prefixRewrite"),
                        format!(
                            "redirect prefix_rewrite requires all URI matches to use prefix match type (match[{i}].uri is not a prefix match)"
                        ),
                    );
                }
            }
        }
    }
    if rd.port.is_some() && rd.derive_port.is_some() {
        r.err(p, "only one of port or derivePort may be set");
    }
    if let Some(code) = rd.redirect_code {
        if code != 0 && !(300..=399).contains(&code) {
            r.err(
                &p.field("redirectCode"),
                format!("{code} is not a valid redirect code, must be 3xx"),
            );
        }
    }
    if !rd.scheme.is_empty() && rd.scheme != "http" && rd.scheme != "https" {
        r.err(
            &p.field("scheme"),
            "invalid redirect scheme, must be \"http\" or \"https\"",
        );
    }
    if let Some(port) = rd.port {
        if port > 0 {
            if let Err(e) = validate_port(port) {
                r.err(&p.field("port"), e);
            }
        }
    }
}

fn validate_direct_response(r: &mut Report, dr: &HttpDirectResponse, p: &Path<'_>) {
    if let Some(body) = &dr.body {
        let bp = p.field("body");
        if body.string.is_some() && body.bytes.is_some() {
            r.err(&bp, "only one of string or bytes may be set");
        }
        let size = if let Some(s) = &body.string {
            s.len()
        } else if let Some(b) = &body.bytes {
            match base64::engine::general_purpose::STANDARD.decode(b) {
                Ok(v) => v.len(),
                Err(e) => {
                    r.err(&bp.field("bytes"), format!("invalid base64: {e}"));
                    0
                }
            }
        } else {
            0
        };
        if size > 1 << 20 {
            r.err(
                &bp,
                "large direct_responses may impact control plane performance, must be less than 1MB",
            );
        } else if size > 100 << 10 {
            r.warn(
                &bp,
                "large direct_responses may impact control plane performance",
            );
        }
    }
    if !(200..=600).contains(&dr.status) {
        r.err(
            &p.field("status"),
            format!("HTTP status {} is not in range 200-599", dr.status),
        );
    }
}

fn validate_retry(r: &mut Report, rt: &HttpRetry, p: &Path<'_>) {
    if rt.attempts < 0 {
        r.err(&p.field("attempts"), "attempts cannot be negative");
    }
    if rt.attempts == 0
        && (rt.per_try_timeout.is_some()
            || !rt.retry_on.is_empty()
            || rt.retry_remote_localities.is_some())
    {
        r.err(
            &p.field("attempts"),
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    check_duration(r, &p.field("perTryTimeout"), &rt.per_try_timeout);
    check_duration(r, &p.field("backoff"), &rt.backoff);
    if !rt.retry_on.is_empty() {
        for policy in rt.retry_on.split(',') {
            let code_ok = policy.parse::<i64>().is_ok_and(go_knows_status);
            if !code_ok && !RETRY_ON_POLICIES.contains(&policy) {
                r.err(
                    &p.field("retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
}

fn validate_rewrite(r: &mut Report, rw: &HttpRewrite, p: &Path<'_>) {
    if !rw.uri.is_empty() && rw.uri_regex_rewrite.is_some() {
        r.err(p, "rewrite may only contain one of URI or UriRegexRewrite");
    }
    if rw.uri.is_empty() && rw.uri_regex_rewrite.is_none() && rw.authority.is_empty() {
        r.err(
            p,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
        );
    }
    if let Some(rr) = &rw.uri_regex_rewrite {
        let rp = p.field("uriRegexRewrite");
        if rr.r#match.is_empty() || rr.rewrite.is_empty() {
            r.err(
                &rp,
                "UriRegexRewrite has errors: UriRegexRewrite requires both Rewrite and Match fields to be specified",
            );
        }
        if !rr.r#match.is_empty() {
            let before = r.errors.len();
            r.regex(&rp.field("match"), &rr.r#match);
            if r.errors.len() > before {
                if let Some(last) = r.errors.last_mut() {
                    last.push_str(" (UriRegexRewrite has errors)");
                }
            }
        }
    }
}

fn validate_route_destinations(r: &mut Report, routes: &[RouteDestination], p: &Path<'_>) {
    let mut total: i64 = 0;
    for (i, d) in routes.iter().enumerate() {
        let ip = p.index(i);
        match &d.destination {
            None => r.err(&ip.field("destination"), "destination is required"),
            Some(dest) => validate_destination(r, dest, &ip.field("destination")),
        }
        if d.weight < 0 {
            r.err(
                &ip.field("weight"),
                format!("weight {} < 0 (must not be negative)", d.weight),
            );
        }
        total += i64::from(d.weight);
    }
    if routes.len() > 1 && total == 0 {
        r.err(
            p,
            "total destination weight = 0 (weights are relative and must not all be 0)",
        );
    }
}

fn check_l4_common(
    r: &mut Report,
    p: &Path<'_>,
    subnets: &[String],
    port: u32,
    labels: &BTreeMap<String, String>,
    gateways: &[String],
) {
    let sp = p.field("destinationSubnets");
    for (i, s) in subnets.iter().enumerate() {
        if let Err(e) = validate_ip_or_cidr(s) {
            r.err(&sp.index(i), e);
        }
    }
    if port != 0 {
        if let Err(e) = validate_port(port) {
            r.err(&p.field("port"), e);
        }
    }
    check_labels(r, &p.field("sourceLabels"), labels);
    check_gateway_names(r, &p.field("gateways"), gateways);
}

fn validate_tls_route(r: &mut Report, ctx: &Ctx<'_>, t: &TlsRoute, p: &Path<'_>) {
    let mp = p.field("match");
    if t.r#match.is_empty() {
        r.err(&mp, "TLS route must have at least one match condition");
    }
    for (i, m) in t.r#match.iter().enumerate() {
        let ip = mp.index(i);
        let sp = ip.field("sniHosts");
        if m.sni_hosts.is_empty() {
            r.err(&sp, "TLS match must have at least one SNI host");
        }
        for (j, sni) in m.sni_hosts.iter().enumerate() {
            let jp = sp.index(j);
            if let Err(e) = validate_vs_host(sni, !ctx.gateways.iter().any(|g| g == "mesh")) {
                if is_ip(sni) {
                    r.warn(
                        &jp,
                        format!(
                            "using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"
                        ),
                    );
                } else {
                    r.err(&jp, e);
                }
                continue;
            }
            if !ctx.hosts.iter().any(|h| host_subset_of(sni, h)) {
                r.err(
                    &jp,
                    format!(
                        "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
                        ctx.hosts.join(", ")
                    ),
                );
            }
        }
        check_l4_common(
            r,
            &ip,
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
        );
    }
    if t.route.is_empty() {
        r.err(&p.field("route"), "TLS route is required");
    }
    validate_route_destinations(r, &t.route, &p.field("route"));
}

fn validate_tcp_route(r: &mut Report, _ctx: &Ctx<'_>, t: &TcpRoute, p: &Path<'_>) {
    let mp = p.field("match");
    for (i, m) in t.r#match.iter().enumerate() {
        check_l4_common(
            r,
            &mp.index(i),
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
        );
    }
    if t.route.is_empty() {
        r.err(&p.field("route"), "TCP route is required");
    }
    validate_route_destinations(r, &t.route, &p.field("route"));
}

// ---------------------------------------------------------------- unreachable rules (V9-V12)

/// Whether two matches are equal ignoring `name` (Istio compares them as JSON without the name).
fn same_match(a: &HttpMatchRequest, b: &HttpMatchRequest) -> bool {
    a.uri == b.uri && same_match_except_uri(a, b) && a.method == b.method
}

/// V12 comparison: everything but `name` and `uri`, with an unset method counting as GET.
fn same_match_except_uri(a: &HttpMatchRequest, b: &HttpMatchRequest) -> bool {
    fn method(m: &HttpMatchRequest) -> (u8, &str) {
        match &m.method {
            None => (1, "GET"),
            Some(StringMatch::Exact(s)) => (1, s),
            Some(StringMatch::Prefix(s)) => (2, s),
            Some(StringMatch::Regex(s)) => (3, s),
            Some(StringMatch::Unset) => (4, ""),
        }
    }
    method(a) == method(b)
        && a.scheme == b.scheme
        && a.authority == b.authority
        && a.headers == b.headers
        && a.port == b.port
        && a.source_labels == b.source_labels
        && a.gateways == b.gateways
        && a.query_params == b.query_params
        && a.ignore_uri_case == b.ignore_uri_case
        && a.without_headers == b.without_headers
        && a.source_namespace == b.source_namespace
        && a.stat_prefix == b.stat_prefix
}

/// A hash of everything [`same_match`] compares.
fn match_hash(m: &HttpMatchRequest) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &m.uri,
        &m.scheme,
        &m.method,
        &m.authority,
        &m.headers,
        m.port,
        &m.source_labels,
        &m.gateways,
    )
        .hash(&mut h);
    (
        &m.query_params,
        m.ignore_uri_case,
        &m.without_headers,
        &m.source_namespace,
        &m.stat_prefix,
    )
        .hash(&mut h);
    h.finish()
}

fn analyze_unreachable_http(r: &mut Report, p: &Path<'_>, routes: &[HttpRoute]) {
    // Matches seen so far, keyed like Istio's JSON comparison (name removed), and the prefix
    // matches among them for the overlap check.
    let mut seen: HashMap<u64, Vec<(&HttpMatchRequest, usize)>> = HashMap::new();
    let mut prefixes: Vec<PrefixMatch> = Vec::new();
    let mut empty_seen = false;
    for (rulen, route) in routes.iter().enumerate() {
        let rp = p.index(rulen);
        let rname = route_name(&route.name, rulen);
        if route.r#match.is_empty() {
            if empty_seen {
                r.warn(
                    &rp,
                    format!(
                        "virtualService rule {rname} not used (only the last rule can have no matches)"
                    ),
                );
            }
            empty_seen = true;
            continue;
        }
        if empty_seen {
            r.warn(
                &rp,
                format!(
                    "virtualService rule {rname} not used (route without matches defined before)"
                ),
            );
            continue;
        }
        let mut dups = 0;
        for (matchn, m) in route.r#match.iter().enumerate() {
            let h = match_hash(m);
            let dup = seen
                .get(&h)
                .and_then(|c| c.iter().find(|(x, _)| same_match(x, m)))
                .map(|(_, n)| *n);
            if let Some(dupn) = dup {
                let dname = route_name(&routes[dupn].name, dupn);
                let mname = route_name(&m.name, matchn);
                r.warn(
                    &rp.field("match").index(matchn),
                    format!(
                        "virtualService rule {rname} match {mname} is not used (duplicate/overlapping match in rule {dname})"
                    ),
                );
                dups += 1;
            } else {
                seen.entry(h).or_default().push((m, rulen));
                if let Some(pm) = prefix_match(route, m, rulen, matchn) {
                    prefixes.push(pm);
                }
            }
        }
        if dups == route.r#match.len() {
            r.warn(
                &rp,
                format!("virtualService rule {rname} not used (all matches used by prior rules)"),
            );
        }
    }
    report_overlapping_prefixes(r, p, &prefixes);
}

/// One prefix match, reduced the way Istio compares overlapping prefixes (V12).
struct PrefixMatch {
    rule: usize,
    matchn: usize,
    route_str: String,
    match_str: String,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

/// `exact:<v>`, `prefix:<v>` or empty (regex and unset count as empty).
fn exact_or_prefix(m: Option<&StringMatch>) -> String {
    match m {
        Some(StringMatch::Exact(v)) if !v.is_empty() => format!("exact:{v}"),
        Some(StringMatch::Prefix(v)) if !v.is_empty() => format!("prefix:{v}"),
        _ => String::new(),
    }
}

fn prefix_match(
    route: &HttpRoute,
    m: &HttpMatchRequest,
    rule: usize,
    matchn: usize,
) -> Option<PrefixMatch> {
    let Some(StringMatch::Prefix(prefix)) = &m.uri else {
        return None;
    };
    if prefix.is_empty() {
        return None;
    }
    let mut method = exact_or_prefix(m.method.as_ref());
    if method.is_empty() {
        method = "exact:GET".to_string();
    }
    let reduce = |map: &BTreeMap<String, StringMatch>| {
        map.iter()
            .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
            .collect::<BTreeMap<_, _>>()
    };
    Some(PrefixMatch {
        rule,
        matchn,
        route_str: route_name(&route.name, rule),
        match_str: route_name(&m.name, matchn),
        prefix: prefix.clone(),
        port: m.port,
        method,
        authority: exact_or_prefix(m.authority.as_ref()),
        headers: reduce(&m.headers),
        query_params: reduce(&m.query_params),
        without_headers: reduce(&m.without_headers),
    })
}

/// Whether the earlier prefix match `a` covers the later `b` (Istio's `coveredValidation`).
fn covers(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    fn value_covers(a: &str, b: &str) -> bool {
        a == b || a.starts_with(b)
    }
    fn map_covers(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
        a.len() == b.len()
            && a.iter()
                .all(|(k, v)| b.get(k).is_some_and(|bv| value_covers(v, bv)))
    }
    b.prefix.starts_with(a.prefix.as_str())
        && a.port == b.port
        && value_covers(&a.method, &b.method)
        && value_covers(&a.authority, &b.authority)
        && map_covers(&a.headers, &b.headers)
        && map_covers(&a.query_params, &b.query_params)
        && map_covers(&a.without_headers, &b.without_headers)
}

fn report_overlapping_prefixes(r: &mut Report, p: &Path<'_>, entries: &[PrefixMatch]) {
    // Candidate pairs are those where the earlier prefix is a proper prefix of the later one:
    // look every proper prefix of each entry up instead of comparing all pairs.
    let mut by_prefix: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_prefix.entry(e.prefix.as_str()).or_default().push(i);
    }
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (j, b) in entries.iter().enumerate() {
        for (k, _) in b.prefix.char_indices().skip(1) {
            if let Some(list) = by_prefix.get(&b.prefix[..k]) {
                pairs.extend(list.iter().filter(|&&i| i < j).map(|&i| (i, j)));
            }
        }
    }
    pairs.sort_unstable();
    for (i, j) in pairs {
        let (Some(a), Some(b)) = (entries.get(i), entries.get(j)) else {
            continue;
        };
        if !covers(a, b) {
            continue;
        }
        let rp = p.index(b.rule);
        let mp = rp.field("match");
        r.warn(
            &mp.index(b.matchn),
            format!(
                "virtualService rule {} match {} of prefix {} is not used (duplicate/overlapping match in rule {} of prefix {} on {})",
                b.route_str, b.match_str, b.prefix, a.match_str, a.prefix, a.route_str
            ),
        );
    }
}

fn analyze_unreachable_l4<M: PartialEq>(r: &mut Report, p: &Path<'_>, rules: &[Vec<&M>]) {
    let mut seen: Vec<(&M, usize)> = Vec::new();
    let mut empty_seen = false;
    for (rulen, matches) in rules.iter().enumerate() {
        let rp = p.index(rulen);
        if matches.is_empty() {
            if empty_seen {
                r.warn(
                    &rp,
                    format!("virtualService rule #{rulen} not used (only the last rule can have no matches)"),
                );
            }
            empty_seen = true;
            continue;
        }
        if empty_seen {
            r.warn(
                &rp,
                format!(
                    "virtualService rule #{rulen} not used (route without matches defined before)"
                ),
            );
            continue;
        }
        let mut dups = 0;
        for (matchn, m) in matches.iter().enumerate() {
            if let Some((_, dupn)) = seen.iter().find(|(k, _)| *k == *m) {
                r.warn(
                    &rp.field("match").index(matchn),
                    format!(
                        "virtualService rule #{rulen} match #{matchn} is not used (duplicate/overlapping match in rule #{dupn})"
                    ),
                );
                dups += 1;
            } else {
                seen.push((m, rulen));
            }
        }
        if dups == matches.len() {
            r.warn(
                &rp,
                format!("virtualService rule #{rulen} not used (all matches used by prior rules)"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{run_table, Want::*};
    use serde_json::json;

    fn route(extra: serde_json::Value) -> serde_json::Value {
        let mut r = json!({"route": [{"destination": {"host": "svc"}}]});
        if let (Some(o), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        json!({"hosts": ["svc"], "http": [r]})
    }

    #[test]
    fn table() {
        let cases = vec![
            ("minimal", route(json!({})), Valid),
            (
                "weights relative",
                json!({"hosts": ["r"], "http": [{"route": [
                    {"destination": {"host": "r", "subset": "v1"}, "weight": 30},
                    {"destination": {"host": "r", "subset": "v2"}, "weight": 10}]}]}),
                Valid,
            ),
            (
                "negative weight",
                json!({"hosts": ["r"], "http": [{"route": [
                    {"destination": {"host": "r"}, "weight": 110},
                    {"destination": {"host": "r"}, "weight": -10}]}]}),
                Error("spec.http[0].route[1].weight: weight -10 < 0"),
            ),
            (
                "zero total",
                json!({"hosts": ["r"], "http": [{"route": [
                    {"destination": {"host": "r"}, "weight": 0},
                    {"destination": {"host": "r"}, "weight": 0}]}]}),
                Error("total destination weight = 0"),
            ),
            (
                "no routes",
                json!({"hosts": ["r"]}),
                Error("http, tcp or tls must be provided"),
            ),
            (
                "match only",
                json!({"hosts": ["r"], "http": [{"match": [{"uri": {"prefix": "/"}}]}]}),
                Error("HTTP route, redirect or direct_response is required"),
            ),
            (
                "route and redirect",
                route(json!({"redirect": {"uri": "/x"}})),
                Error("both route and redirect"),
            ),
            (
                "mesh wildcard",
                json!({"hosts": ["*"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("wildcard host *"),
            ),
            (
                "gateway wildcard",
                json!({"hosts": ["*"], "gateways": ["ns/gw"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Valid,
            ),
            (
                "duplicate hosts",
                json!({"hosts": ["*.foo.bar", "*.bar"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("duplicate hosts in virtual service: *.foo.bar & *.bar"),
            ),
            (
                "bad host",
                json!({"hosts": ["foo.ba!r"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("invalid (label \"ba!r\" invalid)"),
            ),
            (
                "ip host",
                json!({"hosts": ["10.0.0.1"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Valid,
            ),
            ("timeout ok", route(json!({"timeout": "1m30s"})), Valid),
            (
                "timeout zero",
                route(json!({"timeout": "0s"})),
                Error("spec.http[0].timeout: duration must be greater than 1ms"),
            ),
            (
                "timeout sub-ms",
                route(json!({"timeout": "1.5ms"})),
                Error("ms precision"),
            ),
            (
                "timeout garbage",
                route(json!({"timeout": "abc"})),
                Error("bad Duration: time: invalid duration \"abc\""),
            ),
            (
                "retry ok",
                route(
                    json!({"retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset,503"}}),
                ),
                Valid,
            ),
            (
                "retry whitespace",
                route(json!({"retries": {"attempts": 3, "retryOn": "5xx, reset"}})),
                Error("\" reset\" is not a valid retryOn policy"),
            ),
            (
                "retry zero attempts",
                route(json!({"retries": {"attempts": 0, "perTryTimeout": "2s"}})),
                Error("attempts are set to 0"),
            ),
            (
                "retry negative",
                route(json!({"retries": {"attempts": -1}})),
                Error("attempts cannot be negative"),
            ),
            (
                "fault empty",
                route(json!({"fault": {}})),
                Error("must have an abort and/or a delay"),
            ),
            (
                "fault grpc",
                route(
                    json!({"fault": {"abort": {"grpcStatus": "NOT_FOUND", "percentage": {"value": 5}}}}),
                ),
                Valid,
            ),
            (
                "fault grpc numeric",
                route(json!({"fault": {"abort": {"grpcStatus": "404"}}})),
                Error("gRPC status \"404\" is not supported"),
            ),
            (
                "fault no type",
                route(json!({"fault": {"abort": {"percentage": {"value": 1}}}})),
                Warning("abort configured, but error type not set"),
            ),
            (
                "fault pct",
                route(
                    json!({"fault": {"delay": {"fixedDelay": "1s", "percentage": {"value": 101}}}}),
                ),
                Error("percentage 101 is neither 0.0"),
            ),
            (
                "fault http2",
                route(json!({"fault": {"abort": {"http2Error": "x"}}})),
                Error("HTTP/2 abort fault injection not supported yet"),
            ),
            (
                "mirror pct",
                route(json!({"mirror": {"host": "m"}, "mirrorPercentage": {"value": 150}})),
                Error("mirror_percentage must have a max value of 100"),
            ),
            (
                "mirror and mirrors",
                route(
                    json!({"mirror": {"host": "m"}, "mirrors": [{"destination": {"host": "m"}}]}),
                ),
                Error("both mirror and mirrors"),
            ),
            (
                "mirrors no dest",
                route(json!({"mirrors": [{}]})),
                Error("destination is required for mirrors"),
            ),
            (
                "mirror percent deprecated",
                route(json!({"mirror": {"host": "m"}, "mirrorPercent": 50})),
                Warning("deprecated setting \"mirrorPercent\""),
            ),
            (
                "cors ok",
                route(
                    json!({"corsPolicy": {"allowOrigins": [{"exact": "https://a"}], "allowMethods": ["GET"], "maxAge": "24h"}}),
                ),
                Valid,
            ),
            (
                "cors lowercase",
                route(json!({"corsPolicy": {"allowMethods": ["get"]}})),
                Error("\"get\" is not a supported HTTP method"),
            ),
            (
                "cors maxage",
                route(json!({"corsPolicy": {"maxAge": "1.5s"}})),
                Error("seconds precision"),
            ),
            (
                "cors origin regex",
                route(json!({"corsPolicy": {"allowOrigins": [{"regex": "*.example.com"}]}})),
                Error("allowOrigins[0].regex"),
            ),
            (
                "cors origin empty",
                route(json!({"corsPolicy": {"allowOrigins": [{"exact": ""}]}})),
                Error("not a valid match type for CORS"),
            ),
            (
                "snake case",
                route(json!({"cors_policy": {"allow_origins": [{"exact": "https://a"}]}})),
                Valid,
            ),
            (
                "sni outbound host",
                json!({"hosts": ["outbound_.9090_._.grpc.mesh.svc.cluster.local"], "gateways": ["ns1/east"],
                    "tls": [{"match": [{"sniHosts": ["outbound_.9090_._.grpc.mesh.svc.cluster.local"]}],
                        "route": [{"destination": {"host": "grpc.mesh.svc.cluster.local"}}]}]}),
                Valid,
            ),
            (
                "overlap with explicit GET",
                json!({"hosts": ["shop.example"], "http": [{"match": [
                    {"uri": {"prefix": "/cart"}},
                    {"uri": {"prefix": "/cart/items"}, "method": {"exact": "GET"}}],
                    "route": [{"destination": {"host": "cart"}}]}]}),
                Warning("of prefix /cart/items is not used (duplicate/overlapping match in rule #0 of prefix /cart on #0)"),
            ),
            (
                "no overlap for exact uri",
                json!({"hosts": ["shop.example"], "http": [{"match": [
                    {"uri": {"prefix": "/"}},
                    {"uri": {"exact": "/"}, "method": {"exact": "GET"}}],
                    "route": [{"destination": {"host": "cart"}}]}]}),
                Valid,
            ),
            (
                "snake case path",
                route(json!({"retries": {"attempts": 2, "retry_on": "5xx, reset"}})),
                Error("spec.http[0].retries.retry_on: \" reset\" is not a valid retryOn policy"),
            ),
            (
                "regex ok",
                route(json!({"match": [{"uri": {"regex": "/usrv(/.*)?"}}]})),
                Valid,
            ),
            (
                "regex lookahead",
                route(json!({"match": [{"uri": {"regex": "^(?!/admin).*"}}]})),
                Error("RE2"),
            ),
            (
                "regex too long",
                route(json!({"match": [{"uri": {"regex": "a".repeat(1025)}}]})),
                Error("regex is too large"),
            ),
            (
                "regex repeat",
                route(json!({"match": [{"uri": {"regex": "a{1001}"}}]})),
                Error("repeat count"),
            ),
            (
                "empty uri prefix ok",
                route(json!({"match": [{"uri": {"prefix": ""}}]})),
                Valid,
            ),
            (
                "empty method prefix",
                route(json!({"match": [{"method": {"prefix": ""}}]})),
                Error("\"method\": prefix string match should not be empty"),
            ),
            (
                "empty query prefix",
                route(json!({"match": [{"queryParams": {"a": {"prefix": ""}}}]})),
                Error("queryParams"),
            ),
            (
                "without headers star",
                route(json!({"match": [{"withoutHeaders": {"x": {"regex": "*"}}}]})),
                Valid,
            ),
            (
                "bad header name",
                route(json!({"match": [{"headers": {"bad header": {"exact": "x"}}}]})),
                Error("header name bad header is not a valid header name"),
            ),
            (
                "jwt claim mesh",
                route(
                    json!({"match": [{"headers": {"@request.auth.claims.group": {"exact": "a"}}}]}),
                ),
                Error("JWT claim based routing"),
            ),
            (
                "match port",
                route(json!({"match": [{"port": 70000}]})),
                Error("port number 70000 must be in the range 1..65535"),
            ),
            (
                "source namespace",
                route(json!({"match": [{"sourceNamespace": "Bad_NS"}]})),
                Error("sourceNamespace match Bad_NS is invalid"),
            ),
            (
                "dest port empty",
                json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r", "port": {}}}]}]}),
                Error("port number 0"),
            ),
            (
                "dest host star",
                json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "*"}}]}]}),
                Error("invalid destination host *"),
            ),
            (
                "dest subset",
                json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r", "subset": "v_1"}}]}]}),
                Error("subset name is invalid: v_1"),
            ),
            (
                "no destination",
                json!({"hosts": ["r"], "http": [{"route": [{}]}]}),
                Error("destination is required"),
            ),
            (
                "header ops ok",
                route(
                    json!({"headers": {"request": {"set": {"x-a": "%START_TIME%"}}, "response": {"add": {"x-b": "100%% off"}}}}),
                ),
                Valid,
            ),
            (
                "header set :path",
                route(json!({"headers": {"request": {"set": {":path": "/"}}}})),
                Error("cannot have \":\" prefix"),
            ),
            (
                "header remove host",
                route(json!({"headers": {"request": {"remove": ["Host"]}}})),
                Error("cannot set Host header"),
            ),
            (
                "header value",
                route(json!({"headers": {"response": {"set": {"x": "abcd%oijasodifj"}}}})),
                Error("Un-terminated variable expression"),
            ),
            (
                "authority twice",
                route(
                    json!({"rewrite": {"authority": "a"}, "headers": {"request": {"set": {":authority": "b"}}}}),
                ),
                Error("authority header cannot be set multiple times"),
            ),
            (
                "redirect ok",
                json!({"hosts": ["r"], "http": [{"redirect": {"scheme": "https", "port": 443, "redirectCode": 308}}]}),
                Valid,
            ),
            (
                "redirect code",
                json!({"hosts": ["r"], "http": [{"redirect": {"uri": "/", "redirectCode": 200}}]}),
                Error("200 is not a valid redirect code"),
            ),
            (
                "redirect scheme",
                json!({"hosts": ["r"], "http": [{"redirect": {"scheme": "HTTPS"}}]}),
                Error("invalid redirect scheme"),
            ),
            (
                "redirect empty",
                json!({"hosts": ["r"], "http": [{"redirect": {}}]}),
                Error("redirect must specify URI, authority, scheme, or port"),
            ),
            (
                "prefix rewrite regex",
                json!({"hosts": ["r"], "http": [{"match": [{"uri": {"regex": "/a.*"}}], "redirect": {"prefixRewrite": "/b"}}]}),
                Error("prefix_rewrite requires all URI matches"),
            ),
            (
                "direct response",
                json!({"hosts": ["r"], "http": [{"directResponse": {"status": 503, "body": {"string": "down"}}}]}),
                Valid,
            ),
            (
                "direct response status",
                json!({"hosts": ["r"], "http": [{"directResponse": {"status": 100}}]}),
                Error("HTTP status 100 is not in range 200-599"),
            ),
            (
                "direct response big",
                json!({"hosts": ["r"], "http": [{"directResponse": {"status": 200, "body": {"string": "x".repeat(200 << 10)}}}]}),
                Warning("large direct_responses"),
            ),
            (
                "rewrite empty",
                route(json!({"rewrite": {}})),
                Error("rewrite must specify at least one of URI"),
            ),
            (
                "rewrite regex",
                route(
                    json!({"rewrite": {"uriRegexRewrite": {"match": "^/a/(.*)", "rewrite": "/\\1"}}}),
                ),
                Valid,
            ),
            (
                "rewrite regex missing",
                route(json!({"rewrite": {"uriRegexRewrite": {"match": "^/a"}}})),
                Error("requires both Rewrite and Match"),
            ),
            (
                "two catch-alls",
                json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "a"}}]}, {"route": [{"destination": {"host": "b"}}]}]}),
                Warning("rule #1 not used (only the last rule can have no matches)"),
            ),
            (
                "duplicate match",
                json!({"hosts": ["r"], "http": [
                    {"match": [{"name": "a", "uri": {"prefix": "/x"}}], "route": [{"destination": {"host": "a"}}]},
                    {"match": [{"name": "b", "uri": {"prefix": "/x"}}], "route": [{"destination": {"host": "b"}}]}]}),
                Warning("match \"b\" is not used (duplicate/overlapping match in rule #0)"),
            ),
            (
                "overlapping prefix",
                json!({"hosts": ["r"], "http": [
                    {"match": [{"uri": {"prefix": "/api/v1/product"}}, {"uri": {"prefix": "/api/v1/products"}}], "route": [{"destination": {"host": "a"}}]}]}),
                Warning("of prefix /api/v1/products is not used"),
            ),
            (
                "legacy gateway",
                json!({"hosts": ["r"], "gateways": ["gw.ns"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Warning("legacy gatewayName format"),
            ),
            (
                "gateway star",
                json!({"hosts": ["r"], "gateways": ["ns/*"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("invalid value for gateway name: \"*\""),
            ),
            (
                "gateway every entry",
                json!({"hosts": ["r"], "gateways": ["mesh", "b@d"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("spec.gateways[1]"),
            ),
            (
                "delegate with gateways",
                json!({"gateways": ["ns/gw"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("delegate virtual service must have no gateways"),
            ),
            (
                "root with route",
                json!({"hosts": ["r"], "http": [{"delegate": {"name": "d", "namespace": "ns"}, "route": [{"destination": {"host": "a"}}]}]}),
                Error("must not specify route"),
            ),
            (
                "root ok",
                json!({"hosts": ["r"], "http": [{"delegate": {"name": "d", "namespace": "ns"}}]}),
                Valid,
            ),
            (
                "delegate child delegating",
                json!({"http": [{"delegate": {"name": "d"}, "route": []}]}),
                Error("delegate HTTP route cannot contain delegate"),
            ),
            (
                "tls route no match",
                json!({"hosts": ["a.b"], "tls": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("TLS route must have at least one match"),
            ),
            (
                "tls sni",
                json!({"hosts": ["a.b"], "tls": [{"match": [{"sniHosts": ["c.d"]}], "route": [{"destination": {"host": "a"}}]}]}),
                Error("SNI host \"c.d\" is not a compatible subset"),
            ),
            (
                "tls sni ok",
                json!({"hosts": ["*.b"], "tls": [{"match": [{"sniHosts": ["a.b"]}], "route": [{"destination": {"host": "a"}}]}]}),
                Valid,
            ),
            (
                "tcp no route",
                json!({"hosts": ["a"], "tcp": [{"match": [{"port": 1}]}]}),
                Error("TCP route is required"),
            ),
            (
                "tcp subnet",
                json!({"hosts": ["a"], "tcp": [{"match": [{"destinationSubnets": ["1.2.3.4/40"]}], "route": [{"destination": {"host": "a"}}]}]}),
                Error("not a valid CIDR block"),
            ),
            (
                "tcp catch-alls",
                json!({"hosts": ["a"], "tcp": [{"route": [{"destination": {"host": "a"}}]}, {"route": [{"destination": {"host": "b"}}]}]}),
                Warning("not used"),
            ),
            (
                "exportTo mix",
                json!({"hosts": ["r"], "exportTo": ["*", "ns1"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("cannot have both public (*) and non-public"),
            ),
            (
                "exportTo tilde",
                json!({"hosts": ["r"], "exportTo": ["~"], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("exportTo ~ (none) is not allowed"),
            ),
            (
                "exportTo dup",
                json!({"hosts": ["r"], "exportTo": ["ns", "."], "http": [{"route": [{"destination": {"host": "a"}}]}]}),
                Error("duplicate entries in exportTo: . and current namespace ns"),
            ),
            (
                "unknown field",
                route(json!({"retryPolicy": {}})),
                Error("spec.http[0].retryPolicy: unknown field"),
            ),
            (
                "bad enum",
                json!({"hosts": ["r"], "http": [{"redirect": {"derivePort": "FOO"}}]}),
                Error("unknown value \"FOO\""),
            ),
            (
                "enum number",
                json!({"hosts": ["r"], "http": [{"redirect": {"derivePort": 1}}]}),
                Valid,
            ),
            (
                "quoted int",
                json!({"hosts": ["r"], "http": [{"route": [{"destination": {"host": "r", "port": {"number": "8080"}}, "weight": "100"}]}]}),
                Valid,
            ),
            (
                "wrong type",
                json!({"hosts": "r"}),
                Error("spec.hosts: expected a list"),
            ),
        ];
        run_table("networking.istio.io/v1", "VirtualService", &cases);
    }
}
