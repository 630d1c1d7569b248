//! Typed Istio API objects (`networking.istio.io`, `security.istio.io`) and their Istio-compatible
//! decoding (lenient for the webhook, strict for the CLI). Shared by validation and xDS translation.

pub mod decode;
pub mod duration;
pub mod networking;
pub mod object;
pub mod schema;
pub mod security;

pub use decode::{Decode, Decoder, Path};
pub use duration::Duration;
pub use object::{decode_object, IstioObject, Kind, Metadata, Spec};

/// gRPC status code names, indexed by their numeric code (as fault injection and retry use them).
pub const GRPC_STATUS_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];
