//! Selecting connections for dumps and flushes: zone, protocol, partial tuples, TCP state.

use std::net::IpAddr;

use crate::entry::{ConnEntry, ProtoInfo};
use crate::key::{ConnKey, Endpoint, Family};
use crate::l4::TcpState;

/// An address prefix such as `10.0.0.0/8` or `fd00::/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// A prefix length longer than the address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("prefix length {len} is longer than the {bits}-bit address")]
pub struct PrefixTooLong {
    /// The length given.
    pub len: u8,
    /// The address width.
    pub bits: u8,
}

impl Prefix {
    /// A prefix; `len` must not exceed the address width.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixTooLong> {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if len > bits {
            return Err(PrefixTooLong { len, bits });
        }
        Ok(Self { addr, len })
    }

    /// A single address.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// The network address as given.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is the empty prefix (`/0`), which matches every address of its family.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `ep` (an address of `family`) is inside the prefix.
    pub fn contains(&self, family: Family, ep: &Endpoint) -> bool {
        let (mine, width): ([u8; 16], usize) = match (self.addr, family) {
            (IpAddr::V4(a), Family::V4) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (b, 4)
            }
            (IpAddr::V6(a), Family::V6) => (a.octets(), 16),
            _ => return false,
        };
        let len = usize::from(self.len);
        let full = len / 8;
        if mine[..full] != ep.addr[..full] {
            return false;
        }
        let rest = len % 8;
        if rest == 0 || full >= width {
            return true;
        }
        let mask = 0xffu8 << (8 - rest);
        mine[full] & mask == ep.addr[full] & mask
    }
}

/// Fields of one direction's tuple; unset fields match anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TupleFilter {
    /// Source address or prefix.
    pub src: Option<Prefix>,
    /// Destination address or prefix.
    pub dst: Option<Prefix>,
    /// Source port (ICMP: echo id).
    pub sport: Option<u16>,
    /// Destination port (ICMP: echo id).
    pub dport: Option<u16>,
    /// ICMP type of this direction.
    pub icmp_type: Option<u8>,
    /// ICMP code of this direction.
    pub icmp_code: Option<u8>,
}

impl TupleFilter {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn matches(&self, key: &ConnKey) -> bool {
        self.src.is_none_or(|p| p.contains(key.family, &key.src))
            && self.dst.is_none_or(|p| p.contains(key.family, &key.dst))
            && self.sport.is_none_or(|p| p == key.src.port)
            && self.dport.is_none_or(|p| p == key.dst.port)
            && self.icmp_type.is_none_or(|t| t == key.src.icmp_type)
            && self.icmp_code.is_none_or(|c| c == key.src.icmp_code)
    }
}

/// Which connections a dump or flush selects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this zone.
    pub zone: Option<u16>,
    /// Only this IP protocol number.
    pub proto: Option<u8>,
    /// Only this address family.
    pub family: Option<Family>,
    /// The originator direction's tuple.
    pub orig: TupleFilter,
    /// The responder direction's tuple.
    pub reply: TupleFilter,
    /// Only TCP connections with a peer in this state.
    pub tcp_state: Option<TcpState>,
}

impl Filter {
    /// Whether the key alone passes (everything but the TCP state).
    pub(crate) fn matches_key(&self, key: &ConnKey) -> bool {
        self.zone.is_none_or(|z| z == key.zone)
            && self.proto.is_none_or(|p| p == key.proto)
            && self.family.is_none_or(|f| f == key.family)
            && self.orig.matches(key)
            && (self.reply.is_empty() || self.reply.matches(&key.reverse()))
    }

    /// Whether the filter needs the protocol state (so a snapshot must be taken).
    pub(crate) fn needs_state(&self) -> bool {
        self.tcp_state.is_some()
    }

    /// Whether an entry passes.
    pub fn matches(&self, entry: &ConnEntry) -> bool {
        self.matches_key(&entry.key)
            && self.tcp_state.is_none_or(|s| match entry.proto {
                ProtoInfo::Tcp { orig, reply } => orig.state == s || reply.state == s,
                _ => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let ep = Endpoint::new("10.1.2.3".parse().unwrap(), 0);
        let p = |s: &str, l| Prefix::new(s.parse().unwrap(), l).unwrap();
        assert!(p("10.0.0.0", 8).contains(Family::V4, &ep));
        assert!(p("10.1.2.0", 23).contains(Family::V4, &ep));
        assert!(!p("10.1.4.0", 23).contains(Family::V4, &ep));
        assert!(p("0.0.0.0", 0).contains(Family::V4, &ep));
        assert!(!p("::", 0).contains(Family::V4, &ep));
        assert!(Prefix::new("::".parse().unwrap(), 129).is_err());
        let ep6 = Endpoint::new("fd00::1".parse().unwrap(), 0);
        assert!(p("fd00::", 64).contains(Family::V6, &ep6));
        assert!(Prefix::host("fd00::1".parse().unwrap()).contains(Family::V6, &ep6));
    }
}
