//! Sidecar rules (spec §2.5): workload selector, ingress listeners (ports, binds, default
//! endpoints, TLS, connection pools), egress listeners (ports, UDS binds, hosts) and the outbound
//! traffic policy.

use std::collections::{BTreeMap, BTreeSet};

use super::common::*;
use super::destination_rule::validate_connection_pool;
use super::gateway::{namespace_slash_hostname, validate_server_tls, validate_unix_address};
use crate::istio::networking::*;
use crate::istio::object::Metadata;
use crate::istio::Path;

/// Validates a Sidecar spec.
pub fn validate(r: &mut Report, meta: &Metadata, sc: &Sidecar) {
    let spec = Path::Root("spec");
    if let Some(ws) = &sc.workload_selector {
        let before = r.errors.len();
        check_selector_labels(
            r,
            &spec.field("workloadSelector").field("labels"),
            &ws.labels,
            "sidecar: workload selector specified without labels, will be applied to all services in namespace",
        );
        if r.errors.len() > before {
            return;
        }
    }
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        r.err(&spec, "sidecar: empty configuration provided");
        return;
    }

    let ip = spec.field("ingress");
    let mut ports: BTreeSet<u32> = BTreeSet::new();
    for (i, l) in sc.ingress.iter().enumerate() {
        let lp = ip.index(i);
        let Some(port) = &l.port else {
            r.err(
                &lp.field("port"),
                "sidecar: port is required for ingress listeners",
            );
            continue;
        };
        let pp = lp.field("port");
        if port.target_port > 0 {
            r.err(
                &pp.field("targetPort"),
                "targetPort has no impact on Sidecars",
            );
        }
        check_port_name(r, &pp, &port.name);
        check_ip_bound_port(
            r,
            &pp,
            &lp.field("bind"),
            port.number,
            &port.protocol,
            &l.bind,
            &mut ports,
        );
        if !l.default_endpoint.is_empty() {
            if let Err(e) = validate_default_endpoint(&l.default_endpoint) {
                r.err(&lp.field("defaultEndpoint"), e);
            }
        }
        if let Some(tls) = &l.tls {
            let tp = lp.field("tls");
            if !tls.subject_alt_names.is_empty() {
                r.err(
                    &tp.field("subjectAltNames"),
                    "sidecar: subjectAltNames is not supported in ingress tls",
                );
            }
            if tls.https_redirect {
                r.err(
                    &tp.field("httpsRedirect"),
                    "sidecar: httpsRedirect is not supported",
                );
            }
            if !tls.credential_name.is_empty() {
                r.err(
                    &tp.field("credentialName"),
                    "sidecar: credentialName is not currently supported",
                );
            }
            if !tls.credential_names.is_empty() {
                r.err(
                    &tp.field("credentialNames"),
                    "sidecar: credentialNames is not currently supported",
                );
            }
            if !tls.tls_certificates.is_empty() {
                r.err(
                    &tp.field("tlsCertificates"),
                    "sidecar: tls_certificates is not currently supported",
                );
            }
            if matches!(
                tls.mode,
                ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough
            ) {
                r.err(
                    &tp.field("mode"),
                    format!(
                        "configuration is invalid: cannot set mode to {} in sidecar ingress tls",
                        tls.mode.name()
                    ),
                );
            }
            if !is_tls_like(&port.protocol) {
                r.err(
                    &tp,
                    "server cannot have TLS settings for non HTTPS/TLS ports",
                );
            }
            validate_server_tls(r, tls, &tp);
        }
        if let Some(cp) = &l.connection_pool {
            validate_connection_pool(r, cp, &lp.field("connectionPool"));
            if cp.http.is_some() && !is_http_like(&port.protocol) {
                r.warn(
                    &lp.field("connectionPool").field("http"),
                    format!(
                        "sidecar: HTTP connection pool settings are configured for port {} ({:?}) but its protocol is not HTTP ({}); only TCP settings will apply",
                        port.number,
                        port.name,
                        port.protocol
                    ),
                );
            }
        }
    }

    let ep = spec.field("egress");
    let mut ports: BTreeSet<u32> = BTreeSet::new();
    let mut uds: BTreeSet<&str> = BTreeSet::new();
    let mut catch_all = false;
    for (i, l) in sc.egress.iter().enumerate() {
        let lp = ep.index(i);
        match &l.port {
            None => {
                if !catch_all {
                    if i == sc.egress.len() - 1 {
                        catch_all = true;
                    } else {
                        r.err(
                            &lp.field("port"),
                            "sidecar: the egress listener with empty port should be the last listener in the list",
                        );
                    }
                } else {
                    r.err(
                        &lp.field("port"),
                        "sidecar: egress can have only one listener with empty port",
                    );
                    continue;
                }
            }
            Some(port) => {
                let pp = lp.field("port");
                if port.target_port > 0 {
                    r.err(
                        &pp.field("targetPort"),
                        "targetPort has no impact on Sidecars",
                    );
                }
                check_port_name(r, &pp, &port.name);
                let bp = lp.field("bind");
                if port.number == 0 {
                    check_protocol(r, &pp, &port.protocol);
                    match l.bind.strip_prefix("unix://") {
                        None => r.err(
                            &bp,
                            "sidecar: ports with 0 value must have a unix domain socket bind address",
                        ),
                        Some(path) => {
                            if let Err(e) = validate_unix_address(path) {
                                r.err(&bp, e);
                            }
                        }
                    }
                    if !matches!(l.capture_mode, CaptureMode::Default | CaptureMode::None) {
                        r.err(
                            &lp.field("captureMode"),
                            "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
                        );
                    }
                    if !uds.insert(&l.bind) {
                        r.err(
                            &bp,
                            "sidecar: unix domain socket values for listeners must be unique",
                        );
                    }
                } else {
                    check_ip_bound_port(
                        r,
                        &pp,
                        &bp,
                        port.number,
                        &port.protocol,
                        &l.bind,
                        &mut ports,
                    );
                }
            }
        }
        let hp = lp.field("hosts");
        if l.hosts.is_empty() {
            r.err(
                &hp,
                "sidecar: egress listener must contain at least one host",
            );
            continue;
        }
        let mut by_ns: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for (j, h) in l.hosts.iter().enumerate() {
            let jp = hp.index(j);
            if let Some((ns, svc)) = h.split_once('/').filter(|(ns, _)| !ns.starts_with('~')) {
                let ns = if ns == "." {
                    meta.namespace.as_str()
                } else {
                    ns
                };
                let set = by_ns.entry(ns.to_string()).or_default();
                if svc != "*" {
                    if set.contains(svc) || set.contains("*") {
                        r.warn(&jp, format!("duplicated egress host: {h}"));
                    }
                } else if !set.is_empty() {
                    r.warn(&jp, format!("duplicated egress host: {h}"));
                }
                set.insert(svc);
            }
            for e in namespace_slash_hostname(h, false) {
                r.err(&jp, e);
            }
        }
        let star_star = by_ns.get("*").is_some_and(|s| s.contains("*"));
        if star_star && by_ns.len() != 1 {
            r.warn(
                &hp,
                "`*/*` host select all resources, no other hosts can be added",
            );
        }
    }

    if let Some(otp) = &sc.outbound_traffic_policy {
        let op = spec.field("outboundTrafficPolicy");
        if otp.mode == OutboundMode::AllowAnyDynamicDns {
            r.err(
                &op.field("mode"),
                "sidecar: ALLOW_ANY_DYNAMIC_DNS mode is only supported in MeshConfig, not in Sidecar resource",
            );
        }
        if let Some(ep) = &otp.egress_proxy {
            let epp = op.field("egressProxy");
            if otp.mode != OutboundMode::AllowAny {
                r.err(
                    &epp,
                    "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
                );
            } else {
                if let Err(e) = validate_fqdn(&ep.host) {
                    r.err(&epp.field("host"), e);
                }
                match &ep.port {
                    None => r.err(
                        &epp.field("port"),
                        "sidecar: egress_proxy port must be non-nil",
                    ),
                    Some(port) => {
                        let hp = epp.field("host");
                        if ep.host == "*" {
                            r.err(&hp, "invalid destination host *");
                        } else if let Err(e) = validate_wildcard_domain(&ep.host) {
                            r.err(&hp, e);
                        }
                        if !ep.subset.is_empty() && !is_dns1123_label(&ep.subset) {
                            r.err(
                                &epp.field("subset"),
                                format!("subset name is invalid: {}", ep.subset),
                            );
                        }
                        if let Err(e) = validate_port(port.number) {
                            r.err(&epp.field("port").field("number"), e);
                        }
                    }
                }
            }
        }
    }
    if let Some(cp) = &sc.inbound_connection_pool {
        validate_connection_pool(r, cp, &spec.field("inboundConnectionPool"));
    }
}

fn check_protocol(r: &mut Report, pp: &Path<'_>, protocol: &str) {
    if !protocol.is_empty() && parse_protocol(protocol).is_none() {
        r.err(
            &pp.field("protocol"),
            format!("unsupported protocol: {protocol}"),
        );
    }
}

/// Protocol, port number, IP bind address and uniqueness of a listener port bound to an IP.
fn check_ip_bound_port(
    r: &mut Report,
    pp: &Path<'_>,
    bind_path: &Path<'_>,
    number: u32,
    protocol: &str,
    bind: &str,
    ports: &mut BTreeSet<u32>,
) {
    check_protocol(r, pp, protocol);
    if let Err(e) = validate_port(number) {
        r.err(&pp.field("number"), e);
    }
    if !bind.is_empty() && !is_ip(bind) {
        r.err(bind_path, format!("{bind} is not a valid IP"));
    }
    if !ports.insert(number) {
        r.err(
            &pp.field("number"),
            "sidecar: ports on IP bound listeners must be unique",
        );
    }
}

fn check_port_name(r: &mut Report, p: &Path<'_>, name: &str) {
    if !name.is_empty() && !is_dns1123_label(name) {
        r.err(&p.field("name"), format!("invalid port name: {name}"));
    }
}

fn validate_default_endpoint(ep: &str) -> Result<(), String> {
    const FORM: &str = "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset";
    if let Some(path) = ep.strip_prefix("unix://") {
        return validate_unix_address(path);
    }
    let Some((host, port)) = ep.rsplit_once(':') else {
        return Err(FORM.to_string());
    };
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "[::1]" | "[::]") {
        return Err(FORM.to_string());
    }
    match port.parse::<u32>() {
        Ok(p) => validate_port(p),
        Err(_) => Err(format!(
            "sidecar: defaultEndpoint port ({port}) is not a number"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{run_table, Want::*};
    use serde_json::json;

    #[test]
    fn table() {
        let ing = |extra: serde_json::Value| {
            let mut l = json!({"port": {"number": 9080, "protocol": "HTTP", "name": "http"}, "defaultEndpoint": "127.0.0.1:8080"});
            if let (Some(o), Some(e)) = (l.as_object_mut(), extra.as_object()) {
                for (k, v) in e {
                    o.insert(k.clone(), v.clone());
                }
            }
            json!({"workloadSelector": {"labels": {"app": "a"}}, "ingress": [l]})
        };
        let cases = vec![
            (
                "egress",
                json!({"egress": [{"hosts": ["./*", "istio-system/*"]}]}),
                Valid,
            ),
            ("ingress", ing(json!({})), Valid),
            (
                "empty",
                json!({}),
                Error("sidecar: empty configuration provided"),
            ),
            (
                "inbound pool only",
                json!({"inboundConnectionPool": {"http": {"maxRetries": 1}}}),
                Valid,
            ),
            (
                "selector empty",
                json!({"workloadSelector": {}, "egress": [{"hosts": ["./*"]}]}),
                Warning("without labels"),
            ),
            (
                "host without ns",
                json!({"egress": [{"hosts": ["foo.com"]}]}),
                Error("host must be of form namespace/dnsName"),
            ),
            (
                "bad ns",
                json!({"egress": [{"hosts": ["Bad_NS/foo.com"]}]}),
                Error("invalid namespace value \"Bad_NS\" in sidecar"),
            ),
            (
                "short host",
                json!({"egress": [{"hosts": ["ns/foo"]}]}),
                Error("short names"),
            ),
            (
                "no hosts",
                json!({"egress": [{"hosts": []}]}),
                Error("egress listener must contain at least one host"),
            ),
            (
                "star star others",
                json!({"egress": [{"hosts": ["*/*", "istio-system/*"]}]}),
                Warning("`*/*` host select all resources"),
            ),
            (
                "exclusion",
                json!({"egress": [{"hosts": ["*/*", "~kube-system/*"]}]}),
                Valid,
            ),
            (
                "dup host",
                json!({"egress": [{"hosts": ["ns/a.com", "ns/a.com"]}]}),
                Warning("duplicated egress host: ns/a.com"),
            ),
            (
                "catch-all not last",
                json!({"egress": [{"hosts": ["./*"]}, {"port": {"number": 80, "protocol": "HTTP", "name": "http"}, "hosts": ["./*"]}]}),
                Error("should be the last listener"),
            ),
            (
                "two catch-alls",
                json!({"egress": [{"hosts": ["./*"]}, {"hosts": ["./*"]}]}),
                Error("port"),
            ),
            (
                "port zero",
                json!({"egress": [{"port": {"number": 0, "protocol": "HTTP", "name": "h"}, "hosts": ["./*"]}]}),
                Error("must have a unix domain socket bind address"),
            ),
            (
                "uds",
                json!({"egress": [{"port": {"number": 0, "protocol": "HTTP", "name": "h"}, "bind": "unix:///var/run/s.sock", "captureMode": "NONE", "hosts": ["./*"]}]}),
                Valid,
            ),
            (
                "dup egress ports",
                json!({"egress": [{"port": {"number": 80, "protocol": "HTTP", "name": "a"}, "hosts": ["./*"]}, {"port": {"number": 80, "protocol": "HTTP", "name": "b"}, "hosts": ["./*"]}]}),
                Error("ports on IP bound listeners must be unique"),
            ),
            (
                "ingress no port",
                json!({"ingress": [{"defaultEndpoint": "127.0.0.1:8080"}]}),
                Error("port is required for ingress listeners"),
            ),
            (
                "default endpoint",
                ing(json!({"defaultEndpoint": "10.0.0.1:8080"})),
                Error("defaultEndpoint must be of form"),
            ),
            (
                "default endpoint v6",
                ing(json!({"defaultEndpoint": "[::1]:8080"})),
                Valid,
            ),
            (
                "ingress target port",
                ing(
                    json!({"port": {"number": 9080, "protocol": "HTTP", "name": "http", "targetPort": 1}}),
                ),
                Error("targetPort has no impact on Sidecars"),
            ),
            (
                "tls istio mutual",
                ing(
                    json!({"port": {"number": 9443, "protocol": "HTTPS", "name": "https"}, "tls": {"mode": "ISTIO_MUTUAL"}}),
                ),
                Error("cannot set mode to ISTIO_MUTUAL"),
            ),
            (
                "tls credential",
                ing(
                    json!({"port": {"number": 9443, "protocol": "HTTPS", "name": "https"}, "tls": {"mode": "SIMPLE", "credentialName": "c"}}),
                ),
                Error("credentialName is not currently supported"),
            ),
            (
                "tls simple",
                ing(
                    json!({"port": {"number": 9443, "protocol": "HTTPS", "name": "https"}, "tls": {"mode": "SIMPLE", "serverCertificate": "/c", "privateKey": "/k"}}),
                ),
                Valid,
            ),
            (
                "tls on http",
                ing(
                    json!({"tls": {"mode": "SIMPLE", "serverCertificate": "/c", "privateKey": "/k"}}),
                ),
                Error("server cannot have TLS settings for non HTTPS/TLS ports"),
            ),
            (
                "http pool on tcp",
                ing(
                    json!({"port": {"number": 9000, "protocol": "TCP", "name": "tcp"}, "connectionPool": {"http": {"maxRetries": 1}}}),
                ),
                Warning("HTTP connection pool settings are configured for port 9000"),
            ),
            (
                "dynamic dns",
                json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY_DYNAMIC_DNS"}}),
                Error("ALLOW_ANY_DYNAMIC_DNS mode is only supported in MeshConfig"),
            ),
            (
                "egress proxy mode",
                json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY", "egressProxy": {"host": "proxy.example.com", "port": {"number": 3128}}}}),
                Error("egress_proxy must be set only with ALLOW_ANY"),
            ),
            (
                "egress proxy",
                json!({"outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {"host": "proxy.example.com", "port": {"number": 3128}}}}),
                Valid,
            ),
            (
                "typo",
                json!({"egress": [{"port": {"number": 80, "protocl": "HTTP"}, "hosts": ["./*"]}]}),
                Error("spec.egress[0].port.protocl: unknown field"),
            ),
        ];
        run_table("networking.istio.io/v1", "Sidecar", &cases);
    }
}
