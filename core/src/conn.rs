//! A tracked connection: one allocation holding its key, links and state.
//!
//! # Fields and who may touch them
//! * Immutable after creation: `key`, `created`, `id`, `policy`, `admission`, `exp_list`.
//! * `links`: written only under the expiration list's lock, read lock-free by the sweeper.
//! * `expiration`: an atomic that packet threads overwrite (relaxed) while holding `state`;
//!   flush and port reuse set it to zero. A connection with `now >= expiration` is invisible.
//! * `reclaimed`: false for the connection's whole life, set once by whoever starts removing
//!   it (the removal path is idempotent because of it).
//! * `state`: the protocol state and counters, behind the connection's own lock.
//!
//! # Lock order
//! `conn.state` is never held while taking another lock (it may be taken under the zone lock
//! to snapshot the connection). Removal takes the zone lock, then the expiration list's lock
//! (see `table`).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::key::ConnKey;
use crate::l4::L4State;
use crate::policy::PolicyId;
use crate::table::raw::ExpLinks;
use crate::time::Tick;

/// Why a connection left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DestroyReason {
    /// Its timeout passed and the sweeper removed it.
    Expired,
    /// Removed by a flush (all, zone, tuple or filter).
    Flushed,
    /// A `force` packet in the reply direction replaced it.
    Forced,
    /// A new SYN on the fully closed TCP connection replaced it (port reuse).
    PortReuse,
}

impl DestroyReason {
    /// Lower-case name for events and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Flushed => "flushed",
            Self::Forced => "forced",
            Self::PortReuse => "port_reuse",
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Expired => 0,
            Self::Flushed => 1,
            Self::Forced => 2,
            Self::PortReuse => 3,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Flushed,
            2 => Self::Forced,
            3 => Self::PortReuse,
            _ => Self::Expired,
        }
    }
}

/// Packet and byte counters, per direction (`[originator, responder]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets accepted in each direction.
    pub packets: [u64; 2],
    /// IP bytes (headers included) accepted in each direction.
    pub bytes: [u64; 2],
}

impl Counters {
    pub(crate) fn add(&mut self, reply: bool, bytes: u32) {
        let d = usize::from(reply);
        self.packets[d] += 1;
        self.bytes[d] += u64::from(bytes);
    }
}

/// What the connection lock guards.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) l4: L4State,
    pub(crate) counters: Counters,
}

/// A tracked connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) key: ConnKey,
    pub(crate) links: ExpLinks,
    expiration: AtomicU64,
    pub(crate) created: Tick,
    pub(crate) id: u64,
    /// The zone-limit record this connection counts toward (0: none), see `zone`.
    pub(crate) admission: u64,
    pub(crate) policy: PolicyId,
    pub(crate) reclaimed: AtomicBool,
    end_reason: AtomicU8,
    pub(crate) exp_list: u8,
    pub(crate) state: Mutex<ConnState>,
}

/// The immutable facts of a new connection.
#[derive(Debug)]
pub(crate) struct NewConn {
    pub(crate) key: ConnKey,
    pub(crate) created: Tick,
    pub(crate) expiration: Tick,
    pub(crate) id: u64,
    pub(crate) admission: u64,
    pub(crate) policy: PolicyId,
    pub(crate) exp_list: u8,
    pub(crate) l4: L4State,
    pub(crate) counters: Counters,
}

impl Conn {
    pub(crate) fn new(n: NewConn) -> Self {
        Self {
            key: n.key,
            links: ExpLinks::default(),
            expiration: AtomicU64::new(n.expiration.as_millis()),
            created: n.created,
            id: n.id,
            admission: n.admission,
            policy: n.policy,
            reclaimed: AtomicBool::new(false),
            end_reason: AtomicU8::new(DestroyReason::Expired.code()),
            exp_list: n.exp_list,
            state: Mutex::new(ConnState {
                l4: n.l4,
                counters: n.counters,
            }),
        }
    }

    /// When the connection expires.
    pub(crate) fn expiration(&self) -> Tick {
        Tick::from_millis(self.expiration.load(Ordering::Relaxed))
    }

    /// Whether the connection is dead at `now` (invisible, awaiting the sweeper).
    pub(crate) fn is_expired(&self, now: Tick) -> bool {
        now.as_millis() >= self.expiration.load(Ordering::Relaxed)
    }

    /// Moves the expiration (packet threads, holding `state`).
    pub(crate) fn set_expiration(&self, at: Tick) {
        self.expiration.store(at.as_millis(), Ordering::Relaxed);
    }

    /// Makes the connection invisible at once; the sweeper removes it later (OVS
    /// `conn_force_expire`). `reason` is reported when it is removed.
    pub(crate) fn force_expire(&self, reason: DestroyReason) {
        self.end_reason.store(reason.code(), Ordering::Relaxed);
        self.expiration.store(0, Ordering::Relaxed);
    }

    /// Why the connection ended, if it was ended early; `Expired` otherwise.
    pub(crate) fn end_reason(&self) -> DestroyReason {
        DestroyReason::from_code(self.end_reason.load(Ordering::Relaxed))
    }
}
