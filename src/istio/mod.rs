//! Typed Istio API objects (`networking.istio.io`, `security.istio.io`) and their Istio-compatible
//! decoding (lenient for the webhook, strict for the CLI). Shared by validation and xDS translation.

pub mod decode;
pub mod duration;
pub mod networking;
pub mod object;
pub mod security;

pub use decode::{Decode, Decoder, Path};
pub use duration::Duration;
pub use object::{decode_object, IstioObject, Kind, Metadata, Spec};
