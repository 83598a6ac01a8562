//! Hostile input, with proptest: arbitrary bytes, plausible-looking IP packets full of garbage,
//! and real frames (built with `common`) truncated, bit-flipped and with their length fields
//! rewritten. The tracker must never panic; every verdict carries `trk`; an invalid verdict is
//! exactly `inv|trk`; and whatever OVS's sanity checks reject for sure (a length claiming more
//! bytes than there are, an IHL below 5, a TCP data offset outside the segment, ...) is invalid.
//! Also: IPv6 extension chains up to 100 headers deep, and ICMP errors quoting ICMP errors.

mod common;

use std::sync::OnceLock;

use common::*;
use ctrack_core::{Config, CtState, Frame, InvalidReason, ProcessOptions, Tick, Tracker};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const A6: &str = "fd00::1";
const B6: &str = "fd00::2";
const ETH: usize = 14;

// === Helpers ===

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Never write regression files into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn new_tracker() -> Tracker {
    Tracker::new(Config {
        event_capacity: 64,
        ..Config::default()
    })
}

fn now() -> Tick {
    Tick::from_millis(1_000_000)
}

fn opts(verify_checksums: bool) -> ProcessOptions {
    ProcessOptions {
        verify_checksums,
        ..ProcessOptions::default()
    }
}

/// The shape every verdict has: `trk`; exactly one of `new`, `est`, `rel`, `inv`; `inv` alone;
/// `rpl` only with `est` or `rel`; never a NAT bit.
fn check_shape(s: CtState) -> Result<(), TestCaseError> {
    prop_assert!(s.contains(CtState::TRK), "no trk: {}", s);
    prop_assert!(
        !s.contains(CtState::SNAT) && !s.contains(CtState::DNAT),
        "NAT bit: {}",
        s
    );
    if s.contains(CtState::INV) {
        prop_assert_eq!(s, CtState::invalid());
        return Ok(());
    }
    let kinds = [CtState::NEW, CtState::EST, CtState::REL]
        .into_iter()
        .filter(|&k| s.contains(k))
        .count();
    prop_assert_eq!(kinds, 1, "not exactly one of new/est/rel: {}", s);
    if s.contains(CtState::RPL) {
        prop_assert!(!s.contains(CtState::NEW), "new with rpl: {}", s);
    }
    Ok(())
}

fn ip6_octets(a: &str) -> [u8; 16] {
    match ip(a) {
        std::net::IpAddr::V6(v6) => v6.octets(),
        std::net::IpAddr::V4(_) => unreachable!("an IPv6 address"),
    }
}

fn get16(f: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *f.get(at)?,
        *f.get(at + 1)?,
    ])))
}

/// Offset of the IP header (after at most two VLAN tags), if the frame is long enough.
fn l3_offset(frame: &[u8]) -> Option<usize> {
    let mut at = 12;
    for _ in 0..2 {
        if matches!(get16(frame, at)?, 0x8100 | 0x88a8) {
            at += 4;
        }
    }
    (frame.len() >= at + 2).then_some(at + 2)
}

/// Where the L4 header starts and ends, and its protocol, walking IPv6 extension headers; None
/// when the (possibly mutated) headers do not describe a packet inside the frame.
fn l4_span(frame: &[u8]) -> Option<(usize, usize, u8)> {
    let l3 = l3_offset(frame)?;
    match frame.get(l3)? >> 4 {
        4 => {
            let ihl = usize::from(frame[l3] & 0x0f) * 4;
            let total = get16(frame, l3 + 2)?;
            let end = l3 + total;
            (ihl >= 20 && total >= ihl && end <= frame.len()).then_some((
                l3 + ihl,
                end,
                *frame.get(l3 + 9)?,
            ))
        }
        6 => {
            let end = l3 + 40 + get16(frame, l3 + 4)?;
            if end > frame.len() {
                return None;
            }
            let mut next = *frame.get(l3 + 6)?;
            let mut at = l3 + 40;
            for _ in 0..200 {
                let len = match next {
                    0 | 43 | 60 => (usize::from(*frame.get(at + 1)?) + 1) * 8,
                    51 => (usize::from(*frame.get(at + 1)?) + 2) * 4,
                    _ => return (at <= end).then_some((at, end, next)),
                };
                next = *frame.get(at)?;
                at += len;
            }
            None
        }
        _ => None,
    }
}

/// Makes the IPv4 header checksum valid again (if there is an IPv4 header to fix).
fn fix_ip_checksum(frame: &mut [u8]) {
    let Some(l3) = l3_offset(frame) else { return };
    if frame.get(l3).is_none_or(|b| b >> 4 != 4) {
        return;
    }
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    if ihl < 12 || l3 + ihl > frame.len() {
        return;
    }
    frame[l3 + 10] = 0;
    frame[l3 + 11] = 0;
    let c = fold(ones_sum(&frame[l3..l3 + ihl]));
    set16(frame, l3 + 10, c);
}

/// Makes every checksum valid again where the headers still make sense.
fn fix_checksums(frame: &mut [u8]) {
    fix_ip_checksum(frame);
    let Some(l3) = l3_offset(frame) else { return };
    let Some((start, end, proto)) = l4_span(frame) else {
        return;
    };
    let len = (end - start) as u64;
    let pseudo = if frame[l3] >> 4 == 4 {
        if proto == 1 {
            0
        } else {
            ones_sum(&frame[l3 + 12..l3 + 20]) + u64::from(proto) + len
        }
    } else {
        ones_sum(&frame[l3 + 8..l3 + 40]) + u64::from(proto) + len
    };
    let at = match proto {
        6 => 16,
        17 => 6,
        1 | 58 => 2,
        _ => return,
    };
    if end < start + at + 2 {
        return;
    }
    frame[start + at] = 0;
    frame[start + at + 1] = 0;
    let mut c = fold(pseudo + ones_sum(&frame[start..end]));
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    set16(frame, start + at, c);
}

// IPv6 extension headers: (type, body after the next-header and length bytes).
fn options_header(ty: u8, units: usize) -> (u8, Vec<u8>) {
    // Pad1 options throughout: 8 * units bytes in all.
    (ty, vec![0; units * 8 - 2])
}
fn auth_header(words: usize) -> (u8, Vec<u8>) {
    // 4 * words bytes in all (at least 8), SPI 0x100.
    let mut body = vec![0, 0, 0, 0, 1, 0];
    body.resize(words * 4 - 2, 0xaa);
    (51, body)
}
fn fragment_header(offlg: u16) -> (u8, Vec<u8>) {
    let mut body = offlg.to_be_bytes().to_vec();
    body.extend([0, 0, 0, 1]);
    (44, body)
}

fn ext_header() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![
        (1usize..=4).prop_map(|u| options_header(0, u)),
        (1usize..=4).prop_map(|u| options_header(43, u)),
        (1usize..=4).prop_map(|u| options_header(60, u)),
        (2usize..=6).prop_map(auth_header),
    ]
}

/// Real frames to mutate, and the tracker they were first sent to (so that mutated frames
/// can meet existing connections: established TCP, related ICMP errors, ...).
struct Seeds {
    frames: Vec<Vec<u8>>,
    tracker: Tracker,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut syn = tcp(A, 40000, B, 80, SYN, 1000, 0);
        if let L4::Tcp { options, .. } = &mut syn.l4 {
            *options = vec![2, 4, 0x05, 0xb4, 1, 3, 3, 7];
        }
        let syn_ack = tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001);
        let data = tcp_data(A, 40000, B, 80, PSH | ACK, 1001, 5001, 40);
        let out = udp(A, 1000, B, 53);
        let back = udp(B, 53, A, 1000);
        let mut with_options = udp(A, 1001, B, 53);
        with_options.ipv4_options = vec![0x94, 0x04, 0, 0];
        let error = icmp_error(B, A, 3, 4, &syn);
        let ping = icmp(A, B, 8, 0, 7, 1);
        let mut tagged = tcp_data(A, 40000, B, 80, PSH | ACK, 1041, 5001, 30);
        tagged.vlans = vec![(0x8100, 5)];
        let chain = vec![
            options_header(0, 1),
            options_header(43, 2),
            options_header(60, 1),
            auth_header(4),
        ];
        let mut syn6 = tcp(A6, 41000, B6, 443, SYN, 1, 0);
        syn6.ipv6_ext = chain.clone();
        let mut out6 = udp(A6, 1000, B6, 53);
        out6.ipv6_ext = chain;
        let mut quoted6 = udp(A6, 1001, B6, 53);
        quoted6.ipv6_ext = vec![options_header(0, 1)];
        let error6 = icmp_error(B6, A6, 1, 4, &quoted6);
        let ping6 = icmp(A6, B6, 128, 0, 9, 1);
        let mut qinq6 = udp(A6, 2000, B6, 53);
        qinq6.vlans = vec![(0x88a8, 1), (0x8100, 2)];
        let error_in_error = icmp_error(A, B, 11, 0, &error);

        let tracker = new_tracker();
        let o = opts(true);
        let primers = [
            &syn, &syn_ack, &data, &out, &back, &quoted6, &out6, &syn6, &ping, &ping6,
        ];
        for p in primers {
            let s = tracker.process(Frame::Ethernet(&p.frame()), 0, &o, now());
            assert!(!s.contains(CtState::INV), "seed primer {p:?} is {s}");
        }
        let frames: Vec<Vec<u8>> = [
            &syn,
            &syn_ack,
            &data,
            &out,
            &with_options,
            &error,
            &ping,
            &tagged,
            &syn6,
            &out6,
            &error6,
            &ping6,
            &qinq6,
            &error_in_error,
        ]
        .into_iter()
        .map(Pkt::frame)
        .collect();
        Seeds { frames, tracker }
    })
}

fn seed_index() -> impl Strategy<Value = usize> {
    0..seeds().frames.len()
}

/// A length field of a seed, and what OVS's sanity checks make of a value written to it.
#[derive(Clone, Copy, Debug)]
enum Field {
    /// IPv4 IHL (low nibble), with the packet's total length.
    Ihl { at: usize, total: usize },
    /// IPv4 total length, with the bytes after the IP header start and the header length.
    Total { at: usize, avail: usize, ihl: usize },
    /// IPv6 payload length, with the bytes after the IP header start.
    Payload { at: usize, avail: usize },
    /// TCP data offset (high nibble), with the segment length.
    DataOffset { at: usize, segment: usize },
    /// UDP length, with the datagram length.
    UdpLength { at: usize, datagram: usize },
    /// Any other length byte (IPv6 extension header, quoted header): anything goes.
    Byte { at: usize },
    /// Any other 16-bit length (quoted packet): anything goes.
    Word { at: usize },
}

impl Field {
    /// Writes `v` (cut to the field's width) and says whether the result must be invalid.
    fn write(self, frame: &mut [u8], v: u16) -> bool {
        match self {
            Self::Ihl { at, total } => {
                let n = (v & 0x0f) as u8;
                frame[at] = (frame[at] & 0xf0) | n;
                n < 5 || usize::from(n) * 4 > total
            }
            Self::Total { at, avail, ihl } => {
                set16(frame, at, v);
                usize::from(v) > avail || usize::from(v) < ihl
            }
            Self::Payload { at, avail } => {
                set16(frame, at, v);
                usize::from(v) + 40 > avail
            }
            Self::DataOffset { at, segment } => {
                let n = (v & 0x0f) as u8;
                frame[at] = (frame[at] & 0x0f) | (n << 4);
                n < 5 || usize::from(n) * 4 > segment
            }
            Self::UdpLength { at, datagram } => {
                set16(frame, at, v);
                v < 8 || usize::from(v) > datagram
            }
            Self::Byte { at } => {
                frame[at] = v as u8;
                false
            }
            Self::Word { at } => {
                set16(frame, at, v);
                false
            }
        }
    }
}

/// The length fields of a well-formed frame.
fn length_fields(frame: &[u8]) -> Vec<Field> {
    let l3 = l3_offset(frame).expect("seed");
    let avail = frame.len() - l3;
    let mut fields = Vec::new();
    let v6 = frame[l3] >> 4 == 6;
    if v6 {
        fields.push(Field::Payload { at: l3 + 4, avail });
        let mut next = frame[l3 + 6];
        let mut at = l3 + 40;
        while matches!(next, 0 | 43 | 51 | 60) {
            fields.push(Field::Byte { at: at + 1 });
            let len = if next == 51 {
                (usize::from(frame[at + 1]) + 2) * 4
            } else {
                (usize::from(frame[at + 1]) + 1) * 8
            };
            next = frame[at];
            at += len;
        }
    } else {
        let ihl = usize::from(frame[l3] & 0x0f) * 4;
        let total = get16(frame, l3 + 2).expect("seed");
        fields.push(Field::Ihl { at: l3, total });
        fields.push(Field::Total {
            at: l3 + 2,
            avail,
            ihl,
        });
    }
    let (l4, end, proto) = l4_span(frame).expect("seed");
    match proto {
        6 => fields.push(Field::DataOffset {
            at: l4 + 12,
            segment: end - l4,
        }),
        17 => fields.push(Field::UdpLength {
            at: l4 + 4,
            datagram: end - l4,
        }),
        1 | 58 if matches!(frame[l4], 3 | 4 | 5 | 11 | 12 | 1 | 2) => {
            // The quoted packet's own length fields.
            let inner = l4 + 8;
            if v6 {
                fields.push(Field::Word { at: inner + 4 });
                fields.push(Field::Byte { at: inner + 41 });
            } else {
                fields.push(Field::Byte { at: inner });
                fields.push(Field::Word { at: inner + 2 });
            }
        }
        _ => {}
    }
    fields
}

// === (a) Arbitrary bytes ===

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn arbitrary_bytes_as_ethernet(
        data in vec(any::<u8>(), 0..2000),
        verify in any::<bool>(),
        zone in 0u16..3,
    ) {
        static TRACKER: OnceLock<Tracker> = OnceLock::new();
        let t = TRACKER.get_or_init(new_tracker);
        check_shape(t.process(Frame::Ethernet(&data), zone, &opts(verify), now()))?;
    }

    #[test]
    fn arbitrary_bytes_as_cooked_capture(
        data in vec(any::<u8>(), 0..2000),
        ethertype in prop_oneof![
            Just(0x0800u16),
            Just(0x86dd),
            Just(0x8100),
            Just(0x88a8),
            any::<u16>(),
        ],
        verify in any::<bool>(),
    ) {
        static TRACKER: OnceLock<Tracker> = OnceLock::new();
        let t = TRACKER.get_or_init(new_tracker);
        let frame = Frame::L3 { ethertype, data: &data };
        check_shape(t.process(frame, 0, &opts(verify), now()))?;
    }

    /// An Ethernet header with an IP ethertype (maybe behind tags) and garbage after it.
    #[test]
    fn arbitrary_bytes_behind_an_ip_ethertype(
        tags in vec(select(vec![0x8100u16, 0x88a8]), 0..3),
        ethertype in select(vec![0x0800u16, 0x86dd]),
        version in select(vec![0x40u8, 0x45, 0x46, 0x4f, 0x60, 0x00]),
        rest in vec(any::<u8>(), 0..200),
        verify in any::<bool>(),
    ) {
        static TRACKER: OnceLock<Tracker> = OnceLock::new();
        let t = TRACKER.get_or_init(new_tracker);
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        for tag in &tags {
            f.extend(tag.to_be_bytes());
            f.extend([0x00, 0x05]);
        }
        f.extend(ethertype.to_be_bytes());
        f.push(version);
        f.extend(&rest);
        check_shape(t.process(Frame::Ethernet(&f), 0, &opts(verify), now()))?;
    }

    /// A well-formed IPv4 header (right lengths and checksum) over garbage of any protocol,
    /// so that the L4 parsers, including the quoted packets of ICMP errors, see random bytes.
    #[test]
    fn garbage_behind_a_valid_ipv4_header(
        proto in prop_oneof![
            select(vec![1u8, 6, 17, 58, 132, 136, 47]),
            any::<u8>(),
        ],
        options in vec(any::<u8>(), 0..=10).prop_map(|mut o| {
            o.truncate(o.len() / 4 * 4);
            o
        }),
        l4 in vec(any::<u8>(), 0..300),
        icmp_type in select(vec![3u8, 4, 5, 11, 12, 8, 0, 13]),
        verify in any::<bool>(),
    ) {
        static TRACKER: OnceLock<Tracker> = OnceLock::new();
        let t = TRACKER.get_or_init(new_tracker);
        let mut l4 = l4;
        if proto == 1 {
            if let Some(b) = l4.first_mut() {
                *b = icmp_type;
            }
            // Often enough, a quoted IPv4 header from the outer destination, so that the
            // quoted L4 header (garbage) is parsed and looked up.
            if l4.len() >= 8 + 20 && l4[1] & 1 == 0 {
                l4[8] = 0x45;
                l4[8 + 6] &= 0x80;
                l4[8 + 12..8 + 16].copy_from_slice(&[10, 0, 0, 1]);
            }
        }
        let mut p = Pkt::new(A, B, L4::Raw { proto, bytes: l4 });
        p.ipv4_options = options;
        let mut f = p.frame();
        if verify {
            fix_checksums(&mut f);
        }
        check_shape(t.process(Frame::Ethernet(&f), 0, &opts(verify), now()))?;
    }

    /// The same over IPv6, with garbage extension headers too.
    #[test]
    fn garbage_behind_a_valid_ipv6_header(
        next in prop_oneof![
            select(vec![0u8, 6, 17, 43, 44, 51, 58, 59, 60, 132, 136]),
            any::<u8>(),
        ],
        payload in vec(any::<u8>(), 0..400),
        icmp_type in select(vec![1u8, 2, 3, 4, 128, 129, 135]),
        verify in any::<bool>(),
    ) {
        static TRACKER: OnceLock<Tracker> = OnceLock::new();
        let t = TRACKER.get_or_init(new_tracker);
        let mut payload = payload;
        if next == 58 {
            if let Some(b) = payload.first_mut() {
                *b = icmp_type;
            }
            // Often enough, a quoted IPv6 header from the outer destination.
            if payload.len() >= 8 + 40 && payload[1] & 1 == 0 {
                payload[8] = 0x60;
                payload[8 + 8..8 + 24].copy_from_slice(&ip6_octets(A6));
            }
        }
        let mut f = Pkt::new(A6, B6, L4::Raw { proto: next, bytes: payload }).frame();
        if verify {
            fix_checksums(&mut f);
        }
        check_shape(t.process(Frame::Ethernet(&f), 0, &opts(verify), now()))?;
    }
}

// === (b) Mutations of real frames ===

#[test]
fn every_truncation_of_a_real_frame_is_invalid() {
    // Without padding, a frame cut anywhere loses bytes its IP length fields promise (or its
    // Ethernet/IP header): always `inv|trk`, counted as malformed L2/L3, and never a connection.
    let s = seeds();
    let t = new_tracker();
    let o = opts(true);
    let mut cuts = 0;
    for frame in &s.frames {
        let l3 = l3_offset(frame).expect("seed");
        let ethertype = get16(frame, l3 - 2).expect("seed") as u16;
        for len in 0..frame.len() {
            let cut = &frame[..len];
            let state = t.process(Frame::Ethernet(cut), 0, &o, now());
            assert_eq!(state, CtState::invalid(), "{frame:02x?} cut to {len}");
            cuts += 1;
            if len >= l3 {
                let cooked = Frame::L3 {
                    ethertype,
                    data: &cut[l3..],
                };
                let state = t.process(cooked, 0, &o, now());
                assert_eq!(
                    state,
                    CtState::invalid(),
                    "{frame:02x?} cooked, cut to {len}"
                );
                cuts += 1;
            }
        }
    }
    let stats = t.stats();
    assert_eq!(stats.invalid_count(InvalidReason::L3Malformed), cuts);
    assert_eq!(stats.invalid_total(), cuts);
    assert_eq!(stats.created, 0);
    // The whole frames parse (some are invalid for other reasons on a fresh tracker: a SYN|ACK
    // opens nothing, an ICMP error quotes nothing tracked).
    for frame in &s.frames {
        t.process(Frame::Ethernet(frame), 0, &o, now());
    }
    let after = t.stats();
    assert_eq!(after.invalid_count(InvalidReason::L3Malformed), cuts);
    assert_eq!(after.invalid_count(InvalidReason::L4Malformed), 0);
}

#[test]
fn frames_shorter_than_their_ip_header_are_invalid() {
    let t = new_tracker();
    for p in [udp(A, 1000, B, 53), udp(A6, 1000, B6, 53)] {
        let frame = p.frame();
        let header = if p.src.is_ipv4() { 20 } else { 40 };
        for len in 0..ETH + header {
            let state = t.process(Frame::Ethernet(&frame[..len]), 0, &opts(false), now());
            assert_eq!(state.to_string(), "inv|trk", "cut to {len}");
        }
    }
}

proptest! {
    #![proptest_config(config(8000))]

    #[test]
    fn random_byte_flips_of_real_frames(
        seed in seed_index(),
        flips in vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
        fix in 0u8..3,
        verify in any::<bool>(),
    ) {
        let s = seeds();
        let mut f = s.frames[seed].clone();
        for (at, mask) in &flips {
            let i = at.index(f.len());
            f[i] ^= mask;
        }
        match fix {
            1 => fix_ip_checksum(&mut f),
            2 => fix_checksums(&mut f),
            _ => {}
        }
        check_shape(s.tracker.process(Frame::Ethernet(&f), 0, &opts(verify), now()))?;
        if let Some(l3) = l3_offset(&f) {
            let ethertype = get16(&f, l3 - 2).unwrap_or(0) as u16;
            let cooked = Frame::L3 { ethertype, data: &f[l3..] };
            check_shape(s.tracker.process(cooked, 0, &opts(verify), now()))?;
        }
    }

    #[test]
    fn random_length_field_edits_of_real_frames(
        seed in seed_index(),
        pick in any::<prop::sample::Index>(),
        value in prop_oneof![0u16..80, any::<u16>()],
        fix_all in any::<bool>(),
        verify in any::<bool>(),
    ) {
        let s = seeds();
        let mut f = s.frames[seed].clone();
        let fields = length_fields(&f);
        let field = fields[pick.index(fields.len())];
        let must_be_invalid = field.write(&mut f, value);
        if fix_all {
            fix_checksums(&mut f);
        } else {
            fix_ip_checksum(&mut f);
        }
        let state = s.tracker.process(Frame::Ethernet(&f), 0, &opts(verify), now());
        check_shape(state)?;
        if must_be_invalid {
            prop_assert_eq!(state, CtState::invalid(), "{:?} = {}", field, value);
        }
    }

    #[test]
    fn random_truncation_and_padding_of_real_frames(
        seed in seed_index(),
        cut in any::<prop::sample::Index>(),
        pad in vec(any::<u8>(), 0..40),
    ) {
        // Cut, then padded with garbage.
        let s = seeds();
        let full = &s.frames[seed];
        let len = cut.index(full.len());
        let mut f = full[..len].to_vec();
        f.extend(&pad);
        let state = s.tracker.process(Frame::Ethernet(&f), 0, &opts(true), now());
        check_shape(state)?;
        // Once the IP length fields are intact, the padding cannot make up for the cut.
        let l3 = l3_offset(full).expect("seed");
        if len >= l3 + 6 && f.len() < full.len() {
            prop_assert_eq!(state, CtState::invalid());
        }
    }
}

// === (c) Deep extension chains, nested ICMP errors ===

#[test]
fn a_hundred_extension_headers_are_walked() {
    let t = new_tracker();
    let o = opts(true);
    let mut out = udp(A6, 1000, B6, 53);
    out.ipv6_ext = (0..100)
        .map(|i| match i % 4 {
            0 => options_header(0, 1),
            1 => options_header(43, 1),
            2 => options_header(60, 2),
            _ => auth_header(3),
        })
        .collect();
    let frame = out.frame();
    assert!(frame.len() > 1000);
    let state = t.process(Frame::Ethernet(&frame), 0, &o, now());
    assert_eq!(state.to_string(), "new|trk");
    let back = udp(B6, 53, A6, 1000).frame();
    let state = t.process(Frame::Ethernet(&back), 0, &o, now());
    assert_eq!(state.to_string(), "est|rpl|trk");
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn deep_extension_chains(
        chain in vec(ext_header(), 1..=100),
        sport in 1u16..,
        use_tcp in any::<bool>(),
        fragment_at in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let t = new_tracker();
        let o = opts(true);
        let (mut out, back) = if use_tcp {
            (
                tcp(A6, sport, B6, 443, SYN, 1, 0),
                tcp(B6, 443, A6, sport, SYN | ACK, 100, 2),
            )
        } else {
            (udp(A6, sport, B6, 53), udp(B6, 53, A6, sport))
        };
        out.ipv6_ext = chain.clone();
        let frame = out.frame();
        let state = t.process(Frame::Ethernet(&frame), 0, &o, now());
        prop_assert_eq!(state.to_string(), "new|trk");
        let state = t.process(Frame::Ethernet(&back.frame()), 0, &o, now());
        prop_assert_eq!(state.to_string(), "est|rpl|trk");

        // A fragment header anywhere in the chain.
        let mut fragmented = out.clone();
        let mut with_fragment = chain.clone();
        with_fragment.insert(fragment_at.index(chain.len() + 1), fragment_header(0x0001));
        fragmented.ipv6_ext = with_fragment;
        let before = t.stats().invalid_count(InvalidReason::Fragment);
        let state = t.process(Frame::Ethernet(&fragmented.frame()), 0, &o, now());
        prop_assert_eq!(state, CtState::invalid());
        prop_assert_eq!(t.stats().invalid_count(InvalidReason::Fragment), before + 1);

        // The payload length cut inside the chain: the frame holds all of it, the packet not.
        let ext_len: usize = chain.iter().map(|(_, body)| body.len() + 2).sum();
        let mut f = frame.clone();
        set16(&mut f, ETH + 4, cut.index(ext_len) as u16);
        let state = t.process(Frame::Ethernet(&f), 0, &o, now());
        prop_assert_eq!(state, CtState::invalid());
    }

    #[test]
    fn icmp_errors_quoting_icmp_errors(
        depth in 2usize..=8,
        v6 in any::<bool>(),
        types in vec(any::<prop::sample::Index>(), 8),
        commit in any::<bool>(),
    ) {
        let t = new_tracker();
        let mut o = opts(true);
        o.commit = commit;
        let (a, b, errors): (&str, &str, &[(u8, u8)]) = if v6 {
            (A6, B6, &[(1, 4), (2, 0), (3, 0), (4, 0)])
        } else {
            (A, B, &[(3, 3), (4, 0), (5, 1), (11, 0), (12, 0)])
        };
        let flow = udp(a, 1000, b, 53);
        let state = t.process(Frame::Ethernet(&flow.frame()), 0, &o, now());
        prop_assert_eq!(state.to_string(), "new|trk");
        // Level k is sent by the destination of level k-1 back to its source, so the quoted
        // source always is the outer destination.
        let mut quoted = flow;
        for (level, pick) in types.iter().enumerate().take(depth) {
            let (ty, code) = errors[pick.index(errors.len())];
            let (src, dst) = if level % 2 == 0 { (b, a) } else { (a, b) };
            let err = icmp_error(src, dst, ty, code, &quoted);
            let before = t.stats();
            let state = t.process(Frame::Ethernet(&err.frame()), 0, &o, now());
            let after = t.stats();
            if level == 0 {
                let want = if commit { "rel|rpl|trk" } else { "inv|trk" };
                prop_assert_eq!(state.to_string(), want);
            } else {
                prop_assert_eq!(state, CtState::invalid(), "level {}", level);
                prop_assert_eq!(
                    after.invalid_count(InvalidReason::IcmpErrorQuote),
                    before.invalid_count(InvalidReason::IcmpErrorQuote) + 1
                );
            }
            quoted = err;
        }
        prop_assert_eq!(t.connection_count(), u64::from(commit));
    }
}
