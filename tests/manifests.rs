//! The deployment manifests: the committed default rendering is fresh, and every profile's
//! rendering passes Kubernetes' schemas offline (kubernetes-validate from PyPI, installed into
//! `.venv` by scripts/install-test-deps.sh).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::meshd_bin;

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn generate(args: &[&str]) -> String {
    let out = Command::new(meshd_bin())
        .args(["manifest", "generate"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn committed_rendering_is_fresh() {
    let rendered = generate(&[]);
    let path = repo("deploy/meshd.yaml");
    if std::env::var_os("MESHD_REGENERATE").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "deploy/meshd.yaml is stale: regenerate it with `MESHD_REGENERATE=1 cargo test --test manifests`"
    );
}

#[test]
fn every_profile_passes_kubernetes_schemas() {
    let tool = repo(".venv/bin/kubernetes-validate");
    assert!(
        tool.is_file(),
        "kubernetes-validate is missing: run scripts/install-test-deps.sh (python3 -m venv .venv && .venv/bin/pip install kubernetes-validate)"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("default", vec!["--profile", "default"]),
        ("minimal", vec!["--profile", "minimal"]),
        ("demo", vec!["--profile", "demo"]),
        (
            "canary",
            vec!["--profile", "default", "--revision", "canary"],
        ),
    ] {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, generate(&args)).unwrap();
        let out = Command::new(&tool)
            .arg("--strict")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "profile {name} fails schema validation:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn profile_commands() {
    let out = Command::new(meshd_bin())
        .args(["profile", "list"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "default\ndemo\nminimal\n"
    );
    let out = Command::new(meshd_bin())
        .args(["profile", "diff", "default", "minimal"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "profiles differ, so diff exits non-zero"
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("containers[name=discovery]: only in the first"));
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    std::fs::write(&a, generate(&[])).unwrap();
    let out = Command::new(meshd_bin())
        .args(["manifest", "diff"])
        .arg(&a)
        .arg(&a)
        .output()
        .unwrap();
    assert!(out.status.success());
}
