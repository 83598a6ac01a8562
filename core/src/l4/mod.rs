//! Per-protocol state machines (OVS's `ct_l4_proto` table as a closed enum).
//!
//! Each machine is pure: it takes the parsed packet and its direction and says what the packet
//! did ([`Update`]) and which timeout now applies. The tracker owns the locking and the clock.

mod icmp;
mod other;
mod tcp;

pub use tcp::{TcpPeerInfo, TcpState};

use crate::key::proto;
use crate::packet::{Parsed, icmp_is_request};
use crate::policy::TimeoutAttr;
use crate::verdict::InvalidReason;

pub(crate) use icmp::IcmpState;
pub(crate) use other::OtherState;
pub(crate) use tcp::TcpConn;

/// What a packet did to an existing connection (OVS `enum ct_update_res`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Update {
    /// The packet does not fit the connection's state.
    Invalid(InvalidReason),
    /// The connection is finished and this packet opens a new one (TCP port reuse).
    Restart,
    /// Accepted; the connection is established.
    Valid,
    /// Accepted, but the connection is still new (no reply yet, or a SYN retransmission).
    ValidNew,
}

/// The result of [`L4State::on_packet`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outcome {
    pub(crate) update: Update,
    /// The timeout to apply from now, if the packet refreshes it.
    pub(crate) timeout: Option<TimeoutAttr>,
    /// The TCP window check failed but sequence checking is off.
    pub(crate) seq_check_bypassed: bool,
}

impl Outcome {
    fn refresh(update: Update, timeout: TimeoutAttr) -> Self {
        Self {
            update,
            timeout: Some(timeout),
            seq_check_bypassed: false,
        }
    }
}

/// The protocol state of a connection.
#[derive(Clone, Copy, Debug)]
pub(crate) enum L4State {
    Icmp(IcmpState),
    Other(OtherState),
    Tcp(TcpConn),
}

impl L4State {
    /// The state of a connection created by `pkt`, with its first timeout. The machine is
    /// chosen by protocol number alone, as OVS's `l4_protos[]` table is (so ICMPv6's number
    /// in an IPv4 packet gets the ICMP machine, though it is keyed on addresses only).
    pub(crate) fn new(pkt: &Parsed) -> (Self, TimeoutAttr) {
        match pkt.key.proto {
            proto::TCP => (Self::Tcp(TcpConn::new(&pkt.tcp)), TimeoutAttr::TcpSynSent),
            proto::ICMP | proto::ICMPV6 => (Self::Icmp(IcmpState::First), TimeoutAttr::IcmpFirst),
            _ => (Self::Other(OtherState::First), TimeoutAttr::UdpFirst),
        }
    }

    /// Runs a packet of this connection through the machine.
    pub(crate) fn on_packet(&mut self, pkt: &Parsed, reply: bool, seq_check: bool) -> Outcome {
        match self {
            Self::Icmp(s) => {
                let (update, timeout) = s.on_packet(reply);
                Outcome::refresh(update, timeout)
            }
            Self::Other(s) => {
                let (update, timeout) = s.on_packet(reply);
                Outcome::refresh(update, timeout)
            }
            Self::Tcp(c) => c.on_packet(&pkt.tcp, reply, seq_check),
        }
    }
}

/// Whether `pkt` may create a connection (OVS `valid_new`, chosen by protocol number).
pub(crate) fn valid_new(pkt: &Parsed) -> Result<(), InvalidReason> {
    match pkt.key.proto {
        proto::TCP => tcp::valid_new(pkt.tcp.flags),
        proto::ICMP | proto::ICMPV6 => {
            if icmp_is_request(pkt.key.proto, pkt.l4_type) {
                Ok(())
            } else {
                Err(InvalidReason::CannotCreate)
            }
        }
        _ => Ok(()),
    }
}
