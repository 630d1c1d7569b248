//! End-to-end tests of `meshd validate`: the built binary on the fixture files in
//! `tests/fixtures/validate/` (exit codes, stdout/stderr split, directories, stdin, syntax errors).

use std::io::Write;
use std::process::{Command, Output, Stdio};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validate");

fn meshd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshd"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run meshd")
}

fn fixture(rel: &str) -> String {
    format!("{FIXTURES}/{rel}")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn valid_directory_recurses_and_exits_zero() {
    let out = meshd(&["validate", "-f", &fixture("valid")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("Warning:"));
}

#[test]
fn invalid_object_lists_every_error_on_stdout() {
    let out = meshd(&["validate", "-f", &fixture("invalid/catalog-bad.yaml")]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    for want in [
        "VirtualService bookstore/catalog-bad: spec.http[0].route: HTTP route, redirect or direct_response is required",
        "spec.http[1].route[1].weight: weight -10 < 0",
        "spec.http[1].timeout: duration must be greater than 1ms",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    // Deterministic order: document order.
    let a = stdout.find("spec.http[0]").unwrap_or(usize::MAX);
    let b = stdout.find("spec.http[1]").unwrap_or(0);
    assert!(a < b, "{stdout}");
}

#[test]
fn strict_mode_names_unknown_fields() {
    let out = meshd(&["validate", "-f", &fixture("invalid/unknown-field.yaml")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout)
        .contains("spec.trafficPolicy.connectionPool.tcp.maxConnectons: unknown field"));
}

#[test]
fn warnings_go_to_stderr_and_exit_zero() {
    let out = meshd(&["validate", "-f", &fixture("warning/two-defaults.yaml")]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("Warning: ") && l.contains("not used")),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn several_files_any_invalid_exits_one() {
    let out = meshd(&[
        "validate",
        "-f",
        &fixture("valid/bookstore.yaml"),
        "-f",
        &fixture("invalid/unknown-field.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn syntax_error_reports_file_and_line() {
    let path = fixture("broken/syntax.yaml");
    let out = meshd(&["validate", "-f", &path]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("{path}:8")), "{stdout}");
}

#[test]
fn stdin_is_read_with_dash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshd"))
        .args(["validate", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let doc = std::fs::read(fixture("invalid/catalog-bad.yaml")).expect("fixture");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&doc)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("<stdin>: VirtualService bookstore/catalog-bad"));
}

#[test]
fn missing_file_and_usage_errors_exit_two() {
    let out = meshd(&["validate", "-f", &fixture("does-not-exist.yaml")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("does-not-exist.yaml"));
    let out = meshd(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
}
