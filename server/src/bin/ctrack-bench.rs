//! `ctrack-bench`: the workloads of Open vSwitch's `ovstest test-conntrack benchmark` and
//! `benchmark-zones`, with the same arguments and output that reads the same way, run
//! against `ctrack-core`.
//!
//! * `benchmark N_THREADS N_PKTS BATCH`: every thread tracks `N_PKTS` copies of one 42-byte
//!   UDP frame (10.1.1.1:1+thread -> 10.1.1.2:2, zone 0, commit) in batches of `BATCH`.
//! * `benchmark-zones N_CONNS N_ZONES ITERATIONS`: fills `N_ZONES` zones with `N_CONNS`
//!   UDP connections each, then per iteration flushes zone 1, commits `N_CONNS` connections
//!   into it again, looks them up without commit and flushes a zone never used (65535).
//!
//! Frames are built before any clock starts; the timed loops do not allocate.

use std::process::ExitCode;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use ctrack_core::{Config, CtState, Frame, ProcessOptions, Tick, Tracker};

/// OVS's `NETDEV_MAX_BURST`, the largest batch `benchmark` accepts.
const MAX_BURST: usize = 32;

/// The frame of OVS's test-conntrack.c: Ethernet + IPv4 + UDP, 42 bytes, UDP checksum 0,
/// 10.1.1.1:1 -> 10.1.1.2:2.
const BASE_FRAME: [u8; FRAME_LEN] = [
    0x50, 0x54, 0x00, 0x00, 0x00, 0x0a, 0x50, 0x54, 0x00, 0x00, 0x00, 0x09, 0x08, 0x00, // eth
    0x45, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0xa4, 0xcd, // ipv4
    0x0a, 0x01, 0x01, 0x01, 0x0a, 0x01, 0x01, 0x02, // addresses
    0x00, 0x01, 0x00, 0x02, 0x00, 0x08, 0x00, 0x00, // udp
];
const FRAME_LEN: usize = 42;
const UDP_SRC: usize = 34;
const UDP_DST: usize = 36;

/// The zone `benchmark-zones` flushes while empty (OVS: `UINT16_MAX`).
const EMPTY_ZONE: u16 = u16::MAX;
/// The zone `benchmark-zones` flushes and refills (OVS: 1).
const WORK_ZONE: u16 = 1;

/// ctrack's counterpart of `ovstest test-conntrack benchmark` / `benchmark-zones`.
#[derive(Debug, Parser)]
#[command(name = "ctrack-bench", version)]
struct Cli {
    /// Verify IPv4 and UDP checksums (OVS's benchmarks do not; the frames' are valid).
    #[arg(long, global = true)]
    verify_checksums: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One UDP connection per thread, the same frame tracked N_PKTS times in batches.
    Benchmark {
        /// Packet threads (each with its own connection).
        n_threads: usize,
        /// Packets per thread.
        n_pkts: u64,
        /// Packets per `process_batch` call (1 to 32).
        batch: usize,
    },
    /// Zone flush, commit and lookup costs with N_ZONES zones of N_CONNS connections.
    BenchmarkZones {
        /// Connections per zone.
        n_conns: u32,
        /// Zones filled before the iterations (1 to 65534).
        n_zones: u16,
        /// Iterations (flush full zone, commit, lookup, flush empty zone).
        iterations: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = ProcessOptions {
        commit: true,
        force: false,
        verify_checksums: cli.verify_checksums,
    };
    let result = match cli.command {
        Command::Benchmark {
            n_threads,
            n_pkts,
            batch,
        } => benchmark(n_threads, n_pkts, batch, &opts),
        Command::BenchmarkZones {
            n_conns,
            n_zones,
            iterations,
        } => benchmark_zones(n_conns, n_zones, iterations, &opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ctrack-bench: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// A tracker as OVS's `conntrack_init()` builds one for these tests: no global limit in the
/// way (OVS's default is 3,000,000; `benchmark-zones 1000000 2` stays below it anyway).
fn tracker() -> Tracker {
    Tracker::new(Config {
        max_conns: 0,
        ..Config::default()
    })
}

fn udp_frame(src: u16, dst: u16) -> [u8; FRAME_LEN] {
    let mut f = BASE_FRAME;
    f[UDP_SRC..UDP_SRC + 2].copy_from_slice(&src.to_be_bytes());
    f[UDP_DST..UDP_DST + 2].copy_from_slice(&dst.to_be_bytes());
    f
}

fn check(state: CtState, what: &str) -> Result<(), String> {
    if state.contains(CtState::INV) || !state.contains(CtState::TRK) {
        return Err(format!("{what}: unexpected ct_state {state:?}"));
    }
    Ok(())
}

// === benchmark ===

fn benchmark(
    n_threads: usize,
    n_pkts: u64,
    batch: usize,
    opts: &ProcessOptions,
) -> Result<(), String> {
    if n_threads == 0 {
        return Err("n_threads must be at least one".into());
    }
    if batch == 0 || batch > MAX_BURST {
        return Err(format!("batch_size must be between 1 and {MAX_BURST}"));
    }
    let tid_limit = usize::from(u16::MAX);
    if n_threads >= tid_limit {
        return Err(format!("n_threads must be below {tid_limit}"));
    }
    let ct = tracker();
    let now = Tick::from_millis(1);
    // Every thread plus the timer meet twice: before and after the work (OVS's barrier).
    let barrier = Barrier::new(n_threads + 1);
    let elapsed = std::thread::scope(|s| {
        let workers: Vec<_> = (0..n_threads)
            .map(|tid| {
                let (ct, barrier) = (&ct, &barrier);
                s.spawn(move || bench_thread(ct, barrier, tid, n_pkts, batch, opts, now))
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        let elapsed = start.elapsed();
        let mut result = Ok(elapsed);
        for w in workers {
            if let Err(e) = w.join().unwrap_or_else(|_| Err("a thread panicked".into())) {
                result = Err(e);
            }
        }
        result
    })?;
    println!("conntrack:  {:5} ms", elapsed.as_millis());
    // Each thread runs OVS's loop: batches until at least N_PKTS packets are done.
    let batches = n_pkts.div_ceil(batch as u64);
    let per_thread = batches * batch as u64;
    let total = per_thread * n_threads as u64;
    let ns = elapsed.as_secs_f64() * 1e9;
    println!(
        "per packet: {:.1} ns per thread ({} packets per thread, batch {batch}, {n_threads} \
         thread(s)); {:.2} Mpps in all",
        ns / per_thread.max(1) as f64,
        per_thread,
        total as f64 / ns * 1e3,
    );
    println!("connections: {}", ct.connection_count());
    Ok(())
}

fn bench_thread(
    ct: &Tracker,
    barrier: &Barrier,
    tid: usize,
    n_pkts: u64,
    batch: usize,
    opts: &ProcessOptions,
    now: Tick,
) -> Result<(), String> {
    // `batch` separate copies of the frame, as OVS's batch holds separate packets.
    let src = u16::try_from(1 + tid).unwrap_or(u16::MAX);
    let frames: Vec<[u8; FRAME_LEN]> = vec![udp_frame(src, 2); batch];
    let packets: Vec<(Frame<'_>, u16)> = frames.iter().map(|f| (Frame::Ethernet(f), 0)).collect();
    let mut out = vec![CtState::EMPTY; batch];
    barrier.wait();
    let mut done = 0;
    while done < n_pkts {
        ct.process_batch(&packets, opts, now, &mut out);
        done += batch as u64;
    }
    barrier.wait();
    check(out[0], "benchmark")
}

// === benchmark-zones ===

/// Samples of one stopwatch, kept in nanoseconds and reported in microseconds (OVS's
/// `SW_US`, which truncates every sample to whole microseconds).
#[derive(Debug)]
struct Stopwatch {
    name: &'static str,
    samples: Vec<u64>,
    /// OVS's "long term average": an exponentially weighted mean with weight 0.01 for each
    /// new sample, seeded with the first (what OVS prints as "Avg").
    ewma: f64,
}

impl Stopwatch {
    fn new(name: &'static str, capacity: usize) -> Self {
        Self {
            name,
            samples: Vec::with_capacity(capacity),
            ewma: 0.0,
        }
    }

    fn add(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let us = ns as f64 / 1e3;
        self.ewma = if self.samples.is_empty() {
            us
        } else {
            0.01 * us + 0.99 * self.ewma
        };
        self.samples.push(ns);
    }

    fn stats(&self) -> Stats {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let n = sorted.len();
        if n == 0 {
            return Stats::default();
        }
        // Nearest rank (OVS estimates it with P-square; exact here).
        let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
        Stats {
            min: sorted[0] / 1000,
            max: sorted[n - 1] / 1000,
            p95: sorted[rank - 1] as f64 / 1e3,
            mean: sorted.iter().sum::<u64>() as f64 / n as f64 / 1e3,
            ewma: self.ewma,
        }
    }
}

/// One stopwatch's figures in microseconds (min and max truncated, as OVS prints them).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    min: u64,
    max: u64,
    p95: f64,
    mean: f64,
    ewma: f64,
}

/// The ports of connection `i`: every pair distinct and no port zero. (OVS derives them
/// from the high and low halves of `i`, mapping 0 to 65535, which repeats one pair in every
/// 65,536; here `i` maps one to one.)
fn zone_ports(i: u32) -> (u16, u16) {
    const SPAN: u32 = u16::MAX as u32;
    let src = i / SPAN + 1;
    let dst = i % SPAN + 1;
    (
        u16::try_from(src).unwrap_or(u16::MAX),
        u16::try_from(dst).unwrap_or(u16::MAX),
    )
}

fn benchmark_zones(
    n_conns: u32,
    n_zones: u16,
    iterations: u32,
    opts: &ProcessOptions,
) -> Result<(), String> {
    if n_conns == 0 || n_conns == u32::MAX {
        return Err("n_conns must be between 1 and 2^32".into());
    }
    if n_zones == 0 || n_zones == u16::MAX {
        return Err("n_zones must be between 1 and 2^16".into());
    }
    if iterations == 0 {
        return Err("iterations must be greater than 0".into());
    }
    let ct = tracker();
    let now = Tick::from_millis(1);
    let lookup_opts = ProcessOptions {
        commit: false,
        ..*opts
    };

    let start = Instant::now();
    let frames: Vec<[u8; FRAME_LEN]> = (0..n_conns)
        .map(|i| {
            let (src, dst) = zone_ports(i);
            udp_frame(src, dst)
        })
        .collect();
    println!(
        "initial packet generation time: {} ms",
        start.elapsed().as_millis()
    );

    let start = Instant::now();
    for zone in 0..n_zones {
        for f in &frames {
            ct.process(Frame::Ethernet(f), zone, opts, now);
        }
    }
    println!("initial insert time: {} ms", start.elapsed().as_millis());
    let expected = u64::from(n_conns) * u64::from(n_zones);
    if ct.connection_count() != expected {
        return Err(format!(
            "{} connections after the initial insert, expected {expected}",
            ct.connection_count()
        ));
    }

    let cap = usize::try_from(iterations).unwrap_or(0);
    let mut commit = Stopwatch::new("ct execute (commit)", cap);
    let mut lookup = Stopwatch::new("ct execute (no commit)", cap);
    let mut flush_full = Stopwatch::new("flush full zone", cap);
    let mut flush_empty = Stopwatch::new("flush empty zone", cap);
    let mut last = CtState::EMPTY;
    let mut flushed = 0;

    let start = Instant::now();
    for _ in 0..iterations {
        let t = Instant::now();
        flushed = ct.flush_zone(WORK_ZONE, now);
        flush_full.add(t.elapsed());

        let t = Instant::now();
        for f in &frames {
            ct.process(Frame::Ethernet(f), WORK_ZONE, opts, now);
        }
        commit.add(t.elapsed());

        let t = Instant::now();
        for f in &frames {
            last = ct.process(Frame::Ethernet(f), WORK_ZONE, &lookup_opts, now);
        }
        lookup.add(t.elapsed());

        let t = Instant::now();
        ct.flush_zone(EMPTY_ZONE, now);
        flush_empty.add(t.elapsed());
    }
    println!("flush run time: {} ms", start.elapsed().as_millis());

    check(last, "lookup")?;
    // A UDP flow that has seen no reply stays +new (as in OVS); the lookups must have found
    // the committed connections rather than created any.
    if ct.connection_count() != expected {
        return Err(format!(
            "{} connections after the iterations, expected {expected}",
            ct.connection_count()
        ));
    }
    if flushed != u64::from(n_conns) {
        return Err(format!(
            "flush of zone 1 removed {flushed}, expected {n_conns}"
        ));
    }

    let all = [&commit, &lookup, &flush_full, &flush_empty].map(Stopwatch::stats);
    print_results(&all);
    print_per_conn(n_conns, &all, [&commit, &lookup, &flush_full, &flush_empty]);
    Ok(())
}

fn print_results(s: &[Stats; 4]) {
    println!("results:");
    println!(
        "         | ct execute (commit) | ct execute (no commit) | flush full zone | flush \
         empty zone |"
    );
    println!(
        "+--------+---------------------+------------------------+-----------------+\
         ------------------+"
    );
    println!(
        "| Min    | {:16} us | {:19} us | {:12} us | {:13} us |",
        s[0].min, s[1].min, s[2].min, s[3].min
    );
    println!(
        "| Max    | {:16} us | {:19} us | {:12} us | {:13} us |",
        s[0].max, s[1].max, s[2].max, s[3].max
    );
    println!(
        "| 95%ile | {:16.2} us | {:19.2} us | {:12.2} us | {:13.2} us |",
        s[0].p95, s[1].p95, s[2].p95, s[3].p95
    );
    println!(
        "| Avg    | {:16.2} us | {:19.2} us | {:12.2} us | {:13.2} us |",
        s[0].ewma, s[1].ewma, s[2].ewma, s[3].ewma
    );
    println!(
        "| Mean   | {:16.2} us | {:19.2} us | {:12.2} us | {:13.2} us |",
        s[0].mean, s[1].mean, s[2].mean, s[3].mean
    );
    println!("(Avg: OVS's long-term average, weight 0.01 per sample; Mean: arithmetic mean)");
}

fn print_per_conn(n_conns: u32, s: &[Stats; 4], sw: [&Stopwatch; 4]) {
    let n = f64::from(n_conns);
    println!("per connection (mean / {n_conns}):");
    for (stats, sw) in s.iter().zip(sw).take(3) {
        let us = stats.mean / n;
        println!("  {:<24} {:10.4} us ({:.1} ns)", sw.name, us, us * 1e3);
    }
    println!(
        "  {:<24} {:10.4} us per flush ({:.0} ns)",
        sw[3].name,
        s[3].mean,
        s[3].mean * 1e3
    );
}
