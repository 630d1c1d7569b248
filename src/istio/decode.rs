//! Istio-style decoding of JSON values into the typed API: camelCase or snake_case field names,
//! enums by name or number, quoted integers, Go durations, lenient or strict unknown fields.
//! Every error names the field path (`spec.http[0].timeout: ...`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// A field path, built on the stack while walking a value and rendered only when a message needs it.
#[derive(Clone, Copy, Debug)]
pub enum Path<'a> {
    /// The root segment, e.g. `spec`.
    Root(&'a str),
    /// `parent.field`
    Field(&'a Path<'a>, &'a str),
    /// `parent[index]`
    Index(&'a Path<'a>, usize),
    /// `parent[key]` for map entries.
    Key(&'a Path<'a>, &'a str),
}

impl<'a> Path<'a> {
    /// The child path `self.name`.
    pub fn field<'b>(&'b self, name: &'b str) -> Path<'b> {
        Path::Field(self, name)
    }
    /// The child path `self[i]`.
    pub fn index(&self, i: usize) -> Path<'_> {
        Path::Index(self, i)
    }
    /// The child path `self[key]`.
    pub fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path::Key(self, key)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(s) => f.write_str(s),
            Path::Field(p, n) => write!(f, "{p}.{n}"),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
            Path::Key(p, k) => write!(f, "{p}[{k}]"),
        }
    }
}

/// Decoding state: the mode and the errors found so far.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Strict mode: unknown fields are errors (istioctl); lenient mode ignores them (webhook).
    pub strict: bool,
    /// Errors, each `path: message`, in document order.
    pub errors: Vec<String>,
    /// Field names written in proto (snake_case) spelling, as (JSON name, spelling used), so
    /// that messages can name fields the way the user wrote them.
    pub aliases: Vec<(String, String)>,
}

impl Decoder {
    /// A decoder in the given mode.
    pub fn new(strict: bool) -> Self {
        Decoder {
            strict,
            errors: Vec::new(),
            aliases: Vec::new(),
        }
    }

    /// Records an error at `path`.
    pub fn err(&mut self, path: &Path<'_>, msg: impl fmt::Display) {
        self.errors.push(format!("{path}: {msg}"));
    }

    /// Notes that `key` (a proto-style spelling of `field`) was used.
    pub fn note_alias(&mut self, field: &str, key: &str) {
        if !key.contains('_') {
            return;
        }
        let json = json_name(field);
        if json != key && !self.aliases.iter().any(|(j, k)| *j == json && k == key) {
            self.aliases.push((json, key.to_string()));
        }
    }

    /// Records an unknown field (strict mode only).
    pub fn unknown(&mut self, path: &Path<'_>) {
        if self.strict {
            self.err(path, "unknown field");
        }
    }
}

/// A type that can be decoded from a JSON value.
pub trait Decode: Sized {
    /// Decodes `v`; on failure records an error and returns `None`.
    fn decode(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Option<Self>;
}

/// How a struct field is filled from a JSON value (which may be `null`, meaning unset).
pub trait FieldValue: Sized {
    /// Decodes a field value; `null` and errors give the unset value.
    fn from_field(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Self;
}

impl<T: Decode> FieldValue for Option<T> {
    fn from_field(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Self {
        if v.is_null() {
            return None;
        }
        T::decode(v, p, d)
    }
}

impl<T: Decode> FieldValue for Vec<T> {
    fn from_field(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Self {
        match v {
            Value::Null => Vec::new(),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let ip = p.index(i);
                    if item.is_null() {
                        d.err(&ip, "must not be null");
                        continue;
                    }
                    if let Some(x) = T::decode(item, &ip, d) {
                        out.push(x);
                    }
                }
                out
            }
            _ => {
                d.err(p, format!("expected a list, got {}", kind_of(v)));
                Vec::new()
            }
        }
    }
}

/// Decodes a JSON object into a map, each key through `key` (an error message when it is bad).
fn decode_map<K: Ord, T: Decode>(
    v: &Value,
    p: &Path<'_>,
    d: &mut Decoder,
    key: impl Fn(&str) -> Result<K, String>,
) -> BTreeMap<K, T> {
    let mut out = BTreeMap::new();
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, item) in m {
                let kp = p.key(k);
                let parsed = match key(k) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        d.err(&kp, e);
                        continue;
                    }
                };
                if item.is_null() {
                    d.err(&kp, "must not be null");
                    continue;
                }
                if let Some(x) = T::decode(item, &kp, d) {
                    out.insert(parsed, x);
                }
            }
        }
        _ => d.err(p, format!("expected a map, got {}", kind_of(v))),
    }
    out
}

impl<T: Decode> FieldValue for BTreeMap<String, T> {
    fn from_field(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Self {
        decode_map(v, p, d, |k| Ok(k.to_string()))
    }
}

impl<T: Decode> FieldValue for BTreeMap<u32, T> {
    fn from_field(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Self {
        decode_map(v, p, d, |k| {
            k.trim()
                .parse::<u32>()
                .map_err(|_| format!("invalid map key {k:?}: expected an unsigned 32-bit integer"))
        })
    }
}

impl<T: Decode> Decode for BTreeMap<u32, T> {
    fn decode(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Option<Self> {
        if !v.is_object() {
            d.err(p, format!("expected a map, got {}", kind_of(v)));
            return None;
        }
        Some(FieldValue::from_field(v, p, d))
    }
}

impl<T: Decode> Decode for BTreeMap<String, T> {
    fn decode(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Option<Self> {
        if !v.is_object() {
            d.err(p, format!("expected a map, got {}", kind_of(v)));
            return None;
        }
        Some(FieldValue::from_field(v, p, d))
    }
}

/// The JSON type name of a value, for messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

macro_rules! plain_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn from_field(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Self {
                if v.is_null() {
                    return Default::default();
                }
                <$t as Decode>::decode(v, p, d).unwrap_or_default()
            }
        }
    )*};
}
plain_field!(String, bool, u32, i32, u64, i64, f64);

impl Decode for String {
    fn decode(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Option<Self> {
        match v {
            Value::String(s) => Some(s.clone()),
            _ => {
                d.err(p, format!("expected a string, got {}", kind_of(v)));
                None
            }
        }
    }
}

impl Decode for bool {
    fn decode(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(*b),
            _ => {
                d.err(p, format!("expected a boolean, got {}", kind_of(v)));
                None
            }
        }
    }
}

/// Reads an integer from a JSON number or a quoted integer string.
fn integer(v: &Value, p: &Path<'_>, d: &mut Decoder, what: &str) -> Option<i128> {
    let parsed = match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i as i128)
            } else if let Some(u) = n.as_u64() {
                Some(u as i128)
            } else {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e30)
                    .map(|f| f as i128)
            }
        }
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    if parsed.is_none() {
        d.err(p, format!("expected {what}, got {}", show(v)));
    }
    parsed
}

/// A short rendering of a value for messages.
pub fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let mut cut = 57;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

macro_rules! int_decode {
    ($($t:ty => $what:expr),*) => {$(
        impl Decode for $t {
            fn decode(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Option<Self> {
                let i = integer(v, p, d, $what)?;
                match <$t>::try_from(i) {
                    Ok(x) => Some(x),
                    Err(_) => {
                        d.err(p, format!("value {i} out of range for {}", $what));
                        None
                    }
                }
            }
        }
    )*};
}
int_decode!(
    u32 => "an unsigned 32-bit integer",
    i32 => "a 32-bit integer",
    u64 => "an unsigned 64-bit integer",
    i64 => "a 64-bit integer"
);

impl Decode for f64 {
    fn decode(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Option<Self> {
        let r = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => match s.trim() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                t => t.parse::<f64>().ok(),
            },
            _ => None,
        };
        if r.is_none() {
            d.err(p, format!("expected a number, got {}", show(v)));
        }
        r
    }
}

impl Decode for Value {
    fn decode(v: &Value, _p: &Path<'_>, _d: &mut Decoder) -> Option<Self> {
        Some(v.clone())
    }
}

/// protoc's JSON name of a proto field name (`per_try_timeout` -> `perTryTimeout`).
pub fn json_name(field: &str) -> String {
    let field = field.strip_prefix("r#").unwrap_or(field);
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a JSON key names the proto field `field` (its snake_case proto name or lowerCamel JSON name).
pub fn name_matches(key: &str, field: &str) -> bool {
    let field = field.strip_prefix("r#").unwrap_or(field);
    if key == field {
        return true;
    }
    // Compare `key` against protoc's JSON name of `field` without allocating.
    let mut kc = key.chars();
    let mut upper_next = false;
    for c in field.chars() {
        if c == '_' {
            upper_next = true;
            continue;
        }
        let want = if upper_next {
            c.to_ascii_uppercase()
        } else {
            c
        };
        upper_next = false;
        if kc.next() != Some(want) {
            return false;
        }
    }
    kc.next().is_none()
}

/// Declares a proto message: a struct with public fields, `Default`, and a [`Decode`] impl that
/// accepts both proto (snake_case) and JSON (camelCase) names and rejects unknown ones in strict mode.
macro_rules! message {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* $field:ident : $ty:ty ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name { $( $(#[$fm])* pub $field: $ty ),* }

        impl $crate::istio::decode::Decode for $name {
            #[allow(unused_variables, unused_mut)]
            fn decode(
                v: &serde_json::Value,
                p: &$crate::istio::decode::Path<'_>,
                d: &mut $crate::istio::decode::Decoder,
            ) -> Option<Self> {
                let Some(obj) = v.as_object() else {
                    d.err(p, format!("expected an object, got {}", $crate::istio::decode::kind_of(v)));
                    return None;
                };
                let mut out = Self::default();
                for (k, val) in obj {
                    let fp = p.field(k);
                    $(
                        if $crate::istio::decode::name_matches(k, stringify!($field)) {
                            d.note_alias(stringify!($field), k);
                            out.$field = $crate::istio::decode::FieldValue::from_field(val, &fp, d);
                            continue;
                        }
                    )*
                    d.unknown(&fp);
                }
                Some(out)
            }
        }

        impl $crate::istio::schema::Schema for $name {
            fn schema() -> serde_json::Value {
                $crate::istio::schema::message_schema(vec![
                    $( (stringify!($field), <$ty as $crate::istio::schema::Schema>::schema()), )*
                ])
            }
        }
    };
}
pub(crate) use message;

/// Declares a proto enum: decoded from its (case-sensitive) name or its number; unknown numbers are kept.
macro_rules! proto_enum {
    ($(#[$m:meta])* pub enum $name:ident { $( $variant:ident = $num:literal => $text:literal ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( #[doc = $text] $variant, )*
            /// A number that names no known value.
            Unknown(i32),
        }

        impl Default for $name {
            fn default() -> Self {
                Self::from_number(0)
            }
        }

        impl $name {
            /// The value for a proto enum number.
            pub fn from_number(n: i32) -> Self {
                match n {
                    $( $num => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }
            /// The proto enum number.
            pub fn number(self) -> i32 {
                match self {
                    $( Self::$variant => $num, )*
                    Self::Unknown(n) => n,
                }
            }
            /// The proto name (or the number for unknown values).
            pub fn name(self) -> String {
                match self {
                    $( Self::$variant => $text.to_string(), )*
                    Self::Unknown(n) => n.to_string(),
                }
            }
        }

        impl $crate::istio::decode::Decode for $name {
            fn decode(
                v: &serde_json::Value,
                p: &$crate::istio::decode::Path<'_>,
                d: &mut $crate::istio::decode::Decoder,
            ) -> Option<Self> {
                match v {
                    serde_json::Value::String(s) => match s.as_str() {
                        $( $text => Some(Self::$variant), )*
                        other => {
                            if let Ok(n) = other.parse::<i32>() {
                                return Some(Self::from_number(n));
                            }
                            let names: &[&str] = &[$($text),*];
                            d.err(p, format!(
                                "unknown value {:?} for enum {} (expected one of {})",
                                other, stringify!($name), names.join(", ")
                            ));
                            None
                        }
                    },
                    serde_json::Value::Number(n) => match n.as_i64().and_then(|x| i32::try_from(x).ok()) {
                        Some(x) => Some(Self::from_number(x)),
                        None => {
                            d.err(p, format!("invalid number {} for enum {}", n, stringify!($name)));
                            None
                        }
                    },
                    other => {
                        d.err(p, format!(
                            "expected a name or number for enum {}, got {}",
                            stringify!($name), $crate::istio::decode::kind_of(other)
                        ));
                        None
                    }
                }
            }
        }

        impl $crate::istio::schema::Schema for $name {
            fn schema() -> serde_json::Value {
                serde_json::json!({"x-kubernetes-int-or-string": true})
            }
        }

        impl $crate::istio::decode::FieldValue for $name {
            fn from_field(
                v: &serde_json::Value,
                p: &$crate::istio::decode::Path<'_>,
                d: &mut $crate::istio::decode::Decoder,
            ) -> Self {
                if v.is_null() {
                    return Self::default();
                }
                <Self as $crate::istio::decode::Decode>::decode(v, p, d).unwrap_or_default()
            }
        }
    };
}
pub(crate) use proto_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_matches("cors_policy", "cors_policy"));
        assert!(name_matches("corsPolicy", "cors_policy"));
        assert!(name_matches(
            "consecutive5xxErrors",
            "consecutive_5xx_errors"
        ));
        assert!(name_matches("match", "r#match"));
        assert!(!name_matches("loadbalancer", "load_balancer"));
        assert!(!name_matches("LoadBalancer", "load_balancer"));
        assert!(!name_matches("corsPolicyX", "cors_policy"));
        assert!(!name_matches("cors", "cors_policy"));
    }

    #[test]
    fn paths() {
        let root = Path::Root("spec");
        let http = root.field("http");
        let i = http.index(0);
        let h = i.field("headers");
        let k = h.key("x-a");
        assert_eq!(k.to_string(), "spec.http[0].headers[x-a]");
    }

    #[test]
    fn integers() {
        let mut d = Decoder::new(true);
        let p = Path::Root("x");
        assert_eq!(u32::decode(&serde_json::json!("80"), &p, &mut d), Some(80));
        assert_eq!(u32::decode(&serde_json::json!(-1), &p, &mut d), None);
        assert_eq!(i32::decode(&serde_json::json!(-1), &p, &mut d), Some(-1));
        assert_eq!(u32::decode(&serde_json::json!(1.5), &p, &mut d), None);
        assert_eq!(d.errors.len(), 2);
    }
}
