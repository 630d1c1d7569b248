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
    if se.workload_selector.is_some() && !se.endpoints.is_empty() {
        r.err(
            &spec.field("workloadSelector"),
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        );
    }
    if let Some(ws) = &se.workload_selector {
        check_selector_labels(
            r,
            &spec.field("workloadSelector").field("labels"),
            &ws.labels,
            "service entry: workload selector specified without labels, will be applied to all services in namespace",
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
        if let Err(e) = validate_partial_wildcard(h) {
            if se.resolution == Resolution::DynamicDns {
                r.err(&ip, e);
            } else {
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

    let auto_allocate = se.resolution != Resolution::None
        && meta
            .labels
            .get("networking.istio.io/enable-autoallocate-ip")
            .map(String::as_str)
            != Some("false");
    let pp = spec.field("ports");
    let mut names: BTreeSet<&str> = BTreeSet::new();
    let mut numbers: BTreeSet<u32> = BTreeSet::new();
    let mut warned_addresses = false;
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
            && !warned_addresses
            && (port.protocol.is_empty() || parse_protocol(&port.protocol) == Some("TCP"))
        {
            r.warn(
                &ip,
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled",
            );
            warned_addresses = true;
        }
        if !is_dns1123_label(&port.name) {
            r.err(
                &ip.field("name"),
                format!("invalid port name: {:?}", port.name),
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
                let ip = ep.index(i);
                let ap = ip.field("address");
                if let Some(path) = e.address.strip_prefix("unix://") {
                    if let Err(err) = validate_unix_address(path) {
                        r.err(&ap, err);
                    }
                    if !e.ports.is_empty() {
                        r.err(
                            &ip.field("ports"),
                            format!("unix endpoint {} must not include ports", e.address),
                        );
                    }
                    if se.ports.len() != 1 {
                        r.err(&ap, "exactly 1 service port required for unix endpoints");
                    }
                } else if e.address.is_empty() {
                    if e.network.is_empty() {
                        r.err(&ap, "address is required");
                    } else {
                        r.warn(
                            &ap,
                            format!("address is unset with network {:?}", e.network),
                        );
                    }
                } else if !is_ip(&e.address) {
                    r.err(
                        &ap,
                        format!("endpoint address {:?} is not a valid IP address", e.address),
                    );
                }
                check_endpoint_common(r, e, &names, &ip);
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            let mode = se.resolution.name();
            if se.endpoints.is_empty() {
                for (i, h) in se.hosts.iter().enumerate() {
                    if validate_fqdn(h).is_err() {
                        r.err(
                            &hp.index(i),
                            format!(
                                "hosts must be FQDN if no endpoints are provided for resolution mode {mode} (got {h:?})"
                            ),
                        );
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
                if e.address.is_empty() {
                    r.err(&ip.field("address"), "address is required");
                } else if !is_ip(&e.address) && validate_fqdn(&e.address).is_err() {
                    r.err(
                        &ip.field("address"),
                        format!(
                            "endpoint address {:?} is not a valid FQDN or an IP address",
                            e.address
                        ),
                    );
                }
                check_endpoint_common(r, e, &names, &ip);
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
            for (i, h) in se.hosts.iter().enumerate() {
                if !is_wildcarded(h) {
                    r.err(
                        &hp.index(i),
                        "host must be wildcarded for resolution mode DYNAMIC_DNS",
                    );
                }
            }
            if !se.addresses.is_empty() {
                r.err(
                    &ap,
                    "addresses are not supported for resolution mode DYNAMIC_DNS",
                );
            }
            if !se.endpoints.is_empty() {
                r.err(
                    &ep,
                    "endpoints are not supported for resolution mode DYNAMIC_DNS",
                );
            }
            for (i, port) in se.ports.iter().enumerate() {
                if !matches!(
                    parse_protocol(&port.protocol),
                    Some("HTTP" | "TLS" | "GRPC" | "HTTP2")
                ) {
                    r.err(
                        &pp.index(i).field("protocol"),
                        "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type DYNAMIC_DNS",
                    );
                }
            }
            if se.location == Location::MeshInternal {
                if let Some(w) = meta.labels.get("istio.io/use-waypoint") {
                    if w != "none" {
                        r.err(
                            &spec.field("location"),
                            "location MESH_INTERNAL with resolution type DYNAMIC_DNS is not supported when using waypoints",
                        );
                    }
                }
            }
        }
        Resolution::Unknown(n) => {
            r.err(
                &spec.field("resolution"),
                format!("unsupported resolution type {n}"),
            );
        }
    }
    if let Location::Unknown(n) = se.location {
        r.err(&spec.field("location"), format!("unsupported location {n}"));
    }

    if se.hosts.len() > 1 && se.resolution != Resolution::None {
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

fn check_endpoint_common(r: &mut Report, e: &WorkloadEntry, names: &BTreeSet<&str>, p: &Path<'_>) {
    check_labels(r, &p.field("labels"), &e.labels);
    let pp = p.field("ports");
    for (name, port) in &e.ports {
        let kp = pp.key(name);
        if !names.contains(name.as_str()) {
            r.err(
                &kp,
                format!("endpoint port {name} is not defined by the service entry"),
            );
        }
        if let Err(err) = validate_port(*port) {
            r.err(&kp, err);
        }
    }
}

/// Validates a WorkloadEntry spec.
pub fn validate_workload_entry(r: &mut Report, _meta: &Metadata, we: &WorkloadEntry) {
    let spec = Path::Root("spec");
    let ap = spec.field("address");
    if we.address.is_empty() && we.network.is_empty() {
        r.err(&ap, "address is required");
    }
    if let Some(path) = we.address.strip_prefix("unix://") {
        if let Err(e) = validate_unix_address(path) {
            r.err(&ap, e);
        }
        if !we.ports.is_empty() {
            r.err(
                &spec.field("ports"),
                format!("unix endpoint {} must not include ports", we.address),
            );
        }
    } else if !we.address.is_empty() && !is_ip(&we.address) && validate_fqdn(&we.address).is_err() {
        r.err(
            &ap,
            format!(
                "endpoint address {:?} is not a valid FQDN or an IP address",
                we.address
            ),
        );
    }
    check_labels(r, &spec.field("labels"), &we.labels);
    let pp = spec.field("ports");
    for (name, port) in &we.ports {
        let kp = pp.key(name);
        if !is_dns1123_label(name) {
            r.err(&kp, format!("invalid port name: {name}"));
        }
        if let Err(e) = validate_port(*port) {
            r.err(&kp, e);
        }
    }
    if !we.service_account.is_empty() && !is_dns1123_subdomain(&we.service_account) {
        r.err(
            &spec.field("serviceAccount"),
            format!("invalid service account name: {:?}", we.service_account),
        );
    }
}
