//! ICMP and ICMPv6 echo-like exchanges (OVS `conntrack-icmp.c`): FIRST -> REPLY.

use super::Update;
use crate::policy::TimeoutAttr;

/// State of an ICMP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IcmpState {
    /// Requests only.
    First,
    /// A reply was seen.
    Reply,
}

impl IcmpState {
    pub(crate) fn on_packet(&mut self, reply: bool) -> (Update, TimeoutAttr) {
        if reply {
            *self = Self::Reply;
        }
        match self {
            Self::First => (Update::ValidNew, TimeoutAttr::IcmpFirst),
            Self::Reply => (Update::Valid, TimeoutAttr::IcmpReply),
        }
    }
}
