//! ctrack-core: a deterministic connection tracker, faithful to Open vSwitch's userspace
//! conntrack (v3.7.1).
//!
//! Nothing in this crate reads a clock, touches a socket, logs per packet or spawns a thread.
//! Callers hand in frames with the current [`Tick`] and get a [`CtState`] back; expired
//! connections are removed only when the caller runs [`Tracker::sweep`], which says when to
//! run it again. Every method takes `&self`, so one tracker serves many packet threads.
//!
//! # Layout, in the order a packet travels
//! * [`packet`]: frame bytes to a key, with OVS's validity rules.
//! * `key`: [`ConnKey`], the direction-symmetric hash.
//! * [`tracker`]: the glue: lookup, state update, creation, removal, sweep, flush, dump.
//! * `table`: per-zone lock-free indexes; `table::raw` holds all the `unsafe` code.
//! * `conn`: one connection: immutable key, atomics, and its locked protocol state.
//! * `l4`: the TCP (pf window tracking), ICMP and "other" state machines.
//! * `policy`, `zone`: timeout policies and zone limits.
//! * `stats`, `event`, `entry`, `filter`: what management sees.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod conn;
mod entry;
mod event;
mod filter;
mod key;
mod l4;
pub mod packet;
mod policy;
mod stats;
mod table;
mod time;
pub mod tracker;
mod verdict;
mod zone;

pub use conn::{Counters, DestroyReason};
pub use entry::{ConnEntry, ProtoInfo};
pub use event::{Event, EventKind};
pub use filter::{Filter, Prefix, PrefixTooLong, TupleFilter};
pub use key::{ConnKey, Endpoint, Family, ProtoClass, proto};
pub use l4::{TcpPeerInfo, TcpState};
pub use packet::Frame;
pub use policy::{PolicyId, TimeoutAttr, TimeoutPolicy, UnknownAttr};
pub use stats::Stats;
pub use time::Tick;
pub use tracker::{Config, DumpCursor, Error, ProcessOptions, SweepReport, Tracker};
pub use verdict::{CtState, InvalidReason};
pub use zone::ZoneLimitInfo;
