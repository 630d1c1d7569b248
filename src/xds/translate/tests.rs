use super::*;
use crate::store::sample_snapshot;
use crate::xds::model::PushContext;
use crate::xds::proxy::{NodeType, Proxy};
use std::sync::Arc;

fn proxy(t: NodeType, ns: &str, labels: &[(&str, &str)]) -> Proxy {
    Proxy {
        id: "x".into(),
        node_type: t,
        ip: "10.244.0.20".into(),
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[test]
fn sidecar_layout() {
    let ctx = PushContext::new(Arc::new(sample_snapshot()));
    let g = generate(
        &ctx,
        &proxy(
            NodeType::Sidecar,
            "bookinfo",
            &[("app", "productpage"), ("version", "v1")],
        ),
    );
    let lnames: Vec<_> = g.listeners.iter().map(|l| l.name.as_str()).collect();
    assert!(lnames.contains(&"virtualOutbound"));
    assert!(lnames.contains(&"virtualInbound"));
    assert!(lnames.contains(&"0.0.0.0_9080"));
    let cnames: Vec<_> = g.clusters.iter().map(|c| c.name.as_str()).collect();
    for c in [
        "outbound|9080||reviews.bookinfo.svc.cluster.local",
        "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
        "inbound|9080||",
        "BlackHoleCluster",
        "PassthroughCluster",
    ] {
        assert!(cnames.contains(&c), "missing {c} in {cnames:?}");
    }
    let rc = g
        .routes
        .iter()
        .find(|r| r.name == "9080")
        .expect("route 9080");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.bookinfo.svc.cluster.local:9080")
        .expect("vh");
    assert!(vh.domains.contains(&"reviews".to_string()));
    assert_eq!(vh.routes.len(), 2);
    assert_eq!(
        rc.virtual_hosts.last().map(|v| v.name.as_str()),
        Some("allow_any")
    );
    let v2 = g
        .endpoints
        .iter()
        .find(|e| e.cluster_name == "outbound|9080|v2|reviews.bookinfo.svc.cluster.local")
        .expect("eds");
    assert_eq!(v2.endpoints[0].lb_endpoints.len(), 1);
}

#[test]
fn gateway_layout() {
    let ctx = PushContext::new(Arc::new(sample_snapshot()));
    let g = generate(
        &ctx,
        &proxy(
            NodeType::Router,
            "istio-system",
            &[("istio", "ingressgateway")],
        ),
    );
    assert_eq!(g.listeners.len(), 1);
    assert_eq!(g.listeners[0].name, "0.0.0.0_8080");
    assert_eq!(g.routes[0].name, "http.8080");
    let vh = &g.routes[0].virtual_hosts[0];
    assert_eq!(vh.name, "httpbin.example.com:8080");
    assert_eq!(vh.routes.len(), 2);
    // Not selected: no listeners.
    let g = generate(
        &ctx,
        &proxy(NodeType::Router, "istio-system", &[("istio", "egress")]),
    );
    assert!(g.listeners.is_empty());
}

#[test]
fn build_encodes_every_resource() {
    let ctx = PushContext::new(Arc::new(sample_snapshot()));
    let p = proxy(NodeType::Sidecar, "bookinfo", &[("app", "reviews")]);
    let r = build(&ctx, &p);
    let g = generate(&ctx, &p);
    assert_eq!(r.clusters.len(), g.clusters.len());
    assert_eq!(r.endpoints.len(), g.endpoints.len());
    assert_eq!(r.listeners.len(), g.listeners.len());
    // A second proxy of another workload shares the outbound cluster allocations.
    let r2 = build(
        &ctx,
        &proxy(NodeType::Sidecar, "bookinfo", &[("app", "ratings")]),
    );
    let name = "outbound|9080||reviews.bookinfo.svc.cluster.local";
    assert!(Arc::ptr_eq(&r.clusters[name], &r2.clusters[name]));
    assert!(Arc::ptr_eq(&r.routes["9080"], &r2.routes["9080"]));
    assert!(r
        .of_type(crate::xds::protocol::ROUTE)
        .is_some_and(|m| m.contains_key("9080")));
}

#[test]
fn virtual_service_timeout_retries_and_fault() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: bookinfo}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {prefix: /slow}}]
    timeout: 200ms
    retries: {attempts: 3, retryOn: "5xx,503", perTryTimeout: 1s}
    fault: {abort: {httpStatus: 418, percentage: {value: 50}}}
    route: [{destination: {host: ratings}}]
"#;
    let mut snap = sample_snapshot();
    crate::store::parse_documents("t", text, &mut snap);
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    let ctx = PushContext::new(Arc::new(snap));
    let g = generate(
        &ctx,
        &proxy(NodeType::Sidecar, "bookinfo", &[("app", "productpage")]),
    );
    let rc = g.routes.iter().find(|r| r.name == "9080").expect("9080");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "ratings.bookinfo.svc.cluster.local:9080")
        .expect("vh");
    let r = &vh.routes[0];
    let Some(envoy_types::pb::envoy::config::route::v3::route::Action::Route(a)) = &r.action else {
        panic!("not a route action");
    };
    assert_eq!(
        a.timeout.map(|t| (t.seconds, t.nanos)),
        Some((0, 200_000_000))
    );
    let rp = a.retry_policy.as_ref().expect("retry");
    assert_eq!(rp.num_retries.as_ref().map(|n| n.value), Some(3));
    assert_eq!(rp.retry_on, "5xx,retriable-status-codes");
    assert_eq!(rp.retriable_status_codes, vec![503]);
    assert!(r
        .typed_per_filter_config
        .contains_key("envoy.filters.http.fault"));
}

#[test]
fn sidecar_resource_scopes_egress() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: productpage, namespace: bookinfo}
spec:
  workloadSelector:
    labels: {app: productpage}
  egress:
  - hosts: ["./reviews.bookinfo.svc.cluster.local"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"#;
    let mut snap = sample_snapshot();
    crate::store::parse_documents("t", text, &mut snap);
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    let ctx = PushContext::new(Arc::new(snap));
    let scoped = proxy(NodeType::Sidecar, "bookinfo", &[("app", "productpage")]);
    {
        let r = build(&ctx, &scoped);
        let outbound: Vec<_> = r
            .clusters
            .keys()
            .filter(|k| k.starts_with("outbound|"))
            .collect();
        assert!(!outbound.is_empty());
        assert!(
            outbound
                .iter()
                .all(|k| k.ends_with("|reviews.bookinfo.svc.cluster.local")),
            "{outbound:?}"
        );
        assert!(r
            .endpoints
            .keys()
            .all(|k| k.ends_with("|reviews.bookinfo.svc.cluster.local")));
    }
    let g = generate(&ctx, &scoped);
    let rc = g.routes.iter().find(|r| r.name == "9080").expect("9080");
    let names: Vec<_> = rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["reviews.bookinfo.svc.cluster.local:9080", "block_all"]
    );
    // Another workload in the namespace is not selected: it sees everything.
    let other = build(
        &ctx,
        &proxy(NodeType::Sidecar, "bookinfo", &[("app", "ratings")]),
    );
    assert!(other
        .clusters
        .contains_key("outbound|9080||details.bookinfo.svc.cluster.local"));
}
