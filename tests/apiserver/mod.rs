//! **A kube-apiserver stand-in for tests — a test double, not an API server.**
//!
//! No real kube-apiserver can be installed on the build machines, so the kubectl end-to-end tests
//! talk to this in-memory, plain-HTTP server instead. It implements just enough of the Kubernetes
//! REST API for the real `kubectl` (v1.32) to run `apply` (client-side and `--server-side`, with
//! or without `--dry-run=server`), `create`, `get -o json`, `get --watch`, `patch` and `delete`,
//! and it reproduces the part of kube-apiserver that matters to meshd: the dynamic admission
//! chain driven by the Mutating/ValidatingWebhookConfigurations stored in it. Being a test double,
//! it is only as faithful as the behaviour listed here; where it simplifies, it says so.
//!
//! What it serves:
//! - `/version`; discovery: aggregated (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList` from
//!   `/api` and `/apis`, which kubectl 1.32 asks for first) and legacy (`/api`, `/api/v1`, `/apis`,
//!   `/apis/<g>`, `/apis/<g>/<v>`, which kubectl falls back to when the answer is plain
//!   `application/json`; [`ApiServer::set_aggregated_discovery`] forces that path).
//!   `/openapi/v3` and `/openapi/v3/<gv>` list only each resource's PATCH operation with its
//!   `x-kubernetes-group-version-kind` and the `fieldValidation` parameter:
//!   that is all kubectl's default `--validate=strict` looks for before leaving validation to the
//!   server (it then sends `fieldValidation=Strict`). There are no schemas: the stand-in accepts
//!   `fieldValidation` and validates no fields (unknown or duplicate fields are NOT rejected as a
//!   real apiserver would for built-in kinds and CRDs with schemas). `/openapi/v2` is 404; kubectl
//!   then computes apply patches from its built-in types (strategic merge) or as JSON merge
//!   patches (Istio kinds).
//! - Resources (every one goes through admission; no controller acts on any, so a Deployment
//!   makes no pods and a CRD adds no resource): core v1 namespaces, pods, services, configmaps,
//!   serviceaccounts, endpoints; admissionregistration.k8s.io/v1 mutatingwebhookconfigurations,
//!   validatingwebhookconfigurations; apps/v1 deployments; rbac.authorization.k8s.io/v1
//!   (cluster)roles and (cluster)rolebindings; policy/v1 poddisruptionbudgets;
//!   discovery.k8s.io/v1 endpointslices; apiextensions.k8s.io/v1 customresourcedefinitions;
//!   networking.istio.io (v1, v1beta1, v1alpha3: virtualservices, destinationrules, gateways,
//!   serviceentries, sidecars, workloadentries) and security.istio.io (v1, v1beta1:
//!   peerauthentications, authorizationpolicies, requestauthentications). All versions of a
//!   group share one storage (the Istio versions have the same schema); objects are
//!   returned with the `apiVersion` of the request.
//! - Verbs: create (POST), get, list (with `labelSelector` and `fieldSelector=metadata.name=…`),
//!   update (PUT, with resourceVersion conflict checks), patch (PATCH: JSON patch, JSON merge
//!   patch, and a simplified strategic merge patch: maps merge, lists of objects merge by the
//!   usual key — `name`, `containerPort`/`port`, `mountPath` — the `$patch`,
//!   `$setElementOrder/…`, `$deleteFromPrimitiveList/…` and `$retainKeys` directives are honoured;
//!   other lists are replaced; and a simplified server-side apply, `application/apply-patch+yaml`:
//!   create if missing, else merge, without managedFields or conflict detection) and delete
//!   (immediate; deleting a namespace deletes its objects).
//!   `?dryRun=All` runs everything (including admission, with `request.dryRun: true`) but stores
//!   nothing. `?watch=true` streams `ADDED`/`MODIFIED`/`DELETED` events (initial state first
//!   without a resourceVersion, else the changes after it; no bookmarks, no 410 Gone: all history
//!   is kept). Not supported: subresources (`/status`, `/scale`, …), protobuf, pagination
//!   (`limit` is ignored, everything comes in one page), field validation, authentication and
//!   authorization (every request is `kubernetes-admin`), finalizers and graceful deletion,
//!   defaulting of pod fields, controllers, garbage collection (except a namespace's objects).
//! - `metadata.name` from `generateName` (after mutating admission and before validating
//!   admission, as kube-apiserver does, so the injector sees an empty name), `uid`,
//!   `resourceVersion`, `creationTimestamp`; namespaces get the `kubernetes.io/metadata.name`
//!   label; `default`, `kube-system`, `kube-public` and `kube-node-lease` exist from the start.
//!   Creating in a missing namespace fails like the NamespaceLifecycle plugin.
//!
//! The admission chain (mutating webhooks, then validating webhooks, per kube-apiserver's
//! `admission/plugin/webhook`):
//! - configurations are taken in name order, webhooks in list order; a webhook is called when a
//!   rule matches (`operations`, `apiGroups`, `apiVersions`, `resources` incl. `*` and `*/*`,
//!   `scope`), the `namespaceSelector` matches the namespace's labels (for Namespace objects, the
//!   object's own labels; other cluster-scoped objects always match), and the `objectSelector`
//!   matches the labels of the object or of the old object. `matchPolicy: Equivalent` (the
//!   default) lets a rule for another version of the same group/resource match; the webhook then
//!   sees that version. `matchConditions` (CEL) are not evaluated: a webhook carrying them fails the
//!   request with an explicit "not supported by the test stand-in" error rather than be skipped.
//! - the call is a real HTTPS POST of an `admission.k8s.io/v1` (or `v1beta1`, per
//!   `admissionReviewVersions`) AdmissionReview over HTTP/1.1, verified with the webhook's
//!   `caBundle` only. `clientConfig.url` is used as given; `clientConfig.service` is resolved to the
//!   local address registered with [`ApiServer::register_service`] while the TLS name stays
//!   `<service>.<namespace>.svc` (so the serving certificate's SANs are checked as a cluster
//!   would). `?timeout=<n>s` is appended and `timeoutSeconds` (default 10) bounds the call.
//! - mutating responses' base64 `JSONPatch` is applied; `reinvocationPolicy: IfNeeded` webhooks
//!   are called once more when a later webhook changed the object.
//! - a denial becomes HTTP 4xx with a `Status` whose message is
//!   `admission webhook "<name>" denied the request: <message>` (kube-apiserver's `ToStatusErr`:
//!   code below 400 → 400, reason kept as sent); `response.warnings` become
//!   `Warning: 299 - "<text>"` headers; a failed call with `failurePolicy: Fail` (the default) is
//!   a 500 `InternalError`: `Internal error occurred: failed calling webhook "<name>": failed to
//!   call webhook: Post "<url>": <error>`, where the error mimics Go's wording for a refused
//!   connection, a timeout (`context deadline exceeded`) and an untrusted certificate
//!   (`x509: certificate signed by unknown authority`, the rustls error in brackets), and is the
//!   Rust error text otherwise;
//!   with `Ignore` the failure is logged ("failing open") and the request continues.
//! - dry-run requests to a webhook whose `sideEffects` is not `None`/`NoneOnDryRun` are rejected
//!   (`admission webhook "<name>" does not support dry run`).
//!
//! For tests: [`ApiServer::start`] (own thread and runtime, so tests may block on kubectl; stops
//! on drop), [`ApiServer::write_kubeconfig`], [`ApiServer::register_service`],
//! [`ApiServer::get`]/[`ApiServer::list`] (the store, bypassing HTTP), [`ApiServer::webhook_calls`]
//! (which webhook saw what, with the outcome) and [`ApiServer::log`] (requests and admission
//! notes, for failure messages).
//!
//! Every webhook call is recorded ([`ApiServer::webhook_calls`]) so tests can assert which
//! webhooks a request reached.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Map, Value};

/// One kind of object the stand-in stores.
#[derive(Debug, Clone, Copy)]
pub struct ResourceType {
    pub group: &'static str,
    pub versions: &'static [&'static str],
    pub resource: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

const ISTIO_NET: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const ISTIO_SEC: &[&str] = &["v1", "v1beta1"];
const ADMREG: &str = "admissionregistration.k8s.io";

const fn rt(
    group: &'static str,
    versions: &'static [&'static str],
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group,
        versions,
        resource,
        kind,
        namespaced,
        short_names,
    }
}

/// Everything the stand-in knows about.
pub const RESOURCES: &[ResourceType] = &[
    rt("", &["v1"], "namespaces", "Namespace", false, &["ns"]),
    rt("", &["v1"], "pods", "Pod", true, &["po"]),
    rt("", &["v1"], "nodes", "Node", false, &["no"]),
    rt("", &["v1"], "services", "Service", true, &["svc"]),
    rt("", &["v1"], "configmaps", "ConfigMap", true, &["cm"]),
    rt(
        "",
        &["v1"],
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
    ),
    rt("", &["v1"], "endpoints", "Endpoints", true, &["ep"]),
    rt(
        "discovery.k8s.io",
        &["v1"],
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
    ),
    rt(
        "apps",
        &["v1"],
        "deployments",
        "Deployment",
        true,
        &["deploy"],
    ),
    rt(
        "rbac.authorization.k8s.io",
        &["v1"],
        "clusterroles",
        "ClusterRole",
        false,
        &[],
    ),
    rt(
        "rbac.authorization.k8s.io",
        &["v1"],
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
    ),
    rt(
        "rbac.authorization.k8s.io",
        &["v1"],
        "roles",
        "Role",
        true,
        &[],
    ),
    rt(
        "rbac.authorization.k8s.io",
        &["v1"],
        "rolebindings",
        "RoleBinding",
        true,
        &[],
    ),
    rt(
        "policy",
        &["v1"],
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
    ),
    rt(
        "apiextensions.k8s.io",
        &["v1"],
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    ),
    rt(
        ADMREG,
        &["v1"],
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        &[],
    ),
    rt(
        ADMREG,
        &["v1"],
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        &[],
    ),
    rt(
        "networking.istio.io",
        ISTIO_NET,
        "virtualservices",
        "VirtualService",
        true,
        &["vs"],
    ),
    rt(
        "networking.istio.io",
        ISTIO_NET,
        "destinationrules",
        "DestinationRule",
        true,
        &["dr"],
    ),
    rt(
        "networking.istio.io",
        ISTIO_NET,
        "gateways",
        "Gateway",
        true,
        &["gw"],
    ),
    rt(
        "networking.istio.io",
        ISTIO_NET,
        "serviceentries",
        "ServiceEntry",
        true,
        &["se"],
    ),
    rt(
        "networking.istio.io",
        ISTIO_NET,
        "sidecars",
        "Sidecar",
        true,
        &[],
    ),
    rt(
        "networking.istio.io",
        ISTIO_NET,
        "workloadentries",
        "WorkloadEntry",
        true,
        &["we"],
    ),
    rt(
        "security.istio.io",
        ISTIO_SEC,
        "peerauthentications",
        "PeerAuthentication",
        true,
        &["pa"],
    ),
    rt(
        "security.istio.io",
        ISTIO_SEC,
        "authorizationpolicies",
        "AuthorizationPolicy",
        true,
        &["ap"],
    ),
    rt(
        "security.istio.io",
        ISTIO_SEC,
        "requestauthentications",
        "RequestAuthentication",
        true,
        &["ra"],
    ),
];

fn find_resource(group: &str, version: &str, resource: &str) -> Option<ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == resource && r.versions.contains(&version))
        .copied()
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `pods` or `virtualservices.networking.istio.io`, as kube-apiserver names resources in errors.
fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.resource.to_string()
    } else {
        format!("{}.{}", rt.resource, rt.group)
    }
}

/// One call the admission chain made to a webhook.
#[derive(Debug, Clone)]
pub struct WebhookCall {
    /// The Mutating/ValidatingWebhookConfiguration the webhook belongs to.
    pub configuration: String,
    pub webhook: String,
    pub mutating: bool,
    pub operation: String,
    pub resource: String,
    /// The API version the webhook saw (`request.kind.version`; differs from the request's
    /// under `matchPolicy: Equivalent`).
    pub version: String,
    pub namespace: String,
    /// `request.name` as sent (empty for a generateName create before naming).
    pub name: String,
    pub dry_run: bool,
    /// `allowed`, `denied: …`, `patched`, `error: …` (call failed), or `not called: no dry-run
    /// support` (a dry run matched a webhook with side effects; nothing was sent).
    pub outcome: String,
}

type Key = (String, String, String, String); // group, resource, namespace, name

#[derive(Default)]
struct Store {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    /// Every change, in resourceVersion order, for watches (kept for the server's lifetime).
    events: Vec<Event>,
}

/// One change: `ADDED`, `MODIFIED` or `DELETED`, with the object as stored after it.
#[derive(Clone)]
struct Event {
    rv: u64,
    kind: &'static str,
    key: Key,
    object: Value,
}

struct Shared {
    store: Mutex<Store>,
    services: Mutex<HashMap<String, SocketAddr>>,
    calls: Mutex<Vec<WebhookCall>>,
    log: Mutex<Vec<String>>,
    counter: AtomicU64,
    /// Answer aggregated discovery when asked (else only the legacy lists).
    aggregated_discovery: std::sync::atomic::AtomicBool,
    /// Wakes watches when `events` grows.
    changed: tokio::sync::Notify,
    /// Set on shutdown so open watches end.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    fn random_u64(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.finish()
    }

    fn uid(&self) -> String {
        let a = self.random_u64();
        let b = self.random_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// Five characters like kube's `SimpleNameGenerator`.
    fn name_suffix(&self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut r = self.random_u64();
        (0..5)
            .map(|_| {
                let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
                r /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

/// The running stand-in. Runs on its own thread and tokio runtime, so tests may block (e.g. on
/// a kubectl child process) while it serves. Stops on drop.
pub struct ApiServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Starts on a free loopback port (plain HTTP).
    pub fn start() -> ApiServer {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            services: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            counter: AtomicU64::new(1),
            aggregated_discovery: std::sync::atomic::AtomicBool::new(true),
            changed: tokio::sync::Notify::new(),
            closing: tokio::sync::watch::Sender::new(false),
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let mut obj =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            finish_create(&shared, &RESOURCES[0], &mut obj);
            let mut st = shared.store.lock().unwrap();
            st.resource_version += 1;
            obj["metadata"]["resourceVersion"] = json!(st.resource_version.to_string());
            st.objects
                .insert(("".into(), "namespaces".into(), "".into(), ns.into()), obj);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        ApiServer {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Whether `/api` and `/apis` answer aggregated discovery (`apidiscovery.k8s.io/v2`) when
    /// the client asks for it (the default, as kube-apiserver 1.30+); `false` leaves only the
    /// legacy lists, which kubectl falls back to.
    pub fn set_aggregated_discovery(&self, on: bool) {
        self.shared
            .aggregated_discovery
            .store(on, Ordering::Relaxed);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes `clientConfig.service {name, namespace, port}` reach `local` (the TLS server name
    /// stays `<name>.<namespace>.svc`).
    pub fn register_service(&self, name: &str, namespace: &str, port: u16, local: SocketAddr) {
        self.shared
            .services
            .lock()
            .unwrap()
            .insert(format!("{name}.{namespace}.svc:{port}"), local);
    }

    /// Writes a kubeconfig for this server into `dir` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let p = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: admin\n    namespace: default\nusers:\n- name: admin\n  user: {{}}\ncurrent-context: standin\n",
            self.url()
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The stored object, as stored (version-agnostic).
    pub fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .store
            .lock()
            .unwrap()
            .objects
            .get(&(group.into(), resource.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// All stored objects of a resource in a namespace (`""` for all or cluster-scoped).
    pub fn list(&self, group: &str, resource: &str, namespace: &str) -> Vec<Value> {
        self.shared
            .store
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((g, r, ns, _), _)| {
                g == group && r == resource && (namespace.is_empty() || ns == namespace)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every webhook call made so far.
    pub fn webhook_calls(&self) -> Vec<WebhookCall> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Forgets the recorded webhook calls.
    pub fn clear_webhook_calls(&self) {
        self.shared.calls.lock().unwrap().clear();
    }

    /// The request log (`METHOD path?query -> status`) and admission notes, for failure messages.
    pub fn log(&self) -> String {
        self.shared.log.lock().unwrap().join("\n")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.closing.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

/// An API error: a `Status` plus any admission warnings collected before it.
struct ApiError {
    code: u16,
    reason: String,
    message: String,
    details: Option<Box<Value>>,
    warnings: Vec<String>,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
            warnings: Vec::new(),
        }
    }

    fn not_found(rt: &ResourceType, name: &str) -> Self {
        let mut e = Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(rt)),
        );
        e.details = Some(Box::new(
            json!({"name": name, "group": rt.group, "kind": rt.resource}),
        ));
        e
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "code": self.code,
        });
        if !self.reason.is_empty() {
            s["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            s["details"] = (**d).clone();
        }
        s
    }
}

/// `Warning: 299 - "<text>"`, quoting as RFC 7234 / k8s.io/apiserver/pkg/warning do.
fn warning_header(text: &str) -> Option<HeaderValue> {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    HeaderValue::from_str(&format!("299 - \"{escaped}\"")).ok()
}

fn respond(code: u16, body: &Value, warnings: &[String]) -> Response {
    let mut resp = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    for w in warnings {
        if let Some(h) = warning_header(w) {
            resp.headers_mut().append("warning", h);
        }
    }
    resp
}

fn error_response(e: ApiError) -> Response {
    respond(e.code, &e.status(), &e.warnings)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let resp = route(&s, &method, &uri, &headers, body).await;
    s.note(format!("{method} {uri} -> {}", resp.status().as_u16()));
    resp
}

async fn route(
    s: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let segs: Vec<&str> = uri.path().split('/').filter(|p| !p.is_empty()).collect();
    let query = parse_query(uri);
    if method == Method::GET {
        match segs.as_slice() {
            ["version"] => {
                return respond(
                    200,
                    &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-meshd-test-standin",
                        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
                        "platform": "linux/amd64"}),
                    &[],
                )
            }
            ["api"] | ["apis"]
                if s.aggregated_discovery.load(Ordering::Relaxed)
                    && wants_aggregated_discovery(headers) =>
            {
                let mut resp = respond(200, &aggregated_discovery(segs[0] == "api"), &[]);
                resp.headers_mut()
                    .insert("content-type", HeaderValue::from_static(AGGREGATED_CT));
                return resp;
            }
            ["api"] => {
                return respond(
                    200,
                    &json!({"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
                    &[],
                )
            }
            ["apis"] => {
                let groups: Vec<Value> = api_groups().iter().map(group_json).collect();
                return respond(
                    200,
                    &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                    &[],
                );
            }
            ["apis", g] => {
                return match api_groups().iter().find(|(n, _)| n == g) {
                    Some(grp) => {
                        let mut v = group_json(grp);
                        v["kind"] = json!("APIGroup");
                        v["apiVersion"] = json!("v1");
                        respond(200, &v, &[])
                    }
                    None => error_response(ApiError::new(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    )),
                }
            }
            ["api", "v1"] => return respond(200, &resource_list("", "v1"), &[]),
            ["openapi", "v3"] => return respond(200, &openapi_v3_index(), &[]),
            ["openapi", "v3", "api", "v1"] => return respond(200, &openapi_v3_doc("", "v1"), &[]),
            ["openapi", "v3", "apis", g, v]
                if RESOURCES
                    .iter()
                    .any(|r| r.group == *g && r.versions.contains(v)) =>
            {
                return respond(200, &openapi_v3_doc(g, v), &[]);
            }
            ["apis", g, v] => {
                if RESOURCES
                    .iter()
                    .any(|r| r.group == *g && r.versions.contains(v))
                {
                    return respond(200, &resource_list(g, v), &[]);
                }
                return error_response(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            _ => {}
        }
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", "v1", rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => {
            return error_response(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ))
        }
    };
    let (namespace, resource, name, sub) = if rest[0] == "namespaces" && rest.len() >= 3 {
        (
            Some(rest[1]),
            rest[2],
            rest.get(3).copied(),
            rest.get(4).copied(),
        )
    } else {
        (None, rest[0], rest.get(1).copied(), rest.get(2).copied())
    };
    let Some(rt) = find_resource(group, version, resource) else {
        return error_response(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if sub.is_some() {
        return error_response(ApiError::new(
            404,
            "NotFound",
            "subresources are not supported by the test stand-in",
        ));
    }
    if namespace.is_some() && !rt.namespaced {
        return error_response(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let ns = namespace.unwrap_or("");
    let req = Req {
        rt,
        version: version.to_string(),
        namespace: ns.to_string(),
        dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
    };
    let result = match (method.clone(), name) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return watch(s, req, &query);
        }
        (Method::GET, None) => Ok((200, list(s, &req, &query), Vec::new())),
        (Method::GET, Some(n)) => get(s, &req, n).map(|o| (200, o, Vec::new())),
        (Method::POST, None) => {
            if rt.namespaced && ns.is_empty() {
                Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ))
            } else {
                create(s, &req, &body).await
            }
        }
        (Method::PUT, Some(n)) => update(s, &req, n, &body).await,
        (Method::PATCH, Some(n)) => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            patch(s, &req, n, &ct, &body).await
        }
        (Method::DELETE, Some(n)) => delete(s, &req, n).await,
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported here"),
        )),
    };
    match result {
        Ok((code, obj, warnings)) => respond(code, &obj, &warnings),
        Err(e) => error_response(e),
    }
}

fn api_groups() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.iter().any(|(g, _)| g == r.group) {
            out.push((
                r.group.to_string(),
                r.versions.iter().map(|v| v.to_string()).collect(),
            ));
        }
    }
    out
}

fn group_json((name, versions): &(String, Vec<String>)) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
}

const AGGREGATED_CT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn wants_aggregated_discovery(headers: &HeaderMap) -> bool {
    headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|a| {
            a.split(',').any(|m| {
                let params: Vec<&str> = m.split(';').map(str::trim).collect();
                params.contains(&"g=apidiscovery.k8s.io")
                    && params.contains(&"v=v2")
                    && params.contains(&"as=APIGroupDiscoveryList")
            })
        })
}

/// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList` for `/api` (core) or `/apis` (the rest).
fn aggregated_discovery(core: bool) -> Value {
    let groups: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        api_groups()
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = RESOURCES
                        .iter()
                        .filter(|r| r.group == g && r.versions.contains(&v.as_str()))
                        .map(|r| {
                            json!({"resource": r.resource,
                                "responseKind": {"group": r.group, "version": v, "kind": r.kind},
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.kind.to_lowercase(),
                                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                                "shortNames": r.short_names})
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {}, "items": items})
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for r in RESOURCES {
        for v in r.versions {
            if !out.contains(&(r.group, *v)) {
                out.push((r.group, *v));
            }
        }
    }
    out
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index kubectl reads before asking a group-version's document.
fn openapi_v3_index() -> Value {
    let paths: Map<String, Value> = group_versions()
        .into_iter()
        .map(|(g, v)| {
            let p = gv_path(g, v);
            (
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=meshd-test-standin")}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

/// `/openapi/v3/<gv>`: only the PATCH operations, each declaring its GVK and the
/// `fieldValidation` query parameter. That is what kubectl's `--validate` (strict by default)
/// checks to leave validation to the server; no schemas are served, and the stand-in accepts
/// `fieldValidation` without validating fields.
fn openapi_v3_doc(group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.versions.contains(&version))
    {
        let base = gv_path(group, version);
        let path = if r.namespaced {
            format!("/{base}/namespaces/{{namespace}}/{}/{{name}}", r.resource)
        } else {
            format!("/{base}/{}/{{name}}", r.resource)
        };
        let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        paths.insert(
            path,
            json!({"patch": {
                "operationId": format!("patch{}", r.kind),
                "parameters": [param("dryRun"), param("fieldManager"), param("fieldValidation"), param("force")],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
            }}),
        );
    }
    json!({"openapi": "3.0.0",
        "info": {"title": "Kubernetes (meshd test stand-in)", "version": "v1.32.0"},
        "paths": paths, "components": {"schemas": {}}})
}

fn resource_list(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.versions.contains(&version))
        .map(|r| {
            json!({"name": r.resource, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "shortNames": r.short_names})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": api_version(group, version), "resources": resources})
}

// ---------------------------------------------------------------------------------------------
// Verbs

struct Req {
    rt: ResourceType,
    version: String,
    namespace: String,
    dry_run: bool,
}

impl Req {
    fn key(&self, name: &str) -> Key {
        (
            self.rt.group.into(),
            self.rt.resource.into(),
            if self.rt.namespaced {
                self.namespace.clone()
            } else {
                String::new()
            },
            name.into(),
        )
    }

    fn api_version(&self) -> String {
        api_version(self.rt.group, &self.version)
    }
}

type VerbResult = Result<(u16, Value, Vec<String>), ApiError>;

fn with_version(mut obj: Value, req: &Req) -> Value {
    obj["apiVersion"] = json!(req.api_version());
    obj["kind"] = json!(req.rt.kind);
    obj
}

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn labels_of(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.as_object())
        .cloned()
        .unwrap_or_default()
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_string()
}

fn list(s: &Shared, req: &Req, query: &HashMap<String, String>) -> Value {
    let st = s.store.lock().unwrap();
    let label_sel = query.get("labelSelector").map(|q| parse_selector_string(q));
    let name_sel = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name=").map(str::to_string));
    let items: Vec<Value> = st
        .objects
        .iter()
        .filter(|((g, r, ns, n), _)| {
            g == req.rt.group
                && r == req.rt.resource
                && (req.namespace.is_empty() || *ns == req.namespace)
                && name_sel.as_ref().is_none_or(|want| want == n)
        })
        .filter(|(_, o)| {
            label_sel
                .as_ref()
                .is_none_or(|sel| selector_matches(sel, &labels_of(o)).unwrap_or(false))
        })
        .map(|(_, o)| with_version(o.clone(), req))
        .collect();
    json!({"kind": format!("{}List", req.rt.kind), "apiVersion": req.api_version(),
        "metadata": {"resourceVersion": st.resource_version.to_string()}, "items": items})
}

/// The body of a watch: newline-delimited JSON events from a channel.
struct WatchBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for WatchBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// `?watch=true`: without `resourceVersion` (or with `0`) the current objects come first as
/// `ADDED`, then changes; with a resourceVersion, the changes after it. Filters as for list.
/// Ends after `timeoutSeconds` (default 300), when the client goes away, or on shutdown.
fn watch(s: &Arc<Shared>, req: Req, query: &HashMap<String, String>) -> Response {
    let label_sel = query.get("labelSelector").map(|q| parse_selector_string(q));
    let name_sel = query
        .get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name=").map(str::to_string));
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(300u64);
    let from: Option<u64> = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .filter(|v| *v != 0);
    let api_version = req.api_version();
    let kind = req.rt.kind;
    let selects = move |key: &Key, obj: &Value| {
        key.0 == req.rt.group
            && key.1 == req.rt.resource
            && (req.namespace.is_empty() || key.2 == req.namespace)
            && name_sel.as_ref().is_none_or(|n| *n == key.3)
            && label_sel
                .as_ref()
                .is_none_or(|sel| selector_matches(sel, &labels_of(obj)).unwrap_or(false))
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let s = s.clone();
    let line = move |typ: &str, obj: &Value| {
        let mut o = obj.clone();
        o["apiVersion"] = json!(api_version);
        o["kind"] = json!(kind);
        Bytes::from(format!("{}\n", json!({"type": typ, "object": o})))
    };
    tokio::spawn(async move {
        let mut closing = s.closing.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut seen = match from {
            Some(rv) => rv,
            None => {
                let (initial, rv) = {
                    let st = s.store.lock().unwrap();
                    let initial: Vec<Value> = st
                        .objects
                        .iter()
                        .filter(|(k, o)| selects(k, o))
                        .map(|(_, o)| o.clone())
                        .collect();
                    (initial, st.resource_version)
                };
                for o in initial {
                    if tx.send(line("ADDED", &o)).await.is_err() {
                        return;
                    }
                }
                rv
            }
        };
        loop {
            let notified = s.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let batch: Vec<Event> = {
                let st = s.store.lock().unwrap();
                st.events.iter().filter(|e| e.rv > seen).cloned().collect()
            };
            for e in batch {
                seen = e.rv;
                if selects(&e.key, &e.object) && tx.send(line(e.kind, &e.object)).await.is_err() {
                    return;
                }
            }
            if *closing.borrow() {
                return;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = closing.changed() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    let mut resp = Response::new(axum::body::Body::new(WatchBody(rx)));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

fn get(s: &Shared, req: &Req, name: &str) -> Result<Value, ApiError> {
    let st = s.store.lock().unwrap();
    st.objects
        .get(&req.key(name))
        .map(|o| with_version(o.clone(), req))
        .ok_or_else(|| ApiError::not_found(&req.rt, name))
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request was in an unknown format: {e}"
        ))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not an object",
        ));
    }
    Ok(v)
}

fn check_kind(req: &Req, obj: &Value) -> Result<(), ApiError> {
    let kind = obj.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    let av = obj.get("apiVersion").and_then(|k| k.as_str()).unwrap_or("");
    if kind != req.rt.kind || av != req.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({}) or kind {kind:?} is not {:?}",
            req.api_version(),
            req.rt.kind
        )));
    }
    Ok(())
}

fn set_namespace(req: &Req, obj: &mut Value) -> Result<(), ApiError> {
    if !req.rt.namespaced {
        return Ok(());
    }
    let meta = obj
        .as_object_mut()
        .unwrap()
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if let Some(ns) = meta.get("namespace").and_then(|n| n.as_str()) {
        if !ns.is_empty() && ns != req.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    meta["namespace"] = json!(req.namespace);
    Ok(())
}

fn namespace_labels(s: &Shared, ns: &str) -> Option<Map<String, Value>> {
    s.store
        .lock()
        .unwrap()
        .objects
        .get(&("".into(), "namespaces".into(), "".into(), ns.into()))
        .map(labels_of)
}

/// What kube-apiserver's `BeforeCreate` and the namespace strategy add.
fn finish_create(s: &Shared, rt: &ResourceType, obj: &mut Value) {
    let meta = obj
        .as_object_mut()
        .unwrap()
        .entry("metadata")
        .or_insert_with(|| json!({}));
    let name = meta
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_string();
    let generate = meta
        .get("generateName")
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_string();
    if name.is_empty() && !generate.is_empty() {
        meta["name"] = json!(format!("{generate}{}", s.name_suffix()));
    }
    meta["uid"] = json!(s.uid());
    meta["creationTimestamp"] = json!(now());
    if let Some(m) = meta.as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    if rt.resource == "namespaces" {
        let name = name_of(obj);
        let labels = obj["metadata"]
            .as_object_mut()
            .unwrap()
            .entry("labels")
            .or_insert_with(|| json!({}));
        labels["kubernetes.io/metadata.name"] = json!(name);
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
    }
    if rt.resource == "pods" && obj.get("status").is_none() {
        obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    }
}

fn require_name(req: &Req, obj: &Value) -> Result<(), ApiError> {
    let name = name_of(obj);
    if name.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                req.rt.kind
            ),
        ));
    }
    let dns = |n: &str| {
        !n.is_empty()
            && n.len() <= 253
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && n.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    if !dns(&name) {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                req.rt.kind
            ),
        ));
    }
    Ok(())
}

fn require_namespace(s: &Shared, req: &Req) -> Result<(), ApiError> {
    if req.rt.namespaced && namespace_labels(s, &req.namespace).is_none() {
        let mut e = ApiError::new(
            404,
            "NotFound",
            format!("namespaces \"{}\" not found", req.namespace),
        );
        e.details = Some(Box::new(
            json!({"name": req.namespace, "kind": "namespaces"}),
        ));
        return Err(e);
    }
    Ok(())
}

fn store(s: &Shared, req: &Req, obj: &mut Value, create: bool) -> Result<(), ApiError> {
    let mut st = s.store.lock().unwrap();
    let key = req.key(&name_of(obj));
    if create && st.objects.contains_key(&key) {
        let mut e = ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", qualified(&req.rt), key.3),
        );
        e.details = Some(Box::new(
            json!({"name": key.3, "group": req.rt.group, "kind": req.rt.resource}),
        ));
        return Err(e);
    }
    if req.dry_run {
        return Ok(());
    }
    st.resource_version += 1;
    let rv = st.resource_version;
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    let mut stored = obj.clone();
    if let Some(o) = stored.as_object_mut() {
        o.remove("apiVersion");
    }
    st.events.push(Event {
        rv,
        kind: if create { "ADDED" } else { "MODIFIED" },
        key: key.clone(),
        object: stored.clone(),
    });
    st.objects.insert(key, stored);
    drop(st);
    s.changed.notify_waiters();
    Ok(())
}

async fn create(s: &Arc<Shared>, req: &Req, body: &[u8]) -> VerbResult {
    let obj = parse_body(body)?;
    create_object(s, req, obj).await
}

async fn create_object(s: &Arc<Shared>, req: &Req, mut obj: Value) -> VerbResult {
    check_kind(req, &obj)?;
    set_namespace(req, &mut obj)?;
    require_namespace(s, req)?;
    let mut warnings = Vec::new();
    let name = name_of(&obj);
    let attrs = Attrs {
        req,
        operation: "CREATE",
        name: name.clone(),
    };
    let mut obj = admit_mutating(s, &attrs, obj, None, &mut warnings).await?;
    finish_create(s, &req.rt, &mut obj);
    let attrs = Attrs {
        name: name_of(&obj),
        ..attrs
    };
    let fail = |mut e: ApiError, w: &Vec<String>| {
        e.warnings = w.clone();
        e
    };
    require_name(req, &obj).map_err(|e| fail(e, &warnings))?;
    admit_validating(s, &attrs, Some(&obj), None, &mut warnings).await?;
    store(s, req, &mut obj, true).map_err(|e| fail(e, &warnings))?;
    Ok((201, with_version(obj, req), warnings))
}

/// The shared tail of PUT and PATCH: admission for UPDATE and storage.
async fn update_object(s: &Arc<Shared>, req: &Req, old: Value, mut obj: Value) -> VerbResult {
    let name = name_of(&old);
    set_namespace(req, &mut obj)?;
    if name_of(&obj) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&obj)
        )));
    }
    if let Some(rv) = obj
        .pointer("/metadata/resourceVersion")
        .and_then(|v| v.as_str())
    {
        let cur = old
            .pointer("/metadata/resourceVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if rv != cur {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", qualified(&req.rt)),
            ));
        }
    }
    // Immutable metadata comes from the stored object.
    for k in ["uid", "creationTimestamp", "resourceVersion"] {
        if let Some(v) = old["metadata"].get(k) {
            obj["metadata"][k] = v.clone();
        }
    }
    let mut warnings = Vec::new();
    let attrs = Attrs {
        req,
        operation: "UPDATE",
        name: name.clone(),
    };
    let mut obj = admit_mutating(s, &attrs, obj, Some(&old), &mut warnings).await?;
    if req.rt.resource == "namespaces" {
        obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    }
    admit_validating(s, &attrs, Some(&obj), Some(&old), &mut warnings).await?;
    store(s, req, &mut obj, false).map_err(|mut e| {
        e.warnings = warnings.clone();
        e
    })?;
    Ok((200, with_version(obj, req), warnings))
}

fn existing(s: &Shared, req: &Req, name: &str) -> Result<Value, ApiError> {
    let st = s.store.lock().unwrap();
    st.objects
        .get(&req.key(name))
        .map(|o| with_version(o.clone(), req))
        .ok_or_else(|| ApiError::not_found(&req.rt, name))
}

async fn update(s: &Arc<Shared>, req: &Req, name: &str, body: &[u8]) -> VerbResult {
    let obj = parse_body(body)?;
    check_kind(req, &obj)?;
    let old = existing(s, req, name)?;
    update_object(s, req, old, obj).await
}

async fn patch(
    s: &Arc<Shared>,
    req: &Req,
    name: &str,
    content_type: &str,
    body: &[u8],
) -> VerbResult {
    if content_type == "application/apply-patch+yaml" {
        return server_side_apply(s, req, name, body).await;
    }
    let old = existing(s, req, name)?;
    let mut obj = old.clone();
    match content_type {
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut obj, &p.0).map_err(|e| {
                ApiError::new(422, "Invalid", format!("the JSON patch could not be applied: {e}"))
            })?;
        }
        "application/merge-patch+json" => {
            let p = parse_body(body)?;
            json_patch::merge(&mut obj, &p);
        }
        "application/strategic-merge-patch+json" => {
            if req.rt.group.ends_with(".istio.io") {
                // Custom resources do not support strategic merge patch.
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "strategic merge patch is not supported for custom resources",
                ));
            }
            let p = parse_body(body)?;
            strategic_merge(&mut obj, &p);
        }
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (the test stand-in does not implement {other:?})"),
            ))
        }
    }
    // A patch never moves the object between versions.
    obj["apiVersion"] = json!(req.api_version());
    obj["kind"] = json!(req.rt.kind);
    if let Some(m) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("resourceVersion");
    }
    update_object(s, req, old, obj).await
}

/// A **simplified** server-side apply: no managedFields, no field ownership or conflicts. A
/// missing object is created (admission CREATE); an existing one gets the applied configuration
/// merged in (strategic merge for built-in kinds, JSON merge for Istio kinds; fields left out of
/// the configuration are kept, not removed) and goes through admission as UPDATE.
async fn server_side_apply(s: &Arc<Shared>, req: &Req, name: &str, body: &[u8]) -> VerbResult {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("apply patch is not UTF-8: {e}")))?;
    let applied: Value = serde_norway::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !applied.is_object() {
        return Err(ApiError::bad_request("the apply patch is not an object"));
    }
    if name_of(&applied) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&applied)
        )));
    }
    let Ok(old) = existing(s, req, name) else {
        return create_object(s, req, applied).await;
    };
    check_kind(req, &applied)?;
    let mut obj = old.clone();
    if req.rt.group.ends_with(".istio.io") {
        json_patch::merge(&mut obj, &applied);
    } else {
        strategic_merge(&mut obj, &applied);
    }
    if let Some(m) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("resourceVersion");
    }
    update_object(s, req, old, obj).await
}

async fn delete(s: &Arc<Shared>, req: &Req, name: &str) -> VerbResult {
    let old = existing(s, req, name)?;
    let mut warnings = Vec::new();
    let attrs = Attrs {
        req,
        operation: "DELETE",
        name: name.to_string(),
    };
    admit_mutating(s, &attrs, Value::Null, Some(&old), &mut warnings).await?;
    admit_validating(s, &attrs, None, Some(&old), &mut warnings).await?;
    if !req.dry_run {
        let mut st = s.store.lock().unwrap();
        let mut gone: Vec<Key> = vec![req.key(name)];
        if req.rt.resource == "namespaces" {
            gone.extend(
                st.objects
                    .keys()
                    .filter(|(_, _, ns, _)| ns == name)
                    .cloned(),
            );
        }
        for key in gone {
            if let Some(mut obj) = st.objects.remove(&key) {
                st.resource_version += 1;
                let rv = st.resource_version;
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                st.events.push(Event {
                    rv,
                    kind: "DELETED",
                    key,
                    object: obj,
                });
            }
        }
        drop(st);
        s.changed.notify_waiters();
    }
    Ok((200, old, warnings))
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch (simplified; see the module docs)

fn merge_key(field: &str, sample: &Value) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "webhooks" => Some("name"),
        "readinessGates" => Some("conditionType"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "ports" if sample.get("containerPort").is_some() => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn strategic_merge(target: &mut Value, patch: &Value) {
    let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) else {
        *target = strip_directives(patch);
        return;
    };
    if p.get("$patch").and_then(|v| v.as_str()) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Some(a) = v.as_array() {
                orders.push((field.to_string(), a.clone()));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(del)) = (
                t.get_mut(field).and_then(|l| l.as_array_mut()),
                v.as_array(),
            ) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(cur @ Value::Object(_)), Value::Object(_)) => strategic_merge(cur, v),
            (Some(Value::Array(cur)), Value::Array(items)) => {
                let key = items.iter().chain(cur.iter()).find_map(|i| merge_key(k, i));
                match key {
                    Some(key) if items.iter().all(|i| i.is_object()) => {
                        for item in items {
                            let id = item.get(key);
                            let pos = cur.iter().position(|c| c.get(key) == id);
                            let directive = item.get("$patch").and_then(|d| d.as_str());
                            match (pos, directive) {
                                (Some(i), Some("delete")) => {
                                    cur.remove(i);
                                }
                                (None, Some("delete")) => {}
                                (Some(i), Some("replace")) => cur[i] = strip_directives(item),
                                (Some(i), _) => strategic_merge(&mut cur[i], item),
                                (None, _) => cur.push(strip_directives(item)),
                            }
                        }
                    }
                    _ => *cur = items.iter().map(strip_directives).collect(),
                }
            }
            _ => {
                t.insert(k.clone(), strip_directives(v));
            }
        }
    }
    for (field, order) in orders {
        if let Some(list) = t.get_mut(&field).and_then(|l| l.as_array_mut()) {
            let key = list.iter().find_map(|i| merge_key(&field, i));
            let rank = |x: &Value| {
                order
                    .iter()
                    .position(|o| match key {
                        Some(k) => o.get(k) == x.get(k),
                        None => o == x,
                    })
                    .unwrap_or(usize::MAX)
            };
            list.sort_by_key(rank);
        }
    }
    if let Some(keep) = p.get("$retainKeys").and_then(|r| r.as_array()) {
        t.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k.as_str())));
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors

/// Parses `a=b,c!=d,e in (x,y),!f,g` into a LabelSelector value (matchExpressions only).
fn parse_selector_string(q: &str) -> Value {
    let mut exprs = Vec::new();
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in q.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let set = |p: &str, op: &str, sep: &str| -> Option<Value> {
            let (k, rest) = p.split_once(sep)?;
            let vals: Vec<&str> = rest
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(str::trim)
                .collect();
            Some(json!({"key": k.trim(), "operator": op, "values": vals}))
        };
        let e = if let Some(e) = set(p, "NotIn", " notin ") {
            e
        } else if let Some(e) = set(p, "In", " in ") {
            e
        } else if let Some((k, v)) = p.split_once("!=") {
            json!({"key": k.trim(), "operator": "NotIn", "values": [v.trim()]})
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            json!({"key": k.trim(), "operator": "In", "values": [v.trim()]})
        } else if let Some(k) = p.strip_prefix('!') {
            json!({"key": k.trim(), "operator": "DoesNotExist"})
        } else {
            json!({"key": p, "operator": "Exists"})
        };
        exprs.push(e);
    }
    json!({"matchExpressions": exprs})
}

/// metav1.LabelSelector semantics: empty or absent matches everything; `NotIn` matches when the
/// key is absent.
pub fn selector_matches(sel: &Value, labels: &Map<String, Value>) -> Result<bool, String> {
    if sel.is_null() {
        return Ok(true);
    }
    let label = |k: &str| labels.get(k).and_then(|v| v.as_str());
    if let Some(ml) = sel.get("matchLabels").and_then(|m| m.as_object()) {
        for (k, v) in ml {
            if label(k) != v.as_str() {
                return Ok(false);
            }
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(|k| k.as_str()).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        let ok = match e.get("operator").and_then(|o| o.as_str()).unwrap_or("") {
            "In" => label(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            other => return Err(format!("invalid label selector operator {other:?}")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// The admission chain

struct Attrs<'a> {
    req: &'a Req,
    operation: &'static str,
    name: String,
}

fn str_list(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn rule_matches(rule: &Value, op: &str, rt: &ResourceType, version: &str) -> bool {
    let has = |field: &str, want: &str| str_list(rule, field).iter().any(|x| x == "*" || x == want);
    let resources = str_list(rule, "resources");
    let scope_ok = match rule.get("scope").and_then(|s| s.as_str()).unwrap_or("*") {
        "Cluster" => !rt.namespaced,
        "Namespaced" => rt.namespaced,
        _ => true,
    };
    has("operations", op)
        && has("apiGroups", rt.group)
        && has("apiVersions", version)
        && resources
            .iter()
            .any(|r| r == "*" || r == "*/*" || r == rt.resource)
        && scope_ok
}

/// The version at which the webhook sees the request, if it matches at all.
fn matching_version(webhook: &Value, attrs: &Attrs) -> Option<String> {
    let rules: Vec<&Value> = webhook
        .get("rules")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let req = attrs.req;
    let matches = |v: &str| {
        rules
            .iter()
            .any(|r| rule_matches(r, attrs.operation, &req.rt, v))
    };
    if matches(&req.version) {
        return Some(req.version.clone());
    }
    let equivalent = webhook.get("matchPolicy").and_then(|m| m.as_str()) != Some("Exact");
    if equivalent {
        return req
            .rt
            .versions
            .iter()
            .find(|v| matches(v))
            .map(|v| v.to_string());
    }
    None
}

fn webhook_selects(
    s: &Shared,
    webhook: &Value,
    attrs: &Attrs,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<bool, String> {
    let rt = &attrs.req.rt;
    let ns_sel = webhook
        .get("namespaceSelector")
        .cloned()
        .unwrap_or(Value::Null);
    let ns_ok = if rt.resource == "namespaces" {
        let labels = obj.or(old).map(labels_of).unwrap_or_default();
        selector_matches(&ns_sel, &labels)?
    } else if !rt.namespaced {
        true
    } else {
        let labels = namespace_labels(s, &attrs.req.namespace)
            .ok_or_else(|| format!("namespace {:?} not found", attrs.req.namespace))?;
        selector_matches(&ns_sel, &labels)?
    };
    if !ns_ok {
        return Ok(false);
    }
    let obj_sel = webhook
        .get("objectSelector")
        .cloned()
        .unwrap_or(Value::Null);
    let mut any = false;
    for o in [obj, old].into_iter().flatten() {
        if !o.is_null() && selector_matches(&obj_sel, &labels_of(o))? {
            any = true;
        }
    }
    if obj.is_none_or(|o| o.is_null()) && old.is_none() {
        any = selector_matches(&obj_sel, &Map::new())?;
    }
    Ok(any)
}

/// One webhook of a configuration.
#[derive(Clone)]
struct Hook {
    configuration: String,
    webhook: Value,
}

/// The webhooks of all configurations of one kind: configurations in name order, webhooks in
/// list order.
fn hooks(s: &Shared, resource: &str) -> Vec<Hook> {
    let st = s.store.lock().unwrap();
    st.objects
        .iter()
        .filter(|((g, r, _, _), _)| g == ADMREG && r == resource)
        .flat_map(|((_, _, _, name), v)| {
            v.get("webhooks")
                .and_then(|w| w.as_array())
                .into_iter()
                .flatten()
                .map(|w| Hook {
                    configuration: name.clone(),
                    webhook: w.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// kube-apiserver's `webhookerrors.ToStatusErr`: the denial as the client sees it.
fn to_status_err(webhook: &str, status: &Value) -> ApiError {
    let message = status.get("message").and_then(|m| m.as_str()).unwrap_or("");
    let reason = status.get("reason").and_then(|m| m.as_str()).unwrap_or("");
    let code = status.get("code").and_then(|c| c.as_u64()).unwrap_or(0);
    let denied = format!("admission webhook \"{webhook}\" denied the request");
    let text = if !message.is_empty() {
        format!("{denied}: {message}")
    } else if !reason.is_empty() {
        format!("{denied}: {reason}")
    } else {
        format!("{denied} without explanation")
    };
    let code = u16::try_from(code).unwrap_or(500).max(400);
    let mut e = ApiError::new(code, reason, text);
    e.details = status.get("details").cloned().map(Box::new);
    e
}

enum CallError {
    /// The webhook answered `allowed: false`.
    Denied(ApiError),
    /// Could not call the webhook, or its answer was unusable (failurePolicy decides).
    Failed(String),
}

/// One webhook call. Returns the (possibly patched) object and the warnings.
async fn call_webhook(
    s: &Shared,
    webhook: &Value,
    attrs: &Attrs<'_>,
    version: &str,
    obj: Option<&Value>,
    old: Option<&Value>,
    mutating: bool,
) -> Result<(Option<Value>, Vec<String>), CallError> {
    let name = webhook.get("name").and_then(|n| n.as_str()).unwrap_or("");
    let req = attrs.req;
    if webhook
        .get("matchConditions")
        .is_some_and(|m| m.as_array().is_some_and(|a| !a.is_empty()))
    {
        return Err(CallError::Failed(
            "matchConditions (CEL) are not supported by the test stand-in".into(),
        ));
    }
    let review_version = str_list(webhook, "admissionReviewVersions")
        .into_iter()
        .find(|v| v == "v1" || v == "v1beta1")
        .ok_or_else(|| {
            CallError::Failed(
                "webhook does not accept v1 or v1beta1 AdmissionReview requests".into(),
            )
        })?;
    // The object as the webhook sees it (matchPolicy Equivalent may pick another version).
    let convert = |o: Option<&Value>| {
        o.filter(|o| !o.is_null()).map(|o| {
            let mut o = o.clone();
            o["apiVersion"] = json!(api_version(req.rt.group, version));
            o
        })
    };
    let uid = s.uid();
    let options_kind = match attrs.operation {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        _ => "DeleteOptions",
    };
    let gvk = |v: &str| json!({"group": req.rt.group, "version": v, "kind": req.rt.kind});
    let gvr = |v: &str| json!({"group": req.rt.group, "version": v, "resource": req.rt.resource});
    let mut request = json!({
        "uid": uid,
        "kind": gvk(version), "resource": gvr(version),
        "requestKind": gvk(&req.version), "requestResource": gvr(&req.version),
        "name": attrs.name,
        "operation": attrs.operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": convert(obj),
        "oldObject": convert(old),
        "dryRun": req.dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
    });
    if req.rt.namespaced {
        request["namespace"] = json!(req.namespace);
    }
    let review = json!({"apiVersion": format!("admission.k8s.io/{review_version}"),
        "kind": "AdmissionReview", "request": request});

    let cc = webhook.get("clientConfig").cloned().unwrap_or(Value::Null);
    let timeout = webhook
        .get("timeoutSeconds")
        .and_then(|t| t.as_u64())
        .unwrap_or(10);
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .http1_only()
        .timeout(Duration::from_secs(timeout));
    let ca = cc
        .get("caBundle")
        .and_then(|c| c.as_str())
        .map(|c| base64::engine::general_purpose::STANDARD.decode(c))
        .transpose()
        .map_err(|e| CallError::Failed(format!("invalid caBundle: {e}")))?
        .unwrap_or_default();
    if !ca.is_empty() {
        for cert in reqwest::Certificate::from_pem_bundle(&ca)
            .map_err(|e| CallError::Failed(format!("invalid caBundle: {e}")))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    let mut dial: Option<String> = None;
    let url = if let Some(u) = cc.get("url").and_then(|u| u.as_str()) {
        u.to_string()
    } else if let Some(svc) = cc.get("service") {
        let sname = svc.get("name").and_then(|v| v.as_str()).unwrap_or("");
        let sns = svc.get("namespace").and_then(|v| v.as_str()).unwrap_or("");
        let port = svc.get("port").and_then(|v| v.as_u64()).unwrap_or(443);
        let path = svc.get("path").and_then(|v| v.as_str()).unwrap_or("");
        let host = format!("{sname}.{sns}.svc");
        let target = s
            .services
            .lock()
            .unwrap()
            .get(&format!("{host}:{port}"))
            .copied();
        match target {
            Some(addr) => {
                builder = builder.resolve(&host, addr);
                dial = Some(addr.to_string());
            }
            None => {
                return Err(CallError::Failed(format!(
                    "failed to call webhook: service \"{sns}/{sname}\" port {port} is not registered with the test stand-in"
                )))
            }
        }
        format!("https://{host}:{port}{path}")
    } else {
        return Err(CallError::Failed(
            "clientConfig has neither url nor service".into(),
        ));
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let full_url = format!("{url}{sep}timeout={timeout}s");
    let client = builder
        .build()
        .map_err(|e| CallError::Failed(format!("failed to build the webhook client: {e}")))?;
    let send = client
        .post(&full_url)
        .header("content-type", "application/json")
        .header("accept", "application/json, */*")
        .body(review.to_string())
        .send()
        .await;
    let go_err = |e: &reqwest::Error| -> String {
        let mut chain = Vec::new();
        let mut cur: Option<&dyn std::error::Error> = Some(e);
        while let Some(c) = cur {
            chain.push(c.to_string());
            cur = c.source();
        }
        let text = chain.join(": ");
        let why = if e.is_timeout() {
            "context deadline exceeded".to_string()
        } else if text.contains("Connection refused") || text.contains("connection refused") {
            let addr = dial.clone().unwrap_or_else(|| {
                e.url()
                    .map(|u| {
                        format!(
                            "{}:{}",
                            u.host_str().unwrap_or(""),
                            u.port_or_known_default().unwrap_or(443)
                        )
                    })
                    .unwrap_or_default()
            });
            format!("dial tcp {addr}: connect: connection refused")
        } else if text.contains("UnknownIssuer") {
            // Go's crypto/x509 wording; the rustls error follows in brackets.
            format!(
                "tls: failed to verify certificate: x509: certificate signed by unknown authority [{text}]"
            )
        } else if text.contains("BadSignature") {
            // A CA with the same name but another key: Go says the same, with a hint.
            format!(
                "tls: failed to verify certificate: x509: certificate signed by unknown authority (possibly because of a verification error while trying to verify a candidate authority certificate) [{text}]"
            )
        } else if text.contains("NotValidForName") {
            format!("tls: failed to verify certificate: x509: certificate is not valid for the requested name [{text}]")
        } else {
            text
        };
        format!("failed to call webhook: Post \"{full_url}\": {why}")
    };
    let resp = send.map_err(|e| CallError::Failed(go_err(&e)))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| CallError::Failed(go_err(&e)))?;
    if !status.is_success() {
        return Err(CallError::Failed(format!(
            "failed to call webhook: the server responded with the status code {} but did not return more information ({})",
            status.as_u16(),
            String::from_utf8_lossy(&bytes).trim()
        )));
    }
    let answer: Value = serde_json::from_slice(&bytes)
        .map_err(|e| CallError::Failed(format!("received invalid webhook response: {e}")))?;
    let want_av = format!("admission.k8s.io/{review_version}");
    if answer.get("apiVersion").and_then(|v| v.as_str()) != Some(want_av.as_str())
        || answer.get("kind").and_then(|v| v.as_str()) != Some("AdmissionReview")
    {
        return Err(CallError::Failed(format!(
            "received invalid webhook response: expected webhook response of {want_av}, Kind=AdmissionReview, got {}, Kind={}",
            answer["apiVersion"], answer["kind"]
        )));
    }
    let r = &answer["response"];
    if r.get("uid").and_then(|u| u.as_str()) != Some(uid.as_str()) {
        return Err(CallError::Failed(format!(
            "received invalid webhook response: expected response.uid=\"{uid}\", got \"{}\"",
            r["uid"].as_str().unwrap_or("")
        )));
    }
    let warnings = str_list(r, "warnings");
    if r.get("allowed").and_then(|a| a.as_bool()) != Some(true) {
        let mut e = to_status_err(name, r.get("status").unwrap_or(&Value::Null));
        e.warnings = warnings;
        return Err(CallError::Denied(e));
    }
    let mut out = None;
    if let Some(p64) = r.get("patch").and_then(|p| p.as_str()) {
        if !mutating {
            return Err(CallError::Failed(
                "received invalid webhook response: a validating webhook returned a patch".into(),
            ));
        }
        if r.get("patchType").and_then(|t| t.as_str()) != Some("JSONPatch") {
            return Err(CallError::Failed(format!(
                "received invalid webhook response: unsupported patch type {}",
                r["patchType"]
            )));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(p64)
            .map_err(|e| {
                CallError::Failed(format!(
                    "received invalid webhook response: patch is not base64: {e}"
                ))
            })?;
        let p: json_patch::Patch = serde_json::from_slice(&raw)
            .map_err(|e| CallError::Failed(format!("received invalid webhook response: {e}")))?;
        let mut doc = convert(obj).unwrap_or(Value::Null);
        json_patch::patch(&mut doc, &p.0).map_err(|e| {
            CallError::Failed(format!("JSON patch from the webhook does not apply: {e}"))
        })?;
        doc["apiVersion"] = json!(req.api_version());
        out = Some(doc);
    }
    Ok((out, warnings))
}

fn record(s: &Shared, hook: &Hook, mutating: bool, attrs: &Attrs, version: &str, outcome: String) {
    s.calls.lock().unwrap().push(WebhookCall {
        configuration: hook.configuration.clone(),
        webhook: hook.webhook["name"].as_str().unwrap_or("").to_string(),
        mutating,
        operation: attrs.operation.to_string(),
        resource: qualified(&attrs.req.rt),
        version: version.to_string(),
        namespace: attrs.req.namespace.clone(),
        name: attrs.name.clone(),
        dry_run: attrs.req.dry_run,
        outcome,
    });
}

/// Runs one webhook with failurePolicy and dry-run rules. `Ok(Some(obj))` when it patched.
async fn run_webhook(
    s: &Shared,
    hook: &Hook,
    attrs: &Attrs<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
    mutating: bool,
    warnings: &mut Vec<String>,
) -> Result<(bool, Option<Value>), ApiError> {
    let webhook = &hook.webhook;
    let name = webhook.get("name").and_then(|n| n.as_str()).unwrap_or("");
    let Some(version) = matching_version(webhook, attrs) else {
        return Ok((false, None));
    };
    let fail_open = webhook.get("failurePolicy").and_then(|f| f.as_str()) == Some("Ignore");
    let selected = match webhook_selects(s, webhook, attrs, obj, old) {
        Ok(sel) => sel,
        Err(e) => {
            return Err(ApiError::new(
                500,
                "InternalError",
                format!("Internal error occurred: failed calling webhook \"{name}\": {e}"),
            ))
        }
    };
    if !selected {
        return Ok((false, None));
    }
    let side_effects = webhook
        .get("sideEffects")
        .and_then(|v| v.as_str())
        .unwrap_or("Unknown");
    if attrs.req.dry_run && side_effects != "None" && side_effects != "NoneOnDryRun" {
        record(
            s,
            hook,
            mutating,
            attrs,
            &version,
            "not called: no dry-run support".into(),
        );
        let mut e = ApiError::bad_request(format!(
            "admission webhook \"{name}\" does not support dry run"
        ));
        e.warnings = warnings.clone();
        return Err(e);
    }
    match call_webhook(s, webhook, attrs, &version, obj, old, mutating).await {
        Ok((patched, w)) => {
            record(
                s,
                hook,
                mutating,
                attrs,
                &version,
                if patched.is_some() {
                    "patched"
                } else {
                    "allowed"
                }
                .into(),
            );
            warnings.extend(w);
            Ok((true, patched))
        }
        Err(CallError::Denied(mut e)) => {
            record(
                s,
                hook,
                mutating,
                attrs,
                &version,
                format!("denied: {}", e.message),
            );
            warnings.append(&mut e.warnings);
            e.warnings = warnings.clone();
            Err(e)
        }
        Err(CallError::Failed(why)) => {
            record(s, hook, mutating, attrs, &version, format!("error: {why}"));
            let msg = format!("failed calling webhook \"{name}\": {why}");
            if fail_open {
                s.note(format!(
                    "Failed calling webhook, failing open {name}: {msg}"
                ));
                Ok((true, None))
            } else {
                let mut e = ApiError::new(
                    500,
                    "InternalError",
                    format!("Internal error occurred: {msg}"),
                );
                e.warnings = warnings.clone();
                Err(e)
            }
        }
    }
}

async fn admit_mutating(
    s: &Shared,
    attrs: &Attrs<'_>,
    mut obj: Value,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let mut invoked_if_needed: Vec<(usize, Hook)> = Vec::new();
    let mut last_change: Option<usize> = None;
    for (index, hook) in hooks(s, "mutatingwebhookconfigurations")
        .into_iter()
        .enumerate()
    {
        let o = (!obj.is_null()).then_some(&obj);
        let before = obj.clone();
        let (called, patched) = run_webhook(s, &hook, attrs, o, old, true, warnings).await?;
        if let Some(patched) = patched {
            obj = patched;
        }
        if obj != before {
            last_change = Some(index);
        }
        if called
            && hook
                .webhook
                .get("reinvocationPolicy")
                .and_then(|r| r.as_str())
                == Some("IfNeeded")
        {
            invoked_if_needed.push((index, hook));
        }
    }
    // Reinvocation: once, for IfNeeded webhooks that ran before a later change.
    for (i, hook) in invoked_if_needed {
        if last_change.is_some_and(|c| c > i) {
            let o = (!obj.is_null()).then_some(&obj);
            if let (_, Some(patched)) = run_webhook(s, &hook, attrs, o, old, true, warnings).await?
            {
                obj = patched;
            }
        }
    }
    Ok(obj)
}

async fn admit_validating(
    s: &Shared,
    attrs: &Attrs<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    for hook in hooks(s, "validatingwebhookconfigurations") {
        run_webhook(s, &hook, attrs, obj, old, false, warnings).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let labels: Map<String, Value> =
            serde_json::from_value(json!({"istio-injection": "enabled"})).unwrap();
        let notin = json!({"matchExpressions": [{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]});
        assert!(selector_matches(&notin, &labels).unwrap());
        let in_ = json!({"matchExpressions": [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]});
        assert!(selector_matches(&in_, &labels).unwrap());
        let dne =
            json!({"matchExpressions": [{"key": "istio-injection", "operator": "DoesNotExist"}]});
        assert!(!selector_matches(&dne, &labels).unwrap());
        assert!(selector_matches(&json!({}), &labels).unwrap());
        assert!(selector_matches(
            &parse_selector_string("istio-injection=enabled,!x"),
            &labels
        )
        .unwrap());
        assert!(!selector_matches(
            &parse_selector_string("istio-injection notin (enabled)"),
            &labels
        )
        .unwrap());
    }

    #[test]
    fn denials_read_like_kube_apiserver() {
        let e = to_status_err("v.x.io", &json!({"message": "bad field", "code": 200}));
        assert_eq!(
            (e.code, e.message.as_str(), e.reason.as_str()),
            (
                400,
                "admission webhook \"v.x.io\" denied the request: bad field",
                ""
            )
        );
        let e = to_status_err("v.x.io", &json!({"reason": "Forbidden", "code": 403}));
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                403,
                "admission webhook \"v.x.io\" denied the request: Forbidden"
            )
        );
        let e = to_status_err("v.x.io", &Value::Null);
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "admission webhook \"v.x.io\" denied the request without explanation"
            )
        );
        assert_eq!(e.status()["status"], "Failure");
        assert_eq!(
            warning_header(r#"say "hi" \ bye"#).unwrap(),
            r#"299 - "say \"hi\" \\ bye""#
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}});
        strategic_merge(
            &mut pod,
            &json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "image": "2"}, {"name": "b", "$patch": "delete"}]}}),
        );
        assert_eq!(
            pod,
            json!({"spec": {"containers": [{"name": "a", "image": "2"}]}})
        );
    }
}
