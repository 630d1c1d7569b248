//! Gateway rules (spec §2.3): the gateway name, servers, hosts (`ns/dnsName`), ports, binds and
//! server TLS options (also used by Sidecar ingress listeners).

use std::collections::BTreeSet;

use super::common::*;
use crate::istio::networking::*;
use crate::istio::object::Metadata;
use crate::istio::Path;

/// Cipher suites Istio accepts in `cipherSuites` (others are ignored with a warning).
pub const VALID_CIPHER_SUITES: [&str; 15] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// Validates a Gateway spec.
pub fn validate(r: &mut Report, meta: &Metadata, gw: &Gateway) {
    let spec = Path::Root("spec");
    if !is_dns1123_label(&meta.name) {
        r.err(
            &Path::Root("metadata.name"),
            format!(
                "invalid gateway name: {:?} (must be a DNS label, no dots)",
                meta.name
            ),
        );
    }
    let sp = spec.field("servers");
    if gw.servers.is_empty() {
        r.err(&sp, "gateway must have at least one server");
    }
    let mut port_names: Vec<&str> = Vec::new();
    for (i, s) in gw.servers.iter().enumerate() {
        let ip = sp.index(i);
        validate_server(r, s, &ip);
        if let Some(port) = &s.port {
            if port_names.contains(&port.name.as_str()) {
                r.err(
                    &ip.field("port").field("name"),
                    format!(
                        "port names in servers must be unique: duplicate name {}",
                        port.name
                    ),
                );
            }
            port_names.push(&port.name);
            if !is_http_like(&port.protocol) && s.tls.as_ref().is_some_and(|t| t.https_redirect) {
                r.warn(
                    &ip.field("tls").field("httpsRedirect"),
                    "tls.httpsRedirect should only be used with http servers",
                );
            }
        }
    }
}

fn validate_server(r: &mut Report, s: &Server, p: &Path<'_>) {
    let hp = p.field("hosts");
    if s.hosts.is_empty() {
        r.err(&hp, "server config must contain at least one host");
    }
    for (i, h) in s.hosts.iter().enumerate() {
        for e in namespace_slash_hostname(h, true) {
            r.err(&hp.index(i), e);
        }
    }
    let mut port_ok = false;
    match &s.port {
        None => r.err(&p.field("port"), "port is required"),
        Some(port) => {
            let pp = p.field("port");
            let before = r.errors.len();
            if parse_protocol(&port.protocol).is_none() {
                r.err(
                    &pp.field("protocol"),
                    format!(
                        "invalid protocol {:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
                        port.protocol
                    ),
                );
            }
            if port.number > 0 || !s.bind.starts_with("unix://") {
                if let Err(e) = validate_port(port.number) {
                    r.err(&pp.field("number"), e);
                }
            }
            if port.target_port > 0 {
                r.err(
                    &pp.field("targetPort"),
                    "targetPort has no impact on Gateways",
                );
            }
            if port.name.is_empty() {
                r.err(
                    &pp.field("name"),
                    format!("port name must be set: number {}", port.number),
                );
            }
            port_ok = r.errors.len() == before;
        }
    }
    let bp = p.field("bind");
    if let Some(path) = s.bind.strip_prefix("unix://") {
        if let Err(e) = validate_unix_address(path) {
            r.err(&bp, e);
        }
        if let Some(port) = &s.port {
            if port.number != 0 {
                r.err(
                    &bp,
                    format!(
                        "port number must be 0 for unix domain socket: {}",
                        port.number
                    ),
                );
            }
        }
    } else if !s.bind.is_empty() && !is_ip(&s.bind) {
        r.err(&bp, format!("{} is not a valid IP", s.bind));
    }
    let tp = p.field("tls");
    if let Some(tls) = &s.tls {
        validate_server_tls(r, tls, &tp);
    }
    if port_ok {
        if let Some(port) = &s.port {
            let tls_like = is_tls_like(&port.protocol);
            match &s.tls {
                None if tls_like => {
                    r.err(&tp, "server must have TLS settings for HTTPS/TLS protocols")
                }
                Some(tls) if !tls_like => {
                    if is_http_like(&port.protocol) {
                        let passthrough = matches!(
                            tls.mode,
                            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
                        );
                        if !passthrough
                            || !tls.ca_certificates.is_empty()
                            || !tls.private_key.is_empty()
                            || !tls.server_certificate.is_empty()
                        {
                            r.err(
                                &tp,
                                "server cannot have TLS settings for plain text HTTP ports",
                            );
                        }
                    } else {
                        r.err(
                            &tp,
                            "server cannot have TLS settings for non HTTPS/TLS ports",
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

/// `unix://` paths: absolute, or `@abstract`.
pub fn validate_unix_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("unix address must not be empty".to_string());
    }
    if addr.starts_with('@') || (addr.starts_with('/') && !addr.ends_with('/')) {
        return Ok(());
    }
    Err(format!("{addr} is not an absolute path to a file"))
}

/// Istio's `validateNamespaceSlashWildcardHostname` for gateways (`is_gateway`) and sidecars.
pub fn namespace_slash_hostname(host: &str, is_gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    let Some((ns, name)) = host.split_once('/') else {
        if is_gateway {
            hostname_part(host, true, &mut errs);
        } else {
            errs.push(format!(
                "host must be of form namespace/dnsName (got {host:?})"
            ));
        }
        return errs;
    };
    if ns.is_empty() || name.is_empty() {
        errs.push(format!(
            "config namespace and dnsName in host entry cannot be empty (got {host:?})"
        ));
    }
    if is_gateway {
        if ns != "*" && ns != "." && !is_dns1123_label(ns) {
            errs.push(format!("invalid namespace value {ns:?} in gateway"));
        }
    } else {
        let bare = ns.strip_prefix('~').unwrap_or(ns);
        if !bare.is_empty() && bare != "*" && bare != "." && !is_dns1123_label(bare) {
            errs.push(format!("invalid namespace value {ns:?} in sidecar"));
        }
    }
    if !name.is_empty() {
        hostname_part(name, is_gateway, &mut errs);
    }
    errs
}

fn hostname_part(host: &str, is_gateway: bool, errs: &mut Vec<String>) {
    if host != "*" && !host.contains('.') {
        errs.push(format!(
            "short names (non FQDN) are not allowed (got {host:?})"
        ));
    }
    if let Err(e) = validate_wildcard_domain(host) {
        if !is_gateway || !is_ip(host) {
            errs.push(e);
        }
    }
    if let Err(e) = validate_partial_wildcard(host) {
        errs.push(e);
    }
}

/// Istio's `validateTLSOptions` for server TLS (Gateway servers and Sidecar ingress).
pub fn validate_server_tls(r: &mut Report, t: &ServerTlsSettings, p: &Path<'_>) {
    if matches!(
        t.min_protocol_version,
        TlsProtocol::TlsV1_0 | TlsProtocol::TlsV1_1
    ) && t.cipher_suites.is_empty()
    {
        r.warn(
            &p.field("minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
    }
    let mut invalid: BTreeSet<&str> = BTreeSet::new();
    let mut valid: BTreeSet<&str> = BTreeSet::new();
    let mut dups: BTreeSet<&str> = BTreeSet::new();
    for c in &t.cipher_suites {
        if !VALID_CIPHER_SUITES.contains(&c.as_str()) {
            invalid.insert(c);
        } else if !valid.insert(c) {
            dups.insert(c);
        }
    }
    let cs = p.field("cipherSuites");
    if !invalid.is_empty() {
        let list: Vec<&str> = invalid.into_iter().collect();
        r.warn(
            &cs,
            format!("ignoring invalid cipher suites: [{}]", list.join(" ")),
        );
    }
    if !dups.is_empty() {
        let list: Vec<&str> = dups.into_iter().collect();
        r.warn(
            &cs,
            format!("ignoring duplicate cipher suites: [{}]", list.join(" ")),
        );
    }

    if t.mode == ServerTlsMode::IstioMutual {
        let checks = [
            (
                "serverCertificate",
                !t.server_certificate.is_empty(),
                "server certificate",
            ),
            ("privateKey", !t.private_key.is_empty(), "private key"),
            ("caCertificates", !t.ca_certificates.is_empty(), "CA bundle"),
            (
                "tlsCertificates",
                !t.tls_certificates.is_empty(),
                "tlsCertificates",
            ),
            (
                "credentialName",
                !t.credential_name.is_empty(),
                "credentialName",
            ),
            (
                "credentialNames",
                !t.credential_names.is_empty(),
                "credentialNames",
            ),
        ];
        for (field, set, what) in checks {
            if set {
                r.err(
                    &p.field(field),
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }
    let has_creds = !t.credential_name.is_empty() || !t.credential_names.is_empty();
    if matches!(
        t.mode,
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
    ) && (!t.ca_crl.is_empty()
        || !t.server_certificate.is_empty()
        || !t.private_key.is_empty()
        || !t.ca_certificates.is_empty()
        || !t.tls_certificates.is_empty()
        || has_creds)
    {
        r.warn(
            &p.field("mode"),
            format!(
                "{} mode does not use certificates, they will be ignored",
                t.mode.name()
            ),
        );
    }
    let sources = [
        !t.server_certificate.is_empty() && !t.private_key.is_empty(),
        !t.credential_name.is_empty(),
        !t.credential_names.is_empty(),
        !t.tls_certificates.is_empty(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if sources > 1 {
        r.err(
            p,
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        );
    }
    if t.credential_names.len() > 2 {
        r.err(&p.field("credentialNames"), "must have at most 2 items");
    }
    let terminating = matches!(
        t.mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminating && has_creds {
        // Certificates come from the credential.
        return;
    }
    if terminating {
        let mode = if t.mode == ServerTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            "MUTUAL TLS"
        };
        if t.mode != ServerTlsMode::Simple && t.ca_certificates.is_empty() {
            r.err(
                &p.field("caCertificates"),
                format!("{mode} requires a client CA bundle"),
            );
        }
        if t.tls_certificates.len() > 2 {
            r.warn(
                &p.field("tlsCertificates"),
                format!("{mode} can support up to 2 server certificates"),
            );
        }
        if t.tls_certificates.is_empty() {
            if t.server_certificate.is_empty() {
                r.err(
                    &p.field("serverCertificate"),
                    format!("{mode} requires a server certificate"),
                );
            }
            if t.private_key.is_empty() {
                r.err(
                    &p.field("privateKey"),
                    format!("{mode} requires a private key"),
                );
            }
        } else {
            let cp = p.field("tlsCertificates");
            for (i, c) in t.tls_certificates.iter().enumerate() {
                if c.server_certificate.is_empty() {
                    r.err(
                        &cp.index(i),
                        format!("{mode} requires a server certificate"),
                    );
                }
                if c.private_key.is_empty() {
                    r.err(&cp.index(i), format!("{mode} requires a private key"));
                }
            }
        }
    }
    if !t.ca_crl.is_empty() {
        if !t.credential_name.is_empty() {
            r.err(
                &p.field("caCrl"),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if t.mode == ServerTlsMode::Simple {
            r.err(&p.field("caCrl"), "CRL is not supported with SIMPLE TLS");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{run_table, Want::*};
    use serde_json::json;

    fn server(s: serde_json::Value) -> serde_json::Value {
        json!({"selector": {"istio": "ingressgateway"}, "servers": [s]})
    }

    #[test]
    fn table() {
        let http = |hosts: serde_json::Value| {
            server(
                json!({"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts}),
            )
        };
        let https = |tls: serde_json::Value| {
            server(
                json!({"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["a.example.com"], "tls": tls}),
            )
        };
        let cases = vec![
            ("http", http(json!(["a.example.com"])), Valid),
            (
                "ns hosts",
                http(json!(["*/a.example.com", "./b.example.com", "ns1/*"])),
                Valid,
            ),
            ("ip host", http(json!(["10.0.0.1"])), Valid),
            (
                "short host",
                http(json!(["foo"])),
                Error("short names (non FQDN) are not allowed"),
            ),
            (
                "tilde ns",
                http(json!(["~/foo.com"])),
                Error("invalid namespace value \"~\" in gateway"),
            ),
            (
                "partial wildcard",
                http(json!(["*bar.com"])),
                Error("partial wildcard \"*bar.com\" not allowed"),
            ),
            ("empty dns", http(json!(["ns/"])), Error("cannot be empty")),
            (
                "no hosts",
                http(json!([])),
                Error("server config must contain at least one host"),
            ),
            (
                "no servers",
                json!({"servers": []}),
                Error("gateway must have at least one server"),
            ),
            (
                "port range",
                server(
                    json!({"port": {"number": 66000, "name": "p", "protocol": "HTTP"}, "hosts": ["a.b"]}),
                ),
                Error("port number 66000 must be in the range 1..65535"),
            ),
            (
                "bad protocol",
                server(
                    json!({"port": {"number": 80, "name": "p", "protocol": "foo"}, "hosts": ["a.b"]}),
                ),
                Error("invalid protocol \"foo\""),
            ),
            (
                "lowercase protocol",
                server(
                    json!({"port": {"number": 80, "name": "p", "protocol": "http"}, "hosts": ["a.b"]}),
                ),
                Valid,
            ),
            (
                "no port name",
                server(json!({"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["a.b"]})),
                Error("port name must be set"),
            ),
            (
                "target port",
                server(
                    json!({"port": {"number": 80, "name": "p", "protocol": "HTTP", "targetPort": 8080}, "hosts": ["a.b"]}),
                ),
                Error("targetPort has no impact on Gateways"),
            ),
            (
                "no port",
                server(json!({"hosts": ["a.b"]})),
                Error("port is required"),
            ),
            (
                "bind ip",
                server(
                    json!({"port": {"number": 80, "name": "p", "protocol": "HTTP"}, "hosts": ["a.b"], "bind": "foo.bar"}),
                ),
                Error("foo.bar is not a valid IP"),
            ),
            (
                "bind unix",
                server(
                    json!({"port": {"number": 0, "name": "p", "protocol": "HTTP"}, "hosts": ["a.b"], "bind": "unix:///var/run/gw.sock"}),
                ),
                Valid,
            ),
            (
                "bind unix port",
                server(
                    json!({"port": {"number": 80, "name": "p", "protocol": "HTTP"}, "hosts": ["a.b"], "bind": "unix:///x"}),
                ),
                Error("port number must be 0 for unix domain socket"),
            ),
            (
                "dup port names",
                json!({"servers": [
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["a.b"]},
                    {"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["a.b"]}]}),
                Error("port names in servers must be unique: duplicate name http"),
            ),
            (
                "simple credential",
                https(json!({"mode": "SIMPLE", "credentialName": "c"})),
                Valid,
            ),
            (
                "simple files",
                https(json!({"mode": "SIMPLE", "serverCertificate": "/c", "privateKey": "/k"})),
                Valid,
            ),
            (
                "simple no cert",
                https(json!({"mode": "SIMPLE"})),
                Error("SIMPLE TLS requires a server certificate"),
            ),
            (
                "mutual no ca",
                https(json!({"mode": "MUTUAL", "serverCertificate": "/c", "privateKey": "/k"})),
                Error("MUTUAL TLS requires a client CA bundle"),
            ),
            (
                "mutual files",
                https(
                    json!({"mode": "MUTUAL", "serverCertificate": "/c", "privateKey": "/k", "caCertificates": "/ca"}),
                ),
                Valid,
            ),
            (
                "istio mutual cred",
                https(json!({"mode": "ISTIO_MUTUAL", "credentialName": "c"})),
                Error("ISTIO_MUTUAL TLS cannot have associated credentialName"),
            ),
            (
                "crl simple",
                https(
                    json!({"mode": "SIMPLE", "serverCertificate": "/c", "privateKey": "/k", "caCrl": "/crl"}),
                ),
                Error("CRL is not supported with SIMPLE TLS"),
            ),
            (
                "crl credential",
                https(json!({"credentialName": "c", "caCrl": "/crl"})),
                Error("CRL is not supported with credentialName"),
            ),
            (
                "two sources",
                https(
                    json!({"mode": "SIMPLE", "credentialName": "c", "serverCertificate": "/c", "privateKey": "/k"}),
                ),
                Error("only one of credential_name"),
            ),
            (
                "no mode credential",
                https(json!({"credentialName": "c"})),
                Warning("PASSTHROUGH mode does not use certificates"),
            ),
            (
                "https no tls",
                server(
                    json!({"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["a.b"]}),
                ),
                Error("server must have TLS settings for HTTPS/TLS protocols"),
            ),
            (
                "http simple tls",
                server(
                    json!({"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["a.b"], "tls": {"mode": "SIMPLE", "credentialName": "c"}}),
                ),
                Error("server cannot have TLS settings for plain text HTTP ports"),
            ),
            (
                "http redirect",
                server(
                    json!({"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["a.b"], "tls": {"httpsRedirect": true}}),
                ),
                Valid,
            ),
            (
                "tcp tls",
                server(
                    json!({"port": {"number": 31400, "name": "tcp", "protocol": "TCP"}, "hosts": ["a.b"], "tls": {"mode": "PASSTHROUGH"}}),
                ),
                Error("server cannot have TLS settings for non HTTPS/TLS ports"),
            ),
            (
                "redirect on https",
                https(json!({"mode": "SIMPLE", "credentialName": "c", "httpsRedirect": true})),
                Warning("tls.httpsRedirect should only be used with http servers"),
            ),
            (
                "ciphers",
                https(
                    json!({"mode": "SIMPLE", "credentialName": "c", "cipherSuites": ["not-a-cipher"]}),
                ),
                Warning("ignoring invalid cipher suites: [not-a-cipher]"),
            ),
            (
                "tls 1.1",
                https(
                    json!({"mode": "SIMPLE", "credentialName": "c", "minProtocolVersion": "TLSV1_1"}),
                ),
                Warning("TLS version below TLSV1_2"),
            ),
            (
                "three certs",
                https(json!({"mode": "SIMPLE", "tlsCertificates": [
                {"serverCertificate": "/a", "privateKey": "/a"}, {"serverCertificate": "/b", "privateKey": "/b"}, {"serverCertificate": "/c", "privateKey": "/c"}]})),
                Warning("can support up to 2 server certificates"),
            ),
            (
                "unknown field",
                json!({"selectors": {"a": "b"}, "servers": []}),
                Error("spec.selectors: unknown field"),
            ),
        ];
        run_table("networking.istio.io/v1alpha3", "Gateway", &cases);
    }

    #[test]
    fn gateway_name() {
        let obj = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "my.gw", "namespace": "ns"},
            "spec": {"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["a.b"]}]}});
        let v = crate::validate::validate_object(&obj, crate::validate::Mode::Strict).unwrap();
        assert!(
            v.errors[0].contains("invalid gateway name: \"my.gw\""),
            "{v:?}"
        );
    }
}
