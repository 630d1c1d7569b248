//! A fast parser for the block-YAML subset injection templates emit (block mappings and
//! sequences, JSON scalars from `tojson`, plain words, integers, booleans and null). Anything
//! outside that subset returns `None` and the caller uses the full YAML parser, so the result is
//! always what `serde_norway` would produce; a test checks the two agree.

use serde_json::{Map, Value};

struct Line<'a> {
    indent: usize,
    text: &'a str,
}

/// Parses `text`, or `None` when it uses anything beyond the supported subset.
pub fn parse(text: &str) -> Option<Value> {
    let mut lines = Vec::new();
    for raw in text.lines() {
        if raw.contains('\t') {
            return None;
        }
        let trimmed = raw.trim_start_matches(' ');
        if trimmed.trim().is_empty() {
            continue;
        }
        if trimmed.starts_with('#')
            || trimmed.starts_with("---")
            || trimmed.starts_with("...")
            || trimmed.starts_with('%')
        {
            return None;
        }
        lines.push(Line {
            indent: raw.len() - trimmed.len(),
            text: trimmed.trim_end(),
        });
    }
    if lines.is_empty() {
        return Some(Value::Null);
    }
    let mut p = Parser { lines, i: 0 };
    let indent = p.lines[0].indent;
    let v = p.node(indent)?;
    (p.i == p.lines.len()).then_some(v)
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    i: usize,
}

fn is_seq_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// `key: value` / `key:` with a plain key; `None` when the line is not a mapping entry.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let (key, rest) = match text.find(": ") {
        Some(i) => (&text[..i], text[i + 2..].trim_start()),
        None => (text.strip_suffix(':')?, ""),
    };
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !key.starts_with(['-', '.']);
    ok.then_some((key, rest))
}

fn scalar(s: &str) -> Option<Value> {
    let first = s.chars().next()?;
    match first {
        '"' | '{' | '[' => serde_json::from_str(s).ok(),
        '\'' | '!' | '&' | '*' | '|' | '>' | '%' | '@' | '`' | '?' | ',' | '#' | '~' => None,
        _ => {
            if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
                return None;
            }
            match s {
                "true" => return Some(Value::Bool(true)),
                "false" => return Some(Value::Bool(false)),
                "null" => return Some(Value::Null),
                _ => {}
            }
            let lower = s.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "true"
                    | "false"
                    | "null"
                    | "yes"
                    | "no"
                    | "on"
                    | "off"
                    | "y"
                    | "n"
                    | ".inf"
                    | ".nan"
            ) {
                return None;
            }
            let digits = s.strip_prefix('-').unwrap_or(s);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                if digits.len() > 1 && digits.starts_with('0') {
                    return None;
                }
                return s.parse::<i64>().ok().map(Value::from);
            }
            // Anything that could be a YAML number (`1e3`, `-.5`, `+1`, `.inf`) is left to the
            // full parser; `--domain` and `-p` are plain strings.
            let second = s.chars().nth(1);
            let numeric_start = first.is_ascii_digit()
                || first == '.'
                || (matches!(first, '-' | '+')
                    && second.is_none_or(|c| c.is_ascii_digit() || c == '.'));
            if numeric_start {
                return None;
            }
            Some(Value::String(s.to_string()))
        }
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Line<'a>> {
        self.lines.get(self.i)
    }

    fn node(&mut self, indent: usize) -> Option<Value> {
        let line = self.peek()?;
        if line.indent != indent {
            return None;
        }
        if is_seq_item(line.text) {
            self.sequence(indent)
        } else {
            self.mapping(indent)
        }
    }

    /// The value after `key:` with nothing on the line: a nested block, a sequence at the same
    /// indent, or null.
    fn block_value(&mut self, indent: usize) -> Option<Value> {
        match self.peek() {
            Some(next) if next.indent > indent => {
                let ni = next.indent;
                self.node(ni)
            }
            Some(next) if next.indent == indent && is_seq_item(next.text) => self.sequence(indent),
            _ => Some(Value::Null),
        }
    }

    fn mapping(&mut self, indent: usize) -> Option<Value> {
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            let (line_indent, line_text): (usize, &'a str) = (line.indent, line.text);
            if line_indent < indent || (line_indent == indent && is_seq_item(line_text)) {
                break;
            }
            if line_indent > indent {
                return None;
            }
            let (key, rest) = split_key(line_text)?;
            self.i += 1;
            let value = if rest.is_empty() {
                self.block_value(indent)?
            } else {
                scalar(rest)?
            };
            if map.insert(key.to_string(), value).is_some() {
                return None;
            }
        }
        Some(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            let (line_indent, line_text): (usize, &'a str) = (line.indent, line.text);
            if line_indent != indent || !is_seq_item(line_text) {
                if line_indent > indent {
                    return None;
                }
                break;
            }
            let content: &'a str = line_text[1..].trim_start();
            if content.is_empty() {
                self.i += 1;
                items.push(match self.peek() {
                    Some(next) if next.indent > indent => {
                        let ni = next.indent;
                        self.node(ni)?
                    }
                    _ => Value::Null,
                });
            } else if split_key(content).is_some() {
                // `- key: value`: a mapping whose keys sit where `key` starts; this line is
                // re-read as its first entry.
                let inner = indent + (line_text.len() - content.len());
                let idx = self.i;
                self.lines[idx] = Line {
                    indent: inner,
                    text: content,
                };
                items.push(self.mapping(inner)?);
            } else {
                self.i += 1;
                items.push(scalar(content)?);
            }
        }
        Some(Value::Array(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_yaml(text: &str) {
        let full: Value = serde_norway::from_str(text).unwrap();
        assert_eq!(parse(text), Some(full), "{text}");
    }

    #[test]
    fn agrees_with_the_yaml_parser_on_the_subset() {
        same_as_yaml("a: 1\nb:\n  c: \"x\"\n  d:\n  - e\n  - f: true\n    g: null\n  - {\"h\":[1,2]}\nk: {}\nm: /path/x\nn: -5\no:\n- --domain\n- -p\n");
        same_as_yaml("spec:\n  containers:\n  - name: istio-proxy\n    args:\n    - proxy\n    - \"--domain\"\n    emptyDir:\n  volumes:\n  - name: v\n    emptyDir: null\n");
    }

    #[test]
    fn leaves_everything_else_to_the_yaml_parser() {
        for text in [
            "a: yes",
            "a: 1.5",
            "a: 'x'",
            "a: &x 1",
            "a: |\n  x",
            "# c\na: 1",
            "a: 1\na: 2",
            "a: 0x10",
            "a: True",
            "- a\nb: 1",
            "a:\n    b: 1\n  c: 2",
            "a: b: c",
            "a: 012",
            "a: -.5",
            "a: +1",
            "a: 1e3",
            "l:\\n- - 1\\n  - 2",
        ] {
            assert_eq!(parse(text), None, "{text:?} must fall back");
        }
    }
}
