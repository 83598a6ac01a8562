//! `ctrackd`'s configuration: built-in defaults, a TOML file, `CTRACK_*` environment variables
//! and command-line flags, merged in that order (each layer overrides the ones before it) into
//! one [`Config`].
//!
//! # Sources
//! * Defaults: [`Config::default`].
//! * The file named by `--config FILE`, else by `CTRACK_CONFIG`. `ctrack.example.toml`
//!   documents every key. Unknown keys are errors.
//! * The environment, passed in as a map ([`env_snapshot`] takes it from the process), so tests
//!   never touch the process environment. `RUST_LOG` is not read here: it overrides
//!   `log.filter` when the subscriber is built.
//! * Flags: [`DaemonArgs`], which the binary flattens into its command.
//!
//! Timeout policies and zone bindings come from the file only. Lists (interfaces, admin
//! identities) are replaced whole by a later layer, not appended to. An interface named by the
//! environment or a flag keeps the VLAN map, and when it gives no `:ZONE` the zone, of the entry
//! with the same name in the layers below (neither can express a VLAN map).
//!
//! # Values
//! Durations are written "500ms", "20s", "2m", "1h", "1d" or combined ("1m30s"); a plain
//! integer is seconds. Sizes are integers (bytes) or binary multiples ("64KiB", "8MiB",
//! "1GiB"). Switches in the environment and flags are `on`, `off`, `true` or `false`.
//!
//! # Errors
//! Building a [`Config`] is its validation (parse, don't validate): a malformed or out-of-range
//! value, or two settings that contradict each other, fail the build with a [`ConfigError`]
//! that names where the value came from: the file and the field's dotted path
//! (`config file /etc/ctrack.toml: capture.interfaces[1].zone: 70000 is out of range
//! (0..=65535)`), the environment variable, or the flag. Array indexes in paths are 0-based.
//!
//! [`Config::render_toml`] writes the effective configuration back as TOML that loads to the
//! same [`Config`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::IntErrorKind;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ctrack_core::{TimeoutAttr, TimeoutPolicy, UnknownAttr};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The effective configuration (after defaults, file, environment and flags are merged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The gRPC API.
    pub grpc: GrpcConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// A plaintext `grpc.health.v1`-only endpoint, for kubelet gRPC probes.
    pub health: HealthConfig,
    /// Packet capture.
    pub capture: CaptureSection,
    /// The engine's limits and timers.
    pub conntrack: ConntrackSection,
    /// Timeout policies by id (policy 0 serves zones bound to no other policy).
    pub policies: BTreeMap<u32, TimeoutPolicy>,
    /// Zone to policy id; every id other than 0 is a key of `policies`.
    pub zone_policies: BTreeMap<u16, u32>,
    /// Logging.
    pub log: LogConfig,
    /// How long shutdown waits for in-flight requests (default 5 s).
    pub shutdown_grace: Duration,
    /// A pcap file that fills the table before serving (`--preload`).
    pub preload: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grpc: GrpcConfig::default(),
            metrics: MetricsConfig::default(),
            health: HealthConfig::default(),
            capture: CaptureSection::default(),
            conntrack: ConntrackSection::default(),
            policies: BTreeMap::new(),
            zone_policies: BTreeMap::new(),
            log: LogConfig::default(),
            shutdown_grace: Duration::from_secs(5),
            preload: None,
        }
    }
}

impl Config {
    /// Merges the defaults, the config file (`args.config`, else `CTRACK_CONFIG` in `env`), the
    /// `CTRACK_*` variables of `env` and the flags of `args`, in that order.
    pub fn load(args: &DaemonArgs, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut builder = Builder::default();
        let file = match &args.config {
            Some(path) => Some(path.clone()),
            None => env_parse(env, ENV_CONFIG, parse_path)?,
        };
        if let Some(path) = file {
            let text = read(&path)?;
            builder.apply_file(&text, Some(&path))?;
        }
        builder.apply_env(env)?;
        builder.apply_flags(args)?;
        builder.finish()
    }

    /// The defaults with the file at `path` applied (`ctrackd check-config FILE`); the
    /// environment and flags are not read.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read(path)?;
        let mut builder = Builder::default();
        builder.apply_file(&text, Some(path))?;
        builder.finish()
    }

    /// The defaults with the TOML `text` applied; errors name the source `config`.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let mut builder = Builder::default();
        builder.apply_file(text, None)?;
        builder.finish()
    }

    /// The configuration as TOML, every field written out; [`Config::from_toml_str`] reads it
    /// back to an equal `Config` (paths that are not UTF-8 are written lossily).
    pub fn render_toml(&self) -> String {
        Rendered(self).to_string()
    }
}

/// The gRPC API's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcConfig {
    /// Where to listen (default `127.0.0.1:50051`).
    pub listen: Listen,
    /// Allow plaintext on a non-loopback TCP address.
    pub insecure: bool,
    /// Server certificate and key, and the CA that client certificates must chain to (mTLS).
    pub tls: Option<TlsFiles>,
    /// Client certificate DNS names (subject alternative names) allowed to change state; needs
    /// `tls.client_ca`. Empty: no client may (a read-only API).
    pub admin_identities: Vec<String>,
    /// Deadline of one request (default 10 s).
    pub request_timeout: Duration,
    /// Requests served at once; more are shed (default 64).
    pub max_concurrent_requests: usize,
    /// Largest message received or sent (default 4 MiB).
    pub max_message_bytes: usize,
    /// HTTP/2 keepalive ping interval; zero disables pings (default 30 s).
    pub keepalive_interval: Duration,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: Listen::Tcp(DEFAULT_GRPC_LISTEN),
            insecure: false,
            tls: None,
            admin_identities: Vec::new(),
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 64,
            max_message_bytes: 4 * MIB,
            keepalive_interval: Duration::from_secs(30),
        }
    }
}

/// A listen address: `IP:PORT` or `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl Listen {
    /// Whether the address can be reached only from this host (Unix sockets, loopback IPs).
    pub fn is_local(&self) -> bool {
        match self {
            Self::Tcp(addr) => addr.ip().to_canonical().is_loopback(),
            Self::Unix(_) => true,
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for Listen {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        if let Some(path) = text.strip_prefix("unix:") {
            return parse_path(path).map(Self::Unix);
        }
        text.parse().map(Self::Tcp).map_err(|_| {
            InvalidValue(format!(
                "{text:?} is not a listen address (expected IP:PORT, such as 127.0.0.1:50051 \
                 or [::1]:50051, or unix:PATH)"
            ))
        })
    }
}

/// TLS files (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// The Prometheus endpoint's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where to serve `/metrics` over HTTP; `None` disables it (default `127.0.0.1:9100`).
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Some(DEFAULT_METRICS_LISTEN),
        }
    }
}

/// The health-only endpoint's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthConfig {
    /// Where to serve `grpc.health.v1` alone, in plaintext (health carries nothing secret), so
    /// that kubelet gRPC probes work while the API itself requires mutual TLS; `None`
    /// (default) disables it.
    pub listen: Option<SocketAddr>,
}

/// An address as the environment and flags give it: `IP:PORT` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsListen(pub Option<SocketAddr>);

impl fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("off"),
        }
    }
}

impl FromStr for MetricsListen {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        text.parse().map(|addr| Self(Some(addr))).map_err(|_| {
            InvalidValue(format!(
                "{text:?} is not an address (expected IP:PORT, such as 127.0.0.1:9100, \
                 or off)"
            ))
        })
    }
}

/// Packet capture settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSection {
    /// Interfaces to capture on; empty means every interface that is up and not loopback
    /// (resolved when capture starts).
    pub interfaces: Vec<InterfaceConfig>,
    /// Capture threads per interface; 0 means one per CPU (at most 1024).
    pub workers: usize,
    /// `SO_RCVBUF` of each capture socket; 0 keeps the kernel's default (default 8 MiB, at
    /// most 1 GiB).
    pub rcvbuf_bytes: usize,
    /// Reject packets whose L4 checksum is wrong (off for live capture: with checksum offload
    /// the kernel hands out outgoing packets before their checksum is filled in).
    pub verify_checksums: bool,
    /// Frames a capture worker hands to the engine at once (default 32).
    pub batch: usize,
    /// Bytes read per frame; longer frames are truncated (default 65600: a 64 KiB TSO/GSO segment with its Ethernet header fits; 128..=262144).
    pub snaplen: usize,
}

impl Default for CaptureSection {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            workers: 0,
            rcvbuf_bytes: 8 * MIB,
            verify_checksums: false,
            batch: 32,
            snaplen: 65_600,
        }
    }
}

/// One interface to capture on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// The interface name (at most 15 bytes, no '/', ':' or whitespace).
    pub name: String,
    /// Conntrack zone of its untagged packets, and of tagged ones whose VLAN is not in
    /// `vlan_zones` (default 0).
    pub zone: u16,
    /// VLAN id (0..=4095) to conntrack zone.
    pub vlan_zones: BTreeMap<u16, u16>,
}

/// An interface as the environment and `--interface` give it: `NAME[:ZONE]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// The interface name.
    pub name: String,
    /// The zone, if given.
    pub zone: Option<u16>,
}

impl FromStr for InterfaceSpec {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        let (name, zone) = match text.split_once(':') {
            Some((name, zone)) => (name, Some(zone)),
            None => (text, None),
        };
        check_interface_name(name)?;
        let zone = zone
            .map(|zone| {
                parse_int(zone, ZONE).map_err(|e| InvalidValue(format!("{text:?}: zone {e}")))
            })
            .transpose()?;
        Ok(Self {
            name: name.to_owned(),
            zone,
        })
    }
}

/// The engine's limits and timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConntrackSection {
    /// Global connection limit; 0 means unlimited (default 3 000 000).
    pub max_conns: u32,
    /// Limit of each zone without its own; 0 means unlimited.
    pub default_zone_limit: Option<u32>,
    /// Per-zone limits; 0 means unlimited.
    pub zone_limits: BTreeMap<u16, u32>,
    /// Delay between full sweep passes (default 20 s, more than zero).
    pub sweep_interval: Duration,
    /// TCP sequence (window) checking (default on).
    pub tcp_seq_check: bool,
    /// Capacity of the engine's event queue (default 65536).
    pub event_capacity: usize,
}

impl Default for ConntrackSection {
    fn default() -> Self {
        Self {
            max_conns: 3_000_000,
            default_zone_limit: None,
            zone_limits: BTreeMap::new(),
            sweep_interval: Duration::from_secs(20),
            tcp_seq_check: true,
            event_capacity: 65_536,
        }
    }
}

/// Logging settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Line format (default text).
    pub format: LogFormat,
    /// `tracing-subscriber` filter directives (default "info"); `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// The log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    #[default]
    Text,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Text => "text",
        })
    }
}

impl FromStr for LogFormat {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        match text.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err(InvalidValue(format!(
                "{text:?} is not a log format (expected text or json)"
            ))),
        }
    }
}

/// The daemon's flags; the binary flattens them into its top-level command.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct DaemonArgs {
    /// TOML configuration file [env: CTRACK_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// gRPC address, IP:PORT or unix:PATH [default: 127.0.0.1:50051] [env: CTRACK_GRPC_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<Listen>,
    /// Allow plaintext gRPC on a non-loopback address [env: CTRACK_INSECURE]
    #[arg(long)]
    pub insecure: bool,
    /// TLS certificate chain (PEM) [env: CTRACK_TLS_CERT]
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) [env: CTRACK_TLS_KEY]
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA that client certificates must chain to (mTLS) [env: CTRACK_TLS_CLIENT_CA]
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Client certificate DNS name (subject alternative name) allowed to change state; repeatable
    /// [env: CTRACK_ADMIN_IDENTITIES, comma separated]
    #[arg(long = "admin-identity", value_name = "NAME", value_parser = parse_identity)]
    pub admin_identities: Vec<String>,
    /// Prometheus address, IP:PORT or off [default: 127.0.0.1:9100] [env: CTRACK_METRICS_LISTEN]
    #[arg(long, value_name = "ADDR|off")]
    pub metrics_listen: Option<MetricsListen>,
    /// Plaintext health-only gRPC address for probes, IP:PORT or off [default: off]
    /// [env: CTRACK_HEALTH_LISTEN]
    #[arg(long, value_name = "ADDR|off")]
    pub health_listen: Option<MetricsListen>,
    /// Interface to capture on, with its zone; repeatable [default: every interface that is up,
    /// except loopback] [env: CTRACK_INTERFACES, comma separated]
    #[arg(long = "interface", value_name = "NAME[:ZONE]")]
    pub interfaces: Vec<InterfaceSpec>,
    /// Capture threads per interface, 0 for one per CPU [env: CTRACK_WORKERS]
    #[arg(long, value_name = "N", value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// Capture socket receive buffer, e.g. 8MiB [env: CTRACK_RCVBUF]
    #[arg(long, value_name = "SIZE", value_parser = parse_rcvbuf)]
    pub rcvbuf: Option<usize>,
    /// Drop packets with a wrong L4 checksum [env: CTRACK_VERIFY_CHECKSUMS]
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub verify_checksums: Option<bool>,
    /// Global connection limit, 0 for unlimited [env: CTRACK_MAX_CONNS]
    #[arg(long, value_name = "N", value_parser = parse_u32)]
    pub max_conns: Option<u32>,
    /// Limit of each zone without its own, 0 for unlimited [env: CTRACK_DEFAULT_ZONE_LIMIT]
    #[arg(long, value_name = "N", value_parser = parse_u32)]
    pub default_zone_limit: Option<u32>,
    /// Delay between sweep passes, e.g. 20s [env: CTRACK_SWEEP_INTERVAL]
    #[arg(long, value_name = "DUR", value_parser = parse_sweep_interval)]
    pub sweep_interval: Option<Duration>,
    /// Turn TCP sequence (window) checking off [env: CTRACK_TCP_SEQ_CHECK]
    #[arg(long = "no-tcp-seq-chk")]
    pub no_tcp_seq_chk: bool,
    /// Log line format [env: CTRACK_LOG_FORMAT]
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<LogFormat>,
    /// Fill the table from this pcap file before serving [env: CTRACK_PRELOAD]
    #[arg(long, value_name = "FILE")]
    pub preload: Option<PathBuf>,
}

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is malformed or out of range, or two settings contradict each other.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where the offending value came from.
        origin: Origin,
        /// What is wrong with it.
        message: String,
    },
    /// The config file could not be read.
    #[error("config file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        error: io::Error,
    },
    /// The file is not TOML, or has a key the configuration does not have, or a value of the
    /// wrong type.
    #[error("{}: {message}", syntax_location(.file.as_deref(), *.line_col))]
    Syntax {
        /// The file (`None` for [`Config::from_toml_str`]).
        file: Option<PathBuf>,
        /// 1-based line and column, when known.
        line_col: Option<(usize, usize)>,
        /// The parser's message.
        message: String,
    },
}

/// Where a setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in defaults.
    Default,
    /// An environment variable.
    Env(String),
    /// A field of a config file: the file (`None` for [`Config::from_toml_str`]) and the
    /// field's dotted path.
    File {
        /// The file.
        path: Option<PathBuf>,
        /// The field's dotted path, such as `capture.interfaces[1].zone`.
        field: String,
    },
    /// A command-line flag, such as `--listen`.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("built-in default"),
            Self::Env(var) => write!(f, "environment {var}"),
            Self::File {
                path: Some(path),
                field,
            } => write!(f, "config file {}: {field}", path.display()),
            Self::File { path: None, field } => write!(f, "config: {field}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A malformed or out-of-range value; the message quotes it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

/// The process's `CTRACK_*` variables, for [`Config::load`] (values that are not UTF-8 are
/// converted lossily; `std::env::vars` would panic on them).
pub fn env_snapshot() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(key, value)| {
            let key = key.into_string().ok()?;
            key.starts_with(ENV_PREFIX)
                .then(|| (key, value.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The `CTRACK_*` variables of `env` that [`Config::load`] does not read (likely typos; worth a
/// warning), sorted.
pub fn unrecognized_env_vars(env: &HashMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = env
        .keys()
        .filter(|key| {
            key.starts_with(ENV_PREFIX)
                && !ENV_VARS.contains(&key.as_str())
                && !CLIENT_ENV_VARS.contains(&key.as_str())
        })
        .cloned()
        .collect();
    names.sort();
    names
}

/// Parses a duration: "500ms", "20s", "2m", "1h", "1d", units combined ("1m30s"), or a plain
/// integer of seconds. Units `ns` and `us` exist so that [`format_duration`] is exact.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidValue> {
    let invalid = || {
        InvalidValue(format!(
            "{text:?} is not a duration (expected a number with a unit, such as \"500ms\", \
             \"20s\", \"2m\", \"1h\", or a number of seconds)"
        ))
    };
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return match trimmed.parse::<u64>() {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(_) => Err(too_long(text)),
        };
    }
    let mut rest = trimmed;
    let mut nanos: u128 = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u128 = rest[..digits].parse().map_err(|_| too_long(text))?;
        rest = rest[digits..].trim_start();
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == &rest[..letters])
            .map(|&(_, nanos)| nanos)
            .ok_or_else(invalid)?;
        rest = rest[letters..].trim_start();
        nanos = number
            .checked_mul(unit)
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(|| too_long(text))?;
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| too_long(text))?;
    // The remainder of a division by 10^9 fits in a u32.
    let subsec = (nanos % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, subsec))
}

/// Writes `duration` in the largest unit that divides it exactly ("90s", "2m", "1500ms"), so
/// that [`parse_duration`] reads it back unchanged.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for &(name, unit) in DURATION_UNITS.iter().rev() {
        if nanos.is_multiple_of(unit) {
            return format!("{}{name}", nanos / unit);
        }
    }
    // Unreachable: the last unit is one nanosecond.
    format!("{nanos}ns")
}

/// Parses a size in bytes: an integer, or one with a binary unit ("64KiB", "8MiB", "1GiB";
/// "B" for bytes; case-insensitive). Decimal units ("MB") are rejected.
pub fn parse_size(text: &str) -> Result<u64, InvalidValue> {
    let trimmed = text.trim();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    let unit = trimmed[digits..].trim_start();
    let multiple = SIZE_UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
        .map(|&(_, multiple)| multiple);
    let (Some(multiple), true) = (multiple, digits > 0) else {
        let hint = if ["kb", "mb", "gb", "tb", "k", "m", "g", "t"]
            .iter()
            .any(|u| u.eq_ignore_ascii_case(unit))
        {
            " (sizes are binary: write KiB, MiB or GiB)"
        } else {
            " (expected bytes, or a number with KiB, MiB or GiB, such as \"8MiB\")"
        };
        return Err(InvalidValue(format!("{text:?} is not a size{hint}")));
    };
    trimmed[..digits]
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiple))
        .ok_or_else(|| InvalidValue(format!("{text:?} is too large")))
}

/// Writes `bytes` in the largest binary unit that divides it exactly ("8MiB"), else as a
/// plain integer, so that [`parse_size`] reads it back unchanged.
pub fn format_size(bytes: u64) -> String {
    for &(name, multiple) in SIZE_UNITS.iter().rev() {
        if multiple > 1 && bytes != 0 && bytes.is_multiple_of(multiple) {
            return format!("{}{name}", bytes / multiple);
        }
    }
    bytes.to_string()
}

/// Parses a switch: `on`, `off`, `true` or `false` (case-insensitive).
pub fn parse_switch(text: &str) -> Result<bool, InvalidValue> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(InvalidValue(format!(
            "{text:?} is not a switch (expected on, off, true or false)"
        ))),
    }
}

/// The defaults, overridden layer by layer. TLS is kept in parts because each layer may set
/// any of them; `origins` holds where the settings that `finish` relates to one another came
/// from.
#[derive(Debug, Default)]
struct Builder {
    config: Config,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    /// The latest entry of every interface any layer named, for the merge of later layers.
    known_interfaces: Vec<InterfaceConfig>,
    origins: HashMap<&'static str, Origin>,
}

impl Builder {
    fn apply_file(&mut self, text: &str, path: Option<&Path>) -> Result<(), ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: path.map(Path::to_path_buf),
            line_col: e.span().map(|span| line_col(text, span.start)),
            message: e.message().trim().replace('\n', "; "),
        })?;
        let file = FileCtx { path };
        let RawFile {
            grpc,
            metrics,
            health,
            capture,
            conntrack,
            policies,
            zone_policies,
            log,
            shutdown_grace,
            preload,
        } = raw;
        if let Some(grpc) = grpc {
            self.apply_file_grpc(grpc, &file)?;
        }
        if let Some(RawMetrics { listen }) = metrics
            && let Some(listen) = listen
        {
            self.config.metrics.listen = file
                .check(METRICS_LISTEN, listen.parse::<MetricsListen>())?
                .0;
            self.origins
                .insert(METRICS_LISTEN, file.origin(METRICS_LISTEN));
        }
        if let Some(RawMetrics { listen }) = health
            && let Some(listen) = listen
        {
            self.config.health.listen = file
                .check(HEALTH_LISTEN, listen.parse::<MetricsListen>())?
                .0;
            self.origins
                .insert(HEALTH_LISTEN, file.origin(HEALTH_LISTEN));
        }
        if let Some(capture) = capture {
            self.apply_file_capture(capture, &file)?;
        }
        if let Some(conntrack) = conntrack {
            self.apply_file_conntrack(conntrack, &file)?;
        }
        self.apply_file_policies(policies, zone_policies, &file)?;
        if let Some(RawLog { format, filter }) = log {
            if let Some(format) = format {
                self.config.log.format = file.check("log.format", format.parse())?;
            }
            if let Some(filter) = filter {
                self.config.log.filter = file.check("log.filter", parse_filter(&filter))?;
            }
        }
        if let Some(grace) = shutdown_grace {
            self.config.shutdown_grace = file.check("shutdown_grace", grace.duration())?;
        }
        if let Some(preload) = preload {
            self.config.preload = Some(file.check("preload", parse_path(&preload))?);
        }
        Ok(())
    }

    fn apply_file_grpc(&mut self, raw: RawGrpc, file: &FileCtx<'_>) -> Result<(), ConfigError> {
        let RawGrpc {
            listen,
            insecure,
            tls,
            admin_identities,
            request_timeout,
            max_concurrent_requests,
            max_message_bytes,
            keepalive_interval,
        } = raw;
        let grpc = &mut self.config.grpc;
        if let Some(listen) = listen {
            grpc.listen = file.check(GRPC_LISTEN, listen.parse())?;
            self.origins.insert(GRPC_LISTEN, file.origin(GRPC_LISTEN));
        }
        if let Some(insecure) = insecure {
            grpc.insecure = insecure;
            self.origins.insert(INSECURE, file.origin(INSECURE));
        }
        if let Some(RawTls {
            cert,
            key,
            client_ca,
        }) = tls
        {
            for (field, value, slot) in [
                (TLS_CERT, cert, &mut self.tls_cert),
                (TLS_KEY, key, &mut self.tls_key),
                (TLS_CLIENT_CA, client_ca, &mut self.tls_client_ca),
            ] {
                if let Some(value) = value {
                    *slot = Some(file.check(field, parse_path(&value))?);
                    self.origins.insert(field, file.origin(field));
                }
            }
        }
        if let Some(list) = admin_identities {
            let mut identities = Vec::with_capacity(list.len());
            for (i, identity) in list.into_iter().enumerate() {
                let field = format!("{ADMIN_IDENTITIES}[{i}]");
                identities.push(file.check(&field, parse_identity(&identity))?);
            }
            grpc.admin_identities = identities;
            self.origins
                .insert(ADMIN_IDENTITIES, file.origin(ADMIN_IDENTITIES));
        }
        if let Some(timeout) = request_timeout {
            let field = "grpc.request_timeout";
            grpc.request_timeout = file.check(field, timeout.duration().and_then(positive))?;
        }
        if let Some(n) = max_concurrent_requests {
            let field = "grpc.max_concurrent_requests";
            grpc.max_concurrent_requests = file.check(field, n.int(MAX_CONCURRENT))?;
        }
        if let Some(size) = max_message_bytes {
            let field = "grpc.max_message_bytes";
            let bytes = size.size().and_then(|n| size_in(n, MAX_MESSAGE));
            grpc.max_message_bytes = file.check(field, bytes)?;
        }
        if let Some(interval) = keepalive_interval {
            grpc.keepalive_interval = file.check("grpc.keepalive_interval", interval.duration())?;
        }
        Ok(())
    }

    fn apply_file_capture(
        &mut self,
        raw: RawCapture,
        file: &FileCtx<'_>,
    ) -> Result<(), ConfigError> {
        let RawCapture {
            interfaces,
            workers,
            rcvbuf_bytes,
            verify_checksums,
            batch,
            snaplen,
        } = raw;
        if let Some(list) = interfaces {
            let mut out: Vec<InterfaceConfig> = Vec::with_capacity(list.len());
            for (i, raw) in list.into_iter().enumerate() {
                out.push(file_interface(raw, i, &out, file)?);
            }
            self.set_interfaces(out);
        }
        let capture = &mut self.config.capture;
        if let Some(n) = workers {
            capture.workers = file.check("capture.workers", n.int(WORKERS))?;
        }
        if let Some(size) = rcvbuf_bytes {
            let bytes = size.size().and_then(|n| size_in(n, RCVBUF));
            capture.rcvbuf_bytes = file.check("capture.rcvbuf_bytes", bytes)?;
        }
        if let Some(verify) = verify_checksums {
            capture.verify_checksums = verify;
        }
        if let Some(n) = batch {
            capture.batch = file.check("capture.batch", n.int(BATCH))?;
        }
        if let Some(n) = snaplen {
            capture.snaplen = file.check("capture.snaplen", n.int(SNAPLEN))?;
        }
        Ok(())
    }

    fn apply_file_conntrack(
        &mut self,
        raw: RawConntrack,
        file: &FileCtx<'_>,
    ) -> Result<(), ConfigError> {
        let RawConntrack {
            max_conns,
            default_zone_limit,
            zone_limits,
            sweep_interval,
            tcp_seq_check,
            event_capacity,
        } = raw;
        let conntrack = &mut self.config.conntrack;
        if let Some(n) = max_conns {
            conntrack.max_conns = file.check("conntrack.max_conns", n.int(U32))?;
        }
        if let Some(n) = default_zone_limit {
            let limit = file.check("conntrack.default_zone_limit", n.int(U32))?;
            conntrack.default_zone_limit = Some(limit);
        }
        if let Some(map) = zone_limits {
            let mut limits = BTreeMap::new();
            for (key, value) in map {
                let field = format!("conntrack.zone_limits.{key}");
                let zone = file.check(&field, key_in(&key, "zone", ZONE))?;
                let limit = file.check(&field, value.int(U32))?;
                if limits.insert(zone, limit).is_some() {
                    return Err(file.error(&field, format!("zone {zone} is listed twice")));
                }
            }
            conntrack.zone_limits = limits;
        }
        if let Some(interval) = sweep_interval {
            let field = "conntrack.sweep_interval";
            conntrack.sweep_interval = file.check(field, interval.duration().and_then(positive))?;
        }
        if let Some(check) = tcp_seq_check {
            conntrack.tcp_seq_check = check;
        }
        if let Some(n) = event_capacity {
            let field = "conntrack.event_capacity";
            conntrack.event_capacity = file.check(field, n.int(EVENT_CAPACITY))?;
        }
        Ok(())
    }

    fn apply_file_policies(
        &mut self,
        raw_policies: BTreeMap<String, BTreeMap<String, Loose>>,
        raw_bindings: BTreeMap<String, Loose>,
        file: &FileCtx<'_>,
    ) -> Result<(), ConfigError> {
        let mut policies = BTreeMap::new();
        for (key, attrs) in raw_policies {
            let field = format!("policies.{key}");
            let id = file.check(&field, key_in(&key, "policy id", U32))?;
            let mut overrides = Vec::with_capacity(attrs.len());
            for (name, value) in attrs {
                let field = format!("{field}.{name}");
                let attr: TimeoutAttr = name
                    .parse()
                    .map_err(|e: UnknownAttr| file.error(&field, e.to_string()))?;
                overrides.push((attr, file.check(&field, value.policy_secs())?));
            }
            if policies
                .insert(id, TimeoutPolicy::with(overrides))
                .is_some()
            {
                return Err(file.error(&field, format!("policy {id} is defined twice")));
            }
        }
        let mut bindings = BTreeMap::new();
        for (key, value) in raw_bindings {
            let field = format!("zone_policies.{key}");
            let zone = file.check(&field, key_in(&key, "zone", ZONE))?;
            let id = file.check(&field, value.int(U32))?;
            if id != 0 && !policies.contains_key(&id) {
                return Err(file.error(
                    &field,
                    format!(
                        "policy {id} is not defined (add a [policies.{id}] table, or bind the \
                         zone to 0 for the defaults)"
                    ),
                ));
            }
            if bindings.insert(zone, id).is_some() {
                return Err(file.error(&field, format!("zone {zone} is listed twice")));
            }
        }
        self.config.policies = policies;
        self.config.zone_policies = bindings;
        Ok(())
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        let origin = |var: &str| Origin::Env(var.to_owned());
        if let Some(listen) = env_parse(env, ENV_GRPC_LISTEN, str::parse)? {
            self.config.grpc.listen = listen;
            self.origins.insert(GRPC_LISTEN, origin(ENV_GRPC_LISTEN));
        }
        if let Some(insecure) = env_parse(env, ENV_INSECURE, parse_switch)? {
            self.config.grpc.insecure = insecure;
            self.origins.insert(INSECURE, origin(ENV_INSECURE));
        }
        for (var, field, slot) in [
            (ENV_TLS_CERT, TLS_CERT, &mut self.tls_cert),
            (ENV_TLS_KEY, TLS_KEY, &mut self.tls_key),
            (ENV_TLS_CLIENT_CA, TLS_CLIENT_CA, &mut self.tls_client_ca),
        ] {
            if let Some(path) = env_parse(env, var, parse_path)? {
                *slot = Some(path);
                self.origins.insert(field, origin(var));
            }
        }
        if let Some(list) = env_parse(env, ENV_ADMIN_IDENTITIES, |text| {
            split_list(text)
                .map(parse_identity)
                .collect::<Result<Vec<_>, _>>()
        })? {
            self.config.grpc.admin_identities = list;
            self.origins
                .insert(ADMIN_IDENTITIES, origin(ENV_ADMIN_IDENTITIES));
        }
        if let Some(listen) = env_parse(env, ENV_HEALTH_LISTEN, str::parse::<MetricsListen>)? {
            self.config.health.listen = listen.0;
            self.origins
                .insert(HEALTH_LISTEN, origin(ENV_HEALTH_LISTEN));
        }
        if let Some(listen) = env_parse(env, ENV_METRICS_LISTEN, str::parse::<MetricsListen>)? {
            self.config.metrics.listen = listen.0;
            self.origins
                .insert(METRICS_LISTEN, origin(ENV_METRICS_LISTEN));
        }
        if let Some(interfaces) = env_parse(env, ENV_INTERFACES, |text| {
            let specs = split_list(text)
                .map(str::parse)
                .collect::<Result<Vec<_>, _>>()?;
            merge_interfaces(&self.known_interfaces, &specs)
        })? {
            self.set_interfaces(interfaces);
        }
        let capture = &mut self.config.capture;
        if let Some(workers) = env_parse(env, ENV_WORKERS, parse_workers)? {
            capture.workers = workers;
        }
        if let Some(rcvbuf) = env_parse(env, ENV_RCVBUF, parse_rcvbuf)? {
            capture.rcvbuf_bytes = rcvbuf;
        }
        if let Some(verify) = env_parse(env, ENV_VERIFY_CHECKSUMS, parse_switch)? {
            capture.verify_checksums = verify;
        }
        let conntrack = &mut self.config.conntrack;
        if let Some(max) = env_parse(env, ENV_MAX_CONNS, parse_u32)? {
            conntrack.max_conns = max;
        }
        if let Some(limit) = env_parse(env, ENV_DEFAULT_ZONE_LIMIT, parse_u32)? {
            conntrack.default_zone_limit = Some(limit);
        }
        if let Some(interval) = env_parse(env, ENV_SWEEP_INTERVAL, parse_sweep_interval)? {
            conntrack.sweep_interval = interval;
        }
        if let Some(check) = env_parse(env, ENV_TCP_SEQ_CHECK, parse_switch)? {
            conntrack.tcp_seq_check = check;
        }
        if let Some(format) = env_parse(env, ENV_LOG_FORMAT, str::parse)? {
            self.config.log.format = format;
        }
        if let Some(filter) = env_parse(env, ENV_LOG, parse_filter)? {
            self.config.log.filter = filter;
        }
        if let Some(preload) = env_parse(env, ENV_PRELOAD, parse_path)? {
            self.config.preload = Some(preload);
        }
        Ok(())
    }

    fn apply_flags(&mut self, args: &DaemonArgs) -> Result<(), ConfigError> {
        // Destructured so that a new flag cannot be forgotten here.
        let DaemonArgs {
            config: _,
            listen,
            insecure,
            tls_cert,
            tls_key,
            tls_client_ca,
            admin_identities,
            metrics_listen,
            health_listen,
            interfaces,
            workers,
            rcvbuf,
            verify_checksums,
            max_conns,
            default_zone_limit,
            sweep_interval,
            no_tcp_seq_chk,
            log_format,
            preload,
        } = args;
        if let Some(listen) = listen {
            self.config.grpc.listen = listen.clone();
            self.origins.insert(GRPC_LISTEN, Origin::Flag("--listen"));
        }
        if *insecure {
            self.config.grpc.insecure = true;
            self.origins.insert(INSECURE, Origin::Flag("--insecure"));
        }
        for (flag, field, value, slot) in [
            ("--tls-cert", TLS_CERT, tls_cert, &mut self.tls_cert),
            ("--tls-key", TLS_KEY, tls_key, &mut self.tls_key),
            (
                "--tls-client-ca",
                TLS_CLIENT_CA,
                tls_client_ca,
                &mut self.tls_client_ca,
            ),
        ] {
            if let Some(path) = value {
                *slot = Some(check_flag(flag, parse_path(&path.to_string_lossy()))?);
                self.origins.insert(field, Origin::Flag(flag));
            }
        }
        if !admin_identities.is_empty() {
            self.config.grpc.admin_identities = admin_identities.clone();
            self.origins
                .insert(ADMIN_IDENTITIES, Origin::Flag("--admin-identity"));
        }
        if let Some(listen) = metrics_listen {
            self.config.metrics.listen = listen.0;
            self.origins
                .insert(METRICS_LISTEN, Origin::Flag("--metrics-listen"));
        }
        if let Some(listen) = health_listen {
            self.config.health.listen = listen.0;
            self.origins
                .insert(HEALTH_LISTEN, Origin::Flag("--health-listen"));
        }
        if !interfaces.is_empty() {
            let merged = merge_interfaces(&self.known_interfaces, interfaces);
            self.set_interfaces(check_flag("--interface", merged)?);
        }
        let capture = &mut self.config.capture;
        if let Some(workers) = workers {
            capture.workers = *workers;
        }
        if let Some(rcvbuf) = rcvbuf {
            capture.rcvbuf_bytes = *rcvbuf;
        }
        if let Some(verify) = verify_checksums {
            capture.verify_checksums = *verify;
        }
        let conntrack = &mut self.config.conntrack;
        if let Some(max) = max_conns {
            conntrack.max_conns = *max;
        }
        if let Some(limit) = default_zone_limit {
            conntrack.default_zone_limit = Some(*limit);
        }
        if let Some(interval) = sweep_interval {
            conntrack.sweep_interval = *interval;
        }
        if *no_tcp_seq_chk {
            conntrack.tcp_seq_check = false;
        }
        if let Some(format) = log_format {
            self.config.log.format = *format;
        }
        if let Some(preload) = preload {
            let path = check_flag("--preload", parse_path(&preload.to_string_lossy()))?;
            self.config.preload = Some(path);
        }
        Ok(())
    }

    /// Makes `list` the interfaces, and remembers its entries for later layers.
    fn set_interfaces(&mut self, list: Vec<InterfaceConfig>) {
        for interface in &list {
            match self
                .known_interfaces
                .iter_mut()
                .find(|known| known.name == interface.name)
            {
                Some(known) => *known = interface.clone(),
                None => self.known_interfaces.push(interface.clone()),
            }
        }
        self.config.capture.interfaces = list;
    }

    /// Checks the settings against one another and assembles the TLS files.
    fn finish(self) -> Result<Config, ConfigError> {
        let Self {
            mut config,
            tls_cert,
            tls_key,
            tls_client_ca,
            known_interfaces: _,
            origins,
        } = self;
        let origin = |field: &str| origins.get(field).cloned().unwrap_or(Origin::Default);
        let conflict = |field: &str, message: String| ConfigError::Invalid {
            origin: origin(field),
            message,
        };
        config.grpc.tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: tls_client_ca,
            }),
            (Some(_), None) => {
                return Err(conflict(
                    TLS_CERT,
                    "a TLS certificate needs its key: set grpc.tls.key (--tls-key, \
                     CTRACK_TLS_KEY) too"
                        .to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(conflict(
                    TLS_KEY,
                    "a TLS key needs its certificate: set grpc.tls.cert (--tls-cert, \
                     CTRACK_TLS_CERT) too"
                        .to_owned(),
                ));
            }
            (None, None) if tls_client_ca.is_some() => {
                return Err(conflict(
                    TLS_CLIENT_CA,
                    "a client CA needs TLS: set grpc.tls.cert and grpc.tls.key too".to_owned(),
                ));
            }
            (None, None) => None,
        };
        let grpc = &config.grpc;
        let has_client_ca = grpc.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        if !grpc.admin_identities.is_empty() && !has_client_ca {
            return Err(conflict(
                ADMIN_IDENTITIES,
                "admin identities are checked against client certificates: set \
                 grpc.tls.client_ca (--tls-client-ca, CTRACK_TLS_CLIENT_CA) too"
                    .to_owned(),
            ));
        }
        if grpc.insecure && grpc.tls.is_some() {
            return Err(conflict(
                INSECURE,
                "insecure (plaintext) contradicts the TLS settings in grpc.tls: keep one"
                    .to_owned(),
            ));
        }
        if !grpc.insecure && grpc.tls.is_none() && !grpc.listen.is_local() {
            return Err(conflict(
                GRPC_LISTEN,
                format!(
                    "refusing to serve plaintext gRPC on {}: configure TLS or pass --insecure",
                    grpc.listen
                ),
            ));
        }
        if let (Listen::Tcp(grpc_addr), Some(metrics_addr)) = (&grpc.listen, config.metrics.listen)
            && same_port(*grpc_addr, metrics_addr)
        {
            let field = if origins.contains_key(METRICS_LISTEN) {
                METRICS_LISTEN
            } else {
                GRPC_LISTEN
            };
            return Err(conflict(
                field,
                format!("metrics ({metrics_addr}) and gRPC ({grpc_addr}) would share a port"),
            ));
        }
        if let Some(health_addr) = config.health.listen {
            let grpc_port = match &grpc.listen {
                Listen::Tcp(a) => Some(*a),
                Listen::Unix(_) => None,
            };
            for (other, name) in [(grpc_port, "gRPC"), (config.metrics.listen, "metrics")] {
                if let Some(addr) = other.filter(|a| same_port(*a, health_addr)) {
                    return Err(conflict(
                        HEALTH_LISTEN,
                        format!("health ({health_addr}) and {name} ({addr}) would share a port"),
                    ));
                }
            }
        }
        Ok(config)
    }
}

/// The config file as written: every key optional, values loosely typed so that their
/// errors can name the field's path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    grpc: Option<RawGrpc>,
    metrics: Option<RawMetrics>,
    health: Option<RawMetrics>,
    capture: Option<RawCapture>,
    conntrack: Option<RawConntrack>,
    #[serde(default)]
    policies: BTreeMap<String, BTreeMap<String, Loose>>,
    #[serde(default)]
    zone_policies: BTreeMap<String, Loose>,
    log: Option<RawLog>,
    shutdown_grace: Option<Loose>,
    preload: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrpc {
    listen: Option<String>,
    insecure: Option<bool>,
    tls: Option<RawTls>,
    admin_identities: Option<Vec<String>>,
    request_timeout: Option<Loose>,
    max_concurrent_requests: Option<Loose>,
    max_message_bytes: Option<Loose>,
    keepalive_interval: Option<Loose>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    interfaces: Option<Vec<RawInterface>>,
    workers: Option<Loose>,
    rcvbuf_bytes: Option<Loose>,
    verify_checksums: Option<bool>,
    batch: Option<Loose>,
    snaplen: Option<Loose>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: String,
    zone: Option<Loose>,
    #[serde(default)]
    vlan_zones: BTreeMap<String, Loose>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConntrack {
    max_conns: Option<Loose>,
    default_zone_limit: Option<Loose>,
    zone_limits: Option<BTreeMap<String, Loose>>,
    sweep_interval: Option<Loose>,
    tcp_seq_check: Option<bool>,
    event_capacity: Option<Loose>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    filter: Option<String>,
}

/// A TOML value that is an integer or a string: a duration, size or timeout written either
/// way, or an integer (taken as `Loose` so that a quoted number's error names the field).
#[derive(Debug)]
enum Loose {
    Int(i64),
    Text(String),
}

impl Loose {
    /// An integer in `range`; written as a string, it is an error (no silent conversion).
    fn int<T>(&self, range: RangeInclusive<T>) -> Result<T, InvalidValue>
    where
        T: Copy + PartialOrd + fmt::Display + TryFrom<i64>,
    {
        match self {
            Self::Int(value) => int_in(*value, range),
            Self::Text(text) => Err(InvalidValue(format!(
                "{text:?} is not a number (write integers without quotes)"
            ))),
        }
    }

    fn duration(&self) -> Result<Duration, InvalidValue> {
        match self {
            Self::Int(secs) => u64::try_from(*secs)
                .map(Duration::from_secs)
                .map_err(|_| InvalidValue(format!("{secs} is not a duration (negative)"))),
            Self::Text(text) => parse_duration(text),
        }
    }

    fn size(&self) -> Result<u64, InvalidValue> {
        match self {
            Self::Int(bytes) => u64::try_from(*bytes)
                .map_err(|_| InvalidValue(format!("{bytes} is not a size (negative)"))),
            Self::Text(text) => parse_size(text),
        }
    }

    /// A timeout policy value: seconds, as an integer or a whole-second duration.
    fn policy_secs(&self) -> Result<u32, InvalidValue> {
        match self {
            Self::Int(secs) => int_in(*secs, U32),
            Self::Text(text) => {
                let duration = parse_duration(text)?;
                if duration.subsec_nanos() != 0 {
                    return Err(InvalidValue(format!(
                        "{text:?} is not a whole number of seconds"
                    )));
                }
                u32::try_from(duration.as_secs())
                    .map_err(|_| InvalidValue(format!("{text:?} is too long (at most 2^32-1 s)")))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl Visitor<'_> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer, or a string such as \"20s\" or \"8MiB\"")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Loose, E> {
        Ok(Loose::Int(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Loose, E> {
        i64::try_from(value)
            .map(Loose::Int)
            .map_err(|_| E::custom(format!("{value} is too large")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Loose, E> {
        Ok(Loose::Text(value.to_owned()))
    }
}

/// The file a field comes from, for errors.
struct FileCtx<'a> {
    path: Option<&'a Path>,
}

impl FileCtx<'_> {
    fn origin(&self, field: &str) -> Origin {
        Origin::File {
            path: self.path.map(Path::to_path_buf),
            field: field.to_owned(),
        }
    }

    fn error(&self, field: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin(field),
            message,
        }
    }

    fn check<T>(&self, field: &str, value: Result<T, InvalidValue>) -> Result<T, ConfigError> {
        value.map_err(|e| self.error(field, e.0))
    }
}

/// The TOML effective configuration.
struct Rendered<'a>(&'a Config);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Config {
            grpc,
            metrics,
            health,
            capture,
            conntrack,
            policies,
            zone_policies,
            log,
            shutdown_grace,
            preload,
        } = self.0;
        writeln!(f, "# ctrackd: effective configuration")?;
        writeln!(
            f,
            "shutdown_grace = {}",
            quote(&format_duration(*shutdown_grace))
        )?;
        if let Some(path) = preload {
            writeln!(f, "preload = {}", quote(&path.to_string_lossy()))?;
        }

        writeln!(f, "\n[grpc]")?;
        writeln!(f, "listen = {}", quote(&grpc.listen.to_string()))?;
        writeln!(f, "insecure = {}", grpc.insecure)?;
        let identities: Vec<String> = grpc.admin_identities.iter().map(|i| quote(i)).collect();
        writeln!(f, "admin_identities = [{}]", identities.join(", "))?;
        writeln!(
            f,
            "request_timeout = {}",
            quote(&format_duration(grpc.request_timeout))
        )?;
        writeln!(
            f,
            "max_concurrent_requests = {}",
            grpc.max_concurrent_requests
        )?;
        writeln!(
            f,
            "max_message_bytes = {}",
            size_value(grpc.max_message_bytes)
        )?;
        writeln!(
            f,
            "keepalive_interval = {}",
            quote(&format_duration(grpc.keepalive_interval))
        )?;
        if let Some(tls) = &grpc.tls {
            writeln!(f, "\n[grpc.tls]")?;
            writeln!(f, "cert = {}", quote(&tls.cert.to_string_lossy()))?;
            writeln!(f, "key = {}", quote(&tls.key.to_string_lossy()))?;
            if let Some(ca) = &tls.client_ca {
                writeln!(f, "client_ca = {}", quote(&ca.to_string_lossy()))?;
            }
        }

        writeln!(f, "\n[metrics]")?;
        writeln!(
            f,
            "listen = {}",
            quote(&MetricsListen(metrics.listen).to_string())
        )?;

        writeln!(f, "\n[health]")?;
        writeln!(
            f,
            "listen = {}",
            quote(&MetricsListen(health.listen).to_string())
        )?;

        writeln!(f, "\n[capture]")?;
        if capture.interfaces.is_empty() {
            writeln!(f, "interfaces = []")?;
        } else {
            writeln!(f, "interfaces = [")?;
            for interface in &capture.interfaces {
                let vlans: Vec<String> = interface
                    .vlan_zones
                    .iter()
                    .map(|(vlan, zone)| format!("{vlan} = {zone}"))
                    .collect();
                let vlans = if vlans.is_empty() {
                    "{}".to_owned()
                } else {
                    format!("{{ {} }}", vlans.join(", "))
                };
                writeln!(
                    f,
                    "  {{ name = {}, zone = {}, vlan_zones = {vlans} }},",
                    quote(&interface.name),
                    interface.zone
                )?;
            }
            writeln!(f, "]")?;
        }
        writeln!(f, "workers = {}", capture.workers)?;
        writeln!(f, "rcvbuf_bytes = {}", size_value(capture.rcvbuf_bytes))?;
        writeln!(f, "verify_checksums = {}", capture.verify_checksums)?;
        writeln!(f, "batch = {}", capture.batch)?;
        writeln!(f, "snaplen = {}", capture.snaplen)?;

        writeln!(f, "\n[conntrack]")?;
        writeln!(f, "max_conns = {}", conntrack.max_conns)?;
        if let Some(limit) = conntrack.default_zone_limit {
            writeln!(f, "default_zone_limit = {limit}")?;
        }
        writeln!(
            f,
            "sweep_interval = {}",
            quote(&format_duration(conntrack.sweep_interval))
        )?;
        writeln!(f, "tcp_seq_check = {}", conntrack.tcp_seq_check)?;
        writeln!(f, "event_capacity = {}", conntrack.event_capacity)?;
        if !conntrack.zone_limits.is_empty() {
            writeln!(f, "\n[conntrack.zone_limits]")?;
            for (zone, limit) in &conntrack.zone_limits {
                writeln!(f, "{zone} = {limit}")?;
            }
        }

        for (id, policy) in policies {
            writeln!(f, "\n[policies.{id}]")?;
            for (attr, secs) in policy.iter() {
                writeln!(f, "{attr} = {secs}")?;
            }
        }
        if !zone_policies.is_empty() {
            writeln!(f, "\n[zone_policies]")?;
            for (zone, id) in zone_policies {
                writeln!(f, "{zone} = {id}")?;
            }
        }

        writeln!(f, "\n[log]")?;
        writeln!(f, "format = {}", quote(&log.format.to_string()))?;
        writeln!(f, "filter = {}", quote(&log.filter))
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// `var`'s value in `env`, parsed; errors name the variable.
fn env_parse<T>(
    env: &HashMap<String, String>,
    var: &str,
    parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
) -> Result<Option<T>, ConfigError> {
    env.get(var)
        .map(|text| parse(text))
        .transpose()
        .map_err(|e| ConfigError::Invalid {
            origin: Origin::Env(var.to_owned()),
            message: e.0,
        })
}

fn check_flag<T>(flag: &'static str, value: Result<T, InvalidValue>) -> Result<T, ConfigError> {
    value.map_err(|e| ConfigError::Invalid {
        origin: Origin::Flag(flag),
        message: e.0,
    })
}

/// The items of a comma-separated list, trimmed; an empty or blank text is an empty list.
fn split_list(text: &str) -> impl Iterator<Item = &str> {
    let text = text.trim();
    text.split(',')
        .map(str::trim)
        .filter(move |_| !text.is_empty())
}

fn file_interface(
    raw: RawInterface,
    index: usize,
    before: &[InterfaceConfig],
    file: &FileCtx<'_>,
) -> Result<InterfaceConfig, ConfigError> {
    let RawInterface {
        name,
        zone,
        vlan_zones,
    } = raw;
    let at = |field: &str| format!("capture.interfaces[{index}].{field}");
    file.check(&at("name"), check_interface_name(&name))?;
    if let Some(other) = before.iter().position(|i| i.name == name) {
        return Err(file.error(
            &at("name"),
            format!("{name:?} is listed twice (also capture.interfaces[{other}])"),
        ));
    }
    let zone = match zone {
        Some(zone) => file.check(&at("zone"), zone.int(ZONE))?,
        None => 0,
    };
    let mut vlans = BTreeMap::new();
    for (key, value) in vlan_zones {
        let field = at(&format!("vlan_zones.{key}"));
        let vlan = file.check(&field, key_in(&key, "VLAN id", VLAN))?;
        let vlan_zone = file.check(&field, value.int(ZONE))?;
        if vlans.insert(vlan, vlan_zone).is_some() {
            return Err(file.error(&field, format!("VLAN {vlan} is listed twice")));
        }
    }
    Ok(InterfaceConfig {
        name,
        zone,
        vlan_zones: vlans,
    })
}

/// The interfaces `specs` names; one in `known` (named by a layer below) keeps its VLAN map,
/// and its zone when the spec gives none.
fn merge_interfaces(
    known: &[InterfaceConfig],
    specs: &[InterfaceSpec],
) -> Result<Vec<InterfaceConfig>, InvalidValue> {
    let mut out: Vec<InterfaceConfig> = Vec::with_capacity(specs.len());
    for spec in specs {
        if out.iter().any(|i| i.name == spec.name) {
            return Err(InvalidValue(format!("{:?} is listed twice", spec.name)));
        }
        let previous = known.iter().find(|i| i.name == spec.name);
        out.push(InterfaceConfig {
            name: spec.name.clone(),
            zone: spec.zone.or(previous.map(|p| p.zone)).unwrap_or(0),
            vlan_zones: previous.map(|p| p.vlan_zones.clone()).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Linux's rules for interface names (`dev_valid_name`).
fn check_interface_name(name: &str) -> Result<(), InvalidValue> {
    let problem = if name.is_empty() {
        "is empty"
    } else if name.len() > 15 {
        "is longer than 15 bytes"
    } else if name == "." || name == ".." {
        "is reserved"
    } else if name.contains(['/', ':']) || name.contains(char::is_whitespace) {
        "contains '/', ':' or whitespace"
    } else {
        return Ok(());
    };
    Err(InvalidValue(format!(
        "{name:?} is not an interface name (it {problem})"
    )))
}

fn parse_identity(text: &str) -> Result<String, InvalidValue> {
    if text.is_empty() || text.trim() != text || text.contains(char::is_control) {
        return Err(InvalidValue(format!(
            "{text:?} is not an identity (expected a certificate name, not empty, without \
             surrounding spaces)"
        )));
    }
    Ok(text.to_owned())
}

fn parse_filter(text: &str) -> Result<String, InvalidValue> {
    if text.trim().is_empty() {
        return Err(InvalidValue(
            "the log filter is empty (expected directives such as \"info\")".to_owned(),
        ));
    }
    Ok(text.to_owned())
}

fn parse_path(text: &str) -> Result<PathBuf, InvalidValue> {
    if text.is_empty() {
        return Err(InvalidValue("the path is empty".to_owned()));
    }
    Ok(PathBuf::from(text))
}

fn parse_workers(text: &str) -> Result<usize, InvalidValue> {
    parse_int(text, WORKERS)
}

fn parse_u32(text: &str) -> Result<u32, InvalidValue> {
    parse_int(text, U32)
}

fn parse_rcvbuf(text: &str) -> Result<usize, InvalidValue> {
    size_in(parse_size(text)?, RCVBUF)
}

fn parse_sweep_interval(text: &str) -> Result<Duration, InvalidValue> {
    parse_duration(text).and_then(positive)
}

/// An integer in `range`, from text.
fn parse_int<T>(text: &str, range: RangeInclusive<T>) -> Result<T, InvalidValue>
where
    T: Copy + PartialOrd + fmt::Display + TryFrom<i64>,
{
    match text.trim().parse::<i64>() {
        Ok(value) => int_in(value, range),
        Err(e)
            if matches!(
                e.kind(),
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
            ) =>
        {
            Err(out_of_range(text.trim(), &range))
        }
        Err(_) => Err(InvalidValue(format!("{text:?} is not a number"))),
    }
}

/// A map key that is an integer in `range` (TOML keys are strings).
fn key_in<T>(key: &str, what: &str, range: RangeInclusive<T>) -> Result<T, InvalidValue>
where
    T: Copy + PartialOrd + fmt::Display + TryFrom<i64>,
{
    parse_int(key, range.clone()).map_err(|_| {
        InvalidValue(format!(
            "{key:?} is not a {what} ({}..={})",
            range.start(),
            range.end()
        ))
    })
}

fn int_in<T>(value: i64, range: RangeInclusive<T>) -> Result<T, InvalidValue>
where
    T: Copy + PartialOrd + fmt::Display + TryFrom<i64>,
{
    match T::try_from(value) {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(out_of_range(value, &range)),
    }
}

fn out_of_range<T: fmt::Display>(
    value: impl fmt::Display,
    range: &RangeInclusive<T>,
) -> InvalidValue {
    InvalidValue(format!(
        "{value} is out of range ({}..={})",
        range.start(),
        range.end()
    ))
}

fn size_in(bytes: u64, range: RangeInclusive<u64>) -> Result<usize, InvalidValue> {
    match usize::try_from(bytes) {
        Ok(n) if range.contains(&bytes) => Ok(n),
        _ => Err(InvalidValue(format!(
            "{} is out of range ({}..={})",
            format_size(bytes),
            format_size(*range.start()),
            format_size(*range.end())
        ))),
    }
}

fn positive(duration: Duration) -> Result<Duration, InvalidValue> {
    if duration.is_zero() {
        return Err(InvalidValue(
            "0s is too short (must be more than zero)".to_owned(),
        ));
    }
    Ok(duration)
}

fn too_long(text: &str) -> InvalidValue {
    InvalidValue(format!("{text:?} is too long"))
}

/// Whether two TCP addresses would collide when both are bound.
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A size as a TOML value: a bare integer, or a string with a unit.
fn size_value(bytes: usize) -> String {
    let text = format_size(bytes as u64);
    if text.bytes().all(|b| b.is_ascii_digit()) {
        text
    } else {
        quote(&text)
    }
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    (line, column)
}

fn syntax_location(file: Option<&Path>, line_col: Option<(usize, usize)>) -> String {
    let file = match file {
        Some(path) => format!("config file {}", path.display()),
        None => "config".to_owned(),
    };
    match line_col {
        Some((line, column)) => format!("{file}: line {line}, column {column}"),
        None => file,
    }
}

const DEFAULT_GRPC_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 50_051);
const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9_100);

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Duration units, smallest first, in nanoseconds.
const DURATION_UNITS: [(&str, u128); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("h", 3_600 * NANOS_PER_SEC),
    ("d", 86_400 * NANOS_PER_SEC),
];

/// Size units, smallest first.
const SIZE_UNITS: [(&str, u64); 5] = [
    ("", 1),
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

const ZONE: RangeInclusive<u16> = 0..=u16::MAX;
const VLAN: RangeInclusive<u16> = 0..=4_095;
const U32: RangeInclusive<u32> = 0..=u32::MAX;
const WORKERS: RangeInclusive<usize> = 0..=1_024;
const BATCH: RangeInclusive<usize> = 1..=65_536;
const SNAPLEN: RangeInclusive<usize> = 128..=262_144;
const MAX_CONCURRENT: RangeInclusive<usize> = 1..=65_536;
const EVENT_CAPACITY: RangeInclusive<usize> = 1..=16_777_216;
/// The kernel silently caps `SO_RCVBUF` requests at `INT_MAX / 2`, just under 1 GiB.
const RCVBUF: RangeInclusive<u64> = 0..=(1 << 30);
const MAX_MESSAGE: RangeInclusive<u64> = (KIB as u64)..=(1 << 30);

// Fields whose origins `Builder::finish` reports.
const GRPC_LISTEN: &str = "grpc.listen";
const INSECURE: &str = "grpc.insecure";
const TLS_CERT: &str = "grpc.tls.cert";
const TLS_KEY: &str = "grpc.tls.key";
const TLS_CLIENT_CA: &str = "grpc.tls.client_ca";
const ADMIN_IDENTITIES: &str = "grpc.admin_identities";
const METRICS_LISTEN: &str = "metrics.listen";
const HEALTH_LISTEN: &str = "health.listen";

const ENV_PREFIX: &str = "CTRACK_";
const ENV_CONFIG: &str = "CTRACK_CONFIG";
const ENV_GRPC_LISTEN: &str = "CTRACK_GRPC_LISTEN";
const ENV_INSECURE: &str = "CTRACK_INSECURE";
const ENV_TLS_CERT: &str = "CTRACK_TLS_CERT";
const ENV_TLS_KEY: &str = "CTRACK_TLS_KEY";
const ENV_TLS_CLIENT_CA: &str = "CTRACK_TLS_CLIENT_CA";
const ENV_ADMIN_IDENTITIES: &str = "CTRACK_ADMIN_IDENTITIES";
const ENV_METRICS_LISTEN: &str = "CTRACK_METRICS_LISTEN";
const ENV_HEALTH_LISTEN: &str = "CTRACK_HEALTH_LISTEN";
const ENV_INTERFACES: &str = "CTRACK_INTERFACES";
const ENV_WORKERS: &str = "CTRACK_WORKERS";
const ENV_RCVBUF: &str = "CTRACK_RCVBUF";
const ENV_VERIFY_CHECKSUMS: &str = "CTRACK_VERIFY_CHECKSUMS";
const ENV_MAX_CONNS: &str = "CTRACK_MAX_CONNS";
const ENV_DEFAULT_ZONE_LIMIT: &str = "CTRACK_DEFAULT_ZONE_LIMIT";
const ENV_SWEEP_INTERVAL: &str = "CTRACK_SWEEP_INTERVAL";
const ENV_TCP_SEQ_CHECK: &str = "CTRACK_TCP_SEQ_CHECK";
const ENV_LOG_FORMAT: &str = "CTRACK_LOG_FORMAT";
const ENV_LOG: &str = "CTRACK_LOG";
const ENV_PRELOAD: &str = "CTRACK_PRELOAD";

/// Every variable [`Config::load`] reads.
/// Variables of `ctrackctl`, which shares the prefix: not typos of the daemon's.
const CLIENT_ENV_VARS: [&str; 1] = ["CTRACK_SERVER"];

const ENV_VARS: [&str; 20] = [
    ENV_CONFIG,
    ENV_GRPC_LISTEN,
    ENV_INSECURE,
    ENV_TLS_CERT,
    ENV_TLS_KEY,
    ENV_TLS_CLIENT_CA,
    ENV_ADMIN_IDENTITIES,
    ENV_METRICS_LISTEN,
    ENV_HEALTH_LISTEN,
    ENV_INTERFACES,
    ENV_WORKERS,
    ENV_RCVBUF,
    ENV_VERIFY_CHECKSUMS,
    ENV_MAX_CONNS,
    ENV_DEFAULT_ZONE_LIMIT,
    ENV_SWEEP_INTERVAL,
    ENV_TCP_SEQ_CHECK,
    ENV_LOG_FORMAT,
    ENV_LOG,
    ENV_PRELOAD,
];

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    const EXAMPLE: &str = include_str!("../../deploy/ctrack.example.toml");

    /// A top-level command that flattens the flags, as `ctrackd`'s does.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: DaemonArgs,
    }

    fn try_flags(argv: &[&str]) -> Result<DaemonArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("ctrackd").chain(argv.iter().copied()))
            .map(|cli| cli.args)
    }

    fn flags(argv: &[&str]) -> DaemonArgs {
        try_flags(argv).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn toml(text: &str) -> Config {
        Config::from_toml_str(text).unwrap()
    }

    fn toml_err(text: &str) -> String {
        Config::from_toml_str(text).unwrap_err().to_string()
    }

    fn load(args: &DaemonArgs, env: &HashMap<String, String>) -> Config {
        Config::load(args, env).unwrap()
    }

    fn load_err(args: &DaemonArgs, env: &HashMap<String, String>) -> String {
        Config::load(args, env).unwrap_err().to_string()
    }

    fn assert_contains(text: &str, parts: &[&str]) {
        for part in parts {
            assert!(text.contains(part), "{text:?} does not contain {part:?}");
        }
    }

    /// A file in the temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "ctrack-config-test-{}-{name}.toml",
                std::process::id()
            ));
            std::fs::write(&path, text).unwrap();
            Self(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// Every field different from its default.
    fn full_config() -> Config {
        Config {
            grpc: GrpcConfig {
                listen: Listen::Tcp(addr("[::]:6000")),
                insecure: false,
                tls: Some(TlsFiles {
                    cert: "/etc/ctrack/server \"a\".crt".into(),
                    key: "C:\\keys\\server.key".into(),
                    client_ca: Some("/etc/ctrack/ca.crt".into()),
                }),
                admin_identities: vec![
                    "admin.example.com".into(),
                    "ops \"\u{e9}quipe\" \\1".into(),
                ],
                request_timeout: Duration::from_millis(1_500),
                max_concurrent_requests: 7,
                max_message_bytes: 1_000_000,
                keepalive_interval: Duration::ZERO,
            },
            metrics: MetricsConfig { listen: None },
            health: HealthConfig {
                listen: Some("0.0.0.0:50052".parse().unwrap()),
            },
            capture: CaptureSection {
                interfaces: vec![
                    InterfaceConfig {
                        name: "eth0".into(),
                        zone: 3,
                        vlan_zones: BTreeMap::from([(100, 4), (4_095, 65_535)]),
                    },
                    InterfaceConfig {
                        name: "veth-a.1".into(),
                        zone: 0,
                        vlan_zones: BTreeMap::new(),
                    },
                ],
                workers: 4,
                rcvbuf_bytes: 3 * KIB,
                verify_checksums: true,
                batch: 1,
                snaplen: 1_500,
            },
            conntrack: ConntrackSection {
                max_conns: 0,
                default_zone_limit: Some(1_000),
                zone_limits: BTreeMap::from([(0, 5), (65_535, u32::MAX)]),
                sweep_interval: Duration::from_secs(90),
                tcp_seq_check: false,
                event_capacity: 10,
            },
            policies: BTreeMap::from([
                (0, TimeoutPolicy::with([(TimeoutAttr::TcpClose, 1)])),
                (
                    u32::MAX,
                    TimeoutPolicy::with([(TimeoutAttr::UdpFirst, 0), (TimeoutAttr::IcmpReply, 9)]),
                ),
            ]),
            zone_policies: BTreeMap::from([(1, 0), (2, u32::MAX)]),
            log: LogConfig {
                format: LogFormat::Json,
                filter: "info,ctrack_server=debug".into(),
            },
            shutdown_grace: Duration::ZERO,
            preload: Some("/tmp/demo.pcap".into()),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.grpc.listen, Listen::Tcp(addr("127.0.0.1:50051")));
        assert!(!c.grpc.insecure);
        assert_eq!(c.grpc.tls, None);
        assert!(c.grpc.admin_identities.is_empty());
        assert_eq!(c.grpc.request_timeout, Duration::from_secs(10));
        assert_eq!(c.grpc.max_concurrent_requests, 64);
        assert_eq!(c.grpc.max_message_bytes, 4 << 20);
        assert_eq!(c.grpc.keepalive_interval, Duration::from_secs(30));
        assert_eq!(c.metrics.listen, Some(addr("127.0.0.1:9100")));
        assert!(c.capture.interfaces.is_empty());
        assert_eq!(c.capture.workers, 0);
        assert_eq!(c.capture.rcvbuf_bytes, 8 << 20);
        assert!(!c.capture.verify_checksums);
        assert_eq!(c.capture.batch, 32);
        assert_eq!(c.capture.snaplen, 65_600);
        assert_eq!(c.conntrack.max_conns, 3_000_000);
        assert_eq!(c.conntrack.default_zone_limit, None);
        assert!(c.conntrack.zone_limits.is_empty());
        assert_eq!(c.conntrack.sweep_interval, Duration::from_secs(20));
        assert!(c.conntrack.tcp_seq_check);
        assert_eq!(c.conntrack.event_capacity, 65_536);
        assert!(c.policies.is_empty());
        assert!(c.zone_policies.is_empty());
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.filter, "info");
        assert_eq!(c.shutdown_grace, Duration::from_secs(5));
        assert_eq!(c.preload, None);
    }

    #[test]
    fn no_sources_give_the_defaults() {
        assert_eq!(
            load(&DaemonArgs::default(), &HashMap::new()),
            Config::default()
        );
        assert_eq!(load(&flags(&[]), &HashMap::new()), Config::default());
        assert_eq!(toml(""), Config::default());
        assert_eq!(toml("[grpc]\n[capture]\n[log]\n"), Config::default());
    }

    #[test]
    fn each_layer_overrides_the_one_before() {
        let file = TempFile::new(
            "layers",
            "[capture]\nworkers = 2\n[conntrack]\nmax_conns = 10\nsweep_interval = 7\n\
             [log]\nformat = \"json\"\nfilter = \"debug\"\n",
        );
        let none = HashMap::new();
        let file_args = flags(&["--config", file.path()]);
        let c = load(&file_args, &none);
        assert_eq!(
            (c.capture.workers, c.conntrack.max_conns),
            (2, 10),
            "file over defaults"
        );
        assert_eq!(c.conntrack.sweep_interval, Duration::from_secs(7));
        assert_eq!(c.log.format, LogFormat::Json);

        let vars = env(&[
            ("CTRACK_WORKERS", "3"),
            ("CTRACK_MAX_CONNS", "20"),
            ("CTRACK_LOG", "warn"),
        ]);
        let c = load(&file_args, &vars);
        assert_eq!(
            (c.capture.workers, c.conntrack.max_conns),
            (3, 20),
            "env over file"
        );
        assert_eq!(c.log.filter, "warn");
        assert_eq!(c.log.format, LogFormat::Json, "what env leaves alone stays");

        let all = flags(&[
            "--config",
            file.path(),
            "--workers",
            "4",
            "--log-format",
            "text",
        ]);
        let c = load(&all, &vars);
        assert_eq!(c.capture.workers, 4, "flag over env");
        assert_eq!(c.conntrack.max_conns, 20);
        assert_eq!(c.log.format, LogFormat::Text, "flag over file");
        assert_eq!(c.conntrack.sweep_interval, Duration::from_secs(7));
    }

    #[test]
    fn config_file_from_flag_or_environment() {
        let a = TempFile::new("env-file", "[capture]\nworkers = 1\n");
        let b = TempFile::new("flag-file", "[capture]\nworkers = 2\n");
        let vars = env(&[("CTRACK_CONFIG", a.path())]);
        assert_eq!(load(&DaemonArgs::default(), &vars).capture.workers, 1);
        let args = flags(&["--config", b.path()]);
        assert_eq!(load(&args, &vars).capture.workers, 2, "--config wins");

        let missing = "/nonexistent/ctrack.toml";
        let e = load_err(&flags(&["--config", missing]), &HashMap::new());
        assert_contains(
            &e,
            &["config file /nonexistent/ctrack.toml: ", "No such file"],
        );
        let e = load_err(&DaemonArgs::default(), &env(&[("CTRACK_CONFIG", "")]));
        assert_eq!(e, "environment CTRACK_CONFIG: the path is empty");
    }

    #[test]
    fn file_errors_name_the_file_and_the_field() {
        let file = TempFile::new(
            "bad-zone",
            "[capture]\ninterfaces = [{ name = \"eth0\" }, { name = \"eth1\", zone = 70000 }]\n",
        );
        let expected = format!(
            "config file {}: capture.interfaces[1].zone: 70000 is out of range (0..=65535)",
            file.path()
        );
        let e = Config::from_file(&file.0).unwrap_err().to_string();
        assert_eq!(e, expected);
        assert_eq!(
            load_err(&flags(&["--config", file.path()]), &HashMap::new()),
            expected
        );
        let e = toml_err("[conntrack]\nmax_conns = -1\n");
        assert_eq!(
            e,
            "config: conntrack.max_conns: -1 is out of range (0..=4294967295)"
        );
    }

    #[test]
    fn every_environment_variable() {
        let vars = env(&[
            ("CTRACK_GRPC_LISTEN", "0.0.0.0:7000"),
            ("CTRACK_TLS_CERT", "/c.pem"),
            ("CTRACK_TLS_KEY", "/k.pem"),
            ("CTRACK_TLS_CLIENT_CA", "/ca.pem"),
            ("CTRACK_ADMIN_IDENTITIES", " alice , bob.example "),
            ("CTRACK_METRICS_LISTEN", "off"),
            ("CTRACK_INTERFACES", "eth0:5, eth1"),
            ("CTRACK_WORKERS", "6"),
            ("CTRACK_RCVBUF", "16MiB"),
            ("CTRACK_VERIFY_CHECKSUMS", "on"),
            ("CTRACK_MAX_CONNS", "123"),
            ("CTRACK_DEFAULT_ZONE_LIMIT", "45"),
            ("CTRACK_SWEEP_INTERVAL", "500ms"),
            ("CTRACK_TCP_SEQ_CHECK", "off"),
            ("CTRACK_LOG_FORMAT", "json"),
            ("CTRACK_LOG", "ctrack=trace"),
            ("CTRACK_PRELOAD", "/p.pcap"),
        ]);
        let c = load(&DaemonArgs::default(), &vars);
        assert_eq!(c.grpc.listen, Listen::Tcp(addr("0.0.0.0:7000")));
        assert_eq!(
            c.grpc.tls,
            Some(TlsFiles {
                cert: "/c.pem".into(),
                key: "/k.pem".into(),
                client_ca: Some("/ca.pem".into()),
            })
        );
        assert_eq!(c.grpc.admin_identities, ["alice", "bob.example"]);
        assert_eq!(c.metrics.listen, None);
        assert_eq!(
            c.capture.interfaces,
            [
                InterfaceConfig {
                    name: "eth0".into(),
                    zone: 5,
                    vlan_zones: BTreeMap::new()
                },
                InterfaceConfig {
                    name: "eth1".into(),
                    zone: 0,
                    vlan_zones: BTreeMap::new()
                },
            ]
        );
        assert_eq!(c.capture.workers, 6);
        assert_eq!(c.capture.rcvbuf_bytes, 16 << 20);
        assert!(c.capture.verify_checksums);
        assert_eq!(c.conntrack.max_conns, 123);
        assert_eq!(c.conntrack.default_zone_limit, Some(45));
        assert_eq!(c.conntrack.sweep_interval, Duration::from_millis(500));
        assert!(!c.conntrack.tcp_seq_check);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.filter, "ctrack=trace");
        assert_eq!(c.preload, Some("/p.pcap".into()));

        // CTRACK_INSECURE (TLS above would contradict it) and the other switch spellings.
        let vars = env(&[
            ("CTRACK_GRPC_LISTEN", "unix:/run/ctrack.sock"),
            ("CTRACK_INSECURE", "TRUE"),
            ("CTRACK_VERIFY_CHECKSUMS", "false"),
            ("CTRACK_TCP_SEQ_CHECK", "On"),
            ("CTRACK_METRICS_LISTEN", "[::1]:9999"),
        ]);
        let c = load(&DaemonArgs::default(), &vars);
        assert_eq!(c.grpc.listen, Listen::Unix("/run/ctrack.sock".into()));
        assert!(c.grpc.insecure);
        assert!(!c.capture.verify_checksums);
        assert!(c.conntrack.tcp_seq_check);
        assert_eq!(c.metrics.listen, Some(addr("[::1]:9999")));
    }

    #[test]
    fn empty_environment_lists_clear_the_file_lists() {
        let file = TempFile::new(
            "lists",
            "[grpc]\nadmin_identities = [\"a\"]\n[grpc.tls]\ncert = \"/c\"\nkey = \"/k\"\n\
             client_ca = \"/ca\"\n[capture]\ninterfaces = [{ name = \"eth0\" }]\n",
        );
        let args = flags(&["--config", file.path()]);
        let c = load(&args, &HashMap::new());
        assert_eq!(c.grpc.admin_identities, ["a"]);
        assert_eq!(c.capture.interfaces.len(), 1);
        let vars = env(&[("CTRACK_ADMIN_IDENTITIES", ""), ("CTRACK_INTERFACES", " ")]);
        let c = load(&args, &vars);
        assert!(c.grpc.admin_identities.is_empty());
        assert!(c.capture.interfaces.is_empty());
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let cases: &[(&str, &str, &str)] = &[
            ("CTRACK_MAX_CONNS", "abc", "\"abc\" is not a number"),
            (
                "CTRACK_MAX_CONNS",
                "4294967296",
                "4294967296 is out of range (0..=4294967295)",
            ),
            (
                "CTRACK_MAX_CONNS",
                "99999999999999999999",
                "is out of range",
            ),
            ("CTRACK_DEFAULT_ZONE_LIMIT", "-1", "-1 is out of range"),
            ("CTRACK_WORKERS", "1025", "1025 is out of range (0..=1024)"),
            ("CTRACK_WORKERS", "", "\"\" is not a number"),
            ("CTRACK_RCVBUF", "8MB", "sizes are binary"),
            ("CTRACK_RCVBUF", "2GiB", "2GiB is out of range (0..=1GiB)"),
            (
                "CTRACK_SWEEP_INTERVAL",
                "soon",
                "\"soon\" is not a duration",
            ),
            ("CTRACK_SWEEP_INTERVAL", "0s", "must be more than zero"),
            ("CTRACK_VERIFY_CHECKSUMS", "yes", "\"yes\" is not a switch"),
            ("CTRACK_TCP_SEQ_CHECK", "1", "\"1\" is not a switch"),
            ("CTRACK_INSECURE", "maybe", "\"maybe\" is not a switch"),
            (
                "CTRACK_GRPC_LISTEN",
                "localhost:1",
                "\"localhost:1\" is not a listen address",
            ),
            ("CTRACK_GRPC_LISTEN", "unix:", "the path is empty"),
            (
                "CTRACK_METRICS_LISTEN",
                "none",
                "\"none\" is not an address",
            ),
            (
                "CTRACK_INTERFACES",
                "eth0:70000",
                "\"eth0:70000\": zone 70000 is out of range",
            ),
            (
                "CTRACK_INTERFACES",
                "eth0,,eth1",
                "\"\" is not an interface name",
            ),
            (
                "CTRACK_INTERFACES",
                "eth0,eth0:1",
                "\"eth0\" is listed twice",
            ),
            (
                "CTRACK_INTERFACES",
                "a/b",
                "\"a/b\" is not an interface name",
            ),
            ("CTRACK_ADMIN_IDENTITIES", "a,,b", "\"\" is not an identity"),
            ("CTRACK_TLS_CERT", "", "the path is empty"),
            ("CTRACK_TLS_KEY", "", "the path is empty"),
            ("CTRACK_TLS_CLIENT_CA", "", "the path is empty"),
            ("CTRACK_LOG_FORMAT", "xml", "\"xml\" is not a log format"),
            ("CTRACK_LOG", " ", "the log filter is empty"),
            ("CTRACK_PRELOAD", "", "the path is empty"),
        ];
        for &(var, value, message) in cases {
            let e = load_err(&DaemonArgs::default(), &env(&[(var, value)]));
            assert_contains(&e, &[&format!("environment {var}: "), message]);
        }
        assert_eq!(
            load_err(&DaemonArgs::default(), &env(&[("CTRACK_MAX_CONNS", "abc")])),
            "environment CTRACK_MAX_CONNS: \"abc\" is not a number"
        );
    }

    #[test]
    fn every_flag() {
        let args = flags(&[
            "--listen",
            "10.0.0.1:7000",
            "--tls-cert",
            "/c.pem",
            "--tls-key",
            "/k.pem",
            "--tls-client-ca",
            "/ca.pem",
            "--admin-identity",
            "alice",
            "--admin-identity",
            "bob",
            "--metrics-listen",
            "0.0.0.0:9200",
            "--interface",
            "eth0:5",
            "--interface",
            "eth1",
            "--workers",
            "2",
            "--rcvbuf",
            "65536",
            "--verify-checksums",
            "on",
            "--max-conns",
            "9",
            "--default-zone-limit",
            "0",
            "--sweep-interval",
            "1m30s",
            "--no-tcp-seq-chk",
            "--log-format",
            "json",
            "--preload",
            "/p.pcap",
        ]);
        let c = load(&args, &HashMap::new());
        assert_eq!(c.grpc.listen, Listen::Tcp(addr("10.0.0.1:7000")));
        assert_eq!(
            c.grpc.tls,
            Some(TlsFiles {
                cert: "/c.pem".into(),
                key: "/k.pem".into(),
                client_ca: Some("/ca.pem".into()),
            })
        );
        assert_eq!(c.grpc.admin_identities, ["alice", "bob"]);
        assert_eq!(c.metrics.listen, Some(addr("0.0.0.0:9200")));
        let names: Vec<(&str, u16)> = c
            .capture
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), i.zone))
            .collect();
        assert_eq!(names, [("eth0", 5), ("eth1", 0)]);
        assert_eq!(c.capture.workers, 2);
        assert_eq!(c.capture.rcvbuf_bytes, 65_536);
        assert!(c.capture.verify_checksums);
        assert_eq!(c.conntrack.max_conns, 9);
        assert_eq!(c.conntrack.default_zone_limit, Some(0));
        assert_eq!(c.conntrack.sweep_interval, Duration::from_secs(90));
        assert!(!c.conntrack.tcp_seq_check);
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.preload, Some("/p.pcap".into()));

        let c = load(
            &flags(&[
                "--listen",
                "unix:/tmp/s",
                "--insecure",
                "--metrics-listen",
                "off",
                "--verify-checksums",
                "off",
            ]),
            &env(&[("CTRACK_VERIFY_CHECKSUMS", "on")]),
        );
        assert_eq!(c.grpc.listen, Listen::Unix("/tmp/s".into()));
        assert!(c.grpc.insecure);
        assert_eq!(c.metrics.listen, None);
        assert!(!c.capture.verify_checksums);
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--listen", "nowhere"],
                "\"nowhere\" is not a listen address",
            ),
            (&["--metrics-listen", "on"], "\"on\" is not an address"),
            (&["--interface", "eth0:x"], "zone \"x\" is not a number"),
            (
                &["--interface", "this-name-is-too-long"],
                "longer than 15 bytes",
            ),
            (&["--workers", "many"], "\"many\" is not a number"),
            (&["--rcvbuf", "8 MB"], "is not a size"),
            (&["--verify-checksums", "sometimes"], "is not a switch"),
            (&["--max-conns=-5"], "-5 is out of range"),
            (&["--default-zone-limit", "x"], "\"x\" is not a number"),
            (&["--sweep-interval", "0"], "must be more than zero"),
            (&["--sweep-interval", "1.5s"], "is not a duration"),
            (&["--log-format", "yaml"], "\"yaml\" is not a log format"),
            (&["--admin-identity", " x"], "is not an identity"),
        ];
        for &(argv, message) in cases {
            let e = try_flags(argv).unwrap_err().to_string();
            let flag = argv[0].split('=').next().unwrap();
            assert_contains(&e, &[&format!("for '{flag} <"), message]);
        }
        let e = load_err(
            &flags(&["--interface", "eth0", "--interface", "eth0:2"]),
            &HashMap::new(),
        );
        assert_eq!(e, "flag --interface: \"eth0\" is listed twice");
        let e = load_err(&flags(&["--tls-cert", "/c"]), &HashMap::new());
        assert_contains(&e, &["flag --tls-cert: ", "grpc.tls.key"]);
    }

    #[test]
    fn interfaces_from_env_and_flags_keep_the_file_vlan_maps() {
        let file = TempFile::new(
            "vlans",
            "[capture]\ninterfaces = [\n  { name = \"eth0\", zone = 7, vlan_zones = { 10 = 1 } },\n  \
             { name = \"eth1\", zone = 8 },\n]\n",
        );
        let args = flags(&["--config", file.path()]);
        let c = load(&args, &env(&[("CTRACK_INTERFACES", "eth1:9,eth0,eth2")]));
        let got: Vec<_> = c
            .capture
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), i.zone, i.vlan_zones.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("eth1", 9, BTreeMap::new()),
                ("eth0", 7, BTreeMap::from([(10, 1)])),
                ("eth2", 0, BTreeMap::new()),
            ]
        );
        let args = flags(&["--config", file.path(), "--interface", "eth0:3"]);
        let c = load(&args, &env(&[("CTRACK_INTERFACES", "eth1")]));
        assert_eq!(
            c.capture.interfaces,
            [InterfaceConfig {
                name: "eth0".into(),
                zone: 3,
                vlan_zones: BTreeMap::from([(10, 1)]),
            }]
        );
    }

    #[test]
    fn durations() {
        let ok: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("20", Duration::from_secs(20)),
            (" 20 ", Duration::from_secs(20)),
            ("20s", Duration::from_secs(20)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3_600)),
            ("1d", Duration::from_secs(86_400)),
            ("1m30s", Duration::from_secs(90)),
            ("1m 30s", Duration::from_secs(90)),
            ("1s500ms", Duration::from_millis(1_500)),
            ("7us", Duration::from_micros(7)),
            ("3ns", Duration::from_nanos(3)),
            ("0ms", Duration::ZERO),
            ("18446744073709551615", Duration::from_secs(u64::MAX)),
        ];
        for &(text, expected) in ok {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
        for text in [
            "",
            " ",
            "s",
            "-1s",
            "1.5s",
            "20x",
            "20 seconds",
            "1m30",
            "ms5",
            "20S",
            "1e3s",
            "18446744073709551616",
            "999999999999999999999999d",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} parsed");
        }
        assert_contains(
            &parse_duration("20x").unwrap_err().to_string(),
            &["\"20x\" is not a duration", "\"500ms\""],
        );
        assert_contains(
            &parse_duration("999999999999999999999999d").unwrap_err().0,
            &["is too long"],
        );
        let formats: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_secs(20), "20s"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(120), "2m"),
            (Duration::from_secs(5_400), "90m"),
            (Duration::from_secs(86_400), "1d"),
            (Duration::from_millis(1_500), "1500ms"),
            (Duration::new(1, 1), "1000000001ns"),
            (Duration::MAX, "18446744073709551615999999999ns"),
        ];
        for &(duration, text) in formats {
            assert_eq!(format_duration(duration), text);
        }
        for (duration, _) in formats.iter().take(8) {
            assert_eq!(parse_duration(&format_duration(*duration)), Ok(*duration));
        }
    }

    #[test]
    fn sizes() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("1000", 1_000),
            ("1000B", 1_000),
            ("64KiB", 64 << 10),
            ("8MiB", 8 << 20),
            ("8 mib", 8 << 20),
            ("1GiB", 1 << 30),
            (" 4 KiB ", 4 << 10),
        ];
        for &(text, expected) in ok {
            assert_eq!(parse_size(text), Ok(expected), "{text:?}");
        }
        for text in [
            "",
            "MiB",
            "-1",
            "1.5MiB",
            "8MB",
            "8M",
            "8 kb",
            "8PiB",
            "x",
            "99999999999GiB",
        ] {
            assert!(parse_size(text).is_err(), "{text:?} parsed");
        }
        assert_contains(
            &parse_size("8MB").unwrap_err().0,
            &["\"8MB\" is not a size", "binary"],
        );
        assert_contains(&parse_size("99999999999GiB").unwrap_err().0, &["too large"]);
        for (bytes, text) in [
            (0, "0"),
            (1_000, "1000"),
            (1_024, "1KiB"),
            (1_536, "1536"),
            (3 << 20, "3MiB"),
            (5 << 30, "5GiB"),
        ] {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text), Ok(bytes));
        }
    }

    #[test]
    fn switches_listen_addresses_and_interface_specs() {
        for (text, value) in [
            ("on", true),
            ("OFF", false),
            ("true", true),
            ("False", false),
        ] {
            assert_eq!(parse_switch(text), Ok(value));
        }
        assert!(parse_switch("1").is_err());

        assert_eq!(
            "[::1]:1".parse::<Listen>(),
            Ok(Listen::Tcp(addr("[::1]:1")))
        );
        assert_eq!(
            "unix:rel/sock".parse::<Listen>(),
            Ok(Listen::Unix("rel/sock".into()))
        );
        for text in ["", "127.0.0.1", ":50051", "::1:50051", "host:1", "unix:"] {
            assert!(text.parse::<Listen>().is_err(), "{text:?}");
        }
        for (text, local) in [
            ("127.0.0.1:1", true),
            ("127.9.9.9:1", true),
            ("[::1]:1", true),
            ("[::ffff:127.0.0.1]:1", true),
            ("unix:/s", true),
            ("0.0.0.0:1", false),
            ("[::]:1", false),
            ("192.168.1.1:1", false),
        ] {
            assert_eq!(text.parse::<Listen>().unwrap().is_local(), local, "{text}");
            assert_eq!(text.parse::<Listen>().unwrap().to_string(), text);
        }

        assert_eq!(
            "eth0:7".parse::<InterfaceSpec>(),
            Ok(InterfaceSpec {
                name: "eth0".into(),
                zone: Some(7)
            })
        );
        assert_eq!("eth0".parse::<InterfaceSpec>().unwrap().zone, None);
        for text in [
            "",
            ":1",
            "eth0:",
            "eth0:-1",
            "eth0:1:2",
            ".",
            "..",
            "a b",
            "0123456789abcdef",
        ] {
            assert!(text.parse::<InterfaceSpec>().is_err(), "{text:?}");
        }
        assert!("0123456789abcde".parse::<InterfaceSpec>().is_ok());
    }

    #[test]
    fn tls_settings_come_in_pairs() {
        let none = HashMap::new();
        let cases: &[(&str, &[&str])] = &[
            (
                "[grpc.tls]\ncert = \"/c\"\n",
                &["config: grpc.tls.cert: ", "set grpc.tls.key"],
            ),
            (
                "[grpc.tls]\nkey = \"/k\"\n",
                &["config: grpc.tls.key: ", "set grpc.tls.cert"],
            ),
            (
                "[grpc.tls]\nclient_ca = \"/ca\"\n",
                &["config: grpc.tls.client_ca: ", "a client CA needs TLS"],
            ),
            (
                "[grpc]\nadmin_identities = [\"a\"]\n",
                &["config: grpc.admin_identities: ", "set grpc.tls.client_ca"],
            ),
            (
                "[grpc]\nadmin_identities = [\"a\"]\n[grpc.tls]\ncert = \"/c\"\nkey = \"/k\"\n",
                &["config: grpc.admin_identities: ", "set grpc.tls.client_ca"],
            ),
            (
                "[grpc]\ninsecure = true\n[grpc.tls]\ncert = \"/c\"\nkey = \"/k\"\n",
                &["config: grpc.insecure: ", "contradicts"],
            ),
        ];
        for &(text, parts) in cases {
            assert_contains(&toml_err(text), parts);
        }
        let e = load_err(&DaemonArgs::default(), &env(&[("CTRACK_TLS_KEY", "/k")]));
        assert_contains(&e, &["environment CTRACK_TLS_KEY: ", "grpc.tls.cert"]);
        let e = load_err(&flags(&["--tls-client-ca", "/ca"]), &none);
        assert_contains(&e, &["flag --tls-client-ca: ", "needs TLS"]);
        let e = load_err(&flags(&["--admin-identity", "a"]), &none);
        assert_contains(&e, &["flag --admin-identity: ", "grpc.tls.client_ca"]);
        let e = load_err(
            &flags(&["--tls-cert", "/c", "--tls-key", "/k", "--insecure"]),
            &none,
        );
        assert_contains(&e, &["flag --insecure: ", "contradicts"]);

        // The parts may come from different layers.
        let file = TempFile::new("tls-parts", "[grpc.tls]\ncert = \"/c\"\n");
        let c = load(
            &flags(&["--config", file.path(), "--tls-client-ca", "/ca"]),
            &env(&[("CTRACK_TLS_KEY", "/k")]),
        );
        assert_eq!(
            c.grpc.tls,
            Some(TlsFiles {
                cert: "/c".into(),
                key: "/k".into(),
                client_ca: Some("/ca".into()),
            })
        );
        let with_ca = "[grpc]\nadmin_identities = [\"a\"]\n[grpc.tls]\ncert = \"/c\"\n\
                       key = \"/k\"\nclient_ca = \"/ca\"\n";
        assert_eq!(toml(with_ca).grpc.admin_identities, ["a"]);
    }

    #[test]
    fn plaintext_only_on_local_addresses() {
        assert_eq!(
            toml_err("[grpc]\nlisten = \"0.0.0.0:50051\"\n"),
            "config: grpc.listen: refusing to serve plaintext gRPC on 0.0.0.0:50051: configure \
             TLS or pass --insecure"
        );
        for listen in ["[::]:1", "10.1.2.3:50051", "[2001:db8::1]:1"] {
            let e = toml_err(&format!("[grpc]\nlisten = \"{listen}\"\n"));
            assert_contains(&e, &["grpc.listen: refusing to serve plaintext gRPC on"]);
        }
        let e = load_err(&flags(&["--listen", "0.0.0.0:1"]), &HashMap::new());
        assert_eq!(
            e,
            "flag --listen: refusing to serve plaintext gRPC on 0.0.0.0:1: configure TLS or \
             pass --insecure"
        );
        let e = load_err(
            &DaemonArgs::default(),
            &env(&[("CTRACK_GRPC_LISTEN", "0.0.0.0:1")]),
        );
        assert_contains(&e, &["environment CTRACK_GRPC_LISTEN: refusing"]);

        for listen in ["127.0.0.1:1", "[::1]:1", "unix:/run/ctrack.sock"] {
            toml(&format!("[grpc]\nlisten = \"{listen}\"\n"));
        }
        toml("[grpc]\nlisten = \"0.0.0.0:1\"\ninsecure = true\n");
        toml("[grpc]\nlisten = \"0.0.0.0:1\"\n[grpc.tls]\ncert = \"/c\"\nkey = \"/k\"\n");
        let c = load(
            &flags(&["--listen", "0.0.0.0:1"]),
            &env(&[("CTRACK_INSECURE", "on")]),
        );
        assert!(c.grpc.insecure);
    }

    #[test]
    fn metrics_and_grpc_need_different_ports() {
        let e = toml_err("[metrics]\nlisten = \"127.0.0.1:50051\"\n");
        assert_contains(&e, &["config: metrics.listen: ", "would share a port"]);
        let e = load_err(&flags(&["--listen", "127.0.0.1:9100"]), &HashMap::new());
        assert_contains(&e, &["flag --listen: ", "would share a port"]);
        let text = "[grpc]\nlisten = \"0.0.0.0:9100\"\ninsecure = true\n";
        assert_contains(&toml_err(text), &["would share a port"]);
        toml("[grpc]\nlisten = \"127.0.0.2:9100\"\n");
        toml("[grpc]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    }

    #[test]
    fn file_value_errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            (
                "[grpc]\nlisten = \"x\"",
                "config: grpc.listen: \"x\" is not a listen address",
            ),
            (
                "[grpc]\nrequest_timeout = \"0s\"",
                "config: grpc.request_timeout: 0s is too short",
            ),
            (
                "[grpc]\nrequest_timeout = -3",
                "config: grpc.request_timeout: -3 is not a duration",
            ),
            (
                "[grpc]\nmax_concurrent_requests = 0",
                "config: grpc.max_concurrent_requests: 0 is out of range (1..=65536)",
            ),
            (
                "[grpc]\nmax_message_bytes = 100",
                "config: grpc.max_message_bytes: 100 is out of range (1KiB..=1GiB)",
            ),
            (
                "[grpc]\nmax_message_bytes = \"lots\"",
                "config: grpc.max_message_bytes: \"lots\" is not a size",
            ),
            (
                "[grpc]\nkeepalive_interval = \"1x\"",
                "config: grpc.keepalive_interval: \"1x\" is not a duration",
            ),
            (
                "[grpc]\nadmin_identities = [\"a\", \"\"]",
                "config: grpc.admin_identities[1]: \"\" is not an identity",
            ),
            (
                "[grpc.tls]\ncert = \"\"",
                "config: grpc.tls.cert: the path is empty",
            ),
            (
                "[metrics]\nlisten = \"9100\"",
                "config: metrics.listen: \"9100\" is not an address",
            ),
            (
                "[capture]\ninterfaces = [{ name = \"eth 0\" }]",
                "config: capture.interfaces[0].name: \"eth 0\" is not an interface name",
            ),
            (
                "[capture]\ninterfaces = [{ name = \"a\" }, { name = \"b\" }, { name = \"a\" }]",
                "config: capture.interfaces[2].name: \"a\" is listed twice (also \
                 capture.interfaces[0])",
            ),
            (
                "[capture]\ninterfaces = [{ name = \"a\", vlan_zones = { 4096 = 1 } }]",
                "config: capture.interfaces[0].vlan_zones.4096: \"4096\" is not a VLAN id \
                 (0..=4095)",
            ),
            (
                "[capture]\ninterfaces = [{ name = \"a\", vlan_zones = { 5 = 65536 } }]",
                "config: capture.interfaces[0].vlan_zones.5: 65536 is out of range (0..=65535)",
            ),
            (
                "[capture]\ninterfaces = [{ name = \"a\", vlan_zones = { 5 = 1, 05 = 2 } }]",
                "config: capture.interfaces[0].vlan_zones.5: VLAN 5 is listed twice",
            ),
            (
                "[capture]\nworkers = \"2\"",
                "config: capture.workers: \"2\" is not a number (write integers without quotes)",
            ),
            (
                "[zone_policies]\n1 = \"0\"",
                "config: zone_policies.1: \"0\" is not a number",
            ),
            (
                "[capture]\nworkers = 5000",
                "config: capture.workers: 5000 is out of range (0..=1024)",
            ),
            (
                "[capture]\nrcvbuf_bytes = \"2GiB\"",
                "config: capture.rcvbuf_bytes: 2GiB is out of range (0..=1GiB)",
            ),
            (
                "[capture]\nrcvbuf_bytes = -1",
                "config: capture.rcvbuf_bytes: -1 is not a size",
            ),
            (
                "[capture]\nbatch = 0",
                "config: capture.batch: 0 is out of range (1..=65536)",
            ),
            (
                "[capture]\nsnaplen = 64",
                "config: capture.snaplen: 64 is out of range (128..=262144)",
            ),
            (
                "[conntrack]\ndefault_zone_limit = 4294967296",
                "config: conntrack.default_zone_limit: 4294967296 is out of range",
            ),
            (
                "[conntrack.zone_limits]\n70000 = 1",
                "config: conntrack.zone_limits.70000: \"70000\" is not a zone (0..=65535)",
            ),
            (
                "[conntrack.zone_limits]\nx = 1",
                "config: conntrack.zone_limits.x: \"x\" is not a zone",
            ),
            (
                "[conntrack.zone_limits]\n1 = -1",
                "config: conntrack.zone_limits.1: -1 is out of range",
            ),
            (
                "[conntrack.zone_limits]\n1 = 1\n\"+1\" = 2",
                "config: conntrack.zone_limits.1: zone 1 is listed twice",
            ),
            (
                "[conntrack]\nsweep_interval = 0",
                "config: conntrack.sweep_interval: 0s is too short",
            ),
            (
                "[conntrack]\nevent_capacity = 0",
                "config: conntrack.event_capacity: 0 is out of range (1..=16777216)",
            ),
            (
                "[log]\nformat = \"xml\"",
                "config: log.format: \"xml\" is not a log format",
            ),
            (
                "[log]\nfilter = \"\"",
                "config: log.filter: the log filter is empty",
            ),
            (
                "shutdown_grace = \"forever\"",
                "config: shutdown_grace: \"forever\" is not a",
            ),
            ("preload = \"\"", "config: preload: the path is empty"),
        ];
        for &(text, message) in cases {
            let e = toml_err(text);
            assert!(e.starts_with(message), "{text:?}: {e:?}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_rejected() {
        let cases: &[(&str, &[&str])] = &[
            (
                "grcp = 1",
                &["config: line 1, column 1: ", "unknown field `grcp`"],
            ),
            (
                "[grpc]\nlisten = \"127.0.0.1:1\"\nport = 1",
                &["line 3, column 1", "`port`"],
            ),
            (
                "[grpc.tls]\ncrt = \"/c\"",
                &["line 2", "unknown field `crt`"],
            ),
            ("[metrics]\naddr = \"off\"", &["unknown field `addr`"]),
            ("[capture]\ninterface = []", &["unknown field `interface`"]),
            (
                "[capture]\ninterfaces = [{ name = \"a\", zome = 1 }]",
                &["line 2", "unknown field `zome`"],
            ),
            (
                "[capture]\ninterfaces = [{ zone = 1 }]",
                &["missing field `name`"],
            ),
            ("[conntrack]\nmax_con = 1", &["unknown field `max_con`"]),
            ("[log]\nlevel = \"info\"", &["unknown field `level`"]),
            (
                "[capture]\nworkers = true",
                &["line 2", "invalid type: boolean `true`"],
            ),
            ("[grpc]\ninsecure = \"yes\"", &["invalid type"]),
            ("[conntrack]\nsweep_interval = 1.5", &["invalid type"]),
            ("[grpc\n", &["config: line 1"]),
            ("x = = 1", &["config: line 1"]),
        ];
        for &(text, parts) in cases {
            assert_contains(&toml_err(text), parts);
        }
        let file = TempFile::new("unknown", "\n[capture]\nworkerz = 1\n");
        let e = Config::from_file(&file.0).unwrap_err().to_string();
        assert_contains(
            &e,
            &[
                &format!("config file {}: line 3, column 1: ", file.path()),
                "`workerz`",
            ],
        );
        assert!(!e.contains('\n'), "one line: {e:?}");
    }

    #[test]
    fn policies_and_zone_bindings() {
        let c = toml(
            "[policies.5]\nudp_first = 10\ntcp_established = \"1h\"\n[policies.0]\n\
             [zone_policies]\n1 = 5\n2 = 0\n3 = 0\n",
        );
        let five = &c.policies[&5];
        assert_eq!(five.secs(TimeoutAttr::UdpFirst), 10);
        assert_eq!(five.secs(TimeoutAttr::TcpEstablished), 3_600);
        assert_eq!(
            five.secs(TimeoutAttr::UdpSingle),
            60,
            "unnamed attributes keep defaults"
        );
        assert_eq!(c.policies[&0], TimeoutPolicy::DEFAULT);
        assert_eq!(c.zone_policies, BTreeMap::from([(1, 5), (2, 0), (3, 0)]));
        assert_eq!(toml("[zone_policies]\n9 = 0").zone_policies[&9], 0);

        let cases: &[(&str, &str)] = &[
            (
                "[policies.5]\nudp_frist = 10",
                "config: policies.5.udp_frist: unknown timeout attribute \"udp_frist\"",
            ),
            (
                "[policies.x]\nudp_first = 10",
                "config: policies.x: \"x\" is not a policy id (0..=4294967295)",
            ),
            (
                "[policies.5]\nudp_first = -1",
                "config: policies.5.udp_first: -1 is out of range",
            ),
            (
                "[policies.5]\nudp_first = \"1500ms\"",
                "config: policies.5.udp_first: \"1500ms\" is not a whole number of seconds",
            ),
            (
                "[policies.5]\nudp_first = \"200000d\"",
                "config: policies.5.udp_first: \"200000d\" is too long",
            ),
            (
                "[policies.5]\n[policies.05]",
                "config: policies.5: policy 5 is defined twice",
            ),
            (
                "[zone_policies]\n1 = 5",
                "config: zone_policies.1: policy 5 is not defined (add a [policies.5] table",
            ),
            (
                "[zone_policies]\n65536 = 0",
                "config: zone_policies.65536: \"65536\" is not a zone",
            ),
            (
                "[zone_policies]\n1 = -1",
                "config: zone_policies.1: -1 is out of range",
            ),
            ("[policies]\n5 = 10", "config: line 2"),
        ];
        for &(text, message) in cases {
            let e = toml_err(text);
            assert!(e.starts_with(message), "{text:?}: {e:?}");
        }
        assert_contains(
            &toml_err("[policies.5]\nudp_frist = 10"),
            &["expected one of", "udp_first"],
        );
    }

    #[test]
    fn render_round_trips() {
        for config in [Config::default(), full_config()] {
            let text = config.render_toml();
            assert_eq!(Config::from_toml_str(&text).unwrap(), config, "{text}");
        }
        let mut unix = Config::default();
        unix.grpc.listen = Listen::Unix("/run/ctrack \"x\".sock".into());
        unix.grpc.insecure = true;
        unix.grpc.max_message_bytes = 5 << 30 >> 3;
        unix.capture.rcvbuf_bytes = 0;
        unix.log.filter = "a\u{1}b\\c\"d\ne\r".into();
        unix.shutdown_grace = Duration::new(3, 7);
        unix.conntrack.sweep_interval = Duration::from_micros(1);
        assert_eq!(toml(&unix.render_toml()), unix);

        // Configurations that came through every layer render the same way.
        let c = load(
            &flags(&["--listen", "unix:/s", "--interface", "lo:1"]),
            &env(&[
                ("CTRACK_RCVBUF", "1000"),
                ("CTRACK_SWEEP_INTERVAL", "1m30s"),
            ]),
        );
        assert_eq!(toml(&c.render_toml()), c);
    }

    #[test]
    fn render_writes_every_field() {
        let text = full_config().render_toml();
        assert_contains(
            &text,
            &[
                "shutdown_grace = \"0s\"\n",
                "preload = \"/tmp/demo.pcap\"\n",
                "[grpc]\nlisten = \"[::]:6000\"\ninsecure = false\n",
                "admin_identities = [\"admin.example.com\", \"ops \\\"\u{e9}quipe\\\" \\\\1\"]\n",
                "request_timeout = \"1500ms\"\n",
                "max_message_bytes = 1000000\n",
                "[grpc.tls]\ncert = \"/etc/ctrack/server \\\"a\\\".crt\"\n",
                "key = \"C:\\\\keys\\\\server.key\"\n",
                "[metrics]\nlisten = \"off\"\n",
                "  { name = \"eth0\", zone = 3, vlan_zones = { 100 = 4, 4095 = 65535 } },\n",
                "  { name = \"veth-a.1\", zone = 0, vlan_zones = {} },\n",
                "rcvbuf_bytes = \"3KiB\"\n",
                "default_zone_limit = 1000\n",
                "sweep_interval = \"90s\"\n",
                "[conntrack.zone_limits]\n0 = 5\n65535 = 4294967295\n",
                "[policies.4294967295]\ntcp_syn_sent = 30\n",
                "udp_first = 0\n",
                "[zone_policies]\n1 = 0\n2 = 4294967295\n",
                "[log]\nformat = \"json\"\nfilter = \"info,ctrack_server=debug\"\n",
            ],
        );
        assert!(!Config::default().render_toml().contains("[grpc.tls]"));
    }

    #[test]
    fn example_file_loads_with_the_defaults() {
        assert_eq!(toml(EXAMPLE), Config::default());
    }

    #[test]
    fn example_file_documents_every_field() {
        let rendered = full_config().render_toml();
        let keys = rendered.lines().filter_map(|line| {
            let key = line.trim_start().split(" = ").next()?;
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
                .then_some(key)
        });
        for key in keys {
            // Policy attributes are listed with their defaults, not as `key = value`.
            let mention = match key.parse::<TimeoutAttr>() {
                Ok(attr) => format!("{attr} {}", attr.default_secs()),
                Err(_) => format!("{key} = "),
            };
            assert!(
                EXAMPLE.contains(&mention),
                "the example does not mention {key}"
            );
        }
        for var in ENV_VARS {
            assert!(
                EXAMPLE.contains(var) || var == ENV_CONFIG,
                "the example does not mention {var}"
            );
        }
    }

    #[test]
    fn example_file_commented_examples_load() {
        // Uncomment the sample lines (keys, table headers, array items).
        let looks_like_toml = |rest: &str| {
            rest.starts_with('[')
                || rest.starts_with("  {")
                || rest == "]"
                || rest.split_once(" = ").is_some_and(|(key, _)| {
                    key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
        };
        let text: String = EXAMPLE
            .lines()
            .filter(|line| *line != "interfaces = []")
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if looks_like_toml(rest) => rest,
                _ => line,
            })
            .flat_map(|line| [line, "\n"])
            .collect();
        let c = toml(&text);
        assert_eq!(c.preload, Some("/var/lib/ctrack/demo.pcap".into()));
        assert_eq!(
            c.grpc.tls.map(|t| t.client_ca),
            Some(Some("/etc/ctrack/tls/clients-ca.crt".into()))
        );
        assert_eq!(c.capture.interfaces.len(), 2);
        assert_eq!(c.capture.interfaces[1].vlan_zones[&200], 12);
        assert_eq!(c.conntrack.default_zone_limit, Some(100_000));
        assert_eq!(c.conntrack.zone_limits[&10], 50_000);
        assert_eq!(c.policies[&5].secs(TimeoutAttr::TcpEstablished), 3_600);
        assert_eq!(c.zone_policies[&10], 5);
    }

    #[test]
    fn unrecognized_environment_variables() {
        let vars = env(&[
            ("CTRACK_MAXCONNS", "1"),
            ("CTRACK_MAX_CONNS", "1"),
            ("CTRACK_A", "1"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(
            unrecognized_env_vars(&vars),
            ["CTRACK_A", "CTRACK_MAXCONNS"]
        );
        assert!(env_snapshot().keys().all(|k| k.starts_with("CTRACK_")));
    }
}
