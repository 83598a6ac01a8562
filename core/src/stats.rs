//! Engine counters (OVS's `COVERAGE_*` and more), kept as relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::key::ProtoClass;
use crate::verdict::InvalidReason;

/// Counters bumped by the tracker.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) invalid: [AtomicU64; InvalidReason::ALL.len()],
    pub(crate) created: AtomicU64,
    pub(crate) zone_limit_hits: AtomicU64,
    pub(crate) global_limit_hits: AtomicU64,
    pub(crate) seq_check_bypassed: AtomicU64,
    pub(crate) related: AtomicU64,
    pub(crate) port_reuse: AtomicU64,
    pub(crate) forced: AtomicU64,
    pub(crate) sweeps: AtomicU64,
    pub(crate) scanned: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) flushed: AtomicU64,
    pub(crate) alloc_failed: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A snapshot of the engine's counts and counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections in the table (including expired ones the sweeper has not removed yet,
    /// which still count toward limits).
    pub connections: u64,
    /// Connections per protocol class.
    pub per_proto: Vec<(ProtoClass, u64)>,
    /// Connections per zone, for zones that have any.
    pub per_zone: Vec<(u16, u64)>,
    /// Invalid packets per reason.
    pub invalid: Vec<(InvalidReason, u64)>,
    /// Connections created (committed).
    pub created: u64,
    /// New connections refused by a zone limit.
    pub zone_limit_hits: u64,
    /// New connections refused by the global limit.
    pub global_limit_hits: u64,
    /// TCP segments outside the window accepted because sequence checking is off.
    pub seq_check_bypassed: u64,
    /// TCP segments refused by the window check (same as the `tcp_window` invalid reason).
    pub seq_check_failed: u64,
    /// ICMP errors found related to a connection.
    pub related: u64,
    /// TCP connections replaced by a new SYN after closing (port reuse).
    pub port_reuse: u64,
    /// Connections replaced by a `force` packet.
    pub forced: u64,
    /// Sweep passes run (full or partial).
    pub sweeps: u64,
    /// Connections the sweeper looked at.
    pub scanned: u64,
    /// Connections the sweeper removed because they had expired.
    pub expired: u64,
    /// Connections removed by flushes.
    pub flushed: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// Connections not created because their memory could not be indexed.
    pub alloc_failed: u64,
    /// Connections allocated since the tracker started.
    pub allocated: u64,
    /// Connections whose memory has been freed.
    pub freed: u64,
}

impl Stats {
    /// The count for one invalid reason.
    pub fn invalid_count(&self, reason: InvalidReason) -> u64 {
        self.invalid
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// The count for one protocol class.
    pub fn proto_count(&self, class: ProtoClass) -> u64 {
        self.per_proto
            .iter()
            .find(|(c, _)| *c == class)
            .map_or(0, |(_, n)| *n)
    }

    /// The count for one zone.
    pub fn zone_count(&self, zone: u16) -> u64 {
        self.per_zone
            .iter()
            .find(|(z, _)| *z == zone)
            .map_or(0, |(_, n)| *n)
    }

    /// Total invalid packets.
    pub fn invalid_total(&self) -> u64 {
        self.invalid.iter().map(|(_, n)| n).sum()
    }
}
