//! VirtualService HTTP rules → Envoy routes (Istio's `TranslateRoute`), plus the default route and retry
//! policy.

use super::cluster::{cluster_name, consistent_hash};
use super::util::{istio_dur, percent, regex, secs, set, string_match, u32v};
use crate::istio::networking::{self as istio, HttpRoute, StringMatch, VirtualService};
use crate::store::Object;
use crate::xds::model::{resolve_host, PushContext};
use envoy_types::pb::envoy::config::core::v3::{
    data_source, header_value_option::HeaderAppendAction, DataSource, HeaderValue,
    HeaderValueOption, RuntimeFractionalPercent,
};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, query_parameter_matcher, redirect_action, route, route_action, route_match,
    weighted_cluster, DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction,
    RetryPolicy, Route, RouteAction, RouteMatch, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{fault_delay, FaultDelay};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort, FaultAbort, HttpFault,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::util::pack_any;

/// Where the routes are being built.
pub struct Scope<'a> {
    pub ctx: &'a PushContext,
    /// Listener port (matches with `port:` are filtered by it).
    pub port: u32,
    /// Gateways (`ns/name`) being built, or empty for the mesh (sidecars).
    pub gateways: &'a [String],
}

/// Istio's default retry policy (mesh default when a VirtualService sets none).
pub fn default_retry() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes".into(),
        num_retries: Some(u32v(2)),
        host_selection_retry_max_attempts: 5,
        retry_host_predicate: vec![envoy_types::pb::envoy::config::route::v3::retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(
                envoy_types::pb::envoy::config::route::v3::retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                    envoy_types::pb::google::protobuf::Any {
                        type_url: "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate".into(),
                        value: vec![],
                    },
                ),
            ),
        }],
        ..Default::default()
    }
}

/// `prefix: /` → cluster, default retries, `timeout: 0s` (Istio's `BuildDefaultHTTPOutboundRoute`).
pub fn default_route(cluster: &str) -> Route {
    Route {
        name: "default".into(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_string())),
            timeout: Some(secs(0)),
            retry_policy: Some(default_retry()),
            max_stream_duration: Some(route_action::MaxStreamDuration {
                max_stream_duration: Some(secs(0)),
                grpc_timeout_header_max: Some(secs(0)),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Is `rule` (or one of its matches) in scope, and with which matches?
fn scoped_matches<'r>(
    rule: &'r HttpRoute,
    scope: &Scope,
    vs_ns: &str,
) -> Option<Vec<Option<&'r istio::HttpMatchRequest>>> {
    if rule.r#match.is_empty() {
        return Some(vec![None]);
    }
    let v: Vec<_> = rule
        .r#match
        .iter()
        .filter(|m| m.port == 0 || m.port == scope.port)
        .filter(|m| {
            if m.gateways.is_empty() {
                return true;
            }
            if scope.gateways.is_empty() {
                return m.gateways.iter().any(|g| g == "mesh");
            }
            m.gateways
                .iter()
                .any(|g| scope.gateways.contains(&qualify_gateway(g, vs_ns)))
        })
        .map(Some)
        .collect();
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

/// `name` → `ns/name` relative to the referring config's namespace.
pub fn qualify_gateway(g: &str, ns: &str) -> String {
    if g.contains('/') {
        g.to_string()
    } else if let Some((name, gns)) = g.split_once('.') {
        // `name.namespace` (legacy form).
        format!("{gns}/{name}")
    } else {
        format!("{ns}/{g}")
    }
}

/// Translates every HTTP rule of `vs` into routes.
pub fn virtual_service_routes(vs: &Object<VirtualService>, scope: &Scope) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, rule) in vs.spec.http.iter().enumerate() {
        let Some(matches) = scoped_matches(rule, scope, &vs.meta.namespace) else {
            continue;
        };
        for m in matches {
            out.push(translate_rule(vs, rule, m, scope, i));
        }
    }
    out
}

fn header_op(key: &str, value: &str, overwrite: bool) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value: value.to_string(),
            ..Default::default()
        }),
        append_action: if overwrite {
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32
        } else {
            HeaderAppendAction::AppendIfExistsOrAdd as i32
        },
        ..Default::default()
    }
}

fn header_ops(ops: Option<&istio::HeaderOperations>) -> (Vec<HeaderValueOption>, Vec<String>) {
    let Some(ops) = ops else {
        return (vec![], vec![]);
    };
    let mut add: Vec<_> = ops.set.iter().map(|(k, v)| header_op(k, v, true)).collect();
    add.extend(ops.add.iter().map(|(k, v)| header_op(k, v, false)));
    (add, ops.remove.clone())
}

fn header_matcher(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    // An empty regex / prefix means "present" in Istio.
    let spec = match m {
        StringMatch::Prefix(p) if p.is_empty() => {
            header_matcher::HeaderMatchSpecifier::PresentMatch(true)
        }
        StringMatch::Regex(r) if r == "*" || r.is_empty() => {
            header_matcher::HeaderMatchSpecifier::PresentMatch(true)
        }
        StringMatch::Unset => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
        _ => match string_match(m, false) {
            Some(sm) => header_matcher::HeaderMatchSpecifier::StringMatch(sm),
            None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
        },
    };
    HeaderMatcher {
        name: name.to_ascii_lowercase(),
        invert_match: invert,
        treat_missing_header_as_empty: invert,
        header_match_specifier: Some(spec),
    }
}

fn route_match(m: Option<&istio::HttpMatchRequest>) -> RouteMatch {
    let mut rm = RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
        ..Default::default()
    };
    let Some(m) = m else { return rm };
    if let Some(uri) = &m.uri {
        rm.path_specifier = Some(match uri {
            StringMatch::Exact(s) => route_match::PathSpecifier::Path(s.clone()),
            StringMatch::Prefix(s) => route_match::PathSpecifier::Prefix(s.clone()),
            StringMatch::Regex(s) => route_match::PathSpecifier::SafeRegex(regex(s)),
            StringMatch::Unset => route_match::PathSpecifier::Prefix("/".into()),
        });
    }
    if m.ignore_uri_case {
        rm.case_sensitive = Some(super::util::boolv(false));
    }
    for (name, sm) in &m.headers {
        rm.headers.push(header_matcher(name, sm, false));
    }
    for (name, sm) in &m.without_headers {
        rm.headers.push(header_matcher(name, sm, true));
    }
    for (pseudo, sm) in [
        (":authority", &m.authority),
        (":method", &m.method),
        (":scheme", &m.scheme),
    ] {
        if let Some(sm) = sm {
            rm.headers.push(header_matcher(pseudo, sm, false));
        }
    }
    rm.headers.sort_by(|a, b| a.name.cmp(&b.name));
    for (name, sm) in &m.query_params {
        rm.query_parameters.push(QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(match string_match(sm, false) {
                Some(m) if !matches!(sm, StringMatch::Prefix(p) if p.is_empty()) => {
                    query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(m)
                }
                _ => query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
            }),
        });
    }
    rm
}

/// The cluster a destination refers to (`GetDestinationCluster`).
pub fn destination_cluster(d: &istio::Destination, vs_ns: &str, scope: &Scope) -> String {
    let host = resolve_host(&d.host, vs_ns);
    let svc = scope.ctx.by_host.get(&host);
    let port = match (d.port.as_ref().map(|p| p.number).filter(|n| *n != 0), svc) {
        (Some(p), _) => p,
        (None, Some(s)) if s.ports.len() == 1 => s.ports[0].port,
        _ => scope.port,
    };
    cluster_name("outbound", port, &d.subset, &host)
}

fn translate_rule(
    vs: &Object<VirtualService>,
    rule: &HttpRoute,
    m: Option<&istio::HttpMatchRequest>,
    scope: &Scope,
    index: usize,
) -> Route {
    let ns = &vs.meta.namespace;
    let name = match (set(&rule.name), m.and_then(|m| set(&m.name))) {
        (Some(r), Some(mn)) => format!("{r}.{mn}"),
        (Some(r), None) => r.to_string(),
        (None, Some(mn)) => mn.to_string(),
        (None, None) => format!("{}.{}.{index}", vs.meta.namespace, vs.meta.name),
    };
    let mut out = Route {
        name,
        r#match: Some(route_match(m)),
        metadata: Some(super::util::istio_config_metadata(
            "virtual-service",
            &vs.meta.namespace,
            &vs.meta.name,
        )),
        ..Default::default()
    };
    let (req_add, req_rm) = header_ops(rule.headers.as_ref().and_then(|h| h.request.as_ref()));
    let (resp_add, resp_rm) = header_ops(rule.headers.as_ref().and_then(|h| h.response.as_ref()));
    out.request_headers_to_add = req_add;
    out.request_headers_to_remove = req_rm;
    out.response_headers_to_add = resp_add;
    out.response_headers_to_remove = resp_rm;

    if let Some(r) = &rule.redirect {
        let code = match r.redirect_code.unwrap_or(301) {
            302 => redirect_action::RedirectResponseCode::Found,
            303 => redirect_action::RedirectResponseCode::SeeOther,
            307 => redirect_action::RedirectResponseCode::TemporaryRedirect,
            308 => redirect_action::RedirectResponseCode::PermanentRedirect,
            _ => redirect_action::RedirectResponseCode::MovedPermanently,
        };
        out.action = Some(route::Action::Redirect(RedirectAction {
            host_redirect: r.authority.clone(),
            port_redirect: r.port.unwrap_or(0),
            response_code: code as i32,
            scheme_rewrite_specifier: set(&r.scheme)
                .map(|s| redirect_action::SchemeRewriteSpecifier::SchemeRedirect(s.to_string())),
            path_rewrite_specifier: set(&r.uri)
                .map(|u| redirect_action::PathRewriteSpecifier::PathRedirect(u.to_string()))
                .or_else(|| {
                    set(&r.prefix_rewrite).map(|u| {
                        redirect_action::PathRewriteSpecifier::PrefixRewrite(u.to_string())
                    })
                }),
            ..Default::default()
        }));
    } else if let Some(d) = &rule.direct_response {
        let body = d.body.as_ref().and_then(|b| {
            b.string.clone().map(|s| DataSource {
                specifier: Some(data_source::Specifier::InlineString(s)),
                ..Default::default()
            })
        });
        out.action = Some(route::Action::DirectResponse(DirectResponseAction {
            status: d.status,
            body,
            ..Default::default()
        }));
    } else {
        let mut action = RouteAction {
            timeout: Some(istio_dur(&rule.timeout).unwrap_or_else(|| secs(0))),
            ..Default::default()
        };
        // Istio sets the route timeout as the max stream duration too (Envoy uses the latter when set).
        action.max_stream_duration = Some(route_action::MaxStreamDuration {
            max_stream_duration: Some(action.timeout.unwrap_or_else(|| secs(0))),
            grpc_timeout_header_max: Some(action.timeout.unwrap_or_else(|| secs(0))),
            ..Default::default()
        });
        let dests: Vec<_> = rule
            .route
            .iter()
            .filter(|d| d.weight != 0 || rule.route.len() == 1)
            .collect();
        if dests.len() == 1 {
            let d = dests[0];
            action.cluster_specifier = Some(route_action::ClusterSpecifier::Cluster(
                destination_cluster(&d.destination.clone().unwrap_or_default(), ns, scope),
            ));
            let (a, r) = header_ops(d.headers.as_ref().and_then(|h| h.request.as_ref()));
            out.request_headers_to_add.extend(a);
            out.request_headers_to_remove.extend(r);
            let (a, r) = header_ops(d.headers.as_ref().and_then(|h| h.response.as_ref()));
            out.response_headers_to_add.extend(a);
            out.response_headers_to_remove.extend(r);
        } else {
            let clusters = dests
                .iter()
                .map(|d| {
                    let (ra, rr) = header_ops(d.headers.as_ref().and_then(|h| h.request.as_ref()));
                    let (sa, sr) = header_ops(d.headers.as_ref().and_then(|h| h.response.as_ref()));
                    weighted_cluster::ClusterWeight {
                        name: destination_cluster(
                            &d.destination.clone().unwrap_or_default(),
                            ns,
                            scope,
                        ),
                        weight: Some(u32v(d.weight.max(0).unsigned_abs())),
                        request_headers_to_add: ra,
                        request_headers_to_remove: rr,
                        response_headers_to_add: sa,
                        response_headers_to_remove: sr,
                        ..Default::default()
                    }
                })
                .collect();
            action.cluster_specifier = Some(route_action::ClusterSpecifier::WeightedClusters(
                WeightedCluster {
                    clusters,
                    ..Default::default()
                },
            ));
        }
        // Consistent hash from the DestinationRule of the (first) destination.
        if let Some(d) = dests.first().and_then(|d| d.destination.as_ref()) {
            let host = resolve_host(&d.host, ns);
            if let Some(svc) = scope.ctx.by_host.get(&host) {
                let port = d
                    .port
                    .as_ref()
                    .map(|p| p.number)
                    .filter(|n| *n != 0)
                    .unwrap_or_else(|| {
                        if svc.ports.len() == 1 {
                            svc.ports[0].port
                        } else {
                            scope.port
                        }
                    });
                if let Some(ch) = consistent_hash(scope.ctx, svc, port, &d.subset) {
                    action.hash_policy.extend(hash_policy(ch));
                }
            }
        }
        action.retry_policy = match &rule.retries {
            None => Some(default_retry()),
            Some(r) if r.attempts <= 0 => None,
            Some(r) => {
                let mut p = default_retry();
                p.num_retries = Some(u32v(r.attempts.unsigned_abs()));
                if let Some(on) = set(&r.retry_on) {
                    let mut kinds = Vec::new();
                    let mut codes = Vec::new();
                    for part in on.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        match part.parse::<u32>() {
                            Ok(c) => codes.push(c),
                            Err(_) => kinds.push(part.to_string()),
                        }
                    }
                    if !codes.is_empty() && !kinds.iter().any(|k| k == "retriable-status-codes") {
                        kinds.push("retriable-status-codes".into());
                    }
                    p.retry_on = kinds.join(",");
                    p.retriable_status_codes = codes;
                }
                p.per_try_timeout = istio_dur(&r.per_try_timeout);
                Some(p)
            }
        };
        if let Some(rw) = &rule.rewrite {
            if let Some(uri) = set(&rw.uri) {
                let exact = matches!(m.and_then(|m| m.uri.as_ref()), Some(StringMatch::Exact(_)));
                if exact {
                    action.regex_rewrite = Some(RegexMatchAndSubstitute {
                        pattern: Some(regex(".*")),
                        substitution: uri.to_string(),
                    });
                } else {
                    action.prefix_rewrite = uri.to_string();
                }
            }
            if let Some(rr) = &rw.uri_regex_rewrite {
                action.regex_rewrite = Some(RegexMatchAndSubstitute {
                    pattern: Some(regex(&rr.r#match)),
                    substitution: rr.rewrite.clone(),
                });
            }
            if let Some(a) = set(&rw.authority) {
                action.host_rewrite_specifier = Some(
                    route_action::HostRewriteSpecifier::HostRewriteLiteral(a.to_string()),
                );
            }
        }
        let mut mirrors: Vec<(istio::Destination, Option<istio::Percent>)> = Vec::new();
        if let Some(mr) = &rule.mirror {
            let pct = rule.mirror_percentage.clone().or_else(|| {
                rule.mirror_percent.map(|p| istio::Percent {
                    value: f64::from(p),
                })
            });
            mirrors.push((mr.clone(), pct));
        }
        mirrors.extend(
            rule.mirrors
                .iter()
                .filter_map(|m| Some((m.destination.clone()?, m.percentage.clone()))),
        );
        for (d, pct) in mirrors {
            action
                .request_mirror_policies
                .push(route_action::RequestMirrorPolicy {
                    cluster: destination_cluster(&d, ns, scope),
                    runtime_fraction: Some(RuntimeFractionalPercent {
                        default_value: Some(percent(
                            Some(&pct.unwrap_or(istio::Percent { value: 100.0 })),
                            None,
                        )),
                        ..Default::default()
                    }),
                    trace_sampled: Some(super::util::boolv(false)),
                    ..Default::default()
                });
        }
        out.action = Some(route::Action::Route(action));
    }
    if let Some(f) = &rule.fault {
        if let Some(fault) = translate_fault(f) {
            out.typed_per_filter_config
                .insert("envoy.filters.http.fault".into(), pack_any(fault));
        }
    }
    if let Some(c) = &rule.cors_policy {
        out.typed_per_filter_config.insert(
            "envoy.filters.http.cors".into(),
            pack_any(translate_cors(c)),
        );
    }
    out
}

fn hash_policy(ch: &istio::ConsistentHashLb) -> Vec<route_action::HashPolicy> {
    use route_action::hash_policy::{
        ConnectionProperties, Header, PolicySpecifier, QueryParameter,
    };
    let spec = if let Some(h) = &ch.http_header_name {
        PolicySpecifier::Header(Header {
            header_name: h.clone(),
            ..Default::default()
        })
    } else if ch.use_source_ip == Some(true) {
        PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true })
    } else if let Some(q) = &ch.http_query_parameter_name {
        PolicySpecifier::QueryParameter(QueryParameter { name: q.clone() })
    } else {
        return vec![];
    };
    vec![route_action::HashPolicy {
        policy_specifier: Some(spec),
        ..Default::default()
    }]
}

/// VirtualService `fault` → `envoy.filters.http.fault` per-route config.
pub fn translate_fault(f: &istio::HttpFaultInjection) -> Option<HttpFault> {
    let mut out = HttpFault::default();
    if let Some(d) = &f.delay {
        if let Some(fixed) = istio_dur(&d.fixed_delay) {
            out.delay = Some(FaultDelay {
                percentage: Some(percent(
                    d.percentage.as_ref(),
                    u32::try_from(d.percent).ok().filter(|p| *p > 0),
                )),
                fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(fixed)),
            });
        }
    }
    if let Some(a) = &f.abort {
        let error_type = if let Some(s) = a.http_status.and_then(|s| u32::try_from(s).ok()) {
            Some(fault_abort::ErrorType::HttpStatus(s))
        } else {
            a.grpc_status
                .as_deref()
                .and_then(grpc_code)
                .map(fault_abort::ErrorType::GrpcStatus)
        };
        if error_type.is_some() {
            out.abort = Some(FaultAbort {
                percentage: Some(percent(a.percentage.as_ref(), None)),
                error_type,
                ..Default::default()
            });
        }
    }
    if out.delay.is_none() && out.abort.is_none() {
        return None;
    }
    Some(out)
}

fn grpc_code(s: &str) -> Option<u32> {
    s.parse::<u32>().ok().or_else(|| {
        crate::istio::GRPC_STATUS_CODES
            .iter()
            .position(|c| *c == s)
            .and_then(|p| u32::try_from(p).ok())
    })
}

fn translate_cors(c: &istio::CorsPolicy) -> CorsPolicy {
    CorsPolicy {
        allow_origin_string_match: c
            .allow_origins
            .iter()
            .filter_map(|m| string_match(m, false))
            .chain(
                c.allow_origin
                    .iter()
                    .filter_map(|o| string_match(&StringMatch::Exact(o.clone()), false)),
            )
            .collect(),
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c
            .max_age
            .map(|d| d.to_std().as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(super::util::boolv),
        ..Default::default()
    }
}

/// The L4 destination(s) of VirtualService `tcp`/`tls` routes as a tcp_proxy cluster specifier.
pub fn tcp_cluster_specifier(
    route: &[istio::RouteDestination],
    vs_ns: &str,
    scope: &Scope,
) -> Option<envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier>{
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy;
    let dests: Vec<_> = route
        .iter()
        .filter(|d| d.weight != 0 || route.len() == 1)
        .filter_map(|d| Some((d.destination.as_ref()?, d.weight)))
        .collect();
    match dests.as_slice() {
        [] => None,
        [(d, _)] => Some(tcp_proxy::ClusterSpecifier::Cluster(destination_cluster(
            d, vs_ns, scope,
        ))),
        many => Some(tcp_proxy::ClusterSpecifier::WeightedClusters(
            tcp_proxy::WeightedCluster {
                clusters: many
                    .iter()
                    .map(|(d, w)| tcp_proxy::weighted_cluster::ClusterWeight {
                        name: destination_cluster(d, vs_ns, scope),
                        weight: w.max(&0).unsigned_abs(),
                        ..Default::default()
                    })
                    .collect(),
            },
        )),
    }
}

/// Does an L4 match (port, gateways) apply in this scope? Empty matches always apply.
pub fn l4_match_applies(port: u32, gateways: &[String], scope: &Scope, vs_ns: &str) -> bool {
    if port != 0 && port != scope.port {
        return false;
    }
    if gateways.is_empty() {
        return true;
    }
    if scope.gateways.is_empty() {
        return gateways.iter().any(|g| g == "mesh");
    }
    gateways
        .iter()
        .any(|g| scope.gateways.contains(&qualify_gateway(g, vs_ns)))
}
