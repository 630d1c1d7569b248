//! ADS protocol end to end over real gRPC (tonic client from envoy-types, no Envoy): request/response
//! flow, ACK silence, NACK handling, push order CDS→EDS→LDS→RDS, sharing of generated resources.

mod common;

use common::*;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use meshd::xds::protocol::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use std::time::Duration;
use tokio::sync::mpsc;

struct Client {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: tonic::Streaming<DiscoveryResponse>,
}

fn node(id: &str, app: &str) -> Node {
    let mut labels = Struct::default();
    labels.fields.insert(
        "app".into(),
        Value {
            kind: Some(Kind::StringValue(app.into())),
        },
    );
    let mut meta = Struct::default();
    meta.fields.insert(
        "LABELS".into(),
        Value {
            kind: Some(Kind::StructValue(labels)),
        },
    );
    Node {
        id: id.into(),
        metadata: Some(meta),
        ..Default::default()
    }
}

fn req(type_url: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

impl Client {
    async fn connect(addr: std::net::SocketAddr, node: Node) -> Result<Client, tonic::Status> {
        let mut c = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?
            .max_decoding_message_size(64 << 20);
        let (tx, rx) = mpsc::channel(16);
        let mut first = req(CLUSTER, &[], "", "");
        first.node = Some(node);
        tx.send(first)
            .await
            .map_err(|_| tonic::Status::internal("send"))?;
        let stream = c
            .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Client { tx, rx: stream })
    }

    async fn send(&self, r: DiscoveryRequest) {
        self.tx.send(r).await.expect("send");
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(5), self.rx.message())
            .await
            .expect("timed out waiting for a response")
            .expect("stream error")
            .expect("stream ended")
    }

    async fn silent(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, self.rx.message()).await.is_err()
    }
}

async fn sample_meshd() -> (tempfile::TempDir, Meshd) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in meshd::store::SAMPLES {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let m = Meshd::start(dir.path()).await;
    (dir, m)
}

const SIDECAR: &str = "sidecar~10.244.0.20~productpage-v1-1.bookinfo~bookinfo.svc.cluster.local";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ads_flow_ack_nack_and_push_order() {
    let (dir, meshd) = sample_meshd().await;
    let mut c = Client::connect(meshd.xds, node(SIDECAR, "productpage"))
        .await
        .expect("connect");
    let cds = c.recv().await;
    assert_eq!(cds.type_url, CLUSTER);
    assert!(cds.resources.len() > 5);
    c.send(req(CLUSTER, &[], &cds.version_info, &cds.nonce))
        .await;
    assert!(
        c.silent(Duration::from_millis(300)).await,
        "an ACK must not be answered"
    );
    let name = "outbound|9080|v2|reviews.bookinfo.svc.cluster.local";
    c.send(req(ENDPOINT, &[name], "", "")).await;
    let eds = c.recv().await;
    assert_eq!((eds.type_url.as_str(), eds.resources.len()), (ENDPOINT, 1));
    c.send(req(ENDPOINT, &[name], &eds.version_info, &eds.nonce))
        .await;
    c.send(req(LISTENER, &[], "", "")).await;
    let lds = c.recv().await;
    assert_eq!(lds.type_url, LISTENER);
    c.send(req(LISTENER, &[], &lds.version_info, &lds.nonce))
        .await;
    c.send(req(ROUTE, &["9080"], "", "")).await;
    let rds = c.recv().await;
    assert_eq!((rds.type_url.as_str(), rds.resources.len()), (ROUTE, 1));
    // NACK: recorded, counted, not answered.
    let mut nack = req(ROUTE, &["9080"], "", &rds.nonce);
    nack.error_detail = Some(RpcStatus {
        code: 13,
        message: "test rejection".into(),
        ..Default::default()
    });
    c.send(nack).await;
    assert!(
        c.silent(Duration::from_millis(300)).await,
        "a NACK must not be answered"
    );
    let conns = meshd.debug.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(
        conns[0].watches["rds"].last_nack.as_deref(),
        Some("test rejection")
    );
    assert!(meshd
        .metrics_text()
        .contains("pilot_total_xds_rejects_total{type=\"rds\"} 1"));
    // A stale nonce is ignored.
    c.send(req(CLUSTER, &[], "x", "not-a-nonce")).await;
    assert!(c.silent(Duration::from_millis(200)).await);
    // A config change pushes every changed type in order CDS, EDS, LDS, RDS.
    let extra = "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: bookinfo}\nspec:\n  clusterIP: 10.96.0.99\n  ports: [{name: http, port: 9080}, {name: tcp-db, port: 5432}]\n";
    std::fs::write(dir.path().join("extra.yaml"), extra).expect("write");
    let mut order = Vec::new();
    for _ in 0..4 {
        let r = c.recv().await;
        let names: Vec<&str> = match r.type_url.as_str() {
            t if t == ENDPOINT => vec![name],
            t if t == ROUTE => vec!["9080"],
            _ => vec![],
        };
        c.send(req(&r.type_url, &names, &r.version_info, &r.nonce))
            .await;
        order.push(r.type_url);
    }
    assert_eq!(order, vec![CLUSTER, ENDPOINT, LISTENER, ROUTE]);
    assert!(c.silent(Duration::from_millis(300)).await);
    // A VirtualService-only change pushes only RDS (unchanged types are not re-sent).
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: extra, namespace: bookinfo}\nspec:\n  hosts: [extra]\n  http:\n  - timeout: 3s\n    route:\n    - destination: {host: extra, port: {number: 9080}}\n";
    std::fs::write(dir.path().join("extra-vs.yaml"), vs).expect("write");
    let r = c.recv().await;
    assert_eq!(r.type_url, ROUTE);
    c.send(req(ROUTE, &["9080"], &r.version_info, &r.nonce))
        .await;
    assert!(
        c.silent(Duration::from_millis(400)).await,
        "only RDS changed"
    );
    meshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_proxies_share_one_translation_and_bad_nodes_are_refused() {
    let (_dir, meshd) = sample_meshd().await;
    let mut clients = Vec::new();
    for i in 0..8 {
        let id = format!("sidecar~10.244.1.{i}~reviews-v1-{i}.bookinfo~bookinfo.svc.cluster.local");
        let mut c = Client::connect(meshd.xds, node(&id, "reviews"))
            .await
            .expect("connect");
        assert_eq!(c.recv().await.type_url, CLUSTER);
        clients.push(c);
    }
    assert_eq!(
        meshd.debug.builds(),
        1,
        "8 replicas of one workload must share one translation"
    );
    let mut other = Client::connect(meshd.xds, node(SIDECAR, "productpage"))
        .await
        .expect("connect");
    other.recv().await;
    assert_eq!(meshd.debug.builds(), 2);
    assert_eq!(meshd.debug.connections().len(), 9);
    // A node id that is not Istio's shape is refused with InvalidArgument.
    let bad = Client::connect(meshd.xds, node("not-an-istio-node", "x")).await;
    let status = match bad {
        Err(s) => s,
        Ok(mut c) => match tokio::time::timeout(Duration::from_secs(5), c.rx.message()).await {
            Ok(Err(s)) => s,
            other => panic!("expected an error, got {other:?}"),
        },
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    drop(clients);
    meshd.stop().await;
}
