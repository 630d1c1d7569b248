//! End-to-end: VirtualService route actions through a real Envoy gateway (redirect, direct response,
//! rewrite, header operations, mirror, delay fault, timeout, CORS), HTTPS termination from files, and a
//! ServiceEntry backend.

mod common;

use common::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const RULES: &str = r#"  - match:
    - uri: {prefix: /redirect}
    redirect: {uri: /new, authority: other.example.com, redirectCode: 302}
  - match:
    - uri: {exact: /direct}
    directResponse: {status: 503, body: {string: maintenance}}
  - match:
    - uri: {prefix: /rewrite}
    rewrite: {uri: /status/201, authority: rewritten.example.com}
    route:
    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}
  - match:
    - uri: {prefix: /headers}
    headers:
      request: {set: {x-req-added: yes}, remove: [x-req-gone]}
      response: {set: {x-served-by: meshd}}
    route:
    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}
  - match:
    - uri: {prefix: /mirror}
    mirror: {host: httpbin.httpbin.svc.cluster.local, subset: v2}
    mirrorPercentage: {value: 100}
    route:
    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}
  - match:
    - uri: {prefix: /delayed}
    fault:
      delay: {fixedDelay: 400ms, percentage: {value: 100}}
    route:
    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}
  - match:
    - uri: {prefix: /sleep}
    timeout: 200ms
    retries: {attempts: 0}
    route:
    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}
  - match:
    - uri: {prefix: /cors}
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      maxAge: 24h
    route:
    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}
  - match:
    - method: {exact: POST}
      queryParams:
        debug: {exact: "1"}
    route:
    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v2}
  - route:
    - destination: {host: httpbin.httpbin.svc.cluster.local, subset: v1}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_actions_through_envoy() {
    let env = GatewayEnv::start(RULES, false, 0).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            env.get("/", &[]).await.0 == 200
        })
        .await
        .is_some(),
        "{}",
        env.envoy.log()
    );
    // redirect
    let (s, _, _, h) = env.get("/redirect/x", &[]).await;
    assert_eq!(s, 302);
    assert_eq!(
        h.get("location").and_then(|v| v.to_str().ok()),
        Some("http://other.example.com/new")
    );
    // direct response
    let (s, body, _, _) = env.get("/direct", &[]).await;
    assert_eq!((s, body.as_str()), (503, "maintenance"));
    // rewrite of path and authority
    let (s, _, up, h) = env.get("/rewrite", &[]).await;
    assert_eq!((s, up.as_str()), (201, "v1"));
    assert_eq!(
        h.get("x-seen-host").and_then(|v| v.to_str().ok()),
        Some("rewritten.example.com")
    );
    assert_eq!(
        h.get("x-seen-path").and_then(|v| v.to_str().ok()),
        Some("/status/201")
    );
    // header operations
    let (_, _, _, h) = env.get("/headers", &[("x-req-gone", "1")]).await;
    assert_eq!(
        h.get("x-served-by").and_then(|v| v.to_str().ok()),
        Some("meshd")
    );
    assert_eq!(
        h.get("x-got-x-req-added").and_then(|v| v.to_str().ok()),
        Some("yes")
    );
    assert!(h.get("x-got-x-req-gone").is_none());
    // mirror: v1 answers, v2 sees a copy
    let before = env.v2.hits.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(env.get("/mirror", &[]).await.2, "v1");
    }
    let mirrored = eventually(Duration::from_secs(3), || async {
        env.v2.hits.load(Ordering::SeqCst) >= before + 5
    })
    .await;
    assert!(mirrored.is_some(), "mirror did not reach v2");
    // delay fault
    let t = Instant::now();
    assert_eq!(env.get("/delayed", &[]).await.0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(390),
        "delay not applied: {:?}",
        t.elapsed()
    );
    // route timeout
    let t = Instant::now();
    let sl = env.get("/sleep/1000", &[]).await;
    if sl.0 != 504 {
        let dump = env.envoy.config_dump().await;
        let routes =
            meshd::xds::proxy_config::extract(&dump, meshd::xds::proxy_config::Section::Routes);
        let text = serde_json::to_string(&routes).unwrap_or_default();
        let i = text.find("/sleep").unwrap_or(0);
        panic!(
            "took {:?}: {}",
            t.elapsed(),
            &text[i.saturating_sub(50)..(i + 800).min(text.len())]
        );
    }
    assert_eq!(env.get("/sleep/10", &[]).await.0, 200);
    // CORS preflight
    let pre = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("http://127.0.0.1:{}/cors", env.port),
        )
        .header("host", "httpbin.example.com")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(
        pre.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );
    assert_eq!(
        pre.headers()
            .get("access-control-max-age")
            .and_then(|v| v.to_str().ok()),
        Some("86400")
    );
    // method + query parameter match
    let r = client()
        .post(format!("http://127.0.0.1:{}/x?debug=1", env.port))
        .header("host", "httpbin.example.com")
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.headers().get("x-upstream").and_then(|v| v.to_str().ok()),
        Some("v2")
    );
    assert_eq!(env.get("/x?debug=1", &[]).await.2, "v1");
    env.meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_gateway_terminates_tls_from_files() {
    let up = upstream("v1", 0).await;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let ck =
        rcgen::generate_simple_self_signed(vec!["httpbin.example.com".to_string()]).expect("cert");
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, ck.cert.pem()).expect("write");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write");
    std::fs::write(dir.path().join("service.yaml"), httpbin_service(&[&up])).expect("write");
    std::fs::write(
        dir.path().join("gateway.yaml"),
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: httpbin-gateway, namespace: httpbin}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {port}, name: https, protocol: HTTPS}}\n    hosts: [httpbin.example.com]\n    tls: {{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("vs.yaml"),
        virtual_service(
            "  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local}\n",
        ),
    )
    .expect("write");
    let meshd = Meshd::start(dir.path()).await;
    let envoy = Envoy::start(meshd.xds, ROUTER, &[("istio", "ingressgateway")]).await;
    let https = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).expect("ca"))
        .resolve(
            "httpbin.example.com",
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = format!("https://httpbin.example.com:{port}/status/200");
    let ok = eventually(Duration::from_secs(15), || async {
        matches!(https.get(&url).send().await, Ok(r) if r.status().as_u16() == 200)
    })
    .await;
    assert!(ok.is_some(), "no HTTPS 200; envoy log:\n{}", envoy.log());
    let r = https.get(&url).send().await.expect("get");
    assert_eq!(
        r.headers().get("x-upstream").and_then(|v| v.to_str().ok()),
        Some("v1")
    );
    meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_entry_backend_and_endpoint_change() {
    let a = upstream("a", 0).await;
    let b = upstream("b", 0).await;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let se = |u: &Upstream| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ext, namespace: httpbin}}\nspec:\n  hosts: [ext.internal]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints:\n  - address: 127.0.0.1\n    ports: {{http: {}}}\n",
            u.addr.port()
        )
    };
    std::fs::write(dir.path().join("se.yaml"), se(&a)).expect("write");
    std::fs::write(dir.path().join("gateway.yaml"), gateway(port, false)).expect("write");
    std::fs::write(
        dir.path().join("vs.yaml"),
        virtual_service(
            "  - route:\n    - destination: {host: ext.internal, port: {number: 80}}\n",
        ),
    )
    .expect("write");
    let meshd = Meshd::start(dir.path()).await;
    let envoy = Envoy::start(meshd.xds, ROUTER, &[("istio", "ingressgateway")]).await;
    let ok = eventually(Duration::from_secs(10), || async {
        get(port, "httpbin.example.com", "/", &[]).await.2 == "a"
    })
    .await;
    assert!(ok.is_some(), "{}", envoy.log());
    // Endpoint change: only EDS content changes; Envoy follows within a second.
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(dir.path().join("se.yaml"), se(&b)).expect("write");
    let moved = eventually(Duration::from_secs(3), || async {
        get(port, "httpbin.example.com", "/", &[]).await.2 == "b"
    })
    .await;
    assert!(
        moved.is_some_and(|d| d < Duration::from_secs(1)),
        "endpoint change took {moved:?}"
    );
    meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_gateway_server_proxies_to_virtual_service_tcp_route() {
    let v1 = upstream("v1", 0).await;
    let v2 = upstream("v2", 0).await;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("service.yaml"),
        httpbin_service(&[&v1, &v2]),
    )
    .expect("write");
    std::fs::write(dir.path().join("dr.yaml"), SUBSETS).expect("write");
    std::fs::write(
        dir.path().join("gateway.yaml"),
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: tcp-gateway, namespace: httpbin}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {port}, name: tcp, protocol: TCP}}\n    hosts: [\"*\"]\n"
        ),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("vs.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: tcp, namespace: httpbin}\nspec:\n  hosts: [\"*\"]\n  gateways: [tcp-gateway]\n  tcp:\n  - route:\n    - destination: {host: httpbin.httpbin.svc.cluster.local, port: {number: 8000}, subset: v2}\n",
    )
    .expect("write");
    let meshd = Meshd::start(dir.path()).await;
    let envoy = Envoy::start(meshd.xds, ROUTER, &[("istio", "ingressgateway")]).await;
    let ok = eventually(Duration::from_secs(10), || async {
        get(port, "anything", "/", &[]).await.2 == "v2"
    })
    .await;
    assert!(ok.is_some(), "{}", envoy.log());
    meshd.stop().await;
}
