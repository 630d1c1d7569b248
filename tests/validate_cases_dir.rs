//! Runs a directory of validation cases in the conformance-kit format (header comments
//! `# expect:`, `# match:`, `# mode:`) through the library in both modes, in process:
//! strict like `meshd validate`, lenient like the `/validate` webhook (where `mode: strict`
//! cases must be allowed). Set `MESHD_VALIDATE_CASES=DIR` to run it; without it the test is a no-op.

use meshd::validate::documents::parse_documents;
use meshd::validate::{validate_object, Mode};

#[test]
fn cases_dir_in_both_modes() {
    let Ok(dir) = std::env::var("MESHD_VALIDATE_CASES") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read case");
        let header = |key: &str| {
            text.lines()
                .take_while(|l| l.starts_with('#'))
                .filter_map(|l| l[1..].split_once(':'))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let (expect, want, mode) = (
            header("expect"),
            header("match").to_lowercase(),
            header("mode"),
        );
        let docs = parse_documents(&text).expect("yaml");
        for (m, label) in [(Mode::Strict, "strict"), (Mode::Lenient, "lenient")] {
            let v = validate_object(&docs[0], m).expect("istio object");
            let errs = v.errors.join("\n").to_lowercase();
            let warns = v.warnings.join("\n").to_lowercase();
            let ok = match (expect.as_str(), m, mode.as_str()) {
                ("valid", _, _) => v.errors.is_empty() && v.warnings.is_empty(),
                ("warning", _, _) => v.errors.is_empty() && warns.contains(&want),
                ("invalid", Mode::Lenient, "strict") => v.errors.is_empty(),
                ("invalid", _, _) => errs.contains(&want),
                _ => false,
            };
            if !ok {
                failures.push(format!("{} [{label}]: {:?}", f.display(), v));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
