//! The injection decision: stage A (which webhook of Istio's MutatingWebhookConfiguration the
//! API server calls, from namespace and pod labels) and stage B (`injectRequired` inside the
//! webhook). Both are pure functions.

use std::collections::BTreeMap;

use serde::Serialize;

use super::selector::LabelSelector;
use crate::config::{InjectorConfig, Policy};

/// Namespaces Istio never injects, whatever their labels say.
pub const IGNORED_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

pub const INJECT_ANNOTATION: &str = "sidecar.istio.io/inject";

/// Why a pod is or is not injected (stage B).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Inject,
    Skip(SkipReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    HostNetwork,
    IgnoredNamespace(String),
    ExplicitlyDisabled,
    NeverInjectSelector,
    PolicyDisabled,
    UnknownPolicy(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::HostNetwork => write!(f, "has host networking enabled"),
            SkipReason::IgnoredNamespace(ns) => write!(f, "is in the ignored namespace {ns:?}"),
            SkipReason::ExplicitlyDisabled => {
                write!(f, "has {INJECT_ANNOTATION}=false (label or annotation)")
            }
            SkipReason::NeverInjectSelector => write!(f, "matches a neverInjectSelector"),
            SkipReason::PolicyDisabled => {
                write!(f, "has no injection request and the policy is disabled")
            }
            SkipReason::UnknownPolicy(p) => write!(f, "hit an unknown injection policy {p:?}"),
        }
    }
}

/// What stage B needs to know about a pod.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    pub namespace: &'a str,
    pub host_network: bool,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
}

/// Istio's `injectRequired`: hostNetwork > ignored namespace > label > annotation >
/// neverInjectSelector > alwaysInjectSelector > policy.
pub fn inject_required(cfg: &InjectorConfig, pod: PodFacts<'_>) -> Decision {
    if pod.host_network {
        return Decision::Skip(SkipReason::HostNetwork);
    }
    if IGNORED_NAMESPACES.contains(&pod.namespace) {
        return Decision::Skip(SkipReason::IgnoredNamespace(pod.namespace.to_string()));
    }
    let raw = pod
        .labels
        .get(INJECT_ANNOTATION)
        .or_else(|| pod.annotations.get(INJECT_ANNOTATION));
    let mut explicit: Option<bool> = match raw.map(String::as_str) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some("") | None => None,
        Some(other) => {
            tracing::warn!(
                value = other,
                "invalid {INJECT_ANNOTATION} value; using the defaults"
            );
            None
        }
    };
    if explicit.is_none() {
        if first_match(&cfg.never_inject_selector, pod.labels) {
            explicit = Some(false);
        } else if first_match(&cfg.always_inject_selector, pod.labels) {
            explicit = Some(true);
        }
    }
    let inject = match &cfg.policy {
        Policy::Enabled => explicit.unwrap_or(true),
        Policy::Disabled => explicit.unwrap_or(false),
        Policy::Other(p) => return Decision::Skip(SkipReason::UnknownPolicy(p.clone())),
    };
    if inject {
        return Decision::Inject;
    }
    Decision::Skip(match explicit {
        Some(false) if raw.map(String::as_str) == Some("false") => SkipReason::ExplicitlyDisabled,
        Some(false) => SkipReason::NeverInjectSelector,
        _ => SkipReason::PolicyDisabled,
    })
}

fn first_match(selectors: &[LabelSelector], labels: &BTreeMap<String, String>) -> bool {
    selectors.iter().any(|s| {
        if let Err(e) = s.validate() {
            tracing::warn!(error = %e, "invalid injection selector skipped");
            return false;
        }
        !s.is_empty() && s.matches(labels)
    })
}

/// One webhook entry of Istio's sidecar-injector MutatingWebhookConfiguration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEntry {
    /// Unique name, e.g. `namespace.sidecar-injector.istio.io`.
    pub name: String,
    /// The revision (or tag) whose istiod serves it.
    pub revision: String,
    pub namespace_selector: LabelSelector,
    pub object_selector: LabelSelector,
}

/// The webhook entries an install of `revision` renders (`""` = the default revision), as in
/// Istio's `mutatingwebhook.yaml`.
pub fn webhook_entries(revision: &str, enable_namespaces_by_default: bool) -> Vec<WebhookEntry> {
    let r = if revision.is_empty() {
        "default"
    } else {
        revision
    };
    let entry = |name: &str, ns: LabelSelector, obj: LabelSelector| WebhookEntry {
        name: name.to_string(),
        revision: r.to_string(),
        namespace_selector: ns,
        object_selector: obj,
    };
    let mut out = vec![
        entry(
            "rev.namespace.sidecar-injector.istio.io",
            LabelSelector::expressions(&[
                ("istio.io/rev", "In", &[r]),
                ("istio-injection", "DoesNotExist", &[]),
            ]),
            LabelSelector::expressions(&[(INJECT_ANNOTATION, "NotIn", &["false"])]),
        ),
        entry(
            "rev.object.sidecar-injector.istio.io",
            LabelSelector::expressions(&[
                ("istio.io/rev", "DoesNotExist", &[]),
                ("istio-injection", "DoesNotExist", &[]),
            ]),
            LabelSelector::expressions(&[
                (INJECT_ANNOTATION, "NotIn", &["false"]),
                ("istio.io/rev", "In", &[r]),
            ]),
        ),
    ];
    if revision.is_empty() {
        out.push(entry(
            "namespace.sidecar-injector.istio.io",
            LabelSelector::expressions(&[("istio-injection", "In", &["enabled"])]),
            LabelSelector::expressions(&[(INJECT_ANNOTATION, "NotIn", &["false"])]),
        ));
        out.push(entry(
            "object.sidecar-injector.istio.io",
            LabelSelector::expressions(&[
                ("istio-injection", "DoesNotExist", &[]),
                ("istio.io/rev", "DoesNotExist", &[]),
            ]),
            LabelSelector::expressions(&[
                (INJECT_ANNOTATION, "In", &["true"]),
                ("istio.io/rev", "DoesNotExist", &[]),
            ]),
        ));
        if enable_namespaces_by_default {
            out.push(entry(
                "auto.sidecar-injector.istio.io",
                LabelSelector::expressions(&[
                    ("istio-injection", "DoesNotExist", &[]),
                    ("istio.io/rev", "DoesNotExist", &[]),
                    ("kubernetes.io/metadata.name", "NotIn", IGNORED_NAMESPACES),
                ]),
                LabelSelector::expressions(&[
                    (INJECT_ANNOTATION, "DoesNotExist", &[]),
                    ("istio.io/rev", "DoesNotExist", &[]),
                ]),
            ));
        }
    }
    out
}

/// Stage A: the webhook entries (over every install) that the API server would call for a pod
/// with these labels in a namespace with these labels.
pub fn matching_webhooks<'a>(
    entries: &'a [WebhookEntry],
    namespace_labels: &BTreeMap<String, String>,
    pod_labels: &BTreeMap<String, String>,
) -> Vec<&'a WebhookEntry> {
    entries
        .iter()
        .filter(|e| {
            e.namespace_selector.matches(namespace_labels) && e.object_selector.matches(pod_labels)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Stage A + stage B together: which revision injects, if any.
    fn outcome(
        cfg: &InjectorConfig,
        ns_name: &str,
        ns: &[(&str, &str)],
        pod_labels: &[(&str, &str)],
        pod_ann: &[(&str, &str)],
        host_network: bool,
    ) -> Option<String> {
        let mut entries = webhook_entries("", false);
        entries.extend(webhook_entries("canary", false));
        let mut ns_labels = m(ns);
        ns_labels.insert("kubernetes.io/metadata.name".into(), ns_name.into());
        let (pl, pa) = (m(pod_labels), m(pod_ann));
        let called = matching_webhooks(&entries, &ns_labels, &pl);
        assert!(
            called.len() <= 1,
            "more than one webhook called: {called:?}"
        );
        let hook = called.first()?;
        let facts = PodFacts {
            namespace: ns_name,
            host_network,
            labels: &pl,
            annotations: &pa,
        };
        (inject_required(cfg, facts) == Decision::Inject).then(|| hook.revision.clone())
    }

    const INJ: &str = INJECT_ANNOTATION;

    #[test]
    fn truth_table_of_the_spec() {
        let cfg = InjectorConfig::default();
        let en = [("istio-injection", "enabled")];
        let d = Some("default".to_string());
        // 1-6
        assert_eq!(outcome(&cfg, "app", &en, &[], &[], false), d);
        assert_eq!(
            outcome(&cfg, "app", &en, &[(INJ, "false")], &[], false),
            None
        );
        assert_eq!(
            outcome(&cfg, "app", &en, &[], &[(INJ, "false")], false),
            None
        );
        assert_eq!(
            outcome(&cfg, "app", &en, &[(INJ, "true")], &[(INJ, "false")], false),
            d
        );
        assert_eq!(
            outcome(&cfg, "app", &en, &[(INJ, "false")], &[(INJ, "true")], false),
            None
        );
        assert_eq!(
            outcome(
                &cfg,
                "app",
                &[("istio-injection", "disabled")],
                &[(INJ, "true")],
                &[],
                false
            ),
            None
        );
        // 7-10
        assert_eq!(outcome(&cfg, "app", &[], &[(INJ, "true")], &[], false), d);
        assert_eq!(
            outcome(&cfg, "app", &[], &[], &[(INJ, "true")], false),
            None
        );
        assert_eq!(
            outcome(&cfg, "app", &[], &[("istio.io/rev", "default")], &[], false),
            d
        );
        assert_eq!(
            outcome(
                &cfg,
                "app",
                &[],
                &[(INJ, "true"), ("istio.io/rev", "canary")],
                &[],
                false
            ),
            Some("canary".into())
        );
        // 11-13
        assert_eq!(
            outcome(&cfg, "app", &[("istio.io/rev", "default")], &[], &[], false),
            d
        );
        assert_eq!(
            outcome(&cfg, "app", &[("istio.io/rev", "canary")], &[], &[], false),
            Some("canary".into())
        );
        assert_eq!(
            outcome(
                &cfg,
                "app",
                &[("istio-injection", "enabled"), ("istio.io/rev", "canary")],
                &[],
                &[],
                false
            ),
            d
        );
        // 14-16
        assert_eq!(outcome(&cfg, "app", &en, &[], &[], true), None);
        assert_eq!(outcome(&cfg, "kube-system", &en, &[], &[], false), None);
        assert_eq!(outcome(&cfg, "app", &[], &[], &[], false), None);
    }

    #[test]
    fn truth_table_policy_and_selectors() {
        let en = [("istio-injection", "enabled")];
        let d = Some("default".to_string());
        // 17: policy disabled
        let mut cfg = InjectorConfig {
            policy: Policy::Disabled,
            ..Default::default()
        };
        assert_eq!(outcome(&cfg, "app", &en, &[], &[], false), None);
        assert_eq!(outcome(&cfg, "app", &en, &[], &[(INJ, "true")], false), d);
        cfg.always_inject_selector = vec![LabelSelector {
            match_labels: m(&[("always", "yes")]),
            ..Default::default()
        }];
        assert_eq!(
            outcome(&cfg, "app", &en, &[("always", "yes")], &[], false),
            d
        );
        // 18: neverInjectSelector
        let cfg = InjectorConfig {
            never_inject_selector: vec![LabelSelector {
                match_labels: m(&[("never", "yes")]),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            outcome(&cfg, "app", &en, &[("never", "yes")], &[], false),
            None
        );
        assert_eq!(
            outcome(
                &cfg,
                "app",
                &en,
                &[("never", "yes")],
                &[(INJ, "true")],
                false
            ),
            d
        );
    }

    #[test]
    fn auto_webhook_only_when_enabled_by_default() {
        let entries = webhook_entries("", true);
        let ns = m(&[("kubernetes.io/metadata.name", "app")]);
        let hooks = matching_webhooks(&entries, &ns, &m(&[]));
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].name, "auto.sidecar-injector.istio.io");
        let ks = m(&[("kubernetes.io/metadata.name", "kube-system")]);
        assert!(matching_webhooks(&entries, &ks, &m(&[])).is_empty());
    }

    #[test]
    fn unknown_policy_and_odd_values() {
        let cfg = InjectorConfig {
            policy: Policy::Other("sometimes".into()),
            ..Default::default()
        };
        let l = m(&[]);
        let facts = PodFacts {
            namespace: "a",
            host_network: false,
            labels: &l,
            annotations: &l,
        };
        assert_eq!(
            inject_required(&cfg, facts),
            Decision::Skip(SkipReason::UnknownPolicy("sometimes".into()))
        );
        let odd = m(&[(INJ, "yes")]);
        let facts = PodFacts {
            namespace: "a",
            host_network: false,
            labels: &odd,
            annotations: &l,
        };
        assert_eq!(
            inject_required(&InjectorConfig::default(), facts),
            Decision::Inject
        );
    }
}
