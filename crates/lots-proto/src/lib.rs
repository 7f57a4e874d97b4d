//! Generated gRPC code for the `lots.v1` API, compiled once for the whole workspace.

#![allow(clippy::all, missing_docs)]

/// The `lots.v1` package: messages, clients and servers.
pub mod v1 {
    tonic::include_proto!("lots.v1");

    /// Encoded file descriptors for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("lots_descriptor");
}
