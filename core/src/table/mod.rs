//! The connection table: one hash index per zone, created on first use.
//!
//! Lookups take no lock: they pin a crossbeam-epoch guard (once per batch) and probe the
//! zone's [`raw::Index`]. Writers (insert, removal, rebuild) hold the zone's lock, so two
//! zones never contend and a zone flush or dump touches only that zone. The pointer-level code
//! and its safety argument are in [`raw`], the only module with `unsafe`.
//!
//! # Lock order
//! `ZoneTable::writer` (the zone lock) first; while holding it, code may take an expiration
//! list's lock (`raw::ExpList`), the tracker's limits lock, or a connection's state lock (to
//! snapshot it for an event). A connection's state lock is never held while taking any other
//! lock, and no path takes the zone lock while holding one of the others.

#[allow(unsafe_code)]
pub(crate) mod raw;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_epoch::Guard;
use parking_lot::{Mutex, MutexGuard};

use crate::conn::Conn;
use crate::key::ConnKey;
use crate::time::Tick;
use crate::zone::ZoneAcct;
use raw::{Index, IndexWriter};

/// What the zone lock guards.
#[derive(Debug, Default)]
pub(crate) struct ZoneWriter {
    pub(crate) index: IndexWriter,
    pub(crate) acct: ZoneAcct,
}

/// One zone's connections.
#[derive(Debug)]
pub(crate) struct ZoneTable {
    pub(crate) index: Index,
    writer: Mutex<ZoneWriter>,
    /// Connections indexed (mirrors `writer.index.live`, readable without the lock).
    count: AtomicU32,
}

impl ZoneTable {
    fn new() -> Self {
        Self {
            index: Index::new(),
            writer: Mutex::new(ZoneWriter::default()),
            count: AtomicU32::new(0),
        }
    }

    /// The live connection `key` belongs to, and whether `key` is its reply direction.
    pub(crate) fn lookup<'g>(
        &self,
        key: &ConnKey,
        hash: u64,
        now: Tick,
        guard: &'g Guard,
    ) -> Option<(&'g Conn, bool)> {
        let mut reply = false;
        let conn = self.index.find(hash, guard, |c| {
            if c.is_expired(now) {
                return false;
            }
            if c.key == *key {
                reply = false;
                true
            } else if c.key.is_reverse_of(key) {
                reply = true;
                true
            } else {
                false
            }
        })?;
        Some((conn, reply))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ZoneWriter> {
        self.writer.lock()
    }

    /// Connections in the zone (expired ones not yet swept included).
    pub(crate) fn count(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Updates the lock-free count from the writer's bookkeeping.
    pub(crate) fn publish_count(&self, writer: &ZoneWriter) {
        self.count
            .store(writer.index.live() as u32, Ordering::Relaxed);
    }
}

/// Every zone's table, allocated on first use and kept until the tracker is dropped. A bitmap
/// of the zones that have a table lets whole-table walks skip the 65,536 slots quickly.
#[derive(Debug)]
pub(crate) struct ZoneDir {
    zones: Box<[OnceLock<Box<ZoneTable>>]>,
    present: Box<[AtomicU64]>,
}

impl ZoneDir {
    pub(crate) fn new() -> Self {
        Self {
            zones: (0..=u16::MAX).map(|_| OnceLock::new()).collect(),
            present: (0..1024).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn get(&self, zone: u16) -> Option<&ZoneTable> {
        self.zones[usize::from(zone)].get().map(|b| &**b)
    }

    pub(crate) fn get_or_create(&self, zone: u16) -> &ZoneTable {
        self.zones[usize::from(zone)].get_or_init(|| {
            self.present[usize::from(zone / 64)].fetch_or(1 << (zone % 64), Ordering::Release);
            Box::new(ZoneTable::new())
        })
    }

    /// Zones that have a table, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u16, &ZoneTable)> {
        self.present
            .iter()
            .enumerate()
            .flat_map(move |(word, bits)| {
                let mut bits = bits.load(Ordering::Acquire);
                let zones = std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let bit = bits.trailing_zeros();
                    bits &= bits - 1;
                    Some((word * 64) as u16 + bit as u16)
                });
                // A bit is set just before its table is stored: skip a table still being made.
                zones.filter_map(|zone| self.get(zone).map(|t| (zone, t)))
            })
    }

    /// Frees every connection still indexed (tracker drop).
    pub(crate) fn free_all(&mut self, freed: &AtomicU64) {
        for t in self.zones.iter_mut().filter_map(OnceLock::get_mut) {
            t.index.free_all(freed);
        }
    }
}
