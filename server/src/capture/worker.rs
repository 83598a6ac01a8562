//! One capture worker: opens its socket (with backoff while that fails), reads frames into a
//! reused arena, tracks them a batch at a time, and keeps its counters.
//!
//! Nothing here allocates per packet: the arena, the frame table and the verdict buffer are
//! allocated once per worker and reused for every batch.

use std::io;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use ctrack_core::{CtState, Frame, ProcessOptions, Tick, Tracker};
use tracing::{debug, info_span, warn};

use super::sys::{PacketSocket, SocketOptions};
use super::{Control, Interface, InterfaceSpec, WorkerCounters, fanout_group};

/// First delay before reopening a socket.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest delay before reopening a socket; a socket that stayed open this long starts the
/// backoff over.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the kernel's socket statistics are read.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Least time between two "kernel dropped frames" warnings of one worker.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(60);
/// Upper bound of a worker's arena: batches of large frames are cut earlier than `batch`.
const MAX_ARENA_BYTES: usize = 16 << 20;

/// Worker settings derived from the capture configuration.
#[derive(Clone, Copy, Debug)]
pub(super) struct Settings {
    pub(super) batch: usize,
    pub(super) snaplen: usize,
    pub(super) opts: ProcessOptions,
    pub(super) rcvbuf_bytes: usize,
    pub(super) read_timeout: Duration,
}

/// One worker of one interface.
#[derive(Debug)]
pub(super) struct Worker {
    iface: Arc<Interface>,
    index: usize,
    tracker: Arc<Tracker>,
    control: Arc<Control>,
    settings: Settings,
}

impl Worker {
    pub(super) fn new(
        iface: Arc<Interface>,
        index: usize,
        tracker: Arc<Tracker>,
        control: Arc<Control>,
        settings: Settings,
    ) -> Self {
        Self {
            iface,
            index,
            tracker,
            control,
            settings,
        }
    }

    /// Opens the socket and records the outcome in the interface's health.
    pub(super) fn open_and_report(&self) -> Option<PacketSocket> {
        match self.open() {
            Ok(socket) => {
                self.counters()
                    .rcvbuf_bytes
                    .store(socket.rcvbuf().kernel_bytes, Ordering::Relaxed);
                self.control.report_rcvbuf(socket.rcvbuf());
                self.iface.worker_up(self.index, self.control.clock.now());
                Some(socket)
            }
            Err(e) => {
                self.iface.open_failed(self.index, &e);
                None
            }
        }
    }

    /// The thread's body: capture until stopped, reopening the socket whenever it fails.
    /// `socket` is the one `Capture::start` opened, if it could.
    pub(super) fn run(self, mut socket: Option<PacketSocket>) {
        let _span =
            info_span!("capture", interface = %self.iface.spec.name, worker = self.index).entered();
        let mut buffers = Buffers::new(&self.settings);
        let mut backoff = Backoff::new();
        if socket.is_none() {
            self.sleep(backoff.next_delay());
        }
        while !self.control.stopped() {
            let Some(mut sock) = socket.take().or_else(|| self.open_and_report()) else {
                self.sleep(backoff.next_delay());
                continue;
            };
            let opened = self.control.clock.now();
            let session = Session {
                worker: &self,
                ended: false,
            };
            let outcome = self.receive(&mut sock, &mut buffers);
            self.account_kernel_stats(&sock, &mut None);
            drop(sock);
            let now = self.control.clock.now();
            session.end(outcome.as_ref().err(), now);
            if outcome.is_ok() {
                break;
            }
            if now.saturating_since(opened) >= MAX_BACKOFF {
                backoff.reset();
            }
            self.sleep(backoff.next_delay());
        }
    }

    fn open(&self) -> io::Result<PacketSocket> {
        let name = &self.iface.spec.name;
        let Some(nic) = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| &i.name == name)
        else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such interface"));
        };
        if !nic.is_up() {
            return Err(io::Error::new(
                io::ErrorKind::NetworkDown,
                "interface is down",
            ));
        }
        let opts = SocketOptions {
            rcvbuf_bytes: self.settings.rcvbuf_bytes,
            fanout_group: fanout_group(self.control.fanout_salt, nic.index),
            read_timeout: self.settings.read_timeout,
        };
        PacketSocket::open(&nic, &opts)
    }

    /// Reads and tracks frames until stopped (`Ok`) or the socket fails (`Err`).
    fn receive(&self, sock: &mut PacketSocket, b: &mut Buffers) -> io::Result<()> {
        let counters = self.counters();
        let snaplen = self.settings.snaplen;
        let mut last_stats = self.control.clock.now();
        let mut last_drop_warning = None;
        loop {
            if self.control.stopped() {
                return Ok(());
            }
            b.slots.clear();
            let mut used = 0;
            let mut truncated = 0;
            let mut failure = None;
            while b.slots.len() < self.settings.batch && b.arena.len() - used >= snaplen {
                // Wait only for the first frame of a batch: a partial batch is tracked at once.
                match sock.recv(&mut b.arena[used..used + snaplen], b.slots.is_empty()) {
                    Ok(Some(r)) => {
                        let frame = &b.arena[used..used + r.len];
                        let zone = zone_of(&self.iface.spec, r.vlan, frame);
                        b.slots.push(Slot {
                            start: used,
                            len: r.len,
                            zone,
                        });
                        used += r.len;
                        truncated += u64::from(r.wire_len > r.len);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let now = self.control.clock.now();
            if !b.slots.is_empty() {
                let n = b.slots.len() as u64;
                counters.received.fetch_add(n, Ordering::Relaxed);
                if truncated > 0 {
                    counters.truncated.fetch_add(truncated, Ordering::Relaxed);
                }
                let invalid = self.track(b, now);
                counters.processed.fetch_add(n, Ordering::Relaxed);
                if invalid > 0 {
                    counters.invalid.fetch_add(invalid, Ordering::Relaxed);
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            if now.saturating_since(last_stats) >= STATS_INTERVAL {
                last_stats = now;
                self.account_kernel_stats(sock, &mut last_drop_warning);
            }
        }
    }

    /// One engine call for the batch in `b`; returns how many frames were invalid.
    fn track(&self, b: &mut Buffers, now: Tick) -> u64 {
        let mut frames = recycle(mem::take(&mut b.frames));
        frames.extend(
            b.slots
                .iter()
                .map(|s| (Frame::Ethernet(&b.arena[s.start..s.start + s.len]), s.zone)),
        );
        let states = &mut b.states[..frames.len()];
        self.tracker
            .process_batch(&frames, &self.settings.opts, now, states);
        b.frames = recycle(frames);
        states.iter().filter(|s| s.contains(CtState::INV)).count() as u64
    }

    /// Adds the kernel's counters (reset by the read) to ours; warns, at most once a minute,
    /// when frames were dropped.
    fn account_kernel_stats(&self, sock: &PacketSocket, last_warning: &mut Option<Tick>) {
        let stats = match sock.take_statistics() {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "cannot read PACKET_STATISTICS");
                return;
            }
        };
        let counters = self.counters();
        counters
            .kernel_packets
            .fetch_add(u64::from(stats.packets), Ordering::Relaxed);
        if stats.drops == 0 {
            return;
        }
        counters
            .kernel_drops
            .fetch_add(u64::from(stats.drops), Ordering::Relaxed);
        let now = self.control.clock.now();
        if last_warning.is_none_or(|t| now.saturating_since(t) >= DROP_WARNING_INTERVAL) {
            *last_warning = Some(now);
            warn!(
                dropped = stats.drops,
                of = stats.packets,
                "the kernel dropped captured frames (socket receive buffer full); raise \
                 rcvbuf_bytes or workers"
            );
        }
    }

    fn counters(&self) -> &WorkerCounters {
        &self.iface.counters[self.index]
    }

    /// Sleeps for `d`, or until capture stops.
    fn sleep(&self, d: Duration) {
        let clock = self.control.clock;
        let end = clock.now().saturating_add(d);
        while !self.control.stopped() {
            let left = end.saturating_since(clock.now());
            if left.is_zero() {
                break;
            }
            // `Capture::shutdown` unparks the thread.
            thread::park_timeout(left);
        }
    }
}

/// A socket's time in the interface's health: `end` reports how it ended; dropping it
/// without `end` (a panic while tracking) reports a failure, so the interface does not stay
/// "up" with a dead worker.
struct Session<'a> {
    worker: &'a Worker,
    ended: bool,
}

impl Session<'_> {
    fn end(mut self, err: Option<&io::Error>, now: Tick) {
        self.ended = true;
        self.worker.iface.worker_down(self.worker.index, err, now);
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let err = io::Error::other("capture worker panicked");
            let now = self.worker.control.clock.now();
            self.worker
                .iface
                .worker_down(self.worker.index, Some(&err), now);
        }
    }
}

/// Where one frame of the batch sits in the arena.
#[derive(Clone, Copy, Debug)]
struct Slot {
    start: usize,
    len: usize,
    zone: u16,
}

/// Per-worker buffers, allocated once.
struct Buffers {
    /// Frames of the current batch, back to back.
    arena: Vec<u8>,
    slots: Vec<Slot>,
    /// The engine's input; empty between batches, kept for its allocation.
    frames: Vec<(Frame<'static>, u16)>,
    states: Vec<CtState>,
}

impl Buffers {
    fn new(s: &Settings) -> Self {
        let arena = s
            .batch
            .saturating_mul(s.snaplen)
            .min(MAX_ARENA_BYTES)
            .max(s.snaplen);
        Self {
            arena: vec![0; arena],
            slots: Vec::with_capacity(s.batch),
            frames: Vec::with_capacity(s.batch),
            states: vec![CtState::EMPTY; s.batch],
        }
    }
}

/// Empties `v` and hands its allocation over with another lifetime, so the frame table is not
/// reallocated per batch (std collects a vector's `into_iter().map()` in place when the element
/// layouts match, as they do here: only the lifetime differs).
fn recycle<'b>(mut v: Vec<(Frame<'_>, u16)>) -> Vec<(Frame<'b>, u16)> {
    v.clear();
    v.into_iter()
        .map(|_| -> (Frame<'b>, u16) { unreachable!("the vector is empty") })
        .collect()
}

/// The zone of a frame: the zone of its outer VLAN (the one the kernel stripped, else a tag
/// still in the frame) when `vlan_zones` lists it, else the interface's zone.
fn zone_of(spec: &InterfaceSpec, stripped_vlan: Option<u16>, frame: &[u8]) -> u16 {
    if spec.vlan_zones.is_empty() {
        return spec.zone;
    }
    stripped_vlan
        .or_else(|| inline_vlan(frame))
        .and_then(|vlan| spec.vlan_zones.get(&vlan).copied())
        .unwrap_or(spec.zone)
}

/// The VLAN id of an 802.1Q or 802.1ad tag right after the MAC addresses.
fn inline_vlan(frame: &[u8]) -> Option<u16> {
    let tpid = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    if tpid != 0x8100 && tpid != 0x88a8 {
        return None;
    }
    let tci = u16::from_be_bytes(frame.get(14..16)?.try_into().ok()?);
    Some(tci & 0x0fff)
}

/// Reopen delays: 1 s doubling to 30 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: INITIAL_BACKOFF,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(MAX_BACKOFF);
        delay
    }

    fn reset(&mut self) {
        self.next = INITIAL_BACKOFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    fn spec() -> InterfaceSpec {
        let mut s = InterfaceSpec::new("eth0", 5);
        s.vlan_zones.insert(100, 42);
        s.vlan_zones.insert(7, 43);
        s
    }

    fn tagged(tpid: u16, vlan: u16) -> Vec<u8> {
        let mut f = vec![0xff; 12];
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(0x2000 | vlan).to_be_bytes());
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f
    }

    #[test]
    fn zone_comes_from_the_outer_vlan() {
        let s = spec();
        let untagged = [0u8; 14];
        assert_eq!(zone_of(&s, None, &untagged), 5);
        // Stripped by the kernel (the frame itself is untagged, or carries the inner tag).
        assert_eq!(zone_of(&s, Some(100), &untagged), 42);
        assert_eq!(zone_of(&s, Some(7), &tagged(0x8100, 100)), 43);
        assert_eq!(zone_of(&s, Some(8), &untagged), 5);
        // Still in the frame.
        assert_eq!(zone_of(&s, None, &tagged(0x8100, 100)), 42);
        assert_eq!(zone_of(&s, None, &tagged(0x88a8, 7)), 43);
        assert_eq!(zone_of(&s, None, &tagged(0x8100, 9)), 5);
        assert_eq!(zone_of(&s, None, &[0u8; 13]), 5);
        // No map: always the interface's zone.
        assert_eq!(
            zone_of(&InterfaceSpec::new("x", 3), Some(100), &untagged),
            3
        );
    }

    #[test]
    fn recycling_keeps_the_allocation() {
        let data = [1u8, 2, 3];
        let mut v: Vec<(Frame<'_>, u16)> = Vec::with_capacity(32);
        let ptr = v.as_ptr() as usize;
        v.push((Frame::Ethernet(&data), 1));
        let v: Vec<(Frame<'static>, u16)> = recycle(v);
        assert!(v.is_empty());
        assert_eq!(v.capacity(), 32);
        assert_eq!(v.as_ptr() as usize, ptr);
    }

    #[test]
    fn arena_is_bounded() {
        let s = |batch, snaplen| Settings {
            batch,
            snaplen,
            opts: ProcessOptions::default(),
            rcvbuf_bytes: 0,
            read_timeout: Duration::from_millis(1),
        };
        assert_eq!(Buffers::new(&s(32, 65_536)).arena.len(), 32 * 65_536);
        assert_eq!(
            Buffers::new(&s(65_536, 65_536)).arena.len(),
            MAX_ARENA_BYTES
        );
        assert_eq!(Buffers::new(&s(1, 262_144)).arena.len(), 262_144);
    }
}
