//! Behaviour tests of the whole injection pipeline: every annotation's effect, layouts,
//! overrides, re-injection idempotence and the patch.

use serde_json::{json, Value};

use super::*;

fn injector(native: bool) -> Injector {
    Injector::new(&InjectorSettings {
        native: if native {
            NativeSidecars::Enabled
        } else {
            NativeSidecars::Disabled
        },
        ..Default::default()
    })
    .unwrap()
}

fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "labels": {"app": "web", "version": "v2"}, "annotations": annotations},
        "spec": {"containers": [{"name": "web", "image": "example/web:1", "ports": [{"name": "http", "containerPort": 8080}]}]}
    })
}

fn run(inj: &Injector, pod: Value) -> Value {
    match inj.inject(Request::webhook(pod, None)).unwrap() {
        Outcome::Injected(p) => p,
        Outcome::Skipped(r) => panic!("unexpectedly skipped: {r}"),
    }
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|l| pod["spec"][l].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn args(pod: &Value, name: &str) -> Vec<String> {
    container(pod, name)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn arg_after(pod: &Value, name: &str, flag: &str) -> Option<String> {
    let a = args(pod, name);
    a.iter()
        .position(|x| x == flag)
        .and_then(|i| a.get(i + 1).cloned())
}

fn env(pod: &Value, name: &str, var: &str) -> Option<String> {
    container(pod, name)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == var)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn classic_and_native_layouts() {
    let p = run(&injector(false), pod(json!({})));
    assert_eq!(names(&p, "initContainers"), ["istio-init"]);
    assert_eq!(names(&p, "containers"), ["web", "istio-proxy"]);
    assert!(container(&p, "istio-proxy").get("restartPolicy").is_none());
    let p = run(&injector(true), pod(json!({})));
    assert_eq!(names(&p, "initContainers"), ["istio-init", "istio-proxy"]);
    assert_eq!(names(&p, "containers"), ["web"]);
    assert_eq!(container(&p, "istio-proxy")["restartPolicy"], "Always");
    assert_eq!(
        container(&p, "istio-proxy")["lifecycle"]["preStop"]["exec"]["command"][4],
        "drain"
    );
    // The annotation overrides the flag both ways.
    let p = run(
        &injector(true),
        pod(json!({"sidecar.istio.io/nativeSidecar": "false"})),
    );
    assert_eq!(names(&p, "containers"), ["web", "istio-proxy"]);
    let p = run(
        &injector(false),
        pod(json!({"sidecar.istio.io/nativeSidecar": "true"})),
    );
    assert_eq!(names(&p, "initContainers"), ["istio-init", "istio-proxy"]);
}

#[test]
fn metadata_status_and_identity() {
    let p = run(&injector(false), pod(json!({})));
    let labels = &p["metadata"]["labels"];
    assert_eq!(labels["security.istio.io/tlsMode"], "istio");
    assert_eq!(labels["service.istio.io/canonical-name"], "web");
    assert_eq!(labels["service.istio.io/canonical-revision"], "v2");
    let a = &p["metadata"]["annotations"];
    assert_eq!(a["istio.io/rev"], "default");
    assert_eq!(a["kubectl.kubernetes.io/default-container"], "web");
    let status: Value =
        serde_json::from_str(a["sidecar.istio.io/status"].as_str().unwrap()).unwrap();
    assert_eq!(status["initContainers"], json!(["istio-init"]));
    assert_eq!(status["containers"], json!(["istio-proxy"]));
    assert_eq!(status["imagePullSecrets"], Value::Null);
    assert_eq!(
        env(&p, "istio-proxy", "ISTIO_META_OWNER").unwrap(),
        "kubernetes://apis/v1/namespaces/shop/pods/web-0"
    );
    assert_eq!(
        env(&p, "istio-proxy", "ISTIO_META_APP_CONTAINERS").unwrap(),
        "web"
    );
    let ports: Value =
        serde_json::from_str(&env(&p, "istio-proxy", "ISTIO_META_POD_PORTS").unwrap()).unwrap();
    assert_eq!(ports, json!([{"name": "http", "containerPort": 8080}]));
}

#[test]
fn traffic_annotations_shape_iptables_args() {
    let p = run(
        &injector(false),
        pod(json!({
            "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8",
            "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.1.0.0/16",
            "traffic.sidecar.istio.io/includeInboundPorts": "8080",
            "traffic.sidecar.istio.io/excludeInboundPorts": "9000",
            "traffic.sidecar.istio.io/includeOutboundPorts": "443",
            "traffic.sidecar.istio.io/excludeOutboundPorts": "5432",
            "traffic.sidecar.istio.io/kubevirtInterfaces": "net1",
            "traffic.sidecar.istio.io/excludeInterfaces": "eth9",
        })),
    );
    assert_eq!(arg_after(&p, "istio-init", "-i").unwrap(), "10.0.0.0/8");
    assert_eq!(arg_after(&p, "istio-init", "-x").unwrap(), "10.1.0.0/16");
    assert_eq!(arg_after(&p, "istio-init", "-b").unwrap(), "8080");
    assert_eq!(
        arg_after(&p, "istio-init", "-d").unwrap(),
        "15090,15021,9000,15020"
    );
    assert_eq!(arg_after(&p, "istio-init", "-q").unwrap(), "443");
    assert_eq!(arg_after(&p, "istio-init", "-o").unwrap(), "5432");
    assert_eq!(arg_after(&p, "istio-init", "-k").unwrap(), "net1");
    assert_eq!(arg_after(&p, "istio-init", "-c").unwrap(), "eth9");
    // The reroute annotation wins over kubevirtInterfaces.
    let p = run(
        &injector(false),
        pod(
            json!({"traffic.sidecar.istio.io/kubevirtInterfaces": "a", "istio.io/reroute-virtual-interfaces": "b"}),
        ),
    );
    assert_eq!(arg_after(&p, "istio-init", "-k").unwrap(), "b");
}

#[test]
fn interception_modes() {
    let p = run(
        &injector(false),
        pod(json!({"sidecar.istio.io/interceptionMode": "TPROXY"})),
    );
    let sc = &container(&p, "istio-proxy")["securityContext"];
    assert_eq!(sc["runAsUser"], 0);
    assert_eq!(sc["runAsNonRoot"], false);
    assert_eq!(sc["capabilities"]["add"], json!(["NET_ADMIN"]));
    assert_eq!(arg_after(&p, "istio-init", "-m").unwrap(), "TPROXY");
    assert_eq!(
        env(&p, "istio-proxy", "ISTIO_META_INTERCEPTION_MODE").unwrap(),
        "TPROXY"
    );
    let p = run(
        &injector(false),
        pod(json!({"sidecar.istio.io/interceptionMode": "NONE"})),
    );
    assert_eq!(names(&p, "initContainers"), Vec::<String>::new());
    let p = run(
        &injector(false),
        pod(json!({"sidecar.istio.io/capNetBindService": "true"})),
    );
    assert_eq!(
        container(&p, "istio-proxy")["securityContext"]["capabilities"]["add"],
        json!(["NET_BIND_SERVICE"])
    );
}

#[test]
fn status_port_and_readiness_annotations() {
    let p = run(
        &injector(true),
        pod(json!({
            "status.sidecar.istio.io/port": "15555",
            "readiness.status.sidecar.istio.io/initialDelaySeconds": "7",
            "readiness.status.sidecar.istio.io/periodSeconds": "9",
            "readiness.status.sidecar.istio.io/failureThreshold": "11",
        })),
    );
    assert_eq!(
        arg_after(&p, "istio-init", "-d").unwrap(),
        "15090,15021,15555"
    );
    let proxy = container(&p, "istio-proxy");
    assert_eq!(proxy["readinessProbe"]["initialDelaySeconds"], 7);
    assert_eq!(proxy["readinessProbe"]["periodSeconds"], 9);
    assert_eq!(proxy["readinessProbe"]["failureThreshold"], 11);
    assert_eq!(proxy["readinessProbe"]["httpGet"]["port"], 15021);
    assert_eq!(
        proxy["lifecycle"]["preStop"]["exec"]["command"][2],
        "--debug-port=15555"
    );
    let p = run(
        &injector(false),
        pod(json!({"status.sidecar.istio.io/port": "0"})),
    );
    let proxy = container(&p, "istio-proxy");
    assert!(proxy.get("readinessProbe").is_none() && proxy.get("startupProbe").is_none());
    assert_eq!(arg_after(&p, "istio-init", "-d").unwrap(), "15090,15021");
}

#[test]
fn resource_annotations_replace_values() {
    let p = run(
        &injector(false),
        pod(
            json!({"sidecar.istio.io/proxyCPU": "500m", "sidecar.istio.io/proxyMemoryLimit": "2048Mi"}),
        ),
    );
    for c in ["istio-proxy", "istio-init"] {
        assert_eq!(
            container(&p, c)["resources"],
            json!({"requests": {"cpu": "500m"}, "limits": {"memory": "2Gi"}})
        );
    }
    let p = run(&injector(false), pod(json!({})));
    assert_eq!(
        container(&p, "istio-proxy")["resources"]["limits"],
        json!({"cpu": "2", "memory": "1Gi"})
    );
}

#[test]
fn image_log_and_misc_annotations() {
    let p = run(
        &injector(false),
        pod(json!({
            "sidecar.istio.io/proxyImage": "registry.example/custom/proxy:7",
            "sidecar.istio.io/logLevel": "debug",
            "sidecar.istio.io/componentLogLevel": "upstream:trace",
            "sidecar.istio.io/agentLogLevel": "default:debug",
            "sidecar.istio.io/bootstrapOverride": "my-bootstrap",
            "sidecar.istio.io/userVolume": r#"{"extra":{"secret":{"secretName":"s"}}}"#,
            "sidecar.istio.io/userVolumeMount": r#"{"extra":{"mountPath":"/etc/extra","readOnly":true}}"#,
        })),
    );
    assert_eq!(
        container(&p, "istio-proxy")["image"],
        "registry.example/custom/proxy:7"
    );
    assert_eq!(
        container(&p, "istio-init")["image"],
        "registry.example/custom/proxy:7"
    );
    let a = args(&p, "istio-proxy");
    assert!(a.contains(&"--proxyLogLevel=debug".to_string()));
    assert!(a.contains(&"--proxyComponentLogLevel=upstream:trace".to_string()));
    assert!(a.contains(&"--log_output_level=default:debug".to_string()));
    assert!(args(&p, "istio-init").contains(&"--log_output_level=default:debug".to_string()));
    assert_eq!(
        env(&p, "istio-proxy", "ISTIO_BOOTSTRAP_OVERRIDE").unwrap(),
        "/etc/istio/custom-bootstrap/custom_bootstrap.json"
    );
    let vols = names(&p, "volumes");
    assert!(
        vols.contains(&"custom-bootstrap-volume".to_string())
            && vols.contains(&"extra".to_string())
    );
    let mounts = container(&p, "istio-proxy")["volumeMounts"]
        .as_array()
        .unwrap();
    assert!(mounts
        .iter()
        .any(|m| m["name"] == "extra" && m["mountPath"] == "/etc/extra"));
    let status: Value = serde_json::from_str(
        p["metadata"]["annotations"]["sidecar.istio.io/status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(status["volumes"]
        .as_array()
        .unwrap()
        .contains(&json!("extra")));
    let p = run(
        &injector(false),
        pod(json!({"sidecar.istio.io/proxyImageType": "distroless"})),
    );
    assert!(container(&p, "istio-proxy")["image"]
        .as_str()
        .unwrap()
        .ends_with("-distroless"));
}

#[test]
fn proxy_config_annotation() {
    let p = run(
        &injector(false),
        pod(
            json!({"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true\nproxyMetadata:\n  FOO: bar\n"}),
        ),
    );
    assert_eq!(names(&p, "containers"), ["istio-proxy", "web"]);
    assert_eq!(
        container(&p, "istio-proxy")["lifecycle"]["postStart"]["exec"]["command"],
        json!(["pilot-agent", "wait"])
    );
    assert_eq!(env(&p, "istio-proxy", "FOO").unwrap(), "bar");
    assert_eq!(env(&p, "istio-init", "FOO").unwrap(), "bar");
    let pc: Value = serde_json::from_str(&env(&p, "istio-proxy", "PROXY_CONFIG").unwrap()).unwrap();
    assert_eq!(
        pc,
        json!({"holdApplicationUntilProxyStarts": true, "proxyMetadata": {"FOO": "bar"}})
    );
}

#[test]
fn invalid_annotations_are_rejected_together() {
    let err = injector(false)
        .inject(Request::webhook(
            pod(json!({"traffic.sidecar.istio.io/includeInboundPorts": "abc", "sidecar.istio.io/proxyCPU": "lots"})),
            None,
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("includeInboundPorts") && err.contains("sidecar.istio.io/proxyCPU"),
        "{err}"
    );
}

#[test]
fn probes_are_rewritten_unless_disabled() {
    let mut p0 = pod(json!({}));
    p0["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"port": "http", "path": "/ready"}});
    let p = run(&injector(false), p0.clone());
    assert_eq!(
        p["spec"]["containers"][0]["readinessProbe"]["httpGet"],
        json!({"port": 15020, "path": "/app-health/web/readyz"})
    );
    let probers: Value =
        serde_json::from_str(&env(&p, "istio-proxy", "ISTIO_KUBE_APP_PROBERS").unwrap()).unwrap();
    assert_eq!(
        probers,
        json!({"/app-health/web/readyz": {"httpGet": {"port": 8080, "path": "/ready"}}})
    );
    p0["metadata"]["annotations"] = json!({"sidecar.istio.io/rewriteAppHTTPProbers": "false"});
    let p = run(&injector(false), p0);
    assert_eq!(
        p["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"],
        "http"
    );
    assert!(env(&p, "istio-proxy", "ISTIO_KUBE_APP_PROBERS").is_none());
}

#[test]
fn prometheus_merge() {
    let p = run(
        &injector(false),
        pod(json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9090"})),
    );
    let a = &p["metadata"]["annotations"];
    assert_eq!(a["prometheus.io/port"], "15020");
    let saved: Value =
        serde_json::from_str(&env(&p, "istio-proxy", "ISTIO_PROMETHEUS_ANNOTATIONS").unwrap())
            .unwrap();
    assert_eq!(saved, json!({"scrape": "true", "port": "9090"}));
    let p = run(
        &injector(false),
        pod(json!({"prometheus.istio.io/merge-metrics": "false"})),
    );
    assert!(p["metadata"]["annotations"]
        .get("prometheus.io/port")
        .is_none());
    assert!(injector(false)
        .inject(Request::webhook(
            pod(json!({"prometheus.io/port": "15090"})),
            None
        ))
        .is_err());
}

#[test]
fn user_overrides_win_and_are_recorded() {
    let mut p0 = pod(json!({}));
    p0["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "name": "istio-proxy", "image": "auto",
            "resources": {"limits": {"cpu": "3000m"}},
            "securityContext": {"runAsUser": 4242}
        }));
    let p = run(&injector(false), p0);
    let proxy = container(&p, "istio-proxy");
    assert_eq!(
        proxy["resources"]["limits"],
        json!({"cpu": "3", "memory": "1Gi"})
    );
    assert!(proxy["image"].as_str().unwrap().ends_with("proxyv2:1.28.0"));
    assert_eq!(arg_after(&p, "istio-init", "-u").unwrap(), "4242");
    let recorded: Value = serde_json::from_str(
        p["metadata"]["annotations"]["proxy.istio.io/overrides"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        recorded["containers"][0]["securityContext"]["runAsUser"],
        4242
    );
    assert!(recorded["containers"][0].get("image").is_none());
}

#[test]
fn reinjection_is_idempotent() {
    let mut cases = vec![
        pod(json!({})),
        pod(
            json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/m"}),
        ),
    ];
    let mut probes = pod(json!({"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true"}));
    probes["spec"]["containers"][0]["livenessProbe"] = json!({"tcpSocket": {"port": 8080}});
    cases.push(probes);
    let mut overridden = pod(json!({}));
    overridden["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "istio-proxy", "image": "auto", "tty": true}));
    cases.push(overridden);
    for native in [false, true] {
        let inj = injector(native);
        for c in &cases {
            let once = run(&inj, c.clone());
            let twice = run(&inj, once.clone());
            let patch = create_patch(&once, &twice);
            assert!(
                patch.0.is_empty(),
                "native={native}: re-injection changed the pod: {patch:?}"
            );
        }
    }
}

#[test]
fn patch_applies_to_the_original() {
    let original = pod(json!({}));
    let injected = run(&injector(false), original.clone());
    let patch = create_patch(&original, &injected);
    let mut applied = original.clone();
    json_patch::patch(&mut applied, &patch).unwrap();
    assert_eq!(applied, injected);
}

#[test]
fn path_envs_set_cluster_and_network() {
    let inj = injector(false);
    let mut req = Request::webhook(pod(json!({})), None);
    req.proxy_envs = [
        ("ISTIO_META_CLUSTER_ID".to_string(), "c1".to_string()),
        ("ISTIO_META_NETWORK".to_string(), "n1".to_string()),
    ]
    .into();
    let Outcome::Injected(p) = inj.inject(req).unwrap() else {
        panic!("skipped")
    };
    assert_eq!(
        env(&p, "istio-proxy", "ISTIO_META_CLUSTER_ID").unwrap(),
        "c1"
    );
    assert_eq!(env(&p, "istio-proxy", "ISTIO_META_NETWORK").unwrap(), "n1");
    assert_eq!(p["metadata"]["labels"]["topology.istio.io/network"], "n1");
}

#[test]
fn custom_templates_by_annotation() {
    let cfg = "templates:\n  extra: |\n    spec:\n      dnsPolicy: None\n";
    let inj = Injector::new(&InjectorSettings {
        injection_config_yaml: Some(cfg.into()),
        ..Default::default()
    })
    .unwrap();
    let p = run(
        &inj,
        pod(json!({"inject.istio.io/templates": "sidecar,extra"})),
    );
    assert_eq!(p["spec"]["dnsPolicy"], "None");
    assert_eq!(names(&p, "containers"), ["web", "istio-proxy"]);
    let err = inj
        .inject(Request::webhook(
            pod(json!({"inject.istio.io/templates": "missing"})),
            None,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("\"missing\" not found"), "{err}");
}

#[test]
fn skips_follow_policy() {
    let inj = injector(false);
    let mut p = pod(json!({"sidecar.istio.io/inject": "false"}));
    assert!(matches!(
        inj.inject(Request::webhook(p.clone(), None)).unwrap(),
        Outcome::Skipped(SkipReason::ExplicitlyDisabled)
    ));
    p["metadata"]["annotations"] = json!({});
    p["spec"]["hostNetwork"] = json!(true);
    assert!(matches!(
        inj.inject(Request::webhook(p, None)).unwrap(),
        Outcome::Skipped(SkipReason::HostNetwork)
    ));
}

#[test]
fn hostile_input_never_panics() {
    let inj = injector(true);
    let weird = [
        json!(null),
        json!([1, 2]),
        json!({"metadata": 5}),
        json!({"spec": "x"}),
        json!({"metadata": {"annotations": {"sidecar.istio.io/status": "{not json"}}, "spec": {"containers": 3}}),
        json!({"metadata": {"labels": {"app": 7}, "annotations": {"proxy.istio.io/overrides": "[]"}}, "spec": {"containers": [{"ports": "x"}, 5, {"name": 3}]}}),
        json!({"metadata": {"annotations": {"sidecar.istio.io/userVolume": "{\"v\":{\"emptyDir\":{}}}", "inject.istio.io/templates": ",,"}}, "spec": {"initContainers": [{"name": "istio-proxy", "env": 3}]}}),
    ];
    for w in weird {
        let _ = inj.inject(Request::webhook(w, Some("ns".into())));
    }
}

#[test]
fn built_in_templates_use_the_fast_yaml_path() {
    let inj = injector(true);
    let p = pod(
        json!({"sidecar.istio.io/userVolume": r#"{"x":{"emptyDir":{}}}"#, "prometheus.io/port": "9090"}),
    );
    let ctx_pod = p.clone();
    let annotations: std::collections::BTreeMap<String, String> =
        super::labels_of(&ctx_pod["metadata"], "annotations");
    let labels = super::labels_of(&ctx_pod["metadata"], "labels");
    let dm = meta::from_pod(&ctx_pod);
    let pc = crate::config::mesh::effective_proxy_config(&inj.mesh, None);
    for native in [false, true] {
        let ctx = inj
            .template_context(super::TemplateInputs {
                pod: &ctx_pod,
                annotations: &annotations,
                labels: &labels,
                deploy_meta: &dm,
                pc: &pc,
                status_port: 15020,
                interception_mode: "REDIRECT",
                native,
                hold: false,
            })
            .unwrap();
        for name in ["sidecar", "gateway", "grpc-agent", "grpc-simple"] {
            let mj = minijinja::context! { values => inj.values_ctx.clone(), mesh => inj.mesh_ctx.clone(), ..minijinja::Value::from_serialize(&ctx) };
            let text = inj.templates.render_text(name, &mj).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let first_bad =
                (1..=lines.len()).find(|k| fastyaml::parse(&lines[..*k].join("\n")).is_none());
            assert!(
                fastyaml::parse(&text).is_some(),
                "template {name} output left the fast subset near line {first_bad:?}: {:?}",
                first_bad.and_then(|k| lines.get(k - 1))
            );
        }
    }
}
