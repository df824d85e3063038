//! kestrel-proto: the gRPC contracts kestrel speaks, and their conversions.
//!
//! - [`katib`]: Katib's `api.v1.beta1` (DBManager, Suggestion, EarlyStopping), written here
//!   with Katib's message, field and enum numbers so Katib's controller and SDK interoperate.
//! - [`health`]: `grpc.health.v1` (Check only, as Katib serves it).
//! - [`manager`]: kestrel's own management API (`kestrel.v1.Manager`) used by the CLI.
//! - [`convert`]: the one place where messages become `kestrel-core` types and back;
//!   every refusal names the offending field.
//! - [`raw`]: a GetSuggestions request with its trials still encoded, for servers that
//!   decode only the trials they have not seen.
//!
//! The `.proto` files live in `proto/proto/` and are compiled at build time by protox
//! (no `protoc` needed).

/// Katib's `api.v1.beta1` package.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod katib {
    tonic::include_proto!("api.v1.beta1");
}

/// The `grpc.health.v1` package.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod health {
    tonic::include_proto!("grpc.health.v1");
}

/// kestrel's management API, package `kestrel.v1`.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod manager {
    tonic::include_proto!("kestrel.v1");
}

pub mod convert;
pub mod raw;

/// Every service and message above as an encoded `FileDescriptorSet`, for gRPC server
/// reflection (grpcurl, Postman and Katib's tooling discover the services with it).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kestrel_descriptors.bin"));

pub use convert::ConvertError;
