//! The Kubernetes config source: watches (list + watch, resumed with backoff after errors) of the
//! kinds xDS needs, turned into the same `store::Snapshot` the file source produces, published
//! after the initial sync of every kind and after each change (coalesced).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::store::{parse, Snapshot};

/// The kinds the store holds: (group, version, kind).
pub const WATCHED: &[(&str, &str, &str)] = &[
    ("", "v1", "Namespace"),
    ("", "v1", "Service"),
    ("", "v1", "Endpoints"),
    ("discovery.k8s.io", "v1", "EndpointSlice"),
    ("", "v1", "Pod"),
    ("networking.istio.io", "v1", "VirtualService"),
    ("networking.istio.io", "v1", "DestinationRule"),
    ("networking.istio.io", "v1", "Gateway"),
    ("networking.istio.io", "v1", "ServiceEntry"),
    ("networking.istio.io", "v1", "WorkloadEntry"),
    ("networking.istio.io", "v1", "Sidecar"),
];

enum Change {
    Upsert(usize, String, Value),
    Remove(usize, String),
    /// A (re)list of one kind finished: the objects not seen since `Restart` are gone.
    Restart(usize),
    Synced(usize),
}

fn key_of(obj: &DynamicObject) -> String {
    format!(
        "{}/{}",
        obj.metadata.namespace.as_deref().unwrap_or(""),
        obj.metadata.name.as_deref().unwrap_or("")
    )
}

fn to_value(idx: usize, obj: &DynamicObject) -> Value {
    let (group, version, kind) = WATCHED[idx];
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        o.insert("apiVersion".into(), Value::String(api_version));
        o.insert("kind".into(), Value::String(kind.into()));
    }
    v
}

async fn watch_kind(client: Client, idx: usize, tx: mpsc::Sender<Change>) {
    let (group, version, kind) = WATCHED[idx];
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist: Vec<(String, Value)> = Vec::new();
    while let Some(ev) = stream.next().await {
        let change = match ev {
            Ok(Event::Apply(o)) => vec![Change::Upsert(idx, key_of(&o), to_value(idx, &o))],
            Ok(Event::Delete(o)) => vec![Change::Remove(idx, key_of(&o))],
            Ok(Event::Init) => {
                relist.clear();
                continue;
            }
            Ok(Event::InitApply(o)) => {
                relist.push((key_of(&o), to_value(idx, &o)));
                continue;
            }
            Ok(Event::InitDone) => {
                let mut out = vec![Change::Restart(idx)];
                out.extend(relist.drain(..).map(|(k, v)| Change::Upsert(idx, k, v)));
                out.push(Change::Synced(idx));
                out
            }
            Err(e) => {
                tracing::warn!(kind, error = %e, "watch error; retrying with backoff");
                continue;
            }
        };
        for c in change {
            if tx.send(c).await.is_err() {
                return;
            }
        }
    }
}

/// Runs the watches and publishes snapshots into `tx`; `synced` flips once every kind has
/// listed. Ends at shutdown.
pub async fn run(
    client: Client,
    tx: watch::Sender<Arc<Snapshot>>,
    synced: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (ctx, mut rx) = mpsc::channel::<Change>(1024);
    let mut tasks = tokio::task::JoinSet::new();
    for idx in 0..WATCHED.len() {
        tasks.spawn(watch_kind(client.clone(), idx, ctx.clone()));
    }
    drop(ctx);
    let mut objects: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new(); WATCHED.len()];
    let mut restarted: Vec<Option<BTreeMap<String, Value>>> = vec![None; WATCHED.len()];
    let mut listed = vec![false; WATCHED.len()];
    let mut version = 0u64;
    loop {
        let first = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => break },
            _ = shutdown.changed() => break,
        };
        // Coalesce a burst of changes into one snapshot.
        let mut batch = vec![first];
        let deadline = tokio::time::sleep(Duration::from_millis(20));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                c = rx.recv() => match c { Some(c) => batch.push(c), None => break },
                _ = &mut deadline => break,
            }
        }
        for c in batch {
            match c {
                Change::Upsert(i, k, v) => {
                    if let Some(r) = restarted[i].as_mut() {
                        r.insert(k, v);
                    } else {
                        objects[i].insert(k, v);
                    }
                }
                Change::Remove(i, k) => {
                    objects[i].remove(&k);
                }
                Change::Restart(i) => restarted[i] = Some(BTreeMap::new()),
                Change::Synced(i) => {
                    if let Some(fresh) = restarted[i].take() {
                        objects[i] = fresh;
                    }
                    listed[i] = true;
                }
            }
        }
        if !listed.iter().all(|l| *l) {
            continue;
        }
        version += 1;
        let mut snap = Snapshot {
            version,
            ..Default::default()
        };
        for (i, objs) in objects.iter().enumerate() {
            for (k, v) in objs {
                parse::add_value(&format!("kube:{}/{k}", WATCHED[i].2), v.clone(), &mut snap);
            }
        }
        snap.normalize();
        for e in &snap.errors {
            tracing::error!(object = %e.object, source = %e.source_name, error = %e.message, "skipping invalid config object");
        }
        tracing::debug!(version, objects = snap.len(), "kube snapshot");
        let _ = tx.send(Arc::new(snap));
        let _ = synced.send(true);
    }
    tasks.shutdown().await;
}

/// The injection inputs held in ConfigMaps: `istio[-rev]` (key `mesh`) and
/// `istio-sidecar-injector[-rev]` (keys `values`, `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InjectionConfigMaps {
    pub mesh: Option<String>,
    pub values: Option<String>,
    pub config: Option<String>,
}

/// Keeps a name → value map of one resource type current (relists replace it) and hands it to
/// `publish` after every change, until shutdown.
async fn watch_named<K, V>(
    api: Api<K>,
    what: &'static str,
    value_of: impl Fn(&K) -> V,
    mut publish: impl FnMut(&BTreeMap<String, V>),
    mut shutdown: watch::Receiver<bool>,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut current: BTreeMap<String, V> = BTreeMap::new();
    let mut relist: BTreeMap<String, V> = BTreeMap::new();
    let name = |o: &K| o.meta().name.clone().unwrap_or_default();
    loop {
        let ev = tokio::select! {
            ev = stream.next() => match ev { Some(ev) => ev, None => return },
            _ = shutdown.changed() => return,
        };
        match ev {
            Ok(Event::Apply(o)) => {
                current.insert(name(&o), value_of(&o));
            }
            Ok(Event::Delete(o)) => {
                current.remove(&name(&o));
            }
            Ok(Event::Init) => {
                relist.clear();
                continue;
            }
            Ok(Event::InitApply(o)) => {
                relist.insert(name(&o), value_of(&o));
                continue;
            }
            Ok(Event::InitDone) => current = std::mem::take(&mut relist),
            Err(e) => {
                tracing::warn!(kind = what, error = %e, "watch error; retrying with backoff");
                continue;
            }
        }
        publish(&current);
    }
}

/// Sends `next` unless it equals the current value.
fn publish_if_changed<T: PartialEq + Clone>(tx: &watch::Sender<T>, next: T) {
    tx.send_if_modified(|cur| {
        let changed = *cur != next;
        if changed {
            *cur = next.clone();
        }
        changed
    });
}

/// Watches meshd's two injection ConfigMaps in `namespace` and publishes their contents on every
/// change (absent ConfigMaps give `None` fields, i.e. the flags' or built-in defaults).
pub async fn watch_injection_config(
    client: Client,
    namespace: String,
    revision: String,
    tx: watch::Sender<InjectionConfigMaps>,
    shutdown: watch::Receiver<bool>,
) {
    use k8s_openapi::api::core::v1::ConfigMap;
    let suffix = if revision.is_empty() {
        String::new()
    } else {
        format!("-{revision}")
    };
    let (mesh_name, injector_name) = (
        format!("istio{suffix}"),
        format!("istio-sidecar-injector{suffix}"),
    );
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let data = |cm: &ConfigMap| cm.data.clone().unwrap_or_default();
    let publish = |maps: &BTreeMap<String, BTreeMap<String, String>>| {
        let get = |cm: &str, key: &str| maps.get(cm).and_then(|d| d.get(key)).cloned();
        publish_if_changed(
            &tx,
            InjectionConfigMaps {
                mesh: get(&mesh_name, "mesh"),
                values: get(&injector_name, "values"),
                config: get(&injector_name, "config"),
            },
        );
    };
    watch_named(api, "ConfigMap", data, publish, shutdown).await;
}

/// Whether every node's kubelet supports native sidecars (1.33 or newer), for
/// `--native-sidecars auto`; `None` until nodes are known or when there are none.
pub fn nodes_support_native_sidecars(versions: &[String]) -> Option<bool> {
    if versions.is_empty() {
        return None;
    }
    Some(versions.iter().all(|v| {
        let mut parts = v.trim_start_matches('v').split('.');
        let major = parts.next().and_then(|p| p.parse::<u32>().ok());
        let minor = parts.next().and_then(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .ok()
        });
        matches!((major, minor), (Some(m), Some(n)) if m > 1 || (m == 1 && n >= 33))
    }))
}

/// Watches Nodes and publishes [`nodes_support_native_sidecars`] on every change.
pub async fn watch_node_versions(
    client: Client,
    tx: watch::Sender<Option<bool>>,
    shutdown: watch::Receiver<bool>,
) {
    use k8s_openapi::api::core::v1::Node;
    let kubelet = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default()
    };
    let publish = |nodes: &BTreeMap<String, String>| {
        let all: Vec<String> = nodes.values().cloned().collect();
        publish_if_changed(&tx, nodes_support_native_sidecars(&all));
    };
    watch_named(Api::<Node>::all(client), "Node", kubelet, publish, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_sidecars_need_every_kubelet_at_1_33() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(nodes_support_native_sidecars(&v(&[])), None);
        assert_eq!(
            nodes_support_native_sidecars(&v(&["v1.33.0", "v1.34.2+k3s1"])),
            Some(true)
        );
        assert_eq!(
            nodes_support_native_sidecars(&v(&["v1.33.0", "v1.28.3"])),
            Some(false)
        );
        assert_eq!(nodes_support_native_sidecars(&v(&["garbage"])), Some(false));
    }
}
