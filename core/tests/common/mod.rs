//! Test support: builds real Ethernet frames (correct checksums unless asked otherwise) and
//! drives a tracker on a virtual clock.
#![allow(dead_code, unreachable_pub)]

use std::net::IpAddr;

use ctrack_core::{
    ConnEntry, ConnKey, CtState, Endpoint, Family, Filter, Frame, ProcessOptions, Tick, Tracker,
};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;

/// The transport part of a test packet.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        win: u16,
        options: Vec<u8>,
        payload: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
    },
    /// ICMP (v4) or ICMPv6, by the packet's family; `rest` is bytes 4..8 (id and sequence).
    Icmp {
        ty: u8,
        code: u8,
        rest: [u8; 4],
        payload: Vec<u8>,
    },
    /// Any protocol, bytes as given (no checksum computed).
    Raw { proto: u8, bytes: Vec<u8> },
}

/// A test packet; `frame()` renders it as an Ethernet frame.
#[derive(Clone, Debug)]
pub struct Pkt {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4,
    /// 802.1Q/802.1ad tags, outermost first: (TPID, VLAN id).
    pub vlans: Vec<(u16, u16)>,
    /// IPv4 options (padded to 4 bytes by the caller).
    pub ipv4_options: Vec<u8>,
    /// IPv6 extension headers: (header type, body after the 2-byte next/len prefix).
    pub ipv6_ext: Vec<(u8, Vec<u8>)>,
    /// IPv4 flags+fragment offset field.
    pub frag: u16,
    pub bad_l4_checksum: bool,
    pub bad_ip_checksum: bool,
    /// Bytes appended after the IP packet (Ethernet padding).
    pub trailer: Vec<u8>,
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

impl Pkt {
    pub fn new(src: &str, dst: &str, l4: L4) -> Self {
        Self {
            src: ip(src),
            dst: ip(dst),
            l4,
            vlans: Vec::new(),
            ipv4_options: Vec::new(),
            ipv6_ext: Vec::new(),
            frag: 0x4000,
            bad_l4_checksum: false,
            bad_ip_checksum: false,
            trailer: Vec::new(),
        }
    }

    pub fn proto(&self) -> u8 {
        match &self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => {
                if self.src.is_ipv4() {
                    1
                } else {
                    58
                }
            }
            L4::Raw { proto, .. } => *proto,
        }
    }

    fn l4_bytes(&self) -> Vec<u8> {
        match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                win,
                options,
                payload,
            } => {
                let hlen = 20 + options.len();
                assert!(hlen.is_multiple_of(4), "TCP options must be padded");
                let mut b = Vec::new();
                b.extend(sport.to_be_bytes());
                b.extend(dport.to_be_bytes());
                b.extend(seq.to_be_bytes());
                b.extend(ack.to_be_bytes());
                b.push(((hlen / 4) as u8) << 4);
                b.push(*flags);
                b.extend(win.to_be_bytes());
                b.extend([0, 0, 0, 0]);
                b.extend(options);
                b.extend(payload);
                b
            }
            L4::Udp {
                sport,
                dport,
                payload,
            } => {
                let mut b = Vec::new();
                b.extend(sport.to_be_bytes());
                b.extend(dport.to_be_bytes());
                b.extend(((8 + payload.len()) as u16).to_be_bytes());
                b.extend([0, 0]);
                b.extend(payload);
                b
            }
            L4::Icmp {
                ty,
                code,
                rest,
                payload,
            } => {
                let mut b = vec![*ty, *code, 0, 0];
                b.extend(rest);
                b.extend(payload);
                b
            }
            L4::Raw { bytes, .. } => bytes.clone(),
        }
    }

    /// The IP packet (no link layer).
    pub fn ip_packet(&self) -> Vec<u8> {
        let proto = self.proto();
        let mut l4 = self.l4_bytes();
        let csum_at = match (&self.l4, proto) {
            (L4::Tcp { .. }, _) => Some(16),
            (L4::Udp { .. }, _) => Some(6),
            (L4::Icmp { .. }, _) => Some(2),
            _ => None,
        };
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                if let Some(at) = csum_at {
                    let pseudo = if proto == 1 {
                        0
                    } else {
                        ones_sum(&s.octets())
                            + ones_sum(&d.octets())
                            + u64::from(proto)
                            + l4.len() as u64
                    };
                    let mut c = fold(pseudo + ones_sum(&l4));
                    if proto == 17 && c == 0 {
                        c = 0xffff;
                    }
                    if self.bad_l4_checksum {
                        c ^= 0x5a5a;
                    }
                    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
                }
                let ihl = 20 + self.ipv4_options.len();
                assert!(ihl.is_multiple_of(4), "IPv4 options must be padded");
                let total = ihl + l4.len();
                let mut h = vec![0x40 | (ihl / 4) as u8, 0];
                h.extend((total as u16).to_be_bytes());
                h.extend([0x12, 0x34]);
                h.extend(self.frag.to_be_bytes());
                h.extend([64, proto, 0, 0]);
                h.extend(s.octets());
                h.extend(d.octets());
                h.extend(&self.ipv4_options);
                let mut c = fold(ones_sum(&h));
                if self.bad_ip_checksum {
                    c ^= 0x0101;
                }
                h[10..12].copy_from_slice(&c.to_be_bytes());
                h.extend(l4);
                h
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                if let Some(at) = csum_at {
                    let len = l4.len() as u64;
                    let pseudo = ones_sum(&s.octets())
                        + ones_sum(&d.octets())
                        + (len >> 16)
                        + (len & 0xffff)
                        + u64::from(proto);
                    let mut c = fold(pseudo + ones_sum(&l4));
                    if proto == 17 && c == 0 {
                        c = 0xffff;
                    }
                    if self.bad_l4_checksum {
                        c ^= 0x5a5a;
                    }
                    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
                }
                let mut ext = Vec::new();
                for (i, (ty, body)) in self.ipv6_ext.iter().enumerate() {
                    let next = self.ipv6_ext.get(i + 1).map_or(proto, |(t, _)| *t);
                    let total = 2 + body.len();
                    let len_field = if *ty == 51 {
                        (total / 4 - 2) as u8
                    } else {
                        (total / 8).saturating_sub(1) as u8
                    };
                    ext.push(next);
                    ext.push(len_field);
                    ext.extend(body);
                }
                let first = self.ipv6_ext.first().map_or(proto, |(t, _)| *t);
                let plen = ext.len() + l4.len();
                let mut h = vec![0x60, 0, 0, 0];
                h.extend((plen as u16).to_be_bytes());
                h.extend([first, 64]);
                h.extend(s.octets());
                h.extend(d.octets());
                h.extend(ext);
                h.extend(l4);
                h
            }
            _ => panic!("mixed address families"),
        }
    }

    /// The Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        for (tpid, vid) in &self.vlans {
            f.extend(tpid.to_be_bytes());
            f.extend(vid.to_be_bytes());
        }
        f.extend(
            if self.src.is_ipv4() {
                0x0800u16
            } else {
                0x86ddu16
            }
            .to_be_bytes(),
        );
        f.extend(self.ip_packet());
        f.extend(&self.trailer);
        f
    }

    /// The key this packet carries (for ICMP queries, types as OVS keys them).
    pub fn key(&self, zone: u16) -> ConnKey {
        let family = if self.src.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let (mut s, mut d) = (Endpoint::new(self.src, 0), Endpoint::new(self.dst, 0));
        match &self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport, .. } => {
                s.port = *sport;
                d.port = *dport;
            }
            L4::Icmp { ty, rest, .. } => {
                let id = u16::from_be_bytes([rest[0], rest[1]]);
                s.port = id;
                d.port = id;
                s.icmp_type = *ty;
                d.icmp_type = match ty {
                    8 => 0,
                    0 => 8,
                    13 => 14,
                    14 => 13,
                    15 => 16,
                    16 => 15,
                    128 => 129,
                    129 => 128,
                    t => *t,
                };
            }
            L4::Raw { .. } => {}
        }
        ConnKey {
            src: s,
            dst: d,
            zone,
            proto: self.proto(),
            family,
        }
    }
}

pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8, seq: u32, ack: u32) -> Pkt {
    Pkt::new(
        src,
        dst,
        L4::Tcp {
            sport,
            dport,
            seq,
            ack,
            flags,
            win: 65535,
            options: Vec::new(),
            payload: Vec::new(),
        },
    )
}

#[allow(clippy::too_many_arguments)]
pub fn tcp_data(
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    len: usize,
) -> Pkt {
    Pkt::new(
        src,
        dst,
        L4::Tcp {
            sport,
            dport,
            seq,
            ack,
            flags,
            win: 65535,
            options: Vec::new(),
            payload: vec![0x61; len],
        },
    )
}

pub fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Pkt {
    Pkt::new(
        src,
        dst,
        L4::Udp {
            sport,
            dport,
            payload: b"hello".to_vec(),
        },
    )
}

pub fn icmp(src: &str, dst: &str, ty: u8, code: u8, id: u16, seq: u16) -> Pkt {
    let [a, b] = id.to_be_bytes();
    let [c, d] = seq.to_be_bytes();
    Pkt::new(
        src,
        dst,
        L4::Icmp {
            ty,
            code,
            rest: [a, b, c, d],
            payload: vec![0; 8],
        },
    )
}

/// An ICMP (v4) or ICMPv6 error from `src` to `dst` quoting `quoted`'s IP packet.
pub fn icmp_error(src: &str, dst: &str, ty: u8, code: u8, quoted: &Pkt) -> Pkt {
    let mut inner = quoted.ip_packet();
    inner.truncate(if quoted.src.is_ipv4() {
        28 + quoted.ipv4_options.len()
    } else {
        48 + 32
    });
    Pkt::new(
        src,
        dst,
        L4::Icmp {
            ty,
            code,
            rest: [0; 4],
            payload: inner,
        },
    )
}

/// Ones'-complement sum of 16-bit big-endian words (an odd last byte is padded with zero).
pub fn ones_sum(data: &[u8]) -> u64 {
    data.chunks(2)
        .map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

/// Folds a ones'-complement sum to 16 bits and complements it: the checksum to store.
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Writes a big-endian `u16` at `at`.
pub fn set16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// A tracker on a virtual clock (seconds).
pub struct Harness {
    pub tracker: Tracker,
    pub opts: ProcessOptions,
    pub zone: u16,
    pub now: Tick,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new(Tracker::default())
    }
}

impl Harness {
    pub fn new(tracker: Tracker) -> Self {
        Self {
            tracker,
            opts: ProcessOptions::default(),
            zone: 0,
            now: Tick::from_millis(1_000_000),
        }
    }

    /// Advances the clock by `secs` seconds.
    pub fn advance(&mut self, secs: u64) {
        self.now = Tick::from_millis(self.now.as_millis() + secs * 1000);
    }

    pub fn send(&self, p: &Pkt) -> CtState {
        let frame = p.frame();
        self.tracker
            .process(Frame::Ethernet(&frame), self.zone, &self.opts, self.now)
    }

    /// `send`, formatted like OVS (`new|trk`, ...).
    pub fn state(&self, p: &Pkt) -> String {
        self.send(p).to_string()
    }

    pub fn entry(&self, p: &Pkt) -> Option<ConnEntry> {
        self.tracker.lookup(&p.key(self.zone), self.now)
    }

    pub fn dump(&self) -> Vec<ConnEntry> {
        self.tracker.dump_all(&Filter::default(), self.now)
    }

    /// Seconds of life left for `p`'s connection.
    pub fn timeout_of(&self, p: &Pkt) -> Option<u64> {
        self.entry(p).map(|e| e.timeout_left(self.now).as_secs())
    }
}
