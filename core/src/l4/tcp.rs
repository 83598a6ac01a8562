//! TCP tracking: OpenBSD pf's window tracking as OVS `conntrack-tcp.c` applies it.
//!
//! The algorithm is Guido van Rooij's "Real Stateful TCP Packet Filtering in IP Filter"
//! (2000), in pf's form (`pf.c` 1.634, via OVS). Each direction keeps `seqlo` (highest
//! sequence sent), `seqhi` (highest sequence the other side allowed: its ack plus window),
//! `max_win` (largest window advertised, unscaled) and the window-scale option. A segment is
//! in the window when its last byte is below `seqhi`, its first byte is no more than one window
//! behind `seqlo`, and its ack is neither far behind nor far ahead of what the peer sent.
//! Connections picked up mid-stream (first packet not a SYN) do not know the scale factors and
//! assume the largest (`WSCALE_UNKNOWN`). With sequence checking off, only the window tests are
//! skipped, never the flag checks. This file is written from the algorithm's description and
//! OVS's behaviour; it contains no code of either project.

use super::{Outcome, Update};
use crate::packet::{TcpSegment, WSCALE_FLAG, WSCALE_MASK, WSCALE_UNKNOWN, tcp_flags as f};
use crate::policy::TimeoutAttr;
use crate::verdict::InvalidReason;

/// pf's `MAXACKWINDOW`: the largest window plus a fudge factor of 1500 bytes.
const MAX_ACK_WINDOW: i64 = 0xffff + 1500;
const TCP_MAX_WSCALE: u8 = 14;

/// The TCP state of one peer, in OVS/pf's order (comparisons rely on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// Nothing seen (or reset for port reuse).
    Closed = 0,
    /// Unused by the tracker; kept for the numbering.
    Listen = 1,
    /// This peer has sent its first segment.
    SynSent = 2,
    /// Unused by the tracker; kept for the numbering.
    SynRecv = 3,
    /// The other peer acknowledged this one.
    Established = 4,
    /// Unused by the tracker; kept for the numbering.
    CloseWait = 5,
    /// Unused by the tracker; kept for the numbering.
    FinWait1 = 6,
    /// This peer sent a FIN.
    Closing = 7,
    /// Unused by the tracker; kept for the numbering.
    LastAck = 8,
    /// This peer's FIN was acknowledged.
    FinWait2 = 9,
    /// A reset was seen.
    TimeWait = 10,
}

impl TcpState {
    /// The upper-case name OVS prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "CLOSED",
            Self::Listen => "LISTEN",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::Established => "ESTABLISHED",
            Self::CloseWait => "CLOSE_WAIT",
            Self::FinWait1 => "FIN_WAIT_1",
            Self::Closing => "CLOSING",
            Self::LastAck => "LAST_ACK",
            Self::FinWait2 => "FIN_WAIT_2",
            Self::TimeWait => "TIME_WAIT",
        }
    }
}

/// One peer of a TCP connection, as shown in dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPeerInfo {
    /// The peer's state.
    pub state: TcpState,
    /// The window scale factor seen in its SYN (0 if none).
    pub wscale: u8,
    /// The SYN carried a window-scale option (`WINDOW_SCALE` flag in dumps).
    pub window_scale: bool,
    /// Picked up without its SYN: windows are tracked liberally (`BE_LIBERAL` in dumps).
    pub liberal: bool,
}

#[derive(Clone, Copy, Debug)]
struct Peer {
    seqlo: u32,
    seqhi: u32,
    max_win: u16,
    wscale: u8,
    state: TcpState,
}

impl Peer {
    fn info(&self) -> TcpPeerInfo {
        TcpPeerInfo {
            state: self.state,
            wscale: self.wscale & WSCALE_MASK,
            window_scale: self.wscale & WSCALE_FLAG != 0,
            liberal: self.wscale & WSCALE_UNKNOWN != 0,
        }
    }
}

/// The two peers of a TCP connection: `[originator, responder]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpConn {
    peers: [Peer; 2],
}

/// Sequence-space comparison `a >= b` (modulo 2^32).
fn seq_geq(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) as i32 >= 0
}

/// Sequence-space comparison `a > b` (modulo 2^32).
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Flag combinations no legitimate segment carries.
fn invalid_flags(flags: u16) -> bool {
    if flags & f::SYN != 0 {
        if flags & (f::RST | f::FIN) != 0 {
            return true;
        }
    } else if flags & (f::ACK | f::RST) == 0 {
        return true;
    }
    flags & f::ACK == 0 && flags & (f::FIN | f::PSH | f::URG) != 0
}

/// Whether a segment with these flags may open a connection.
pub(super) fn valid_new(flags: u16) -> Result<(), InvalidReason> {
    if invalid_flags(flags) {
        return Err(InvalidReason::TcpFlags);
    }
    // A SYN|ACK must not open a half-seen handshake.
    if flags & f::SYN != 0 && flags & f::ACK != 0 {
        return Err(InvalidReason::CannotCreate);
    }
    Ok(())
}

impl TcpConn {
    /// The state after the segment that creates the connection.
    pub(crate) fn new(seg: &TcpSegment) -> Self {
        let closed = Peer {
            seqlo: 0,
            seqhi: 1,
            max_win: 1,
            wscale: 0,
            state: TcpState::Closed,
        };
        let mut src = Peer {
            state: TcpState::SynSent,
            ..closed
        };
        let mut dst = closed;
        src.seqlo = seg.seq;
        src.seqhi = seg.seq.wrapping_add(seg.payload_len).wrapping_add(1);
        if seg.flags & f::SYN != 0 {
            src.seqhi = src.seqhi.wrapping_add(1);
            src.wscale = seg.wscale;
        } else {
            src.wscale = WSCALE_UNKNOWN;
            dst.wscale = WSCALE_UNKNOWN;
        }
        src.max_win = seg.window.max(1);
        if src.wscale & WSCALE_MASK != 0 {
            src.max_win = div_round_up(src.max_win, src.wscale & WSCALE_MASK);
        }
        if seg.flags & f::FIN != 0 {
            src.seqhi = src.seqhi.wrapping_add(1);
        }
        Self { peers: [src, dst] }
    }

    /// Both peers, originator first.
    pub(crate) fn info(&self) -> [TcpPeerInfo; 2] {
        [self.peers[0].info(), self.peers[1].info()]
    }

    /// Whether both peers are at least FIN_WAIT_2 (the connection is fully closed).
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.peers.iter().all(|p| p.state >= TcpState::FinWait2)
    }

    pub(crate) fn on_packet(&mut self, seg: &TcpSegment, reply: bool, seq_check: bool) -> Outcome {
        let flags = seg.flags;
        let invalid = |r| Outcome {
            update: Update::Invalid(r),
            timeout: None,
            seq_check_bypassed: false,
        };
        if invalid_flags(flags) {
            return invalid(InvalidReason::TcpFlags);
        }
        let (si, di) = if reply { (1, 0) } else { (0, 1) };
        let [mut src, mut dst] = [self.peers[si], self.peers[di]];

        if flags & (f::SYN | f::ACK) == f::SYN {
            if src.state >= TcpState::FinWait2 && dst.state >= TcpState::FinWait2 {
                // A new SYN on a fully closed connection: port reuse.
                self.peers[si].state = TcpState::Closed;
                self.peers[di].state = TcpState::Closed;
                return Outcome {
                    update: Update::Restart,
                    timeout: None,
                    seq_check_bypassed: false,
                };
            }
            if src.state <= TcpState::SynSent {
                // A retransmitted SYN: still a new connection.
                self.peers[si].state = TcpState::SynSent;
                return Outcome::refresh(Update::ValidNew, TimeoutAttr::TcpSynSent);
            }
        }

        let syn = flags & f::SYN != 0;
        let (mut sws, mut dws) = (0u8, 0u8);
        if src.wscale & WSCALE_FLAG != 0 && dst.wscale & WSCALE_FLAG != 0 && !syn {
            sws = src.wscale & WSCALE_MASK;
            dws = dst.wscale & WSCALE_MASK;
        } else if src.wscale & WSCALE_UNKNOWN != 0 && dst.wscale & WSCALE_UNKNOWN != 0 && !syn {
            sws = TCP_MAX_WSCALE;
            dws = TCP_MAX_WSCALE;
        }

        let mut win = seg.window;
        let orig_seq = seg.seq;
        let mut seq = seg.seq;
        let mut ack = seg.ack;
        let mut end = seq.wrapping_add(seg.payload_len);
        let mut check_ackskew = true;
        if src.state < TcpState::SynSent {
            // The first segment from this peer.
            if syn {
                end = end.wrapping_add(1);
                if dst.wscale & WSCALE_FLAG != 0 {
                    src.wscale = seg.wscale;
                    if src.wscale & WSCALE_FLAG != 0 {
                        sws = src.wscale & WSCALE_MASK;
                        win = div_round_up(win, sws);
                        dws = dst.wscale & WSCALE_MASK;
                    } else {
                        // The peer offered scaling but this side did not: undo it.
                        dst.max_win =
                            ((u32::from(dst.max_win)) << (dst.wscale & WSCALE_MASK)) as u16;
                        dst.wscale = 0;
                    }
                }
            }
            if flags & f::FIN != 0 {
                end = end.wrapping_add(1);
            }
            src.seqlo = seq;
            src.state = TcpState::SynSent;
            let reach = end.wrapping_add(scaled(dst.max_win, dws).max(1));
            if src.seqhi == 1 || seq_geq(reach, src.seqhi) {
                src.seqhi = reach;
                // Picking up a new or already running connection: be lenient with the ack.
                check_ackskew = false;
            }
            if win > src.max_win {
                src.max_win = win;
            }
        } else {
            if syn {
                end = end.wrapping_add(1);
            }
            if flags & f::FIN != 0 {
                end = end.wrapping_add(1);
            }
        }

        if flags & f::ACK == 0 || (ack == 0 && flags & (f::ACK | f::RST) == f::ACK | f::RST) {
            // No ack to check (or a stack that sends RST|ACK with ack 0).
            ack = dst.seqlo;
        }
        if seq == end {
            // No data: nothing to place in the window.
            seq = src.seqlo;
            end = seq;
        }

        let ackskew: i64 = if check_ackskew {
            i64::from(dst.seqlo.wrapping_sub(ack) as i32)
        } else {
            0
        };
        let in_window = seq_geq(src.seqhi, end)
            && seq_geq(seq, src.seqlo.wrapping_sub(scaled(dst.max_win, dws)))
            && ackskew >= -MAX_ACK_WINDOW
            && ackskew <= (MAX_ACK_WINDOW << sws)
            && (flags & f::RST == 0
                || orig_seq == src.seqlo
                || orig_seq == src.seqlo.wrapping_add(1)
                || orig_seq.wrapping_add(1) == src.seqlo);
        let mut bypassed = false;
        let timeout;
        if in_window || !seq_check {
            bypassed = !in_window;
            slide(&mut src, &mut dst, win, sws, end, ack);
            if syn && src.state < TcpState::SynSent {
                src.state = TcpState::SynSent;
            }
            if flags & f::FIN != 0 && src.state < TcpState::Closing {
                src.state = TcpState::Closing;
            }
            if flags & f::ACK != 0 {
                if dst.state == TcpState::SynSent {
                    dst.state = TcpState::Established;
                } else if dst.state == TcpState::Closing {
                    dst.state = TcpState::FinWait2;
                }
            }
            if flags & f::RST != 0 {
                src.state = TcpState::TimeWait;
                dst.state = TcpState::TimeWait;
            }
            timeout = Some(
                if src.state >= TcpState::FinWait2 && dst.state >= TcpState::FinWait2 {
                    TimeoutAttr::TcpClose
                } else if src.state >= TcpState::Closing && dst.state >= TcpState::Closing {
                    TimeoutAttr::TcpTimeWait
                } else if src.state < TcpState::Established || dst.state < TcpState::Established {
                    TimeoutAttr::TcpSynRecv
                } else if src.state >= TcpState::Closing || dst.state >= TcpState::Closing {
                    TimeoutAttr::TcpFinWait
                } else {
                    TimeoutAttr::TcpEstablished
                },
            );
        } else if (dst.state < TcpState::SynSent
            || dst.state >= TcpState::FinWait2
            || src.state >= TcpState::FinWait2)
            && seq_geq(src.seqhi.wrapping_add(MAX_ACK_WINDOW as u32), end)
            && seq_geq(seq, src.seqlo.wrapping_sub(MAX_ACK_WINDOW as u32))
        {
            // Shotgunned SYNs, a stream picked up after a restart, or stray segments right
            // after a close: accept loosely, without refreshing the timeout (a flood must not
            // keep the connection alive).
            slide(&mut src, &mut dst, win, sws, end, ack);
            if flags & f::FIN != 0 && src.state < TcpState::Closing {
                src.state = TcpState::Closing;
            }
            if flags & f::RST != 0 {
                src.state = TcpState::TimeWait;
                dst.state = TcpState::TimeWait;
            }
            timeout = None;
        } else {
            // What the first-segment branch learnt above stays, as in pf.
            self.peers[si] = src;
            self.peers[di] = dst;
            return invalid(InvalidReason::TcpWindow);
        }
        self.peers[si] = src;
        self.peers[di] = dst;
        Outcome {
            update: Update::Valid,
            timeout,
            seq_check_bypassed: bypassed,
        }
    }
}

/// Records an accepted segment: window, highest sequence sent, and how far the peer may send.
fn slide(src: &mut Peer, dst: &mut Peer, win: u16, sws: u8, end: u32, ack: u32) {
    if src.max_win < win {
        src.max_win = win;
    }
    if seq_gt(end, src.seqlo) {
        src.seqlo = end;
    }
    let window = scaled(win, sws);
    if seq_geq(ack.wrapping_add(window), dst.seqhi) {
        dst.seqhi = ack.wrapping_add(window.max(1));
    }
}

/// `win << shift` as pf computes it (fits: 16 + 14 bits).
fn scaled(win: u16, shift: u8) -> u32 {
    u32::from(win) << shift.min(TCP_MAX_WSCALE)
}

/// `ceil(win / 2^shift)`.
fn div_round_up(win: u16, shift: u8) -> u16 {
    let d = 1u32 << shift.min(TCP_MAX_WSCALE);
    (u32::from(win).div_ceil(d)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u16, seq: u32, ack: u32, len: u32) -> TcpSegment {
        TcpSegment {
            flags,
            seq,
            ack,
            window: 65535,
            payload_len: len,
            wscale: 0,
        }
    }

    #[test]
    fn flag_sanity() {
        assert!(invalid_flags(f::SYN | f::RST));
        assert!(invalid_flags(f::SYN | f::FIN));
        assert!(invalid_flags(0));
        assert!(invalid_flags(f::FIN));
        assert!(invalid_flags(f::PSH | f::RST));
        assert!(!invalid_flags(f::RST));
        assert!(!invalid_flags(f::ACK | f::FIN));
        assert!(valid_new(f::SYN | f::ACK).is_err());
        assert!(valid_new(f::ACK).is_ok());
    }

    #[test]
    fn handshake_data_and_close() {
        let mut c = TcpConn::new(&seg(f::SYN, 1000, 0, 0));
        let o = c.on_packet(&seg(f::SYN | f::ACK, 5000, 1001, 0), true, true);
        assert_eq!(o.update, Update::Valid);
        assert_eq!(o.timeout, Some(TimeoutAttr::TcpSynRecv));
        let o = c.on_packet(&seg(f::ACK, 1001, 5001, 0), false, true);
        assert_eq!(o.timeout, Some(TimeoutAttr::TcpEstablished));
        let o = c.on_packet(&seg(f::ACK | f::PSH, 1_001_001, 5001, 2), false, true);
        assert_eq!(o.update, Update::Invalid(InvalidReason::TcpWindow));
        let o = c.on_packet(&seg(f::ACK | f::PSH, 1_001_001, 5001, 2), false, false);
        assert_eq!(o.update, Update::Valid);
        assert!(o.seq_check_bypassed);
    }

    #[test]
    fn syn_on_closed_connection_restarts() {
        let mut c = TcpConn::new(&seg(f::SYN, 1000, 0, 0));
        c.on_packet(&seg(f::SYN | f::ACK, 5000, 1001, 0), true, true);
        c.on_packet(&seg(f::ACK, 1001, 5001, 0), false, true);
        c.on_packet(&seg(f::ACK | f::FIN, 1001, 5001, 0), false, true);
        c.on_packet(&seg(f::ACK | f::FIN, 5001, 1002, 0), true, true);
        let o = c.on_packet(&seg(f::ACK, 1002, 5002, 0), false, true);
        assert_eq!(o.timeout, Some(TimeoutAttr::TcpClose));
        assert!(c.is_closed());
        let o = c.on_packet(&seg(f::SYN, 90_000, 0, 0), false, true);
        assert_eq!(o.update, Update::Restart);
    }
}
