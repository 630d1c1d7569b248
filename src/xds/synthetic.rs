//! Synthetic mesh configurations for benchmarks and load tests: N services × M endpoints with
//! VirtualServices and DestinationRules, as Kubernetes YAML (so the same input feeds the file source).

use std::fmt::Write;

/// Shape of a synthetic mesh.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub virtual_services: usize,
    pub destination_rules: usize,
    /// Namespaces the services are spread over.
    pub namespaces: usize,
}

impl Default for Shape {
    /// The scale target: 1,000 services × 10 endpoints, 300 VirtualServices, 300 DestinationRules.
    fn default() -> Self {
        Self {
            services: 1000,
            endpoints_per_service: 10,
            virtual_services: 300,
            destination_rules: 300,
            namespaces: 10,
        }
    }
}

/// Multi-document YAML for the shape. `variant` changes the first VirtualService (for push tests).
pub fn mesh_yaml(shape: Shape, variant: u32) -> String {
    let mut out = String::with_capacity(shape.services * 1200);
    for ns in 0..shape.namespaces.max(1) {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{ns}}}\n---\n"
        );
    }
    for i in 0..shape.services {
        let ns = i % shape.namespaces.max(1);
        let port = if i % 5 == 4 { 5432 } else { 8080 };
        let pname = if port == 5432 { "tcp-db" } else { "http" };
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: ns{ns}}}\nspec:\n  clusterIP: 10.{}.{}.{}\n  selector: {{app: svc{i}}}\n  ports: [{{name: {pname}, port: {port}}}]\n---\n",
            96 + i / 65536,
            (i / 256) % 256,
            i % 256
        );
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: svc{i}, namespace: ns{ns}}}\nsubsets:\n- ports: [{{name: {pname}, port: {port}}}]\n  addresses:\n"
        );
        for e in 0..shape.endpoints_per_service {
            let n = i * shape.endpoints_per_service + e;
            let _ = writeln!(
                out,
                "  - ip: 10.{}.{}.{}",
                128 + n / 65536,
                (n / 256) % 256,
                n % 256
            );
        }
        out.push_str("---\n");
    }
    for i in 0..shape.destination_rules.min(shape.services) {
        let ns = i % shape.namespaces.max(1);
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc{i}, namespace: ns{ns}}}\nspec:\n  host: svc{i}\n  trafficPolicy:\n    loadBalancer: {{simple: ROUND_ROBIN}}\n    connectionPool: {{tcp: {{maxConnections: 100}}}}\n    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s}}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\n"
        );
    }
    for i in 0..shape.virtual_services.min(shape.services) {
        let ns = i % shape.namespaces.max(1);
        let timeout = if i == 0 {
            format!("{}s", 1 + variant)
        } else {
            "5s".into()
        };
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc{i}, namespace: ns{ns}}}\nspec:\n  hosts: [svc{i}]\n  http:\n  - match:\n    - headers:\n        end-user: {{exact: jason}}\n    route:\n    - destination: {{host: svc{i}, subset: v2}}\n  - timeout: {timeout}\n    route:\n    - destination: {{host: svc{i}, subset: v1}}\n      weight: 90\n    - destination: {{host: svc{i}, subset: v2}}\n      weight: 10\n---\n"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_shape_parses_cleanly() {
        let shape = Shape {
            services: 20,
            endpoints_per_service: 3,
            virtual_services: 5,
            destination_rules: 5,
            namespaces: 2,
        };
        let mut snap = crate::store::Snapshot::default();
        crate::store::parse_documents("synthetic", &mesh_yaml(shape, 0), &mut snap);
        assert!(snap.errors.is_empty(), "{:?}", snap.errors);
        assert_eq!(snap.services.len(), 20);
        assert_eq!(snap.virtual_services.len(), 5);
    }
}
