//! End-to-end: meshd's ADS server driving a real Envoy gateway (`router~` node), real HTTP through it.

mod common;

use common::*;
use std::time::Duration;

const BASIC: &str = "  - match:\n    - uri: {prefix: /status}\n    route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, port: {number: 8000}, subset: v1}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_routes_to_upstream() {
    let env = GatewayEnv::start(BASIC, false, 0).await;
    let ok = eventually(Duration::from_secs(10), || async {
        env.get("/status/200", &[]).await.0 == 200
    })
    .await;
    assert!(
        ok.is_some(),
        "no 200 through the gateway; envoy log:\n{}",
        env.envoy.log()
    );
    let (status, body, up, _) = env.get("/status/200", &[]).await;
    assert_eq!((status, up.as_str()), (200, "v1"), "body {body}");
    assert_eq!(body, "v1 /status/200");
    // A path no rule matches is a 404 from Envoy; an unknown host too.
    assert_eq!(env.get("/other", &[]).await.0, 404);
    assert_eq!(
        get(env.port, "nope.example.com", "/status/200", &[])
            .await
            .0,
        404
    );
    // Envoy's own view: the gateway listener and route config names.
    let dump = env.envoy.config_dump().await;
    let listeners =
        meshd::xds::proxy_config::extract(&dump, meshd::xds::proxy_config::Section::Listeners);
    assert!(listeners
        .iter()
        .any(|l| l["name"] == format!("0.0.0.0_{}", env.port)));
    let routes =
        meshd::xds::proxy_config::extract(&dump, meshd::xds::proxy_config::Section::Routes);
    assert!(routes
        .iter()
        .any(|r| r["name"] == format!("http.{}", env.port)));
    env.meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_80_20() {
    let http = "  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}\n      weight: 80\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v2}\n      weight: 20\n";
    let env = GatewayEnv::start(http, false, 0).await;
    assert!(eventually(Duration::from_secs(10), || async {
        env.get("/", &[]).await.0 == 200
    })
    .await
    .is_some());
    let (mut v1, mut v2) = (0, 0);
    for _ in 0..1000 {
        match env.get("/", &[]).await.2.as_str() {
            "v1" => v1 += 1,
            "v2" => v2 += 1,
            other => panic!("unexpected upstream {other:?}"),
        }
    }
    assert!(
        (750..=850).contains(&v1),
        "v1={v1} v2={v2}: not within ±5% of 80/20"
    );
    assert_eq!(v1 + v2, 1000);
    env.meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_match_routes_to_v2() {
    let http = "  - match:\n    - headers:\n        end-user: {exact: jason}\n    route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v2}\n  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}\n";
    let env = GatewayEnv::start(http, false, 0).await;
    assert!(eventually(Duration::from_secs(10), || async {
        env.get("/", &[]).await.0 == 200
    })
    .await
    .is_some());
    for _ in 0..20 {
        assert_eq!(env.get("/x", &[("end-user", "jason")]).await.2, "v2");
        assert_eq!(env.get("/x", &[("end-user", "bob")]).await.2, "v1");
        assert_eq!(env.get("/x", &[]).await.2, "v1");
    }
    env.meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_uri_matches() {
    let http = "  - match:\n    - uri: {regex: \"/usrv(/.*)?\"}\n    route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v2}\n  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}\n";
    let env = GatewayEnv::start(http, false, 0).await;
    assert!(eventually(Duration::from_secs(10), || async {
        env.get("/", &[]).await.0 == 200
    })
    .await
    .is_some());
    assert_eq!(env.get("/usrv", &[]).await.2, "v2");
    assert_eq!(env.get("/usrv/a/b", &[]).await.2, "v2");
    assert_eq!(env.get("/usrvx", &[]).await.2, "v1");
    assert_eq!(env.get("/x/usrv", &[]).await.2, "v1");
    env.meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_abort_returns_configured_status() {
    let http = "  - match:\n    - uri: {prefix: /faulty}\n    fault:\n      abort:\n        httpStatus: 418\n        percentage: {value: 100}\n    route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}\n  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}\n";
    let env = GatewayEnv::start(http, false, 0).await;
    assert!(eventually(Duration::from_secs(10), || async {
        env.get("/", &[]).await.0 == 200
    })
    .await
    .is_some());
    let before = env.v1.hits.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..10 {
        assert_eq!(env.get("/faulty", &[]).await.0, 418);
    }
    assert_eq!(
        env.v1.hits.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "aborted requests reached the upstream"
    );
    assert_eq!(env.get("/ok", &[]).await.0, 200);
    env.meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_policy_retries_failing_upstream() {
    // v2 fails 2 of every 3 requests; 3 attempts on 5xx always succeed.
    let http = "  - match:\n    - uri: {prefix: /retry}\n    retries: {attempts: 3, retryOn: 5xx}\n    route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v2}\n  - match:\n    - uri: {prefix: /noretry}\n    retries: {attempts: 0}\n    route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v2}\n  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}\n";
    let env = GatewayEnv::start(http, false, 3).await;
    assert!(eventually(Duration::from_secs(10), || async {
        env.get("/", &[]).await.0 == 200
    })
    .await
    .is_some());
    let hits = || env.v2.hits.load(std::sync::atomic::Ordering::SeqCst);
    let before = hits();
    for _ in 0..10 {
        assert_eq!(env.get("/retry", &[]).await.0, 200);
    }
    assert!(
        hits() - before >= 20,
        "upstream saw {} requests for 10 retried calls",
        hits() - before
    );
    // Without retries the failures show through.
    let mut failures = 0;
    for _ in 0..9 {
        if env.get("/noretry", &[]).await.0 == 503 {
            failures += 1;
        }
    }
    assert!(
        failures >= 5,
        "expected 503s without retries, got {failures}"
    );
    env.meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_service_file_change_applies_within_1s() {
    let env = GatewayEnv::start(BASIC, false, 0).await;
    assert!(eventually(Duration::from_secs(10), || async {
        env.get("/status/200", &[]).await.2 == "v1"
    })
    .await
    .is_some());
    // Let Envoy settle and the poller record the current state.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let changed = BASIC.replace("subset: v1", "subset: v2");
    let start = std::time::Instant::now();
    std::fs::write(env.dir.path().join("vs.yaml"), virtual_service(&changed)).expect("write");
    let took = eventually(Duration::from_secs(5), || async {
        env.get("/status/200", &[]).await.2 == "v2"
    })
    .await;
    let took = took.expect("change never applied");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "change took {:?} (poll measured {took:?})",
        start.elapsed()
    );
    env.meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_redirect_answers_301() {
    let env = GatewayEnv::start(BASIC, true, 0).await;
    let (status, _, _, headers) = env.get("/status/200", &[]).await;
    assert_eq!(status, 301);
    let loc = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        loc.starts_with("https://httpbin.example.com"),
        "location {loc}"
    );
    env.meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_keeps_last_good_config() {
    let env = GatewayEnv::start(BASIC, false, 0).await;
    assert!(eventually(Duration::from_secs(10), || async {
        env.get("/status/200", &[]).await.0 == 200
    })
    .await
    .is_some());
    // A regex that Istio's validation accepts (valid RE2 syntax) but whose RE2 program exceeds Envoy's
    // default max program size (100): meshd serves it, Envoy rejects the route config.
    let bad = "  - match:\n    - uri: {regex: \"/usrv[0-9a-f]{300}\"}\n    route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v2}\n";
    std::fs::write(env.dir.path().join("vs.yaml"), virtual_service(bad)).expect("write");
    let rds_rejected = format!(
        "http.outbound_0.0.0.0_{}.rds.http.{}.update_rejected",
        env.port, env.port
    );
    let nacked = eventually(Duration::from_secs(10), || async {
        env.envoy.stat(&rds_rejected).await >= 1
    })
    .await;
    assert!(
        nacked.is_some(),
        "Envoy never rejected the bad route; log:\n{}",
        env.envoy.log()
    );
    // Envoy keeps serving the previous config.
    assert_eq!(env.get("/status/200", &[]).await.2, "v1");
    // meshd reports it: metric and debug connections.
    let reported = eventually(Duration::from_secs(5), || async {
        env.meshd.metrics_text().lines().any(|l| {
            l.starts_with("pilot_total_xds_rejects_total{type=\"rds\"} ") && !l.ends_with(" 0")
        })
    })
    .await;
    assert!(reported.is_some(), "metrics:\n{}", env.meshd.metrics_text());
    let conns = meshd::xds::discovery::connections_json(&env.meshd.debug);
    assert!(conns.contains("program size"), "{conns}");
    // And a fixed config is applied again.
    std::fs::write(
        env.dir.path().join("vs.yaml"),
        virtual_service(&BASIC.replace("subset: v1", "subset: v2")),
    )
    .expect("write");
    assert!(eventually(Duration::from_secs(5), || async {
        env.get("/status/200", &[]).await.2 == "v2"
    })
    .await
    .is_some());
    env.meshd.stop().await;
}
