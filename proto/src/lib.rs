//! ctrack's gRPC API, package `ctrack.v1`: the messages and the tonic clients and servers
//! generated from `proto/ctrack/v1/*.proto` at build time (by protox, in pure Rust).
//!
//! Services: [`v1::conn_track_server::ConnTrack`] (flush, dump, watch),
//! [`v1::limits_server::Limits`], [`v1::policies_server::Policies`] and
//! [`v1::system_server::System`]. [`FILE_DESCRIPTOR_SET`] feeds gRPC server reflection.
#![forbid(unsafe_code)]

/// The generated code of package `ctrack.v1`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    unreachable_pub,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("ctrack.v1");
}

/// The encoded `FileDescriptorSet` of every ctrack proto file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ctrack_descriptor.bin"));

/// Methods that change the daemon's state (allowed only to admin identities under mTLS), as
/// gRPC paths.
pub const MUTATING_METHODS: [&str; 8] = [
    "/ctrack.v1.ConnTrack/Flush",
    "/ctrack.v1.Limits/SetZoneLimits",
    "/ctrack.v1.Limits/DeleteZoneLimits",
    "/ctrack.v1.Policies/SetPolicy",
    "/ctrack.v1.Policies/DeletePolicy",
    "/ctrack.v1.Policies/BindZone",
    "/ctrack.v1.Policies/UnbindZone",
    "/ctrack.v1.System/UpdateSettings",
];
