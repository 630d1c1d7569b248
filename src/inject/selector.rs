//! Kubernetes label selectors (`matchLabels` + `matchExpressions`) and their matching rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A `metav1.LabelSelector`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

/// Why a selector cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("operator {0:?} is not one of In, NotIn, Exists, DoesNotExist")]
    UnknownOperator(String),
    #[error("operator {op} on key {key:?} needs at least one value")]
    MissingValues { op: String, key: String },
    #[error("operator {op} on key {key:?} must not have values")]
    UnexpectedValues { op: String, key: String },
}

impl LabelSelector {
    /// Builds a selector from expressions only (used for webhook configurations).
    pub fn expressions(reqs: &[(&str, &str, &[&str])]) -> Self {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: reqs
                .iter()
                .map(|(k, op, vals)| Requirement {
                    key: (*k).to_string(),
                    operator: (*op).to_string(),
                    values: vals.iter().map(|v| (*v).to_string()).collect(),
                })
                .collect(),
        }
    }

    /// True when the selector has no requirements (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Checks that every requirement is well formed.
    pub fn validate(&self) -> Result<(), SelectorError> {
        for r in &self.match_expressions {
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => {
                    return Err(SelectorError::MissingValues {
                        op: r.operator.clone(),
                        key: r.key.clone(),
                    })
                }
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    return Err(SelectorError::UnexpectedValues {
                        op: r.operator.clone(),
                        key: r.key.clone(),
                    })
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => return Err(SelectorError::UnknownOperator(other.to_string())),
            }
        }
        Ok(())
    }

    /// Kubernetes matching: every label must be equal and every expression must hold.
    /// `NotIn` and `DoesNotExist` match when the key is absent. An invalid selector matches nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.validate().is_err() {
            return false;
        }
        let labels_ok = self
            .match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        labels_ok
            && self.match_expressions.iter().all(|r| {
                let got = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => got.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => got.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => got.is_some(),
                    "DoesNotExist" => got.is_none(),
                    _ => false,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operators() {
        let s = LabelSelector::expressions(&[("a", "NotIn", &["false"])]);
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "true")])));
        assert!(!s.matches(&labels(&[("a", "false")])));
        let s = LabelSelector::expressions(&[("a", "In", &["x", "y"]), ("b", "DoesNotExist", &[])]);
        assert!(s.matches(&labels(&[("a", "y")])));
        assert!(!s.matches(&labels(&[("a", "y"), ("b", "")])));
        assert!(!s.matches(&labels(&[])));
        let s = LabelSelector::expressions(&[("a", "Exists", &[])]);
        assert!(s.matches(&labels(&[("a", "")])));
    }

    #[test]
    fn invalid_selectors_match_nothing() {
        let s = LabelSelector::expressions(&[("a", "Like", &["x"])]);
        assert!(s.validate().is_err());
        assert!(!s.matches(&labels(&[("a", "x")])));
        let s = LabelSelector::expressions(&[("a", "In", &[])]);
        assert!(!s.matches(&labels(&[("a", "x")])));
    }

    #[test]
    fn match_labels_and_empty() {
        let s: LabelSelector = serde_json::from_str(r#"{"matchLabels":{"app":"x"}}"#).unwrap();
        assert!(s.matches(&labels(&[("app", "x"), ("o", "p")])));
        assert!(!s.matches(&labels(&[("app", "y")])));
        assert!(LabelSelector::default().is_empty());
    }
}
