//! Packet parsing and validity, by hand: every [`InvalidReason`] with a packet that causes it,
//! and the encapsulations (VLAN tags, IPv4 options, IPv6 extension headers, Ethernet padding,
//! cooked capture) that must not change how a flow is tracked. Every invalid case checks the
//! exact `ct_state` and that the counter of its reason, and no other, moved by one.
//!
//! The reference is OVS v3.7.1 userspace conntrack (`conn_key_extract`, `extract_l3_*`,
//! `extract_l4_*`, `tcp_invalid_flags`, `*_valid_new`, and the `miniflow_extract` sanity checks
//! it relies on), as DESIGN.md's per-packet contract summarises it.

mod common;

use common::*;
use ctrack_core::{ConnKey, Endpoint, Family, Frame, InvalidReason, ProtoClass, proto};

const ETH: usize = 14;
const IP4: usize = 20;
const IP6: usize = 40;

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const C: &str = "10.0.0.3";
const ROUTER: &str = "10.0.0.254";
const A6: &str = "fd00::1";
const B6: &str = "fd00::2";
const C6: &str = "fd00::3";
const ROUTER6: &str = "fd00::fe";

// === Helpers ===

/// The state of one frame, formatted like OVS.
fn state_in(h: &Harness, frame: Frame<'_>) -> String {
    h.tracker.process(frame, h.zone, &h.opts, h.now).to_string()
}

/// Sends `frame` and checks that it is `inv|trk`, that the counter of `reason` moved by one
/// and no other invalid counter moved, and that no connection was created.
#[track_caller]
fn expect_invalid_in(h: &Harness, frame: Frame<'_>, reason: InvalidReason) {
    let before = h.tracker.stats();
    let state = state_in(h, frame);
    let after = h.tracker.stats();
    assert_eq!(
        state, "inv|trk",
        "{frame:02x?} should be invalid ({reason:?})"
    );
    for r in InvalidReason::ALL {
        let moved = after.invalid_count(r) - before.invalid_count(r);
        assert_eq!(
            moved,
            u64::from(r == reason),
            "counter {r:?} moved by {moved}; only {reason:?} should have moved"
        );
    }
    assert_eq!(
        after.created, before.created,
        "an invalid packet created a connection"
    );
}

#[track_caller]
fn expect_invalid_frame(h: &Harness, frame: &[u8], reason: InvalidReason) {
    expect_invalid_in(h, Frame::Ethernet(frame), reason);
}

#[track_caller]
fn expect_invalid(h: &Harness, p: &Pkt, reason: InvalidReason) {
    expect_invalid_frame(h, &p.frame(), reason);
}

/// Sends `frame` and checks its state; no invalid counter may move.
#[track_caller]
fn expect_in(h: &Harness, frame: Frame<'_>, want: &str) {
    let before = h.tracker.stats().invalid_total();
    assert_eq!(state_in(h, frame), want, "{frame:02x?}");
    assert_eq!(
        h.tracker.stats().invalid_total(),
        before,
        "an invalid counter moved"
    );
}

#[track_caller]
fn expect_frame(h: &Harness, frame: &[u8], want: &str) {
    expect_in(h, Frame::Ethernet(frame), want);
}

#[track_caller]
fn expect(h: &Harness, p: &Pkt, want: &str) {
    expect_frame(h, &p.frame(), want);
}

/// Offset of the IP header in an Ethernet frame (after any VLAN tags).
fn l3_offset(frame: &[u8]) -> usize {
    let mut at = 12;
    while matches!(
        u16::from_be_bytes([frame[at], frame[at + 1]]),
        0x8100 | 0x88a8
    ) {
        at += 4;
    }
    at + 2
}

/// Recomputes the IPv4 header checksum after an edit.
fn fix_ipv4_header_checksum(frame: &mut [u8], l3: usize) {
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    let end = (l3 + ihl.max(12)).min(frame.len());
    frame[l3 + 10] = 0;
    frame[l3 + 11] = 0;
    let c = fold(ones_sum(&frame[l3..end]));
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Recomputes the IPv4 header checksum and the TCP/UDP/ICMP/ICMPv6 checksum of a frame whose
/// L4 header directly follows the IP header, using the lengths the headers now claim.
fn fix_checksums(frame: &mut [u8]) {
    let l3 = l3_offset(frame);
    let (start, end, proto, pseudo) = if frame[l3] >> 4 == 4 {
        fix_ipv4_header_checksum(frame, l3);
        let ihl = usize::from(frame[l3] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]));
        let (start, end) = (l3 + ihl, (l3 + total).min(frame.len()));
        let proto = frame[l3 + 9];
        let len = end.saturating_sub(start) as u64;
        let pseudo = ones_sum(&frame[l3 + 12..l3 + 20]) + u64::from(proto) + len;
        (start, end, proto, if proto == 1 { 0 } else { pseudo })
    } else {
        let plen = usize::from(u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]));
        let (start, end) = (l3 + IP6, (l3 + IP6 + plen).min(frame.len()));
        let proto = frame[l3 + 6];
        let len = end.saturating_sub(start) as u64;
        let pseudo = ones_sum(&frame[l3 + 8..l3 + 40]) + u64::from(proto) + len;
        (start, end, proto, pseudo)
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
    frame[start + at..start + at + 2].copy_from_slice(&c.to_be_bytes());
}

/// `p`'s frame after `edit(frame, l3_offset)`, with the IPv4 header checksum made valid again
/// (and nothing else repaired).
fn ip_edited(p: &Pkt, edit: impl FnOnce(&mut Vec<u8>, usize)) -> Vec<u8> {
    let mut f = p.frame();
    let l3 = l3_offset(&f);
    edit(&mut f, l3);
    if f[l3] >> 4 == 4 {
        fix_ipv4_header_checksum(&mut f, l3);
    }
    f
}

/// `p`'s frame after `edit(frame, l3_offset)`, with every checksum made valid again, so that
/// the edit is the only thing wrong with it.
fn edited(p: &Pkt, edit: impl FnOnce(&mut Vec<u8>, usize)) -> Vec<u8> {
    let mut f = p.frame();
    let l3 = l3_offset(&f);
    edit(&mut f, l3);
    fix_checksums(&mut f);
    f
}

fn get16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

/// An ICMP (v4) or ICMPv6 error carrying exactly `quoted` as its payload.
fn icmp_error_quoting(src: &str, dst: &str, ty: u8, code: u8, quoted: Vec<u8>) -> Pkt {
    Pkt::new(
        src,
        dst,
        L4::Icmp {
            ty,
            code,
            rest: [0; 4],
            payload: quoted,
        },
    )
}

/// A packet of protocol `proto` with `bytes` as its L4 part (no checksum computed).
fn raw(src: &str, dst: &str, proto: u8, bytes: Vec<u8>) -> Pkt {
    Pkt::new(src, dst, L4::Raw { proto, bytes })
}

/// An SCTP packet: the 12-byte common header (ports, verification tag, checksum left zero;
/// the tracker does not verify SCTP's CRC32c).
fn sctp(src: &str, sport: u16, dst: &str, dport: u16) -> Pkt {
    let mut b = Vec::new();
    b.extend(sport.to_be_bytes());
    b.extend(dport.to_be_bytes());
    b.extend(0x1234_5678u32.to_be_bytes());
    b.extend([0; 4]);
    raw(src, dst, proto::SCTP, b)
}

/// A UDP-Lite packet: ports, checksum coverage, checksum (zero), and a few payload bytes.
fn udplite(src: &str, sport: u16, dst: &str, dport: u16) -> Pkt {
    let mut b = Vec::new();
    b.extend(sport.to_be_bytes());
    b.extend(dport.to_be_bytes());
    b.extend(8u16.to_be_bytes());
    b.extend([0, 0]);
    b.extend(b"lite");
    raw(src, dst, proto::UDPLITE, b)
}

/// A GRE packet (version 0, Ethernet bridging, with a key).
fn gre(src: &str, dst: &str, key: u32) -> Pkt {
    let mut b = vec![0x20, 0x00, 0x65, 0x58];
    b.extend(key.to_be_bytes());
    raw(src, dst, 47, b)
}

/// A key with ports, for protocols `Pkt::key` does not know the ports of.
fn port_key(src: &str, sport: u16, dst: &str, dport: u16, proto: u8, zone: u16) -> ConnKey {
    let family = if ip(src).is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    ConnKey {
        src: Endpoint::new(ip(src), sport),
        dst: Endpoint::new(ip(dst), dport),
        zone,
        proto,
        family,
    }
}

// IPv6 extension headers: (type, body after the next-header and length bytes).
fn hop_by_hop() -> (u8, Vec<u8>) {
    // One PadN option filling the 8 bytes.
    (0, vec![1, 4, 0, 0, 0, 0])
}
fn routing() -> (u8, Vec<u8>) {
    // Routing type 0, no segments left.
    (43, vec![0, 0, 0, 0, 0, 0])
}
fn destination_options() -> (u8, Vec<u8>) {
    (60, vec![1, 4, 0, 0, 0, 0])
}
fn auth_header() -> (u8, Vec<u8>) {
    // Reserved, SPI, sequence number, 4 bytes of ICV: 16 bytes, length field 2.
    let mut body = vec![0, 0];
    body.extend(0x100u32.to_be_bytes());
    body.extend(1u32.to_be_bytes());
    body.extend([0xaa; 4]);
    (51, body)
}
fn fragment_header(offlg: u16) -> (u8, Vec<u8>) {
    let mut body = offlg.to_be_bytes().to_vec();
    body.extend(0xcafe_f00du32.to_be_bytes());
    (44, body)
}

// === Link layer ===

#[test]
fn arp_and_other_ethertypes_are_not_ip() {
    let h = Harness::default();
    let mut arp = vec![0xff; 6];
    arp.extend([0x02, 0, 0, 0, 0, 0x01]);
    arp.extend(0x0806u16.to_be_bytes());
    arp.extend([0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend([0x02, 0, 0, 0, 0, 0x01, 10, 0, 0, 1]);
    arp.extend([0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    expect_invalid_frame(&h, &arp, InvalidReason::NotIp);

    // An IPv4 packet behind another ethertype (LLDP) is not looked at.
    let mut lldp = udp(A, 1000, B, 53).frame();
    set16(&mut lldp, 12, 0x88cc);
    expect_invalid_frame(&h, &lldp, InvalidReason::NotIp);

    // Cooked capture: the ethertype comes from outside the data.
    let frame = Frame::L3 {
        ethertype: 0x0806,
        data: &arp[ETH..],
    };
    expect_invalid_in(&h, frame, InvalidReason::NotIp);
    assert_eq!(
        h.tracker.stats().invalid_count(InvalidReason::NotIp),
        3,
        "each non-IP frame counts once"
    );
}

#[test]
fn truncated_ethernet_header_is_malformed() {
    let h = Harness::default();
    let full = udp(A, 1000, B, 53).frame();
    for len in [0, 1, 6, 12, 13] {
        expect_invalid_frame(&h, &full[..len], InvalidReason::L3Malformed);
    }
    // A complete Ethernet header with nothing after the IPv4 ethertype.
    expect_invalid_frame(&h, &full[..ETH], InvalidReason::L3Malformed);
}

#[test]
fn vlan_tagged_frames_are_tracked_like_untagged_ones() {
    let h = Harness::default();
    let mut out = udp(A, 1000, B, 53);
    out.vlans = vec![(0x8100, 10)];
    let back = udp(B, 53, A, 1000);
    expect(&h, &out, "new|trk");
    expect(&h, &back, "est|rpl|trk");
    let e = h
        .entry(&back)
        .expect("one connection for tagged and untagged packets");
    assert_eq!(
        e.key,
        udp(A, 1000, B, 53).key(0),
        "the tag is not part of the key"
    );
    assert_eq!(h.tracker.connection_count(), 1);

    // 802.1ad outer tag and 802.1Q inner tag.
    let mut syn = tcp(A, 40000, B, 80, SYN, 1000, 0);
    syn.vlans = vec![(0x88a8, 100), (0x8100, 10)];
    let syn_ack = tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001);
    let mut ack = tcp(A, 40000, B, 80, ACK, 1001, 5001);
    ack.vlans = syn.vlans.clone();
    expect(&h, &syn, "new|trk");
    expect(&h, &syn_ack, "est|rpl|trk");
    expect(&h, &ack, "est|trk");

    // 802.1Q over IPv6.
    let mut out6 = udp(A6, 1000, B6, 53);
    out6.vlans = vec![(0x8100, 4094)];
    expect(&h, &out6, "new|trk");
    expect(&h, &udp(B6, 53, A6, 1000), "est|rpl|trk");

    // Cooked capture of a tagged frame: the VLAN ethertype outside, the tag starts the data.
    let mut data = vec![0x00, 0x0a, 0x08, 0x00];
    data.extend(udp(A, 1000, B, 53).ip_packet());
    let frame = Frame::L3 {
        ethertype: 0x8100,
        data: &data,
    };
    expect_in(&h, frame, "est|trk");
    assert_eq!(h.tracker.connection_count(), 3);
}

#[test]
fn truncated_vlan_tag_is_malformed() {
    let h = Harness::default();
    let macs = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    let mut frame = macs.to_vec();
    frame.extend(0x8100u16.to_be_bytes());
    // The frame ends inside the tag control information.
    frame.push(0x00);
    expect_invalid_frame(&h, &frame, InvalidReason::L3Malformed);
    // The tag control information is there, the inner ethertype is not.
    frame.push(0x0a);
    expect_invalid_frame(&h, &frame, InvalidReason::L3Malformed);
    // A complete outer 802.1ad tag, then a truncated inner 802.1Q tag.
    let mut qinq = macs.to_vec();
    qinq.extend([0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00]);
    expect_invalid_frame(&h, &qinq, InvalidReason::L3Malformed);
    // Cooked capture with a VLAN ethertype and a 3-byte tag.
    let frame = Frame::L3 {
        ethertype: 0x8100,
        data: &[0x00, 0x0a, 0x08],
    };
    expect_invalid_in(&h, frame, InvalidReason::L3Malformed);
}

#[test]
fn a_third_vlan_tag_is_not_parsed() {
    // OVS parses at most two tags (FLOW_MAX_VLAN_HEADERS): after them the ethertype is still
    // a VLAN type, which is not IP.
    let h = Harness::default();
    let mut out = udp(A, 1000, B, 53);
    out.vlans = vec![(0x88a8, 100), (0x8100, 10), (0x8100, 20)];
    expect_invalid(&h, &out, InvalidReason::NotIp);
}

#[test]
fn llc_snap_encapsulated_ipv4_is_tracked() {
    // OVS `parse_ethertype` (lib/flow.c): a type/length field below 0x600 is an 802.3 length;
    // if an LLC header AA AA 03 with SNAP organisation 00 00 00 follows, the SNAP type is the
    // ethertype, and the IPv4 packet after the 8-byte LLC/SNAP header is tracked as usual.
    let h = Harness::default();
    let encapsulate = |p: &Pkt| {
        let ip = p.ip_packet();
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        f.extend(((8 + ip.len()) as u16).to_be_bytes());
        f.extend([0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00]);
        f.extend(ip);
        f
    };
    expect_frame(&h, &encapsulate(&udp(A, 1000, B, 53)), "new|trk");
    expect_frame(&h, &encapsulate(&udp(B, 53, A, 1000)), "est|rpl|trk");
}

#[test]
fn cooked_capture_frames_start_at_the_ip_header() {
    let h = Harness::default();
    let out = udp(A, 1000, B, 53).ip_packet();
    let frame = Frame::L3 {
        ethertype: 0x0800,
        data: &out,
    };
    expect_in(&h, frame, "new|trk");
    expect(&h, &udp(B, 53, A, 1000), "est|rpl|trk");
    let out6 = icmp(A6, B6, 128, 0, 9, 1).ip_packet();
    let frame = Frame::L3 {
        ethertype: 0x86dd,
        data: &out6,
    };
    expect_in(&h, frame, "new|trk");
    // Truncated cooked IPv4 and IPv6 headers.
    let frame = Frame::L3 {
        ethertype: 0x0800,
        data: &out[..IP4 - 1],
    };
    expect_invalid_in(&h, frame, InvalidReason::L3Malformed);
    let frame = Frame::L3 {
        ethertype: 0x86dd,
        data: &out6[..IP6 - 1],
    };
    expect_invalid_in(&h, frame, InvalidReason::L3Malformed);
}

#[test]
fn ethernet_padding_is_not_part_of_the_packet() {
    let h = Harness::default();
    // A 47-byte frame padded to the 60-byte minimum with zeros.
    let mut out = udp(A, 1000, B, 53);
    out.trailer = vec![0; 13];
    expect(&h, &out, "new|trk");
    // Garbage padding: checksums are verified over the IP length only.
    let mut back = udp(B, 53, A, 1000);
    back.trailer = vec![0xff; 13];
    expect(&h, &back, "est|rpl|trk");
    let e = h.entry(&out).unwrap();
    assert_eq!(
        e.counters.bytes,
        [33, 33],
        "byte counters count the IP packet only"
    );

    // ICMP: the checksum covers the whole message, so padding must be cut off first.
    let mut ping = icmp(A, B, 8, 0, 5, 1);
    ping.trailer = vec![0x5a; 10];
    expect(&h, &ping, "new|trk");
    let mut pong = icmp(B, A, 0, 0, 5, 1);
    pong.trailer = vec![0xa5; 10];
    expect(&h, &pong, "est|rpl|trk");

    // TCP: padding is not payload.
    let mut syn = tcp(A, 40000, B, 80, SYN, 1000, 0);
    syn.trailer = vec![0x77; 6];
    expect(&h, &syn, "new|trk");
    let mut syn_ack = tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001);
    syn_ack.trailer = vec![0x77; 6];
    expect(&h, &syn_ack, "est|rpl|trk");

    // IPv6: the payload length bounds the packet.
    let mut out6 = udp(A6, 1000, B6, 53);
    out6.trailer = vec![0xee; 4];
    expect(&h, &out6, "new|trk");
    assert_eq!(h.entry(&out6).unwrap().counters.bytes, [53, 0]);
}

// === IPv4 ===

#[test]
fn truncated_ipv4_header_is_malformed() {
    let h = Harness::default();
    let full = udp(A, 1000, B, 53).frame();
    for cut in [1, 10, IP4 - 1] {
        expect_invalid_frame(&h, &full[..ETH + cut], InvalidReason::L3Malformed);
    }
}

#[test]
fn ipv4_ihl_below_five_is_malformed() {
    let h = Harness::default();
    let p = udp(A, 1000, B, 53);
    for ihl in 0..5u8 {
        let f = ip_edited(&p, |f, l3| f[l3] = 0x40 | ihl);
        expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
    }
    // An IHL beyond the packet (60 bytes of header in a 33-byte packet).
    let f = ip_edited(&p, |f, l3| f[l3] = 0x4f);
    expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
}

#[test]
fn ipv4_total_length_must_fit_the_frame() {
    let h = Harness::default();
    let p = udp(A, 1000, B, 53);
    // One byte more than the frame holds.
    let f = ip_edited(&p, |f, l3| set16(f, l3 + 2, 34));
    expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
    let f = ip_edited(&p, |f, l3| set16(f, l3 + 2, 0xffff));
    expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
    // Shorter than the header itself.
    let f = ip_edited(&p, |f, l3| set16(f, l3 + 2, 19));
    expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
    // The total length, not the frame, bounds the L4 header: the UDP header is then padding.
    let f = ip_edited(&p, |f, l3| set16(f, l3 + 2, 20));
    expect_invalid_frame(&h, &f, InvalidReason::L4Malformed);
    assert_eq!(h.tracker.connection_count(), 0);
}

#[test]
fn ipv4_options_are_skipped() {
    let h = Harness::default();
    let mut out = udp(A, 1000, B, 53);
    out.ipv4_options = vec![1, 1, 1, 1];
    expect(&h, &out, "new|trk");
    expect(&h, &udp(B, 53, A, 1000), "est|rpl|trk");
    assert_eq!(h.entry(&out).unwrap().key, udp(A, 1000, B, 53).key(0));

    // Router alert, then the largest header (IHL 15: 40 bytes of options).
    let mut syn = tcp(A, 40000, B, 80, SYN, 1000, 0);
    syn.ipv4_options = vec![0x94, 0x04, 0x00, 0x00];
    expect(&h, &syn, "new|trk");
    let mut syn_ack = tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001);
    syn_ack.ipv4_options = vec![1; 40];
    expect(&h, &syn_ack, "est|rpl|trk");
    expect(&h, &tcp(A, 40000, B, 80, ACK, 1001, 5001), "est|trk");
    assert_eq!(h.tracker.connection_count(), 2);
}

#[test]
fn non_first_ipv4_fragments_are_invalid() {
    let h = Harness::default();
    // More fragments with an offset, the last fragment, the largest offset, and DF with an
    // offset: anything with a non-zero offset.
    for frag in [0x2001, 0x0001, 0x1fff, 0x3fff, 0x4001] {
        let mut p = udp(A, 1000, B, 53);
        p.frag = frag;
        expect_invalid(&h, &p, InvalidReason::Fragment);
        let mut s = tcp(A, 40000, B, 80, SYN, 1, 0);
        s.frag = frag;
        expect_invalid(&h, &s, InvalidReason::Fragment);
    }
    assert_eq!(h.tracker.connection_count(), 0);
}

#[test]
fn first_ipv4_fragment_is_tracked_normally() {
    // MF set, offset 0: the L4 header is there. Its checksum covers the whole datagram, which
    // the fragment does not hold, so L4 checksums are off here.
    let mut h = Harness::default();
    h.opts.verify_checksums = false;
    let mut first = udp(A, 1000, B, 53);
    first.frag = 0x2000;
    first.bad_l4_checksum = true;
    expect(&h, &first, "new|trk");
    expect(&h, &udp(B, 53, A, 1000), "est|rpl|trk");

    let mut syn = tcp(A, 40000, B, 80, SYN, 1000, 0);
    syn.frag = 0x2000;
    expect(&h, &syn, "new|trk");
    expect(
        &h,
        &tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001),
        "est|rpl|trk",
    );
    assert_eq!(h.tracker.connection_count(), 2);
}

#[test]
fn bad_ipv4_header_checksum_is_invalid_whatever_the_l4_setting() {
    let mut h = Harness::default();
    let mut p = udp(A, 1000, B, 53);
    p.bad_ip_checksum = true;
    expect_invalid(&h, &p, InvalidReason::L3Checksum);
    let mut s = tcp(A, 40000, B, 80, SYN, 1, 0);
    s.bad_ip_checksum = true;
    expect_invalid(&h, &s, InvalidReason::L3Checksum);
    // The option turns off L4 verification only.
    h.opts.verify_checksums = false;
    expect_invalid(&h, &p, InvalidReason::L3Checksum);
    // A header checksum of zero is not "no checksum" (unlike UDP's).
    let f = {
        let mut f = udp(A, 1000, B, 53).frame();
        set16(&mut f, ETH + 10, 0);
        f
    };
    expect_invalid_frame(&h, &f, InvalidReason::L3Checksum);
}

// === IPv6 ===

#[test]
fn truncated_ipv6_header_is_malformed() {
    let h = Harness::default();
    let full = udp(A6, 1000, B6, 53).frame();
    for cut in [0, 1, 20, IP6 - 1] {
        expect_invalid_frame(&h, &full[..ETH + cut], InvalidReason::L3Malformed);
    }
    // The payload length claims one byte more than the frame holds.
    let f = ip_edited(&udp(A6, 1000, B6, 53), |f, l3| {
        let plen = get16(f, l3 + 4);
        set16(f, l3 + 4, plen + 1);
    });
    expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let h = Harness::default();
    let chains = [
        vec![hop_by_hop()],
        vec![routing()],
        vec![destination_options()],
        vec![auth_header()],
        vec![
            hop_by_hop(),
            destination_options(),
            routing(),
            auth_header(),
            destination_options(),
        ],
    ];
    for (i, chain) in chains.iter().enumerate() {
        let sport = 1000 + i as u16;
        let mut out = udp(A6, sport, B6, 53);
        out.ipv6_ext = chain.clone();
        expect(&h, &out, "new|trk");
        expect(&h, &udp(B6, 53, A6, sport), "est|rpl|trk");
        let e = h.entry(&out).expect("tracked");
        assert_eq!(e.key, udp(A6, sport, B6, 53).key(0), "chain {i}");
    }
    // TCP and ICMPv6 behind extension headers.
    let mut syn = tcp(A6, 41000, B6, 443, SYN, 1, 0);
    syn.ipv6_ext = vec![hop_by_hop(), auth_header()];
    expect(&h, &syn, "new|trk");
    let mut syn_ack = tcp(B6, 443, A6, 41000, SYN | ACK, 100, 2);
    syn_ack.ipv6_ext = vec![destination_options()];
    expect(&h, &syn_ack, "est|rpl|trk");
    let mut ping = icmp(A6, B6, 128, 0, 3, 1);
    ping.ipv6_ext = vec![hop_by_hop()];
    expect(&h, &ping, "new|trk");
    expect(&h, &icmp(B6, A6, 129, 0, 3, 1), "est|rpl|trk");
    assert_eq!(h.tracker.connection_count(), 7);
}

#[test]
fn truncated_ipv6_extension_header_is_malformed() {
    let h = Harness::default();
    // A hop-by-hop header claiming 16 bytes when the payload ends after 8.
    let mut p = raw(A6, B6, 59, Vec::new());
    p.ipv6_ext = vec![hop_by_hop()];
    let mut f = p.frame();
    f[ETH + IP6 + 1] = 1;
    expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
    // Fewer than the 8 bytes every extension header has.
    let p = raw(A6, B6, 0, vec![17, 0, 1, 2]);
    expect_invalid(&h, &p, InvalidReason::L3Malformed);
    // An AH header claiming more than the packet holds.
    let mut p = udp(A6, 1000, B6, 53);
    p.ipv6_ext = vec![auth_header()];
    let mut f = p.frame();
    f[ETH + IP6 + 1] = 20;
    expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
    // The payload length cuts a routing header the frame holds in full (the rest is padding).
    let mut p = udp(A6, 1000, B6, 53);
    p.ipv6_ext = vec![routing()];
    let f = ip_edited(&p, |f, l3| set16(f, l3 + 4, 4));
    expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
    // The chain ends with nothing after the next-header byte of the last header.
    let mut p = raw(A6, B6, 59, Vec::new());
    p.ipv6_ext = vec![hop_by_hop(), destination_options()];
    let mut f = p.frame();
    f.truncate(ETH + IP6 + 8 + 1);
    set16(&mut f, ETH + 4, 9);
    expect_invalid_frame(&h, &f, InvalidReason::L3Malformed);
    assert_eq!(h.tracker.connection_count(), 0);
}

#[test]
fn ipv6_fragment_headers_are_invalid() {
    let h = Harness::default();
    // First fragment (offset 0, M set), a middle one and the last one.
    for offlg in [0x0001, 0x0009, 0x0008, 0xfff8] {
        let mut p = udp(A6, 1000, B6, 53);
        p.ipv6_ext = vec![fragment_header(offlg)];
        expect_invalid(&h, &p, InvalidReason::Fragment);
        // After another extension header too.
        let mut p = tcp(A6, 41000, B6, 443, SYN, 1, 0);
        p.ipv6_ext = vec![hop_by_hop(), fragment_header(offlg)];
        expect_invalid(&h, &p, InvalidReason::Fragment);
    }
    assert_eq!(h.tracker.connection_count(), 0);
}

#[test]
fn ipv6_atomic_fragment_header_is_invalid_as_designed() {
    // DESIGN.md: "any IPv6 fragment header" is invalid, including an atomic fragment (offset
    // 0, M clear). OVS's `parse_ipv6_ext_hdrs` would carry on past an atomic fragment header
    // and track the packet; ctrack's contract deliberately rejects it.
    let h = Harness::default();
    let mut p = udp(A6, 1000, B6, 53);
    p.ipv6_ext = vec![fragment_header(0)];
    expect_invalid(&h, &p, InvalidReason::Fragment);
}

// === Checksums ===

#[test]
fn bad_l4_checksums_are_invalid_only_when_verified() {
    let mut h = Harness::default();
    let packets = [
        tcp(A, 40000, B, 80, SYN, 1, 0),
        udp(A, 1000, B, 53),
        icmp(A, B, 8, 0, 1, 1),
        tcp(A6, 40000, B6, 80, SYN, 1, 0),
        udp(A6, 1000, B6, 53),
        icmp(A6, B6, 128, 0, 1, 1),
    ];
    let bad: Vec<Pkt> = packets
        .iter()
        .cloned()
        .map(|mut p| {
            p.bad_l4_checksum = true;
            p
        })
        .collect();
    for p in &bad {
        expect_invalid(&h, p, InvalidReason::L4Checksum);
    }
    // An ICMP error with a bad checksum is rejected before its quote is looked at.
    let out = udp(A, 1000, B, 53);
    expect(&h, &out, "new|trk");
    let mut err = icmp_error(B, A, 3, 3, &out);
    err.bad_l4_checksum = true;
    expect_invalid(&h, &err, InvalidReason::L4Checksum);
    let out6 = udp(A6, 1000, B6, 53);
    expect(&h, &out6, "new|trk");
    let mut err6 = icmp_error(B6, A6, 1, 4, &out6);
    err6.bad_l4_checksum = true;
    expect_invalid(&h, &err6, InvalidReason::L4Checksum);
    assert_eq!(
        h.tracker.stats().invalid_count(InvalidReason::L4Checksum),
        8
    );

    h.opts.verify_checksums = false;
    // Accepted now; the UDP flows, created above, see more originator packets: still new.
    for p in &bad {
        expect(&h, p, "new|trk");
    }
    expect(&h, &err, "rel|rpl|trk");
    expect(&h, &err6, "rel|rpl|trk");
}

#[test]
fn ipv4_udp_checksum_zero_means_no_checksum() {
    let mut h = Harness::default();
    let mut f = udp(A, 1000, B, 53).frame();
    set16(&mut f, ETH + IP4 + 6, 0);
    expect_frame(&h, &f, "new|trk");
    // IPv6 has no such exception: zero is checked like any other value, and fails.
    let mut f6 = udp(A6, 1000, B6, 53).frame();
    set16(&mut f6, ETH + IP6 + 6, 0);
    expect_invalid_frame(&h, &f6, InvalidReason::L4Checksum);
    h.opts.verify_checksums = false;
    expect_frame(&h, &f6, "new|trk");
}

// === TCP and UDP headers ===

#[test]
fn tcp_and_udp_port_zero_are_invalid() {
    let h = Harness::default();
    for (src, dst) in [(A, B), (A6, B6)] {
        expect_invalid(
            &h,
            &tcp(src, 0, dst, 80, SYN, 1, 0),
            InvalidReason::PortZero,
        );
        expect_invalid(
            &h,
            &tcp(src, 40000, dst, 0, SYN, 1, 0),
            InvalidReason::PortZero,
        );
        expect_invalid(&h, &udp(src, 0, dst, 53), InvalidReason::PortZero);
        expect_invalid(&h, &udp(src, 1000, dst, 0), InvalidReason::PortZero);
    }
    assert_eq!(h.tracker.connection_count(), 0);
}

#[test]
fn tcp_data_offset_must_fit_the_segment() {
    let h = Harness::default();
    let syn = tcp(A, 40000, B, 80, SYN, 1, 0);
    let l4 = |l3: usize| l3 + IP4;
    for words in [0u8, 1, 4] {
        let f = edited(&syn, |f, l3| f[l4(l3) + 12] = words << 4);
        expect_invalid_frame(&h, &f, InvalidReason::L4Malformed);
    }
    // Beyond the segment: 24 and 60 header bytes claimed, 20 present.
    for words in [6u8, 15] {
        let f = edited(&syn, |f, l3| f[l4(l3) + 12] = words << 4);
        expect_invalid_frame(&h, &f, InvalidReason::L4Malformed);
    }
    // A segment shorter than the fixed header.
    let f = ip_edited(&syn, |f, l3| set16(f, l3 + 2, (IP4 + 10) as u16));
    expect_invalid_frame(&h, &f, InvalidReason::L4Malformed);
    let mut short6 = syn.clone();
    short6.src = ip(A6);
    short6.dst = ip(B6);
    let f = ip_edited(&short6, |f, l3| set16(f, l3 + 4, 19));
    expect_invalid_frame(&h, &f, InvalidReason::L4Malformed);
    assert_eq!(h.tracker.connection_count(), 0);

    // Options within the segment are fine (MSS, NOP, NOP, SACK permitted... padded to 12).
    let mut with_options = syn.clone();
    if let L4::Tcp { options, .. } = &mut with_options.l4 {
        *options = vec![2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7];
    }
    expect(&h, &with_options, "new|trk");
}

#[test]
fn udp_length_field_must_fit() {
    let h = Harness::default();
    let p = udp(A, 1000, B, 53);
    let l4 = |l3: usize| l3 + IP4;
    // Smaller than the header, larger than the datagram by one, the largest.
    for len in [0u16, 7, 14, 0xffff] {
        let f = edited(&p, |f, l3| set16(f, l4(l3) + 4, len));
        expect_invalid_frame(&h, &f, InvalidReason::L4Malformed);
    }
    // A datagram shorter than the UDP header.
    let f = ip_edited(&p, |f, l3| set16(f, l3 + 2, (IP4 + 4) as u16));
    expect_invalid_frame(&h, &f, InvalidReason::L4Malformed);
    let f = ip_edited(&udp(A6, 1000, B6, 53), |f, l3| set16(f, l3 + 4, 7));
    expect_invalid_frame(&h, &f, InvalidReason::L4Malformed);
    assert_eq!(h.tracker.connection_count(), 0);

    // OVS only bounds the field: a length covering the header but not the whole payload is
    // accepted (the checksum still covers the IP payload).
    let f = edited(&p, |f, l3| set16(f, l4(l3) + 4, 8));
    expect_frame(&h, &f, "new|trk");
    let f = edited(&udp(A6, 1000, B6, 53), |f, l3| set16(f, l3 + IP6 + 4, 9));
    expect_frame(&h, &f, "new|trk");
}

#[test]
fn invalid_tcp_flag_combinations() {
    const ECE: u8 = 0x40;
    const CWR: u8 = 0x80;
    let h = Harness::default();
    let bad = [
        SYN | RST,
        SYN | FIN,
        SYN | RST | ACK,
        SYN | FIN | ACK,
        0,
        FIN,
        PSH,
        URG,
        FIN | PSH | URG,
        FIN | RST,
        PSH | RST,
        URG | RST,
        SYN | PSH,
        SYN | URG,
    ];
    for (i, flags) in bad.into_iter().enumerate() {
        let p = tcp(A, 2000 + i as u16, B, 80, flags, 1, 0);
        expect_invalid(&h, &p, InvalidReason::TcpFlags);
        let p6 = tcp(A6, 2000 + i as u16, B6, 80, flags, 1, 0);
        expect_invalid(&h, &p6, InvalidReason::TcpFlags);
    }
    assert_eq!(h.tracker.connection_count(), 0);

    // Valid combinations open connections (the non-SYN ones are picked up mid-stream).
    let good = [
        SYN,
        SYN | ECE | CWR,
        ACK,
        RST,
        RST | ACK,
        FIN | ACK,
        PSH | ACK,
        URG | ACK,
        FIN | PSH | URG | ACK,
    ];
    for (i, flags) in good.into_iter().enumerate() {
        let p = tcp(A, 3000 + i as u16, B, 80, flags, 1, 1);
        expect(&h, &p, "new|trk");
    }
    assert_eq!(h.tracker.connection_count(), good.len() as u64);
}

#[test]
fn tcp_flag_checks_apply_to_existing_connections_even_without_sequence_checks() {
    let h = Harness::default();
    expect(&h, &tcp(A, 40000, B, 80, SYN, 1000, 0), "new|trk");
    expect(
        &h,
        &tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001),
        "est|rpl|trk",
    );
    expect(&h, &tcp(A, 40000, B, 80, ACK, 1001, 5001), "est|trk");
    for seq_check in [true, false] {
        h.tracker.set_tcp_seq_check(seq_check);
        expect_invalid(
            &h,
            &tcp(A, 40000, B, 80, SYN | FIN, 1001, 5001),
            InvalidReason::TcpFlags,
        );
        expect_invalid(
            &h,
            &tcp(A, 40000, B, 80, PSH, 1001, 5001),
            InvalidReason::TcpFlags,
        );
        expect_invalid(
            &h,
            &tcp(B, 80, A, 40000, FIN, 5001, 1001),
            InvalidReason::TcpFlags,
        );
        expect_invalid(
            &h,
            &tcp(B, 80, A, 40000, URG | RST, 5001, 1001),
            InvalidReason::TcpFlags,
        );
    }
    // The connection is untouched.
    expect(&h, &tcp(A, 40000, B, 80, ACK, 1001, 5001), "est|trk");
}

#[test]
fn tcp_segment_outside_the_window_is_invalid() {
    let h = Harness::default();
    expect(&h, &tcp(A, 40000, B, 80, SYN, 1000, 0), "new|trk");
    expect(
        &h,
        &tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001),
        "est|rpl|trk",
    );
    expect(&h, &tcp(A, 40000, B, 80, ACK, 1001, 5001), "est|trk");
    // A million bytes ahead of anything the peer allowed.
    let far = tcp_data(A, 40000, B, 80, PSH | ACK, 1_001_001, 5001, 2);
    expect_invalid(&h, &far, InvalidReason::TcpWindow);
    assert_eq!(h.tracker.stats().seq_check_failed, 1);
    expect(
        &h,
        &tcp_data(A, 40000, B, 80, PSH | ACK, 1001, 5001, 2),
        "est|trk",
    );
}

#[test]
fn syn_ack_and_replies_cannot_create_connections() {
    let h = Harness::default();
    expect_invalid(
        &h,
        &tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001),
        InvalidReason::CannotCreate,
    );
    expect_invalid(
        &h,
        &tcp(B6, 80, A6, 40000, SYN | ACK, 5000, 1001),
        InvalidReason::CannotCreate,
    );
    // Echo, timestamp and information replies, and the ICMPv6 echo reply.
    for ty in [0, 14, 16] {
        expect_invalid(&h, &icmp(B, A, ty, 0, 7, 1), InvalidReason::CannotCreate);
    }
    expect_invalid(&h, &icmp(B6, A6, 129, 0, 7, 1), InvalidReason::CannotCreate);
    assert_eq!(h.tracker.connection_count(), 0);
    // A reply of another kind than the request's does not match it.
    expect(&h, &icmp(A, B, 8, 0, 7, 1), "new|trk");
    expect_invalid(&h, &icmp(B, A, 14, 0, 7, 1), InvalidReason::CannotCreate);
    expect(&h, &icmp(B, A, 0, 0, 7, 1), "est|rpl|trk");
}

// === SCTP, UDP-Lite, GRE ===

#[test]
fn sctp_associations_are_keyed_by_ports() {
    let h = Harness::default();
    let a = sctp(A, 5000, B, 38412);
    expect(&h, &a, "new|trk");
    expect(&h, &a, "new|trk");
    expect(&h, &sctp(B, 38412, A, 5000), "est|rpl|trk");
    expect(&h, &a, "est|trk");
    // Another association between the same hosts.
    expect(&h, &sctp(A, 5001, B, 38412), "new|trk");
    let stats = h.tracker.stats();
    assert_eq!(stats.connections, 2);
    assert_eq!(stats.proto_count(ProtoClass::Sctp), 2);
    let key = port_key(A, 5000, B, 38412, proto::SCTP, 0);
    let e = h.tracker.lookup(&key, h.now).expect("keyed by ports");
    assert_eq!(e.key, key);
    assert_eq!(e.timeout_left(h.now).as_secs(), 30, "BIDIR: udp_multiple");
    assert!(
        h.tracker
            .lookup(&port_key(A, 5002, B, 38412, proto::SCTP, 0), h.now)
            .is_none()
    );
    // IPv6.
    expect(&h, &sctp(A6, 5000, B6, 38412), "new|trk");
    expect(&h, &sctp(B6, 38412, A6, 5000), "est|rpl|trk");
}

#[test]
fn truncated_sctp_and_udplite_headers_are_malformed() {
    let h = Harness::default();
    let mut short = sctp(A, 5000, B, 38412);
    if let L4::Raw { bytes, .. } = &mut short.l4 {
        bytes.truncate(11);
    }
    expect_invalid(&h, &short, InvalidReason::L4Malformed);
    expect_invalid(
        &h,
        &raw(A6, B6, proto::SCTP, vec![0x13, 0x88]),
        InvalidReason::L4Malformed,
    );
    expect_invalid(
        &h,
        &raw(A, B, proto::SCTP, Vec::new()),
        InvalidReason::L4Malformed,
    );
    let mut short = udplite(A, 5000, B, 5001);
    if let L4::Raw { bytes, .. } = &mut short.l4 {
        bytes.truncate(7);
    }
    expect_invalid(&h, &short, InvalidReason::L4Malformed);
    assert_eq!(h.tracker.connection_count(), 0);
}

#[test]
fn udplite_is_keyed_by_ports() {
    let h = Harness::default();
    expect(&h, &udplite(A, 5000, B, 5001), "new|trk");
    expect(&h, &udplite(B, 5001, A, 5000), "est|rpl|trk");
    expect(&h, &udplite(A, 5002, B, 5001), "new|trk");
    let stats = h.tracker.stats();
    assert_eq!(stats.proto_count(ProtoClass::Udplite), 2);
    let key = port_key(A, 5002, B, 5001, proto::UDPLITE, 0);
    assert_eq!(h.tracker.lookup(&key, h.now).unwrap().key, key);
    expect(&h, &udplite(A6, 5000, B6, 5001), "new|trk");
}

#[test]
fn gre_is_keyed_on_addresses_only() {
    let h = Harness::default();
    expect(&h, &gre(A, B, 1), "new|trk");
    // Different GRE key, same hosts: the same connection.
    expect(&h, &gre(A, B, 2), "new|trk");
    expect(&h, &gre(B, A, 3), "est|rpl|trk");
    expect(&h, &gre(A, B, 4), "est|trk");
    assert_eq!(h.tracker.connection_count(), 1);
    let key = port_key(A, 0, B, 0, 47, 0);
    assert_eq!(h.tracker.lookup(&key, h.now).unwrap().key, key);
    expect(&h, &gre(A, C, 1), "new|trk");
    expect(&h, &gre(A6, B6, 1), "new|trk");
    let stats = h.tracker.stats();
    assert_eq!(stats.connections, 3);
    assert_eq!(stats.proto_count(ProtoClass::Other), 3);
}

#[test]
fn icmp_protocol_numbers_in_the_wrong_family_use_the_icmp_rules_to_open() {
    // OVS: `extract_l4` keys these as portless (its ICMP branches test dl_type), but
    // `valid_new` is `l4_protos[nw_proto]->valid_new(pkt)`: proto 1 uses `icmp4_valid_new`
    // (type 8, 13 or 15 only) and proto 58 `icmp6_valid_new` (type 128 only), whatever the
    // family. So a type-0 message in an IPv6 packet with next header 1, or a type-129 message
    // in an IPv4 packet with protocol 58, cannot open a connection: inv|trk.
    let h = Harness::default();
    let bogus = |src: &str, dst: &str, proto: u8, ty: u8| {
        raw(src, dst, proto, vec![ty, 0, 0, 0, 0, 7, 0, 1])
    };
    expect_invalid(&h, &bogus(A6, B6, 1, 0), InvalidReason::CannotCreate);
    expect_invalid(&h, &bogus(A, B, 58, 129), InvalidReason::CannotCreate);
    // The request types open a (portless) connection as usual.
    expect(&h, &bogus(A6, B6, 1, 8), "new|trk");
    expect(&h, &bogus(A, B, 58, 128), "new|trk");
}

// === ICMP ===

#[test]
fn truncated_icmp_headers_are_malformed() {
    let h = Harness::default();
    for len in [0, 4, 7] {
        let mut b = vec![8, 0, 0, 0, 0, 1, 0, 1];
        b.truncate(len);
        let c = fold(ones_sum(&b));
        if len >= 4 {
            b[2..4].copy_from_slice(&c.to_be_bytes());
        }
        expect_invalid(&h, &raw(A, B, 1, b), InvalidReason::L4Malformed);
    }
    // ICMPv6 needs 8 bytes too (a 4-byte header and 4 more).
    expect_invalid(
        &h,
        &raw(A6, B6, 58, vec![128, 0]),
        InvalidReason::L4Malformed,
    );
    let mut h6 = Harness::default();
    h6.opts.verify_checksums = false;
    expect_invalid(
        &h6,
        &raw(A6, B6, 58, vec![128, 0, 0, 0, 0, 1]),
        InvalidReason::L4Malformed,
    );
}

#[test]
fn unsupported_icmp_types_and_codes() {
    let h = Harness::default();
    // Router advertisement and solicitation, address mask, alternate host address,
    // traceroute, photuris, anything unassigned; queries with a non-zero code.
    let v4 = [
        (9, 0),
        (10, 0),
        (17, 0),
        (18, 0),
        (6, 0),
        (30, 0),
        (40, 0),
        (255, 0),
        (8, 1),
        (0, 1),
        (13, 1),
        (14, 2),
        (15, 1),
        (16, 255),
    ];
    for (ty, code) in v4 {
        expect_invalid(&h, &icmp(A, B, ty, code, 1, 1), InvalidReason::IcmpType);
    }
    // Neighbour discovery, router discovery, redirect, multicast listener messages, private
    // and unassigned types, and echo with a non-zero code.
    let v6 = [
        (133, 0),
        (134, 0),
        (135, 0),
        (136, 0),
        (137, 0),
        (130, 0),
        (131, 0),
        (143, 0),
        (0, 0),
        (5, 0),
        (100, 0),
        (200, 0),
        (128, 1),
        (129, 1),
    ];
    for (ty, code) in v6 {
        expect_invalid(&h, &icmp(A6, B6, ty, code, 1, 1), InvalidReason::IcmpType);
    }
    // A realistic neighbour solicitation: target address and source link-layer option.
    let mut ns = vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    ns.extend([1, 1, 0x02, 0, 0, 0, 0, 0x01]);
    let ns = Pkt::new(
        A6,
        "ff02::1:ff00:2",
        L4::Icmp {
            ty: 135,
            code: 0,
            rest: [0; 4],
            payload: ns,
        },
    );
    expect_invalid(&h, &ns, InvalidReason::IcmpType);
    assert_eq!(h.tracker.connection_count(), 0);
}

#[test]
fn icmp_query_exchanges() {
    let h = Harness::default();
    for (request, reply, id) in [(8, 0, 1), (13, 14, 2), (15, 16, 3)] {
        expect(&h, &icmp(A, B, request, 0, id, 1), "new|trk");
        expect(&h, &icmp(A, B, request, 0, id, 2), "new|trk");
        expect(&h, &icmp(B, A, reply, 0, id, 2), "est|rpl|trk");
        expect(&h, &icmp(A, B, request, 0, id, 3), "est|trk");
        let e = h.entry(&icmp(A, B, request, 0, id, 1)).unwrap();
        assert_eq!((e.key.src.icmp_type, e.key.dst.icmp_type), (request, reply));
        assert_eq!((e.key.src.port, e.key.dst.port), (id, id));
        assert_eq!(e.timeout_left(h.now).as_secs(), 30, "icmp_reply");
    }
    // Another id is another connection.
    expect(&h, &icmp(A, B, 8, 0, 99, 1), "new|trk");
    assert_eq!(h.tracker.connection_count(), 4);
    assert_eq!(h.tracker.stats().proto_count(ProtoClass::Icmp), 4);
}

#[test]
fn icmpv6_echo_exchange() {
    let h = Harness::default();
    expect(&h, &icmp(A6, B6, 128, 0, 7, 1), "new|trk");
    expect(&h, &icmp(B6, A6, 129, 0, 7, 1), "est|rpl|trk");
    expect(&h, &icmp(A6, B6, 128, 0, 7, 2), "est|trk");
    let e = h.entry(&icmp(A6, B6, 128, 0, 7, 1)).unwrap();
    assert_eq!((e.key.src.icmp_type, e.key.dst.icmp_type), (128, 129));
    assert_eq!(e.timeout_left(h.now).as_secs(), 30);
    expect(&h, &icmp(A6, B6, 128, 0, 8, 1), "new|trk");
    assert_eq!(h.tracker.stats().proto_count(ProtoClass::Icmpv6), 2);
}

#[test]
fn icmp_error_quoting_tcp_needs_only_eight_bytes() {
    let h = Harness::default();
    let syn = tcp(A, 40000, B, 80, SYN, 1000, 0);
    let syn_ack = tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001);
    expect(&h, &syn, "new|trk");
    expect(&h, &syn_ack, "est|rpl|trk");
    // Fragmentation needed, from the server's side: quotes the IP header and 8 bytes of TCP.
    let err = icmp_error(B, A, 3, 4, &syn);
    if let L4::Icmp { payload, .. } = &err.l4 {
        assert_eq!(payload.len(), IP4 + 8);
    }
    expect(&h, &err, "rel|rpl|trk");
    // Time exceeded from a router, source quench, redirect, parameter problem.
    for (ty, code) in [(11, 0), (4, 0), (5, 1), (12, 0)] {
        expect(&h, &icmp_error(ROUTER, A, ty, code, &syn), "rel|rpl|trk");
    }
    // An error about the server's packet, sent towards the server: the originator direction.
    expect(&h, &icmp_error(ROUTER, B, 3, 1, &syn_ack), "rel|trk");
    // A quoted packet with IP options.
    let mut opt = syn.clone();
    opt.ipv4_options = vec![1, 1, 1, 1];
    expect(&h, &icmp_error(B, A, 3, 3, &opt), "rel|rpl|trk");
    assert_eq!(h.tracker.stats().related, 7);
    // An error quoting an ICMP echo request.
    let ping = icmp(A, B, 8, 0, 3, 1);
    expect(&h, &ping, "new|trk");
    expect(&h, &icmp_error(ROUTER, A, 11, 0, &ping), "rel|rpl|trk");
}

#[test]
fn icmpv6_errors_quoting_a_udp_flow_are_related() {
    let h = Harness::default();
    let out = udp(A6, 1000, B6, 53);
    expect(&h, &out, "new|trk");
    // Destination unreachable, packet too big, time exceeded, parameter problem.
    for (ty, code) in [(1, 4), (2, 0), (3, 0), (4, 0)] {
        expect(&h, &icmp_error(B6, A6, ty, code, &out), "rel|rpl|trk");
        expect(&h, &icmp_error(ROUTER6, A6, ty, code, &out), "rel|rpl|trk");
    }
    let back = udp(B6, 53, A6, 1000);
    expect(&h, &back, "est|rpl|trk");
    // The client complains about the server's reply: quoted key B->A reversed is A->B, the
    // originator direction.
    expect(&h, &icmp_error(A6, B6, 1, 4, &back), "rel|trk");
    assert_eq!(h.tracker.stats().related, 9);
}

#[test]
fn icmpv6_packet_too_big_quoting_tcp() {
    let h = Harness::default();
    let syn = tcp(A6, 41000, B6, 443, SYN, 1, 0);
    expect(&h, &syn, "new|trk");
    expect(
        &h,
        &tcp(B6, 443, A6, 41000, SYN | ACK, 100, 2),
        "est|rpl|trk",
    );
    expect(&h, &tcp(A6, 41000, B6, 443, ACK, 2, 101), "est|trk");
    let big_out = tcp_data(A6, 41000, B6, 443, PSH | ACK, 2, 101, 1400);
    let big_back = tcp_data(B6, 443, A6, 41000, PSH | ACK, 101, 2, 1400);
    expect(&h, &big_out, "est|trk");
    expect(&h, &big_back, "est|rpl|trk");
    let ptb = |src: &str, dst: &str, quoted: &Pkt| {
        let mut p = icmp_error(src, dst, 2, 0, quoted);
        if let L4::Icmp { rest, .. } = &mut p.l4 {
            *rest = 1280u32.to_be_bytes();
        }
        p
    };
    // To the client about its segment: the quoted key reversed is the reply direction.
    expect(&h, &ptb(ROUTER6, A6, &big_out), "rel|rpl|trk");
    // To the server about its segment: the originator direction.
    expect(&h, &ptb(ROUTER6, B6, &big_back), "rel|trk");
}

#[test]
fn icmp_error_quoting_nothing_tracked() {
    let mut h = Harness::default();
    let out = udp(A, 1000, B, 53);
    expect_invalid(
        &h,
        &icmp_error(B, A, 3, 3, &out),
        InvalidReason::IcmpErrorNoMatch,
    );
    let out6 = udp(A6, 1000, B6, 53);
    expect_invalid(
        &h,
        &icmp_error(B6, A6, 1, 4, &out6),
        InvalidReason::IcmpErrorNoMatch,
    );
    // Tracked, then expired: invisible at once.
    expect(&h, &out, "new|trk");
    expect(&h, &icmp_error(B, A, 3, 3, &out), "rel|rpl|trk");
    h.advance(60);
    expect_invalid(
        &h,
        &icmp_error(B, A, 3, 3, &out),
        InvalidReason::IcmpErrorNoMatch,
    );
    // Same hosts, other ports.
    expect(&h, &out, "new|trk");
    expect_invalid(
        &h,
        &icmp_error(B, A, 3, 3, &udp(A, 1001, B, 53)),
        InvalidReason::IcmpErrorNoMatch,
    );
}

#[test]
fn icmp_error_quoting_a_packet_not_sent_by_its_destination() {
    let h = Harness::default();
    let out = udp(A, 1000, B, 53);
    expect(&h, &out, "new|trk");
    // The error goes to C, but the quoted packet came from A.
    expect_invalid(
        &h,
        &icmp_error(B, C, 3, 3, &out),
        InvalidReason::IcmpErrorQuote,
    );
    // The error goes back to the quoted packet's destination.
    expect_invalid(
        &h,
        &icmp_error(A, B, 3, 3, &out),
        InvalidReason::IcmpErrorQuote,
    );
    let out6 = udp(A6, 1000, B6, 53);
    expect(&h, &out6, "new|trk");
    expect_invalid(
        &h,
        &icmp_error(B6, C6, 1, 4, &out6),
        InvalidReason::IcmpErrorQuote,
    );
}

#[test]
fn icmp_error_quoting_an_icmp_error() {
    let h = Harness::default();
    let out = udp(A, 1000, B, 53);
    expect(&h, &out, "new|trk");
    let err = icmp_error(B, A, 3, 3, &out);
    expect(&h, &err, "rel|rpl|trk");
    // A answers B's error with an error of its own: the quoted source (B) is the destination.
    expect_invalid(
        &h,
        &icmp_error(A, B, 3, 3, &err),
        InvalidReason::IcmpErrorQuote,
    );
    expect_invalid(
        &h,
        &icmp_error(A, B, 11, 0, &err),
        InvalidReason::IcmpErrorQuote,
    );
    let out6 = udp(A6, 1000, B6, 53);
    expect(&h, &out6, "new|trk");
    let err6 = icmp_error(B6, A6, 1, 4, &out6);
    expect(&h, &err6, "rel|rpl|trk");
    expect_invalid(
        &h,
        &icmp_error(A6, B6, 2, 0, &err6),
        InvalidReason::IcmpErrorQuote,
    );
}

#[test]
fn icmp_errors_with_unusable_quotes() {
    let h = Harness::default();
    let out = udp(A, 1000, B, 53);
    expect(&h, &out, "new|trk");
    let quoted = out.ip_packet();
    let quote = |bytes: Vec<u8>| icmp_error_quoting(B, A, 3, 3, bytes);
    // The quoted IPv4 header is cut short; the quoted UDP header has fewer than 8 bytes.
    expect_invalid(
        &h,
        &quote(quoted[..IP4 - 1].to_vec()),
        InvalidReason::IcmpErrorQuote,
    );
    expect_invalid(
        &h,
        &quote(quoted[..IP4 + 7].to_vec()),
        InvalidReason::IcmpErrorQuote,
    );
    expect(&h, &quote(quoted[..IP4 + 8].to_vec()), "rel|rpl|trk");
    // The quoted IHL is below 5.
    let mut bad_ihl = quoted[..IP4 + 8].to_vec();
    bad_ihl[0] = 0x44;
    expect_invalid(&h, &quote(bad_ihl), InvalidReason::IcmpErrorQuote);
    // A quoted fragment, even a first one, is not matched.
    for frag in [0x2000, 0x2001, 0x0001] {
        let mut f = out.clone();
        f.frag = frag;
        expect_invalid(
            &h,
            &icmp_error(B, A, 3, 3, &f),
            InvalidReason::IcmpErrorQuote,
        );
    }
    // A quoted port 0.
    expect_invalid(
        &h,
        &icmp_error(B, A, 3, 3, &udp(A, 0, B, 53)),
        InvalidReason::IcmpErrorQuote,
    );
    // A quoted ICMP message of a type the tracker does not accept.
    expect_invalid(
        &h,
        &icmp_error(B, A, 3, 3, &icmp(A, B, 9, 0, 1, 1)),
        InvalidReason::IcmpErrorQuote,
    );
    // An error with no quote at all.
    expect_invalid(&h, &quote(Vec::new()), InvalidReason::IcmpErrorQuote);

    // IPv6 errors must quote the whole fixed TCP header (OVS passes no check length).
    let syn6 = tcp(A6, 41000, B6, 443, SYN, 1, 0);
    expect(&h, &syn6, "new|trk");
    let q6 = syn6.ip_packet();
    let quote6 = |bytes: &[u8]| icmp_error_quoting(B6, A6, 1, 4, bytes.to_vec());
    expect_invalid(&h, &quote6(&q6[..IP6 + 8]), InvalidReason::IcmpErrorQuote);
    expect_invalid(&h, &quote6(&q6[..IP6 + 19]), InvalidReason::IcmpErrorQuote);
    expect(&h, &quote6(&q6[..IP6 + 20]), "rel|rpl|trk");
    // A cut IPv6 header, and a quoted IPv6 fragment.
    expect_invalid(&h, &quote6(&q6[..IP6 - 1]), InvalidReason::IcmpErrorQuote);
    let mut frag6 = syn6.clone();
    frag6.ipv6_ext = vec![fragment_header(0x0001)];
    expect_invalid(
        &h,
        &icmp_error(B6, A6, 1, 4, &frag6),
        InvalidReason::IcmpErrorQuote,
    );
    // Extension headers in the quote are walked.
    let mut ext6 = syn6.clone();
    ext6.ipv6_ext = vec![hop_by_hop()];
    let q = ext6.ip_packet();
    expect(&h, &quote6(&q[..IP6 + 8 + 20]), "rel|rpl|trk");
}

#[test]
fn related_packets_do_not_refresh_timeouts_or_counters() {
    let mut h = Harness::default();
    let out = udp(A, 1000, B, 53);
    expect(&h, &out, "new|trk");
    assert_eq!(h.timeout_of(&out), Some(60));
    h.advance(10);
    assert_eq!(h.timeout_of(&out), Some(50));
    expect(&h, &icmp_error(B, A, 3, 3, &out), "rel|rpl|trk");
    assert_eq!(h.timeout_of(&out), Some(50), "a related packet refreshed");
    let back = udp(B, 53, A, 1000);
    expect(&h, &back, "est|rpl|trk");
    assert_eq!(h.timeout_of(&out), Some(30));
    h.advance(5);
    expect(&h, &icmp_error(A, B, 3, 3, &back), "rel|trk");
    expect(&h, &icmp_error(ROUTER, A, 11, 0, &out), "rel|rpl|trk");
    assert_eq!(h.timeout_of(&out), Some(25));
    let e = h.entry(&out).unwrap();
    assert_eq!(
        e.counters.packets,
        [1, 1],
        "related packets are not counted"
    );

    let syn = tcp(A, 40000, B, 80, SYN, 1000, 0);
    expect(&h, &syn, "new|trk");
    h.advance(10);
    expect(&h, &icmp_error(B, A, 3, 3, &syn), "rel|rpl|trk");
    assert_eq!(h.timeout_of(&syn), Some(20));

    let ping = icmp(A6, B6, 128, 0, 1, 1);
    expect(&h, &ping, "new|trk");
    h.advance(15);
    expect(&h, &icmp_error(ROUTER6, A6, 3, 0, &ping), "rel|rpl|trk");
    assert_eq!(h.timeout_of(&ping), Some(45));
}

// === Zones ===

#[test]
fn the_same_flow_in_two_zones_is_two_connections() {
    let mut h = Harness::default();
    let out = udp(A, 1000, B, 53);
    let back = udp(B, 53, A, 1000);
    h.zone = 1;
    expect(&h, &out, "new|trk");
    h.zone = 2;
    expect(&h, &out, "new|trk");
    expect(&h, &back, "est|rpl|trk");
    h.zone = 1;
    expect(&h, &out, "new|trk");
    expect(&h, &icmp_error(B, A, 3, 3, &out), "rel|rpl|trk");
    // In a third zone the reply is a new flow of its own, without rpl.
    h.zone = 3;
    expect(&h, &back, "new|trk");
    // An error in a zone where the flow is unknown.
    h.zone = 4;
    expect_invalid(
        &h,
        &icmp_error(B, A, 3, 3, &out),
        InvalidReason::IcmpErrorNoMatch,
    );
    let stats = h.tracker.stats();
    assert_eq!(stats.connections, 3);
    for zone in 1..=3 {
        assert_eq!(stats.zone_count(zone), 1, "zone {zone}");
    }
    assert_eq!(stats.zone_count(4), 0);
    assert_eq!(h.tracker.lookup(&out.key(1), h.now).unwrap().key.zone, 1);
    assert_eq!(h.tracker.lookup(&out.key(2), h.now).unwrap().key.zone, 2);
    assert_eq!(
        h.tracker.lookup(&back.key(3), h.now).unwrap().key,
        back.key(3)
    );
}

// === Every reason ===

/// Sends what `reason` needs first, and returns a frame that is invalid for `reason`.
fn provoke(h: &Harness, reason: InvalidReason) -> Vec<u8> {
    match reason {
        InvalidReason::CannotCreate => tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001).frame(),
        InvalidReason::Fragment => {
            let mut p = udp(A, 1000, B, 53);
            p.frag = 0x0010;
            p.frame()
        }
        InvalidReason::IcmpErrorNoMatch => icmp_error(B, A, 3, 3, &udp(A, 1000, B, 53)).frame(),
        InvalidReason::IcmpErrorQuote => icmp_error(B, C, 3, 3, &udp(A, 1000, B, 53)).frame(),
        InvalidReason::IcmpType => icmp(A, B, 9, 0, 0, 0).frame(),
        InvalidReason::L3Checksum => {
            let mut p = udp(A, 1000, B, 53);
            p.bad_ip_checksum = true;
            p.frame()
        }
        InvalidReason::L3Malformed => udp(A, 1000, B, 53).frame()[..ETH + 10].to_vec(),
        InvalidReason::L4Checksum => {
            let mut p = udp(A, 1000, B, 53);
            p.bad_l4_checksum = true;
            p.frame()
        }
        InvalidReason::L4Malformed => edited(&udp(A, 1000, B, 53), |f, l3| {
            set16(f, l3 + IP4 + 4, 4);
        }),
        InvalidReason::NotIp => {
            let mut f = udp(A, 1000, B, 53).frame();
            set16(&mut f, 12, 0x0806);
            f
        }
        InvalidReason::PortZero => udp(A, 0, B, 53).frame(),
        InvalidReason::TcpFlags => tcp(A, 40000, B, 80, SYN | RST, 1, 0).frame(),
        InvalidReason::TcpWindow => {
            expect(h, &tcp(A, 40000, B, 80, SYN, 1000, 0), "new|trk");
            expect(
                h,
                &tcp(B, 80, A, 40000, SYN | ACK, 5000, 1001),
                "est|rpl|trk",
            );
            tcp_data(A, 40000, B, 80, PSH | ACK, 2_000_000, 5001, 10).frame()
        }
    }
}

#[test]
fn every_invalid_reason_has_a_packet_and_its_own_counter() {
    for reason in InvalidReason::ALL {
        let h = Harness::default();
        let frame = provoke(&h, reason);
        expect_invalid_frame(&h, &frame, reason);
        let stats = h.tracker.stats();
        assert_eq!(stats.invalid_total(), 1, "{reason:?}");
        assert_eq!(stats.invalid_count(reason), 1, "{reason:?}");
    }
    // One tracker, every reason once: each counter holds exactly its own packet.
    let h = Harness::default();
    for reason in InvalidReason::ALL {
        let frame = provoke(&h, reason);
        expect_invalid_frame(&h, &frame, reason);
    }
    let stats = h.tracker.stats();
    for reason in InvalidReason::ALL {
        assert_eq!(stats.invalid_count(reason), 1, "{reason:?}");
    }
}
