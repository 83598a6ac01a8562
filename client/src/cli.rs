//! The command line: global connection and output options, subcommands, and the parsers of
//! their values. Parsing errors are usage errors (exit status 2, as clap exits).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use ctrack_proto::v1 as pb;

/// The exit statuses, as `--help` prints them.
pub(crate) const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the operation failed: ctrackd answered with an error (NOT_FOUND, INVALID_ARGUMENT,
     PERMISSION_DENIED, ...), printed as `ctrackctl: CODE: message`, or `health` found the
     service not SERVING
  2  usage error (bad arguments), or ctrackd could not be reached (refused, timed out, TLS
     failure, connection lost), printed as one line on stderr

Output: `-o table` (aligned columns) is the default when stdout is a terminal, `-o json` (one
JSON object per line) otherwise. `-o ovs` and `-o conntrack` print connections in the line
formats of `ovs-appctl dpctl/dump-conntrack` and `conntrack -L` (dump and watch only).";

/// ctrackctl: inspect and manage a ctrackd connection tracker over gRPC.
#[derive(Debug, Parser)]
#[command(name = "ctrackctl", version, after_help = EXIT_STATUS_HELP)]
pub(crate) struct Cli {
    /// ctrackd's gRPC address (help text below: rustdoc reads brackets as links).
    #[arg(
        long,
        help = "ctrackd's gRPC address: HOST[:PORT] or unix:PATH",
        short = 's',
        global = true,
        help_heading = "Connection",
        env = "CTRACK_SERVER",
        hide_env_values = true,
        default_value = "127.0.0.1:50051",
        value_name = "ADDR"
    )]
    pub(crate) server: String,
    /// CA certificate (PEM) that signed ctrackd's certificate; turns TLS on
    #[arg(long, global = true, value_name = "FILE", help_heading = "Connection")]
    pub(crate) ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (with --key)
    #[arg(long, global = true, value_name = "FILE", help_heading = "Connection")]
    pub(crate) cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS (with --cert)
    #[arg(long, global = true, value_name = "FILE", help_heading = "Connection")]
    pub(crate) key: Option<PathBuf>,
    /// Name to verify ctrackd's certificate against [default: the host of --server]
    #[arg(long, global = true, value_name = "NAME", help_heading = "Connection")]
    pub(crate) tls_domain: Option<String>,
    /// Limit for connecting, for each unary call and for each batch of a dump (e.g. 10s, 500ms)
    #[arg(long, global = true, default_value = "10s", value_name = "DUR", value_parser = parse_duration, help_heading = "Connection")]
    pub(crate) timeout: Duration,
    /// Output format [default: table on a terminal, json otherwise]
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        value_name = "FORMAT",
        help_heading = "Output"
    )]
    pub(crate) output: Option<Output>,
    /// Leave out the header line of tables
    #[arg(long, global = true, help_heading = "Output")]
    pub(crate) no_headers: bool,
    /// What to do
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Aligned columns, for people
    Table,
    /// One JSON object per line
    Json,
    /// The line format of `ovs-appctl dpctl/dump-conntrack` (connections only)
    Ovs,
    /// The line format of `conntrack -L` / `conntrack -E` (connections only)
    Conntrack,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the connections the filters select, streamed in batches (a count goes to stderr)
    Dump(DumpArgs),
    /// Stream connection events (new, destroyed) the filters select, until Ctrl-C
    Watch(WatchArgs),
    /// Remove connections: every one (--all), or those the filters select (--zone alone
    /// flushes a zone)
    #[command(group(ArgGroup::new("what").required(true).multiple(true)
        .args(["all", "zone", "proto", "src", "dst", "sport", "dport", "state"])))]
    Flush(FlushArgs),
    /// Remove the one connection with this exact tuple (either direction); NOT_FOUND if none
    FlushTuple(FlushTupleArgs),
    /// Per-zone connection limits and the default zone limit
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Timeout policies and their zone bindings
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Connection counts, engine counters and capture counters
    Stats,
    /// Run-time settings (global connection limit, sweep interval, TCP sequence checking)
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Health of ctrackd (grpc.health.v1): exit status 0 when SERVING
    Health(HealthArgs),
    /// Print a shell completion script
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Connection filters, the same words for dump, watch and flush. Addresses and ports are
/// those of the originator direction.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct FilterArgs {
    /// Only this zone (0-65535)
    #[arg(long, value_name = "ZONE")]
    pub(crate) zone: Option<u16>,
    /// Only this protocol: tcp, udp, icmp, icmpv6, sctp, udplite, or a number 0-255
    #[arg(long, value_name = "PROTO", value_parser = parse_proto)]
    pub(crate) proto: Option<u8>,
    /// Source address or prefix (10.0.0.1, 10.0.0.0/8, fd00::/64)
    #[arg(long, value_name = "ADDR[/LEN]", value_parser = parse_prefix)]
    pub(crate) src: Option<String>,
    /// Destination address or prefix
    #[arg(long, value_name = "ADDR[/LEN]", value_parser = parse_prefix)]
    pub(crate) dst: Option<String>,
    /// Source port (ICMP: echo id)
    #[arg(long, value_name = "PORT")]
    pub(crate) sport: Option<u16>,
    /// Destination port (ICMP: echo id)
    #[arg(long, value_name = "PORT")]
    pub(crate) dport: Option<u16>,
    /// Only TCP connections with a peer in this state: CLOSED, SYN_SENT, ESTABLISHED,
    /// CLOSING, FIN_WAIT_2, TIME_WAIT, ... (case-insensitive)
    #[arg(long, value_name = "STATE", value_parser = parse_state)]
    pub(crate) state: Option<pb::TcpState>,
}

impl FilterArgs {
    /// Whether no filter is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.zone.is_none()
            && self.proto.is_none()
            && self.src.is_none()
            && self.dst.is_none()
            && self.sport.is_none()
            && self.dport.is_none()
            && self.state.is_none()
    }

    /// The filter message (`None` when empty: everything).
    pub(crate) fn to_proto(&self) -> Option<pb::Filter> {
        if self.is_empty() {
            return None;
        }
        let orig = (self.src.is_some()
            || self.dst.is_some()
            || self.sport.is_some()
            || self.dport.is_some())
        .then(|| pb::TupleFilter {
            src: self.src.clone(),
            dst: self.dst.clone(),
            src_port: self.sport.map(u32::from),
            dst_port: self.dport.map(u32::from),
            icmp_type: None,
            icmp_code: None,
        });
        Some(pb::Filter {
            zone: self.zone.map(u32::from),
            protocol: self.proto.map(u32::from),
            family: pb::Family::Unspecified as i32,
            orig,
            reply: None,
            tcp_state: self.state.map(|s| s as i32),
        })
    }
}

/// `dump` options.
#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Connections per streamed batch, 1-10000 [default: the server's, 1000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) batch_size: Option<u32>,
}

/// `watch` options.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

/// `flush` options.
#[derive(Debug, Args)]
pub(crate) struct FlushArgs {
    /// Remove every connection
    #[arg(long, conflicts_with_all = ["zone", "proto", "src", "dst", "sport", "dport", "state"])]
    pub(crate) all: bool,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

/// `flush-tuple` options: one direction's exact tuple.
#[derive(Debug, Args)]
pub(crate) struct FlushTupleArgs {
    /// Zone (0-65535)
    #[arg(long, value_name = "ZONE", default_value_t = 0)]
    pub(crate) zone: u16,
    /// Protocol: tcp, udp, icmp, icmpv6, sctp, udplite, or a number 0-255
    #[arg(long, value_name = "PROTO", value_parser = parse_proto)]
    pub(crate) proto: u8,
    /// Source address
    #[arg(long, value_name = "ADDR")]
    pub(crate) src: IpAddr,
    /// Destination address
    #[arg(long, value_name = "ADDR")]
    pub(crate) dst: IpAddr,
    /// Source port (required for tcp, udp, sctp, udplite, dccp)
    #[arg(long, value_name = "PORT")]
    pub(crate) sport: Option<u16>,
    /// Destination port (required for tcp, udp, sctp, udplite, dccp)
    #[arg(long, value_name = "PORT")]
    pub(crate) dport: Option<u16>,
    /// ICMP/ICMPv6 echo id (required for icmp, icmpv6)
    #[arg(long, value_name = "ID")]
    pub(crate) icmp_id: Option<u16>,
    /// ICMP/ICMPv6 type of this direction [default: echo request, 8 or 128]
    #[arg(long, value_name = "TYPE")]
    pub(crate) icmp_type: Option<u8>,
}

/// `limits` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum LimitsCommand {
    /// Show the limits and usage of zones [default: every zone with its own limit]
    Get {
        /// Zones (0-65535)
        #[arg(value_name = "ZONE")]
        zones: Vec<u16>,
    },
    /// Set limits, all or nothing: ZONE:LIMIT, or default:LIMIT for zones without their own
    /// (0 means unlimited)
    Set {
        /// ZONE:LIMIT or default:LIMIT
        #[arg(required = true, value_name = "ZONE:LIMIT", value_parser = parse_zone_limit)]
        limits: Vec<ZoneLimitArg>,
    },
    /// Remove limits: zones' own limits, or the default limit (`default`)
    Del {
        /// ZONE or default
        #[arg(required = true, value_name = "ZONE|default", value_parser = parse_zone_or_default)]
        zones: Vec<ZoneOrDefault>,
    },
}

/// A zone number or the word `default`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZoneOrDefault {
    /// A zone.
    Zone(u16),
    /// The default zone limit.
    Default,
}

/// A `ZONE:LIMIT` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZoneLimitArg {
    /// The zone, or the default.
    pub(crate) zone: ZoneOrDefault,
    /// The limit (0: unlimited).
    pub(crate) limit: u32,
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Show one timeout policy
    Get {
        /// Policy id
        id: u32,
    },
    /// Create or replace a policy whole: attributes not given take the defaults
    Set {
        /// Policy id
        id: u32,
        /// ATTR=SECONDS, attributes: tcp_syn_sent tcp_syn_recv tcp_established tcp_fin_wait
        /// tcp_time_wait tcp_close udp_first udp_single udp_multiple icmp_first icmp_reply
        #[arg(value_name = "ATTR=SECONDS", value_parser = parse_attr)]
        timeouts: Vec<(String, u32)>,
    },
    /// Delete a policy (its connections use the defaults from their next packet)
    Del {
        /// Policy id
        id: u32,
    },
    /// List every policy and every zone binding
    List,
    /// Bind a zone to a policy (for connections created from now on)
    Bind {
        /// Zone (0-65535)
        zone: u16,
        /// Policy id (must exist unless 0)
        policy: u32,
    },
    /// Remove a zone's binding (back to policy 0)
    Unbind {
        /// Zone (0-65535)
        zone: u16,
    },
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Show the run-time settings
    Get {
        /// Print the whole effective configuration as TOML instead
        #[arg(long)]
        toml: bool,
    },
    /// Change run-time settings (the others are left alone) and show them all
    #[command(group(ArgGroup::new("setting").required(true).multiple(true)
        .args(["max_conns", "sweep_interval", "tcp_seq_check"])))]
    Set {
        /// Global connection limit (0: unlimited)
        #[arg(long, value_name = "N")]
        max_conns: Option<u32>,
        /// Delay between sweep passes (e.g. 20s, 500ms; 1ms to 24h)
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        sweep_interval: Option<Duration>,
        /// TCP sequence (window) checking
        #[arg(long, value_name = "on|off", value_parser = parse_switch)]
        tcp_seq_check: Option<bool>,
    },
}

/// `health` options.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// Service to check (e.g. ctrack.v1.ConnTrack) [default: the whole server]
    #[arg(value_name = "SERVICE")]
    pub(crate) service: Option<String>,
}

/// Protocol names as in the OVS and conntrack outputs.
const PROTOCOLS: [(&str, u8); 7] = [
    ("icmp", 1),
    ("tcp", 6),
    ("udp", 17),
    ("dccp", 33),
    ("icmpv6", 58),
    ("sctp", 132),
    ("udplite", 136),
];

/// A protocol name (tcp, udp, icmp, icmpv6, sctp, udplite, dccp) or number 0-255.
pub(crate) fn parse_proto(text: &str) -> Result<u8, String> {
    let lower = text.trim().to_ascii_lowercase();
    if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == lower) {
        return Ok(*n);
    }
    let lower = match lower.as_str() {
        "ipv6-icmp" | "icmp6" => return Ok(58),
        other => other,
    };
    lower.parse::<u8>().map_err(|_| {
        format!(
            "{text:?} is not a protocol (expected tcp, udp, icmp, icmpv6, sctp, udplite, or a \
             number 0-255)"
        )
    })
}

/// An address or a prefix `ADDR/LEN`, checked, returned as given (trimmed).
pub(crate) fn parse_prefix(text: &str) -> Result<String, String> {
    let text = text.trim();
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address or prefix"))?;
    if let Some(len) = len {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        match len.parse::<u8>() {
            Ok(l) if l <= max => {}
            _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
        }
    }
    Ok(text.to_owned())
}

/// A TCP peer state name, case-insensitive, `-` or `_` as separator.
pub(crate) fn parse_state(text: &str) -> Result<pb::TcpState, String> {
    let name = format!(
        "TCP_STATE_{}",
        text.trim().to_ascii_uppercase().replace('-', "_")
    );
    pb::TcpState::from_str_name(&name).ok_or_else(|| {
        format!(
            "{text:?} is not a TCP state (expected CLOSED, SYN_SENT, SYN_RECV, ESTABLISHED, \
             CLOSING, FIN_WAIT_2, TIME_WAIT, LISTEN, CLOSE_WAIT, FIN_WAIT_1 or LAST_ACK)"
        )
    })
}

/// A duration: numbers with units (`500ms`, `10s`, `2m`, `1h`, `1d`, combined as `1m30s`),
/// or a plain number of seconds, as ctrackd's configuration writes them.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a duration (e.g. 500ms, 10s, 2m, 1m30s, 1h)");
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = t.parse().map_err(|_| bad())?;
        return secs
            .checked_mul(1000)
            .map(Duration::from_millis)
            .ok_or_else(bad);
    }
    let mut rest = t;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(per_unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(total))
}

/// `on`/`off` (also true/false, yes/no, 1/0).
pub(crate) fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{text:?} is not on or off")),
    }
}

fn parse_zone_or_default(text: &str) -> Result<ZoneOrDefault, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("default") {
        return Ok(ZoneOrDefault::Default);
    }
    t.parse::<u16>()
        .map(ZoneOrDefault::Zone)
        .map_err(|_| format!("{text:?} is not a zone (0-65535) or `default`"))
}

fn parse_zone_limit(text: &str) -> Result<ZoneLimitArg, String> {
    let (zone, limit) = text
        .split_once([':', '='])
        .ok_or_else(|| format!("{text:?} is not ZONE:LIMIT (e.g. 7:1000 or default:5000)"))?;
    let zone = parse_zone_or_default(zone)?;
    let limit = limit
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{text:?}: the limit must be a number 0-4294967295"))?;
    Ok(ZoneLimitArg { zone, limit })
}

fn parse_attr(text: &str) -> Result<(String, u32), String> {
    let (name, secs) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ATTR=SECONDS (e.g. tcp_established=3600)"))?;
    let secs = secs
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{text:?}: the timeout must be whole seconds"))?;
    Ok((name.trim().to_owned(), secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_by_name_or_number() {
        assert_eq!(parse_proto("tcp"), Ok(6));
        assert_eq!(parse_proto("UDP"), Ok(17));
        assert_eq!(parse_proto("icmpv6"), Ok(58));
        assert_eq!(parse_proto("udplite"), Ok(136));
        assert_eq!(parse_proto("47"), Ok(47));
        assert!(parse_proto("256").is_err());
        assert!(parse_proto("tcpx").is_err());
    }

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(parse_prefix("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(parse_prefix(" fd00::1 ").unwrap(), "fd00::1");
        assert!(parse_prefix("10.0.0.0/33").is_err());
        assert!(parse_prefix("fd00::/129").is_err());
        assert!(parse_prefix("fd00::/64").is_ok());
        assert!(parse_prefix("example.com").is_err());
    }

    #[test]
    fn states_durations_switches() {
        assert_eq!(parse_state("established"), Ok(pb::TcpState::Established));
        assert_eq!(parse_state("fin-wait-2"), Ok(pb::TcpState::FinWait2));
        assert!(parse_state("open").is_err());
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert_eq!(parse_switch("OFF"), Ok(false));
        assert!(parse_switch("maybe").is_err());
    }

    #[test]
    fn zone_limits_and_attributes() {
        assert_eq!(
            parse_zone_limit("7:1000"),
            Ok(ZoneLimitArg {
                zone: ZoneOrDefault::Zone(7),
                limit: 1000
            })
        );
        assert_eq!(
            parse_zone_limit("default:0").unwrap().zone,
            ZoneOrDefault::Default
        );
        assert!(parse_zone_limit("70000:1").is_err());
        assert!(parse_zone_limit("7").is_err());
        assert_eq!(
            parse_attr("tcp_established=3600"),
            Ok(("tcp_established".into(), 3600))
        );
        assert!(parse_attr("tcp_established").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn filters_become_messages() {
        let f = FilterArgs {
            zone: Some(3),
            proto: Some(6),
            src: Some("10.0.0.0/8".into()),
            dport: Some(80),
            state: Some(pb::TcpState::Established),
            ..FilterArgs::default()
        };
        let m = f.to_proto().unwrap();
        assert_eq!(m.zone, Some(3));
        assert_eq!(m.protocol, Some(6));
        assert_eq!(m.tcp_state, Some(pb::TcpState::Established as i32));
        let orig = m.orig.unwrap();
        assert_eq!(orig.src.as_deref(), Some("10.0.0.0/8"));
        assert_eq!((orig.src_port, orig.dst_port), (None, Some(80)));
        assert!(FilterArgs::default().to_proto().is_none());
    }
}
