//! UDP and every protocol without a dedicated tracker (OVS `conntrack-other.c`):
//! FIRST -> MULTIPLE (more originator packets) -> BIDIR (a reply was seen).

use super::Update;
use crate::policy::TimeoutAttr;

/// State of an "other" connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OtherState {
    /// A reply was seen.
    Bidir,
    /// Only the first packet was seen.
    First,
    /// More packets from the originator, no reply yet.
    Multiple,
}

impl OtherState {
    pub(crate) fn on_packet(&mut self, reply: bool) -> (Update, TimeoutAttr) {
        if reply {
            *self = Self::Bidir;
        } else if *self == Self::First {
            *self = Self::Multiple;
        }
        match self {
            Self::Bidir => (Update::Valid, TimeoutAttr::UdpMultiple),
            Self::Multiple => (Update::ValidNew, TimeoutAttr::UdpSingle),
            Self::First => (Update::ValidNew, TimeoutAttr::UdpFirst),
        }
    }

    /// The state's name for dumps.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Bidir => "BIDIR",
            Self::First => "FIRST",
            Self::Multiple => "MULTIPLE",
        }
    }
}
