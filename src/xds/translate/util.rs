//! Small constructors for Envoy protos shared by the translators.

use crate::istio::networking::{self as istio, StringMatch};
use envoy_types::pb::envoy::config::core::v3::transport_socket;
use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, socket_address, Address, AggregatedConfigSource, ApiVersion,
    ConfigSource, SocketAddress, TransportSocket,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, RegexMatcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration, UInt32Value};
use envoy_types::util::pack_any;
use prost::Name;

pub fn dur(d: std::time::Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// An Istio duration as a protobuf duration.
pub fn istio_dur(d: &Option<crate::istio::Duration>) -> Option<PbDuration> {
    d.map(|d| dur(d.to_std()))
}

/// A non-empty string field.
pub fn set(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

pub fn secs(s: i64) -> PbDuration {
    PbDuration {
        seconds: s,
        nanos: 0,
    }
}

pub fn u32v(v: u32) -> UInt32Value {
    UInt32Value { value: v }
}

pub fn boolv(v: bool) -> BoolValue {
    BoolValue { value: v }
}

/// `{ads: {}, initial_fetch_timeout: 0s, resource_api_version: V3}`.
pub fn ads() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        initial_fetch_timeout: Some(secs(0)),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

pub fn socket(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// A network filter with a typed config.
pub fn network_filter<T: prost::Message + Name>(name: &str, cfg: T) -> Filter {
    Filter {
        name: name.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(cfg))),
    }
}

pub fn transport_socket<T: prost::Message + Name>(name: &str, cfg: T) -> TransportSocket {
    TransportSocket {
        name: name.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(cfg))),
    }
}

pub fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_string(),
        ..Default::default()
    }
}

/// A StringMatch as an Envoy StringMatcher (`None` when no match type is set).
pub fn string_match(m: &StringMatch, ignore_case: bool) -> Option<StringMatcher> {
    let pattern = match m {
        StringMatch::Exact(s) => string_matcher::MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => string_matcher::MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(s) => string_matcher::MatchPattern::SafeRegex(regex(s)),
        StringMatch::Unset => return None,
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    })
}

/// Istio percentages (0–100, fractional) as a per-million fraction.
pub fn percent(p: Option<&istio::Percent>, legacy: Option<u32>) -> FractionalPercent {
    match (p, legacy) {
        (Some(p), _) => FractionalPercent {
            numerator: (p.value.clamp(0.0, 100.0) * 10_000.0).round() as u32,
            denominator: DenominatorType::Million as i32,
        },
        (None, Some(l)) => FractionalPercent {
            numerator: l.min(100),
            denominator: DenominatorType::Hundred as i32,
        },
        (None, None) => FractionalPercent {
            numerator: 100,
            denominator: DenominatorType::Hundred as i32,
        },
    }
}

/// Istio's config back-reference: `filter_metadata.istio.config =
/// /apis/networking.istio.io/v1/namespaces/<ns>/<kind>/<name>` (shown by `proxy-config`).
pub fn istio_config_metadata(
    kind: &str,
    namespace: &str,
    name: &str,
) -> envoy_types::pb::envoy::config::core::v3::Metadata {
    use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
    let mut fields = std::collections::HashMap::new();
    fields.insert(
        "config".to_string(),
        Value {
            kind: Some(Kind::StringValue(format!(
                "/apis/networking.istio.io/v1/namespaces/{namespace}/{kind}/{name}"
            ))),
        },
    );
    let mut md = envoy_types::pb::envoy::config::core::v3::Metadata::default();
    md.filter_metadata
        .insert("istio".to_string(), Struct { fields });
    md
}
