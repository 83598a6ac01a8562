//! Timeout policies: how long a connection lives in each protocol state.
//!
//! The attributes and defaults are OVS's (`ct_dpif_netdev_tp_def`). UDP's attributes serve
//! every protocol other than TCP and ICMP, as in OVS. A policy sets every attribute: setting
//! one replaces it whole, and attributes it does not name take the defaults. A connection
//! keeps the id of the policy its zone was bound to when it was created; if that policy is
//! later edited the new values apply from the connection's next packet, and if it is deleted
//! the defaults do.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// A timeout policy id. Policy 0 is used by zones bound to no other policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub u32);

/// One timeout attribute (the lower-case names are the API's and `ctrackd replay`'s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeoutAttr {
    /// ICMP connection that has seen no reply.
    IcmpFirst,
    /// ICMP connection that has seen a reply.
    IcmpReply,
    /// TCP: either peer closed (RST), or both are at least FIN_WAIT_2.
    TcpClose,
    /// TCP: both peers established.
    TcpEstablished,
    /// TCP: one peer is closing.
    TcpFinWait,
    /// TCP: a new connection, or a pure SYN (re)sent.
    TcpSynSent,
    /// TCP: either peer not yet established.
    TcpSynRecv,
    /// TCP: both peers closing.
    TcpTimeWait,
    /// Other protocols: the first packet.
    UdpFirst,
    /// Other protocols: a reply was seen.
    UdpMultiple,
    /// Other protocols: more packets from the originator only.
    UdpSingle,
}

impl TimeoutAttr {
    /// Every attribute, in table order.
    pub const ALL: [Self; 11] = [
        Self::TcpSynSent,
        Self::TcpSynRecv,
        Self::TcpEstablished,
        Self::TcpFinWait,
        Self::TcpTimeWait,
        Self::TcpClose,
        Self::UdpFirst,
        Self::UdpSingle,
        Self::UdpMultiple,
        Self::IcmpFirst,
        Self::IcmpReply,
    ];

    /// Position in [`TimeoutAttr::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::TcpSynSent => 0,
            Self::TcpSynRecv => 1,
            Self::TcpEstablished => 2,
            Self::TcpFinWait => 3,
            Self::TcpTimeWait => 4,
            Self::TcpClose => 5,
            Self::UdpFirst => 6,
            Self::UdpSingle => 7,
            Self::UdpMultiple => 8,
            Self::IcmpFirst => 9,
            Self::IcmpReply => 10,
        }
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::TcpSynSent => "tcp_syn_sent",
            Self::TcpSynRecv => "tcp_syn_recv",
            Self::TcpEstablished => "tcp_established",
            Self::TcpFinWait => "tcp_fin_wait",
            Self::TcpTimeWait => "tcp_time_wait",
            Self::TcpClose => "tcp_close",
            Self::UdpFirst => "udp_first",
            Self::UdpSingle => "udp_single",
            Self::UdpMultiple => "udp_multiple",
            Self::IcmpFirst => "icmp_first",
            Self::IcmpReply => "icmp_reply",
        }
    }

    /// OVS's default, in seconds.
    pub fn default_secs(self) -> u32 {
        match self {
            Self::TcpSynSent | Self::TcpSynRecv | Self::TcpClose => 30,
            Self::TcpEstablished => 24 * 60 * 60,
            Self::TcpFinWait => 15 * 60,
            Self::TcpTimeWait => 45,
            Self::UdpFirst | Self::UdpSingle | Self::IcmpFirst => 60,
            Self::UdpMultiple | Self::IcmpReply => 30,
        }
    }
}

impl fmt::Display for TimeoutAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An attribute name that is not in the table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown timeout attribute {0:?} (expected one of tcp_syn_sent, tcp_syn_recv, \
         tcp_established, tcp_fin_wait, tcp_time_wait, tcp_close, udp_first, udp_single, \
         udp_multiple, icmp_first, icmp_reply)"
)]
pub struct UnknownAttr(pub String);

impl FromStr for TimeoutAttr {
    type Err = UnknownAttr;
    fn from_str(s: &str) -> Result<Self, UnknownAttr> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownAttr(s.to_owned()))
    }
}

/// A full set of timeouts, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeoutPolicy {
    secs: [u32; 11],
}

impl Default for TimeoutPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TimeoutPolicy {
    /// OVS's defaults.
    pub const DEFAULT: Self = Self {
        secs: [30, 30, 86_400, 900, 45, 30, 60, 60, 30, 60, 30],
    };

    /// The defaults with `overrides` applied (later entries win).
    pub fn with(overrides: impl IntoIterator<Item = (TimeoutAttr, u32)>) -> Self {
        let mut p = Self::DEFAULT;
        for (attr, secs) in overrides {
            p.secs[attr.index()] = secs;
        }
        p
    }

    /// The timeout of `attr`, in seconds.
    pub fn secs(&self, attr: TimeoutAttr) -> u32 {
        self.secs[attr.index()]
    }

    /// Every attribute with its value.
    pub fn iter(&self) -> impl Iterator<Item = (TimeoutAttr, u32)> + '_ {
        TimeoutAttr::ALL.into_iter().map(|a| (a, self.secs(a)))
    }
}

/// The policies and the zone bindings, replaced whole on every change (copy-on-write), so the
/// packet path reads them without a lock.
#[derive(Clone, Debug, Default)]
pub(crate) struct PolicyTable {
    pub(crate) policies: HashMap<PolicyId, TimeoutPolicy>,
    pub(crate) bindings: HashMap<u16, PolicyId>,
}

impl PolicyTable {
    /// The policy in force for id `id` (the defaults when it does not exist).
    pub(crate) fn policy(&self, id: PolicyId) -> &TimeoutPolicy {
        if self.policies.is_empty() {
            return &TimeoutPolicy::DEFAULT;
        }
        self.policies.get(&id).unwrap_or(&TimeoutPolicy::DEFAULT)
    }

    /// The policy id new connections of `zone` get.
    pub(crate) fn zone_policy(&self, zone: u16) -> PolicyId {
        if self.bindings.is_empty() {
            return PolicyId(0);
        }
        self.bindings.get(&zone).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_table_matches_names() {
        for a in TimeoutAttr::ALL {
            assert_eq!(TimeoutPolicy::DEFAULT.secs(a), a.default_secs(), "{a}");
            assert_eq!(a.name().parse::<TimeoutAttr>().unwrap(), a);
        }
        assert!("tcp_bogus".parse::<TimeoutAttr>().is_err());
    }

    #[test]
    fn policy_replaces_whole() {
        let p = TimeoutPolicy::with([(TimeoutAttr::UdpFirst, 5)]);
        assert_eq!(p.secs(TimeoutAttr::UdpFirst), 5);
        assert_eq!(p.secs(TimeoutAttr::UdpSingle), 60);
    }
}
