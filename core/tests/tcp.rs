//! TCP state transitions and timeout choices, packet by packet (OVS `conntrack-tcp.c`, as
//! summarised in DESIGN.md "Per-packet contract").
//!
//! Every step asserts the `ct_state` the packet gets, both peers' states and the timeout in
//! force afterwards (default policy: syn_sent 30, syn_recv 30, established 86400, fin_wait 900,
//! time_wait 45, close 30).
//!
//! The client 10.0.0.1:40000 opens to the server 10.0.0.2:80; the client's initial sequence
//! number is 1000 and the server's 5000.

mod common;

use common::*;
use ctrack_core::{Config, InvalidReason, ProtoInfo, TcpPeerInfo, TcpState, Tracker};

use TcpState::{Closed, Closing, Established, FinWait2, SynSent, TimeWait};

const CLIENT: &str = "10.0.0.1";
const SERVER: &str = "10.0.0.2";
const CPORT: u16 = 40000;
const SPORT: u16 = 80;

/// Client's initial sequence number, and the server's.
const CISN: u32 = 1000;
const SISN: u32 = 5000;

/// Bytes the client sends in `exchange_data`, and the server's answer.
const CDATA: u32 = 100;
const SDATA: u32 = 50;

/// A client-to-server segment without payload.
fn c2s(flags: u8, seq: u32, ack: u32) -> Pkt {
    tcp(CLIENT, CPORT, SERVER, SPORT, flags, seq, ack)
}

/// A server-to-client segment without payload.
fn s2c(flags: u8, seq: u32, ack: u32) -> Pkt {
    tcp(SERVER, SPORT, CLIENT, CPORT, flags, seq, ack)
}

/// A client-to-server segment carrying `len` bytes.
fn c2s_data(seq: u32, ack: u32, len: u32) -> Pkt {
    tcp_data(
        CLIENT,
        CPORT,
        SERVER,
        SPORT,
        PSH | ACK,
        seq,
        ack,
        len as usize,
    )
}

/// A server-to-client segment carrying `len` bytes.
fn s2c_data(seq: u32, ack: u32, len: u32) -> Pkt {
    tcp_data(
        SERVER,
        SPORT,
        CLIENT,
        CPORT,
        PSH | ACK,
        seq,
        ack,
        len as usize,
    )
}

/// `p` with TCP options (padded to 4 bytes by the caller).
fn with_options(mut p: Pkt, opts: &[u8]) -> Pkt {
    match &mut p.l4 {
        L4::Tcp { options, .. } => *options = opts.to_vec(),
        other => panic!("not TCP: {other:?}"),
    }
    p
}

/// A NOP and a window-scale option with shift `shift`.
fn wscale(shift: u8) -> [u8; 4] {
    [1, 3, 3, shift]
}

/// Both peers of `p`'s connection: (originator, responder).
fn peers(h: &Harness, p: &Pkt) -> (TcpPeerInfo, TcpPeerInfo) {
    let entry = h.entry(p).expect("a live connection");
    match entry.proto {
        ProtoInfo::Tcp { orig, reply } => (orig, reply),
        other => panic!("not a TCP connection: {other:?}"),
    }
}

/// Both peers' states of `p`'s connection: (originator, responder).
fn states(h: &Harness, p: &Pkt) -> (TcpState, TcpState) {
    let (o, r) = peers(h, p);
    (o.state, r.state)
}

/// Asserts one step: the packet's `ct_state`, then the peers' states and the timeout.
#[track_caller]
fn step(h: &Harness, p: &Pkt, ct: &str, peers: (TcpState, TcpState), timeout: u64) {
    assert_eq!(h.state(p), ct, "ct_state of {p:?}");
    assert_eq!(states(h, p), peers, "peer states after {p:?}");
    assert_eq!(h.timeout_of(p), Some(timeout), "timeout after {p:?}");
}

// Each helper below drives one phase and asserts every step; the tests call the phases they
// need and then check the step they are about.

/// SYN, SYN|ACK, ACK: both ESTABLISHED.
fn handshake(h: &Harness) {
    step(h, &c2s(SYN, CISN, 0), "new|trk", (SynSent, Closed), 30);
    step(
        h,
        &s2c(SYN | ACK, SISN, CISN + 1),
        "est|rpl|trk",
        (Established, SynSent),
        30,
    );
    step(
        h,
        &c2s(ACK, CISN + 1, SISN + 1),
        "est|trk",
        (Established, Established),
        86400,
    );
}

/// The client sends CDATA bytes, the server answers with SDATA bytes.
fn exchange_data(h: &Harness) {
    let c = c2s_data(CISN + 1, SISN + 1, CDATA);
    step(h, &c, "est|trk", (Established, Established), 86400);
    let s = s2c_data(SISN + 1, CISN + 1 + CDATA, SDATA);
    step(h, &s, "est|rpl|trk", (Established, Established), 86400);
}

/// The client's next sequence number after `exchange_data`, and the server's.
const CSEQ: u32 = CISN + 1 + CDATA;
const SSEQ: u32 = SISN + 1 + SDATA;

/// Handshake and data: an established connection with some history.
fn established(h: &Harness) {
    handshake(h);
    exchange_data(h);
}

/// The client closes first; the server acknowledges, closes, and the client acknowledges.
fn orderly_close(h: &Harness) {
    step(
        h,
        &c2s(FIN | ACK, CSEQ, SSEQ),
        "est|trk",
        (Closing, Established),
        900,
    );
    step(
        h,
        &s2c(ACK, SSEQ, CSEQ + 1),
        "est|rpl|trk",
        (FinWait2, Established),
        900,
    );
    step(
        h,
        &s2c(FIN | ACK, SSEQ, CSEQ + 1),
        "est|rpl|trk",
        (FinWait2, Closing),
        45,
    );
    step(
        h,
        &c2s(ACK, CSEQ + 1, SSEQ + 1),
        "est|trk",
        (FinWait2, FinWait2),
        30,
    );
}

// === Opening ===

#[test]
fn syn_creates_a_new_connection_in_syn_sent() {
    let h = Harness::default();
    let syn = c2s(SYN, CISN, 0);
    step(&h, &syn, "new|trk", (SynSent, Closed), 30);
    let e = h.entry(&syn).unwrap();
    assert_eq!(e.key, syn.key(0), "the SYN's sender is the originator");
    assert_eq!(h.tracker.connection_count(), 1);
    assert_eq!(h.tracker.stats().created, 1);
}

#[test]
fn syn_retransmission_is_new_again_and_refreshes_the_timeout() {
    let mut h = Harness::default();
    let syn = c2s(SYN, CISN, 0);
    step(&h, &syn, "new|trk", (SynSent, Closed), 30);
    let id = h.entry(&syn).unwrap().id;
    h.advance(12);
    assert_eq!(h.timeout_of(&syn), Some(18));
    step(&h, &syn, "new|trk", (SynSent, Closed), 30);
    assert_eq!(h.entry(&syn).unwrap().id, id, "the same connection");
    assert_eq!(h.tracker.connection_count(), 1);
}

#[test]
fn syn_ack_reply_establishes_the_originator_only() {
    let mut h = Harness::default();
    step(&h, &c2s(SYN, CISN, 0), "new|trk", (SynSent, Closed), 30);
    h.advance(5);
    // The responder's first segment puts it in SYN_SENT; its ACK flag moves the originator
    // (in SYN_SENT) to ESTABLISHED. One peer is not established yet: tcp_syn_recv.
    let synack = s2c(SYN | ACK, SISN, CISN + 1);
    step(&h, &synack, "est|rpl|trk", (Established, SynSent), 30);
}

#[test]
fn responder_pure_syn_is_new_without_rpl() {
    // Simultaneous open: the responder sends a pure SYN while it is still <= SYN_SENT; it is
    // a SYN (re)transmission, so `new`, and a reply-direction `new` carries no `rpl`.
    let h = Harness::default();
    step(&h, &c2s(SYN, CISN, 0), "new|trk", (SynSent, Closed), 30);
    step(&h, &s2c(SYN, SISN, 0), "new|trk", (SynSent, SynSent), 30);
    assert_eq!(h.tracker.connection_count(), 1);
}

#[test]
fn final_ack_establishes_both_peers() {
    let h = Harness::default();
    handshake(&h);
    let (o, r) = peers(&h, &c2s(ACK, CISN + 1, SISN + 1));
    assert!(
        !o.liberal && !r.liberal,
        "opened with a SYN: strict window tracking"
    );
    assert!(!o.window_scale && !r.window_scale);
}

#[test]
fn data_flows_both_ways_while_established() {
    let mut h = Harness::default();
    handshake(&h);
    h.advance(100);
    exchange_data(&h);
    let e = h.entry(&c2s(ACK, CSEQ, SSEQ)).unwrap();
    assert_eq!(e.counters.packets, [3, 2]);
    assert_eq!(
        e.counters.bytes,
        [40 + 40 + 40 + u64::from(CDATA), 40 + 40 + u64::from(SDATA)]
    );
}

// === Closing ===

#[test]
fn fin_from_one_side_is_closing_with_fin_wait_timeout() {
    let h = Harness::default();
    established(&h);
    step(
        &h,
        &c2s(FIN | ACK, CSEQ, SSEQ),
        "est|trk",
        (Closing, Established),
        900,
    );
}

#[test]
fn ack_of_the_fin_moves_its_sender_to_fin_wait_2() {
    let h = Harness::default();
    established(&h);
    step(
        &h,
        &c2s(FIN | ACK, CSEQ, SSEQ),
        "est|trk",
        (Closing, Established),
        900,
    );
    step(
        &h,
        &s2c(ACK, SSEQ, CSEQ + 1),
        "est|rpl|trk",
        (FinWait2, Established),
        900,
    );
}

#[test]
fn fin_from_the_other_side_uses_time_wait_timeout() {
    let h = Harness::default();
    established(&h);
    step(
        &h,
        &c2s(FIN | ACK, CSEQ, SSEQ),
        "est|trk",
        (Closing, Established),
        900,
    );
    step(
        &h,
        &s2c(ACK, SSEQ, CSEQ + 1),
        "est|rpl|trk",
        (FinWait2, Established),
        900,
    );
    // Both peers >= CLOSING: tcp_time_wait.
    step(
        &h,
        &s2c(FIN | ACK, SSEQ, CSEQ + 1),
        "est|rpl|trk",
        (FinWait2, Closing),
        45,
    );
}

#[test]
fn crossing_fins_use_time_wait_timeout() {
    // The server's FIN|ACK also acknowledges the client's FIN.
    let h = Harness::default();
    established(&h);
    step(
        &h,
        &c2s(FIN | ACK, CSEQ, SSEQ),
        "est|trk",
        (Closing, Established),
        900,
    );
    step(
        &h,
        &s2c(FIN | ACK, SSEQ, CSEQ + 1),
        "est|rpl|trk",
        (FinWait2, Closing),
        45,
    );
}

#[test]
fn last_ack_closes_with_close_timeout() {
    let mut h = Harness::default();
    established(&h);
    orderly_close(&h);
    // A retransmitted last ACK keeps tcp_close.
    h.advance(10);
    let last = c2s(ACK, CSEQ + 1, SSEQ + 1);
    assert_eq!(h.timeout_of(&last), Some(20));
    step(&h, &last, "est|trk", (FinWait2, FinWait2), 30);
}

#[test]
fn closed_connection_expires_after_tcp_close() {
    let mut h = Harness::default();
    established(&h);
    orderly_close(&h);
    let last = c2s(ACK, CSEQ + 1, SSEQ + 1);
    h.advance(29);
    assert_eq!(h.timeout_of(&last), Some(1));
    h.advance(1);
    assert!(h.entry(&last).is_none(), "expired at now + tcp_close");
}

// === Reset ===

#[test]
fn rst_puts_both_peers_in_time_wait_with_close_timeout() {
    let h = Harness::default();
    established(&h);
    // RST|ACK from the server at exactly its next sequence number.
    let rst = s2c(RST | ACK, SSEQ, CSEQ);
    step(&h, &rst, "est|rpl|trk", (TimeWait, TimeWait), 30);
}

#[test]
fn bare_rst_from_the_originator_is_accepted() {
    let h = Harness::default();
    established(&h);
    step(&h, &c2s(RST, CSEQ, 0), "est|trk", (TimeWait, TimeWait), 30);
}

#[test]
fn rst_with_a_far_sequence_number_is_invalid() {
    let mut h = Harness::default();
    established(&h);
    h.advance(10);
    let rst = c2s(RST, CSEQ + 100_000, 0);
    assert_eq!(h.state(&rst), "inv|trk");
    // Nothing changed: states, timeout (not refreshed) and counters.
    assert_eq!(states(&h, &rst), (Established, Established));
    assert_eq!(h.timeout_of(&rst), Some(86390));
    assert_eq!(h.entry(&rst).unwrap().counters.packets, [3, 2]);
    let st = h.tracker.stats();
    assert_eq!(st.seq_check_failed, 1);
    assert_eq!(st.invalid_count(InvalidReason::TcpWindow), 1);
    assert_eq!(st.seq_check_bypassed, 0);
}

#[test]
fn rst_one_off_the_expected_sequence_is_accepted() {
    // pf accepts seqlo, seqlo + 1 and seqlo - 1 on a reset.
    let h = Harness::default();
    established(&h);
    step(
        &h,
        &c2s(RST, CSEQ + 1, 0),
        "est|trk",
        (TimeWait, TimeWait),
        30,
    );
    let h = Harness::default();
    established(&h);
    step(
        &h,
        &c2s(RST, CSEQ - 1, 0),
        "est|trk",
        (TimeWait, TimeWait),
        30,
    );
    let h = Harness::default();
    established(&h);
    assert_eq!(h.state(&c2s(RST, CSEQ + 2, 0)), "inv|trk");
}

#[test]
fn rst_with_a_far_sequence_number_passes_without_sequence_checking() {
    let h = Harness::default();
    established(&h);
    h.tracker.set_tcp_seq_check(false);
    assert!(!h.tracker.tcp_seq_check());
    let rst = c2s(RST, CSEQ + 100_000, 0);
    step(&h, &rst, "est|trk", (TimeWait, TimeWait), 30);
    let st = h.tracker.stats();
    assert_eq!(st.seq_check_bypassed, 1);
    assert_eq!(st.seq_check_failed, 0);
}

// === Sequence window ===

#[test]
fn segments_outside_the_window_are_invalid_with_sequence_checking() {
    let mut h = Harness::default();
    established(&h);
    h.advance(10);
    // Data a million bytes ahead of what the server allowed.
    let ahead = c2s_data(CSEQ + 1_000_000, SSEQ, 10);
    // Data more than a window behind what the client already sent.
    let behind = c2s_data(CSEQ.wrapping_sub(200_000), SSEQ, 10);
    // An acknowledgement of data the server never sent.
    let bad_ack = c2s(ACK, CSEQ, SSEQ + 1_000_000);
    // A server segment far beyond the client's window.
    let reply_ahead = s2c_data(SSEQ + 1_000_000, CSEQ, 10);
    for p in [&ahead, &behind, &bad_ack, &reply_ahead] {
        assert_eq!(h.state(p), "inv|trk", "{p:?}");
    }
    assert_eq!(states(&h, &ahead), (Established, Established));
    assert_eq!(
        h.timeout_of(&ahead),
        Some(86390),
        "invalid segments refresh nothing"
    );
    assert_eq!(
        h.entry(&ahead).unwrap().counters.packets,
        [3, 2],
        "nor count"
    );
    let st = h.tracker.stats();
    assert_eq!(st.seq_check_failed, 4);
    assert_eq!(st.invalid_count(InvalidReason::TcpWindow), 4);
    assert_eq!(st.seq_check_bypassed, 0);
    // In-window traffic still passes.
    assert_eq!(h.state(&c2s_data(CSEQ, SSEQ, 10)), "est|trk");
}

#[test]
fn segments_outside_the_window_are_established_without_sequence_checking() {
    let mut h = Harness::default();
    established(&h);
    h.tracker.set_tcp_seq_check(false);
    h.advance(10);
    let ahead = c2s_data(CSEQ + 1_000_000, SSEQ, 10);
    step(&h, &ahead, "est|trk", (Established, Established), 86400);
    let reply_ahead = s2c_data(SSEQ + 1_000_000, CSEQ, 10);
    step(
        &h,
        &reply_ahead,
        "est|rpl|trk",
        (Established, Established),
        86400,
    );
    let st = h.tracker.stats();
    assert_eq!(st.seq_check_bypassed, 2);
    assert_eq!(st.seq_check_failed, 0);
    assert_eq!(h.entry(&ahead).unwrap().counters.packets, [4, 3]);
    // An in-window segment is not a bypass.
    let h2 = Harness::default();
    established(&h2);
    h2.tracker.set_tcp_seq_check(false);
    assert_eq!(h2.state(&c2s_data(CSEQ, SSEQ, 10)), "est|trk");
    assert_eq!(h2.tracker.stats().seq_check_bypassed, 0);
}

#[test]
fn sequence_checking_can_start_off() {
    let h = Harness::new(Tracker::new(Config {
        tcp_seq_check: false,
        ..Config::default()
    }));
    assert!(!h.tracker.tcp_seq_check());
    established(&h);
    assert_eq!(h.state(&c2s_data(CSEQ + 1_000_000, SSEQ, 10)), "est|trk");
    assert_eq!(h.tracker.stats().seq_check_bypassed, 1);
    h.tracker.set_tcp_seq_check(true);
    assert_eq!(h.state(&s2c_data(SSEQ + 1_000_000, CSEQ, 10)), "inv|trk");
}

#[test]
fn flag_checks_stay_on_without_sequence_checking() {
    let h = Harness::default();
    established(&h);
    h.tracker.set_tcp_seq_check(false);
    for flags in [SYN | FIN, SYN | RST, FIN, PSH, URG, 0] {
        assert_eq!(
            h.state(&c2s(flags, CSEQ, SSEQ)),
            "inv|trk",
            "flags {flags:#04x}"
        );
    }
    let st = h.tracker.stats();
    assert_eq!(st.invalid_count(InvalidReason::TcpFlags), 6);
    assert_eq!(st.seq_check_bypassed, 0);
    assert_eq!(
        states(&h, &c2s(ACK, CSEQ, SSEQ)),
        (Established, Established)
    );
}

// === Mid-stream pickup ===

#[test]
fn bare_ack_picks_up_a_connection_with_liberal_windows() {
    let h = Harness::default();
    let ack = c2s(ACK, 7000, 9000);
    step(&h, &ack, "new|trk", (SynSent, Closed), 30);
    let (o, r) = peers(&h, &ack);
    assert!(
        o.liberal && r.liberal,
        "no SYN seen: window scale unknown on both sides"
    );
    assert!(!o.window_scale && !r.window_scale);
    // The server's first segment: it goes SYN_SENT and its ACK establishes the client.
    step(
        &h,
        &s2c(ACK, 9000, 7000),
        "est|rpl|trk",
        (Established, SynSent),
        30,
    );
    step(
        &h,
        &c2s(ACK, 7000, 9000),
        "est|trk",
        (Established, Established),
        86400,
    );
    let (o, r) = peers(&h, &ack);
    assert!(o.liberal && r.liberal, "stays liberal");
    // Liberal tracking assumes the largest scale factor: 500 MB ahead is in the window,
    // where a connection opened with a SYN rejects 1 MB ahead.
    let far = c2s_data(7000 + 500_000_000, 9000, 10);
    assert_eq!(h.state(&far), "est|trk");
    assert_eq!(h.tracker.stats().seq_check_failed, 0);
}

#[test]
fn data_fin_ack_and_rst_pick_up_mid_stream_too() {
    for (i, flags) in [PSH | ACK, FIN | ACK, RST, RST | ACK]
        .into_iter()
        .enumerate()
    {
        let h = Harness::default();
        let p = tcp_data(
            "10.0.0.5",
            2000 + i as u16,
            "10.0.0.6",
            22,
            flags,
            7000,
            9000,
            20,
        );
        step(&h, &p, "new|trk", (SynSent, Closed), 30);
        let (o, r) = peers(&h, &p);
        assert!(o.liberal && r.liberal, "flags {flags:#04x}");
    }
}

// === Window scaling ===

#[test]
fn window_scale_offered_by_both_sides_is_used() {
    let h = Harness::default();
    let syn = with_options(c2s(SYN, CISN, 0), &wscale(7));
    step(&h, &syn, "new|trk", (SynSent, Closed), 30);
    let (o, r) = peers(&h, &syn);
    assert!(o.window_scale);
    assert_eq!(o.wscale, 7);
    assert!(!r.window_scale);
    let synack = with_options(s2c(SYN | ACK, SISN, CISN + 1), &wscale(5));
    step(&h, &synack, "est|rpl|trk", (Established, SynSent), 30);
    step(
        &h,
        &c2s(ACK, CISN + 1, SISN + 1),
        "est|trk",
        (Established, Established),
        86400,
    );
    let (o, r) = peers(&h, &syn);
    assert_eq!((o.window_scale, o.wscale, o.liberal), (true, 7, false));
    assert_eq!((r.window_scale, r.wscale, r.liberal), (true, 5, false));
    // The client's window of 65535 scaled by 2^7 lets the server send 1 MB ahead.
    let far = s2c_data(SISN + 1 + 1_000_000, CISN + 1, 10);
    assert_eq!(h.state(&far), "est|rpl|trk");
}

#[test]
fn window_scale_offered_only_by_the_originator_is_disabled() {
    let h = Harness::default();
    let syn = with_options(c2s(SYN, CISN, 0), &wscale(7));
    step(&h, &syn, "new|trk", (SynSent, Closed), 30);
    step(
        &h,
        &s2c(SYN | ACK, SISN, CISN + 1),
        "est|rpl|trk",
        (Established, SynSent),
        30,
    );
    step(
        &h,
        &c2s(ACK, CISN + 1, SISN + 1),
        "est|trk",
        (Established, Established),
        86400,
    );
    let (o, r) = peers(&h, &syn);
    assert_eq!(
        (o.window_scale, o.wscale),
        (false, 0),
        "the responder did not agree"
    );
    assert_eq!((r.window_scale, r.wscale), (false, 0));
    // Without scaling the same segment as in the test above is out of the window.
    let far = s2c_data(SISN + 1 + 1_000_000, CISN + 1, 10);
    assert_eq!(h.state(&far), "inv|trk");
}

#[test]
fn window_scale_offered_only_by_the_responder_is_ignored() {
    let h = Harness::default();
    let syn = c2s(SYN, CISN, 0);
    step(&h, &syn, "new|trk", (SynSent, Closed), 30);
    let synack = with_options(s2c(SYN | ACK, SISN, CISN + 1), &wscale(5));
    step(&h, &synack, "est|rpl|trk", (Established, SynSent), 30);
    step(
        &h,
        &c2s(ACK, CISN + 1, SISN + 1),
        "est|trk",
        (Established, Established),
        86400,
    );
    let (o, r) = peers(&h, &syn);
    assert_eq!((o.window_scale, o.wscale), (false, 0));
    assert_eq!((r.window_scale, r.wscale), (false, 0));
    let far = s2c_data(SISN + 1 + 1_000_000, CISN + 1, 10);
    assert_eq!(h.state(&far), "inv|trk");
}

// === Port reuse ===

#[test]
fn syn_after_full_close_replaces_the_connection() {
    let mut h = Harness::default();
    established(&h);
    orderly_close(&h);
    let old = h.entry(&c2s(ACK, CSEQ + 1, SSEQ + 1)).unwrap();
    h.advance(3);
    let syn = c2s(SYN, 90_000, 0);
    step(&h, &syn, "new|trk", (SynSent, Closed), 30);
    let new = h.entry(&syn).unwrap();
    assert_ne!(new.id, old.id, "a new connection");
    assert_eq!(new.created, h.now);
    assert_eq!(new.counters.packets, [1, 0]);
    let st = h.tracker.stats();
    assert_eq!(st.port_reuse, 1);
    assert_eq!(st.created, 2);
    // Only the new one is visible, but the old one stays in the table until a sweep.
    let dump = h.dump();
    assert_eq!(dump.len(), 1);
    assert_eq!(dump[0].id, new.id);
    assert_eq!(h.tracker.connection_count(), 2);
    let report = h.tracker.sweep(h.now);
    assert_eq!(report.expired, 1);
    assert_eq!(h.tracker.connection_count(), 1);
    assert_eq!(h.entry(&syn).unwrap().id, new.id);
    // The new connection goes on normally.
    step(
        &h,
        &s2c(SYN | ACK, 7000, 90_001),
        "est|rpl|trk",
        (Established, SynSent),
        30,
    );
}

#[test]
fn syn_after_rst_replaces_the_connection() {
    // TIME_WAIT (after a reset) is past FIN_WAIT_2, so the connection counts as closed.
    let h = Harness::default();
    established(&h);
    step(
        &h,
        &s2c(RST | ACK, SSEQ, CSEQ),
        "est|rpl|trk",
        (TimeWait, TimeWait),
        30,
    );
    let old = h.entry(&s2c(RST, SSEQ, 0)).unwrap().id;
    let syn = c2s(SYN, 90_000, 0);
    step(&h, &syn, "new|trk", (SynSent, Closed), 30);
    assert_ne!(h.entry(&syn).unwrap().id, old);
    assert_eq!(h.tracker.stats().port_reuse, 1);
    assert_eq!(h.tracker.connection_count(), 2);
}

#[test]
fn syn_before_full_close_is_not_port_reuse() {
    // The client is FIN_WAIT_2 but the server only CLOSING: not fully closed. The SYN is
    // judged by the window like any segment.
    let h = Harness::default();
    established(&h);
    step(
        &h,
        &c2s(FIN | ACK, CSEQ, SSEQ),
        "est|trk",
        (Closing, Established),
        900,
    );
    step(
        &h,
        &s2c(ACK, SSEQ, CSEQ + 1),
        "est|rpl|trk",
        (FinWait2, Established),
        900,
    );
    step(
        &h,
        &s2c(FIN | ACK, SSEQ, CSEQ + 1),
        "est|rpl|trk",
        (FinWait2, Closing),
        45,
    );
    let id = h.entry(&c2s(ACK, CSEQ, SSEQ)).unwrap().id;
    step(
        &h,
        &c2s(SYN, CSEQ + 1, 0),
        "est|trk",
        (FinWait2, Closing),
        45,
    );
    assert_eq!(h.entry(&c2s(ACK, CSEQ, SSEQ)).unwrap().id, id);
    assert_eq!(h.tracker.stats().port_reuse, 0);
    assert_eq!(h.tracker.connection_count(), 1);
}

// === What cannot create ===

#[test]
fn syn_ack_never_creates_a_connection() {
    let h = Harness::default();
    let synack = s2c(SYN | ACK, SISN, CISN + 1);
    assert_eq!(h.state(&synack), "inv|trk");
    assert_eq!(h.state(&synack), "inv|trk");
    assert!(h.entry(&synack).is_none());
    assert!(h.dump().is_empty());
    assert_eq!(h.tracker.connection_count(), 0);
    let st = h.tracker.stats();
    assert_eq!(st.invalid_count(InvalidReason::CannotCreate), 2);
    assert_eq!(st.created, 0);
}

#[test]
fn invalid_flags_never_create_a_connection() {
    let h = Harness::default();
    for flags in [SYN | FIN, SYN | RST, FIN, 0, PSH, URG | FIN] {
        assert_eq!(
            h.state(&c2s(flags, CISN, 0)),
            "inv|trk",
            "flags {flags:#04x}"
        );
    }
    assert_eq!(h.tracker.connection_count(), 0);
    assert_eq!(h.tracker.stats().invalid_count(InvalidReason::TcpFlags), 6);
}
