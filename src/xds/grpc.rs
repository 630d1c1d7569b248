//! The ADS gRPC endpoint as a plain tower service (instead of tonic's generated server) so responses can
//! carry pre-encoded, shared resource bytes: no per-stream copy or encode buffer of the (large) resource
//! lists, which keeps memory flat with thousands of streams. Requests are decoded with tonic's codec.

use super::server::{AdsService, Out};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tonic::codec::Codec;
use tonic::codegen::http;

/// gRPC service name.
pub const SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const SOTW: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";
const MAX_REQUEST: usize = 64 << 20;

/// Tower service serving `StreamAggregatedResources`.
#[derive(Clone)]
pub struct AdsGrpc {
    pub ads: AdsService,
}

impl tonic::server::NamedService for AdsGrpc {
    const NAME: &'static str = SERVICE;
}

fn status_only(status: tonic::Status) -> http::Response<tonic::body::Body> {
    let mut resp = http::Response::new(tonic::body::Body::empty());
    *resp.status_mut() = http::StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    let _ = status.add_header(resp.headers_mut());
    resp
}

impl tower::Service<http::Request<tonic::body::Body>> for AdsGrpc {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let path = req.uri().path().to_string();
        if path == DELTA {
            return std::future::ready(Ok(status_only(tonic::Status::unimplemented(
                "meshd serves state-of-the-world ADS only; use api_type GRPC",
            ))));
        }
        if path != SOTW {
            return std::future::ready(Ok(status_only(tonic::Status::unimplemented(format!(
                "unknown method {path}"
            )))));
        }
        let mut codec = tonic_prost::ProstCodec::<(), DiscoveryRequest>::default();
        let input = tonic::Streaming::new_request(
            codec.decoder(),
            req.into_body(),
            None,
            Some(MAX_REQUEST),
        );
        let (tx, rx) = mpsc::channel::<Out>(4);
        self.ads.spawn_stream(input, tx);
        let stream = futures::stream::unfold((rx, false), |(mut rx, done)| async move {
            if done {
                return None;
            }
            match rx.recv().await {
                Some(Out::Data(b)) => Some((
                    Ok::<_, Infallible>(hyper::body::Frame::data(b)),
                    (rx, false),
                )),
                Some(Out::Error(status)) => Some((
                    Ok(hyper::body::Frame::trailers(trailers(status))),
                    (rx, true),
                )),
                None => Some((
                    Ok(hyper::body::Frame::trailers(trailers(tonic::Status::ok(
                        "",
                    )))),
                    (rx, true),
                )),
            }
        });
        let body = http_body_util::StreamBody::new(stream);
        let mut resp = http::Response::new(tonic::body::Body::new(body));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        std::future::ready(Ok(resp))
    }
}

fn trailers(status: tonic::Status) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    let _ = status.add_header(&mut map);
    map
}
