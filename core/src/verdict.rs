//! What the engine says about a packet: the OVS `ct_state` bits, and why a packet was invalid.

use std::fmt;

/// The OVS `ct_state` bit set of one packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtState(u8);

impl CtState {
    /// No bit set.
    pub const EMPTY: Self = Self(0);
    /// First packet(s) of a connection, or a packet no connection was created for.
    pub const NEW: Self = Self(0x01);
    /// Part of a connection seen in both directions (or picked up mid-stream).
    pub const EST: Self = Self(0x02);
    /// Related to a tracked connection (an ICMP error quoting it).
    pub const REL: Self = Self(0x04);
    /// Sent by the responder of the connection.
    pub const RPL: Self = Self(0x08);
    /// Invalid: could not be parsed or does not fit the connection's state.
    pub const INV: Self = Self(0x10);
    /// Went through the tracker (set on every processed packet).
    pub const TRK: Self = Self(0x20);
    /// Source NAT applied (never set by ctrack, which observes and never rewrites).
    pub const SNAT: Self = Self(0x40);
    /// Destination NAT applied (never set by ctrack).
    pub const DNAT: Self = Self(0x80);

    const NAMES: [(Self, &'static str); 8] = [
        (Self::NEW, "new"),
        (Self::EST, "est"),
        (Self::REL, "rel"),
        (Self::RPL, "rpl"),
        (Self::INV, "inv"),
        (Self::TRK, "trk"),
        (Self::SNAT, "snat"),
        (Self::DNAT, "dnat"),
    ];

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// A state from raw bits.
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits)
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The invalid verdict: `inv|trk`, every other bit cleared.
    pub const fn invalid() -> Self {
        Self(Self::INV.0 | Self::TRK.0)
    }
}

impl std::ops::BitOr for CtState {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for CtState {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// Formats like OVS `format_flags(..., '|')`: names in bit order joined by `|`, `0` if none.
impl fmt::Display for CtState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        let mut first = true;
        for (bit, name) in Self::NAMES {
            if self.contains(bit) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CtState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CtState({self})")
    }
}

/// Why a packet was marked invalid. Each reason has its own counter in [`crate::Stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum InvalidReason {
    /// A TCP SYN|ACK, an ICMP reply or another packet that may not open a connection, with no
    /// connection to belong to.
    #[error("packet cannot create a connection")]
    CannotCreate,
    /// An IPv4 fragment other than the first, or any IPv6 packet with a fragment header.
    #[error("IP fragment")]
    Fragment,
    /// An ICMP error whose quoted packet matches no live connection.
    #[error("ICMP error quotes no tracked connection")]
    IcmpErrorNoMatch,
    /// An ICMP error whose quoted packet is unusable, or whose quoted source is not the outer
    /// destination.
    #[error("ICMP error quotes a malformed or foreign packet")]
    IcmpErrorQuote,
    /// An ICMP or ICMPv6 type or code the tracker does not accept.
    #[error("unsupported ICMP type or code")]
    IcmpType,
    /// Bad IPv4 header checksum.
    #[error("bad IPv4 header checksum")]
    L3Checksum,
    /// Truncated or malformed link-layer, IPv4 or IPv6 header (including extension headers).
    #[error("truncated or malformed L2/L3 header")]
    L3Malformed,
    /// Bad TCP, UDP, ICMP or ICMPv6 checksum (only when checksums are verified).
    #[error("bad L4 checksum")]
    L4Checksum,
    /// Truncated or malformed TCP, UDP, SCTP, UDP-Lite, ICMP or ICMPv6 header.
    #[error("truncated or malformed L4 header")]
    L4Malformed,
    /// Neither IPv4 nor IPv6.
    #[error("not an IP packet")]
    NotIp,
    /// TCP or UDP port zero.
    #[error("port 0")]
    PortZero,
    /// An invalid combination of TCP flags.
    #[error("invalid TCP flags")]
    TcpFlags,
    /// A TCP segment outside the tracked sequence window.
    #[error("TCP sequence window check failed")]
    TcpWindow,
}

impl InvalidReason {
    /// Every reason, in counter order.
    pub const ALL: [Self; 13] = [
        Self::CannotCreate,
        Self::Fragment,
        Self::IcmpErrorNoMatch,
        Self::IcmpErrorQuote,
        Self::IcmpType,
        Self::L3Checksum,
        Self::L3Malformed,
        Self::L4Checksum,
        Self::L4Malformed,
        Self::NotIp,
        Self::PortZero,
        Self::TcpFlags,
        Self::TcpWindow,
    ];

    /// Position in [`InvalidReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name for metrics and the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::CannotCreate => "cannot_create",
            Self::Fragment => "fragment",
            Self::IcmpErrorNoMatch => "icmp_error_no_match",
            Self::IcmpErrorQuote => "icmp_error_quote",
            Self::IcmpType => "icmp_type",
            Self::L3Checksum => "l3_checksum",
            Self::L3Malformed => "l3_malformed",
            Self::L4Checksum => "l4_checksum",
            Self::L4Malformed => "l4_malformed",
            Self::NotIp => "not_ip",
            Self::PortZero => "port_zero",
            Self::TcpFlags => "tcp_flags",
            Self::TcpWindow => "tcp_window",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_ovs() {
        assert_eq!(CtState::EMPTY.to_string(), "0");
        assert_eq!(
            (CtState::EST | CtState::RPL | CtState::TRK).to_string(),
            "est|rpl|trk"
        );
        assert_eq!(CtState::invalid().to_string(), "inv|trk");
        assert_eq!(
            CtState::from_bits(0xff).to_string(),
            "new|est|rel|rpl|inv|trk|snat|dnat"
        );
    }

    #[test]
    fn reason_indexes_match_all() {
        for (i, r) in InvalidReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
