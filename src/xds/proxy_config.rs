//! `meshd proxy-config`: read a running Envoy's admin `/config_dump` and print listeners, routes,
//! clusters or endpoints like `istioctl proxy-config` (short tables, JSON or YAML).

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ProxyConfigError {
    #[error("fetching {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("config_dump is not valid JSON: {0}")]
    Json(String),
    #[error("encoding output: {0}")]
    Encode(String),
}

/// Which section of the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Listeners,
    Routes,
    Clusters,
    Endpoints,
}

/// GETs `<admin>/config_dump?include_eds`.
pub async fn fetch_config_dump(admin: &str) -> Result<Value, ProxyConfigError> {
    let url = format!("{}/config_dump?include_eds", admin.trim_end_matches('/'));
    let err = |m: String| ProxyConfigError::Fetch {
        url: url.clone(),
        message: m,
    };
    let resp = reqwest::get(&url).await.map_err(|e| err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status())));
    }
    let text = resp.text().await.map_err(|e| err(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| ProxyConfigError::Json(e.to_string()))
}

fn dump_of<'a>(dump: &'a Value, type_suffix: &str) -> Option<&'a Value> {
    dump.get("configs")?.as_array()?.iter().find(|c| {
        c.get("@type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with(&format!(".{type_suffix}")))
    })
}

fn collect(v: Option<&Value>, list: &str, inner: &[&str]) -> Vec<Value> {
    let Some(items) = v.and_then(|v| v.get(list)).and_then(Value::as_array) else {
        return vec![];
    };
    items
        .iter()
        .filter_map(|i| {
            let mut cur = i;
            for k in inner {
                cur = cur.get(*k)?;
            }
            Some(cur.clone())
        })
        .collect()
}

/// The resources of one section (static first, then dynamic active ones).
pub fn extract(dump: &Value, section: Section) -> Vec<Value> {
    match section {
        Section::Listeners => {
            let d = dump_of(dump, "ListenersConfigDump");
            let mut v = collect(d, "static_listeners", &["listener"]);
            v.extend(collect(
                d,
                "dynamic_listeners",
                &["active_state", "listener"],
            ));
            v
        }
        Section::Routes => {
            let d = dump_of(dump, "RoutesConfigDump");
            let mut v = collect(d, "static_route_configs", &["route_config"]);
            v.extend(collect(d, "dynamic_route_configs", &["route_config"]));
            v
        }
        Section::Clusters => {
            let d = dump_of(dump, "ClustersConfigDump");
            let mut v = collect(d, "static_clusters", &["cluster"]);
            v.extend(collect(d, "dynamic_active_clusters", &["cluster"]));
            v
        }
        Section::Endpoints => {
            let d = dump_of(dump, "EndpointsConfigDump");
            let mut v = collect(d, "static_endpoint_configs", &["endpoint_config"]);
            v.extend(collect(d, "dynamic_endpoint_configs", &["endpoint_config"]));
            v
        }
    }
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for k in path {
        match cur.get(*k) {
            Some(n) => cur = n,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.len());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect(), &mut out);
    for r in rows {
        line(r, &mut out);
    }
    out
}

/// `/apis/networking.istio.io/v1/namespaces/ns/kind/name` → `name.ns` (istioctl's short form).
fn config_ref(v: &Value) -> String {
    let cfg = v
        .pointer("/metadata/filter_metadata/istio/config")
        .and_then(Value::as_str)
        .unwrap_or("");
    let parts: Vec<&str> = cfg.split('/').collect();
    match parts.as_slice() {
        [.., "namespaces", ns, _kind, name] => format!("{name}.{ns}"),
        _ => "-".to_string(),
    }
}

fn chain_match(fc: &Value) -> String {
    let m = fc.get("filter_chain_match").cloned().unwrap_or(Value::Null);
    let mut parts = Vec::new();
    if let Some(p) = m.get("destination_port") {
        parts.push(format!("port {p}"));
    }
    if let Some(sni) = m.get("server_names").and_then(Value::as_array) {
        let names: Vec<&str> = sni.iter().filter_map(Value::as_str).collect();
        if !names.is_empty() {
            parts.push(format!("SNI: {}", names.join(",")));
        }
    }
    if let Some(t) = m.get("transport_protocol").and_then(Value::as_str) {
        parts.push(format!("Trans: {t}"));
    }
    if parts.is_empty() {
        "ALL".into()
    } else {
        parts.join("; ")
    }
}

fn chain_destination(fc: &Value) -> String {
    for f in fc
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let tc = f.get("typed_config").cloned().unwrap_or(Value::Null);
        if let Some(r) = tc.pointer("/rds/route_config_name").and_then(Value::as_str) {
            return format!("Route: {r}");
        }
        if let Some(r) = tc.pointer("/route_config/name").and_then(Value::as_str) {
            return format!("Inline Route: {r}");
        }
        if let Some(c) = tc.get("cluster").and_then(Value::as_str) {
            return format!("Cluster: {c}");
        }
        if tc.get("weighted_clusters").is_some() {
            return "Weighted clusters".into();
        }
    }
    "-".into()
}

/// Renders a section in the short table form (istioctl's columns).
pub fn short(section: Section, items: &[Value]) -> String {
    match section {
        Section::Listeners => {
            let mut rows = Vec::new();
            for l in items {
                let addr = s(l, &["address", "socket_address", "address"]).to_string();
                let port = l
                    .pointer("/address/socket_address/port_value")
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let chains: Vec<&Value> = l
                    .get("filter_chains")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                if chains.is_empty() {
                    rows.push(vec![
                        s(l, &["name"]).to_string(),
                        addr.clone(),
                        port.clone(),
                        "-".into(),
                        "-".into(),
                    ]);
                }
                for fc in chains {
                    rows.push(vec![
                        s(l, &["name"]).to_string(),
                        addr.clone(),
                        port.clone(),
                        chain_match(fc),
                        chain_destination(fc),
                    ]);
                }
            }
            table(&["NAME", "ADDRESSES", "PORT", "MATCH", "DESTINATION"], rows)
        }
        Section::Routes => {
            let mut rows = Vec::new();
            for rc in items {
                for vh in rc
                    .get("virtual_hosts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let domains: Vec<&str> = vh
                        .get("domains")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let shown = match domains.len() {
                        0 => String::new(),
                        1 => domains[0].to_string(),
                        n => format!("{} + {} more...", domains[0], n - 1),
                    };
                    for r in vh
                        .get("routes")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let m = r.get("match").cloned().unwrap_or(Value::Null);
                        let matcher = ["prefix", "path", "path_separated_prefix"]
                            .iter()
                            .find_map(|k| {
                                m.get(*k).and_then(Value::as_str).map(|v| match *k {
                                    "prefix" => format!("{v}*"),
                                    _ => v.to_string(),
                                })
                            })
                            .or_else(|| {
                                m.pointer("/safe_regex/regex")
                                    .and_then(Value::as_str)
                                    .map(|v| format!("~{v}"))
                            })
                            .unwrap_or_default();
                        rows.push(vec![
                            s(rc, &["name"]).to_string(),
                            s(vh, &["name"]).to_string(),
                            shown.clone(),
                            matcher,
                            config_ref(r),
                        ]);
                    }
                }
            }
            table(
                &["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"],
                rows,
            )
        }
        Section::Clusters => table(
            &[
                "SERVICE FQDN",
                "PORT",
                "SUBSET",
                "DIRECTION",
                "TYPE",
                "DESTINATION RULE",
            ],
            items
                .iter()
                .map(|c| {
                    let name = s(c, &["name"]);
                    let parts: Vec<&str> = name.split('|').collect();
                    let typ = c
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("EDS")
                        .to_string();
                    let dr = config_ref(c);
                    if parts.len() == 4 {
                        vec![
                            parts[3].into(),
                            parts[1].into(),
                            parts[2].into(),
                            parts[0].into(),
                            typ,
                            dr,
                        ]
                    } else {
                        vec![name.into(), "-".into(), "-".into(), "-".into(), typ, dr]
                    }
                })
                .collect(),
        ),
        Section::Endpoints => {
            let mut rows = Vec::new();
            for cla in items {
                for loc in cla
                    .get("endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for e in loc
                        .get("lb_endpoints")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let addr = s(e, &["endpoint", "address", "socket_address", "address"]);
                        let port = e
                            .pointer("/endpoint/address/socket_address/port_value")
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let status = e
                            .get("health_status")
                            .and_then(Value::as_str)
                            .unwrap_or("HEALTHY");
                        rows.push(vec![
                            format!("{addr}:{port}"),
                            status.into(),
                            "OK".into(),
                            s(cla, &["cluster_name"]).into(),
                        ]);
                    }
                }
            }
            table(&["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"], rows)
        }
    }
}

/// Renders in the requested format (`short`, `json`, `yaml`).
pub fn render(section: Section, items: &[Value], format: &str) -> Result<String, ProxyConfigError> {
    match format {
        "json" => serde_json::to_string_pretty(items)
            .map(|s| s + "\n")
            .map_err(|e| ProxyConfigError::Encode(e.to_string())),
        "yaml" => {
            serde_norway::to_string(items).map_err(|e| ProxyConfigError::Encode(e.to_string()))
        }
        _ => Ok(short(section, items)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_and_renders() {
        let dump = json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
             "dynamic_active_clusters": [{"cluster": {"name": "outbound|80|v1|a.ns.svc.cluster.local", "type": "EDS"}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
             "dynamic_route_configs": [{"route_config": {"name": "80", "virtual_hosts": [{"name": "a:80", "domains": ["a", "a:80"], "routes": [{"match": {"prefix": "/"}}]}]}}]}
        ]});
        let c = extract(&dump, Section::Clusters);
        assert_eq!(c.len(), 1);
        let out = short(Section::Clusters, &c);
        assert!(
            out.contains("a.ns.svc.cluster.local")
                && out.contains("v1")
                && out.contains("outbound"),
            "{out}"
        );
        let r = short(Section::Routes, &extract(&dump, Section::Routes));
        assert!(r.contains("a + 1 more...") && r.contains("/*"), "{r}");
        assert!(render(Section::Routes, &extract(&dump, Section::Routes), "yaml").is_ok());
        assert!(extract(&json!({}), Section::Listeners).is_empty());
    }
}
