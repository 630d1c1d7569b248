//! Robustness: every node of some seed objects is replaced by odd values (wrong types, nulls,
//! huge numbers, empty and wildcard strings, broken regexes) and validated in both modes; nothing
//! may panic, and every verdict's warnings stay under 256 characters.

use meshd::validate::{validate_object, Mode};
use serde_json::{json, Value};

fn seeds() -> Vec<Value> {
    vec![
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "r", "namespace": "ns", "annotations": {"a": "b"}},
            "spec": {"hosts": ["r", "*.x.y"], "gateways": ["ns/gw", "mesh"], "exportTo": ["."],
                "http": [{"name": "n", "match": [{"uri": {"regex": "/a.*"}, "headers": {"h": {"exact": "v"}},
                    "queryParams": {"q": {"prefix": "p"}}, "port": 80, "sourceLabels": {"a": "b"}}],
                    "route": [{"destination": {"host": "r", "subset": "v1", "port": {"number": 80}}, "weight": 50,
                        "headers": {"request": {"set": {"x": "%A%"}}}}],
                    "timeout": "1s", "retries": {"attempts": 1, "perTryTimeout": "1s", "retryOn": "5xx"},
                    "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 1}}, "delay": {"fixedDelay": "1s"}},
                    "mirror": {"host": "m"}, "mirrorPercentage": {"value": 5},
                    "corsPolicy": {"allowOrigins": [{"regex": "a.*"}], "allowMethods": ["GET"], "maxAge": "1s"},
                    "rewrite": {"uriRegexRewrite": {"match": "a", "rewrite": "b"}}},
                    {"redirect": {"uri": "/", "redirectCode": 301}}, {"directResponse": {"status": 200, "body": {"bytes": "aGk="}}},
                    {"delegate": {"name": "d", "namespace": "ns"}}],
                "tls": [{"match": [{"sniHosts": ["r"], "destinationSubnets": ["1.1.1.1/32"]}], "route": [{"destination": {"host": "r"}}]}],
                "tcp": [{"match": [{"port": 1}], "route": [{"destination": {"host": "r"}}]}]}}),
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {"host": "r", "workloadSelector": {"matchLabels": {"a": "b"}},
                "trafficPolicy": {"loadBalancer": {"consistentHash": {"httpCookie": {"name": "c", "ttl": "1s"}, "maglev": {"tableSize": 7}},
                    "localityLbSetting": {"distribute": [{"from": "a/b/*", "to": {"a/c/*": 100}}], "failover": [{"from": "a", "to": "b"}]},
                    "warmup": {"duration": "1s", "minimumPercent": 10, "aggression": 1}},
                    "connectionPool": {"tcp": {"maxConnections": 1, "tcpKeepalive": {"time": "1s"}}, "http": {"http2KeepAlive": {"interval": "1s", "timeout": "1s"}}},
                    "outlierDetection": {"consecutive5xxErrors": 1, "interval": "1s"},
                    "tls": {"mode": "MUTUAL", "clientCertificate": "c", "privateKey": "k"},
                    "portLevelSettings": [{"port": {"number": 80}, "tls": {"mode": "SIMPLE"}}],
                    "tunnel": {"targetHost": "a.b", "targetPort": 1}},
                "subsets": [{"name": "v1", "labels": {"a": "b"}, "trafficPolicy": {"tls": {"mode": 1}}}]}}),
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"selector": {"a": "b"}, "servers": [{"port": {"number": 443, "name": "h", "protocol": "HTTPS"}, "bind": "1.1.1.1",
                "hosts": ["ns/a.b"], "tls": {"mode": "MUTUAL", "serverCertificate": "c", "privateKey": "k", "caCertificates": "ca",
                "cipherSuites": ["x"], "tlsCertificates": [{"serverCertificate": "c"}], "minProtocolVersion": "TLSV1_0"}}]}}),
        json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"hosts": ["a.b", "*.c"], "addresses": ["1.1.1.0/24"], "resolution": "STATIC", "location": 1,
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 8080}],
                "endpoints": [{"address": "unix:///x", "ports": {"http": 1}, "labels": {"a": "b"}, "network": "n"}], "exportTo": ["~"]}}),
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"workloadSelector": {"labels": {"a": "b"}},
                "ingress": [{"port": {"number": 1, "name": "a", "protocol": "HTTPS"}, "defaultEndpoint": "unix:///x",
                    "tls": {"mode": "SIMPLE"}, "connectionPool": {"http": {"maxRetries": 1}}}],
                "egress": [{"port": {"number": 0}, "bind": "unix:///y", "hosts": ["*/*", "~a/*"]}, {"hosts": ["./a.b"]}],
                "outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {"host": "p", "port": {"number": 1}}}}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "a", "namespace": "ns", "annotations": {"istio.io/dry-run": "true"}},
            "spec": {"action": "DENY", "selector": {"matchLabels": {"a": "b"}},
                "rules": [{"from": [{"source": {"ipBlocks": ["1.1.1.1"], "principals": ["p"]}}],
                    "to": [{"operation": {"paths": ["/{*}/{**}"], "ports": ["1"]}}],
                    "when": [{"key": "request.auth.claims[x]", "values": ["v"]}]}]}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"targetRefs": [{"kind": "Service", "name": "s"}],
                "jwtRules": [{"issuer": "i", "jwks": "{\"kty\":\"EC\"}", "fromHeaders": [{"name": "h"}], "outputClaimToHeaders": [{"header": "h", "claim": "c"}]}]}}),
        json!({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "portLevelMtls": {"80": {"mode": "STRICT"}}}}),
        json!({"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
            "metadata": {"name": "w", "namespace": "ns"},
            "spec": {"address": "a.b", "ports": {"http": 1}, "serviceAccount": "sa"}}),
    ]
}

fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(-1),
        json!(0),
        json!(4294967296u64),
        json!(1e300),
        json!(-0.5),
        json!(""),
        json!("*"),
        json!("%"),
        json!("(?!x)"),
        json!("0s"),
        json!("9999999999999999999h"),
        json!("a".repeat(3000)),
        json!(true),
        json!([]),
        json!([null, 1, "x", {}]),
        json!({}),
        json!({"": null, "exact": "", "prefix": "", "regex": "["}),
    ]
}

/// Calls `f` with a copy of `v` where the node at each position is replaced by each odd value.
fn mutations(v: &Value, f: &mut dyn FnMut(Value)) {
    fn walk(root: &Value, path: &mut Vec<PathSeg>, node: &Value, f: &mut dyn FnMut(Value)) {
        for odd in odd_values() {
            let mut copy = root.clone();
            if let Some(slot) = get_mut(&mut copy, path) {
                *slot = odd;
                f(copy);
            }
        }
        match node {
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(PathSeg::Key(k.clone()));
                    walk(root, path, child, f);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    walk(root, path, child, f);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    walk(v, &mut Vec::new(), v, f);
}

#[derive(Clone)]
enum PathSeg {
    Key(String),
    Index(usize),
}

fn get_mut<'a>(v: &'a mut Value, path: &[PathSeg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            PathSeg::Key(k) => cur.get_mut(k.as_str())?,
            PathSeg::Index(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

#[test]
fn no_panics_on_mutated_objects() {
    let mut n = 0usize;
    for seed in seeds() {
        for mode in [Mode::Strict, Mode::Lenient] {
            let v = validate_object(&seed, mode).expect("seed is an Istio object");
            assert!(v.errors.len() < 100);
        }
        mutations(&seed, &mut |obj| {
            for mode in [Mode::Strict, Mode::Lenient] {
                if let Ok(v) = validate_object(&obj, mode) {
                    assert!(v.warnings.iter().all(|w| w.len() < 256), "{v:?}");
                }
                n += 1;
            }
        });
    }
    assert!(n > 1000);
}
