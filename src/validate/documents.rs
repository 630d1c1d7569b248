//! Splitting YAML/JSON text into Kubernetes objects as JSON values (multi-document YAML, `List`
//! objects flattened). Pure: text in, values out; syntax errors carry the line.

use serde::Deserialize;
use serde_json::Value;

/// A syntax error in a YAML or JSON document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct SyntaxError {
    /// 1-based line of the error, when known.
    pub line: Option<usize>,
    /// The parser's message.
    pub message: String,
}

/// Parses multi-document YAML (JSON is YAML too) into objects; empty documents are skipped and
/// `kind: List` objects are replaced by their `items`.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, SyntaxError> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = serde_norway::Value::deserialize(doc).map_err(|e| SyntaxError {
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?;
        let json = yaml_to_json(v);
        push_object(&mut out, json);
    }
    Ok(out)
}

/// Parses a JSON text (one object, or a `List`).
pub fn parse_json(text: &str) -> Result<Vec<Value>, SyntaxError> {
    let v: Value = serde_json::from_str(text).map_err(|e| SyntaxError {
        line: Some(e.line()),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    push_object(&mut out, v);
    Ok(out)
}

fn push_object(out: &mut Vec<Value>, v: Value) {
    if v.is_null() {
        return;
    }
    let is_list = v.get("kind").and_then(Value::as_str) == Some("List")
        && v.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Some(Value::Array(items)) = v.get("items") {
            for item in items {
                push_object(out, item.clone());
            }
        }
        return;
    }
    out.push(v);
}

/// Converts a YAML value to JSON; non-string map keys become strings (`15090: {...}`).
pub fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut obj = serde_json::Map::with_capacity(m.len());
            for (k, v) in m {
                let key = match yaml_to_json(k) {
                    Value::String(s) => s,
                    Value::Null => "null".to_string(),
                    other => other.to_string(),
                };
                obj.insert(key, yaml_to_json(v));
            }
            Value::Object(obj)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_doc_and_int_keys() {
        let docs = parse_documents("a: 1\n---\n---\nb:\n  15090: x\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["b"]["15090"], "x");
    }

    #[test]
    fn syntax_error_line() {
        let e = parse_documents("a: 1\nb: [\n").unwrap_err();
        assert!(e.line.is_some());
    }

    #[test]
    fn lists() {
        let docs = parse_documents("kind: List\nitems:\n- a: 1\n- b: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }
}
