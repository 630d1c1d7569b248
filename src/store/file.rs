//! File config source: every `*.yaml`, `*.yml`, `*.json` under a directory, re-read when any file's
//! mtime/size/name changes (polled; robust on every filesystem and editor save pattern).

use super::{parse_documents, Snapshot};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Metrics of the file source.
#[derive(Clone, Default)]
pub struct SourceMetrics {
    /// Objects skipped because they could not be decoded or were invalid.
    pub invalid_objects: Counter,
    /// Number of successful (re)loads.
    pub reloads: Counter,
    /// Objects in the current snapshot.
    pub objects: Gauge,
}

impl SourceMetrics {
    /// Registers the metrics under `meshd_config_*`.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "meshd_config_invalid_objects",
            "Config objects skipped because they were invalid",
            self.invalid_objects.clone(),
        );
        registry.register(
            "meshd_config_reloads",
            "Config source reloads",
            self.reloads.clone(),
        );
        registry.register(
            "meshd_config_objects",
            "Objects in the current config snapshot",
            self.objects.clone(),
        );
    }
}

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn collect(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 16 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, out, depth + 1);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
}

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut files = Vec::new();
    collect(dir, &mut files, 0);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let md = std::fs::metadata(&p).ok();
            let mtime = md.as_ref().and_then(|m| m.modified().ok());
            let len = md.map(|m| m.len()).unwrap_or(0);
            (p, mtime, len)
        })
        .collect()
}

/// Reads and parses every config file under `dir` into a snapshot with the given version.
/// Unreadable files become load errors; this never fails as a whole.
pub fn load_dir(dir: &Path, version: u64) -> Snapshot {
    let mut snap = Snapshot {
        version,
        ..Default::default()
    };
    let mut files = Vec::new();
    collect(dir, &mut files, 0);
    files.sort();
    for path in files {
        let name = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_documents(&name, &text, &mut snap),
            Err(e) => snap.errors.push(super::LoadError {
                source_name: name,
                object: "file".into(),
                message: e.to_string(),
            }),
        }
    }
    snap.normalize();
    snap
}

fn report(snap: &Snapshot, metrics: &SourceMetrics) {
    for e in &snap.errors {
        tracing::error!(file = %e.source_name, object = %e.object, error = %e.message, "skipping invalid config object");
    }
    metrics.invalid_objects.inc_by(snap.errors.len() as u64);
    metrics.reloads.inc();
    metrics.objects.set(snap.len() as i64);
}

/// Loads `dir` now and publishes it, returning the sender to keep watching with [`watch_dir`].
pub fn initial(dir: &Path, metrics: &SourceMetrics) -> Arc<Snapshot> {
    let snap = load_dir(dir, 1);
    report(&snap, metrics);
    tracing::info!(dir = %dir.display(), objects = snap.len(), errors = snap.errors.len(), "config loaded");
    Arc::new(snap)
}

/// Polls `dir` every `interval`; on any change re-reads everything and publishes a new snapshot with a
/// higher version. Ends when `shutdown` resolves.
pub async fn watch_dir(
    dir: PathBuf,
    interval: Duration,
    tx: watch::Sender<Arc<Snapshot>>,
    metrics: SourceMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let d = dir.clone();
    let mut last = tokio::task::spawn_blocking(move || fingerprint(&d))
        .await
        .unwrap_or_default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        let d = dir.clone();
        let Ok(fp) = tokio::task::spawn_blocking(move || fingerprint(&d)).await else {
            continue;
        };
        if fp == last {
            continue;
        }
        last = fp;
        let version = tx.borrow().version + 1;
        let d = dir.clone();
        let Ok(snap) = tokio::task::spawn_blocking(move || load_dir(&d, version)).await else {
            continue;
        };
        report(&snap, &metrics);
        tracing::info!(dir = %dir.display(), version, objects = snap.len(), errors = snap.errors.len(), "config reloaded");
        tx.send_replace(Arc::new(snap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn picks_up_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.yaml"),
            "kind: Namespace\nmetadata: {name: one}\n",
        )
        .expect("write");
        let metrics = SourceMetrics::default();
        let snap = initial(dir.path(), &metrics);
        assert_eq!(snap.namespaces.len(), 1);
        let (tx, mut rx) = watch::channel(snap);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(watch_dir(
            dir.path().to_path_buf(),
            Duration::from_millis(20),
            tx,
            metrics.clone(),
            async {
                let _ = stop_rx.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(dir.path().join("b.yml"), "kind: Namespace\nmetadata: {name: two}\n---\nkind: Service\nmetadata: {name: s}\nspec: {ports: x}\n").expect("write");
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .expect("timeout")
            .expect("changed");
        let s = rx.borrow().clone();
        assert_eq!(s.namespaces.len(), 2);
        assert_eq!(s.version, 2);
        assert_eq!(s.errors.len(), 1);
        assert_eq!(metrics.invalid_objects.get(), 1);
        let _ = stop_tx.send(());
        task.await.expect("join");
    }
}
