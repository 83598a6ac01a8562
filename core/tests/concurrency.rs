//! Several packet threads on overlapping flows in several zones, while another thread sweeps
//! and flushes. Afterwards the counts must agree with what is reachable, zone-limit accounting
//! must agree with the zones' contents, and once the tracker is dropped every connection ever
//! allocated must have been freed.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use common::*;
use ctrack_core::{
    Config, ConnEntry, CtState, Filter, Frame, ProcessOptions, ProtoClass, Tick, Tracker,
    TupleFilter, proto,
};

const ZONES: u16 = 4;
const FLOWS: u16 = 64;
const THREADS: usize = 3;
const ITERATIONS: u64 = 20_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One packet of flow `f` (UDP, ICMP echo or a TCP handshake step), in either direction.
fn packet(f: u16, step: u64, reply: bool) -> Pkt {
    let (a, b) = ("10.9.0.1", "10.9.0.2");
    let (src, dst) = if reply { (b, a) } else { (a, b) };
    match f % 3 {
        0 => {
            let (sp, dp) = if reply {
                (53, 1000 + f)
            } else {
                (1000 + f, 53)
            };
            udp(src, sp, dst, dp)
        }
        1 => icmp(src, dst, if reply { 0 } else { 8 }, 0, f, step as u16),
        _ => {
            let (sp, dp) = if reply {
                (80, 2000 + f)
            } else {
                (2000 + f, 80)
            };
            match (step % 3, reply) {
                (0, false) => tcp(src, sp, dst, dp, SYN, 100, 0),
                (1, true) => tcp(src, sp, dst, dp, SYN | ACK, 500, 101),
                (_, false) => tcp(src, sp, dst, dp, ACK, 101, 501),
                (_, true) => tcp(src, sp, dst, dp, ACK, 501, 101),
            }
        }
    }
}

fn run_workload(tracker: &Tracker) -> Tick {
    let running = AtomicUsize::new(THREADS);
    let progress = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (running, progress) = (&running, &progress);
            s.spawn(move || {
                let mut rng = Rng(0x9e37_79b9 + t as u64 * 7919);
                let opts = ProcessOptions::default();
                let mut frames = Vec::with_capacity(8);
                for i in 0..ITERATIONS {
                    // The clock advances 50 ms per iteration: a run spans 300 s, so UDP and
                    // ICMP flows (60 s, 30 s) and half-open TCP ones expire along the way.
                    let now = Tick::from_millis(i * 50);
                    progress.fetch_max(i, Ordering::Relaxed);
                    frames.clear();
                    for _ in 0..8 {
                        let f = rng.below(u64::from(FLOWS)) as u16;
                        let zone = rng.below(u64::from(ZONES)) as u16;
                        // Flows go quiet for a while (so that they expire), by flow and time.
                        if (i / 1000 + u64::from(f)) % 4 == 0 {
                            continue;
                        }
                        frames.push((packet(f, i, rng.below(2) == 0).frame(), zone));
                    }
                    let batch: Vec<(Frame<'_>, u16)> = frames
                        .iter()
                        .map(|(f, z)| (Frame::Ethernet(f), *z))
                        .collect();
                    let mut out = [CtState::EMPTY; 8];
                    tracker.process_batch(&batch, &opts, now, &mut out);
                    assert!(out[..batch.len()].iter().all(|s| s.contains(CtState::TRK)));
                }
                running.fetch_sub(1, Ordering::Relaxed);
            });
        }
        s.spawn(|| {
            let mut rng = Rng(42);
            while running.load(Ordering::Relaxed) > 0 {
                let now = Tick::from_millis(progress.load(Ordering::Relaxed) * 50);
                match rng.below(40) {
                    0..=19 => {
                        let _ = tracker.sweep(now);
                    }
                    20 => {
                        tracker.flush_zone(rng.below(u64::from(ZONES)) as u16, now);
                    }
                    21..=26 => {
                        let f = rng.below(u64::from(FLOWS)) as u16;
                        let zone = rng.below(u64::from(ZONES)) as u16;
                        let _ =
                            tracker.flush_tuple(&packet(f, 0, rng.below(2) == 0).key(zone), now);
                    }
                    27..=29 => {
                        let sport = 1000 + rng.below(u64::from(FLOWS)) as u16;
                        let filter = Filter {
                            proto: Some(proto::UDP),
                            orig: TupleFilter {
                                sport: Some(sport),
                                ..TupleFilter::default()
                            },
                            ..Filter::default()
                        };
                        tracker.flush_filter(&filter, now);
                    }
                    _ => {
                        let _ = tracker.dump_all(&Filter::default(), now);
                    }
                }
                std::thread::yield_now();
            }
        });
    });
    Tick::from_millis(ITERATIONS * 50)
}

#[test]
fn counts_reachability_and_reclamation_under_concurrency() {
    let tracker = Tracker::new(Config::default());
    tracker.set_zone_limit(1, 0); // an explicit (unlimited) limit: its count must track zone 1
    tracker.set_default_zone_limit(0);
    let freed = tracker.freed_counter();
    let end = run_workload(&tracker);

    // Remove every connection that is expired at the end, so what is counted is reachable.
    loop {
        let report = tracker.sweep(end);
        if !report.partial {
            break;
        }
    }
    let entries: Vec<ConnEntry> = tracker.dump_all(&Filter::default(), end);
    let stats = tracker.stats();
    assert!(
        stats.created > 100,
        "the workload created {} connections",
        stats.created
    );
    assert!(
        stats.flushed > 0 && stats.expired > 0,
        "flushes and expiry both happened: {stats:?}"
    );
    assert_eq!(
        stats.connections,
        entries.len() as u64,
        "count equals entries reachable"
    );
    for zone in 0..ZONES {
        let in_zone = entries.iter().filter(|e| e.key.zone == zone).count() as u64;
        assert_eq!(stats.zone_count(zone), in_zone, "zone {zone} count");
        let info = tracker.zone_limit(zone);
        assert_eq!(
            u64::from(info.connections),
            in_zone,
            "zone {zone} table count"
        );
        assert_eq!(
            u64::from(info.count),
            in_zone,
            "zone {zone} limit accounting"
        );
    }
    for class in ProtoClass::ALL {
        let n = entries
            .iter()
            .filter(|e| e.key.proto_class() == class)
            .count() as u64;
        assert_eq!(stats.proto_count(class), n, "{class:?} count");
    }
    // No entry is reachable twice.
    let mut ids: Vec<u64> = entries.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), entries.len());

    let allocated = stats.allocated;
    drop(tracker);
    // Connections removed before the drop are freed by the epoch collector: help it along.
    for _ in 0..10_000 {
        if freed.load(Ordering::Relaxed) == allocated {
            break;
        }
        crossbeam_epoch::pin().flush();
        std::thread::yield_now();
    }
    assert_eq!(
        freed.load(Ordering::Relaxed),
        allocated,
        "every connection allocated was freed"
    );
}
