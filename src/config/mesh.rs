//! MeshConfig and its `defaultConfig` (ProxyConfig): Istio's built-in defaults, the user's
//! overlay, the per-pod `proxy.istio.io/config` override, and the `PROXY_CONFIG` rendering.

use serde_json::{Map, Value};

use super::{deep_merge, parse_yaml, ConfigError};

/// Istio's ProxyConfig fields (proto JSON names). Anything else in a ProxyConfig is an error.
const PROXY_CONFIG_FIELDS: &[&str] = &[
    "configPath",
    "binaryPath",
    "serviceCluster",
    "drainDuration",
    "parentShutdownDuration",
    "discoveryAddress",
    "discoveryRefreshDelay",
    "zipkinAddress",
    "statsdUdpAddress",
    "envoyMetricsServiceAddress",
    "proxyAdminPort",
    "availabilityZone",
    "controlPlaneAuthPolicy",
    "customConfigFile",
    "statNameLength",
    "concurrency",
    "proxyBootstrapTemplatePath",
    "interceptionMode",
    "tracing",
    "sds",
    "envoyAccessLogService",
    "envoyMetricsService",
    "proxyMetadata",
    "runtimeValues",
    "statusPort",
    "extraStatTags",
    "gatewayTopology",
    "terminationDrainDuration",
    "meshId",
    "readinessProbe",
    "proxyStatsMatcher",
    "holdApplicationUntilProxyStarts",
    "caCertificatesPem",
    "image",
    "privateKeyProvider",
    "proxyHeaders",
    "fileFlushInterval",
    "fileFlushMinSizeKb",
    "tracingServiceName",
    "startupProbe",
];

const DURATION_FIELDS: &[&str] = &[
    "drainDuration",
    "parentShutdownDuration",
    "discoveryRefreshDelay",
    "terminationDrainDuration",
    "fileFlushInterval",
];

const INTERCEPTION_MODES: &[&str] = &["REDIRECT", "TPROXY", "NONE"];

fn default_proxy_config() -> Value {
    serde_json::json!({
        "configPath": "./etc/istio/proxy",
        "binaryPath": "/usr/local/bin/envoy",
        "serviceCluster": "istio-proxy",
        "drainDuration": "45s",
        "terminationDrainDuration": "5s",
        "discoveryAddress": "istiod.istio-system.svc:15012",
        "proxyAdminPort": 15000,
        "controlPlaneAuthPolicy": "MUTUAL_TLS",
        "statNameLength": 189,
        "statusPort": 15020,
        "interceptionMode": "REDIRECT",
    })
}

fn default_mesh() -> Value {
    serde_json::json!({
        "proxyListenPort": 15001,
        "proxyInboundListenPort": 15006,
        "connectTimeout": "10s",
        "ingressClass": "istio",
        "ingressService": "istio-ingressgateway",
        "ingressControllerMode": "STRICT",
        "enableTracing": true,
        "accessLogFile": "",
        "trustDomain": "cluster.local",
        "enableAutoMtls": true,
        "outboundTrafficPolicy": {"mode": "ALLOW_ANY"},
        "inboundTrafficPolicy": {"mode": "PASSTHROUGH"},
        "rootNamespace": "istio-system",
        "enablePrometheusMerge": true,
        "dnsRefreshRate": "60s",
        "defaultConfig": default_proxy_config(),
    })
}

/// The effective mesh configuration.
#[derive(Debug, Clone)]
pub struct MeshConfig(pub Value);

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig(default_mesh())
    }
}

impl MeshConfig {
    /// Parses a `mesh` document and merges it onto Istio's defaults.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let mut overlay = parse_yaml("mesh config", text)?;
        if let Some(o) = overlay.as_object_mut() {
            let raw = o
                .remove("defaultConfig")
                .or_else(|| o.remove("default_config"));
            if let Some(dc) = raw {
                let dc = normalize_proxy_config("mesh config defaultConfig", &dc)?;
                o.insert("defaultConfig".into(), dc);
            }
        }
        let mut mesh = default_mesh();
        deep_merge(&mut mesh, &overlay);
        Ok(MeshConfig(mesh))
    }

    /// `defaultConfig` (never missing: the defaults provide it).
    pub fn default_config(&self) -> Value {
        self.0
            .get("defaultConfig")
            .cloned()
            .unwrap_or_else(default_proxy_config)
    }

    /// An integer setting with a fallback.
    pub fn int(&self, key: &str, default: i64) -> i64 {
        self.0.get(key).and_then(Value::as_i64).unwrap_or(default)
    }

    /// A string setting (empty when absent).
    pub fn string(&self, key: &str) -> String {
        super::scalar_string(self.0.get(key))
    }
}

/// Checks and normalises a ProxyConfig document: snake_case names become camelCase, unknown
/// fields and bad types are errors naming the field, durations are written as proto JSON does.
pub fn normalize_proxy_config(what: &str, v: &Value) -> Result<Value, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        what: what.to_string(),
        message,
    };
    let obj = match v {
        Value::Null => return Ok(Value::Object(Map::new())),
        Value::Object(o) => o,
        _ => return Err(invalid("expected a ProxyConfig mapping".into())),
    };
    let mut out = Map::new();
    for (k, val) in obj {
        let key = crate::istio::schema::json_name(k);
        if !PROXY_CONFIG_FIELDS.contains(&key.as_str()) {
            return Err(invalid(format!("unknown ProxyConfig field {k:?}")));
        }
        let val = match key.as_str() {
            "concurrency" | "proxyAdminPort" | "statusPort" | "statNameLength" => {
                let n = match val {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.parse::<i64>().ok(),
                    Value::Null => None,
                    _ => None,
                };
                match n {
                    Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Value::from(n),
                    _ => {
                        return Err(invalid(format!(
                            "{key}: expected a non-negative integer, got {val}"
                        )))
                    }
                }
            }
            "interceptionMode" => match val.as_str() {
                Some(m) if INTERCEPTION_MODES.contains(&m) => val.clone(),
                _ => {
                    return Err(invalid(format!(
                        "interceptionMode: {val} is not one of REDIRECT, TPROXY, NONE"
                    )))
                }
            },
            "holdApplicationUntilProxyStarts" => match val {
                Value::Bool(_) => val.clone(),
                _ => return Err(invalid(format!("{key}: expected true or false, got {val}"))),
            },
            "proxyMetadata" | "runtimeValues" => {
                let Some(m) = val.as_object() else {
                    return Err(invalid(format!("{key}: expected a map of strings")));
                };
                let mut norm = Map::new();
                for (mk, mv) in m {
                    let s = match mv {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => mv.to_string(),
                        _ => return Err(invalid(format!("{key}.{mk}: expected a string"))),
                    };
                    norm.insert(mk.clone(), Value::String(s));
                }
                Value::Object(norm)
            }
            d if DURATION_FIELDS.contains(&d) => match val.as_str().map(parse_go_duration) {
                Some(Some(nanos)) => Value::String(format_proto_duration(nanos)),
                _ => {
                    return Err(invalid(format!(
                        "{key}: {val} is not a duration like 45s or 1m30s"
                    )))
                }
            },
            _ => val.clone(),
        };
        out.insert(key, val);
    }
    Ok(Value::Object(out))
}

/// Parses a Go duration (`1h2m3.5s`, `300ms`) into nanoseconds. `None` when invalid.
pub fn parse_go_duration(s: &str) -> Option<i128> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." {
            return None;
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        if frac_part.len() > 18 || int_part.len() > 18 {
            return None;
        }
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut value = int.checked_mul(scale)?;
        if !frac_part.is_empty() {
            let frac: i128 = frac_part.parse().ok()?;
            let denom = 10i128.checked_pow(frac_part.len() as u32)?;
            value = value.checked_add(frac.checked_mul(scale)? / denom)?;
        }
        total = total.checked_add(value)?;
        rest = next;
    }
    Some(if neg { -total } else { total })
}

/// Formats nanoseconds the way proto JSON writes a Duration (`45s`, `1.500s`).
pub fn format_proto_duration(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.abs();
    let secs = n / 1_000_000_000;
    let frac = n % 1_000_000_000;
    if frac == 0 {
        format!("{sign}{secs}s")
    } else if frac % 1_000_000 == 0 {
        format!("{sign}{secs}.{:03}s", frac / 1_000_000)
    } else if frac % 1_000 == 0 {
        format!("{sign}{secs}.{:06}s", frac / 1_000)
    } else {
        format!("{sign}{secs}.{frac:09}s")
    }
}

/// The effective ProxyConfig: mesh `defaultConfig` with the pod annotation applied on top.
pub fn effective_proxy_config(mesh: &MeshConfig, annotation: Option<&Value>) -> Value {
    let mut pc = mesh.default_config();
    if let Some(a) = annotation {
        deep_merge(&mut pc, a);
    }
    pc
}

/// `PROXY_CONFIG`: the effective ProxyConfig without the fields equal to Istio's defaults.
pub fn proxy_config_env(effective: &Value) -> String {
    let defaults = default_proxy_config();
    let mut out = Map::new();
    if let Some(obj) = effective.as_object() {
        for (k, v) in obj {
            if defaults.get(k) != Some(v) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_render_as_empty_proxy_config() {
        let mesh = MeshConfig::from_yaml(
            "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n",
        )
        .unwrap();
        assert_eq!(proxy_config_env(&effective_proxy_config(&mesh, None)), "{}");
    }

    #[test]
    fn annotation_overrides_and_merges_metadata() {
        let mesh = MeshConfig::from_yaml("defaultConfig:\n  proxyMetadata:\n    A: x\n    B: y\n")
            .unwrap();
        let ann = normalize_proxy_config(
            "a",
            &json!({"proxy_metadata": {"B": "z"}, "concurrency": 0}),
        )
        .unwrap();
        let pc = effective_proxy_config(&mesh, Some(&ann));
        assert_eq!(pc["proxyMetadata"], json!({"A": "x", "B": "z"}));
        let env: Value = serde_json::from_str(&proxy_config_env(&pc)).unwrap();
        assert_eq!(
            env,
            json!({"proxyMetadata": {"A": "x", "B": "z"}, "concurrency": 0})
        );
    }

    #[test]
    fn rejects_unknown_and_mistyped_fields() {
        assert!(normalize_proxy_config("a", &json!({"nope": 1})).is_err());
        assert!(normalize_proxy_config("a", &json!({"concurrency": "lots"})).is_err());
        assert!(normalize_proxy_config("a", &json!({"interceptionMode": "MAGIC"})).is_err());
        assert!(normalize_proxy_config("a", &json!({"drainDuration": "soon"})).is_err());
        assert!(normalize_proxy_config("a", &json!("text")).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(format_proto_duration(23_000_000_000), "23s");
        assert_eq!(format_proto_duration(1_500_000_000), "1.500s");
    }
}
