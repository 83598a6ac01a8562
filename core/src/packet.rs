//! Packet parsing: from frame bytes to a [`ConnKey`] and the L4 facts the state machines need.
//!
//! The rules follow OVS's `conn_key_extract` (and the `miniflow_extract` sanity checks it
//! relies on): Ethernet with up to two 802.1Q/802.1ad tags, IPv4 with options, IPv6 with its
//! extension headers walked, then TCP, UDP, ICMP, ICMPv6 (and, in ctrack, the ports of SCTP and
//! UDP-Lite). An ICMP error yields the key of the connection it quotes, reversed, and is marked
//! `related`. Every failure is an [`InvalidReason`]; no input can panic the parser, which only
//! reads through bounds-checked slice accessors.

use crate::key::{ConnKey, Endpoint, Family, proto};
use crate::verdict::InvalidReason;

/// A captured frame, as handed to the tracker.
#[derive(Clone, Copy, Debug)]
pub enum Frame<'a> {
    /// An Ethernet frame (destination MAC first).
    Ethernet(&'a [u8]),
    /// A network-layer packet whose ethertype is known from elsewhere (Linux cooked capture).
    /// VLAN ethertypes are accepted: the tag then starts `data`.
    L3 {
        /// The ethertype (0x0800, 0x86dd, 0x8100, ...).
        ethertype: u16,
        /// The bytes that follow the link-layer header.
        data: &'a [u8],
    },
}

/// TCP flag bits (low byte of the flags field, plus ECE/CWR).
pub(crate) mod tcp_flags {
    pub(crate) const FIN: u16 = 0x001;
    pub(crate) const SYN: u16 = 0x002;
    pub(crate) const RST: u16 = 0x004;
    pub(crate) const PSH: u16 = 0x008;
    pub(crate) const ACK: u16 = 0x010;
    pub(crate) const URG: u16 = 0x020;
}

/// Window-scale option as OVS encodes it: value in the low nibble, `0x80` if present.
pub(crate) const WSCALE_FLAG: u8 = 0x80;
/// Both peers' scale unknown: the connection was picked up without its SYNs.
pub(crate) const WSCALE_UNKNOWN: u8 = 0x40;
/// Mask of the scale value.
pub(crate) const WSCALE_MASK: u8 = 0x0f;
const TCP_MAX_WSCALE: u8 = 14;

/// The TCP facts the window tracker needs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TcpSegment {
    pub(crate) flags: u16,
    pub(crate) seq: u32,
    pub(crate) ack: u32,
    pub(crate) window: u16,
    pub(crate) payload_len: u32,
    /// The window-scale option in OVS's encoding (0 if absent); parsed only on SYNs.
    pub(crate) wscale: u8,
}

/// A packet reduced to what tracking needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Parsed {
    /// The packet's key (for a related ICMP error: the quoted connection's key, reversed).
    pub(crate) key: ConnKey,
    /// An ICMP/ICMPv6 error quoting another connection.
    pub(crate) related: bool,
    /// TCP details when `key.proto` is TCP and the packet is not related.
    pub(crate) tcp: TcpSegment,
    /// Length of the IP packet (header included, link padding excluded), for byte counters.
    pub(crate) l3_len: u32,
    /// The first byte of the L4 header (0 if none): the ICMP type, also for the ICMP protocol
    /// numbers seen in the other family, which OVS judges by number alone.
    pub(crate) l4_type: u8,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Smallest ethertype; smaller values are 802.3 length fields.
const ETHERTYPE_MIN: u16 = 0x0600;
const MAX_VLAN_TAGS: usize = 2;

const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;
const IPV6_DSTOPTS: u8 = 60;

/// ICMP error messages quoted in the reverse key (OVS `ICMP_ERROR_DATA_L4_LEN`).
const ICMP_ERROR_DATA_L4_LEN: usize = 8;

/// Parses `frame` into a key in `zone`. `verify_l4` checks TCP/UDP/ICMP/ICMPv6 checksums;
/// the IPv4 header checksum is always checked.
pub(crate) fn parse(frame: Frame<'_>, zone: u16, verify_l4: bool) -> Result<Parsed, InvalidReason> {
    let (ethertype, l3) = match frame {
        Frame::Ethernet(data) => {
            let ethertype = be16(data, 12).ok_or(InvalidReason::L3Malformed)?;
            (ethertype, data.get(14..).ok_or(InvalidReason::L3Malformed)?)
        }
        Frame::L3 { ethertype, data } => (ethertype, data),
    };
    let (ethertype, l3) = strip_vlan_tags(ethertype, l3)?;
    let (ethertype, l3) = strip_llc_snap(ethertype, l3)?;
    match ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(l3, zone, verify_l4),
        ETHERTYPE_IPV6 => parse_ipv6(l3, zone, verify_l4),
        _ => Err(InvalidReason::NotIp),
    }
}

fn strip_vlan_tags(mut ethertype: u16, mut data: &[u8]) -> Result<(u16, &[u8]), InvalidReason> {
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        ethertype = be16(data, 2).ok_or(InvalidReason::L3Malformed)?;
        data = data.get(4..).ok_or(InvalidReason::L3Malformed)?;
    }
    Ok((ethertype, data))
}

/// An 802.3 length field (below 0x600) followed by an LLC/SNAP header with the Ethernet
/// organisation code carries the real ethertype in the SNAP header (OVS `parse_ethertype`).
fn strip_llc_snap(ethertype: u16, data: &[u8]) -> Result<(u16, &[u8]), InvalidReason> {
    if ethertype >= ETHERTYPE_MIN {
        return Ok((ethertype, data));
    }
    match data {
        [0xaa, 0xaa, 0x03, 0, 0, 0, hi, lo, rest @ ..] => {
            let inner = u16::from_be_bytes([*hi, *lo]);
            if inner >= ETHERTYPE_MIN {
                Ok((inner, rest))
            } else {
                Err(InvalidReason::NotIp)
            }
        }
        _ => Err(InvalidReason::NotIp),
    }
}

fn parse_ipv4(d: &[u8], zone: u16, verify_l4: bool) -> Result<Parsed, InvalidReason> {
    let first = *d.first().ok_or(InvalidReason::L3Malformed)?;
    let ihl = usize::from(first & 0x0f) * 4;
    if d.len() < 20 || ihl < 20 || d.len() < ihl {
        return Err(InvalidReason::L3Malformed);
    }
    let total = usize::from(be16(d, 2).ok_or(InvalidReason::L3Malformed)?);
    if total > d.len() || ihl > total {
        return Err(InvalidReason::L3Malformed);
    }
    let frag = be16(d, 6).ok_or(InvalidReason::L3Malformed)?;
    if frag & 0x1fff != 0 {
        return Err(InvalidReason::Fragment);
    }
    if finish(sum(0, &d[..ihl])) != 0 {
        return Err(InvalidReason::L3Checksum);
    }
    let nw_proto = d[9];
    let src = addr4(&d[12..16]);
    let dst = addr4(&d[16..20]);
    let l4 = &d[ihl..total];
    let ip = IpHeader {
        family: Family::V4,
        src,
        dst,
        proto: nw_proto,
    };
    let mut parsed = parse_l4(&ip, l4, zone, verify_l4)?;
    parsed.l3_len = total as u32;
    Ok(parsed)
}

fn parse_ipv6(d: &[u8], zone: u16, verify_l4: bool) -> Result<Parsed, InvalidReason> {
    if d.len() < 40 {
        return Err(InvalidReason::L3Malformed);
    }
    let payload = usize::from(be16(d, 4).ok_or(InvalidReason::L3Malformed)?);
    let end = 40 + payload;
    if end > d.len() {
        return Err(InvalidReason::L3Malformed);
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&d[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&d[24..40]);
    let (nw_proto, l4) = walk_ipv6_extensions(d[6], &d[40..end])?;
    let ip = IpHeader {
        family: Family::V6,
        src,
        dst,
        proto: nw_proto,
    };
    let mut parsed = parse_l4(&ip, l4, zone, verify_l4)?;
    parsed.l3_len = end as u32;
    Ok(parsed)
}

/// Skips hop-by-hop, routing, destination-options and AH headers. A fragment header makes the
/// packet invalid; any other next-header value ends the chain.
fn walk_ipv6_extensions(mut next: u8, mut data: &[u8]) -> Result<(u8, &[u8]), InvalidReason> {
    loop {
        let len = match next {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
                (usize::from(*data.get(1).ok_or(InvalidReason::L3Malformed)?) + 1) * 8
            }
            IPV6_AH => (usize::from(*data.get(1).ok_or(InvalidReason::L3Malformed)?) + 2) * 4,
            IPV6_FRAGMENT => return Err(InvalidReason::Fragment),
            _ => return Ok((next, data)),
        };
        // Every extension header is at least 8 bytes long.
        if data.len() < 8 || data.len() < len {
            return Err(InvalidReason::L3Malformed);
        }
        next = data[0];
        data = &data[len..];
    }
}

struct IpHeader {
    family: Family,
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
}

impl IpHeader {
    fn key(&self, zone: u16) -> ConnKey {
        ConnKey {
            src: Endpoint {
                addr: self.src,
                ..Endpoint::default()
            },
            dst: Endpoint {
                addr: self.dst,
                ..Endpoint::default()
            },
            zone,
            proto: self.proto,
            family: self.family,
        }
    }

    /// Ones'-complement sum of the pseudo-header for an upper-layer length `len`.
    fn pseudo_sum(&self, len: usize) -> u64 {
        match self.family {
            Family::V4 => {
                let s = sum(0, &self.src[..4]);
                let s = sum(s, &self.dst[..4]);
                s + u64::from(self.proto) + len as u64
            }
            Family::V6 => {
                let s = sum(0, &self.src);
                let s = sum(s, &self.dst);
                s + u64::from(self.proto) + (len as u64 & 0xffff) + (len as u64 >> 16)
            }
        }
    }

    fn l4_checksum_ok(&self, l4: &[u8]) -> bool {
        finish(sum(self.pseudo_sum(l4.len()), l4)) == 0
    }
}

fn parse_l4(ip: &IpHeader, l4: &[u8], zone: u16, verify: bool) -> Result<Parsed, InvalidReason> {
    let mut key = ip.key(zone);
    let l4_type = l4.first().copied().unwrap_or(0);
    let mut parsed = Parsed {
        key,
        related: false,
        tcp: TcpSegment::default(),
        l3_len: 0,
        l4_type,
    };
    match (ip.proto, ip.family) {
        (proto::TCP, _) => {
            if l4.len() < 20 {
                return Err(InvalidReason::L4Malformed);
            }
            let doff = usize::from(l4[12] >> 4) * 4;
            if doff < 20 || doff > l4.len() {
                return Err(InvalidReason::L4Malformed);
            }
            if verify && !ip.l4_checksum_ok(l4) {
                return Err(InvalidReason::L4Checksum);
            }
            set_ports(&mut key, l4)?;
            if key.src.port == 0 || key.dst.port == 0 {
                return Err(InvalidReason::PortZero);
            }
            let flags = u16::from_be_bytes([l4[12], l4[13]]) & 0x0fff;
            parsed.tcp = TcpSegment {
                flags,
                seq: be32(l4, 4).unwrap_or(0),
                ack: be32(l4, 8).unwrap_or(0),
                window: u16::from_be_bytes([l4[14], l4[15]]),
                payload_len: (l4.len() - doff) as u32,
                wscale: if flags & tcp_flags::SYN != 0 {
                    tcp_wscale(&l4[20..doff])
                } else {
                    0
                },
            };
        }
        (proto::UDP, _) => {
            if l4.len() < 8 {
                return Err(InvalidReason::L4Malformed);
            }
            let udp_len = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
            if udp_len < 8 || udp_len > l4.len() {
                return Err(InvalidReason::L4Malformed);
            }
            let zero_v4 = l4[6] == 0 && l4[7] == 0 && ip.family == Family::V4;
            if verify && !zero_v4 && !ip.l4_checksum_ok(l4) {
                return Err(InvalidReason::L4Checksum);
            }
            set_ports(&mut key, l4)?;
            if key.src.port == 0 || key.dst.port == 0 {
                return Err(InvalidReason::PortZero);
            }
        }
        (proto::SCTP, _) | (proto::UDPLITE, _) => {
            let header = if ip.proto == proto::SCTP { 12 } else { 8 };
            if l4.len() < header {
                return Err(InvalidReason::L4Malformed);
            }
            set_ports(&mut key, l4)?;
        }
        (proto::ICMP, Family::V4) => {
            if l4.len() < 8 {
                return Err(InvalidReason::L4Malformed);
            }
            if verify && finish(sum(0, l4)) != 0 {
                return Err(InvalidReason::L4Checksum);
            }
            match icmp4_kind(l4[0], l4[1]) {
                IcmpKind::Query { reply_type } => set_icmp(&mut key, l4, reply_type),
                IcmpKind::Error => {
                    key = quoted_ipv4_key(&key, &l4[8..])?;
                    parsed.related = true;
                }
                IcmpKind::Unsupported => return Err(InvalidReason::IcmpType),
            }
        }
        (proto::ICMPV6, Family::V6) => {
            if l4.len() < 4 {
                return Err(InvalidReason::L4Malformed);
            }
            if verify && !ip.l4_checksum_ok(l4) {
                return Err(InvalidReason::L4Checksum);
            }
            if l4.len() < 8 {
                return Err(InvalidReason::L4Malformed);
            }
            match icmp6_kind(l4[0], l4[1]) {
                IcmpKind::Query { reply_type } => set_icmp(&mut key, l4, reply_type),
                IcmpKind::Error => {
                    key = quoted_ipv6_key(&key, &l4[8..])?;
                    parsed.related = true;
                }
                IcmpKind::Unsupported => return Err(InvalidReason::IcmpType),
            }
        }
        // Any other protocol is keyed on addresses alone.
        _ => {}
    }
    parsed.key = key;
    Ok(parsed)
}

fn set_ports(key: &mut ConnKey, l4: &[u8]) -> Result<(), InvalidReason> {
    key.src.port = be16(l4, 0).ok_or(InvalidReason::L4Malformed)?;
    key.dst.port = be16(l4, 2).ok_or(InvalidReason::L4Malformed)?;
    Ok(())
}

fn set_icmp(key: &mut ConnKey, l4: &[u8], reply_type: u8) {
    let id = u16::from_be_bytes([l4[4], l4[5]]);
    key.src.port = id;
    key.dst.port = id;
    key.src.icmp_type = l4[0];
    key.dst.icmp_type = reply_type;
}

enum IcmpKind {
    Error,
    Query { reply_type: u8 },
    Unsupported,
}

fn icmp4_kind(icmp_type: u8, code: u8) -> IcmpKind {
    match icmp_type {
        // echo reply/request, timestamp request/reply, information request/reply
        0 | 8 | 13 | 14 | 15 | 16 if code == 0 => IcmpKind::Query {
            reply_type: reverse_icmp4_type(icmp_type),
        },
        // destination unreachable, source quench, redirect, time exceeded, parameter problem
        3 | 4 | 5 | 11 | 12 => IcmpKind::Error,
        _ => IcmpKind::Unsupported,
    }
}

fn icmp6_kind(icmp_type: u8, code: u8) -> IcmpKind {
    match icmp_type {
        128 | 129 if code == 0 => IcmpKind::Query {
            reply_type: icmp_type ^ 0x01,
        },
        // destination unreachable, packet too big, time exceeded, parameter problem
        1..=4 => IcmpKind::Error,
        _ => IcmpKind::Unsupported,
    }
}

/// The type an ICMP (`nw_proto` 1) or ICMPv6 (58) query's answer carries, and vice versa:
/// echo 8/0, timestamp 13/14, information 15/16, ICMPv6 echo 128/129. Other types map to
/// themselves. This is the type the other direction of an ICMP connection's key carries.
pub fn reverse_icmp_type(nw_proto: u8, t: u8) -> u8 {
    match (nw_proto, t) {
        (proto::ICMPV6, 128 | 129) => t ^ 1,
        (proto::ICMPV6, _) => t,
        _ => reverse_icmp4_type(t),
    }
}

fn reverse_icmp4_type(t: u8) -> u8 {
    match t {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        other => other,
    }
}

/// Whether an ICMP (`proto` 1) or ICMPv6 (`proto` 58) message of type `t` may open a
/// connection (a request). OVS decides by protocol number, whatever the IP version.
pub(crate) fn icmp_is_request(nw_proto: u8, t: u8) -> bool {
    match nw_proto {
        proto::ICMP => matches!(t, 8 | 13 | 15),
        _ => t == 128,
    }
}

/// The key of the IPv4 packet quoted in an ICMP error, reversed to the error's direction.
fn quoted_ipv4_key(outer: &ConnKey, inner: &[u8]) -> Result<ConnKey, InvalidReason> {
    const QUOTE: InvalidReason = InvalidReason::IcmpErrorQuote;
    let first = *inner.first().ok_or(QUOTE)?;
    let ihl = usize::from(first & 0x0f) * 4;
    if inner.len() < 20 || ihl < 20 || inner.len() < ihl {
        return Err(QUOTE);
    }
    // Any fragment (more-fragments bit or an offset) cannot be matched.
    if be16(inner, 6).ok_or(QUOTE)? & 0x3fff != 0 {
        return Err(QUOTE);
    }
    let ip = IpHeader {
        family: Family::V4,
        src: addr4(&inner[12..16]),
        dst: addr4(&inner[16..20]),
        proto: inner[9],
    };
    if ip.src != outer.dst.addr {
        return Err(QUOTE);
    }
    quoted_l4_key(&ip, &inner[ihl..], outer.zone)
}

/// The key of the IPv6 packet quoted in an ICMPv6 error, reversed to the error's direction.
fn quoted_ipv6_key(outer: &ConnKey, inner: &[u8]) -> Result<ConnKey, InvalidReason> {
    const QUOTE: InvalidReason = InvalidReason::IcmpErrorQuote;
    if inner.len() < 40 {
        return Err(QUOTE);
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&inner[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&inner[24..40]);
    if src != outer.dst.addr {
        return Err(QUOTE);
    }
    let (nw_proto, l4) = walk_ipv6_extensions(inner[6], &inner[40..]).map_err(|_| QUOTE)?;
    let ip = IpHeader {
        family: Family::V6,
        src,
        dst,
        proto: nw_proto,
    };
    quoted_l4_key(&ip, l4, outer.zone)
}

/// The quoted L4 header: only ports (or an echo id) are needed. IPv4 errors quote at least 8
/// bytes of it (OVS checks just those); for IPv6 OVS wants the whole fixed TCP header.
fn quoted_l4_key(ip: &IpHeader, l4: &[u8], zone: u16) -> Result<ConnKey, InvalidReason> {
    const QUOTE: InvalidReason = InvalidReason::IcmpErrorQuote;
    let mut key = ip.key(zone);
    let min_tcp = if ip.family == Family::V4 {
        ICMP_ERROR_DATA_L4_LEN
    } else {
        20
    };
    match (ip.proto, ip.family) {
        (proto::TCP, _) | (proto::UDP, _) => {
            let min = if ip.proto == proto::TCP {
                min_tcp
            } else {
                ICMP_ERROR_DATA_L4_LEN
            };
            if l4.len() < min {
                return Err(QUOTE);
            }
            set_ports(&mut key, l4).map_err(|_| QUOTE)?;
            if key.src.port == 0 || key.dst.port == 0 {
                return Err(QUOTE);
            }
        }
        (proto::ICMP, Family::V4) => {
            if l4.len() < ICMP_ERROR_DATA_L4_LEN {
                return Err(QUOTE);
            }
            match icmp4_kind(l4[0], l4[1]) {
                IcmpKind::Query { reply_type } => set_icmp(&mut key, l4, reply_type),
                // An error quoting an error, or an unknown type, matches nothing.
                IcmpKind::Error | IcmpKind::Unsupported => return Err(QUOTE),
            }
        }
        (proto::ICMPV6, Family::V6) => {
            if l4.len() < 8 {
                return Err(QUOTE);
            }
            match icmp6_kind(l4[0], l4[1]) {
                IcmpKind::Query { reply_type } => set_icmp(&mut key, l4, reply_type),
                IcmpKind::Error | IcmpKind::Unsupported => return Err(QUOTE),
            }
        }
        _ => {}
    }
    Ok(key.reverse())
}

/// The window-scale option of a SYN, in OVS's encoding (`tcp_get_wscale`).
fn tcp_wscale(mut opts: &[u8]) -> u8 {
    let mut wscale = 0;
    while opts.len() >= 3 {
        match opts[0] {
            0 => break,
            1 => opts = &opts[1..],
            kind => {
                if kind == 3 {
                    wscale = opts[2].min(TCP_MAX_WSCALE) | WSCALE_FLAG;
                }
                let len = usize::from(opts[1]).max(2);
                opts = opts.get(len..).unwrap_or(&[]);
            }
        }
    }
    wscale
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn be32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn addr4(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&b[..4]);
    a
}

/// Adds `data` to a ones'-complement accumulator, 32 bits at a time (RFC 1071).
fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut i = 0;
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        i = 2;
    }
    if let Some(&b) = rest.get(i) {
        acc += u64::from(b) << 8;
    }
    acc
}

/// Folds an accumulator to 16 bits and complements it: zero for a valid checksum.
fn finish(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wscale_option_parsing() {
        assert_eq!(tcp_wscale(&[]), 0);
        assert_eq!(tcp_wscale(&[1, 1, 3, 3, 7]), 0x87);
        assert_eq!(tcp_wscale(&[3, 3, 20, 0]), 0x80 | 14);
        assert_eq!(tcp_wscale(&[0, 3, 3, 7]), 0);
        // A zero option length is taken as 2 and cannot loop forever.
        assert_eq!(tcp_wscale(&[5, 0, 5, 0, 5, 0]), 0);
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 section 3 example words: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &data)), !0xddf2);
        assert_eq!(
            finish(sum(0, &data[..7])),
            finish(sum(0, &[0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0]))
        );
    }

    #[test]
    fn short_frames_are_malformed_not_panics() {
        for len in 0..60 {
            let frame = vec![0x45u8; len];
            let _ = parse(Frame::Ethernet(&frame), 0, true);
            let _ = parse(
                Frame::L3 {
                    ethertype: ETHERTYPE_IPV6,
                    data: &frame,
                },
                0,
                true,
            );
        }
    }
}
