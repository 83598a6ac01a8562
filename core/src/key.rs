//! Connection keys: the endpoints, protocol and zone that identify a connection.
//!
//! A key is written from the point of view of the packet that carries it: `src` sent it, `dst`
//! receives it. A connection stores the key of its first (originator) packet; a packet of the
//! reply direction carries the *reverse* key (source and destination swapped). For ICMP the
//! "port" of both endpoints is the echo id and each endpoint carries an ICMP type: the request
//! type on `src`, the matching reply type on `dst` (as OVS does), so a reply packet's key is
//! exactly the reverse of its request's key.
//!
//! The hash is direction-symmetric: a key and its reverse hash alike, so one index entry per
//! connection serves lookups from both directions.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IANA protocol numbers the engine treats specially.
pub mod proto {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP (ports keyed, tracked like UDP).
    pub const SCTP: u8 = 132;
    /// UDP-Lite (ports keyed, tracked like UDP).
    pub const UDPLITE: u8 = 136;
}

/// The network-layer family of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    /// IPv4: addresses use the first 4 bytes, the rest are zero.
    V4 = 4,
    /// IPv6.
    V6 = 6,
}

/// One side of a connection: address, and port (or ICMP echo id with type and code).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(C)]
pub struct Endpoint {
    /// Address bytes in network order; IPv4 uses the first four.
    pub addr: [u8; 16],
    /// TCP/UDP/SCTP/UDP-Lite port or ICMP echo id, host order. Zero for other protocols.
    pub port: u16,
    /// ICMP type (request type on the originator side). Zero for other protocols.
    pub icmp_type: u8,
    /// ICMP code (always zero for the echo-like messages that create connections).
    pub icmp_code: u8,
}

const _: () = assert!(std::mem::size_of::<Endpoint>() == 20);

impl Endpoint {
    /// The address as a standard type.
    pub fn ip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(
                self.addr[0],
                self.addr[1],
                self.addr[2],
                self.addr[3],
            )),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(self.addr)),
        }
    }

    /// An endpoint from an address and a port.
    pub fn new(ip: IpAddr, port: u16) -> Self {
        let mut addr = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => addr[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => addr = v6.octets(),
        }
        Self {
            addr,
            port,
            icmp_type: 0,
            icmp_code: 0,
        }
    }

    fn hash_words(&self) -> (u64, u64, u64) {
        let a = u64::from_le_bytes(word(&self.addr, 0));
        let b = u64::from_le_bytes(word(&self.addr, 8));
        let c = u64::from(self.port)
            | (u64::from(self.icmp_type) << 16)
            | (u64::from(self.icmp_code) << 24);
        (a, b, c)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v4 = self.addr[4..].iter().all(|&b| b == 0);
        let ip = self.ip(if v4 { Family::V4 } else { Family::V6 });
        write!(f, "{ip}:{}", self.port)?;
        if self.icmp_type != 0 || self.icmp_code != 0 {
            write!(f, "(type {} code {})", self.icmp_type, self.icmp_code)?;
        }
        Ok(())
    }
}

fn word(bytes: &[u8; 16], at: usize) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    w
}

/// The identity of a connection as seen by one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct ConnKey {
    /// The sender of the packet.
    pub src: Endpoint,
    /// The receiver of the packet.
    pub dst: Endpoint,
    /// Conntrack zone.
    pub zone: u16,
    /// IP protocol number.
    pub proto: u8,
    /// IPv4 or IPv6.
    pub family: Family,
}

const _: () = assert!(std::mem::size_of::<ConnKey>() == 44);

impl ConnKey {
    /// The key of the opposite direction.
    #[must_use]
    pub fn reverse(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            ..*self
        }
    }

    /// Whether `other` is this key's reverse (same connection, other direction).
    pub fn is_reverse_of(&self, other: &Self) -> bool {
        self.src == other.dst
            && self.dst == other.src
            && self.proto == other.proto
            && self.family == other.family
            && self.zone == other.zone
    }

    /// A direction-symmetric hash keyed by `seed`: `k.hash(s) == k.reverse().hash(s)`.
    pub fn hash(&self, seed: u64) -> u64 {
        let (a0, a1, a2) = self.src.hash_words();
        let (b0, b1, b2) = self.dst.hash_words();
        let hs = mix(a0 ^ seed, a1 ^ K1) ^ mix(a2 ^ K2, seed);
        let hd = mix(b0 ^ seed, b1 ^ K1) ^ mix(b2 ^ K2, seed);
        // Addition commutes, so the two directions meet; the final mix spreads the sum.
        let meta =
            u64::from(self.zone) | (u64::from(self.proto) << 16) | ((self.family as u64) << 24);
        mix(hs.wrapping_add(hd) ^ meta, seed ^ K3)
    }

    /// The protocol class used for per-protocol counts and timeouts.
    pub fn proto_class(&self) -> ProtoClass {
        ProtoClass::of(self.proto)
    }
}

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xbf58_476d_1ce4_e5b9;
const K3: u64 = 0x94d0_49bb_1331_11eb;

/// Folded 64x64->128 multiply: a fast mixing step with good diffusion (the wyhash idea).
fn mix(a: u64, b: u64) -> u64 {
    let p = u128::from(a ^ K1).wrapping_mul(u128::from(b ^ K2));
    (p as u64) ^ ((p >> 64) as u64)
}

/// The protocols the engine counts separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtoClass {
    /// ICMP (IPv4).
    Icmp,
    /// ICMPv6.
    Icmpv6,
    /// Any other IP protocol, keyed on addresses only.
    Other,
    /// SCTP.
    Sctp,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// UDP-Lite.
    Udplite,
}

impl ProtoClass {
    /// Every class, in a fixed order (the index used by counters).
    pub const ALL: [Self; 7] = [
        Self::Tcp,
        Self::Udp,
        Self::Icmp,
        Self::Icmpv6,
        Self::Sctp,
        Self::Udplite,
        Self::Other,
    ];

    /// The class of an IP protocol number.
    pub fn of(proto: u8) -> Self {
        match proto {
            proto::TCP => Self::Tcp,
            proto::UDP => Self::Udp,
            proto::ICMP => Self::Icmp,
            proto::ICMPV6 => Self::Icmpv6,
            proto::SCTP => Self::Sctp,
            proto::UDPLITE => Self::Udplite,
            _ => Self::Other,
        }
    }

    /// Position in [`ProtoClass::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Tcp => 0,
            Self::Udp => 1,
            Self::Icmp => 2,
            Self::Icmpv6 => 3,
            Self::Sctp => 4,
            Self::Udplite => 5,
            Self::Other => 6,
        }
    }

    /// Lower-case name, as used in dumps and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
            Self::Icmpv6 => "icmpv6",
            Self::Sctp => "sctp",
            Self::Udplite => "udplite",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sp: u16, dp: u16) -> ConnKey {
        ConnKey {
            src: Endpoint::new("10.0.0.1".parse().unwrap(), sp),
            dst: Endpoint::new("10.0.0.2".parse().unwrap(), dp),
            zone: 3,
            proto: proto::UDP,
            family: Family::V4,
        }
    }

    #[test]
    fn hash_is_direction_symmetric_and_seeded() {
        let k = key(1000, 53);
        assert_eq!(k.hash(7), k.reverse().hash(7));
        assert_ne!(k.hash(7), k.hash(8));
        assert_ne!(k.hash(7), key(1001, 53).hash(7));
        assert!(k.reverse().is_reverse_of(&k));
        assert!(!k.is_reverse_of(&k));
    }
}
