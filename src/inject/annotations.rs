//! Validation of the pod annotations the sidecar path reads (Istio's `validate.go`). Every bad
//! annotation is reported, each message naming the annotation, its value and the rule.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::quantity;
use crate::config::mesh::normalize_proxy_config;

pub const INTERCEPTION_MODE: &str = "sidecar.istio.io/interceptionMode";
pub const INCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/includeOutboundIPRanges";
pub const EXCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
pub const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
pub const INCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeOutboundPorts";
pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
pub const KUBEVIRT_INTERFACES: &str = "traffic.sidecar.istio.io/kubevirtInterfaces";
pub const REROUTE_VIRTUAL_INTERFACES: &str = "istio.io/reroute-virtual-interfaces";
pub const EXCLUDE_INTERFACES: &str = "traffic.sidecar.istio.io/excludeInterfaces";
pub const STATUS_PORT: &str = "status.sidecar.istio.io/port";
pub const READINESS_INITIAL_DELAY: &str = "readiness.status.sidecar.istio.io/initialDelaySeconds";
pub const READINESS_PERIOD: &str = "readiness.status.sidecar.istio.io/periodSeconds";
pub const READINESS_FAILURE_THRESHOLD: &str = "readiness.status.sidecar.istio.io/failureThreshold";
pub const READINESS_APP_PORTS: &str = "readiness.status.sidecar.istio.io/applicationPorts";
pub const PROXY_CPU: &str = "sidecar.istio.io/proxyCPU";
pub const PROXY_MEMORY: &str = "sidecar.istio.io/proxyMemory";
pub const PROXY_CPU_LIMIT: &str = "sidecar.istio.io/proxyCPULimit";
pub const PROXY_MEMORY_LIMIT: &str = "sidecar.istio.io/proxyMemoryLimit";
pub const PROXY_IMAGE: &str = "sidecar.istio.io/proxyImage";
pub const PROXY_IMAGE_TYPE: &str = "sidecar.istio.io/proxyImageType";
pub const USER_VOLUME: &str = "sidecar.istio.io/userVolume";
pub const USER_VOLUME_MOUNT: &str = "sidecar.istio.io/userVolumeMount";
pub const PROXY_CONFIG: &str = "proxy.istio.io/config";
pub const NATIVE_SIDECAR: &str = "sidecar.istio.io/nativeSidecar";
pub const REWRITE_PROBES: &str = "sidecar.istio.io/rewriteAppHTTPProbers";
pub const MERGE_METRICS: &str = "prometheus.istio.io/merge-metrics";
pub const CAP_NET_BIND_SERVICE: &str = "sidecar.istio.io/capNetBindService";
pub const TEMPLATES: &str = "inject.istio.io/templates";
pub const OVERRIDES: &str = "proxy.istio.io/overrides";
pub const STATUS: &str = "sidecar.istio.io/status";
pub const BOOTSTRAP_OVERRIDE: &str = "sidecar.istio.io/bootstrapOverride";

type Check = fn(&str) -> Result<(), String>;

/// Annotation → (Istio's short name for the setting, validator).
const CHECKS: &[(&str, &str, Check)] = &[
    (
        INTERCEPTION_MODE,
        "interceptionMode",
        check_interception_mode,
    ),
    (
        INCLUDE_OUTBOUND_IP_RANGES,
        "includeIPRanges",
        check_include_ip_ranges,
    ),
    (
        EXCLUDE_OUTBOUND_IP_RANGES,
        "excludeIPRanges",
        check_exclude_ip_ranges,
    ),
    (
        INCLUDE_INBOUND_PORTS,
        "includeInboundPorts",
        check_include_ports,
    ),
    (
        EXCLUDE_INBOUND_PORTS,
        "excludeInboundPorts",
        check_port_list,
    ),
    (
        EXCLUDE_OUTBOUND_PORTS,
        "excludeOutboundPorts",
        check_port_list,
    ),
    (KUBEVIRT_INTERFACES, "kubevirtInterfaces", check_interfaces),
    (
        REROUTE_VIRTUAL_INTERFACES,
        "rerouteVirtualInterfaces",
        check_interfaces,
    ),
    (EXCLUDE_INTERFACES, "excludeInterfaces", check_interfaces),
    (STATUS_PORT, "statusPort", check_status_port),
    (READINESS_INITIAL_DELAY, "initialDelaySeconds", check_u32),
    (READINESS_PERIOD, "periodSeconds", check_u32),
    (READINESS_FAILURE_THRESHOLD, "failureThreshold", check_u32),
    (READINESS_APP_PORTS, "applicationPorts", check_include_ports),
    (PROXY_CPU, "proxyCPU", check_quantity),
    (PROXY_MEMORY, "proxyMemory", check_quantity),
    (PROXY_CPU_LIMIT, "proxyCPULimit", check_quantity),
    (PROXY_MEMORY_LIMIT, "proxyMemoryLimit", check_quantity),
    (USER_VOLUME, "userVolume", check_json_map),
    (USER_VOLUME_MOUNT, "userVolumeMount", check_json_map),
    (PROXY_CONFIG, "proxyConfig", check_proxy_config),
    (NATIVE_SIDECAR, "nativeSidecar", check_bool),
    (PROXY_IMAGE_TYPE, "proxyImageType", check_image_type),
    (OVERRIDES, "overrides", check_overrides),
];

/// Checks every known annotation; returns all problems in annotation order, or nothing.
pub fn validate(annotations: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, value) in annotations {
        if let Some((_, short, check)) = CHECKS.iter().find(|(k, _, _)| k == key) {
            if let Err(why) = check(value) {
                problems.push(format!("annotation {key}={value:?}: {short}: {why}"));
            }
        }
    }
    problems
}

fn check_interception_mode(v: &str) -> Result<(), String> {
    match v {
        "REDIRECT" | "TPROXY" | "NONE" => Ok(()),
        _ => Err("must be one of REDIRECT, TPROXY, NONE".into()),
    }
}

fn check_cidrs(v: &str) -> Result<(), String> {
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.parse::<IpNet>().is_err() && part.parse::<IpAddr>().is_err() {
            return Err(format!(
                "{part:?} is not an IP range in CIDR notation (e.g. 10.0.0.0/8)"
            ));
        }
    }
    Ok(())
}

fn check_include_ip_ranges(v: &str) -> Result<(), String> {
    if v.trim() == "*" {
        return Ok(());
    }
    check_cidrs(v)
}

fn check_exclude_ip_ranges(v: &str) -> Result<(), String> {
    if v.contains('*') {
        return Err("\"*\" is not allowed here; list CIDR ranges".into());
    }
    check_cidrs(v)
}

fn check_port(p: &str) -> Result<u32, String> {
    match p.trim().parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n),
        _ => Err(format!("{p:?} is not a port number (1-65535)")),
    }
}

fn check_port_list(v: &str) -> Result<(), String> {
    for p in v.split(',').filter(|p| !p.trim().is_empty()) {
        check_port(p)?;
    }
    Ok(())
}

fn check_include_ports(v: &str) -> Result<(), String> {
    if v.trim() == "*" {
        return Ok(());
    }
    check_port_list(v)
}

fn check_interfaces(v: &str) -> Result<(), String> {
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let ok = name.len() <= 15
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
        if !ok {
            return Err(format!("{name:?} is not a valid network interface name"));
        }
    }
    Ok(())
}

fn check_status_port(v: &str) -> Result<(), String> {
    match v.trim().parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(()),
        _ => Err(format!(
            "{v:?} is not a port number (0-65535; 0 disables the proxy probes)"
        )),
    }
}

fn check_u32(v: &str) -> Result<(), String> {
    v.trim()
        .parse::<u32>()
        .map(|_| ())
        .map_err(|_| format!("{v:?} is not a non-negative 32-bit integer"))
}

fn check_quantity(v: &str) -> Result<(), String> {
    quantity::canonicalize(v)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn check_json_map(v: &str) -> Result<(), String> {
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(serde_json::Value::Object(m)) if m.values().all(|x| x.is_object()) => Ok(()),
        Ok(_) => Err("expected a JSON object mapping names to objects".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn check_proxy_config(v: &str) -> Result<(), String> {
    let doc = crate::config::parse_yaml(PROXY_CONFIG, v).map_err(|e| e.to_string())?;
    normalize_proxy_config(PROXY_CONFIG, &doc)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn check_bool(v: &str) -> Result<(), String> {
    match v {
        "true" | "false" => Ok(()),
        _ => Err("must be \"true\" or \"false\"".into()),
    }
}

fn check_image_type(v: &str) -> Result<(), String> {
    match v {
        "default" | "debug" | "distroless" => Ok(()),
        _ => Err("must be one of default, debug, distroless".into()),
    }
}

fn check_overrides(v: &str) -> Result<(), String> {
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err("expected a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// Parses a Go-style bool as `strconv.ParseBool` does.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, value: &str) -> Vec<String> {
        validate(&[(key.to_string(), value.to_string())].into_iter().collect())
    }

    #[test]
    fn every_validated_annotation_accepts_good_and_rejects_bad() {
        let table: &[(&str, &str, &str)] = &[
            (INTERCEPTION_MODE, "TPROXY", "MAGIC"),
            (
                INCLUDE_OUTBOUND_IP_RANGES,
                "10.0.0.0/8,192.168.0.0/16",
                "bad",
            ),
            (INCLUDE_OUTBOUND_IP_RANGES, "10.0.0.0/8", "10.0.0.0/8,*"),
            (INCLUDE_OUTBOUND_IP_RANGES, "*", "10.0.0.0/33"),
            (EXCLUDE_OUTBOUND_IP_RANGES, "10.96.0.2/24", "*"),
            (INCLUDE_INBOUND_PORTS, "*", "http"),
            (INCLUDE_INBOUND_PORTS, "1,2,3", "70000"),
            (EXCLUDE_INBOUND_PORTS, "4,5,6", "*"),
            (EXCLUDE_OUTBOUND_PORTS, "7,8", "0"),
            (KUBEVIRT_INTERFACES, "net1,net2", "bad name!"),
            (REROUTE_VIRTUAL_INTERFACES, "eth1", "a/b"),
            (EXCLUDE_INTERFACES, "eth9", "way-too-long-interface-name"),
            (STATUS_PORT, "0", "-1"),
            (READINESS_INITIAL_DELAY, "100", "-5"),
            (READINESS_PERIOD, "200", "1.5"),
            (READINESS_FAILURE_THRESHOLD, "300", "x"),
            (READINESS_APP_PORTS, "1,2,3", "a"),
            (PROXY_CPU, "100m", "lots"),
            (PROXY_MEMORY, "1Gi", "1GB"),
            (PROXY_CPU_LIMIT, "2", "2 cores"),
            (PROXY_MEMORY_LIMIT, "2Gi", "??"),
            (USER_VOLUME, r#"{"v":{"emptyDir":{}}}"#, "[1]"),
            (USER_VOLUME_MOUNT, r#"{"v":{"mountPath":"/x"}}"#, "{"),
            (PROXY_CONFIG, "concurrency: 2", "concurrency: many"),
            (
                PROXY_CONFIG,
                "holdApplicationUntilProxyStarts: true",
                "noSuchField: 1",
            ),
            (NATIVE_SIDECAR, "false", "maybe"),
            (PROXY_IMAGE_TYPE, "distroless", "slim"),
            (OVERRIDES, r#"{"containers":[]}"#, "not json"),
        ];
        for (key, good, bad) in table {
            assert!(
                check(key, good).is_empty(),
                "{key}={good} should be valid: {:?}",
                check(key, good)
            );
            let errs = check(key, bad);
            assert_eq!(errs.len(), 1, "{key}={bad} should be invalid");
            assert!(
                errs[0].contains(key),
                "message names the annotation: {}",
                errs[0]
            );
        }
    }

    #[test]
    fn messages_carry_istio_short_names() {
        assert!(check(INCLUDE_OUTBOUND_IP_RANGES, "bad")[0].contains("includeIPRanges"));
        assert!(check(EXCLUDE_INBOUND_PORTS, "*")[0].contains("excludeInboundPorts"));
    }

    #[test]
    fn all_problems_are_reported() {
        let anns = [
            (INCLUDE_INBOUND_PORTS.to_string(), "x".to_string()),
            (EXCLUDE_INBOUND_PORTS.to_string(), "y".to_string()),
            ("unrelated".to_string(), "anything".to_string()),
        ];
        assert_eq!(validate(&anns.into_iter().collect()).len(), 2);
    }
}
