//! `networking.istio.io` (v1, v1beta1, v1alpha3) specs: VirtualService, DestinationRule, Gateway,
//! ServiceEntry, Sidecar and WorkloadEntry, field for field as in `istio/api`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::decode::{kind_of, message, proto_enum, Decode, Decoder, Path};
use super::Duration;

/// Label or string map.
pub type StringMap = BTreeMap<String, String>;

// ---------------------------------------------------------------- shared

/// `istio.networking.v1alpha3.StringMatch` (a oneof of exact, prefix, regex).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum StringMatch {
    /// `{}`: no match type set.
    #[default]
    Unset,
    /// `exact`
    Exact(String),
    /// `prefix`
    Prefix(String),
    /// `regex` (RE2 syntax)
    Regex(String),
}

impl Decode for StringMatch {
    fn decode(v: &Value, p: &Path<'_>, d: &mut Decoder) -> Option<Self> {
        let Some(obj) = v.as_object() else {
            d.err(p, format!("expected an object, got {}", kind_of(v)));
            return None;
        };
        let mut out = StringMatch::Unset;
        for (k, val) in obj {
            let fp = p.field(k);
            let ctor: fn(String) -> StringMatch = match k.as_str() {
                "exact" => StringMatch::Exact,
                "prefix" => StringMatch::Prefix,
                "regex" => StringMatch::Regex,
                _ => {
                    d.unknown(&fp);
                    continue;
                }
            };
            if val.is_null() {
                continue;
            }
            let Some(s) = String::decode(val, &fp, d) else {
                continue;
            };
            if out != StringMatch::Unset {
                d.err(&fp, "only one of exact, prefix or regex may be set");
                continue;
            }
            out = ctor(s);
        }
        Some(out)
    }
}

message! {
    /// `PortSelector`
    pub struct PortSelector {
        number: u32,
    }
}

message! {
    /// `Destination`: a service host, optional subset and port.
    pub struct Destination {
        host: String,
        subset: String,
        port: Option<PortSelector>,
    }
}

message! {
    /// `Percent`
    pub struct Percent {
        value: f64,
    }
}

message! {
    /// Networking `WorkloadSelector` (`labels`), used by Sidecar and ServiceEntry.
    pub struct WorkloadSelector {
        labels: StringMap,
    }
}

message! {
    /// `istio.type.v1beta1.WorkloadSelector` (`matchLabels`), used by DestinationRule and the security kinds.
    pub struct TypeWorkloadSelector {
        match_labels: StringMap,
    }
}

// ---------------------------------------------------------------- VirtualService

message! {
    /// `VirtualService` spec.
    pub struct VirtualService {
        hosts: Vec<String>,
        gateways: Vec<String>,
        http: Vec<HttpRoute>,
        tls: Vec<TlsRoute>,
        tcp: Vec<TcpRoute>,
        export_to: Vec<String>,
    }
}

message! {
    /// `HTTPRoute`
    pub struct HttpRoute {
        name: String,
        r#match: Vec<HttpMatchRequest>,
        route: Vec<HttpRouteDestination>,
        redirect: Option<HttpRedirect>,
        direct_response: Option<HttpDirectResponse>,
        delegate: Option<Delegate>,
        rewrite: Option<HttpRewrite>,
        timeout: Option<Duration>,
        retries: Option<HttpRetry>,
        fault: Option<HttpFaultInjection>,
        mirror: Option<Destination>,
        mirrors: Vec<HttpMirrorPolicy>,
        mirror_percent: Option<u32>,
        mirror_percentage: Option<Percent>,
        cors_policy: Option<CorsPolicy>,
        headers: Option<Headers>,
    }
}

message! {
    /// `Delegate`
    pub struct Delegate {
        name: String,
        namespace: String,
    }
}

message! {
    /// `Headers`
    pub struct Headers {
        request: Option<HeaderOperations>,
        response: Option<HeaderOperations>,
    }
}

message! {
    /// `Headers.HeaderOperations`
    pub struct HeaderOperations {
        set: StringMap,
        add: StringMap,
        remove: Vec<String>,
    }
}

message! {
    /// `HTTPMatchRequest`
    pub struct HttpMatchRequest {
        name: String,
        uri: Option<StringMatch>,
        scheme: Option<StringMatch>,
        method: Option<StringMatch>,
        authority: Option<StringMatch>,
        headers: BTreeMap<String, StringMatch>,
        port: u32,
        source_labels: StringMap,
        gateways: Vec<String>,
        query_params: BTreeMap<String, StringMatch>,
        ignore_uri_case: bool,
        without_headers: BTreeMap<String, StringMatch>,
        source_namespace: String,
        stat_prefix: String,
    }
}

message! {
    /// `HTTPRouteDestination`
    pub struct HttpRouteDestination {
        destination: Option<Destination>,
        weight: i32,
        headers: Option<Headers>,
    }
}

message! {
    /// `RouteDestination` (TCP and TLS routes)
    pub struct RouteDestination {
        destination: Option<Destination>,
        weight: i32,
    }
}

message! {
    /// `L4MatchAttributes`
    pub struct L4MatchAttributes {
        destination_subnets: Vec<String>,
        port: u32,
        source_subnet: String,
        source_labels: StringMap,
        gateways: Vec<String>,
        source_namespace: String,
    }
}

message! {
    /// `TLSMatchAttributes`
    pub struct TlsMatchAttributes {
        sni_hosts: Vec<String>,
        destination_subnets: Vec<String>,
        port: u32,
        source_labels: StringMap,
        gateways: Vec<String>,
        source_namespace: String,
    }
}

message! {
    /// `TLSRoute`
    pub struct TlsRoute {
        r#match: Vec<TlsMatchAttributes>,
        route: Vec<RouteDestination>,
    }
}

message! {
    /// `TCPRoute`
    pub struct TcpRoute {
        r#match: Vec<L4MatchAttributes>,
        route: Vec<RouteDestination>,
    }
}

proto_enum! {
    /// `HTTPRedirect.RedirectPortSelection`
    pub enum RedirectPortSelection {
        FromProtocolDefault = 0 => "FROM_PROTOCOL_DEFAULT",
        FromRequestPort = 1 => "FROM_REQUEST_PORT",
    }
}

message! {
    /// `HTTPRedirect` (`port` and `derivePort` form a oneof).
    pub struct HttpRedirect {
        uri: String,
        prefix_rewrite: String,
        authority: String,
        port: Option<u32>,
        derive_port: Option<RedirectPortSelection>,
        scheme: String,
        redirect_code: Option<u32>,
    }
}

message! {
    /// `HTTPDirectResponse`
    pub struct HttpDirectResponse {
        status: u32,
        body: Option<HttpBody>,
    }
}

message! {
    /// `HTTPBody` (`string` and `bytes` form a oneof; `bytes` is base64 in JSON).
    pub struct HttpBody {
        string: Option<String>,
        bytes: Option<String>,
    }
}

message! {
    /// `HTTPRewrite`
    pub struct HttpRewrite {
        uri: String,
        authority: String,
        uri_regex_rewrite: Option<RegexRewrite>,
    }
}

message! {
    /// `RegexRewrite`
    pub struct RegexRewrite {
        r#match: String,
        rewrite: String,
    }
}

message! {
    /// `HTTPRetry`
    pub struct HttpRetry {
        attempts: i32,
        per_try_timeout: Option<Duration>,
        retry_on: String,
        retry_remote_localities: Option<bool>,
        retry_ignore_previous_hosts: Option<bool>,
        backoff: Option<Duration>,
    }
}

proto_enum! {
    /// `CorsPolicy.UnmatchedPreflights`
    pub enum UnmatchedPreflights {
        Unspecified = 0 => "UNSPECIFIED",
        Forward = 1 => "FORWARD",
        Ignore = 2 => "IGNORE",
    }
}

message! {
    /// `CorsPolicy`
    pub struct CorsPolicy {
        allow_origin: Vec<String>,
        allow_origins: Vec<StringMatch>,
        allow_methods: Vec<String>,
        allow_headers: Vec<String>,
        expose_headers: Vec<String>,
        max_age: Option<Duration>,
        allow_credentials: Option<bool>,
        unmatched_preflights: UnmatchedPreflights,
    }
}

message! {
    /// `HTTPFaultInjection`
    pub struct HttpFaultInjection {
        delay: Option<FaultDelay>,
        abort: Option<FaultAbort>,
    }
}

message! {
    /// `HTTPFaultInjection.Delay` (`fixedDelay` and `exponentialDelay` form a oneof).
    pub struct FaultDelay {
        percent: i32,
        fixed_delay: Option<Duration>,
        exponential_delay: Option<Duration>,
        percentage: Option<Percent>,
    }
}

message! {
    /// `HTTPFaultInjection.Abort` (`httpStatus`, `grpcStatus`, `http2Error` form a oneof).
    pub struct FaultAbort {
        http_status: Option<i32>,
        grpc_status: Option<String>,
        http2_error: Option<String>,
        percentage: Option<Percent>,
    }
}

message! {
    /// `HTTPMirrorPolicy`
    pub struct HttpMirrorPolicy {
        destination: Option<Destination>,
        percentage: Option<Percent>,
    }
}

// ---------------------------------------------------------------- DestinationRule

message! {
    /// `DestinationRule` spec.
    pub struct DestinationRule {
        host: String,
        traffic_policy: Option<TrafficPolicy>,
        subsets: Vec<Subset>,
        export_to: Vec<String>,
        workload_selector: Option<TypeWorkloadSelector>,
    }
}

message! {
    /// `TrafficPolicy`
    pub struct TrafficPolicy {
        load_balancer: Option<LoadBalancerSettings>,
        connection_pool: Option<ConnectionPoolSettings>,
        outlier_detection: Option<OutlierDetection>,
        tls: Option<ClientTlsSettings>,
        port_level_settings: Vec<PortTrafficPolicy>,
        tunnel: Option<TunnelSettings>,
        proxy_protocol: Option<ProxyProtocol>,
        retry_budget: Option<RetryBudget>,
    }
}

message! {
    /// `TrafficPolicy.PortTrafficPolicy`
    pub struct PortTrafficPolicy {
        port: Option<PortSelector>,
        load_balancer: Option<LoadBalancerSettings>,
        connection_pool: Option<ConnectionPoolSettings>,
        outlier_detection: Option<OutlierDetection>,
        tls: Option<ClientTlsSettings>,
    }
}

message! {
    /// `TrafficPolicy.TunnelSettings`
    pub struct TunnelSettings {
        protocol: String,
        target_host: String,
        target_port: u32,
    }
}

proto_enum! {
    /// `TrafficPolicy.ProxyProtocol.VERSION`
    pub enum ProxyProtocolVersion {
        V1 = 0 => "V1",
        V2 = 1 => "V2",
    }
}

message! {
    /// `TrafficPolicy.ProxyProtocol`
    pub struct ProxyProtocol {
        version: ProxyProtocolVersion,
    }
}

message! {
    /// `TrafficPolicy.RetryBudget`
    pub struct RetryBudget {
        percent: Option<f64>,
        min_retry_concurrency: u32,
        budget_interval: Option<Duration>,
    }
}

message! {
    /// `Subset`
    pub struct Subset {
        name: String,
        labels: StringMap,
        traffic_policy: Option<TrafficPolicy>,
    }
}

proto_enum! {
    /// `LoadBalancerSettings.SimpleLB`
    pub enum SimpleLb {
        Unspecified = 0 => "UNSPECIFIED",
        LeastConn = 1 => "LEAST_CONN",
        Random = 2 => "RANDOM",
        Passthrough = 3 => "PASSTHROUGH",
        RoundRobin = 4 => "ROUND_ROBIN",
        LeastRequest = 5 => "LEAST_REQUEST",
    }
}

message! {
    /// `LoadBalancerSettings` (`simple`, `consistentHash` and `backendUtilization` form a oneof).
    pub struct LoadBalancerSettings {
        simple: Option<SimpleLb>,
        consistent_hash: Option<ConsistentHashLb>,
        backend_utilization: Option<BackendUtilizationLb>,
        locality_lb_setting: Option<LocalityLbSetting>,
        zone_aware_lb_setting: Option<ZoneAwareLbSetting>,
        warmup_duration_secs: Option<Duration>,
        warmup: Option<WarmupConfiguration>,
    }
}

message! {
    /// Utilization-based load balancing from backend-reported ORCA metrics.
    pub struct BackendUtilizationLb {
        error_utilization_penalty_percent: Option<u32>,
        metric_names_for_computing_utilization: Vec<String>,
        weight_expiration_period: Option<Duration>,
        weight_stabilization_period: Option<Duration>,
        weight_update_period: Option<Duration>,
    }
}

message! {
    /// `WarmupConfiguration`
    pub struct WarmupConfiguration {
        duration: Option<Duration>,
        minimum_percent: Option<f64>,
        aggression: Option<f64>,
    }
}

message! {
    /// `LoadBalancerSettings.ConsistentHashLB`
    pub struct ConsistentHashLb {
        http_header_name: Option<String>,
        http_cookie: Option<HttpCookie>,
        use_source_ip: Option<bool>,
        http_query_parameter_name: Option<String>,
        ring_hash: Option<RingHash>,
        maglev: Option<MagLev>,
        minimum_ring_size: Option<u64>,
    }
}

message! {
    /// `ConsistentHashLB.RingHash`
    pub struct RingHash {
        minimum_ring_size: Option<u64>,
    }
}

message! {
    /// `ConsistentHashLB.MagLev`
    pub struct MagLev {
        table_size: Option<u64>,
    }
}

message! {
    /// `ConsistentHashLB.HTTPCookie`
    pub struct HttpCookie {
        name: String,
        path: String,
        ttl: Option<Duration>,
        attributes: Vec<CookieAttribute>,
    }
}

message! {
    /// `ConsistentHashLB.HTTPCookie.Attribute`
    pub struct CookieAttribute {
        name: String,
        value: String,
    }
}

message! {
    /// `LocalityLoadBalancerSetting`
    pub struct LocalityLbSetting {
        distribute: Vec<LocalityDistribute>,
        failover: Vec<LocalityFailover>,
        failover_priority: Vec<String>,
        enabled: Option<bool>,
    }
}

message! {
    /// `LocalityLoadBalancerSetting.Distribute`
    pub struct LocalityDistribute {
        from: String,
        to: BTreeMap<String, u32>,
    }
}

message! {
    /// `LocalityLoadBalancerSetting.Failover`
    pub struct LocalityFailover {
        from: String,
        to: String,
    }
}

message! {
    /// `ZoneAwareLoadBalancerSetting`
    pub struct ZoneAwareLbSetting {
        enabled: Option<bool>,
        failover: Vec<LocalityFailover>,
        failover_priority: Vec<String>,
        min_cluster_size: Option<u64>,
    }
}

message! {
    /// `ConnectionPoolSettings`
    pub struct ConnectionPoolSettings {
        tcp: Option<TcpSettings>,
        http: Option<HttpSettings>,
    }
}

message! {
    /// `ConnectionPoolSettings.TCPSettings`
    pub struct TcpSettings {
        max_connections: i32,
        connect_timeout: Option<Duration>,
        tcp_keepalive: Option<TcpKeepalive>,
        max_connection_duration: Option<Duration>,
        idle_timeout: Option<Duration>,
    }
}

message! {
    /// `ConnectionPoolSettings.TCPSettings.TcpKeepalive`
    pub struct TcpKeepalive {
        probes: u32,
        time: Option<Duration>,
        interval: Option<Duration>,
    }
}

proto_enum! {
    /// `ConnectionPoolSettings.HTTPSettings.H2UpgradePolicy`
    pub enum H2UpgradePolicy {
        Default = 0 => "DEFAULT",
        DoNotUpgrade = 1 => "DO_NOT_UPGRADE",
        Upgrade = 2 => "UPGRADE",
    }
}

message! {
    /// `ConnectionPoolSettings.HTTPSettings`
    pub struct HttpSettings {
        http1_max_pending_requests: i32,
        http2_max_requests: i32,
        max_requests_per_connection: i32,
        max_retries: i32,
        idle_timeout: Option<Duration>,
        h2_upgrade_policy: H2UpgradePolicy,
        use_client_protocol: bool,
        max_concurrent_streams: i32,
        http2_keep_alive: Option<Http2KeepAlive>,
    }
}

message! {
    /// HTTP/2 keepalive settings of the HTTP connection pool.
    pub struct Http2KeepAlive {
        interval: Option<Duration>,
        timeout: Option<Duration>,
    }
}

message! {
    /// `OutlierDetection`
    pub struct OutlierDetection {
        consecutive_errors: i32,
        split_external_local_origin_errors: bool,
        consecutive_local_origin_failures: Option<u32>,
        consecutive_gateway_errors: Option<u32>,
        consecutive_5xx_errors: Option<u32>,
        interval: Option<Duration>,
        base_ejection_time: Option<Duration>,
        max_ejection_percent: i32,
        min_health_percent: i32,
        outlier_detection_http_error_codes: Vec<u32>,
    }
}

proto_enum! {
    /// `ClientTLSSettings.TLSmode`
    pub enum ClientTlsMode {
        Disable = 0 => "DISABLE",
        Simple = 1 => "SIMPLE",
        Mutual = 2 => "MUTUAL",
        IstioMutual = 3 => "ISTIO_MUTUAL",
    }
}

message! {
    /// `ClientTLSSettings`
    pub struct ClientTlsSettings {
        mode: ClientTlsMode,
        client_certificate: String,
        private_key: String,
        ca_certificates: String,
        credential_name: String,
        subject_alt_names: Vec<String>,
        sni: String,
        insecure_skip_verify: Option<bool>,
        ca_crl: String,
    }
}

// ---------------------------------------------------------------- Gateway

message! {
    /// `Gateway` spec.
    pub struct Gateway {
        servers: Vec<Server>,
        selector: StringMap,
    }
}

message! {
    /// `Server`
    pub struct Server {
        port: Option<Port>,
        bind: String,
        hosts: Vec<String>,
        tls: Option<ServerTlsSettings>,
        default_endpoint: String,
        name: String,
    }
}

message! {
    /// `Port`
    pub struct Port {
        number: u32,
        protocol: String,
        name: String,
        target_port: u32,
    }
}

proto_enum! {
    /// `ServerTLSSettings.TLSmode` (PASSTHROUGH is the default).
    pub enum ServerTlsMode {
        Passthrough = 0 => "PASSTHROUGH",
        Simple = 1 => "SIMPLE",
        Mutual = 2 => "MUTUAL",
        AutoPassthrough = 3 => "AUTO_PASSTHROUGH",
        IstioMutual = 4 => "ISTIO_MUTUAL",
        OptionalMutual = 5 => "OPTIONAL_MUTUAL",
    }
}

proto_enum! {
    /// `ServerTLSSettings.TLSProtocol`
    pub enum TlsProtocol {
        TlsAuto = 0 => "TLS_AUTO",
        TlsV1_0 = 1 => "TLSV1_0",
        TlsV1_1 = 2 => "TLSV1_1",
        TlsV1_2 = 3 => "TLSV1_2",
        TlsV1_3 = 4 => "TLSV1_3",
    }
}

message! {
    /// `ServerTLSSettings`
    pub struct ServerTlsSettings {
        https_redirect: bool,
        mode: ServerTlsMode,
        server_certificate: String,
        private_key: String,
        ca_certificates: String,
        ca_crl: String,
        credential_name: String,
        credential_names: Vec<String>,
        ca_cert_credential_name: String,
        tls_certificates: Vec<TlsCertificate>,
        subject_alt_names: Vec<String>,
        verify_certificate_spki: Vec<String>,
        verify_certificate_hash: Vec<String>,
        min_protocol_version: TlsProtocol,
        max_protocol_version: TlsProtocol,
        cipher_suites: Vec<String>,
        ecdh_curves: Vec<String>,
        insecure_skip_verify: Option<bool>,
    }
}

message! {
    /// `ServerTLSSettings.TLSCertificate`
    pub struct TlsCertificate {
        server_certificate: String,
        private_key: String,
        ca_certificates: String,
    }
}

// ---------------------------------------------------------------- ServiceEntry / WorkloadEntry

proto_enum! {
    /// `ServiceEntry.Location`
    pub enum Location {
        MeshExternal = 0 => "MESH_EXTERNAL",
        MeshInternal = 1 => "MESH_INTERNAL",
    }
}

proto_enum! {
    /// `ServiceEntry.Resolution`
    pub enum Resolution {
        None = 0 => "NONE",
        Static = 1 => "STATIC",
        Dns = 2 => "DNS",
        DnsRoundRobin = 3 => "DNS_ROUND_ROBIN",
        DynamicDns = 4 => "DYNAMIC_DNS",
    }
}

message! {
    /// `ServiceEntry` spec.
    pub struct ServiceEntry {
        hosts: Vec<String>,
        addresses: Vec<String>,
        ports: Vec<ServicePort>,
        location: Location,
        resolution: Resolution,
        endpoints: Vec<WorkloadEntry>,
        workload_selector: Option<WorkloadSelector>,
        export_to: Vec<String>,
        subject_alt_names: Vec<String>,
    }
}

message! {
    /// `ServicePort`
    pub struct ServicePort {
        number: u32,
        protocol: String,
        name: String,
        target_port: u32,
    }
}

message! {
    /// `WorkloadEntry` spec (also a ServiceEntry endpoint).
    pub struct WorkloadEntry {
        address: String,
        ports: BTreeMap<String, u32>,
        labels: StringMap,
        network: String,
        locality: String,
        weight: u32,
        service_account: String,
    }
}

// ---------------------------------------------------------------- Sidecar

proto_enum! {
    /// `CaptureMode`
    pub enum CaptureMode {
        Default = 0 => "DEFAULT",
        Iptables = 1 => "IPTABLES",
        None = 2 => "NONE",
    }
}

proto_enum! {
    /// `OutboundTrafficPolicy.Mode`
    pub enum OutboundMode {
        RegistryOnly = 0 => "REGISTRY_ONLY",
        AllowAny = 1 => "ALLOW_ANY",
        AllowAnyDynamicDns = 2 => "ALLOW_ANY_DYNAMIC_DNS",
    }
}

message! {
    /// `Sidecar` spec.
    pub struct Sidecar {
        workload_selector: Option<WorkloadSelector>,
        ingress: Vec<IngressListener>,
        egress: Vec<EgressListener>,
        inbound_connection_pool: Option<ConnectionPoolSettings>,
        outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    }
}

message! {
    /// `SidecarPort`
    pub struct SidecarPort {
        number: u32,
        protocol: String,
        name: String,
        target_port: u32,
    }
}

message! {
    /// `IstioIngressListener`
    pub struct IngressListener {
        port: Option<SidecarPort>,
        bind: String,
        capture_mode: CaptureMode,
        default_endpoint: String,
        tls: Option<ServerTlsSettings>,
        connection_pool: Option<ConnectionPoolSettings>,
    }
}

message! {
    /// `IstioEgressListener`
    pub struct EgressListener {
        port: Option<SidecarPort>,
        bind: String,
        capture_mode: CaptureMode,
        hosts: Vec<String>,
    }
}

message! {
    /// `OutboundTrafficPolicy`
    pub struct OutboundTrafficPolicy {
        mode: OutboundMode,
        egress_proxy: Option<Destination>,
    }
}
