//! DestinationRule rules (spec §2.2): host, subsets, exportTo and workload selector, and the
//! traffic policy checks (connection pool, outlier detection, load balancer and locality,
//! client TLS, port-level settings, tunnel, proxy protocol) that Sidecar also reuses.

use std::collections::{BTreeMap, BTreeSet};

use super::common::*;
use crate::istio::networking::*;
use crate::istio::object::Metadata;
use crate::istio::{Duration, Path};

const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

/// Validates a DestinationRule spec.
pub fn validate(r: &mut Report, meta: &Metadata, dr: &DestinationRule) {
    let spec = Path::Root("spec");
    if let Err(e) = validate_wildcard_domain(&dr.host) {
        r.err(&spec.field("host"), e);
    }
    if let Some(tp) = &dr.traffic_policy {
        validate_traffic_policy(r, meta, tp, &spec.field("trafficPolicy"));
    }
    let sp = spec.field("subsets");
    let mut names: Vec<&str> = Vec::new();
    for (i, s) in dr.subsets.iter().enumerate() {
        let ip = sp.index(i);
        let np = ip.field("name");
        if names.contains(&s.name.as_str()) {
            r.err(&np, format!("duplicate subset names: {}", s.name));
        }
        names.push(&s.name);
        if s.name.is_empty() {
            r.err(&np, "subset name cannot be empty");
        } else if !is_dns1123_label(&s.name) {
            r.err(&np, format!("subset name is invalid: {}", s.name));
        }
        check_labels(r, &ip.field("labels"), &s.labels);
        if let Some(tp) = &s.traffic_policy {
            validate_traffic_policy(r, meta, tp, &ip.field("trafficPolicy"));
        }
    }
    check_export_to(
        r,
        &spec.field("exportTo"),
        &meta.namespace,
        &dr.export_to,
        false,
        dr.workload_selector.is_some(),
    );
    if let Some(ws) = &dr.workload_selector {
        let wp = spec.field("workloadSelector");
        check_selector_labels(
            r,
            &wp.field("matchLabels"),
            &ws.match_labels,
            "workload selector specified without labels",
        );
    }
}

/// Istio's `validateTrafficPolicy`.
pub fn validate_traffic_policy(r: &mut Report, meta: &Metadata, tp: &TrafficPolicy, p: &Path<'_>) {
    if tp.outlier_detection.is_none()
        && tp.connection_pool.is_none()
        && tp.load_balancer.is_none()
        && tp.tls.is_none()
        && tp.port_level_settings.is_empty()
        && tp.tunnel.is_none()
        && tp.proxy_protocol.is_none()
        && tp.retry_budget.is_none()
    {
        r.err(p, "traffic policy must have at least one field");
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        r.err(
            &p.field("proxyProtocol"),
            "tunnel and proxyProtocol must not be set together",
        );
        return;
    }
    if let Some(od) = &tp.outlier_detection {
        validate_outlier_detection(r, od, &p.field("outlierDetection"));
    }
    if let Some(cp) = &tp.connection_pool {
        validate_connection_pool(r, cp, &p.field("connectionPool"));
    }
    if let Some(lb) = &tp.load_balancer {
        validate_load_balancer(
            r,
            lb,
            tp.outlier_detection.is_some(),
            &p.field("loadBalancer"),
        );
    }
    if let Some(tls) = &tp.tls {
        validate_client_tls(r, meta, tls, &p.field("tls"));
    }
    let pp = p.field("portLevelSettings");
    if tp.port_level_settings.len() > 4096 {
        r.err(&pp, "must have at most 4096 items");
    }
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let ip = pp.index(i);
        if pl.port.is_none() {
            r.err(&ip.field("port"), "portTrafficPolicy must have valid port");
        }
        if pl.outlier_detection.is_none()
            && pl.connection_pool.is_none()
            && pl.load_balancer.is_none()
            && pl.tls.is_none()
        {
            r.err(&ip, "port traffic policy must have at least one field");
            continue;
        }
        if let Some(od) = &pl.outlier_detection {
            validate_outlier_detection(r, od, &ip.field("outlierDetection"));
        }
        if let Some(cp) = &pl.connection_pool {
            validate_connection_pool(r, cp, &ip.field("connectionPool"));
        }
        if let Some(lb) = &pl.load_balancer {
            validate_load_balancer(
                r,
                lb,
                pl.outlier_detection.is_some(),
                &ip.field("loadBalancer"),
            );
        }
        if let Some(tls) = &pl.tls {
            validate_client_tls(r, meta, tls, &ip.field("tls"));
        }
    }
    if let Some(t) = &tp.tunnel {
        let tp_ = p.field("tunnel");
        if !t.protocol.is_empty() && t.protocol != "CONNECT" && t.protocol != "POST" {
            r.err(
                &tp_.field("protocol"),
                format!(
                    "tunnel protocol must be \"CONNECT\" or \"POST\" (got {:?})",
                    t.protocol
                ),
            );
        }
        if validate_fqdn(&t.target_host).is_err() && !is_ip(&t.target_host) {
            r.err(
                &tp_.field("targetHost"),
                format!(
                    "tunnel target host must be valid FQDN or IP address: {:?}",
                    t.target_host
                ),
            );
        }
        if let Err(e) = validate_port(t.target_port) {
            r.err(
                &tp_.field("targetPort"),
                format!("tunnel target port is invalid: {e}"),
            );
        }
    }
    if let Some(pp) = &tp.proxy_protocol {
        if let ProxyProtocolVersion::Unknown(n) = pp.version {
            r.err(
                &p.field("proxyProtocol").field("version"),
                format!("proxy protocol version is invalid: {n}"),
            );
        }
    }
    if let Some(rb) = &tp.retry_budget {
        check_duration(
            r,
            &p.field("retryBudget").field("budgetInterval"),
            &rb.budget_interval,
        );
        if let Some(pct) = rb.percent {
            if !(0.0..=100.0).contains(&pct) {
                r.err(
                    &p.field("retryBudget").field("percent"),
                    format!("retry budget percent {pct} is not in range 0..100"),
                );
            }
        }
    }
}

/// Istio's `validateOutlierDetection`.
pub fn validate_outlier_detection(r: &mut Report, od: &OutlierDetection, p: &Path<'_>) {
    check_duration(r, &p.field("baseEjectionTime"), &od.base_ejection_time);
    check_duration(r, &p.field("interval"), &od.interval);
    if od.consecutive_errors != 0 {
        r.warn(
            &p.field("consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if !od.split_external_local_origin_errors
        && od.consecutive_local_origin_failures.unwrap_or(0) > 0
    {
        r.err(
            &p.field("consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    if let Err(e) = validate_percent(i64::from(od.max_ejection_percent)) {
        r.err(&p.field("maxEjectionPercent"), e);
    }
    if let Err(e) = validate_percent(i64::from(od.min_health_percent)) {
        r.err(&p.field("minHealthPercent"), e);
    }
    let cp = p.field("outlierDetectionHttpErrorCodes");
    for (i, c) in od.outlier_detection_http_error_codes.iter().enumerate() {
        if !(100..=599).contains(c) {
            r.err(
                &cp.index(i),
                format!("HTTP error code {c} must be in range 100..599"),
            );
        }
    }
}

/// Istio's `validateConnectionPool`.
pub fn validate_connection_pool(r: &mut Report, cp: &ConnectionPoolSettings, p: &Path<'_>) {
    if cp.http.is_none() && cp.tcp.is_none() {
        r.err(p, "connection pool must have at least one field");
        return;
    }
    if let Some(h) = &cp.http {
        let hp = p.field("http");
        let checks = [
            (
                "http1MaxPendingRequests",
                h.http1_max_pending_requests,
                "http1 max pending requests must be non-negative",
            ),
            (
                "http2MaxRequests",
                h.http2_max_requests,
                "http2 max requests must be non-negative",
            ),
            (
                "maxRequestsPerConnection",
                h.max_requests_per_connection,
                "max requests per connection must be non-negative",
            ),
            (
                "maxRetries",
                h.max_retries,
                "max retries must be non-negative",
            ),
            (
                "maxConcurrentStreams",
                h.max_concurrent_streams,
                "max concurrent streams must be non-negative",
            ),
        ];
        for (field, v, msg) in checks {
            if v < 0 {
                r.err(&hp.field(field), msg);
            }
        }
        check_duration(r, &hp.field("idleTimeout"), &h.idle_timeout);
        if h.h2_upgrade_policy == H2UpgradePolicy::Upgrade && h.use_client_protocol {
            r.err(
                &hp.field("h2UpgradePolicy"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(ka) = &h.http2_keep_alive {
            let kp = hp.field("http2KeepAlive");
            match &ka.interval {
                None => r.err(
                    &kp.field("interval"),
                    "http2 keepalive interval is required",
                ),
                Some(_) => check_duration(r, &kp.field("interval"), &ka.interval),
            }
            match &ka.timeout {
                None => r.err(&kp.field("timeout"), "http2 keepalive timeout is required"),
                Some(_) => check_duration(r, &kp.field("timeout"), &ka.timeout),
            }
        }
    }
    if let Some(t) = &cp.tcp {
        let tp = p.field("tcp");
        if t.max_connections < 0 {
            r.err(
                &tp.field("maxConnections"),
                "max connections must be non-negative",
            );
        }
        check_duration(r, &tp.field("connectTimeout"), &t.connect_timeout);
        check_duration(
            r,
            &tp.field("maxConnectionDuration"),
            &t.max_connection_duration,
        );
        if let Some(it) = &t.idle_timeout {
            // Istio skips the check when the timeout truncates to 0ms (0s means "disabled").
            if it.nanos / Duration::MILLI != 0 {
                check_duration(r, &tp.field("idleTimeout"), &t.idle_timeout);
            }
        }
        if let Some(ka) = &t.tcp_keepalive {
            let kp = tp.field("tcpKeepalive");
            check_duration(r, &kp.field("time"), &ka.time);
            check_duration(r, &kp.field("interval"), &ka.interval);
        }
    }
}

/// Istio's `isPrime` (which counts 1 as prime).
fn is_prime(n: u64) -> bool {
    if n != 0 && n < 4 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut i = 3u64;
    while i.saturating_mul(i) <= n {
        if n.is_multiple_of(i) {
            return false;
        }
        i += 2;
    }
    true
}

/// Istio's `validateLoadBalancer` (+ locality, zone-aware and warmup settings).
pub fn validate_load_balancer(
    r: &mut Report,
    lb: &LoadBalancerSettings,
    has_outlier: bool,
    p: &Path<'_>,
) {
    let policies = [
        lb.simple.is_some(),
        lb.consistent_hash.is_some(),
        lb.backend_utilization.is_some(),
    ];
    if policies.iter().filter(|x| **x).count() > 1 {
        r.err(
            p,
            "only one of simple, consistentHash or backendUtilization may be set",
        );
    }
    if let Some(ch) = &lb.consistent_hash {
        let cp = p.field("consistentHash");
        let keys = [
            ch.http_header_name.is_some(),
            ch.http_cookie.is_some(),
            ch.use_source_ip.is_some(),
            ch.http_query_parameter_name.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if keys > 1 {
            r.err(
                &cp,
                "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set",
            );
        }
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            r.err(&cp, "only one of ringHash or maglev may be set");
        }
        if let Some(c) = &ch.http_cookie {
            let kp = cp.field("httpCookie");
            if c.name.is_empty() {
                r.err(&kp.field("name"), "name required for HttpCookie");
            }
            let ap = kp.field("attributes");
            let mut seen: Vec<&str> = Vec::new();
            for (i, a) in c.attributes.iter().enumerate() {
                if a.name.is_empty() {
                    r.err(&ap.index(i), "cookie attribute name cannot be empty");
                } else if seen.contains(&a.name.as_str()) {
                    r.err(
                        &ap.index(i),
                        format!("duplicate cookie attribute name: {}", a.name),
                    );
                }
                seen.push(&a.name);
            }
        }
        if ch.minimum_ring_size.unwrap_or(0) != 0 {
            let mp = cp.field("minimumRingSize");
            r.warn(
                &mp,
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
            );
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                r.err(
                    &mp,
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        if let Some(m) = &ch.maglev {
            let tp = cp.field("maglev");
            let tsp = tp.field("tableSize");
            let n = m.table_size.unwrap_or(0);
            if n == 0 {
                r.err(&tsp, "tableSize must be set for maglev");
            }
            if n >= 5_000_011 {
                r.err(&tsp, "tableSize must be less than 5000011 for maglev");
            }
            if !is_prime(n) {
                r.err(&tsp, "tableSize must be a prime number for maglev");
            }
        }
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        r.err(
            &p.field("zoneAwareLbSetting"),
            "only one of localityLbSetting and zoneAwareLbSetting can be set",
        );
    }
    if let Some(l) = &lb.locality_lb_setting {
        validate_locality_lb(r, l, has_outlier, &p.field("localityLbSetting"));
    }
    if let Some(z) = &lb.zone_aware_lb_setting {
        validate_zone_aware_lb(r, z, has_outlier, &p.field("zoneAwareLbSetting"));
    }
    check_duration(r, &p.field("warmupDurationSecs"), &lb.warmup_duration_secs);
    if let Some(w) = &lb.warmup {
        let wp = p.field("warmup");
        match &w.duration {
            None => r.err(&wp.field("duration"), "duration is required"),
            Some(_) => check_duration(r, &wp.field("duration"), &w.duration),
        }
        if let Some(mp) = w.minimum_percent {
            if mp > 100.0 {
                r.err(
                    &wp.field("minimumPercent"),
                    "minimumPercent value should be less than or equal to 100",
                );
            }
            if mp < 0.0 {
                r.err(
                    &wp.field("minimumPercent"),
                    "minimumPercent value should be greater than or equal to 0",
                );
            }
        }
        if let Some(a) = w.aggression {
            if a <= 0.0 {
                r.err(
                    &wp.field("aggression"),
                    "aggression should be greater than 0",
                );
            }
        }
    }
}

fn validate_zone_aware_lb(r: &mut Report, z: &ZoneAwareLbSetting, has_outlier: bool, p: &Path<'_>) {
    let fpp = p.field("failoverPriority");
    for (i, l) in z.failover_priority.iter().enumerate() {
        if TOPOLOGY_LABELS.contains(&l.as_str()) {
            r.err(
                &fpp.index(i),
                format!("'failover_priority' for zone aware lb must not use topology label '{l}'; region- and zone-level routing are handled automatically"),
            );
        }
    }
    if (!z.failover.is_empty() || !z.failover_priority.is_empty()) && !has_outlier {
        r.warn(p, "outlier detection policy must be provided for failover");
    }
    let fp = p.field("failover");
    for (i, f) in z.failover.iter().enumerate() {
        let ip = fp.index(i);
        if f.from == f.to {
            r.err(
                &ip,
                "zone aware lb failover settings must specify different regions",
            );
        }
        if f.from.contains('/') || f.to.contains('/') {
            r.err(&ip, "zone aware lb failover only specifies region; zone and subzone failover are handled automatically");
        }
        if f.from.contains('*') || f.to.contains('*') {
            r.err(
                &ip,
                "zone aware lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// Istio's `ValidateLocalityLbSetting` (which stops at the first distribute error).
fn validate_locality_lb(r: &mut Report, l: &LocalityLbSetting, has_outlier: bool, p: &Path<'_>) {
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        r.err(
            p,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
        return;
    }
    if !l.failover.is_empty() {
        for label in &l.failover_priority {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                r.err(
                    &p.field("failoverPriority"),
                    format!(
                        "can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'"
                    ),
                );
                return;
            }
        }
    }
    let dp = p.field("distribute");
    let mut sources: Vec<&str> = Vec::new();
    for (i, d) in l.distribute.iter().enumerate() {
        let ip = dp.index(i);
        sources.push(&d.from);
        let mut total: u64 = 0;
        let tp = ip.field("to");
        for (loc, w) in &d.to {
            if *w == 0 || *w > 100 {
                r.err(&tp.key(loc), "locality weight must be in range [1, 100]");
                return;
            }
            total += u64::from(*w);
        }
        if total != 100 {
            r.err(&tp, format!("total locality weight {total} != 100"));
            return;
        }
        let dests: Vec<&str> = d.to.keys().map(String::as_str).collect();
        if let Err(e) = validate_localities(&dests) {
            r.err(&tp, e);
        }
    }
    if let Err(e) = validate_localities(&sources) {
        r.err(&dp, e);
    }
    if (!l.failover.is_empty() || !l.failover_priority.is_empty()) && !has_outlier {
        r.warn(p, "outlier detection policy must be provided for failover");
    }
    let fp = p.field("failover");
    for (i, f) in l.failover.iter().enumerate() {
        let ip = fp.index(i);
        if f.from == f.to {
            r.err(
                &ip,
                "locality lb failover settings must specify different regions",
            );
        }
        if f.from.contains('/') || f.to.contains('/') {
            r.err(&ip, "locality lb failover only specify region");
        }
        if f.from.contains('*') || f.to.contains('*') {
            r.err(
                &ip,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

/// Istio's `validateLocalities`: one trailing `*` at most, no empty segments, no overlaps.
fn validate_localities(locs: &[&str]) -> Result<(), String> {
    // region -> zone -> subzones; "*" stands for "everything below".
    let mut tree: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for loc in locs {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            return Err(format!(
                "locality {loc} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        let overlap = || format!("locality {loc} overlap with previous specified ones");
        if tree.contains_key("*") {
            return Err(overlap());
        }
        let items: Vec<&str> = loc.splitn(3, '/').collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(format!(
                "locality {loc} must not contain empty region/zone/subzone info"
            ));
        }
        let region = items.first().copied().unwrap_or("");
        match items.len() {
            1 => {
                if tree.contains_key(region) {
                    return Err(overlap());
                }
                tree.insert(region, BTreeMap::from([("*", BTreeSet::from(["*"]))]));
            }
            2 => {
                let zone = items[1];
                match tree.get_mut(region) {
                    Some(zones) => {
                        if zones.contains_key("*") || zones.contains_key(zone) {
                            return Err(overlap());
                        }
                        zones.insert(zone, BTreeSet::from(["*"]));
                    }
                    None => {
                        tree.insert(region, BTreeMap::from([(zone, BTreeSet::from(["*"]))]));
                    }
                }
            }
            _ => {
                let (zone, sub) = (items[1], items[2]);
                match tree.get_mut(region) {
                    Some(zones) => {
                        if zones.contains_key("*") {
                            return Err(overlap());
                        }
                        match zones.get_mut(zone) {
                            Some(subs) => {
                                if subs.contains("*") || subs.contains(sub) {
                                    return Err(overlap());
                                }
                                subs.insert(sub);
                            }
                            None => {
                                zones.insert(zone, BTreeSet::from([sub]));
                            }
                        }
                    }
                    None => {
                        tree.insert(region, BTreeMap::from([(zone, BTreeSet::from([sub]))]));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Istio's client `validateTLS`.
pub fn validate_client_tls(r: &mut Report, meta: &Metadata, t: &ClientTlsSettings, p: &Path<'_>) {
    let simple_or_mutual = matches!(t.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual);
    if t.insecure_skip_verify == Some(true) {
        let ip = p.field("insecureSkipVerify");
        if t.mode == ClientTlsMode::Simple
            && (!t.ca_certificates.is_empty()
                || !t.credential_name.is_empty()
                || !t.subject_alt_names.is_empty())
        {
            r.err(
                &ip,
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if t.mode == ClientTlsMode::Mutual
            && (!t.ca_certificates.is_empty() || !t.subject_alt_names.is_empty())
        {
            r.err(
                &ip,
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    if let Some(rest) = t.credential_name.strip_prefix("configmap://") {
        let cp = p.field("credentialName");
        let mut split = rest.split('/');
        match (split.next(), split.next()) {
            (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => {
                if ns != meta.namespace {
                    r.err(
                        &cp,
                        format!(
                            "invalid configmap:// credentialName: namespace must match the configuration namespace {:?}",
                            meta.namespace
                        ),
                    );
                }
            }
            _ => r.err(
                &cp,
                format!(
                    "invalid configmap:// credentialName: invalid resource name {:?}. Expected namespace and name",
                    t.credential_name
                ),
            ),
        }
    }
    if simple_or_mutual && !t.credential_name.is_empty() {
        if !t.client_certificate.is_empty()
            || !t.ca_certificates.is_empty()
            || !t.private_key.is_empty()
            || !t.ca_crl.is_empty()
        {
            r.err(
                &p.field("credentialName"),
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if t.mode == ClientTlsMode::Mutual {
        if t.client_certificate.is_empty() {
            r.err(
                &p.field("clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if t.private_key.is_empty() {
            r.err(
                &p.field("privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{run_table, Want::*};
    use serde_json::json;

    fn tp(policy: serde_json::Value) -> serde_json::Value {
        json!({"host": "reviews", "trafficPolicy": policy})
    }

    #[test]
    fn table() {
        let cases = vec![
            (
                "subsets",
                json!({"host": "reviews", "subsets": [
                    {"name": "v1", "labels": {"version": "v1"}},
                    {"name": "v2", "labels": {"version": "v2"}, "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}}]}),
                Valid,
            ),
            (
                "empty host",
                json!({"host": ""}),
                Error("spec.host: empty domain name not allowed"),
            ),
            (
                "dup subsets",
                json!({"host": "r", "subsets": [{"name": "v1"}, {"name": "v1"}]}),
                Error("duplicate subset names: v1"),
            ),
            (
                "bad subset",
                json!({"host": "r", "subsets": [{"name": "*"}]}),
                Error("subset name is invalid: *"),
            ),
            (
                "empty policy",
                tp(json!({})),
                Error("traffic policy must have at least one field"),
            ),
            (
                "istio mutual",
                tp(json!({"tls": {"mode": "ISTIO_MUTUAL"}})),
                Valid,
            ),
            ("mode by number", tp(json!({"tls": {"mode": 3}})), Valid),
            (
                "bad mode name",
                tp(json!({"tls": {"mode": "istio_mutual"}})),
                Error("unknown value \"istio_mutual\""),
            ),
            (
                "mutual without certs",
                tp(json!({"tls": {"mode": "MUTUAL"}})),
                Error("client certificate required for mutual tls"),
            ),
            (
                "mutual credential",
                tp(json!({"tls": {"mode": "MUTUAL", "credentialName": "c"}})),
                Valid,
            ),
            (
                "credential with cert",
                tp(
                    json!({"tls": {"mode": "SIMPLE", "credentialName": "c", "caCertificates": "/x"}}),
                ),
                Error("If credentialName is set"),
            ),
            (
                "insecure with ca",
                tp(
                    json!({"tls": {"mode": "SIMPLE", "insecureSkipVerify": true, "caCertificates": "/x"}}),
                ),
                Error("InsecureSkipVerify is set true"),
            ),
            (
                "empty pool",
                tp(json!({"connectionPool": {}})),
                Error("connection pool must have at least one field"),
            ),
            (
                "pool ok",
                tp(
                    json!({"connectionPool": {"tcp": {"maxConnections": 10, "connectTimeout": "250ms", "idleTimeout": "0s"}, "http": {"maxRetries": 3, "h2UpgradePolicy": "UPGRADE"}}}),
                ),
                Valid,
            ),
            (
                "negative retries",
                tp(json!({"connectionPool": {"http": {"maxRetries": -1}}})),
                Error("max retries must be non-negative"),
            ),
            (
                "upgrade + client protocol",
                tp(
                    json!({"connectionPool": {"http": {"h2UpgradePolicy": "UPGRADE", "useClientProtocol": true}}}),
                ),
                Error("use client protocol must not be true"),
            ),
            (
                "http idle zero",
                tp(json!({"connectionPool": {"http": {"idleTimeout": "0s"}}})),
                Error("duration must be greater than 1ms"),
            ),
            (
                "connect timeout",
                tp(json!({"connectionPool": {"tcp": {"connectTimeout": "0.5ms"}}})),
                Error("duration must be greater than 1ms"),
            ),
            (
                "outlier ok",
                tp(
                    json!({"outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": 50}}),
                ),
                Valid,
            ),
            (
                "outlier percent",
                tp(json!({"outlierDetection": {"maxEjectionPercent": 150}})),
                Error("percentage 150 is not in range 0..100"),
            ),
            (
                "outlier deprecated",
                tp(json!({"outlierDetection": {"consecutiveErrors": 5}})),
                Warning("consecutive errors is deprecated"),
            ),
            (
                "local origin",
                tp(json!({"outlierDetection": {"consecutiveLocalOriginFailures": 2}})),
                Error("split external local origin errors is set to false"),
            ),
            (
                "maglev prime",
                tp(
                    json!({"loadBalancer": {"consistentHash": {"httpHeaderName": "x", "maglev": {"tableSize": 65537}}}}),
                ),
                Valid,
            ),
            (
                "maglev not prime",
                tp(
                    json!({"loadBalancer": {"consistentHash": {"httpHeaderName": "x", "maglev": {"tableSize": 1000}}}}),
                ),
                Error("tableSize must be a prime number"),
            ),
            (
                "ring size deprecated",
                tp(
                    json!({"loadBalancer": {"consistentHash": {"useSourceIp": true, "minimumRingSize": 1024}}}),
                ),
                Warning("MinimumRingSize is deprecated"),
            ),
            (
                "ring size with ring hash",
                tp(
                    json!({"loadBalancer": {"consistentHash": {"useSourceIp": true, "minimumRingSize": 1024, "ringHash": {"minimumRingSize": 1024}}}}),
                ),
                Error("only one of MinimumRingSize or Maglev/Ringhash"),
            ),
            (
                "cookie no name",
                tp(json!({"loadBalancer": {"consistentHash": {"httpCookie": {"ttl": "10s"}}}})),
                Error("name required for HttpCookie"),
            ),
            (
                "distribute 90",
                tp(
                    json!({"loadBalancer": {"localityLbSetting": {"distribute": [{"from": "a/b/*", "to": {"a/b/*": 90}}]}}}),
                ),
                Error("total locality weight 90 != 100"),
            ),
            (
                "failover same",
                tp(
                    json!({"loadBalancer": {"localityLbSetting": {"failover": [{"from": "a", "to": "a"}]}}, "outlierDetection": {"interval": "1s"}}),
                ),
                Error("must specify different regions"),
            ),
            (
                "failover no outlier",
                tp(
                    json!({"loadBalancer": {"localityLbSetting": {"failover": [{"from": "a", "to": "b"}]}}}),
                ),
                Warning("outlier detection policy must be provided for failover"),
            ),
            (
                "locality overlap",
                tp(
                    json!({"outlierDetection": {"interval": "1s"}, "loadBalancer": {"localityLbSetting": {"distribute": [
                    {"from": "us-west/*", "to": {"us-west/z1/*": 50, "us-west/z2/*": 50}},
                    {"from": "us-west/z1/*", "to": {"us-east/*": 100}}]}}}),
                ),
                Error("locality us-west/z1/* overlap with previous specified ones"),
            ),
            (
                "zone aware failover",
                tp(
                    json!({"outlierDetection": {"interval": "1s"}, "loadBalancer": {"zoneAwareLbSetting": {"failover": [{"from": "a/b", "to": "c"}]}}}),
                ),
                Error("zone aware lb failover only specifies region"),
            ),
            (
                "maglev one",
                tp(
                    json!({"loadBalancer": {"consistentHash": {"useSourceIp": true, "maglev": {"tableSize": 1}}}}),
                ),
                Valid,
            ),
            (
                "configmap ok",
                json!({"host": "r", "trafficPolicy": {"tls": {"mode": "SIMPLE", "credentialName": "configmap://ns/ca"}}}),
                Valid,
            ),
            (
                "locality and zone",
                tp(
                    json!({"loadBalancer": {"localityLbSetting": {"enabled": true}, "zoneAwareLbSetting": {"enabled": true}}}),
                ),
                Error("only one of localityLbSetting and zoneAwareLbSetting"),
            ),
            (
                "warmup no duration",
                tp(json!({"loadBalancer": {"warmup": {"minimumPercent": 10}}})),
                Error("duration is required"),
            ),
            (
                "warmup pct",
                tp(json!({"loadBalancer": {"warmup": {"duration": "10s", "minimumPercent": 110}}})),
                Error("minimumPercent value should be less than or equal to 100"),
            ),
            (
                "port only",
                tp(json!({"portLevelSettings": [{"port": {"number": 80}}]})),
                Error("port traffic policy must have at least one field"),
            ),
            (
                "port missing",
                tp(json!({"portLevelSettings": [{"tls": {"mode": "ISTIO_MUTUAL"}}]})),
                Error("portTrafficPolicy must have valid port"),
            ),
            (
                "tunnel + proxy protocol",
                tp(
                    json!({"tunnel": {"protocol": "CONNECT", "targetHost": "p.example.com", "targetPort": 3128}, "proxyProtocol": {"version": "V2"}}),
                ),
                Error("tunnel and proxyProtocol must not be set together"),
            ),
            (
                "tunnel bad",
                tp(
                    json!({"tunnel": {"protocol": "GET", "targetHost": "p.example.com", "targetPort": 3128}}),
                ),
                Error("tunnel protocol must be"),
            ),
            (
                "proxy protocol version",
                tp(json!({"proxyProtocol": {"version": 5}})),
                Error("proxy protocol version is invalid: 5"),
            ),
            (
                "selector export",
                json!({"host": "r", "workloadSelector": {"matchLabels": {"app": "a"}}, "exportTo": ["*"]}),
                Error("cannot have exportTo beyond current namespace"),
            ),
            (
                "selector empty",
                json!({"host": "r", "workloadSelector": {}}),
                Warning("workload selector specified without labels"),
            ),
            (
                "selector wildcard",
                json!({"host": "r", "workloadSelector": {"matchLabels": {"app": "*"}}}),
                Error("wildcard is not supported in selector"),
            ),
            (
                "strict casing",
                tp(json!({"loadbalancer": {"simple": "RANDOM"}})),
                Error("spec.trafficPolicy.loadbalancer: unknown field"),
            ),
        ];
        run_table("networking.istio.io/v1beta1", "DestinationRule", &cases);
    }
}
