//! Table-test helpers for the per-kind validators (test builds only).

use serde_json::{json, Value};

use super::{validate_object, Mode};

/// The expected outcome of one table case.
pub enum Want {
    /// No errors, no warnings.
    Valid,
    /// An error containing the text.
    Error(&'static str),
    /// No errors and a warning containing the text.
    Warning(&'static str),
}

/// Runs `(name, spec, want)` cases for a kind, each wrapped in an object named `name` in `ns`.
pub fn run_table(api_version: &str, kind: &str, cases: &[(&str, Value, Want)]) {
    let mut failures = Vec::new();
    for (name, spec, want) in cases {
        let obj = json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": "obj", "namespace": "ns"},
            "spec": spec,
        });
        let v = match validate_object(&obj, Mode::Strict) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let ok = match want {
            Want::Valid => v.errors.is_empty() && v.warnings.is_empty(),
            Want::Error(s) => v.errors.iter().any(|e| e.contains(s)),
            Want::Warning(s) => v.errors.is_empty() && v.warnings.iter().any(|w| w.contains(s)),
        };
        if !ok {
            failures.push(format!("{name}: got {v:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}
