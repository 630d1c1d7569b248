//! The ADS state-of-the-world protocol as a pure state machine: per-type watches, nonce/ACK/NACK handling
//! (Istio's `ShouldRespond`), wildcard vs named subscriptions, push order and EDS-after-CDS warming.
//! No I/O and no clocks; the tonic server drives it.

use std::collections::{BTreeMap, BTreeSet};

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// Istio's push order: make-before-break.
pub const PUSH_ORDER: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];

/// CDS and LDS are wildcard ("send me everything"); RDS and EDS are named.
pub fn is_wildcard(type_url: &str) -> bool {
    type_url == CLUSTER || type_url == LISTENER
}

/// Short name for logs and metrics (`cds`, `eds`, `lds`, `rds`).
pub fn short_name(type_url: &str) -> &'static str {
    match type_url {
        CLUSTER => "cds",
        ENDPOINT => "eds",
        LISTENER => "lds",
        ROUTE => "rds",
        _ => "unknown",
    }
}

/// The protocol-relevant fields of a `DiscoveryRequest`.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub type_url: &'a str,
    pub version_info: &'a str,
    pub nonce: &'a str,
    pub names: &'a [String],
    /// `error_detail.message` when the request is a NACK.
    pub error: Option<&'a str>,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the current resources of this type.
    Respond,
    /// An ACK of the last response: nothing to send.
    Ack,
    /// Envoy rejected the response with this nonce; it keeps its last good config. Do not resend.
    Nack {
        version: String,
        nonce: String,
        message: String,
    },
    /// A request for a superseded response: ignore.
    Stale,
    /// Named type with no names: the watch was removed.
    Unsubscribe,
    /// A type meshd does not serve: answer with an empty response so Envoy doesn't wait.
    Unknown,
}

/// One subscription of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    /// Named subscriptions (empty for wildcard types).
    pub names: BTreeSet<String>,
    pub nonce_sent: Option<String>,
    pub version_sent: Option<String>,
    pub version_acked: Option<String>,
    pub nonce_acked: Option<String>,
    /// Respond to the next request even if it looks like an ACK (EDS after CDS, Envoy's warming bug).
    pub always_respond: bool,
    /// Last NACK message for this type, cleared by the next ACK.
    pub last_nack: Option<String>,
    pub nacks: u64,
    /// Nonce of the last response Envoy answered (ACK or NACK).
    pub nonce_answered: Option<String>,
}

/// Per-stream protocol state.
#[derive(Debug, Clone, Default)]
pub struct AdsState {
    pub watches: BTreeMap<String, Watch>,
}

impl AdsState {
    /// Classifies a request and updates the watch (Istio's `ShouldRespond`).
    pub fn on_request(&mut self, req: &Request) -> Action {
        if !PUSH_ORDER.contains(&req.type_url) {
            return Action::Unknown;
        }
        if let Some(msg) = req.error {
            let w = self.watches.entry(req.type_url.to_string()).or_default();
            w.last_nack = Some(msg.to_string());
            w.nacks += 1;
            if w.nonce_sent.as_deref() == Some(req.nonce) {
                w.nonce_answered = Some(req.nonce.to_string());
            }
            return Action::Nack {
                version: req.version_info.to_string(),
                nonce: req.nonce.to_string(),
                message: msg.to_string(),
            };
        }
        let wildcard = is_wildcard(req.type_url);
        if !wildcard && req.names.is_empty() {
            // An empty named request is an unsubscribe, unless it's also a reconnect for a type with no names.
            self.watches.remove(req.type_url);
            return Action::Unsubscribe;
        }
        let names: BTreeSet<String> = if wildcard {
            BTreeSet::new()
        } else {
            req.names.iter().cloned().collect()
        };
        let Some(w) = self.watches.get_mut(req.type_url) else {
            self.watches.insert(
                req.type_url.to_string(),
                Watch {
                    names,
                    version_acked: (!req.version_info.is_empty())
                        .then(|| req.version_info.to_string()),
                    ..Default::default()
                },
            );
            return Action::Respond;
        };
        if req.nonce.is_empty() {
            // Initial request on this stream, or Envoy reconnected: always respond.
            w.names = names;
            return Action::Respond;
        }
        if w.nonce_sent.as_deref() != Some(req.nonce) {
            return Action::Stale;
        }
        w.version_acked = Some(req.version_info.to_string());
        w.nonce_acked = Some(req.nonce.to_string());
        w.nonce_answered = Some(req.nonce.to_string());
        w.last_nack = None;
        if w.always_respond {
            w.always_respond = false;
            w.names = names;
            return Action::Respond;
        }
        if w.names == names {
            return Action::Ack;
        }
        w.names = names;
        Action::Respond
    }

    /// Records a response sent for `type_url`. Sending CDS makes the next EDS request get a response;
    /// sending EDS satisfies that.
    pub fn on_sent(&mut self, type_url: &str, version: &str, nonce: &str) {
        let w = self.watches.entry(type_url.to_string()).or_default();
        w.nonce_sent = Some(nonce.to_string());
        w.version_sent = Some(version.to_string());
        if type_url == CLUSTER {
            if let Some(eds) = self.watches.get_mut(ENDPOINT) {
                eds.always_respond = true;
            }
        } else if type_url == ENDPOINT {
            w.always_respond = false;
        }
    }

    /// Types to send on a push, in push order (only types the proxy subscribed to).
    pub fn push_types(&self) -> Vec<&'static str> {
        PUSH_ORDER
            .iter()
            .copied()
            .filter(|t| self.watches.contains_key(*t))
            .collect()
    }

    /// Names to include in a response for `type_url`: `None` means all (wildcard).
    pub fn requested(&self, type_url: &str) -> Option<&BTreeSet<String>> {
        if is_wildcard(type_url) {
            return None;
        }
        self.watches.get(type_url).map(|w| &w.names)
    }

    /// True when Envoy answered (ACK or NACK) the latest response of every type.
    pub fn answered(&self) -> bool {
        self.watches
            .values()
            .all(|w| w.nonce_sent.is_none() || w.nonce_sent == w.nonce_answered)
    }

    /// True when every sent type has been ACKed with its latest nonce.
    pub fn converged(&self) -> bool {
        self.watches
            .values()
            .all(|w| w.nonce_sent.is_none() || w.nonce_sent == w.nonce_acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(t: &'a str, v: &'a str, n: &'a str, names: &'a [String]) -> Request<'a> {
        Request {
            type_url: t,
            version_info: v,
            nonce: n,
            names,
            error: None,
        }
    }

    #[test]
    fn initial_ack_and_stale() {
        let mut s = AdsState::default();
        assert_eq!(s.on_request(&req(CLUSTER, "", "", &[])), Action::Respond);
        s.on_sent(CLUSTER, "v1", "n1");
        assert_eq!(s.on_request(&req(CLUSTER, "v1", "n1", &[])), Action::Ack);
        assert_eq!(s.on_request(&req(CLUSTER, "v1", "old", &[])), Action::Stale);
        assert!(s.converged());
    }

    #[test]
    fn nack_is_recorded_not_answered() {
        let mut s = AdsState::default();
        let names = vec!["8080".to_string()];
        assert_eq!(s.on_request(&req(ROUTE, "", "", &names)), Action::Respond);
        s.on_sent(ROUTE, "v2", "n2");
        let mut r = req(ROUTE, "v1", "n2", &names);
        r.error = Some("bad regex");
        assert!(
            matches!(s.on_request(&r), Action::Nack { ref message, .. } if message == "bad regex")
        );
        assert_eq!(s.watches[ROUTE].last_nack.as_deref(), Some("bad regex"));
        assert_eq!(s.watches[ROUTE].nacks, 1);
        assert!(!s.converged());
        // A later ACK clears it.
        s.on_sent(ROUTE, "v3", "n3");
        assert_eq!(s.on_request(&req(ROUTE, "v3", "n3", &names)), Action::Ack);
        assert_eq!(s.watches[ROUTE].last_nack, None);
    }

    #[test]
    fn named_subscription_changes() {
        let mut s = AdsState::default();
        let a = vec!["a".to_string()];
        let ab = vec!["a".to_string(), "b".to_string()];
        assert_eq!(s.on_request(&req(ENDPOINT, "", "", &a)), Action::Respond);
        s.on_sent(ENDPOINT, "v1", "n1");
        assert_eq!(
            s.on_request(&req(ENDPOINT, "v1", "n1", &ab)),
            Action::Respond
        );
        assert_eq!(s.requested(ENDPOINT).map(|n| n.len()), Some(2));
        assert_eq!(
            s.on_request(&req(ENDPOINT, "v1", "n1", &[])),
            Action::Unsubscribe
        );
        assert!(!s.watches.contains_key(ENDPOINT));
    }

    #[test]
    fn wildcard_ignores_names() {
        let mut s = AdsState::default();
        assert_eq!(s.on_request(&req(LISTENER, "", "", &[])), Action::Respond);
        assert_eq!(s.requested(LISTENER), None);
        s.on_sent(LISTENER, "v1", "n1");
        assert_eq!(s.on_request(&req(LISTENER, "v1", "n1", &[])), Action::Ack);
    }

    #[test]
    fn eds_always_respond_after_cds() {
        let mut s = AdsState::default();
        let c = vec!["c".to_string()];
        s.on_request(&req(CLUSTER, "", "", &[]));
        s.on_sent(CLUSTER, "v1", "n1");
        s.on_request(&req(ENDPOINT, "", "", &c));
        s.on_sent(ENDPOINT, "v1", "n2");
        assert_eq!(s.on_request(&req(ENDPOINT, "v1", "n2", &c)), Action::Ack);
        // A CDS push without EDS: Envoy re-requests EDS with the old nonce; it must be answered.
        s.on_sent(CLUSTER, "v2", "n3");
        assert_eq!(
            s.on_request(&req(ENDPOINT, "v1", "n2", &c)),
            Action::Respond
        );
        // CDS followed by EDS in the same push: the flag is consumed by the EDS send.
        s.on_sent(ENDPOINT, "v2", "n4");
        s.on_sent(CLUSTER, "v3", "n5");
        s.on_sent(ENDPOINT, "v3", "n6");
        assert_eq!(s.on_request(&req(ENDPOINT, "v3", "n6", &c)), Action::Ack);
    }

    #[test]
    fn reconnect_with_version_responds_and_order() {
        let mut s = AdsState::default();
        assert_eq!(
            s.on_request(&req(ROUTE, "v9", "", &["80".to_string()])),
            Action::Respond
        );
        s.on_request(&req(CLUSTER, "v9", "", &[]));
        s.on_request(&req(LISTENER, "v9", "", &[]));
        assert_eq!(s.push_types(), vec![CLUSTER, LISTENER, ROUTE]);
        assert_eq!(
            s.on_request(&req("type.googleapis.com/x", "", "", &[])),
            Action::Unknown
        );
    }
}
