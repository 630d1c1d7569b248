//! `/validate` over real HTTPS against `meshd serve`: verdicts, warnings, dry-run parity,
//! operations and the body rules, with the project's own objects.

mod common;

use common::*;
use serde_json::{json, Value};

fn vs(name: &str, weight: i64, extra_spec: Value) -> Value {
    let mut spec = json!({
        "hosts": ["reviews"],
        "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 100 - weight},
            {"destination": {"host": "reviews", "subset": "v2"}, "weight": weight}
        ]}]
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(e.clone());
    }
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": name, "namespace": "bookinfo"}, "spec": spec})
}

fn review(obj: &Value, op: &str, dry_run: bool) -> Value {
    let api = obj["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api.split_once('/').unwrap_or(("", api));
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{op}-{dry_run}"),
            "kind": {"group": group, "version": version, "kind": obj["kind"]},
            "resource": {"group": group, "version": version, "resource": "virtualservices"},
            "namespace": obj["metadata"]["namespace"], "name": obj["metadata"]["name"],
            "operation": op, "dryRun": dry_run, "object": obj
        }
    })
}

async fn post(server: &Server, body: &Value) -> Value {
    let r = server
        .client()
        .post(server.url("/validate"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn verdicts_and_dry_run_parity() {
    let server = Server::start(&[]);
    let good = vs("reviews", 20, json!({}));
    let bad = vs("reviews-bad", -5, json!({}));
    let strict_only = vs("reviews-extra", 20, json!({"notAField": true}));
    for (obj, allowed, needle) in [
        (&good, true, None),
        (&bad, false, Some("weight")),
        (&strict_only, true, None),
    ] {
        let a = post(&server, &review(obj, "CREATE", false)).await;
        let b = post(&server, &review(obj, "CREATE", true)).await;
        assert_eq!(a["response"]["allowed"], allowed, "{a}");
        assert_eq!(
            a["response"]["allowed"], b["response"]["allowed"],
            "dry-run verdict differs"
        );
        assert_eq!(a["response"]["status"], b["response"]["status"]);
        if let Some(n) = needle {
            let msg = a["response"]["status"]["message"].as_str().unwrap();
            assert!(msg.contains(n) && msg.contains("reviews-bad"), "{msg}");
            assert_eq!(a["response"]["status"]["code"], 400);
        }
    }
    // UPDATE is validated; DELETE is allowed without looking.
    assert_eq!(
        post(&server, &review(&bad, "UPDATE", false)).await["response"]["allowed"],
        false
    );
    assert_eq!(
        post(&server, &review(&bad, "DELETE", false)).await["response"]["allowed"],
        true
    );
    let metrics = server.metrics();
    assert!(
        metrics.contains("galley_validation_passed_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("galley_validation_failed_total{reason=\"invalid\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn warnings_reach_the_response() {
    let server = Server::start(&[]);
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/validate/warning/two-defaults.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let obj: Value = serde_norway::from_str(&text).unwrap();
    let r = post(&server, &review(&obj, "CREATE", false)).await;
    assert_eq!(r["response"]["allowed"], true);
    let warnings = r["response"]["warnings"].as_array().expect("warnings");
    assert!(!warnings.is_empty());
    assert!(warnings.iter().all(|w| w.as_str().unwrap().len() < 256));
}

#[tokio::test]
async fn unknown_kinds_are_denied_clearly() {
    let server = Server::start(&[]);
    let odd = json!({"apiVersion": "networking.istio.io/v1", "kind": "TrafficMagic", "metadata": {"name": "x", "namespace": "ns"}, "spec": {}});
    let r = post(&server, &review(&odd, "CREATE", false)).await;
    assert_eq!(r["response"]["allowed"], false);
    assert!(r["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("TrafficMagic"));
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "ns"}});
    let r = post(&server, &review(&cm, "CREATE", false)).await;
    assert_eq!(r["response"]["allowed"], false);
    assert!(r["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("ConfigMap"));
    // The same body rules as /inject.
    let c = server.client();
    let r = c
        .post(server.url("/validate"))
        .header("Content-Type", "application/yaml")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = c
        .post(server.url("/validate"))
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
