//! ServiceEntry rules (spec §2.4: hosts, addresses, ports, resolution modes, endpoints,
//! workload selector, exportTo) and WorkloadEntry rules (also used for ServiceEntry endpoints).

use std::collections::BTreeSet;

use super::common::*;
use super::gateway::validate_unix_address;
use crate::istio::networking::*;
use crate::istio::object::Metadata;
use crate::istio::Path;

/// Validates a ServiceEntry spec.
pub fn validate(r: &mut Report, meta: &Metadata, se: &ServiceEntry) {
    let spec = Path::Root("spec");
    if let Some(ws) = &se.workload_selector {
        let before = r.errors.len();
        check_selector_labels(
            r,
            &spec.field("workloadSelector").field("labels"),
            &ws.labels,
            "service entry: workload selector specified without labels, will be applied to all services in namespace",
        );
        if r.errors.len() > before {
            return;
        }
    }
    if se.workload_selector.is_some() && !se.endpoints.is_empty() {
        r.err(
            &spec.field("workloadSelector"),
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        );
    }

    let hp = spec.field("hosts");
    if se.hosts.is_empty() {
        r.err(&hp, "service entry must have at least one host");
    }
    if se.hosts.len() > 256 {
        r.err(&hp, "must have at most 256 items");
    }
    for (i, h) in se.hosts.iter().enumerate() {
        let ip = hp.index(i);
        if h == "*" {
            r.err(&ip, "invalid host * (hostname cannot be wildcard)");
            continue;
        }
        if let Err(e) = validate_wildcard_domain(h) {
            r.err(&ip, e);
        }
        if se.resolution != Resolution::DynamicDns {
            if let Err(e) = validate_partial_wildcard(h) {
                r.warn(&ip, e);
            }
        }
    }

    let ap = spec.field("addresses");
    let mut cidr = false;
    for (i, a) in se.addresses.iter().enumerate() {
        cidr |= a.contains('/');
        if let Err(e) = validate_ip_or_cidr(a) {
            r.err(&ap.index(i), e);
        }
    }
    if cidr && !matches!(se.resolution, Resolution::None | Resolution::Static) {
        r.err(
            &ap,
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }

    // IP auto-allocation (on by default) is off for resolution NONE, when the user opts out with
    // the label, or when addresses are given.
    let opted_out = meta
        .labels
        .get("networking.istio.io/enable-autoallocate-ip")
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    let auto_allocate = se.resolution != Resolution::None && !opted_out && se.addresses.is_empty();
    let pp = spec.field("ports");
    let mut names: BTreeSet<&str> = BTreeSet::new();
    let mut numbers: BTreeSet<u32> = BTreeSet::new();
    for (i, port) in se.ports.iter().enumerate() {
        let ip = pp.index(i);
        if !names.insert(&port.name) {
            r.err(
                &ip.field("name"),
                format!("service entry port name {:?} already defined", port.name),
            );
        }
        if !numbers.insert(port.number) {
            r.err(
                &ip.field("number"),
                format!(
                    "service entry port {} already defined (port number cannot be duplicated)",
                    port.number
                ),
            );
        }
        if port.target_port != 0 {
            if let Err(e) = validate_port(port.target_port) {
                r.err(&ip.field("targetPort"), e);
            }
        }
        if se.addresses.is_empty()
            && !auto_allocate
            && (port.protocol.is_empty() || port.protocol == "TCP")
        {
            r.warn(
                &ip,
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
            );
        }
        if !is_dns1123_label(&port.name) {
            r.err(
                &ip.field("name"),
                format!("invalid port name: {}", port.name),
            );
        }
        if !port.protocol.is_empty() && parse_protocol(&port.protocol).is_none() {
            r.err(
                &ip.field("protocol"),
                format!("unsupported protocol: {}", port.protocol),
            );
        }
        if let Err(e) = validate_port(port.number) {
            r.err(&ip.field("number"), e);
        }
    }

    let ep = spec.field("endpoints");
    match se.resolution {
        Resolution::None => {
            if !se.endpoints.is_empty() {
                r.err(
                    &ep,
                    "no endpoints should be provided for resolution type none",
                );
            }
            if se.workload_selector.is_some() {
                r.warn(
                    &spec.field("workloadSelector"),
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Resolution::Static => {
            for (i, e) in se.endpoints.iter().enumerate() {
                check_workload_entry(r, e, Some(&names), false, &ep.index(i));
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            let mode = se.resolution.name();
            if se.endpoints.is_empty() {
                for (i, h) in se.hosts.iter().enumerate() {
                    if let Err(e) = validate_fqdn(h) {
                        r.err(
                            &hp.index(i),
                            format!(
                                "hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode {mode}, {e}"
                            ),
                        );
                        break;
                    }
                }
            }
            if se.resolution == Resolution::DnsRoundRobin && se.endpoints.len() > 1 {
                r.err(
                    &ep,
                    "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
                );
            }
            for (i, e) in se.endpoints.iter().enumerate() {
                let ip = ep.index(i);
                if !is_ip(&e.address) && validate_fqdn(&e.address).is_err() {
                    r.err(
                        &ip.field("address"),
                        format!(
                            "endpoint address {:?} is not a valid FQDN or an IP address",
                            e.address
                        ),
                    );
                }
                check_labels(r, &ip.field("labels"), &e.labels);
                check_endpoint_ports(r, e, Some(&names), &ip);
            }
            if !se.addresses.is_empty()
                && se.hosts.len() > 1
                && se.ports.iter().any(|p| is_tcp_family(&p.protocol))
            {
                r.warn(
                    &hp,
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                );
            }
        }
        Resolution::DynamicDns => {
            let mode = "DYNAMIC_DNS";
            for (i, h) in se.hosts.iter().enumerate() {
                if !is_wildcarded(h) {
                    r.err(
                        &hp.index(i),
                        format!("host must be wildcarded for resolution mode {mode}"),
                    );
                }
            }
            if !se.addresses.is_empty() {
                r.err(
                    &ap,
                    format!("addresses cannot be set for resolution type {mode}. HTTP route domains will only be generated from the hosts field values"),
                );
            }
            if !se.endpoints.is_empty() {
                r.err(
                    &ep,
                    format!("endpoints cannot be set for resolution type {mode}. Destination IP address determined from hosts field values"),
                );
            }
            for (i, port) in se.ports.iter().enumerate() {
                if !matches!(
                    parse_protocol(&port.protocol),
                    Some("HTTP" | "TLS" | "GRPC" | "HTTP2")
                ) {
                    r.err(
                        &pp.index(i).field("protocol"),
                        format!("only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type {mode}"),
                    );
                }
            }
            match se.location {
                Location::MeshExternal => {}
                Location::MeshInternal => {
                    let waypoint = meta
                        .labels
                        .get("istio.io/use-waypoint")
                        .is_some_and(|w| !w.is_empty() && !w.eq_ignore_ascii_case("none"));
                    if waypoint {
                        r.err(
                            &spec.field("location"),
                            format!("location MESH_INTERNAL with resolution type {mode} is not supported when using waypoints"),
                        );
                    }
                }
                Location::Unknown(_) => r.err(
                    &spec.field("location"),
                    format!("location must be MESH_EXTERNAL or MESH_INTERNAL for resolution type {mode}"),
                ),
            }
        }
        Resolution::Unknown(n) => {
            r.err(
                &spec.field("resolution"),
                format!("unsupported resolution type {n}"),
            );
        }
    }

    if se.resolution != Resolution::None && se.hosts.len() > 1 {
        for (i, port) in se.ports.iter().enumerate() {
            if !is_http_like(&port.protocol) && !is_tls_like(&port.protocol) {
                r.err(
                    &pp.index(i).field("protocol"),
                    "multiple hosts provided with non-HTTP, non-TLS ports",
                );
                break;
            }
        }
    }

    check_export_to(
        r,
        &spec.field("exportTo"),
        &meta.namespace,
        &se.export_to,
        true,
        false,
    );
}

fn check_endpoint_ports(
    r: &mut Report,
    e: &WorkloadEntry,
    service_ports: Option<&BTreeSet<&str>>,
    p: &Path<'_>,
) {
    let pp = p.field("ports");
    for (name, port) in &e.ports {
        let kp = pp.key(name);
        if service_ports.is_some_and(|s| !s.contains(name.as_str())) {
            r.err(
                &kp,
                format!("endpoint port {port} is not defined by the service entry (no service port named {name:?})"),
            );
        }
        if !is_dns1123_label(name) {
            r.err(&kp, format!("invalid port name: {name}"));
        }
        if let Err(err) = validate_port(*port) {
            r.err(&kp, err);
        }
    }
}

/// Istio's `validateWorkloadEntry`: a WorkloadEntry, or a STATIC ServiceEntry endpoint (then
/// `service_ports` holds the service's port names and host names are not allowed).
fn check_workload_entry(
    r: &mut Report,
    we: &WorkloadEntry,
    service_ports: Option<&BTreeSet<&str>>,
    allow_fqdn: bool,
    p: &Path<'_>,
) {
    let ap = p.field("address");
    if we.address.is_empty() {
        if we.network.is_empty() {
            r.err(&ap, "address is required");
            return;
        }
        r.warn(
            &ap,
            format!("address is unset with network {:?}", we.network),
        );
    }
    let unix = we.address.starts_with("unix://");
    if let Some(path) = we.address.strip_prefix("unix://") {
        if let Err(e) = validate_unix_address(path) {
            r.err(&ap, e);
        }
        if !we.ports.is_empty() {
            r.err(
                &p.field("ports"),
                format!("unix endpoint {} must not include ports", we.address),
            );
        }
    } else if !we.address.is_empty() && !is_ip(&we.address) {
        if !allow_fqdn {
            r.err(
                &ap,
                format!(
                    "endpoint address {:?} is not a valid IP address",
                    we.address
                ),
            );
        } else if validate_fqdn(&we.address).is_err() {
            r.err(
                &ap,
                format!(
                    "endpoint address {:?} is not a valid FQDN or an IP address",
                    we.address
                ),
            );
        }
    }
    check_endpoint_ports(r, we, service_ports, p);
    check_labels(r, &p.field("labels"), &we.labels);
    if unix && service_ports.is_some_and(|s| s.len() != 1) {
        r.err(&ap, "exactly 1 service port required for unix endpoints");
    }
}

/// Validates a WorkloadEntry spec.
pub fn validate_workload_entry(r: &mut Report, _meta: &Metadata, we: &WorkloadEntry) {
    check_workload_entry(r, we, None, true, &Path::Root("spec"));
}
#[cfg(test)]
mod tests {
    use super::super::testutil::{run_table, Want::*};
    use serde_json::json;

    #[test]
    fn table() {
        let https = json!([{"number": 443, "name": "tls", "protocol": "TLS"}]);
        let tcp = json!([{"number": 3306, "name": "tcp", "protocol": "TCP"}]);
        let cases = vec![
            (
                "dns tls",
                json!({"hosts": ["api.example.com"], "resolution": "DNS", "ports": https}),
                Valid,
            ),
            (
                "no hosts",
                json!({"hosts": [], "ports": https}),
                Error("service entry must have at least one host"),
            ),
            (
                "star host",
                json!({"hosts": ["*"], "resolution": "DNS", "ports": https}),
                Error("invalid host *"),
            ),
            (
                "underscore",
                json!({"hosts": ["a_b.example.com"], "resolution": "DNS", "ports": https}),
                Error("spec.hosts[0]"),
            ),
            (
                "partial wildcard",
                json!({"hosts": ["*foo.com"], "addresses": ["10.0.0.1"], "ports": https}),
                Warning("partial wildcard \"*foo.com\" not allowed"),
            ),
            (
                "none with cidr",
                json!({"hosts": ["db.internal"], "addresses": ["10.0.0.0/8"], "resolution": "NONE", "ports": tcp}),
                Valid,
            ),
            (
                "dns with cidr",
                json!({"hosts": ["a.example.com"], "addresses": ["10.0.0.0/8"], "resolution": "DNS", "ports": https}),
                Error("CIDR addresses are allowed only for NONE/STATIC"),
            ),
            (
                "bad address",
                json!({"hosts": ["a.example.com"], "addresses": ["10.0.0.300"], "resolution": "STATIC", "ports": https}),
                Error("10.0.0.300 is not a valid IP"),
            ),
            (
                "dup number",
                json!({"hosts": ["a.example.com"], "resolution": "DNS", "ports": [
                {"number": 80, "name": "http", "protocol": "HTTP"}, {"number": 80, "name": "http2", "protocol": "HTTP"}]}),
                Error("service entry port 80 already defined"),
            ),
            (
                "dup name",
                json!({"hosts": ["a.example.com"], "resolution": "DNS", "ports": [
                {"number": 80, "name": "http", "protocol": "HTTP"}, {"number": 81, "name": "http", "protocol": "HTTP"}]}),
                Error("service entry port name \"http\" already defined"),
            ),
            (
                "port name",
                json!({"hosts": ["a.example.com"], "resolution": "DNS", "ports": [{"number": 80, "name": "Foo_1", "protocol": "HTTP"}]}),
                Error("invalid port name"),
            ),
            (
                "port zero",
                json!({"hosts": ["a.example.com"], "resolution": "DNS", "ports": [{"number": 0, "name": "http", "protocol": "HTTP"}]}),
                Error("port number 0"),
            ),
            (
                "bad protocol",
                json!({"hosts": ["a.example.com"], "resolution": "DNS", "ports": [{"number": 80, "name": "http", "protocol": "foo"}]}),
                Error("unsupported protocol: foo"),
            ),
            (
                "none tcp no address",
                json!({"hosts": ["db.example.com"], "ports": tcp}),
                Warning("addresses are required"),
            ),
            (
                "autoallocate tcp",
                json!({"hosts": ["db.example.com"], "resolution": "DNS", "ports": tcp}),
                Valid,
            ),
            (
                "none endpoints",
                json!({"hosts": ["a.example.com"], "addresses": ["10.0.0.1"], "ports": https, "endpoints": [{"address": "10.1.1.1"}]}),
                Error("no endpoints should be provided for resolution type none"),
            ),
            (
                "static ok",
                json!({"hosts": ["a.example.com"], "resolution": "STATIC", "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                "endpoints": [{"address": "10.1.1.1", "ports": {"http": 8080}}]}),
                Valid,
            ),
            (
                "static hostname",
                json!({"hosts": ["a.example.com"], "resolution": "STATIC", "ports": https, "endpoints": [{"address": "foo.com"}]}),
                Error("endpoint address \"foo.com\" is not a valid IP address"),
            ),
            (
                "static port undefined",
                json!({"hosts": ["a.example.com"], "resolution": "STATIC", "ports": https, "endpoints": [{"address": "10.1.1.1", "ports": {"grpc": 9090}}]}),
                Error("endpoint port 9090 is not defined by the service entry"),
            ),
            (
                "static network",
                json!({"hosts": ["a.example.com"], "resolution": "STATIC", "ports": https, "endpoints": [{"network": "n1"}]}),
                Warning("address is unset with network \"n1\""),
            ),
            (
                "unix ports",
                json!({"hosts": ["a.example.com"], "resolution": "STATIC", "ports": https, "endpoints": [{"address": "unix:///sock", "ports": {"tls": 1}}]}),
                Error("must not include ports"),
            ),
            (
                "dns wildcard",
                json!({"hosts": ["*.example.com"], "resolution": "DNS", "ports": https}),
                Error("hosts must be FQDN or contain only prefix wildcards if no endpoints are provided"),
            ),
            (
                "dns endpoint bad",
                json!({"hosts": ["a.example.com"], "resolution": "DNS", "ports": https, "endpoints": [{"address": "foo_bar"}]}),
                Error("is not a valid FQDN or an IP address"),
            ),
            (
                "dns rr two",
                json!({"hosts": ["a.example.com"], "resolution": "DNS_ROUND_ROBIN", "ports": https, "endpoints": [{"address": "a.b.c"}, {"address": "d.e.f"}]}),
                Error("0 or 1 endpoint"),
            ),
            (
                "multi host tcp",
                json!({"hosts": ["a.example.com", "b.example.com"], "resolution": "DNS", "ports": tcp}),
                Error("multiple hosts provided with non-HTTP, non-TLS ports"),
            ),
            (
                "multi host unset",
                json!({"hosts": ["a.example.com", "b.example.com"], "resolution": "DNS", "ports": [{"number": 1, "name": "p"}]}),
                Error("multiple hosts provided"),
            ),
            (
                "multi host http",
                json!({"hosts": ["a.example.com", "b.example.com"], "resolution": "DNS", "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]}),
                Valid,
            ),
            (
                "dynamic dns",
                json!({"hosts": ["*.cdn.example.com"], "resolution": "DYNAMIC_DNS", "ports": https}),
                Valid,
            ),
            (
                "dynamic dns tcp",
                json!({"hosts": ["*.cdn.example.com"], "resolution": "DYNAMIC_DNS", "ports": tcp}),
                Error("only HTTP, TLS, GRPC, and HTTP2 protocols"),
            ),
            (
                "dynamic dns host",
                json!({"hosts": ["cdn.example.com"], "resolution": "DYNAMIC_DNS", "ports": https}),
                Error("host must be wildcarded"),
            ),
            (
                "selector and endpoints",
                json!({"hosts": ["a.example.com"], "resolution": "STATIC", "ports": https, "workloadSelector": {"labels": {"app": "a"}}, "endpoints": [{"address": "1.1.1.1"}]}),
                Error("only one of WorkloadSelector or Endpoints"),
            ),
            (
                "selector empty",
                json!({"hosts": ["a.example.com"], "resolution": "STATIC", "ports": https, "workloadSelector": {}}),
                Warning("workload selector specified without labels"),
            ),
            (
                "export none and ns",
                json!({"hosts": ["a.example.com"], "resolution": "DNS", "ports": https, "exportTo": ["~", "ns1"]}),
                Error("cannot export service entry to no one (~) and someone"),
            ),
            (
                "export none",
                json!({"hosts": ["a.example.com"], "resolution": "DNS", "ports": https, "exportTo": ["~"]}),
                Valid,
            ),
            (
                "resolution number",
                json!({"hosts": ["a.example.com"], "resolution": 2, "ports": https}),
                Valid,
            ),
            (
                "unknown field",
                json!({"hosts": ["a.example.com"], "resolution": "DNS", "ports": https, "endpoint": []}),
                Error("spec.endpoint: unknown field"),
            ),
        ];
        run_table("networking.istio.io/v1", "ServiceEntry", &cases);
    }

    #[test]
    fn workload_entry() {
        let cases = vec![
            (
                "ip",
                json!({"address": "10.0.0.1", "ports": {"http": 8080}, "labels": {"app": "vm"}}),
                Valid,
            ),
            ("fqdn", json!({"address": "vm.example.com"}), Valid),
            (
                "network only",
                json!({"network": "n1"}),
                Warning("address is unset with network"),
            ),
            ("no address", json!({}), Error("address is required")),
            (
                "bad address",
                json!({"address": "foo_bar"}),
                Error("not a valid FQDN or an IP address"),
            ),
            (
                "unix ports",
                json!({"address": "unix:///sock", "ports": {"http": 1}}),
                Error("must not include ports"),
            ),
            (
                "bad port",
                json!({"address": "10.0.0.1", "ports": {"http": 0}}),
                Error("port number 0"),
            ),
        ];
        run_table("networking.istio.io/v1", "WorkloadEntry", &cases);
    }
}
