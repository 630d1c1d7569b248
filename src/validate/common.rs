//! Checks shared by every kind: hosts (FQDN, wildcards, host matching), names and labels,
//! `exportTo`, ports, durations, percentages, IPs and CIDRs, protocols, header names and values,
//! gateway references, workload selectors and RE2-compatible regexes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use crate::istio::{Duration, Path};

/// Where errors and warnings of one object are collected, prefixed with `Kind ns/name`.
pub struct Report {
    prefix: String,
    /// Errors, in document order.
    pub errors: Vec<String>,
    /// Warnings, in document order.
    pub warnings: Vec<String>,
    /// Text put before every error message (AuthorizationPolicy's `invalid policy name.ns: `).
    pub error_prefix: Option<String>,
    /// (JSON name, spelling used) for fields the object wrote in proto (snake_case) spelling:
    /// paths in messages use the user's spelling.
    pub aliases: Vec<(String, String)>,
    regex_cache: HashMap<String, Result<(), String>>,
}

impl Report {
    /// A report for the object `kind ns/name`.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Report {
            prefix: format!("{kind} {namespace}/{name}"),
            errors: Vec::new(),
            warnings: Vec::new(),
            error_prefix: None,
            aliases: Vec::new(),
            regex_cache: HashMap::new(),
        }
    }

    /// Records an error at `path`.
    pub fn err(&mut self, p: &Path<'_>, msg: impl fmt::Display) {
        let pre = self.error_prefix.as_deref().unwrap_or("");
        let path = self.path_text(p);
        self.errors
            .push(format!("{}: {path}: {pre}{msg}", self.prefix));
    }

    /// Records an error that has its own (already qualified) text.
    pub fn err_raw(&mut self, msg: impl fmt::Display) {
        self.errors.push(format!("{}: {msg}", self.prefix));
    }

    /// Records a warning at `path`.
    pub fn warn(&mut self, p: &Path<'_>, msg: impl fmt::Display) {
        let path = self.path_text(p);
        self.warnings
            .push(format!("{}: {path}: {msg}", self.prefix));
    }

    /// Renders a path, with fields in the spelling the object used.
    fn path_text(&self, p: &Path<'_>) -> String {
        let mut text = p.to_string();
        for (json, used) in &self.aliases {
            let needle = format!(".{json}");
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(pos) = rest.find(&needle) {
                let after = &rest[pos + needle.len()..];
                let boundary = after.is_empty() || after.starts_with(['.', '[']);
                out.push_str(&rest[..pos]);
                out.push('.');
                out.push_str(if boundary { used } else { json });
                rest = after;
            }
            out.push_str(rest);
            text = out;
        }
        text
    }

    /// Validates a regex once per validation (cached by pattern); see [`check_regex`].
    pub fn regex(&mut self, p: &Path<'_>, pattern: &str) {
        let res = match self.regex_cache.get(pattern) {
            Some(r) => r.clone(),
            None => {
                let r = check_regex(pattern);
                self.regex_cache.insert(pattern.to_string(), r.clone());
                r
            }
        };
        if let Err(e) = res {
            self.err(p, e);
        }
    }
}

// ---------------------------------------------------------------- regex

/// Istio's maximum regex length.
pub const MAX_REGEX_LEN: usize = 1024;
/// RE2's maximum counted repetition.
pub const MAX_REPEAT: u32 = 1000;
/// Compiled program size limit (bounds memory and time for huge regexes).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Checks that `pattern` is a valid RE2-style regex within Istio's limits.
pub fn check_regex(pattern: &str) -> Result<(), String> {
    const RE2: &str =
        "Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)";
    if pattern.is_empty() {
        return Err("regex string match should not be empty".to_string());
    }
    if pattern.len() > MAX_REGEX_LEN {
        return Err(format!(
            "regex is too large, max length allowed is {MAX_REGEX_LEN}"
        ));
    }
    let ast = regex_syntax::ast::parse::ParserBuilder::new()
        .nest_limit(100)
        .build()
        .parse(pattern)
        .map_err(|e| format!("error parsing regexp: {}; {RE2}", one_line(&e.to_string())))?;
    let (max_repeat, bad_flag) = re2_extras(&ast);
    if let Some(n) = max_repeat {
        if n > MAX_REPEAT {
            return Err(format!(
                "error parsing regexp: invalid repeat count {n} (max {MAX_REPEAT}); {RE2}"
            ));
        }
    }
    if bad_flag {
        return Err(format!(
            "error parsing regexp: invalid or unsupported Perl syntax: only the i, m, s and U flags are supported; {RE2}"
        ));
    }
    // Compile the NFA only (what every engine is built from): this is where size limits apply;
    // building the DFAs a matcher would also build costs far more and checks nothing more.
    let config = regex_automata::meta::Config::new()
        .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
        .dfa(false)
        .hybrid(false)
        .onepass(false)
        .backtrack(false);
    regex_automata::meta::Regex::builder()
        .configure(config)
        .build(pattern)
        .map(|_| ())
        .map_err(|e| format!("error parsing regexp: {}; {RE2}", one_line(&e.to_string())))
}

/// What RE2 would reject that Rust's parser accepts: the largest counted repetition, and
/// whether a flag other than RE2's `i`, `m`, `s`, `U` is used (`x`, `R`, `u`).
fn re2_extras(ast: &regex_syntax::ast::Ast) -> (Option<u32>, bool) {
    use regex_syntax::ast::{Ast, Flag, FlagsItemKind, GroupKind, RepetitionKind, RepetitionRange};
    let non_re2 = |flags: &regex_syntax::ast::Flags| {
        flags.items.iter().any(|i| {
            matches!(
                i.kind,
                FlagsItemKind::Flag(Flag::IgnoreWhitespace | Flag::CRLF | Flag::Unicode)
            )
        })
    };
    let mut best: Option<u32> = None;
    let mut bad_flag = false;
    let mut stack = vec![ast];
    while let Some(a) = stack.pop() {
        match a {
            Ast::Repetition(r) => {
                if let RepetitionKind::Range(range) = &r.op.kind {
                    let n = match range {
                        RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n) => *n,
                        RepetitionRange::Bounded(a, b) => (*a).max(*b),
                    };
                    best = Some(best.map_or(n, |b| b.max(n)));
                }
                stack.push(&r.ast);
            }
            Ast::Group(g) => {
                if let GroupKind::NonCapturing(flags) = &g.kind {
                    bad_flag |= non_re2(flags);
                }
                stack.push(&g.ast);
            }
            Ast::Flags(f) => bad_flag |= non_re2(&f.flags),
            Ast::Alternation(x) => stack.extend(x.asts.iter()),
            Ast::Concat(x) => stack.extend(x.asts.iter()),
            _ => {}
        }
    }
    (best, bad_flag)
}

fn one_line(s: &str) -> String {
    // regex-syntax errors are multi-line with a caret diagram; keep the last line (the reason).
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    match lines.iter().rev().find(|l| l.starts_with("error:")) {
        Some(l) => l.trim_start_matches("error:").trim().to_string(),
        None => lines.join(" "),
    }
}

// ---------------------------------------------------------------- names and hosts

/// A DNS label that may contain upper case (host name labels).
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// An RFC 1123 label as Istio checks it (`labels.IsDNS1123Label`: upper case allowed).
pub fn is_dns1123_label(s: &str) -> bool {
    is_dns_label(s)
}

/// Dot-separated RFC 1123 labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_wildcard_label(s: &str) -> bool {
    if s.len() > 63 {
        return false;
    }
    if s == "*" {
        return true;
    }
    match s.strip_prefix('*') {
        Some(rest) => {
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            is_dns_label(rest)
        }
        None => is_dns_label(s),
    }
}

fn check_dns_labels(_whole: &str, domain: &str) -> Result<(), String> {
    let labels: Vec<&str> = domain.split('.').collect();
    let n = labels.len();
    let tld = labels.last().copied().unwrap_or("");
    if !tld.is_empty() && tld.parse::<i64>().is_ok() {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, l) in labels.iter().enumerate() {
        if i == n - 1 && l.is_empty() && n > 1 {
            continue; // trailing dot
        }
        if !is_dns_label(l) {
            return Err(format!(
                "domain name {domain:?} invalid (label {l:?} invalid)"
            ));
        }
    }
    Ok(())
}

fn dns_preconditions(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    if domain.len() > 255 {
        return Err(format!("domain name {domain:?} too long (max 255)"));
    }
    Ok(())
}

/// Istio's `ValidateWildcardDomain`: the first label may be `*`, `*foo` or `*-foo`.
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    dns_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (domain, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(r) => check_dns_labels(domain, r),
        None => Ok(()),
    }
}

/// Istio's `ValidateFQDN` (no wildcard).
pub fn validate_fqdn(domain: &str) -> Result<(), String> {
    dns_preconditions(domain)?;
    check_dns_labels(domain, domain)
}

/// A host containing `*` must be exactly `*` or start with `*.`.
pub fn validate_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host != "*" && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

/// Whether a host name starts with `*`.
pub fn is_wildcarded(h: &str) -> bool {
    h.starts_with('*')
}

/// Istio's `host.Name.Matches`: whether two (possibly wildcard) hosts overlap.
pub fn hosts_match(n: &str, o: &str) -> bool {
    match (is_wildcarded(n), is_wildcarded(o)) {
        (true, true) => {
            if n.len() < o.len() {
                o[1..].ends_with(&n[1..])
            } else {
                n[1..].ends_with(&o[1..])
            }
        }
        (true, false) => o.ends_with(&n[1..]),
        (false, true) => n.ends_with(&o[1..]),
        (false, false) => n == o,
    }
}

/// Istio's `host.Name.SubsetOf`.
pub fn host_subset_of(n: &str, o: &str) -> bool {
    match (is_wildcarded(n), is_wildcarded(o)) {
        (true, true) => n[1..].ends_with(&o[1..]),
        (true, false) => false,
        (false, true) => n.ends_with(&o[1..]),
        (false, false) => n == o,
    }
}

/// Whether `s` parses as an IPv4 or IPv6 address.
pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// An IP, or (with exactly one `/`) a CIDR block.
pub fn validate_ip_or_cidr(s: &str) -> Result<(), String> {
    if s.matches('/').count() == 1 {
        if s.parse::<ipnet::IpNet>().is_err() {
            return Err(format!("{s} is not a valid CIDR block"));
        }
        return Ok(());
    }
    if !is_ip(s) {
        return Err(format!("{s} is not a valid IP"));
    }
    Ok(())
}

// ---------------------------------------------------------------- numbers

/// Ports are 1..65535.
pub fn validate_port(port: u32) -> Result<(), String> {
    if !(1..=65535).contains(&port) {
        return Err(format!("port number {port} must be in the range 1..65535"));
    }
    Ok(())
}

/// Istio's `ValidateDuration`: at least 1ms and a whole number of milliseconds.
pub fn validate_duration(d: &Duration) -> Result<(), String> {
    if d.nanos < Duration::MILLI {
        return Err(format!("duration must be greater than 1ms (got {d})"));
    }
    if d.nanos % Duration::MILLI != 0 {
        return Err("only durations to ms precision are supported".to_string());
    }
    Ok(())
}

/// Checks an optional duration at `p`.
pub fn check_duration(r: &mut Report, p: &Path<'_>, d: &Option<Duration>) {
    if let Some(d) = d {
        if let Err(e) = validate_duration(d) {
            r.err(p, e);
        }
    }
}

/// An integer percentage 0..100.
pub fn validate_percent(v: i64) -> Result<(), String> {
    if !(0..=100).contains(&v) {
        return Err(format!("percentage {v} is not in range 0..100"));
    }
    Ok(())
}

/// A `Percent` value: 0, or within [0.0001, 100].
pub fn validate_percentage(v: f64) -> Result<(), String> {
    if v == 0.0 || (0.0001..=100.0).contains(&v) {
        return Ok(());
    }
    Err(format!(
        "percentage {v} is neither 0.0, nor in range [0.0001, 100.0]"
    ))
}

// ---------------------------------------------------------------- labels and metadata

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A Kubernetes label key: optional DNS subdomain prefix and `/`, then a name.
pub fn is_label_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(k),
    }
}

/// A Kubernetes label value as Istio checks it: empty or a qualified name (no length limit).
pub fn is_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    let b = v.as_bytes();
    b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Validates a label map (`invalid tag key` / `invalid tag value`).
pub fn check_labels(r: &mut Report, p: &Path<'_>, labels: &BTreeMap<String, String>) {
    for (k, v) in labels {
        let kp = p.key(k);
        if !is_label_key(k) {
            r.err(&kp, format!("invalid tag key: {k:?}"));
        }
        if !is_label_value(v) {
            r.err(&kp, format!("invalid tag value: {v:?}"));
        }
    }
}

/// Workload selector labels (Istio's `validateWorkloadSelector`): no empty key and no `*` in a
/// key or value; an empty map is a warning with `empty_warning`.
pub fn check_selector_labels(
    r: &mut Report,
    p: &Path<'_>,
    labels: &BTreeMap<String, String>,
    empty_warning: &str,
) {
    for (k, v) in labels {
        let kp = p.key(k);
        if k.is_empty() {
            r.err(
                &kp,
                format!("empty key is not supported in selector: \"={v}\""),
            );
        }
        if k.contains('*') || v.contains('*') {
            r.err(
                &kp,
                format!("wildcard is not supported in selector: \"{k}={v}\""),
            );
        }
    }
    if labels.is_empty() {
        r.warn(p, empty_warning);
    }
}

/// Istio's `validateExportTo`.
pub fn check_export_to(
    r: &mut Report,
    p: &Path<'_>,
    namespace: &str,
    export_to: &[String],
    service_entry: bool,
    dr_with_selector: bool,
) {
    if export_to.is_empty() {
        return;
    }
    let mut set: Vec<&str> = Vec::new();
    for (i, e) in export_to.iter().enumerate() {
        let ip = p.index(i);
        let key: &str = if e == "." { namespace } else { e };
        if set.contains(&key) {
            if key != e {
                r.err(
                    &ip,
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                );
            } else {
                r.err(&ip, format!("duplicate entries in exportTo for entry {e}"));
            }
            continue;
        }
        if service_entry && e == "~" {
            set.push(key);
            continue;
        }
        match key {
            "." | "*" => set.push(key),
            "~" => r.err(
                &ip,
                "exportTo ~ (none) is not allowed for Istio configuration objects",
            ),
            k if is_dns1123_label(k) => set.push(key),
            _ => r.err(
                &ip,
                format!(
                    "only .,*, or a valid DNS 1123 label is allowed as exportTo entry (got {e:?})"
                ),
            ),
        }
    }
    if dr_with_selector && !set.is_empty() {
        if set.contains(&namespace) {
            if set.len() > 1 {
                r.err(
                    p,
                    "destination rule with workload selector cannot have multiple entries in exportTo",
                );
            }
        } else {
            r.err(
                p,
                "destination rule with workload selector cannot have exportTo beyond current namespace",
            );
        }
    }
    if set.contains(&"*") && export_to.len() > 1 {
        r.err(
            p,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if set.contains(&"~") && export_to.len() > 1 {
        r.err(p, "cannot export service entry to no one (~) and someone");
    }
}

// ---------------------------------------------------------------- protocols

/// Istio's protocol names (case-insensitive); `None` for an unknown one.
pub fn parse_protocol(s: &str) -> Option<&'static str> {
    const KNOWN: [&str; 12] = [
        "HTTP",
        "HTTPS",
        "HTTP2",
        "HTTP_PROXY",
        "GRPC",
        "GRPC-WEB",
        "TCP",
        "TLS",
        "UDP",
        "MONGO",
        "REDIS",
        "MYSQL",
    ];
    KNOWN.iter().copied().find(|k| k.eq_ignore_ascii_case(s))
}

/// HTTP, HTTP2, HTTP_PROXY, GRPC, GRPC-WEB.
pub fn is_http_like(p: &str) -> bool {
    matches!(
        parse_protocol(p),
        Some("HTTP" | "HTTP2" | "HTTP_PROXY" | "GRPC" | "GRPC-WEB")
    )
}

/// HTTPS, TLS.
pub fn is_tls_like(p: &str) -> bool {
    matches!(parse_protocol(p), Some("HTTPS" | "TLS"))
}

/// TCP-family (TCP, TLS, HTTPS, MONGO, REDIS, MYSQL): not HTTP-like and not UDP.
pub fn is_tcp_family(p: &str) -> bool {
    matches!(
        parse_protocol(p),
        Some("TCP" | "TLS" | "HTTPS" | "MONGO" | "REDIS" | "MYSQL")
    )
}

// ---------------------------------------------------------------- headers

/// An RFC 7230 token character.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// An RFC 7230 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A JWT claim pseudo-header key (`@request.auth.claims.x` or `@request.auth.claims[x]`).
pub fn is_jwt_claim_key(s: &str) -> bool {
    const PREFIX: &str = "@request.auth.claims";
    let rest = match s.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => s.get(PREFIX.len()..),
        _ => None,
    };
    match rest {
        Some(rest) => {
            (rest.starts_with('.') && rest.len() > 1)
                || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
        }
        None => false,
    }
}

/// A header name usable in a match: a token, a pseudo-header or a JWT claim key.
pub fn validate_match_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_string());
    }
    if is_jwt_claim_key(name)
        || matches!(
            name,
            ":method" | ":scheme" | ":authority" | ":path" | ":status"
        )
        || is_token(name)
    {
        return Ok(());
    }
    Err(format!("header name {name} is not a valid header name"))
}

/// Istio's `ValidateHTTPHeaderValue`: no control characters but TAB, and Envoy's `%VAR%` /
/// `%VAR(["a","b"])%` substitution syntax well formed (`%%` escapes a percent sign).
pub fn validate_header_value(v: &str) -> Result<(), String> {
    if v.chars().any(|c| (c < ' ' && c != '\t') || c == '\u{7f}') {
        return Err(format!("header value configuration {v} is invalid"));
    }
    envoy_header_syntax(v)
        .map_err(|e| format!("header value configuration: invalid header configuration. {e}"))
}

/// The states of Envoy's header value parser.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HvState {
    Literal,
    VariableName,
    ExpectArray,
    ExpectString,
    InString,
    ExpectDelimiterOrEnd,
    ExpectArgsEnd,
    ExpectVariableEnd,
}

fn envoy_header_syntax(v: &str) -> Result<(), String> {
    use HvState::*;
    let b = v.as_bytes();
    let mut state = Literal;
    let mut pos = 0;
    while pos < b.len() {
        let ch = b[pos];
        let has_next = pos + 1 < b.len();
        match state {
            Literal => {
                if ch == b'%' {
                    if !has_next {
                        return Err("Un-escaped %".to_string());
                    }
                    if b[pos + 1] == b'%' {
                        pos += 1;
                    } else {
                        state = VariableName;
                    }
                }
            }
            VariableName => {
                if ch == b'%' {
                    state = Literal;
                } else if ch == b'(' {
                    state = ExpectArray;
                }
            }
            ExpectArray => {
                if ch == b'[' {
                    state = ExpectString;
                } else if ch != b' ' {
                    state = InString;
                }
            }
            ExpectDelimiterOrEnd => match ch {
                b',' => state = ExpectString,
                b']' => state = ExpectArgsEnd,
                b' ' => {}
                _ => return Err("Expecting ',', ']', or whitespace".to_string()),
            },
            ExpectString => {
                if ch == b'"' {
                    state = InString;
                } else if ch != b' ' {
                    return Err("Expecting '\"'".to_string());
                }
            }
            InString => {
                if ch == b'\\' {
                    if !has_next {
                        return Err("Un-terminated backslash in JSON string".to_string());
                    }
                    pos += 1;
                } else if ch == b')' {
                    state = ExpectVariableEnd;
                } else if ch == b'"' {
                    state = ExpectDelimiterOrEnd;
                }
            }
            ExpectArgsEnd => {
                if ch == b')' {
                    state = ExpectVariableEnd;
                } else if ch != b' ' {
                    return Err("Expecting ')' or whitespace after the arguments".to_string());
                }
            }
            ExpectVariableEnd => {
                if ch == b'%' {
                    state = Literal;
                } else if ch != b' ' {
                    return Err("Expecting '%' or whitespace after the arguments".to_string());
                }
            }
        }
        pos += 1;
    }
    if state != Literal {
        return Err(format!("Un-terminated variable expression '{v}'"));
    }
    Ok(())
}

// ---------------------------------------------------------------- gateways

/// Gateway references in a VirtualService (`ns/name`, or a legacy name without `/`).
/// Unlike Istio, every entry is checked (Istio stops at the first entry without `/`).
pub fn check_gateway_names(r: &mut Report, p: &Path<'_>, gateways: &[String]) {
    for (i, g) in gateways.iter().enumerate() {
        let gp = p.index(i);
        match g.split_once('/') {
            Some((ns, name)) => {
                if ns.is_empty() || name.is_empty() {
                    r.err(&gp, "config namespace and gateway name cannot be empty");
                }
                if !is_dns1123_label(ns) {
                    r.err(&gp, format!("invalid value for namespace: {ns:?}"));
                }
                if !is_dns1123_label(name) {
                    r.err(&gp, format!("invalid value for gateway name: {name:?}"));
                }
            }
            None => {
                if g.contains('.') {
                    let mut parts = g.split('.');
                    let name = parts.next().unwrap_or("");
                    let ns = parts.next().unwrap_or("");
                    r.warn(
                        &gp,
                        format!(
                            "using legacy gatewayName format {g:?}; prefer the <namespace>/<name> format: \"{ns}/{name}\""
                        ),
                    );
                }
                if let Err(e) = validate_fqdn(g) {
                    r.err(&gp, format!("invalid gateway name {g:?}: {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_domains() {
        for ok in [
            "reviews",
            "foo.bar",
            "*.foo.bar",
            "*",
            "*foo.bar",
            "*-foo.bar",
            "Foo.Example.com",
            "foo.bar.",
        ] {
            assert!(validate_wildcard_domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "foo.ba!r",
            "foo_bar.com",
            "foo.*.bar",
            "a..b",
            "foo.123",
        ] {
            assert!(validate_wildcard_domain(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_wildcard_domain("foo.ba!r").unwrap_err(),
            "domain name \"ba!r\" invalid (label \"ba!r\" invalid)"
        );
    }

    #[test]
    fn host_matching() {
        assert!(hosts_match("*.foo.bar", "*.bar"));
        assert!(hosts_match("a.bar", "*.bar"));
        assert!(!hosts_match("a.bar", "b.bar"));
        assert!(host_subset_of("a.foo.bar", "*.bar"));
        assert!(!host_subset_of("*.bar", "a.bar"));
    }

    #[test]
    fn regexes() {
        assert!(check_regex("/usrv(/.*)?").is_ok());
        assert!(check_regex("^(?!/admin).*").is_err());
        assert!(check_regex("*foo").is_err());
        assert!(check_regex("a{1001}").is_err());
        assert!(check_regex("a{1000}").is_ok());
        assert!(check_regex("").is_err());
        assert!(check_regex(&"a".repeat(1025)).is_err());
        assert!(check_regex(r"(a)\1").is_err());
        assert!(check_regex("(?x) a b").is_err());
        assert!(check_regex("(?i:ab)").is_ok());
    }

    #[test]
    fn header_values() {
        assert!(validate_header_value("%START_TIME%").is_ok());
        assert!(validate_header_value("100%% off").is_ok());
        assert!(validate_header_value("%REQ([\"a\",\"b\"])%").is_ok());
        assert!(validate_header_value("abcd%oijasodifj")
            .unwrap_err()
            .contains("Un-terminated variable expression"));
        assert!(validate_header_value("100% off")
            .unwrap_err()
            .contains("Un-terminated variable expression"));
        assert!(validate_header_value("100%")
            .unwrap_err()
            .contains("Un-escaped %"));
        assert!(validate_header_value("a\nb").is_err());
        assert!(validate_header_value("a\tb").is_ok());
    }

    #[test]
    fn labels() {
        assert!(is_label_key("app"));
        assert!(is_label_key("app.kubernetes.io/name"));
        assert!(!is_label_key("bad key"));
        assert!(!is_label_key("-x"));
        assert!(is_label_value(""));
        assert!(!is_label_value("a b"));
    }

    #[test]
    fn durations() {
        assert!(validate_duration(&Duration::from_nanos(0)).is_err());
        assert!(validate_duration(&Duration::from_nanos(Duration::MILLI)).is_ok());
        assert!(validate_duration(&Duration::from_nanos(1_500_000)).is_err());
    }
}
