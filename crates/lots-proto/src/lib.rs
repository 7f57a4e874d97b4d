//! Generated gRPC code for the `lots.v1` API, compiled once for the whole workspace.

#![allow(clippy::all, missing_docs)]

/// Conversions between protobuf timestamps and `chrono`, which every service and client needs.
pub mod time {
    use chrono::{DateTime, Utc};

    /// `t` as a protobuf timestamp.
    pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
    }

    /// A protobuf timestamp as UTC; `None` when unset or out of range.
    pub fn utc(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
        let t = t?;
        DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
    }
}

/// The `lots.v1` package: messages, clients and servers.
pub mod v1 {
    tonic::include_proto!("lots.v1");

    /// Encoded file descriptors for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("lots_descriptor");
}
