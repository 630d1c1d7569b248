//! No input makes translation panic: every validation fixture, the samples, and mutated variants of
//! them go through the store, the model and translation for sidecar and gateway nodes.

use meshd::store::{parse_documents, Snapshot, SAMPLES};
use meshd::xds::model::PushContext;
use meshd::xds::proxy::{NodeType, Proxy};
use std::sync::Arc;

fn inputs() -> Vec<String> {
    let mut v: Vec<String> = SAMPLES.iter().map(|(_, t)| t.to_string()).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                v.push(t);
            }
        }
    }
    v.push(meshd::xds::synthetic::mesh_yaml(
        meshd::xds::synthetic::Shape {
            services: 30,
            endpoints_per_service: 2,
            virtual_services: 10,
            destination_rules: 10,
            namespaces: 3,
        },
        0,
    ));
    v
}

fn mutate(text: &str, seed: usize) -> String {
    // Deterministic, structure-aware-ish mutations: swap scalars for odd values, drop lines.
    let odd = [
        "0", "-1", "99999999", "\"\"", "[]", "{}", "null", "\"*\"", "\"(\"", "1.5", "true",
    ];
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let k = (i * 31 + seed * 17) % 23;
            if k == 0 {
                return None;
            }
            if k == 1 {
                if let Some((key, _)) = l.split_once(": ") {
                    return Some(format!("{key}: {}", odd[(i + seed) % odd.len()]));
                }
            }
            Some(l.to_string())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn proxies() -> Vec<Proxy> {
    let mk = |t, ns: &str, labels: &[(&str, &str)]| Proxy {
        id: "x".into(),
        node_type: t,
        ip: "10.0.0.1".into(),
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    vec![
        mk(NodeType::Sidecar, "default", &[]),
        mk(
            NodeType::Sidecar,
            "bookinfo",
            &[("app", "reviews"), ("version", "v1")],
        ),
        mk(NodeType::Sidecar, "ns1", &[("app", "svc1")]),
        mk(
            NodeType::Router,
            "istio-system",
            &[("istio", "ingressgateway")],
        ),
        mk(NodeType::Router, "istio-system", &[]),
    ]
}

#[test]
fn translation_never_panics() {
    let all = inputs();
    let mut combined = String::new();
    for (i, text) in all.iter().enumerate() {
        for seed in 0..6 {
            let t = if seed == 0 {
                text.clone()
            } else {
                mutate(text, seed + i)
            };
            let mut snap = Snapshot::default();
            parse_documents("fuzz", &t, &mut snap);
            let ctx = PushContext::new(Arc::new(snap));
            for p in proxies() {
                let _ = meshd::xds::translate::build(&ctx, &p);
            }
        }
        combined.push_str(text);
        combined.push_str("\n---\n");
    }
    // Everything at once (conflicting hosts, duplicate names across files).
    let mut snap = Snapshot::default();
    parse_documents("all", &combined, &mut snap);
    parse_documents("again", &combined, &mut snap);
    let ctx = PushContext::new(Arc::new(snap));
    for p in proxies() {
        let r = meshd::xds::translate::build(&ctx, &p);
        let g = meshd::xds::translate::generate(&ctx, &p);
        // Names are unique per type, as Envoy requires.
        assert_eq!(r.clusters.len(), g.clusters.len());
        assert_eq!(r.listeners.len(), g.listeners.len());
        assert_eq!(r.routes.len(), g.routes.len());
        for rc in &g.routes {
            let mut domains = std::collections::HashSet::new();
            for vh in &rc.virtual_hosts {
                for d in &vh.domains {
                    assert!(
                        domains.insert(d.clone()),
                        "duplicate domain {d} in route {}",
                        rc.name
                    );
                }
            }
        }
    }
}
