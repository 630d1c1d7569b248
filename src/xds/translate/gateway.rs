//! Gateway (`router~` node) listeners and route configs: one listener per bound server port, route configs
//! `http.<port>` (plain HTTP) and `https.<port>.<portName>.<gateway>.<ns>` (TLS termination from files),
//! virtual hosts from server hosts × bound VirtualServices, `httpsRedirect` as `require_tls: ALL`.

use super::listener::{hcm, rds, status_route};
use super::route::{
    l4_match_applies, qualify_gateway, tcp_cluster_specifier, virtual_service_routes, Scope,
};
use super::util::{boolv, network_filter, set, socket, transport_socket, u32v};
use crate::istio::networking as istio;
use crate::store::Object;
use crate::xds::model::selector_matches;
use crate::xds::model::{hosts_intersect, PushContext};
use crate::xds::proxy::Proxy;
use envoy_types::pb::envoy::config::core::v3::{data_source, DataSource, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{
    listener_filter, FilterChain, FilterChainMatch, Listener, ListenerFilter,
};
use envoy_types::pb::envoy::config::route::v3::{
    virtual_host::TlsRequirementType, RouteConfiguration, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    common_tls_context, CertificateValidationContext, CommonTlsContext, DownstreamTlsContext,
    TlsCertificate,
};
use envoy_types::util::pack_any;
use std::collections::{BTreeMap, BTreeSet};

type Bound<'a> = (&'a Object<istio::Gateway>, &'a istio::Server);

fn server_port(s: &istio::Server) -> istio::Port {
    s.port.clone().unwrap_or_default()
}

fn is_http(s: &istio::Server) -> bool {
    matches!(
        server_port(s).protocol.to_ascii_uppercase().as_str(),
        "HTTP" | "HTTP2" | "GRPC"
    )
}

fn is_tcp(s: &istio::Server) -> bool {
    matches!(
        server_port(s).protocol.to_ascii_uppercase().as_str(),
        "TCP" | "MONGO" | "REDIS" | "MYSQL"
    )
}

fn is_passthrough(s: &istio::Server) -> bool {
    let proto = server_port(s).protocol.to_ascii_uppercase();
    let mode = s
        .tls
        .as_ref()
        .map(|t| t.mode)
        .unwrap_or(istio::ServerTlsMode::Passthrough);
    matches!(proto.as_str(), "TLS" | "HTTPS") && mode == istio::ServerTlsMode::Passthrough
}

/// Filter chains for TCP servers and TLS PASSTHROUGH servers: VirtualService `tcp` / `tls` routes.
fn l4_chains(ctx: &PushContext, port: u32, tcp: &[Bound], tls: &[Bound]) -> Vec<FilterChain> {
    let mut chains = Vec::new();
    for (gw, server) in tcp.iter().chain(tls.iter()) {
        let key = gw_key(gw);
        let gateways = [key.clone()];
        let scope = Scope {
            ctx,
            port,
            gateways: &gateways,
        };
        let passthrough = is_passthrough(server);
        let hosts: Vec<&str> = server.hosts.iter().map(|h| server_host(h)).collect();
        for vs in &ctx.snapshot.virtual_services {
            if !vs
                .spec
                .gateways
                .iter()
                .any(|g| qualify_gateway(g, &vs.meta.namespace) == key)
            {
                continue;
            }
            if !vs
                .spec
                .hosts
                .iter()
                .any(|vh| hosts.iter().any(|h| hosts_intersect(h, vh)))
            {
                continue;
            }
            let ns = &vs.meta.namespace;
            if passthrough {
                for r in &vs.spec.tls {
                    for m in &r.r#match {
                        if !l4_match_applies(m.port, &m.gateways, &scope, ns) {
                            continue;
                        }
                        let Some(spec) = tcp_cluster_specifier(&r.route, ns, &scope) else {
                            continue;
                        };
                        chains.push(FilterChain {
                            filter_chain_match: Some(FilterChainMatch {
                                server_names: m.sni_hosts.clone(),
                                ..Default::default()
                            }),
                            filters: vec![tcp_filter(&format!("tls.{port}"), spec)],
                            ..Default::default()
                        });
                    }
                }
            } else if let Some(r) = vs.spec.tcp.iter().find(|r| {
                r.r#match.is_empty()
                    || r.r#match
                        .iter()
                        .any(|m| l4_match_applies(m.port, &m.gateways, &scope, ns))
            }) {
                if let Some(spec) = tcp_cluster_specifier(&r.route, ns, &scope) {
                    chains.push(FilterChain {
                        filters: vec![tcp_filter(&format!("tcp.{port}"), spec)],
                        ..Default::default()
                    });
                }
            }
        }
    }
    // Envoy rejects chains with identical matches; keep the first of each.
    let mut seen = BTreeSet::new();
    chains.retain(|c| {
        let key = c
            .filter_chain_match
            .as_ref()
            .map(|m| m.server_names.clone())
            .unwrap_or_default();
        seen.insert(key)
    });
    chains
}

fn tcp_filter(
    stat_prefix: &str,
    spec: envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier,
) -> envoy_types::pb::envoy::config::listener::v3::Filter {
    network_filter(
        "envoy.filters.network.tcp_proxy",
        envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy {
            stat_prefix: stat_prefix.to_string(),
            cluster_specifier: Some(spec),
            ..Default::default()
        },
    )
}

fn terminates_tls(s: &istio::Server) -> bool {
    let proto = server_port(s).protocol.to_ascii_uppercase();
    let mode = s.tls.as_ref().map(|t| t.mode);
    proto == "HTTPS"
        && matches!(
            mode,
            Some(istio::ServerTlsMode::Simple | istio::ServerTlsMode::Mutual)
        )
}

/// The host part of a server host (`ns/host`, `./host`, `*/host` → `host`).
fn server_host(h: &str) -> &str {
    h.split_once('/').map(|(_, host)| host).unwrap_or(h)
}

fn gw_key(gw: &Object<istio::Gateway>) -> String {
    format!("{}/{}", gw.meta.namespace, gw.meta.name)
}

/// Listeners and route configs for a gateway proxy.
pub fn gateway_config(
    ctx: &PushContext,
    proxy: &Proxy,
) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    let mut by_port: BTreeMap<u32, Vec<Bound>> = BTreeMap::new();
    for gw in &ctx.snapshot.gateways {
        if !selector_matches(&gw.spec.selector, &proxy.labels) {
            continue;
        }
        for s in &gw.spec.servers {
            by_port
                .entry(server_port(s).number)
                .or_default()
                .push((gw, s));
        }
    }
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for (port, servers) in by_port {
        let http: Vec<Bound> = servers
            .iter()
            .copied()
            .filter(|(_, s)| is_http(s))
            .collect();
        let https: Vec<Bound> = servers
            .iter()
            .copied()
            .filter(|(_, s)| terminates_tls(s))
            .collect();
        let mut chains = Vec::new();
        if !http.is_empty() {
            let name = format!("http.{port}");
            chains.push(FilterChain {
                filters: vec![network_filter(
                    "envoy.filters.network.http_connection_manager",
                    hcm(&format!("outbound_0.0.0.0_{port}"), rds(&name)),
                )],
                ..Default::default()
            });
            routes.push(route_config(ctx, &name, port, &http));
        }
        let mut used_sni = BTreeSet::new();
        for (gw, s) in &https {
            let name = format!(
                "https.{port}.{}.{}.{}",
                server_port(s).name,
                gw.meta.name,
                gw.meta.namespace
            );
            let mut sni: Vec<String> = s
                .hosts
                .iter()
                .map(|h| server_host(h).to_string())
                .filter(|h| h != "*")
                .collect();
            sni.sort();
            sni.dedup();
            if !used_sni.insert(sni.clone()) {
                // Envoy rejects two chains with the same match; Istio merges them. Skip the duplicate.
                continue;
            }
            let Some(tls) = downstream_tls(s.tls.as_ref()) else {
                continue;
            };
            chains.push(FilterChain {
                filter_chain_match: Some(FilterChainMatch {
                    server_names: sni,
                    ..Default::default()
                }),
                transport_socket: Some(transport_socket("envoy.transport_sockets.tls", tls)),
                filters: vec![network_filter(
                    "envoy.filters.network.http_connection_manager",
                    hcm(&format!("outbound_0.0.0.0_{port}"), rds(&name)),
                )],
                ..Default::default()
            });
            routes.push(route_config(ctx, &name, port, &[(*gw, *s)]));
        }
        let tcp: Vec<Bound> = servers.iter().copied().filter(|(_, s)| is_tcp(s)).collect();
        let passthrough: Vec<Bound> = servers
            .iter()
            .copied()
            .filter(|(_, s)| is_passthrough(s))
            .collect();
        let l4 = if http.is_empty() {
            l4_chains(ctx, port, &tcp, &passthrough)
        } else {
            Vec::new()
        };
        let needs_inspector = !https.is_empty() || !passthrough.is_empty();
        chains.extend(l4);
        if chains.is_empty() {
            continue;
        }
        let mut listener = Listener {
            name: format!("0.0.0.0_{port}"),
            address: Some(socket("0.0.0.0", port)),
            traffic_direction: TrafficDirection::Outbound as i32,
            filter_chains: chains,
            ..Default::default()
        };
        if needs_inspector {
            listener.listener_filters.push(ListenerFilter {
                name: "envoy.filters.listener.tls_inspector".into(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(
                    TlsInspector::default(),
                ))),
                ..Default::default()
            });
        }
        listeners.push(listener);
    }
    (listeners, routes)
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

fn downstream_tls(tls: Option<&istio::ServerTlsSettings>) -> Option<DownstreamTlsContext> {
    let tls = tls?;
    let (cert, key) = (set(&tls.server_certificate)?, set(&tls.private_key)?);
    let mut common = CommonTlsContext {
        tls_certificates: vec![TlsCertificate {
            certificate_chain: Some(file(cert)),
            private_key: Some(file(key)),
            ..Default::default()
        }],
        alpn_protocols: vec!["h2".into(), "http/1.1".into()],
        ..Default::default()
    };
    let mutual = tls.mode == istio::ServerTlsMode::Mutual;
    if let Some(ca) = set(&tls.ca_certificates) {
        common.validation_context_type = Some(
            common_tls_context::ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(file(ca)),
                    ..Default::default()
                },
            ),
        );
    }
    Some(DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(boolv(mutual)),
        ..Default::default()
    })
}

fn route_config(ctx: &PushContext, name: &str, port: u32, servers: &[Bound]) -> RouteConfiguration {
    // vhost host → (routes, require_tls)
    let mut vhosts: BTreeMap<String, (Vec<_>, bool)> = BTreeMap::new();
    for (gw, server) in servers {
        let key = gw_key(gw);
        let gateways = [key.clone()];
        let scope = Scope {
            ctx,
            port,
            gateways: &gateways,
        };
        let redirect = server.tls.as_ref().is_some_and(|t| t.https_redirect);
        let hosts: Vec<&str> = server.hosts.iter().map(|h| server_host(h)).collect();
        let mut matched_any = false;
        for vs in &ctx.snapshot.virtual_services {
            if !vs
                .spec
                .gateways
                .iter()
                .any(|g| qualify_gateway(g, &vs.meta.namespace) == key)
            {
                continue;
            }
            for vh in &vs.spec.hosts {
                if !hosts.iter().any(|h| hosts_intersect(h, vh)) {
                    continue;
                }
                matched_any = true;
                let entry = vhosts
                    .entry(vh.clone())
                    .or_insert_with(|| (Vec::new(), false));
                entry.0.extend(virtual_service_routes(vs, &scope));
                entry.1 |= redirect;
            }
        }
        if !matched_any && redirect {
            for h in hosts {
                let entry = vhosts
                    .entry(h.to_string())
                    .or_insert_with(|| (Vec::new(), false));
                entry.1 = true;
            }
        }
    }
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for (host, (mut routes, require_tls)) in vhosts {
        let candidates = if host == "*" {
            vec![host.clone()]
        } else {
            vec![host.clone(), format!("{host}:{port}")]
        };
        let domains: Vec<String> = candidates
            .into_iter()
            .filter(|d| used.insert(d.clone()))
            .collect();
        if domains.is_empty() {
            continue;
        }
        if routes.is_empty() {
            routes.push(status_route("blackhole", 404));
        }
        out.push(VirtualHost {
            name: format!("{host}:{port}"),
            domains,
            routes,
            require_tls: if require_tls {
                TlsRequirementType::All as i32
            } else {
                TlsRequirementType::None as i32
            },
            ..Default::default()
        });
    }
    if out.is_empty() {
        out.push(VirtualHost {
            name: format!("blackhole:{port}"),
            domains: vec!["*".into()],
            routes: vec![status_route("blackhole", 404)],
            ..Default::default()
        });
    }
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: out,
        validate_clusters: Some(boolv(false)),
        ignore_port_in_host_matching: true,
        max_direct_response_body_size_bytes: Some(u32v(1_048_576)),
        ..Default::default()
    }
}
