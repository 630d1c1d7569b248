//! `meshd validate -f FILE…`: strict offline validation like `istioctl validate`.
//! Reads files, directories (recursing over *.yaml, *.yml, *.json) or stdin (`-`); prints each
//! invalid object's errors on stdout and warnings as `Warning: …` on stderr.
//! Exit status: 0 all valid, 1 some invalid, 2 usage or I/O error.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::validate::documents::{parse_documents, parse_json};
use crate::validate::{validate_object, Mode, ValidateError};

/// Arguments of `meshd validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// File, directory or `-` (stdin) to validate; may be repeated.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub files: Vec<String>,
}

/// Totals of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Istio objects validated.
    pub validated: usize,
    /// Objects (or documents) found invalid.
    pub invalid: usize,
    /// Files that could not be read.
    pub io_errors: usize,
}

impl Summary {
    /// The exit status: 2 on I/O errors, 1 when something is invalid, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.io_errors > 0 {
            2
        } else if self.invalid > 0 {
            1
        } else {
            0
        }
    }
}

/// Runs `meshd validate`, writing to the process's stdout/stderr; returns the exit status.
pub fn run(args: &Args) -> i32 {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let summary = run_with(args, &mut std::io::stdin(), &mut out, &mut err);
    let _ = out.flush();
    summary.exit_code()
}

/// Runs `meshd validate` with explicit streams.
pub fn run_with(
    args: &Args,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Summary {
    let mut s = Summary::default();
    for f in &args.files {
        if f == "-" {
            let mut text = String::new();
            match stdin.read_to_string(&mut text) {
                Ok(_) => check_text("<stdin>", &text, false, &mut s, out, err),
                Err(e) => {
                    let _ = writeln!(err, "Error: <stdin>: {e}");
                    s.io_errors += 1;
                }
            }
            continue;
        }
        let path = PathBuf::from(f);
        if path.is_dir() {
            let mut files = Vec::new();
            if let Err(e) = collect_dir(&path, &mut files) {
                let _ = writeln!(err, "Error: {f}: {e}");
                s.io_errors += 1;
            }
            for p in files {
                check_file(&p, &mut s, out, err);
            }
        } else {
            check_file(&path, &mut s, out, err);
        }
    }
    if s.invalid > 0 {
        let _ = writeln!(
            err,
            "Error: {} invalid object(s) or document(s) found",
            s.invalid
        );
    }
    s
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_dir(&p, out)?;
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(())
}

fn check_file(path: &Path, s: &mut Summary, out: &mut dyn Write, err: &mut dyn Write) {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let json = path.extension().and_then(|e| e.to_str()) == Some("json");
            check_text(&name, &text, json, s, out, err);
        }
        Err(e) => {
            let _ = writeln!(err, "Error: {name}: {e}");
            s.io_errors += 1;
        }
    }
}

fn check_text(
    name: &str,
    text: &str,
    json: bool,
    s: &mut Summary,
    out: &mut dyn Write,
    err: &mut dyn Write,
) {
    let docs = if json {
        parse_json(text)
    } else {
        parse_documents(text)
    };
    let docs = match docs {
        Ok(d) => d,
        Err(e) => {
            let line = e.line.map(|l| format!(":{l}")).unwrap_or_default();
            let _ = writeln!(out, "{name}{line}: syntax error: {}", e.message);
            s.invalid += 1;
            return;
        }
    };
    for (i, doc) in docs.iter().enumerate() {
        match validate_object(doc, Mode::Strict) {
            Ok(v) => {
                s.validated += 1;
                for w in &v.warnings {
                    let _ = writeln!(err, "Warning: {w}");
                }
                if !v.errors.is_empty() {
                    s.invalid += 1;
                    for e in &v.errors {
                        let _ = writeln!(out, "{name}: {e}");
                    }
                }
            }
            Err(ValidateError::NotIstio { .. }) => {}
            Err(e) => {
                s.invalid += 1;
                let _ = writeln!(out, "{name}: document {}: {e}", i + 1);
            }
        }
    }
}
