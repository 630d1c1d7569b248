//! Sidecar listeners (LDS) and outbound route configurations (RDS): `virtualOutbound` (15001),
//! `virtualInbound` (15006), `0.0.0.0_<port>` HTTP listeners with RDS `"<port>"`, `<VIP>_<port>` TCP.

use super::cluster::{
    cluster_name, inbound_ports, BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER,
    PASSTHROUGH_CLUSTER,
};
use super::route::{
    default_route, l4_match_applies, tcp_cluster_specifier, virtual_service_routes, Scope,
};
use super::util::{ads, boolv, network_filter, socket, u32v};
use crate::xds::model::{PushContext, Service};
use crate::xds::proxy::Proxy;
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    filter_chain_match, listener_filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::config::route::v3::{
    route, route_match, DirectResponseAction, Route, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{tcp_proxy, TcpProxy};
use envoy_types::util::pack_any;
use std::collections::{BTreeMap, BTreeSet, HashSet};

pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
pub const VIRTUAL_INBOUND: &str = "virtualInbound";
pub const OUTBOUND_PORT: u32 = 15001;
pub const INBOUND_PORT: u32 = 15006;

fn http_filter<T: prost::Message + prost::Name>(name: &str, cfg: T) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(cfg))),
        ..Default::default()
    }
}

/// An HTTP connection manager with Istio's filter order (fault, cors, router).
pub fn hcm(stat_prefix: &str, routes: RouteSpecifier) -> HttpConnectionManager {
    HttpConnectionManager {
        codec_type: CodecType::Auto as i32,
        stat_prefix: stat_prefix.to_string(),
        http_filters: vec![
            http_filter("envoy.filters.http.fault", HttpFault::default()),
            http_filter("envoy.filters.http.cors", Cors::default()),
            http_filter("envoy.filters.http.router", Router::default()),
        ],
        use_remote_address: Some(boolv(false)),
        normalize_path: Some(boolv(true)),
        route_specifier: Some(routes),
        ..Default::default()
    }
}

pub fn rds(name: &str) -> RouteSpecifier {
    RouteSpecifier::Rds(Rds {
        config_source: Some(ads()),
        route_config_name: name.to_string(),
    })
}

pub fn tcp_proxy_filter(
    stat_prefix: &str,
    cluster: &str,
) -> envoy_types::pb::envoy::config::listener::v3::Filter {
    network_filter(
        "envoy.filters.network.tcp_proxy",
        TcpProxy {
            stat_prefix: stat_prefix.to_string(),
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.to_string())),
            ..Default::default()
        },
    )
}

fn original_dst_filter() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.original_dst".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
            OriginalDst::default(),
        ))),
        ..Default::default()
    }
}

/// Domains of a service's virtual host as seen from a proxy in `proxy_ns`.
fn service_domains(svc: &Service, port: u32, proxy_ns: &str) -> Vec<String> {
    let mut names = vec![svc.hostname.clone()];
    if !svc.from_service_entry {
        names.push(format!("{}.{}.svc", svc.name, svc.namespace));
        names.push(format!("{}.{}", svc.name, svc.namespace));
        if svc.namespace == proxy_ns {
            names.push(svc.name.clone());
        }
    }
    if let Some(vip) = &svc.vip {
        names.push(vip.clone());
    }
    let mut out = Vec::new();
    for n in names {
        out.push(format!("{n}:{port}"));
        out.push(n);
    }
    out
}

/// The `tcp` route of a mesh-bound VirtualService for `svc` on `port`, if any.
fn mesh_tcp_route(
    ctx: &PushContext,
    svc: &Service,
    port: u32,
) -> Option<tcp_proxy::ClusterSpecifier> {
    let scope = Scope {
        ctx,
        port,
        gateways: &[],
    };
    let vs = ctx.mesh_virtual_service(svc)?;
    let ns = &vs.meta.namespace;
    let r = vs.spec.tcp.iter().find(|r| {
        r.r#match.is_empty()
            || r.r#match
                .iter()
                .any(|m| l4_match_applies(m.port, &m.gateways, &scope, ns))
    })?;
    tcp_cluster_specifier(&r.route, ns, &scope)
}

/// Listeners and RDS route configs for a sidecar.
pub fn sidecar_listeners(
    ctx: &PushContext,
    proxy: &Proxy,
) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    let egress = ctx.sidecar_scope(&proxy.namespace, &proxy.labels);
    let mut listeners = Vec::new();
    let mut http_ports: BTreeMap<u32, Vec<&Service>> = BTreeMap::new();
    let mut tcp_names = HashSet::new();
    for svc in ctx
        .services
        .iter()
        .filter(|s| egress.visible(s, &proxy.namespace))
    {
        for p in &svc.ports {
            if p.protocol.is_http() {
                http_ports.entry(p.port).or_default().push(svc);
            } else if let Some(vip) = &svc.vip {
                let name = format!("{vip}_{}", p.port);
                if !tcp_names.insert(name.clone()) {
                    continue;
                }
                let cluster = cluster_name("outbound", p.port, "", &svc.hostname);
                let filter = match mesh_tcp_route(ctx, svc, p.port) {
                    Some(spec) => network_filter(
                        "envoy.filters.network.tcp_proxy",
                        TcpProxy {
                            stat_prefix: cluster.clone(),
                            cluster_specifier: Some(spec),
                            ..Default::default()
                        },
                    ),
                    None => tcp_proxy_filter(&cluster, &cluster),
                };
                listeners.push(Listener {
                    name: name.clone(),
                    address: Some(socket(vip, p.port)),
                    bind_to_port: Some(boolv(false)),
                    traffic_direction: TrafficDirection::Outbound as i32,
                    filter_chains: vec![FilterChain {
                        filters: vec![filter],
                        ..Default::default()
                    }],
                    ..Default::default()
                });
            }
        }
    }
    let mut routes = Vec::new();
    for (port, svcs) in &http_ports {
        let name = format!("0.0.0.0_{port}");
        listeners.push(Listener {
            name: name.clone(),
            address: Some(socket("0.0.0.0", *port)),
            bind_to_port: Some(boolv(false)),
            traffic_direction: TrafficDirection::Outbound as i32,
            filter_chains: vec![FilterChain {
                filters: vec![network_filter(
                    "envoy.filters.network.http_connection_manager",
                    hcm(&format!("outbound_0.0.0.0_{port}"), rds(&port.to_string())),
                )],
                ..Default::default()
            }],
            ..Default::default()
        });
        routes.push(outbound_route_config(
            ctx,
            proxy,
            *port,
            svcs,
            egress.registry_only,
        ));
    }
    listeners.push(virtual_outbound(egress.registry_only));
    listeners.push(virtual_inbound(ctx, proxy));
    (listeners, routes)
}

fn outbound_route_config(
    ctx: &PushContext,
    proxy: &Proxy,
    port: u32,
    svcs: &[&Service],
    registry_only: bool,
) -> RouteConfiguration {
    let scope = Scope {
        ctx,
        port,
        gateways: &[],
    };
    let mut used = BTreeSet::new();
    let mut vhosts = Vec::new();
    for svc in svcs {
        let domains: Vec<String> = service_domains(svc, port, &proxy.namespace)
            .into_iter()
            .filter(|d| used.insert(d.clone()))
            .collect();
        if domains.is_empty() {
            continue;
        }
        let mut rs: Vec<Route> = Vec::new();
        if let Some(vs) = ctx.mesh_virtual_service(svc) {
            rs.extend(virtual_service_routes(vs, &scope));
        }
        if rs.is_empty() {
            rs.push(default_route(&cluster_name(
                "outbound",
                port,
                "",
                &svc.hostname,
            )));
        }
        vhosts.push(VirtualHost {
            name: format!("{}:{port}", svc.hostname),
            domains,
            routes: rs,
            ..Default::default()
        });
    }
    if registry_only {
        vhosts.push(VirtualHost {
            name: "block_all".into(),
            domains: vec!["*".into()],
            routes: vec![status_route("block_all", 502)],
            ..Default::default()
        });
    } else {
        vhosts.push(VirtualHost {
            name: "allow_any".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                name: "allow_any".into(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: default_route(PASSTHROUGH_CLUSTER).action,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    RouteConfiguration {
        name: port.to_string(),
        virtual_hosts: vhosts,
        validate_clusters: Some(boolv(false)),
        ignore_port_in_host_matching: true,
        max_direct_response_body_size_bytes: Some(u32v(1_048_576)),
        ..Default::default()
    }
}

fn virtual_outbound(registry_only: bool) -> Listener {
    let catch_all = if registry_only {
        BLACKHOLE_CLUSTER
    } else {
        PASSTHROUGH_CLUSTER
    };
    Listener {
        name: VIRTUAL_OUTBOUND.into(),
        address: Some(socket("0.0.0.0", OUTBOUND_PORT)),
        use_original_dst: Some(boolv(true)),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![
            FilterChain {
                name: "virtualOutbound-blackhole".into(),
                filter_chain_match: Some(FilterChainMatch {
                    destination_port: Some(u32v(OUTBOUND_PORT)),
                    ..Default::default()
                }),
                filters: vec![tcp_proxy_filter(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)],
                ..Default::default()
            },
            FilterChain {
                name: "virtualOutbound-catchall-tcp".into(),
                filters: vec![tcp_proxy_filter(catch_all, catch_all)],
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

fn virtual_inbound(ctx: &PushContext, proxy: &Proxy) -> Listener {
    let mut chains = vec![FilterChain {
        name: "virtualInbound-blackhole".into(),
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(u32v(INBOUND_PORT)),
            ..Default::default()
        }),
        filters: vec![tcp_proxy_filter(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)],
        ..Default::default()
    }];
    let mut seen = BTreeSet::new();
    let protocols: BTreeMap<u32, bool> = ctx
        .services
        .iter()
        .filter(|s| !s.from_service_entry && s.namespace == proxy.namespace)
        .flat_map(|s| {
            s.ports
                .iter()
                .map(|p| (p.target_port.unwrap_or(p.port), p.protocol.is_http()))
        })
        .collect();
    for (_, target) in inbound_ports(ctx, proxy) {
        if !seen.insert(target) {
            continue;
        }
        let cluster = cluster_name("inbound", target, "", "");
        let is_http = protocols.get(&target).copied().unwrap_or(false);
        let filter = if is_http {
            let rc = RouteConfiguration {
                name: cluster.clone(),
                virtual_hosts: vec![VirtualHost {
                    name: format!("inbound|http|{target}"),
                    domains: vec!["*".into()],
                    routes: vec![{
                        let mut r = default_route(&cluster);
                        if let Some(route::Action::Route(a)) = r.action.as_mut() {
                            a.retry_policy = None;
                        }
                        r
                    }],
                    ..Default::default()
                }],
                validate_clusters: Some(boolv(false)),
                ..Default::default()
            };
            network_filter(
                "envoy.filters.network.http_connection_manager",
                hcm(
                    &format!("inbound_0.0.0.0_{target}"),
                    envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier::RouteConfig(rc),
                ),
            )
        } else {
            tcp_proxy_filter(&cluster, &cluster)
        };
        chains.push(FilterChain {
            name: cluster.clone(),
            filter_chain_match: Some(FilterChainMatch {
                destination_port: Some(u32v(target)),
                ..Default::default()
            }),
            filters: vec![filter],
            ..Default::default()
        });
    }
    chains.push(FilterChain {
        name: VIRTUAL_INBOUND.into(),
        filter_chain_match: Some(FilterChainMatch {
            source_type: filter_chain_match::ConnectionSourceType::Any as i32,
            ..Default::default()
        }),
        filters: vec![tcp_proxy_filter(
            INBOUND_PASSTHROUGH_CLUSTER,
            INBOUND_PASSTHROUGH_CLUSTER,
        )],
        ..Default::default()
    });
    Listener {
        name: VIRTUAL_INBOUND.into(),
        address: Some(socket("0.0.0.0", INBOUND_PORT)),
        traffic_direction: TrafficDirection::Inbound as i32,
        listener_filters: vec![original_dst_filter()],
        filter_chains: chains,
        ..Default::default()
    }
}

/// A route that answers a fixed status (used for blackhole virtual hosts).
pub fn status_route(name: &str, status: u32) -> Route {
    Route {
        name: name.to_string(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::DirectResponse(DirectResponseAction {
            status,
            ..Default::default()
        })),
        ..Default::default()
    }
}
