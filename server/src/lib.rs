//! ctrack-server: the `ctrackd` binary's library.
//!
//! * [`replay`]: `ctrackd replay`, the engine run over a capture file (conformance with OVS's
//!   `test-conntrack pcap`, offline analysis).
//! * [`pcap`]: a streaming reader of pcap and pcapng files.
//! * [`ovs_format`]: connections in OVS's `dpctl/dump-conntrack -m -s` line format.
//! * [`daemon`], [`config`], [`live`], [`capture`], [`sweeper`], [`events`], [`grpc`],
//!   [`metrics`]: the daemon.
//!
//! All `unsafe` code of this crate (socket system calls) is in `capture::sys`.
#![deny(unsafe_code)]

pub mod capture;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod events;
pub mod grpc;
pub mod live;
pub mod metrics;
pub mod ovs_format;
pub mod pcap;
pub mod preload;
pub mod replay;
pub mod sweeper;
