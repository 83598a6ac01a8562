//! `ctrackd replay`: runs the engine over a capture file and prints each packet's `ct_state`.
//!
//! The output is byte for byte that of OVS's `ovstest test-conntrack pcap`: one line per
//! packet, `N: flags` (1-based; `new est rel rpl inv trk snat dnat` joined by `|`, `0` for
//! none). With `--dump`, a header `--- conntrack dump (n_conn=N) ---` and one line per live
//! connection in the `dpctl/dump-conntrack -m -s` format follow, timeouts counted from the
//! last packet.
//!
//! # Clocks and sweeping
//! With `--clock pcap` (the default) each packet's capture timestamp is `now`; connections
//! expire on that clock at once (they become invisible), but no sweep runs, so expired
//! connections still count toward limits and `n_conn` until the end, exactly as in OVS's test
//! harness, whose sweeper runs on the wall clock. With `--clock wall`, `now` is the wall clock
//! and the sweeper runs whenever its deadline passes, as in the daemon.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use ctrack_core::{
    Config, CtState, Filter, Frame, PolicyId, ProcessOptions, Tick, TimeoutAttr, TimeoutPolicy,
    Tracker,
};

use crate::ovs_format;
use crate::pcap::{LinkType, PcapError, PcapReader, Record, sll_payload};

/// Options of `ctrackd replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Conntrack zone of every packet.
    #[arg(long, default_value_t = 0)]
    pub zone: u16,
    /// Do not commit: no connection is stored.
    #[arg(long)]
    pub no_commit: bool,
    /// A packet matching a connection in the reply direction replaces it.
    #[arg(long)]
    pub force: bool,
    /// Turn TCP sequence (window) checking off.
    #[arg(long)]
    pub no_tcp_seq_chk: bool,
    /// Where `now` comes from.
    #[arg(long, value_enum, default_value_t = ClockSource::Pcap)]
    pub clock: ClockSource,
    /// Verify TCP/UDP/ICMP/ICMPv6 checksums.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub verify_checksums: OnOff,
    /// A zone limit, `ZONE:LIMIT`; `ZONE` may be `default`. Repeatable. 0 means unlimited.
    #[arg(long = "zone-limit", value_name = "ZONE:LIMIT", value_parser = parse_zone_limit)]
    pub zone_limits: Vec<ZoneLimitArg>,
    /// Global connection limit (0: unlimited).
    #[arg(long, default_value_t = ctrack_core::tracker::DEFAULT_MAX_CONNS)]
    pub max_conns: u32,
    /// A timeout policy, `ID:ATTR=SEC[,ATTR=SEC...]`. Repeatable.
    #[arg(long = "policy", value_name = "ID:ATTR=SEC,...", value_parser = parse_policy)]
    pub policies: Vec<PolicyArg>,
    /// Bind the replayed zone to this timeout policy.
    #[arg(long, value_name = "ID", default_value_t = 0)]
    pub policy_id: u32,
    /// After the packets, print the live connections.
    #[arg(long)]
    pub dump: bool,
    /// The capture file (pcap or pcapng; Ethernet or Linux cooked link type).
    pub file: PathBuf,
}

/// Where `now` comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClockSource {
    /// Each packet's capture timestamp.
    Pcap,
    /// The wall clock (monotonic) when the packet is processed.
    Wall,
}

/// An on/off switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// A parsed `--zone-limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneLimitArg {
    /// `None` for the default limit.
    pub zone: Option<u16>,
    /// The limit (0: unlimited).
    pub limit: u32,
}

/// A parsed `--policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyArg {
    /// The policy id.
    pub id: u32,
    /// The full policy (unnamed attributes at their defaults).
    pub policy: TimeoutPolicy,
}

fn parse_zone_limit(s: &str) -> Result<ZoneLimitArg, String> {
    let (zone, limit) = s
        .split_once(':')
        .ok_or_else(|| format!("expected ZONE:LIMIT, got {s:?}"))?;
    let zone =
        if zone == "default" {
            None
        } else {
            Some(zone.parse::<u16>().map_err(|_| {
                format!("zone {zone:?} is not a number from 0 to 65535 or \"default\"")
            })?)
        };
    let limit = limit
        .parse::<u32>()
        .map_err(|_| format!("limit {limit:?} is not a number from 0 to 4294967295"))?;
    Ok(ZoneLimitArg { zone, limit })
}

fn parse_policy(s: &str) -> Result<PolicyArg, String> {
    let (id, attrs) = s
        .split_once(':')
        .ok_or_else(|| format!("expected ID:ATTR=SEC[,ATTR=SEC...], got {s:?}"))?;
    let id = id
        .parse::<u32>()
        .map_err(|_| format!("policy id {id:?} is not a number from 0 to 4294967295"))?;
    let mut values = Vec::new();
    for item in attrs.split(',') {
        let (name, secs) = item
            .split_once('=')
            .ok_or_else(|| format!("expected ATTR=SEC, got {item:?}"))?;
        let attr: TimeoutAttr = name
            .parse()
            .map_err(|e: ctrack_core::UnknownAttr| e.to_string())?;
        let secs = secs
            .parse::<u32>()
            .map_err(|_| format!("{name}: {secs:?} is not a number of seconds"))?;
        values.push((attr, secs));
    }
    Ok(PolicyArg {
        id,
        policy: TimeoutPolicy::with(values),
    })
}

/// Why a replay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The capture is unreadable, truncated or malformed (after `packets` packets).
    #[error("{source} (after {packets} packets)")]
    Capture {
        /// Packets processed before the error.
        packets: u64,
        /// The cause.
        source: PcapError,
    },
    /// A setting was refused by the engine.
    #[error("{0}")]
    Setting(#[from] ctrack_core::Error),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs a replay, writing its output to `out`; returns the number of packets processed.
/// On a capture error, the packets before it are processed and printed first.
pub fn run(args: &ReplayArgs, out: &mut impl Write) -> Result<u64, ReplayError> {
    let file = File::open(&args.file).map_err(|source| ReplayError::Open {
        path: args.file.clone(),
        source,
    })?;
    let mut reader = PcapReader::new(BufReader::with_capacity(1 << 16, file))
        .map_err(|source| ReplayError::Capture { packets: 0, source })?;
    let tracker = build_tracker(args)?;
    let opts = ProcessOptions {
        commit: !args.no_commit,
        force: args.force,
        verify_checksums: args.verify_checksums == OnOff::On,
    };
    let start = Instant::now();
    let mut next_sweep = Tick::ZERO;
    let mut now = Tick::ZERO;
    let mut packets = 0u64;
    let mut failure = None;
    loop {
        let record = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(source) => {
                failure = Some(ReplayError::Capture { packets, source });
                break;
            }
        };
        now = match args.clock {
            ClockSource::Pcap => Tick::from_millis(record.ts_nanos / 1_000_000),
            ClockSource::Wall => {
                let wall = Tick::ZERO.saturating_add(start.elapsed());
                if wall >= next_sweep {
                    next_sweep = tracker.sweep(wall).next_sweep;
                }
                wall
            }
        };
        let state: CtState = tracker.process(frame_of(&record), args.zone, &opts, now);
        packets += 1;
        writeln!(out, "{packets}: {state}")?;
    }
    if args.dump {
        writeln!(
            out,
            "--- conntrack dump (n_conn={}) ---",
            tracker.connection_count()
        )?;
        // OVS prints in hash order; ctrack prints in creation order, which reads better.
        let mut entries = tracker.dump_all(&Filter::default(), now);
        entries.sort_by_key(|e| e.id);
        for entry in entries {
            writeln!(out, "{}", ovs_format::dump_line(&entry, now))?;
        }
    }
    out.flush()?;
    match failure {
        Some(e) => Err(e),
        None => Ok(packets),
    }
}

/// The engine's view of a captured record.
pub(crate) fn frame_of<'a>(record: &Record<'a>) -> Frame<'a> {
    match record.link {
        LinkType::Ethernet => Frame::Ethernet(record.data),
        LinkType::LinuxSll | LinkType::LinuxSll2 => match sll_payload(record.link, record.data) {
            Some((ethertype, data)) => Frame::L3 { ethertype, data },
            // Too short to hold the cooked header: not an IP packet.
            None => Frame::L3 {
                ethertype: 0,
                data: &[],
            },
        },
    }
}

fn build_tracker(args: &ReplayArgs) -> Result<Tracker, ReplayError> {
    let tracker = Tracker::new(Config {
        max_conns: args.max_conns,
        tcp_seq_check: !args.no_tcp_seq_chk,
        ..Config::default()
    });
    for limit in &args.zone_limits {
        match limit.zone {
            Some(zone) => tracker.set_zone_limit(zone, limit.limit),
            None => tracker.set_default_zone_limit(limit.limit),
        }
    }
    for p in &args.policies {
        tracker.set_policy(PolicyId(p.id), p.policy);
    }
    if args.policy_id != 0 {
        tracker.bind_zone_policy(args.zone, PolicyId(args.policy_id))?;
    }
    Ok(tracker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_zone_limits() {
        assert_eq!(
            parse_zone_limit("7:10").unwrap(),
            ZoneLimitArg {
                zone: Some(7),
                limit: 10
            }
        );
        assert_eq!(
            parse_zone_limit("default:0").unwrap(),
            ZoneLimitArg {
                zone: None,
                limit: 0
            }
        );
        assert!(parse_zone_limit("70000:1").unwrap_err().contains("65535"));
        assert!(parse_zone_limit("7").is_err());
        assert!(parse_zone_limit("7:-1").is_err());
    }

    #[test]
    fn parses_policies() {
        let p = parse_policy("3:udp_first=5,tcp_established=100").unwrap();
        assert_eq!(p.id, 3);
        assert_eq!(p.policy.secs(TimeoutAttr::UdpFirst), 5);
        assert_eq!(p.policy.secs(TimeoutAttr::TcpEstablished), 100);
        assert_eq!(p.policy.secs(TimeoutAttr::IcmpFirst), 60);
        assert!(
            parse_policy("3:udp_bogus=5")
                .unwrap_err()
                .contains("unknown timeout attribute")
        );
        assert!(parse_policy("3:udp_first").is_err());
        assert!(parse_policy("x:udp_first=1").is_err());
    }
}
