//! Clusters (CDS) and load assignments (EDS): outbound service clusters with DestinationRule policy and
//! subsets, inbound clusters, and the special Passthrough/BlackHole clusters.

use super::util::{ads, istio_dur, secs, socket, transport_socket, u32v};
use crate::istio::networking::{self as istio, TrafficPolicy};
use crate::xds::model::selector_matches;
use crate::xds::model::{Protocol, PushContext, Resolution, Service};
use crate::xds::proxy::Proxy;
use envoy_types::pb::envoy::config::cluster::v3::{
    circuit_breakers::Thresholds, cluster, CircuitBreakers, Cluster, OutlierDetection,
};
use envoy_types::pb::envoy::config::core::v3::{data_source, socket_address, DataSource};
use envoy_types::pb::envoy::config::core::v3::{
    BindConfig, Http2ProtocolOptions, HttpProtocolOptions as CoreHttpOptions, RoutingPriority,
    SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher,
    TlsCertificate, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    http_protocol_options, HttpProtocolOptions,
};
use envoy_types::pb::envoy::r#type::v3::Percent as EnvoyPercent;
use envoy_types::util::pack_any;

pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";
const DEFAULT_CONNECT_TIMEOUT: i64 = 10;

/// A positive proto int as u32 (`0`/negative = unset).
fn pos(v: i32) -> Option<u32> {
    u32::try_from(v).ok().filter(|v| *v > 0)
}

/// `direction|port|subset|host`.
pub fn cluster_name(direction: &str, port: u32, subset: &str, host: &str) -> String {
    format!("{direction}|{port}|{subset}|{host}")
}

fn eds_type(t: cluster::DiscoveryType) -> Option<cluster::ClusterDiscoveryType> {
    Some(cluster::ClusterDiscoveryType::Type(t as i32))
}

fn max_thresholds() -> CircuitBreakers {
    CircuitBreakers {
        thresholds: vec![Thresholds {
            priority: RoutingPriority::Default as i32,
            max_connections: Some(u32v(u32::MAX)),
            max_pending_requests: Some(u32v(u32::MAX)),
            max_requests: Some(u32v(u32::MAX)),
            max_retries: Some(u32v(u32::MAX)),
            track_remaining: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The special clusters every proxy gets.
pub fn special_clusters() -> Vec<Cluster> {
    vec![
        Cluster {
            name: BLACKHOLE_CLUSTER.into(),
            cluster_discovery_type: eds_type(cluster::DiscoveryType::Static),
            connect_timeout: Some(secs(DEFAULT_CONNECT_TIMEOUT)),
            lb_policy: cluster::LbPolicy::RoundRobin as i32,
            ..Default::default()
        },
        Cluster {
            name: PASSTHROUGH_CLUSTER.into(),
            cluster_discovery_type: eds_type(cluster::DiscoveryType::OriginalDst),
            connect_timeout: Some(secs(DEFAULT_CONNECT_TIMEOUT)),
            lb_policy: cluster::LbPolicy::ClusterProvided as i32,
            circuit_breakers: Some(max_thresholds()),
            ..Default::default()
        },
    ]
}

fn inbound_passthrough() -> Cluster {
    Cluster {
        name: INBOUND_PASSTHROUGH_CLUSTER.into(),
        cluster_discovery_type: eds_type(cluster::DiscoveryType::OriginalDst),
        connect_timeout: Some(secs(DEFAULT_CONNECT_TIMEOUT)),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        circuit_breakers: Some(max_thresholds()),
        upstream_bind_config: Some(BindConfig {
            source_address: Some(SocketAddress {
                address: "127.0.0.6".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Clusters and EDS for a sidecar: outbound for every service, inbound for the proxy's own services.
pub fn sidecar_clusters(
    ctx: &PushContext,
    proxy: &Proxy,
) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
    let (mut clusters, endpoints) = outbound_clusters(ctx);
    clusters.extend(sidecar_extra_clusters(ctx, proxy));
    (clusters, endpoints)
}

/// A sidecar's clusters beyond the outbound ones: special and inbound clusters.
pub fn sidecar_extra_clusters(ctx: &PushContext, proxy: &Proxy) -> Vec<Cluster> {
    let mut clusters = special_clusters();
    clusters.push(inbound_passthrough());
    let mut seen = std::collections::BTreeSet::new();
    for (_, port) in inbound_ports(ctx, proxy) {
        if !seen.insert(port) {
            continue;
        }
        clusters.push(Cluster {
            name: cluster_name("inbound", port, "", ""),
            cluster_discovery_type: eds_type(cluster::DiscoveryType::OriginalDst),
            connect_timeout: Some(secs(DEFAULT_CONNECT_TIMEOUT)),
            lb_policy: cluster::LbPolicy::ClusterProvided as i32,
            cleanup_interval: Some(secs(60)),
            circuit_breakers: Some(max_thresholds()),
            upstream_bind_config: inbound_passthrough().upstream_bind_config,
            ..Default::default()
        });
    }
    clusters
}

/// Clusters for a gateway: every outbound cluster plus the special ones.
pub fn gateway_clusters(ctx: &PushContext) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
    let (mut clusters, endpoints) = outbound_clusters(ctx);
    clusters.extend(gateway_extra_clusters());
    (clusters, endpoints)
}

/// A gateway's clusters beyond the outbound ones.
pub fn gateway_extra_clusters() -> Vec<Cluster> {
    vec![special_clusters().swap_remove(0)]
}

/// The proxy's own service ports: (service port, target port) of Services selecting its labels.
pub fn inbound_ports(ctx: &PushContext, proxy: &Proxy) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for svc in &ctx.services {
        if svc.from_service_entry || svc.namespace != proxy.namespace || svc.selector.is_empty() {
            continue;
        }
        if !selector_matches(&svc.selector, &proxy.labels) {
            continue;
        }
        for p in &svc.ports {
            out.push((p.port, p.target_port.unwrap_or(p.port)));
        }
    }
    out
}

/// Outbound clusters (with DestinationRule subsets) and their load assignments.
pub fn outbound_clusters(ctx: &PushContext) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
    let mut clusters = Vec::new();
    let mut cla = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for svc in &ctx.services {
        let dr = ctx.destination_rule(svc);
        for port in &svc.ports {
            let base_name = cluster_name("outbound", port.port, "", &svc.hostname);
            if !seen.insert(base_name.clone()) {
                continue;
            }
            let top = dr.and_then(|d| d.spec.traffic_policy.as_ref());
            let eps = svc
                .endpoints
                .get(&port.port)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let (c, l) = build_cluster(svc, port.port, port.protocol, &base_name, top, None, eps);
            clusters.push(with_dr_metadata(c, dr));
            cla.extend(l);
            for subset in dr.map(|d| d.spec.subsets.as_slice()).unwrap_or(&[]) {
                let name = cluster_name("outbound", port.port, &subset.name, &svc.hostname);
                if !seen.insert(name.clone()) {
                    continue;
                }
                let sub_eps: Vec<_> = eps
                    .iter()
                    .filter(|e| selector_matches(&subset.labels, &e.labels))
                    .cloned()
                    .collect();
                let (c, l) = build_cluster(
                    svc,
                    port.port,
                    port.protocol,
                    &name,
                    top,
                    subset.traffic_policy.as_ref(),
                    &sub_eps,
                );
                clusters.push(with_dr_metadata(c, dr));
                cla.extend(l);
            }
        }
    }
    (clusters, cla)
}

fn with_dr_metadata(
    mut c: Cluster,
    dr: Option<&crate::store::Object<istio::DestinationRule>>,
) -> Cluster {
    if let Some(dr) = dr {
        c.metadata = Some(super::util::istio_config_metadata(
            "destination-rule",
            &dr.meta.namespace,
            &dr.meta.name,
        ));
    }
    c
}

/// The effective policy for a port: top-level, overridden by port-level, overridden by subset.
#[derive(Default)]
struct Effective<'a> {
    lb: Option<&'a istio::LoadBalancerSettings>,
    pool: Option<&'a istio::ConnectionPoolSettings>,
    outlier: Option<&'a istio::OutlierDetection>,
    tls: Option<&'a istio::ClientTlsSettings>,
}

fn effective<'a>(policies: &[Option<&'a TrafficPolicy>], port: u32) -> Effective<'a> {
    let mut e = Effective::default();
    for p in policies.iter().flatten() {
        e.lb = p.load_balancer.as_ref().or(e.lb);
        e.pool = p.connection_pool.as_ref().or(e.pool);
        e.outlier = p.outlier_detection.as_ref().or(e.outlier);
        e.tls = p.tls.as_ref().or(e.tls);
        if let Some(pl) = p
            .port_level_settings
            .iter()
            .find(|pl| pl.port.as_ref().map(|x| x.number) == Some(port))
        {
            e.lb = pl.load_balancer.as_ref().or(e.lb);
            e.pool = pl.connection_pool.as_ref().or(e.pool);
            e.outlier = pl.outlier_detection.as_ref().or(e.outlier);
            e.tls = pl.tls.as_ref().or(e.tls);
        }
    }
    e
}

/// Does this cluster use consistent hashing (so routes need a hash policy)?
pub fn consistent_hash<'a>(
    ctx: &'a PushContext,
    svc: &Service,
    port: u32,
    subset: &str,
) -> Option<&'a istio::ConsistentHashLb> {
    let dr = ctx.destination_rule(svc)?;
    let sub = dr
        .spec
        .subsets
        .iter()
        .find(|s| s.name == subset)
        .and_then(|s| s.traffic_policy.as_ref());
    effective(&[dr.spec.traffic_policy.as_ref(), sub], port)
        .lb
        .and_then(|l| l.consistent_hash.as_ref())
}

fn lb_endpoints(eps: &[crate::xds::model::Endpoint]) -> Vec<LocalityLbEndpoints> {
    vec![LocalityLbEndpoints {
        lb_endpoints: eps
            .iter()
            .map(|e| LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket(&e.address, e.port)),
                    ..Default::default()
                })),
                load_balancing_weight: Some(u32v(e.weight.max(1))),
                ..Default::default()
            })
            .collect(),
        load_balancing_weight: Some(u32v(1)),
        ..Default::default()
    }]
}

fn build_cluster(
    svc: &Service,
    port: u32,
    protocol: Protocol,
    name: &str,
    top: Option<&TrafficPolicy>,
    subset: Option<&TrafficPolicy>,
    eps: &[crate::xds::model::Endpoint],
) -> (Cluster, Option<ClusterLoadAssignment>) {
    let pol = effective(&[top, subset], port);
    let mut c = Cluster {
        name: name.to_string(),
        alt_stat_name: name.to_string(),
        connect_timeout: Some(secs(DEFAULT_CONNECT_TIMEOUT)),
        lb_policy: cluster::LbPolicy::LeastRequest as i32,
        circuit_breakers: Some(max_thresholds()),
        ..Default::default()
    };
    let mut assignment = None;
    match svc.resolution {
        Resolution::Eds => {
            c.cluster_discovery_type = eds_type(cluster::DiscoveryType::Eds);
            c.eds_cluster_config = Some(cluster::EdsClusterConfig {
                eds_config: Some(ads()),
                service_name: name.to_string(),
            });
            assignment = Some(ClusterLoadAssignment {
                cluster_name: name.to_string(),
                endpoints: lb_endpoints(eps),
                ..Default::default()
            });
        }
        Resolution::Dns => {
            c.cluster_discovery_type = eds_type(cluster::DiscoveryType::StrictDns);
            c.dns_lookup_family = cluster::DnsLookupFamily::V4Only as i32;
            c.load_assignment = Some(ClusterLoadAssignment {
                cluster_name: name.to_string(),
                endpoints: lb_endpoints(eps),
                ..Default::default()
            });
        }
        Resolution::Passthrough => {
            c.cluster_discovery_type = eds_type(cluster::DiscoveryType::OriginalDst);
            c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
        }
    }
    let mut http = HttpProtocolOptions::default();
    let mut http_set = false;
    if matches!(protocol, Protocol::Http2 | Protocol::Grpc) {
        http.upstream_protocol_options = Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                        Http2ProtocolOptions::default(),
                    ),
                ),
            },
        ));
        http_set = true;
    }
    if svc.resolution != Resolution::Passthrough {
        if let Some(lb) = pol.lb {
            if let Some(ch) = &lb.consistent_hash {
                c.lb_policy = if ch.maglev.is_some() {
                    cluster::LbPolicy::Maglev as i32
                } else {
                    cluster::LbPolicy::RingHash as i32
                };
                if let Some(min) = ch.minimum_ring_size {
                    c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(
                        cluster::RingHashLbConfig {
                            minimum_ring_size: Some(
                                envoy_types::pb::google::protobuf::UInt64Value { value: min },
                            ),
                            ..Default::default()
                        },
                    ));
                }
            } else {
                match lb.simple {
                    Some(istio::SimpleLb::RoundRobin) => {
                        c.lb_policy = cluster::LbPolicy::RoundRobin as i32
                    }
                    Some(istio::SimpleLb::Random) => c.lb_policy = cluster::LbPolicy::Random as i32,
                    Some(istio::SimpleLb::Passthrough) => {
                        c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
                        c.cluster_discovery_type = eds_type(cluster::DiscoveryType::OriginalDst);
                        c.eds_cluster_config = None;
                        c.load_assignment = None;
                        assignment = None;
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(pool) = pol.pool {
        let t = &mut c
            .circuit_breakers
            .get_or_insert_with(max_thresholds)
            .thresholds[0];
        if let Some(tcp) = &pool.tcp {
            if let Some(m) = pos(tcp.max_connections) {
                t.max_connections = Some(u32v(m));
            }
            if let Some(d) = istio_dur(&tcp.connect_timeout) {
                c.connect_timeout = Some(d);
            }
            if let Some(d) = istio_dur(&tcp.max_connection_duration) {
                http.common_http_protocol_options
                    .get_or_insert_with(Default::default)
                    .max_connection_duration = Some(d);
                http_set = true;
            }
        }
        if let Some(h) = &pool.http {
            if let Some(v) = pos(h.http1_max_pending_requests) {
                t.max_pending_requests = Some(u32v(v));
            }
            if let Some(v) = pos(h.http2_max_requests) {
                t.max_requests = Some(u32v(v));
            }
            if let Some(v) = pos(h.max_retries) {
                t.max_retries = Some(u32v(v));
            }
            let common = http
                .common_http_protocol_options
                .get_or_insert_with(CoreHttpOptions::default);
            if let Some(d) = istio_dur(&h.idle_timeout) {
                common.idle_timeout = Some(d);
                http_set = true;
            }
            if let Some(v) = pos(h.max_requests_per_connection) {
                common.max_requests_per_connection = Some(u32v(v));
                http_set = true;
            }
            if http.common_http_protocol_options == Some(CoreHttpOptions::default()) {
                http.common_http_protocol_options = None;
            }
        }
    }
    if http_set {
        if http.upstream_protocol_options.is_none() {
            http.upstream_protocol_options = Some(
                http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(
                    Default::default(),
                ),
            );
            if !protocol.is_http() {
                http.upstream_protocol_options = Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                    http_protocol_options::ExplicitHttpConfig {
                        protocol_config: Some(
                            http_protocol_options::explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                                Default::default(),
                            ),
                        ),
                    },
                ));
            }
        }
        c.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
            pack_any(http),
        );
    }
    if let Some(od) = pol.outlier {
        let mut o = OutlierDetection {
            enforcing_success_rate: Some(u32v(0)),
            ..Default::default()
        };
        let legacy = pos(od.consecutive_errors);
        if let Some(n) = od.consecutive_5xx_errors.or(legacy) {
            o.consecutive_5xx = Some(u32v(n));
            o.enforcing_consecutive_5xx = Some(u32v(if n > 0 { 100 } else { 0 }));
        } else {
            o.enforcing_consecutive_5xx = Some(u32v(0));
        }
        if let Some(n) = od.consecutive_gateway_errors {
            o.consecutive_gateway_failure = Some(u32v(n));
            o.enforcing_consecutive_gateway_failure = Some(u32v(if n > 0 { 100 } else { 0 }));
        }
        o.interval = istio_dur(&od.interval);
        o.base_ejection_time = istio_dur(&od.base_ejection_time);
        o.max_ejection_percent = pos(od.max_ejection_percent).map(u32v);
        c.outlier_detection = Some(o);
        c.common_lb_config = Some(cluster::CommonLbConfig {
            healthy_panic_threshold: Some(EnvoyPercent {
                value: f64::from(od.min_health_percent.max(0)),
            }),
            ..Default::default()
        });
    }
    if let Some(tls) = pol.tls {
        if let Some(ts) = upstream_tls(tls, &svc.hostname) {
            c.transport_socket = Some(transport_socket("envoy.transport_sockets.tls", ts));
        }
    }
    (c, assignment)
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

/// DestinationRule `tls` SIMPLE / MUTUAL (file based) as an UpstreamTlsContext.
fn upstream_tls(tls: &istio::ClientTlsSettings, host: &str) -> Option<UpstreamTlsContext> {
    let mode = tls.mode;
    if !matches!(
        mode,
        istio::ClientTlsMode::Simple | istio::ClientTlsMode::Mutual
    ) {
        return None;
    }
    let mut common = CommonTlsContext::default();
    if mode == istio::ClientTlsMode::Mutual
        && !tls.client_certificate.is_empty()
        && !tls.private_key.is_empty()
    {
        common.tls_certificates.push(TlsCertificate {
            certificate_chain: Some(file(&tls.client_certificate)),
            private_key: Some(file(&tls.private_key)),
            ..Default::default()
        });
    }
    if tls.insecure_skip_verify != Some(true) && !tls.ca_certificates.is_empty() {
        let sans = tls
            .subject_alt_names
            .iter()
            .map(|s| SubjectAltNameMatcher {
                san_type: envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType::Dns as i32,
                matcher: super::util::string_match(&istio::StringMatch::Exact(s.clone()), false),
                ..Default::default()
            })
            .collect();
        common.validation_context_type = Some(
            common_tls_context::ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(file(&tls.ca_certificates)),
                    match_typed_subject_alt_names: sans,
                    ..Default::default()
                },
            ),
        );
    }
    let sni = if !tls.sni.is_empty() {
        tls.sni.clone()
    } else if mode == istio::ClientTlsMode::Simple {
        host.to_string()
    } else {
        String::new()
    };
    Some(UpstreamTlsContext {
        common_tls_context: Some(common),
        sni,
        ..Default::default()
    })
}
