//! The service model xDS translation works on, derived once per push from a store [`Snapshot`]:
//! services (Kubernetes Services and ServiceEntries) with ports, protocols and endpoints, plus lookups for
//! VirtualServices and DestinationRules.

use crate::istio::networking as net;
use crate::store::{k8s, Object, Snapshot};
use envoy_types::pb::google::protobuf::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// Does the `selector` select `labels`? An empty selector selects everything.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Cluster DNS suffix.
pub const DOMAIN_SUFFIX: &str = "svc.cluster.local";

/// Application protocol of a service port, as Istio infers it from the port name or `appProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Https,
    Tls,
    Tcp,
}

impl Protocol {
    /// Istio's protocol selection: `appProtocol`, else the port name prefix (`http-foo`), else TCP.
    pub fn infer(name: Option<&str>, app_protocol: Option<&str>) -> Protocol {
        let pick = |s: &str| -> Option<Protocol> {
            let s = s.to_ascii_lowercase();
            let head = s.split(['-', '_']).next().unwrap_or("");
            Some(match head {
                "http" | "http1" | "kubernetes.io/ws" => Protocol::Http,
                "http2" | "kubernetes.io/h2c" => Protocol::Http2,
                "grpc" | "grpc-web" => Protocol::Grpc,
                "https" => Protocol::Https,
                "tls" => Protocol::Tls,
                "tcp" | "mongo" | "mysql" | "redis" => Protocol::Tcp,
                _ => return None,
            })
        };
        app_protocol
            .and_then(pick)
            .or_else(|| name.and_then(pick))
            .unwrap_or(Protocol::Tcp)
    }

    /// True for protocols served through the HTTP connection manager.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// How a service's endpoints are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Endpoints pushed over EDS.
    Eds,
    /// Envoy resolves the endpoint addresses with DNS (ServiceEntry `DNS`).
    Dns,
    /// Original destination (headless Services, ServiceEntry `NONE`).
    Passthrough,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub port: u32,
    /// Numeric target port when known (Kubernetes `targetPort` as a number).
    pub target_port: Option<u32>,
    pub protocol: Protocol,
}

/// One endpoint of one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: String,
    pub port: u32,
    pub labels: BTreeMap<String, String>,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct Service {
    /// FQDN, e.g. `reviews.bookinfo.svc.cluster.local`.
    pub hostname: String,
    pub name: String,
    pub namespace: String,
    pub vip: Option<String>,
    pub ports: Vec<Port>,
    pub resolution: Resolution,
    /// Pod selector (Kubernetes Services).
    pub selector: BTreeMap<String, String>,
    /// Endpoints by service port number.
    pub endpoints: BTreeMap<u32, Vec<Endpoint>>,
    pub from_service_entry: bool,
}

impl Service {
    pub fn port(&self, number: u32) -> Option<&Port> {
        self.ports.iter().find(|p| p.port == number)
    }
}

/// Deduplicates encoded resources: equal bytes under the same name share one allocation, so proxies
/// whose configs overlap (most of a mesh) hold one copy.
#[derive(Debug, Default)]
pub struct Interner {
    map: Mutex<HashMap<String, Vec<Arc<Any>>>>,
    bytes: Mutex<HashMap<(String, u64), Vec<bytes::Bytes>>>,
}

impl Interner {
    /// Returns the shared copy of `b` (a response body of `type_url` whose content hash is `hash`).
    pub fn intern_bytes(&self, type_url: &str, hash: u64, b: bytes::Bytes) -> bytes::Bytes {
        let Ok(mut map) = self.bytes.lock() else {
            return b;
        };
        let list = map.entry((type_url.to_string(), hash)).or_default();
        if let Some(existing) = list.iter().find(|x| **x == b) {
            return existing.clone();
        }
        list.push(b.clone());
        b
    }

    /// Returns the shared copy of `any` (named `name`).
    pub fn intern(&self, name: &str, any: Any) -> Arc<Any> {
        let Ok(mut map) = self.map.lock() else {
            return Arc::new(any);
        };
        let list = map
            .entry(format!("{}\u{0}{name}", any.type_url))
            .or_default();
        if let Some(existing) = list.iter().find(|a| a.value == any.value) {
            return existing.clone();
        }
        let a = Arc::new(any);
        list.push(a.clone());
        a
    }
}

/// Encoded resources shared by every proxy of a push: (name, resource) lists.
pub type SharedEncoded = Vec<(String, Arc<Any>)>;

/// Everything translation needs, computed once per snapshot version and shared by all proxies.
#[derive(Debug, Default)]
pub struct PushContext {
    pub version: u64,
    pub snapshot: Arc<Snapshot>,
    pub services: Vec<Arc<Service>>,
    pub by_host: HashMap<String, Arc<Service>>,
    /// Service hostname → index of its DestinationRule in `snapshot.destination_rules`.
    dr_for_host: HashMap<String, usize>,
    /// Service hostname → index of the first mesh-bound VirtualService for it.
    mesh_vs_for_host: HashMap<String, usize>,
    /// Outbound clusters and their load assignments, encoded once per push.
    pub outbound: OnceLock<(SharedEncoded, SharedEncoded)>,
    /// Shared encoded resources of this push.
    pub interner: Interner,
}

/// Resolves a config host (`reviews`, `reviews.ns`, FQDN) relative to the config's namespace, like
/// Istio's `ResolveShortnameToFQDN`.
pub fn resolve_host(host: &str, namespace: &str) -> String {
    if host.contains('*') || host.contains('.') {
        // `name.ns` is not expanded by Istio either; only bare names are.
        return host.to_string();
    }
    format!("{host}.{namespace}.{DOMAIN_SUFFIX}")
}

impl PushContext {
    /// Builds the model from a snapshot.
    pub fn new(snapshot: Arc<Snapshot>) -> PushContext {
        let mut services = Vec::new();
        let pods_by_name: HashMap<(&str, &str), &Object<k8s::Pod>> = snapshot
            .pods
            .iter()
            .map(|p| ((p.meta.namespace.as_str(), p.meta.name.as_str()), p))
            .collect();
        let mut pods_by_ip: HashMap<&str, Vec<&Object<k8s::Pod>>> = HashMap::new();
        for p in &snapshot.pods {
            if let Some(ip) = p.spec.status.pod_ip.as_deref() {
                pods_by_ip.entry(ip).or_default().push(p);
            }
        }
        let labels_for = |ns: &str,
                          ip: &str,
                          target: Option<&k8s::ObjectReference>|
         -> BTreeMap<String, String> {
            if let Some(name) = target.and_then(|t| t.name.as_deref()) {
                let tns = target.and_then(|t| t.namespace.as_deref()).unwrap_or(ns);
                if let Some(p) = pods_by_name.get(&(tns, name)) {
                    return p.meta.labels.clone();
                }
            }
            match pods_by_ip.get(ip).map(|v| v.as_slice()) {
                Some([p]) => p.meta.labels.clone(),
                _ => BTreeMap::new(),
            }
        };
        for svc in &snapshot.services {
            let ns = &svc.meta.namespace;
            let spec = &svc.spec;
            let ports: Vec<Port> = spec
                .ports
                .iter()
                .map(|p| Port {
                    name: p.name.clone().unwrap_or_default(),
                    port: p.port,
                    target_port: match &p.target_port {
                        Some(k8s::IntOrString::Int(i)) => u32::try_from(*i).ok(),
                        Some(k8s::IntOrString::String(_)) => None,
                        None => Some(p.port),
                    },
                    protocol: Protocol::infer(p.name.as_deref(), p.app_protocol.as_deref()),
                })
                .collect();
            let headless = spec.cluster_ip.as_deref() == Some("None");
            let mut endpoints: BTreeMap<u32, Vec<Endpoint>> = BTreeMap::new();
            let mut found = false;
            // Endpoints objects.
            for ep in snapshot
                .endpoints
                .iter()
                .filter(|e| &e.meta.namespace == ns && e.meta.name == svc.meta.name)
            {
                found = true;
                for subset in &ep.spec.subsets {
                    for sp in &ports {
                        let Some(epp) = match_endpoint_port(sp, &subset.ports, ports.len()) else {
                            continue;
                        };
                        for a in &subset.addresses {
                            endpoints.entry(sp.port).or_default().push(Endpoint {
                                address: a.ip.clone(),
                                port: epp,
                                labels: labels_for(ns, &a.ip, a.target_ref.as_ref()),
                                weight: 1,
                            });
                        }
                    }
                }
            }
            // EndpointSlices.
            for sl in snapshot.endpoint_slices.iter().filter(|e| {
                &e.meta.namespace == ns
                    && e.meta.labels.get("kubernetes.io/service-name") == Some(&svc.meta.name)
            }) {
                found = true;
                for sp in &ports {
                    let Some(epp) = match_endpoint_port(sp, &sl.spec.ports, ports.len()) else {
                        continue;
                    };
                    for e in &sl.spec.endpoints {
                        if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                            continue;
                        }
                        for addr in &e.addresses {
                            let list = endpoints.entry(sp.port).or_default();
                            if list.iter().any(|x| &x.address == addr && x.port == epp) {
                                continue;
                            }
                            list.push(Endpoint {
                                address: addr.clone(),
                                port: epp,
                                labels: labels_for(ns, addr, e.target_ref.as_ref()),
                                weight: 1,
                            });
                        }
                    }
                }
            }
            // No endpoint objects: select pods directly.
            if !found && !spec.selector.is_empty() {
                for p in snapshot.pods.iter().filter(|p| {
                    &p.meta.namespace == ns && selector_matches(&spec.selector, &p.meta.labels)
                }) {
                    let Some(ip) = p.spec.status.pod_ip.clone() else {
                        continue;
                    };
                    for sp in &ports {
                        let port = match sp.target_port {
                            Some(t) => t,
                            None => {
                                let Some(k8s::IntOrString::String(name)) = spec
                                    .ports
                                    .iter()
                                    .find(|x| x.port == sp.port)
                                    .and_then(|x| x.target_port.clone())
                                else {
                                    continue;
                                };
                                let Some(cp) = p
                                    .spec
                                    .spec
                                    .containers
                                    .iter()
                                    .flat_map(|c| c.ports.iter())
                                    .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                                else {
                                    continue;
                                };
                                cp.container_port
                            }
                        };
                        endpoints.entry(sp.port).or_default().push(Endpoint {
                            address: ip.clone(),
                            port,
                            labels: p.meta.labels.clone(),
                            weight: 1,
                        });
                    }
                }
            }
            services.push(Service {
                hostname: format!("{}.{}.{}", svc.meta.name, ns, DOMAIN_SUFFIX),
                name: svc.meta.name.clone(),
                namespace: ns.clone(),
                vip: spec
                    .cluster_ip
                    .clone()
                    .filter(|ip| ip != "None" && !ip.is_empty()),
                ports,
                resolution: if headless {
                    Resolution::Passthrough
                } else {
                    Resolution::Eds
                },
                selector: spec.selector.clone(),
                endpoints,
                from_service_entry: false,
            });
        }
        for se in &snapshot.service_entries {
            services.extend(service_entry_services(se, &snapshot.workload_entries));
        }
        let services: Vec<Arc<Service>> = services.into_iter().map(Arc::new).collect();
        let mut by_host = HashMap::new();
        for s in &services {
            by_host
                .entry(s.hostname.clone())
                .or_insert_with(|| s.clone());
        }
        // Indexes: exact hosts by map, wildcard hosts checked per service.
        let mut dr_exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut dr_wild: Vec<(String, usize)> = Vec::new();
        for (i, dr) in snapshot.destination_rules.iter().enumerate() {
            let h = resolve_host(&dr.spec.host, &dr.meta.namespace);
            if h.contains('*') {
                dr_wild.push((h, i));
            } else {
                dr_exact.entry(h).or_default().push(i);
            }
        }
        let mut vs_exact: HashMap<String, usize> = HashMap::new();
        let mut vs_wild: Vec<(String, usize)> = Vec::new();
        for (i, vs) in snapshot.virtual_services.iter().enumerate() {
            let mesh_bound =
                vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
            if !mesh_bound {
                continue;
            }
            for h in &vs.spec.hosts {
                let h = resolve_host(h, &vs.meta.namespace);
                if h.contains('*') {
                    vs_wild.push((h, i));
                } else {
                    vs_exact.entry(h).or_insert(i);
                }
            }
        }
        let mut dr_for_host = HashMap::new();
        let mut mesh_vs_for_host = HashMap::new();
        for svc in &services {
            let mut candidates: Vec<usize> =
                dr_exact.get(&svc.hostname).cloned().unwrap_or_default();
            candidates.extend(
                dr_wild
                    .iter()
                    .filter(|(h, _)| host_matches(h, &svc.hostname))
                    .map(|(_, i)| *i),
            );
            candidates.sort_unstable();
            let pick = candidates
                .iter()
                .copied()
                .find(|i| snapshot.destination_rules[*i].meta.namespace == svc.namespace)
                .or_else(|| candidates.first().copied());
            if let Some(i) = pick {
                dr_for_host.entry(svc.hostname.clone()).or_insert(i);
            }
            let exact = vs_exact.get(&svc.hostname).copied();
            let wild = vs_wild
                .iter()
                .filter(|(h, _)| host_matches(h, &svc.hostname))
                .map(|(_, i)| *i)
                .min();
            let vs = match (exact, wild) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(i) = vs {
                mesh_vs_for_host.entry(svc.hostname.clone()).or_insert(i);
            }
        }
        PushContext {
            version: snapshot.version,
            snapshot,
            services,
            by_host,
            dr_for_host,
            mesh_vs_for_host,
            outbound: OnceLock::new(),
            interner: Interner::default(),
        }
    }

    /// The DestinationRule for a service host (first by namespace/name, preferring the service's namespace).
    pub fn destination_rule(&self, svc: &Service) -> Option<&Object<net::DestinationRule>> {
        self.dr_for_host
            .get(&svc.hostname)
            .and_then(|i| self.snapshot.destination_rules.get(*i))
    }

    /// The first mesh-bound VirtualService (gateways empty or `mesh`) whose hosts match the service.
    pub fn mesh_virtual_service(&self, svc: &Service) -> Option<&Object<net::VirtualService>> {
        self.mesh_vs_for_host
            .get(&svc.hostname)
            .and_then(|i| self.snapshot.virtual_services.get(*i))
    }
}

/// What a sidecar may reach: the `egress` hosts of the Sidecar resource that applies to it (Istio's
/// SidecarScope), and whether unknown destinations are blocked (`REGISTRY_ONLY`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressScope {
    /// `(namespace pattern, host pattern)`; `None` means everything is visible (no Sidecar resource).
    pub hosts: Option<Vec<(String, String)>>,
    pub registry_only: bool,
}

impl EgressScope {
    /// Is `svc` visible to a proxy in `proxy_ns`?
    pub fn visible(&self, svc: &Service, proxy_ns: &str) -> bool {
        let Some(hosts) = &self.hosts else {
            return true;
        };
        hosts.iter().any(|(ns, host)| {
            let ns_ok = match ns.as_str() {
                "*" => true,
                "~" => false,
                "." => svc.namespace == proxy_ns,
                other => svc.namespace == other,
            };
            ns_ok && host_matches(host, &svc.hostname)
        })
    }
}

impl PushContext {
    /// The Sidecar resource for a proxy: one in its namespace selecting its labels, else the namespace
    /// default (no selector), else the root namespace (`istio-system`) default.
    pub fn sidecar_scope(&self, proxy_ns: &str, labels: &BTreeMap<String, String>) -> EgressScope {
        let sidecars = &self.snapshot.sidecars;
        let pick = sidecars
            .iter()
            .find(|s| {
                s.meta.namespace == proxy_ns
                    && s.spec.workload_selector.as_ref().is_some_and(|w| {
                        !w.labels.is_empty() && selector_matches(&w.labels, labels)
                    })
            })
            .or_else(|| {
                sidecars.iter().find(|s| {
                    s.meta.namespace == proxy_ns
                        && s.spec
                            .workload_selector
                            .as_ref()
                            .is_none_or(|w| w.labels.is_empty())
                })
            })
            .or_else(|| {
                sidecars.iter().find(|s| {
                    s.meta.namespace == "istio-system"
                        && s.spec
                            .workload_selector
                            .as_ref()
                            .is_none_or(|w| w.labels.is_empty())
                })
            });
        let Some(sc) = pick else {
            return EgressScope::default();
        };
        let registry_only = sc
            .spec
            .outbound_traffic_policy
            .as_ref()
            .is_some_and(|o| o.mode == net::OutboundMode::RegistryOnly);
        if sc.spec.egress.is_empty() {
            return EgressScope {
                hosts: None,
                registry_only,
            };
        }
        let hosts = sc
            .spec
            .egress
            .iter()
            .flat_map(|e| e.hosts.iter())
            .map(|h| match h.split_once('/') {
                Some((ns, host)) => (ns.to_string(), host.to_string()),
                None => ("*".to_string(), h.clone()),
            })
            .collect();
        EgressScope {
            hosts: Some(hosts),
            registry_only,
        }
    }
}

/// Does a (possibly wildcard) config host match a concrete hostname?
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return host.ends_with(suffix);
    }
    pattern == host
}

/// Do two (possibly wildcard) hosts intersect?
pub fn hosts_intersect(a: &str, b: &str) -> bool {
    host_matches(a, b) || host_matches(b, a)
}

fn match_endpoint_port(
    sp: &Port,
    eps: &[k8s::EndpointPort],
    n_service_ports: usize,
) -> Option<u32> {
    if let Some(p) = eps
        .iter()
        .find(|p| p.name.as_deref().unwrap_or("") == sp.name && !sp.name.is_empty())
    {
        return Some(p.port);
    }
    if n_service_ports == 1 && eps.len() == 1 {
        return Some(eps[0].port);
    }
    None
}

fn service_entry_services(
    se: &Object<net::ServiceEntry>,
    workload_entries: &[Object<net::WorkloadEntry>],
) -> Vec<Service> {
    let spec = &se.spec;
    let resolution = match spec.resolution {
        net::Resolution::Dns | net::Resolution::DnsRoundRobin | net::Resolution::DynamicDns => {
            Resolution::Dns
        }
        net::Resolution::None => Resolution::Passthrough,
        _ => Resolution::Eds,
    };
    let nonzero = |v: u32| (v != 0).then_some(v);
    let ports: Vec<Port> = spec
        .ports
        .iter()
        .map(|p| Port {
            name: p.name.clone(),
            port: p.number,
            target_port: nonzero(p.target_port),
            protocol: Protocol::infer(
                Some(if p.protocol.is_empty() {
                    &p.name
                } else {
                    &p.protocol
                }),
                None,
            ),
        })
        .collect();
    let mut workloads: Vec<net::WorkloadEntry> = spec.endpoints.clone();
    if let Some(sel) = &spec.workload_selector {
        workloads.extend(
            workload_entries
                .iter()
                .filter(|w| {
                    w.meta.namespace == se.meta.namespace
                        && selector_matches(&sel.labels, &w.spec.labels)
                })
                .map(|w| {
                    let mut we = w.spec.clone();
                    for (k, v) in &w.meta.labels {
                        we.labels.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    we
                }),
        );
    }
    spec.hosts
        .iter()
        .map(|host| {
            let mut endpoints: BTreeMap<u32, Vec<Endpoint>> = BTreeMap::new();
            for p in &ports {
                let list = endpoints.entry(p.port).or_default();
                for w in &workloads {
                    list.push(Endpoint {
                        address: if w.address.is_empty() {
                            host.clone()
                        } else {
                            w.address.clone()
                        },
                        port: w
                            .ports
                            .get(&p.name)
                            .copied()
                            .or(p.target_port)
                            .unwrap_or(p.port),
                        labels: w.labels.clone(),
                        weight: w.weight.max(1),
                    });
                }
                if workloads.is_empty() && resolution == Resolution::Dns {
                    list.push(Endpoint {
                        address: host.clone(),
                        port: p.target_port.unwrap_or(p.port),
                        labels: BTreeMap::new(),
                        weight: 1,
                    });
                }
            }
            Service {
                hostname: host.clone(),
                name: host.clone(),
                namespace: se.meta.namespace.clone(),
                vip: spec.addresses.first().cloned(),
                ports: ports.clone(),
                resolution: if resolution == Resolution::Passthrough && !workloads.is_empty() {
                    Resolution::Eds
                } else {
                    resolution
                },
                selector: BTreeMap::new(),
                endpoints,
                from_service_entry: true,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sample_snapshot;

    #[test]
    fn samples_model() {
        let ctx = PushContext::new(Arc::new(sample_snapshot()));
        let reviews = ctx
            .by_host
            .get("reviews.bookinfo.svc.cluster.local")
            .expect("reviews");
        let eps = reviews.endpoints.get(&9080).expect("eps");
        assert_eq!(eps.len(), 3);
        assert!(eps
            .iter()
            .any(|e| e.labels.get("version").map(String::as_str) == Some("v2")));
        let httpbin = ctx
            .by_host
            .get("httpbin.httpbin.svc.cluster.local")
            .expect("httpbin");
        assert_eq!(httpbin.endpoints[&8000][0].port, 8080);
        assert_eq!(httpbin.ports[0].protocol, Protocol::Http);
        assert!(ctx.destination_rule(reviews).is_some());
    }

    #[test]
    fn protocol_inference_and_hosts() {
        assert_eq!(Protocol::infer(Some("http-web"), None), Protocol::Http);
        assert_eq!(Protocol::infer(Some("grpc"), None), Protocol::Grpc);
        assert_eq!(Protocol::infer(Some("db"), None), Protocol::Tcp);
        assert_eq!(Protocol::infer(Some("db"), Some("http")), Protocol::Http);
        assert_eq!(
            resolve_host("reviews", "ns"),
            "reviews.ns.svc.cluster.local"
        );
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(hosts_intersect("a.example.com", "*.example.com"));
        assert!(!host_matches("b.com", "a.com"));
    }
}
