//! The tracker: packets in, `ct_state` out, plus every management operation.
//!
//! [`Tracker::process`] follows OVS's `process_one`: look the key up (lock-free), let the
//! connection's state machine judge the packet under the connection's lock, and on a miss
//! create a connection under the zone lock after looking again. Expired connections are
//! invisible at once; [`Tracker::sweep`] removes them later, walking the 100 expiration lists
//! without locks and taking the zone and list locks only to unlink (OVS's rculist design).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_epoch::{self as epoch, Guard};
use parking_lot::Mutex;

use crate::conn::{Conn, Counters, DestroyReason, NewConn};
use crate::entry::ConnEntry;
use crate::event::{Event, EventKind, EventQueue};
use crate::filter::Filter;
use crate::key::{ConnKey, ProtoClass};
use crate::l4::{self, L4State, Update};
use crate::packet::{self, Frame, Parsed};
use crate::policy::{PolicyId, PolicyTable, TimeoutPolicy};
use crate::stats::{self, Stats};
use crate::table::raw::{self, EpochCell, ExpList};
use crate::table::{ZoneDir, ZoneTable, ZoneWriter};
use crate::time::Tick;
use crate::verdict::{CtState, InvalidReason};
use crate::zone::{DefaultLimit, ZoneLimitInfo};

/// Number of expiration lists (OVS `N_EXP_LISTS`).
pub const EXPIRATION_LISTS: usize = 100;
/// Delay before the next sweep pass when a pass stopped at its budget
/// (OVS `CT_CLEAN_MIN_INTERVAL_MS`).
pub const SWEEP_RETRY: Duration = Duration::from_millis(200);
/// Default delay between full sweep passes (OVS's default sweep interval).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(20);
/// Default global connection limit (OVS's default).
pub const DEFAULT_MAX_CONNS: u32 = 3_000_000;
/// Bytes of one connection's allocation (the index adds 8 bytes per slot, at a load of 3/8 to
/// 3/4).
pub const CONNECTION_SIZE: usize = std::mem::size_of::<Conn>();

/// Settings fixed when the tracker is built (the others change at run time).
#[derive(Clone, Debug)]
pub struct Config {
    /// Secret mixed into every key hash; pick it at random in a live daemon, so that nobody
    /// can aim packets at one hash chain.
    pub hash_seed: u64,
    /// Global connection limit; 0 means unlimited.
    pub max_conns: u32,
    /// Delay between full sweep passes.
    pub sweep_interval: Duration,
    /// TCP sequence (window) checking.
    pub tcp_seq_check: bool,
    /// Capacity of the event queue.
    pub event_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hash_seed: 0x6374_7261_636b_2121,
            max_conns: DEFAULT_MAX_CONNS,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            tcp_seq_check: true,
            event_capacity: 65_536,
        }
    }
}

/// Per-packet options (OVS's `ct()` action arguments that ctrack uses).
#[derive(Clone, Copy, Debug)]
pub struct ProcessOptions {
    /// Store new connections (without it, nothing is created).
    pub commit: bool,
    /// A packet that matches a connection in the reply direction ends it and starts a new one
    /// with this packet as the originator (implies `commit`).
    pub force: bool,
    /// Verify TCP, UDP, ICMP and ICMPv6 checksums.
    pub verify_checksums: bool,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            commit: true,
            force: false,
            verify_checksums: true,
        }
    }
}

/// Management errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No live connection has this tuple in this zone.
    #[error("no connection matches the tuple in zone {zone}")]
    ConnectionNotFound {
        /// The zone searched.
        zone: u16,
    },
    /// An argument is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The argument's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The policy does not exist.
    #[error("timeout policy {0} does not exist")]
    PolicyNotFound(u32),
    /// The zone is bound to no policy.
    #[error("zone {0} is not bound to a timeout policy")]
    ZoneNotBound(u16),
    /// The zone has no explicit limit.
    #[error("zone {0} has no connection limit")]
    ZoneLimitNotFound(u16),
    /// No default zone limit is set.
    #[error("no default zone limit is set")]
    DefaultLimitNotSet,
}

/// When to sweep again, and what the pass did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepReport {
    /// Connections looked at.
    pub scanned: u64,
    /// Connections removed.
    pub expired: u64,
    /// The pass stopped at its budget (`limit / 64` connections); call again soon.
    pub partial: bool,
    /// When to call [`Tracker::sweep`] next.
    pub next_sweep: Tick,
}

/// Where a paged dump resumes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpCursor {
    zone: u32,
    slot: usize,
    done: bool,
}

impl DumpCursor {
    /// Whether the dump has reached the end.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[derive(Debug, Default)]
struct Limits {
    default: DefaultLimit,
}

/// The connection tracker. Share it between threads (`Arc<Tracker>`): every method takes
/// `&self`.
#[derive(Debug)]
pub struct Tracker {
    seed: u64,
    zones: ZoneDir,
    lists: Box<[ExpList]>,
    next_list: AtomicUsize,
    /// The sweeper's position; also makes sure only one sweep runs at a time.
    sweep_cursor: Mutex<usize>,
    n_conn: AtomicU64,
    per_proto: [AtomicI64; ProtoClass::ALL.len()],
    max_conns: AtomicU32,
    sweep_interval_ms: AtomicU64,
    tcp_seq_check: AtomicBool,
    limits: Mutex<Limits>,
    limit_seq: AtomicU64,
    policies: EpochCell<PolicyTable>,
    policy_writer: Mutex<()>,
    counters: stats::Counters,
    events: EventQueue,
    next_id: AtomicU64,
    allocated: AtomicU64,
    freed: Arc<AtomicU64>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl Tracker {
    /// A tracker with `config`.
    pub fn new(config: Config) -> Self {
        Self {
            seed: config.hash_seed,
            zones: ZoneDir::new(),
            lists: (0..EXPIRATION_LISTS).map(|_| ExpList::default()).collect(),
            next_list: AtomicUsize::new(0),
            sweep_cursor: Mutex::new(0),
            n_conn: AtomicU64::new(0),
            per_proto: Default::default(),
            max_conns: AtomicU32::new(config.max_conns),
            sweep_interval_ms: AtomicU64::new(duration_ms(config.sweep_interval).max(1)),
            tcp_seq_check: AtomicBool::new(config.tcp_seq_check),
            limits: Mutex::new(Limits::default()),
            limit_seq: AtomicU64::new(1),
            policies: EpochCell::new(PolicyTable::default()),
            policy_writer: Mutex::new(()),
            counters: stats::Counters::default(),
            events: EventQueue::new(config.event_capacity),
            next_id: AtomicU64::new(1),
            allocated: AtomicU64::new(0),
            freed: Arc::new(AtomicU64::new(0)),
        }
    }

    // === Packets ===

    /// Tracks one packet of `zone` at `now` and returns its `ct_state`.
    pub fn process(
        &self,
        frame: Frame<'_>,
        zone: u16,
        opts: &ProcessOptions,
        now: Tick,
    ) -> CtState {
        let guard = epoch::pin();
        self.process_pinned(frame, zone, opts, now, &guard)
    }

    /// Tracks a batch of packets (each with its zone) at `now`, pinning the epoch once.
    /// `out[i]` receives the state of `packets[i]`; extra entries of `out` are left alone.
    pub fn process_batch(
        &self,
        packets: &[(Frame<'_>, u16)],
        opts: &ProcessOptions,
        now: Tick,
        out: &mut [CtState],
    ) {
        let guard = epoch::pin();
        for (&(frame, zone), slot) in packets.iter().zip(out.iter_mut()) {
            *slot = self.process_pinned(frame, zone, opts, now, &guard);
        }
    }

    fn process_pinned(
        &self,
        frame: Frame<'_>,
        zone: u16,
        opts: &ProcessOptions,
        now: Tick,
        guard: &Guard,
    ) -> CtState {
        let pkt = match packet::parse(frame, zone, opts.verify_checksums) {
            Ok(p) => p,
            Err(reason) => return self.invalid(reason),
        };
        let hash = pkt.key.hash(self.seed);
        let mut found = self
            .zones
            .get(zone)
            .and_then(|t| t.lookup(&pkt.key, hash, now, guard));
        if let (true, Some((conn, true))) = (opts.force, found) {
            conn.force_expire(DestroyReason::Forced);
            stats::bump(&self.counters.forced);
            found = None;
        }
        if pkt.related {
            return match found {
                Some((_, reply)) => {
                    stats::bump(&self.counters.related);
                    let rpl = if reply { CtState::RPL } else { CtState::EMPTY };
                    CtState::REL | rpl | CtState::TRK
                }
                None => self.invalid(InvalidReason::IcmpErrorNoMatch),
            };
        }
        if let Some((conn, reply)) = found {
            match self.update(conn, &pkt, reply, now, guard) {
                Ok(Some(state)) => return state | CtState::TRK,
                Ok(None) => {} // port reuse: fall through and create
                Err(reason) => return self.invalid(reason),
            }
        }
        if let Err(reason) = l4::valid_new(&pkt) {
            return self.invalid(reason);
        }
        if opts.commit || opts.force {
            self.create(&pkt, hash, now, guard);
        }
        CtState::NEW | CtState::TRK
    }

    /// Runs a packet through its connection's state machine. `Ok(None)`: the connection was
    /// ended by port reuse and the packet should create a new one.
    fn update(
        &self,
        conn: &Conn,
        pkt: &Parsed,
        reply: bool,
        now: Tick,
        guard: &Guard,
    ) -> Result<Option<CtState>, InvalidReason> {
        let seq_check = self.tcp_seq_check.load(Ordering::Relaxed);
        let mut state = conn.state.lock();
        let outcome = state.l4.on_packet(pkt, reply, seq_check);
        if let Some(attr) = outcome.timeout {
            let secs = self.policies.load(guard).policy(conn.policy).secs(attr);
            conn.set_expiration(expiry(now, secs));
        }
        if outcome.seq_check_bypassed {
            stats::bump(&self.counters.seq_check_bypassed);
        }
        let verdict = match outcome.update {
            Update::Valid => {
                state.counters.add(reply, pkt.l3_len);
                let rpl = if reply { CtState::RPL } else { CtState::EMPTY };
                CtState::EST | rpl
            }
            Update::ValidNew => {
                state.counters.add(reply, pkt.l3_len);
                CtState::NEW
            }
            Update::Invalid(reason) => return Err(reason),
            Update::Restart => {
                drop(state);
                conn.force_expire(DestroyReason::PortReuse);
                stats::bump(&self.counters.port_reuse);
                return Ok(None);
            }
        };
        Ok(Some(verdict))
    }

    fn invalid(&self, reason: InvalidReason) -> CtState {
        stats::bump(&self.counters.invalid[reason.index()]);
        CtState::invalid()
    }

    /// Commits a new connection for `pkt` unless a limit forbids it or another thread was
    /// first (OVS `conn_not_found`, with the lookup repeated under the zone lock).
    fn create(&self, pkt: &Parsed, hash: u64, now: Tick, guard: &Guard) {
        let zone = pkt.key.zone;
        let table = self.zones.get_or_create(zone);
        let mut writer = table.lock();
        if table.lookup(&pkt.key, hash, now, guard).is_some() {
            return;
        }
        let default = self.limits.lock().default;
        let Ok(admission) = writer.acct.admit(default, || self.next_limit_seq()) else {
            stats::bump(&self.counters.zone_limit_hits);
            return;
        };
        let max = self.max_conns.load(Ordering::Relaxed);
        if max != 0 && self.n_conn.load(Ordering::Relaxed) >= u64::from(max) {
            writer.acct.release(admission);
            stats::bump(&self.counters.global_limit_hits);
            return;
        }
        let policies = self.policies.load(guard);
        let policy = policies.zone_policy(zone);
        let (l4, attr) = L4State::new(pkt);
        let mut counters = Counters::default();
        counters.add(false, pkt.l3_len);
        let exp_list = self.next_list.fetch_add(1, Ordering::Relaxed) % EXPIRATION_LISTS;
        let conn = Box::new(Conn::new(NewConn {
            key: pkt.key,
            created: now,
            expiration: expiry(now, policies.policy(policy).secs(attr)),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            admission,
            policy,
            exp_list: exp_list as u8,
            l4,
            counters,
        }));
        let conn = match table
            .index
            .insert(&mut writer.index, conn, hash, self.seed, guard)
        {
            Ok(c) => c,
            Err((conn, _)) => {
                drop(conn);
                writer.acct.release(admission);
                stats::bump(&self.counters.alloc_failed);
                return;
            }
        };
        self.lists[exp_list].push_front(conn, guard);
        self.allocated.fetch_add(1, Ordering::Relaxed);
        self.n_conn.fetch_add(1, Ordering::Relaxed);
        self.per_proto[pkt.key.proto_class().index()].fetch_add(1, Ordering::Relaxed);
        table.publish_count(&writer);
        drop(writer);
        stats::bump(&self.counters.created);
        if self.events.enabled() {
            self.events.push(Event {
                kind: EventKind::New,
                entry: ConnEntry::of(conn),
                at: now,
            });
        }
    }

    fn next_limit_seq(&self) -> u64 {
        self.limit_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Removes a connection (idempotent). The caller holds `table`'s lock as `writer`.
    fn remove_locked(
        &self,
        table: &ZoneTable,
        writer: &mut ZoneWriter,
        conn: &Conn,
        reason: DestroyReason,
        now: Tick,
        guard: &Guard,
    ) -> bool {
        let list = &self.lists[usize::from(conn.exp_list)];
        if !raw::retire(
            conn,
            &table.index,
            &mut writer.index,
            list,
            self.seed,
            &self.freed,
            guard,
        ) {
            return false;
        }
        writer.acct.release(conn.admission);
        table.publish_count(writer);
        self.n_conn.fetch_sub(1, Ordering::Relaxed);
        self.per_proto[conn.key.proto_class().index()].fetch_sub(1, Ordering::Relaxed);
        if self.events.enabled() {
            let reason = if reason == DestroyReason::Expired {
                conn.end_reason()
            } else {
                reason
            };
            let event = Event {
                kind: EventKind::Destroy(reason),
                entry: ConnEntry::of(conn),
                at: now,
            };
            self.events.push(event);
        }
        true
    }

    fn remove(&self, conn: &Conn, reason: DestroyReason, now: Tick, guard: &Guard) -> bool {
        let Some(table) = self.zones.get(conn.key.zone) else {
            return false;
        };
        let mut writer = table.lock();
        self.remove_locked(table, &mut writer, conn, reason, now, guard)
    }

    // === Sweeping ===

    /// Removes expired connections, at most about `limit / 64` scanned per call, and says
    /// when to call again: in 200 ms if the pass stopped at its budget, else after the sweep
    /// interval. Only one sweep runs at a time; a concurrent call returns at once.
    #[must_use = "the report says when the next sweep is due"]
    pub fn sweep(&self, now: Tick) -> SweepReport {
        let Some(mut cursor) = self.sweep_cursor.try_lock() else {
            return SweepReport {
                scanned: 0,
                expired: 0,
                partial: true,
                next_sweep: now.saturating_add(SWEEP_RETRY),
            };
        };
        let guard = epoch::pin();
        let max = self.max_conns.load(Ordering::Relaxed);
        let budget = u64::from(if max == 0 { DEFAULT_MAX_CONNS } else { max }) / 64;
        let (mut scanned, mut expired) = (0u64, 0u64);
        let mut i = *cursor;
        let mut partial = false;
        while i < EXPIRATION_LISTS {
            // The budget is checked before each list, so a pass always ends between lists
            // and the next one resumes at the first list not yet walked (as OVS does).
            if scanned > budget {
                partial = true;
                break;
            }
            self.lists[i].walk(&guard, |conn| {
                if conn.is_expired(now) && self.remove(conn, DestroyReason::Expired, now, &guard) {
                    expired += 1;
                }
                scanned += 1;
                true
            });
            i += 1;
        }
        *cursor = if partial { i } else { 0 };
        drop(cursor);
        stats::bump(&self.counters.sweeps);
        self.counters.scanned.fetch_add(scanned, Ordering::Relaxed);
        self.counters.expired.fetch_add(expired, Ordering::Relaxed);
        let wait = if partial {
            SWEEP_RETRY
        } else {
            self.sweep_interval()
        };
        SweepReport {
            scanned,
            expired,
            partial,
            next_sweep: now.saturating_add(wait),
        }
    }

    /// The delay between full sweep passes.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms.load(Ordering::Relaxed))
    }

    /// Sets the delay between full sweep passes (at least 1 ms).
    pub fn set_sweep_interval(&self, interval: Duration) -> Result<(), Error> {
        let ms = duration_ms(interval);
        if ms == 0 {
            return Err(Error::InvalidArgument {
                field: "sweep_interval",
                reason: "must be at least 1 ms".into(),
            });
        }
        self.sweep_interval_ms.store(ms, Ordering::Relaxed);
        Ok(())
    }

    // === Flush ===

    /// Removes every connection; returns how many were live (not yet expired).
    pub fn flush_all(&self, now: Tick) -> u64 {
        self.zones
            .iter()
            .map(|(zone, _)| self.flush_zone(zone, now))
            .sum()
    }

    /// Removes every connection of `zone`; returns how many were live. Costs time in
    /// proportion to the zone's size; an empty zone costs O(1).
    pub fn flush_zone(&self, zone: u16, now: Tick) -> u64 {
        self.flush_matching(zone, now, |_| true)
    }

    /// Removes the live connection with this tuple (either direction) in its zone.
    pub fn flush_tuple(&self, key: &ConnKey, now: Tick) -> Result<(), Error> {
        let guard = epoch::pin();
        let not_found = Error::ConnectionNotFound { zone: key.zone };
        let table = self.zones.get(key.zone).ok_or_else(|| not_found.clone())?;
        let (conn, _) = table
            .lookup(key, key.hash(self.seed), now, &guard)
            .ok_or(not_found)?;
        if self.remove(conn, DestroyReason::Flushed, now, &guard) {
            stats::bump(&self.counters.flushed);
        }
        Ok(())
    }

    /// Removes every connection that `filter` selects; returns how many were live.
    pub fn flush_filter(&self, filter: &Filter, now: Tick) -> u64 {
        match filter.zone {
            Some(zone) => self.flush_matching(zone, now, |c| filter_conn(filter, c)),
            None => {
                let zones: Vec<u16> = self.zones.iter().map(|(z, _)| z).collect();
                zones
                    .into_iter()
                    .map(|z| self.flush_matching(z, now, |c| filter_conn(filter, c)))
                    .sum()
            }
        }
    }

    fn flush_matching(&self, zone: u16, now: Tick, mut select: impl FnMut(&Conn) -> bool) -> u64 {
        let Some(table) = self.zones.get(zone) else {
            return 0;
        };
        if table.count() == 0 {
            return 0;
        }
        let guard = epoch::pin();
        let mut writer = table.lock();
        let mut victims = Vec::new();
        let _ = table.index.scan(0, &guard, |c| {
            if select(c) {
                victims.push(c);
            }
            true
        });
        let mut live = 0;
        for conn in victims {
            let was_live = !conn.is_expired(now);
            if self.remove_locked(
                table,
                &mut writer,
                conn,
                DestroyReason::Flushed,
                now,
                &guard,
            ) {
                stats::bump(&self.counters.flushed);
                live += u64::from(was_live);
            }
        }
        live
    }

    // === Dump ===

    /// Up to `max` live connections selected by `filter`, resuming at `cursor` (start with
    /// `DumpCursor::default()`; stop when `cursor.is_done()`). Each call pins the epoch only
    /// for its own batch. Connections created or removed while a dump is under way may or may
    /// not appear; one that stays from start to end appears once, unless its zone's index is
    /// resized between two calls.
    pub fn dump(
        &self,
        filter: &Filter,
        now: Tick,
        cursor: &mut DumpCursor,
        max: usize,
    ) -> Vec<ConnEntry> {
        let mut out = Vec::new();
        if cursor.done || max == 0 {
            return out;
        }
        let guard = epoch::pin();
        let zones: Box<dyn Iterator<Item = u16>> = match filter.zone {
            Some(z) => {
                let start = cursor.zone;
                Box::new(std::iter::once(z).filter(move |&z| u32::from(z) >= start))
            }
            None => Box::new((cursor.zone..=u32::from(u16::MAX)).map(|z| z as u16)),
        };
        for zone in zones {
            if u32::from(zone) != cursor.zone {
                cursor.zone = u32::from(zone);
                cursor.slot = 0;
            }
            let Some(table) = self.zones.get(zone) else {
                continue;
            };
            if table.count() == 0 {
                continue;
            }
            let resume = table.index.scan(cursor.slot, &guard, |c| {
                if !c.is_expired(now) && filter.matches_key(&c.key) {
                    let entry = ConnEntry::of(c);
                    if !filter.needs_state() || filter.matches(&entry) {
                        out.push(entry);
                    }
                }
                out.len() < max
            });
            if let Some(slot) = resume {
                cursor.slot = slot;
                return out;
            }
            cursor.slot = 0;
        }
        cursor.done = true;
        out
    }

    /// Every live connection selected by `filter` (convenience over [`Tracker::dump`]).
    pub fn dump_all(&self, filter: &Filter, now: Tick) -> Vec<ConnEntry> {
        let mut cursor = DumpCursor::default();
        let mut all = Vec::new();
        while !cursor.is_done() {
            all.extend(self.dump(filter, now, &mut cursor, 4096));
        }
        all
    }

    /// The live connection that `key` (either direction) belongs to.
    pub fn lookup(&self, key: &ConnKey, now: Tick) -> Option<ConnEntry> {
        let guard = epoch::pin();
        let table = self.zones.get(key.zone)?;
        let (conn, _) = table.lookup(key, key.hash(self.seed), now, &guard)?;
        Some(ConnEntry::of(conn))
    }

    // === Limits ===

    /// Connections in the table (expired ones not yet swept included).
    pub fn connection_count(&self) -> u64 {
        self.n_conn.load(Ordering::Relaxed)
    }

    /// The global limit (0: unlimited).
    pub fn max_conns(&self) -> u32 {
        self.max_conns.load(Ordering::Relaxed)
    }

    /// Sets the global limit (0: unlimited). Lowering it evicts nothing.
    pub fn set_max_conns(&self, limit: u32) {
        self.max_conns.store(limit, Ordering::Relaxed);
    }

    /// Sets `zone`'s own limit (0: unlimited).
    pub fn set_zone_limit(&self, zone: u16, limit: u32) {
        let table = self.zones.get_or_create(zone);
        let mut writer = table.lock();
        writer.acct.set_explicit(limit, || self.next_limit_seq());
    }

    /// Removes `zone`'s own limit; the default applies again.
    pub fn delete_zone_limit(&self, zone: u16) -> Result<(), Error> {
        let table = self.zones.get(zone).ok_or(Error::ZoneLimitNotFound(zone))?;
        if table.lock().acct.clear_explicit() {
            Ok(())
        } else {
            Err(Error::ZoneLimitNotFound(zone))
        }
    }

    /// Sets the default limit applied to each zone without its own (0: unlimited).
    pub fn set_default_zone_limit(&self, limit: u32) {
        let mut limits = self.limits.lock();
        if limits.default.limit.is_none() {
            limits.default.seq = self.next_limit_seq();
        }
        limits.default.limit = Some(limit);
    }

    /// Removes the default limit.
    pub fn delete_default_zone_limit(&self) -> Result<(), Error> {
        let mut limits = self.limits.lock();
        limits
            .default
            .limit
            .take()
            .map(|_| ())
            .ok_or(Error::DefaultLimitNotSet)
    }

    /// The default zone limit, if set.
    pub fn default_zone_limit(&self) -> Option<u32> {
        self.limits.lock().default.limit
    }

    /// One zone's limit and counts.
    pub fn zone_limit(&self, zone: u16) -> ZoneLimitInfo {
        let default = self.limits.lock().default;
        match self.zones.get(zone) {
            Some(table) => {
                let writer = table.lock();
                writer.acct.info(zone, default, table.count())
            }
            None => crate::zone::ZoneAcct::default().info(zone, default, 0),
        }
    }

    /// Every zone that has its own limit.
    pub fn zone_limits(&self) -> Vec<ZoneLimitInfo> {
        let default = self.limits.lock().default;
        self.zones
            .iter()
            .filter_map(|(zone, table)| {
                let writer = table.lock();
                writer
                    .acct
                    .explicit()
                    .map(|_| writer.acct.info(zone, default, table.count()))
            })
            .collect()
    }

    // === Timeout policies ===

    /// Creates or replaces policy `id` whole.
    pub fn set_policy(&self, id: PolicyId, policy: TimeoutPolicy) {
        self.edit_policies(|t| {
            t.policies.insert(id, policy);
        });
    }

    /// Policy `id`, if it exists.
    pub fn policy(&self, id: PolicyId) -> Option<TimeoutPolicy> {
        let guard = epoch::pin();
        self.policies.load(&guard).policies.get(&id).copied()
    }

    /// Every policy, by id.
    pub fn policies(&self) -> Vec<(PolicyId, TimeoutPolicy)> {
        let guard = epoch::pin();
        let mut all: Vec<_> = self
            .policies
            .load(&guard)
            .policies
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// Deletes policy `id`: its connections use the defaults from their next packet. Zones
    /// bound to it keep the binding (and get the defaults) until rebound.
    pub fn delete_policy(&self, id: PolicyId) -> Result<(), Error> {
        let mut found = false;
        self.edit_policies(|t| found = t.policies.remove(&id).is_some());
        if found {
            Ok(())
        } else {
            Err(Error::PolicyNotFound(id.0))
        }
    }

    /// Binds `zone` to policy `id` for connections created from now on. Policy 0 (the
    /// defaults) always exists; other ids must have been set.
    pub fn bind_zone_policy(&self, zone: u16, id: PolicyId) -> Result<(), Error> {
        let mut result = Ok(());
        self.edit_policies(|t| {
            if id.0 != 0 && !t.policies.contains_key(&id) {
                result = Err(Error::PolicyNotFound(id.0));
            } else {
                t.bindings.insert(zone, id);
            }
        });
        result
    }

    /// Removes `zone`'s binding (back to policy 0).
    pub fn unbind_zone_policy(&self, zone: u16) -> Result<(), Error> {
        let mut found = false;
        self.edit_policies(|t| found = t.bindings.remove(&zone).is_some());
        if found {
            Ok(())
        } else {
            Err(Error::ZoneNotBound(zone))
        }
    }

    /// Every zone binding.
    pub fn zone_policies(&self) -> Vec<(u16, PolicyId)> {
        let guard = epoch::pin();
        let mut all: Vec<_> = self
            .policies
            .load(&guard)
            .bindings
            .iter()
            .map(|(z, p)| (*z, *p))
            .collect();
        all.sort();
        all
    }

    fn edit_policies(&self, edit: impl FnOnce(&mut PolicyTable)) {
        let _writer = self.policy_writer.lock();
        let guard = epoch::pin();
        let mut table = self.policies.load(&guard).clone();
        edit(&mut table);
        self.policies.replace(table, &guard);
    }

    // === Settings ===

    /// Whether TCP sequence checking is on.
    pub fn tcp_seq_check(&self) -> bool {
        self.tcp_seq_check.load(Ordering::Relaxed)
    }

    /// Turns TCP sequence checking on or off (flag checks always stay on).
    pub fn set_tcp_seq_check(&self, on: bool) {
        self.tcp_seq_check.store(on, Ordering::Relaxed);
    }

    // === Events ===

    /// Starts or stops producing events.
    pub fn set_events_enabled(&self, on: bool) {
        self.events.set_enabled(on);
    }

    /// Events dropped so far because the queue was full.
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped()
    }

    /// Moves up to `max` queued events into `out`; returns how many.
    pub fn drain_events(&self, out: &mut Vec<Event>, max: usize) -> usize {
        self.events.drain(out, max)
    }

    // === Stats ===

    /// A snapshot of counts and counters.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let invalid: Vec<_> = InvalidReason::ALL
            .into_iter()
            .map(|r| (r, stats::read(&c.invalid[r.index()])))
            .collect();
        let per_proto = ProtoClass::ALL
            .into_iter()
            .map(|p| {
                (
                    p,
                    self.per_proto[p.index()].load(Ordering::Relaxed).max(0) as u64,
                )
            })
            .collect();
        let per_zone = self
            .zones
            .iter()
            .filter(|(_, t)| t.count() > 0)
            .map(|(z, t)| (z, u64::from(t.count())))
            .collect();
        Stats {
            connections: self.connection_count(),
            per_proto,
            per_zone,
            seq_check_failed: stats::read(&c.invalid[InvalidReason::TcpWindow.index()]),
            invalid,
            created: stats::read(&c.created),
            zone_limit_hits: stats::read(&c.zone_limit_hits),
            global_limit_hits: stats::read(&c.global_limit_hits),
            seq_check_bypassed: stats::read(&c.seq_check_bypassed),
            related: stats::read(&c.related),
            port_reuse: stats::read(&c.port_reuse),
            forced: stats::read(&c.forced),
            sweeps: stats::read(&c.sweeps),
            scanned: stats::read(&c.scanned),
            expired: stats::read(&c.expired),
            flushed: stats::read(&c.flushed),
            events_dropped: self.events.dropped(),
            alloc_failed: stats::read(&c.alloc_failed),
            allocated: self.allocated.load(Ordering::Relaxed),
            freed: self.freed.load(Ordering::Relaxed),
        }
    }

    /// A counter of freed connections that outlives the tracker: connections removed shortly
    /// before the tracker is dropped are freed by the epoch collector later.
    pub fn freed_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.freed)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.zones.free_all(&self.freed);
    }
}

fn filter_conn(filter: &Filter, conn: &Conn) -> bool {
    filter.matches_key(&conn.key) && (!filter.needs_state() || filter.matches(&ConnEntry::of(conn)))
}

fn expiry(now: Tick, secs: u32) -> Tick {
    Tick::from_millis(now.as_millis().saturating_add(u64::from(secs) * 1000))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
