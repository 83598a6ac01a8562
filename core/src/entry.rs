//! Snapshots of connections, as dumps and events report them.

use std::time::Duration;

use crate::conn::{Conn, Counters};
use crate::key::ConnKey;
use crate::l4::{IcmpState, L4State, TcpPeerInfo};
use crate::policy::PolicyId;
use crate::time::Tick;

/// The protocol state of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoInfo {
    /// ICMP/ICMPv6: whether a reply was seen.
    Icmp {
        /// A reply was seen.
        reply_seen: bool,
    },
    /// UDP and other protocols: `FIRST`, `MULTIPLE` or `BIDIR`.
    Other {
        /// The state name.
        state: &'static str,
    },
    /// TCP: both peers.
    Tcp {
        /// The originator.
        orig: TcpPeerInfo,
        /// The responder.
        reply: TcpPeerInfo,
    },
}

/// A connection as seen at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnEntry {
    /// A number unique within this tracker's lifetime.
    pub id: u64,
    /// The originator direction's key (zone included).
    pub key: ConnKey,
    /// The timeout policy it was created with.
    pub policy: PolicyId,
    /// Protocol state.
    pub proto: ProtoInfo,
    /// When it expires unless refreshed.
    pub expires_at: Tick,
    /// When it was created.
    pub created: Tick,
    /// Packets and bytes per direction.
    pub counters: Counters,
}

impl ConnEntry {
    pub(crate) fn of(conn: &Conn) -> Self {
        let state = conn.state.lock();
        let proto = match &state.l4 {
            L4State::Icmp(s) => ProtoInfo::Icmp {
                reply_seen: *s == IcmpState::Reply,
            },
            L4State::Other(s) => ProtoInfo::Other { state: s.name() },
            L4State::Tcp(t) => {
                let [orig, reply] = t.info();
                ProtoInfo::Tcp { orig, reply }
            }
        };
        let counters = state.counters;
        drop(state);
        Self {
            id: conn.id,
            key: conn.key,
            policy: conn.policy,
            proto,
            expires_at: conn.expiration(),
            created: conn.created,
            counters,
        }
    }

    /// The responder direction's key.
    pub fn reply_key(&self) -> ConnKey {
        self.key.reverse()
    }

    /// Time left before expiry at `now` (zero if past).
    pub fn timeout_left(&self, now: Tick) -> Duration {
        self.expires_at.saturating_since(now)
    }

    /// Age at `now`.
    pub fn age(&self, now: Tick) -> Duration {
        now.saturating_since(self.created)
    }
}
