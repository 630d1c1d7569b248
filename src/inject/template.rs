//! Injection templates: minijinja sources built into the binary from `templates/`, replaced by
//! files of `--templates DIR` and by the injector config's `templates`; rendering a template with
//! the injection context and parsing its YAML output.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::{Kwargs, Value as JValue};
use minijinja::{Environment, Error as JError, ErrorKind, UndefinedBehavior};
use serde_json::Value;
use thiserror::Error;

/// Templates compiled into the binary: name → source.
pub const BUILTIN: &[(&str, &str)] = &[
    ("sidecar", include_str!("../../templates/sidecar.yaml")),
    ("gateway", include_str!("../../templates/gateway.yaml")),
    (
        "grpc-agent",
        include_str!("../../templates/grpc-agent.yaml"),
    ),
    (
        "grpc-simple",
        include_str!("../../templates/grpc-simple.yaml"),
    ),
];

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("template {name:?} looks like an Istio Go template; meshd templates are minijinja (write {{{{ values.global.hub }}}} and {{% if %}}…{{% endif %}}, not {{{{ .Values.global.hub }}}}); see templates/README.md")]
    GoTemplate { name: String },
    #[error("template {name:?} does not compile: {source}")]
    Compile {
        name: String,
        #[source]
        source: JError,
    },
    #[error("cannot read templates from {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("requested template {name:?} not found; have {have}")]
    NotFound { name: String, have: String },
    #[error("template {name:?} failed to render: {detail}")]
    Render { name: String, detail: String },
    #[error("template {name:?} rendered invalid YAML: {source}")]
    Output {
        name: String,
        #[source]
        source: serde_norway::Error,
    },
}

/// The compiled template set.
pub struct Templates {
    env: Environment<'static>,
    names: Vec<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.names)
            .finish()
    }
}

/// True when a template source uses Go template syntax (`{{ .Values… }}`, `{{ end }}`, …).
fn looks_like_go_template(src: &str) -> bool {
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        let after = rest[i + 2..].trim_start_matches('-').trim_start();
        let word: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        if after.starts_with('.')
            || after.starts_with('$')
            || matches!(
                word.as_str(),
                "end" | "range" | "define" | "template" | "with"
            )
            || (matches!(word.as_str(), "if" | "else") && !after.starts_with("if("))
        {
            return true;
        }
        rest = &rest[i + 2..];
    }
    false
}

impl Templates {
    /// Builds the set: built-ins, then `*.yaml`/`*.j2` files of `dir` (file stem = name),
    /// then `extra` (from the injector config), each shadowing earlier ones of the same name.
    pub fn load(
        dir: Option<&Path>,
        extra: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let mut sources: BTreeMap<String, String> = BUILTIN
            .iter()
            .map(|(n, s)| ((*n).to_string(), (*s).to_string()))
            .collect();
        if let Some(dir) = dir {
            let io = |source| TemplateError::Io {
                path: dir.display().to_string(),
                source,
            };
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .map_err(io)?
                .collect::<Result<_, _>>()
                .map_err(io)?;
            entries.sort_by_key(|e| e.path());
            for entry in entries {
                let path = entry.path();
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if !matches!(ext, "yaml" | "yml" | "j2") {
                    continue;
                }
                let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                let text = std::fs::read_to_string(&path).map_err(|source| TemplateError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                sources.insert(name.to_string(), text);
            }
        }
        for (name, src) in extra {
            sources.insert(name.clone(), src.clone());
        }
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.add_function("annotation", fn_annotation);
        env.add_function("isset", fn_isset);
        env.add_function("exclude_inbound_port", fn_exclude_inbound_port);
        let mut names = Vec::new();
        for (name, src) in sources {
            if looks_like_go_template(&src) {
                return Err(TemplateError::GoTemplate { name });
            }
            env.add_template_owned(name.clone(), src)
                .map_err(|source| TemplateError::Compile {
                    name: name.clone(),
                    source,
                })?;
            names.push(name);
        }
        Ok(Templates { env, names })
    }

    /// Template names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Renders one template to text.
    pub fn render_text(&self, name: &str, ctx: &JValue) -> Result<String, TemplateError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|_| TemplateError::NotFound {
                name: name.to_string(),
                have: self.names.join(", "),
            })?;
        tmpl.render(ctx).map_err(|e| TemplateError::Render {
            name: name.to_string(),
            detail: render_detail(&e),
        })
    }

    /// Renders one template and parses its YAML output.
    pub fn render(&self, name: &str, ctx: &JValue) -> Result<Value, TemplateError> {
        let text = self.render_text(name, ctx)?;
        let parse_full = || {
            serde_norway::from_str::<Value>(&text).map_err(|source| TemplateError::Output {
                name: name.to_string(),
                source,
            })
        };
        // The fast parser covers what templates normally emit; anything else goes to the full
        // YAML parser. Debug builds (every test) check that both agree.
        let v: Value = match super::fastyaml::parse(&text) {
            Some(v) => {
                debug_assert_eq!(
                    Some(&v),
                    parse_full().ok().as_ref(),
                    "fast YAML parse differs for:\n{text}"
                );
                v
            }
            None => parse_full()?,
        };
        Ok(if v.is_null() {
            Value::Object(Default::default())
        } else {
            v
        })
    }
}

fn render_detail(e: &JError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// `annotation(annotations, key, default)`: the annotation if present (even empty), else default.
fn fn_annotation(map: JValue, key: &str, default: Option<JValue>) -> Result<JValue, JError> {
    match map.get_attr(key) {
        Ok(v) if !v.is_undefined() && !v.is_none() => Ok(v),
        _ => Ok(default.unwrap_or_else(|| JValue::from(""))),
    }
}

/// `isset(map, key)`: whether the key is present.
fn fn_isset(map: JValue, key: &str) -> bool {
    map.get_attr(key)
        .map(|v| !v.is_undefined())
        .unwrap_or(false)
}

/// `exclude_inbound_port(port, ports)`: the excluded inbound ports with the status port added
/// (unless it is 0 or already listed).
fn fn_exclude_inbound_port(
    port: JValue,
    ports: JValue,
    _kw: Option<Kwargs>,
) -> Result<String, JError> {
    let port = port.to_string();
    let ports = if ports.is_undefined() || ports.is_none() {
        String::new()
    } else {
        ports.to_string()
    };
    if port.is_empty() || port == "0" {
        return Ok(ports);
    }
    if port.parse::<u32>().is_err() {
        return Err(JError::new(
            ErrorKind::InvalidOperation,
            format!("status port {port:?} is not a number"),
        ));
    }
    let trimmed = ports.trim();
    if trimmed.is_empty() {
        return Ok(port);
    }
    if trimmed.split(',').any(|p| p.trim() == port) {
        return Ok(ports);
    }
    Ok(format!("{ports},{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_go_templates() {
        assert!(looks_like_go_template("image: {{ .Values.global.hub }}"));
        assert!(looks_like_go_template("{{- if .Values.x }}a{{ end }}"));
        assert!(looks_like_go_template("{{ $x := 1 }}"));
        assert!(!looks_like_go_template(
            "image: {{ values.global.hub }}\n{% if x %}y{% endif %}"
        ));
    }

    #[test]
    fn go_template_override_is_rejected_with_guidance() {
        let extra = [("sidecar".to_string(), "a: {{ .Values.x }}".to_string())]
            .into_iter()
            .collect();
        let err = Templates::load(None, &extra).unwrap_err().to_string();
        assert!(
            err.contains("Go template") && err.contains("minijinja"),
            "{err}"
        );
    }

    #[test]
    fn unknown_template_lists_the_known_ones() {
        let t = Templates::load(None, &BTreeMap::new()).unwrap();
        let err = t.render("nope", &JValue::from(())).unwrap_err().to_string();
        assert!(
            err.contains("\"nope\" not found") && err.contains("sidecar"),
            "{err}"
        );
    }

    #[test]
    fn exclude_inbound_port_rules() {
        let f = |p: &str, l: &str| {
            fn_exclude_inbound_port(JValue::from(p), JValue::from(l), None).unwrap()
        };
        assert_eq!(f("15020", ""), "15020");
        assert_eq!(f("15020", "4,5"), "4,5,15020");
        assert_eq!(f("15020", "15020,4"), "15020,4");
        assert_eq!(f("0", "4"), "4");
    }

    #[test]
    fn custom_template_from_dir_and_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("extra.yaml"),
            "spec:\n  hostname: {{ annotation(annotations, 'h', 'x') | tojson }}\n",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path()), &BTreeMap::new()).unwrap();
        let ctx = JValue::from_serialize(serde_json::json!({"annotations": {"h": "y"}}));
        assert_eq!(
            t.render("extra", &ctx).unwrap(),
            serde_json::json!({"spec": {"hostname": "y"}})
        );
    }
}
