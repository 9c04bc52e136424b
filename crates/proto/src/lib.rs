//! authzd's wire contract, generated from `proto/authzd/v1` at build time
//! with protox (no system `protoc`): the messages and clients in [`pb`],
//! the servers beside them decoding through [`codec`], and the descriptor
//! set server reflection offers.
//!
//! Must hold no logic beyond the codec (and its pre-encoded responses):
//! conversions to model types
//! belong to the server's adapters and the client.

pub mod codec;

/// The encoding of `Snapshot` records and `Follow` entries: 1 is the JSON
/// of the store's changelog format (the model types' serde encoding).
pub const RECORD_FORMAT: u32 = 1;

/// Code generated from `proto/authzd/v1`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::allow_attributes_without_reason,
    reason = "generated code: prost and tonic write its docs from the proto comments and its own allows without reasons"
)]
pub mod pb {
    tonic::include_proto!("authzd.v1");
    // The servers, generated apart so that they decode with
    // `crate::codec` (see `build.rs`).
    include!(concat!(env!("OUT_DIR"), "/servers/authzd.v1.rs"));

    /// The encoded file descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/authzd_descriptor.bin"));
}
