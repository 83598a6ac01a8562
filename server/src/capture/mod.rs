//! Live capture: worker threads read frames from the node's interfaces and hand them to the
//! engine in batches.
//!
//! Each interface gets `workers` OS threads (`capture-<iface>-<n>`). Each worker owns one pnet
//! datalink channel (an AF_PACKET socket); the workers of an interface share one
//! PACKET_FANOUT group in HASH mode, so all the packets of a flow reach the same worker. A
//! worker reads up to `batch` frames (fewer when its queue runs dry), then makes one
//! [`Tracker::process_batch`] call stamped with one [`Clock::now`].
//!
//! # Files
//! * `mod.rs`: configuration, start and stop, interface health and statistics.
//! * `worker.rs`: one worker: open with backoff, read a batch, track it, count.
//! * `sys.rs`: the socket itself and all of the module's `unsafe` code (libc calls).
//!
//! # Failure and recovery
//! An interface that is missing, down, or fails while captured does not stop the others: its
//! workers close their sockets and reopen them with exponential backoff (1 s doubling to
//! 30 s; the delay starts over after a socket stayed up for 30 s), and pick the interface up
//! again when it comes back (a recreated interface gets a new index, hence a new fanout
//! group). An outage is logged once when the last worker of the interface loses its socket,
//! and once when capture resumes; individual retries log at `debug`.
//!
//! # Counters
//! Per worker, relaxed atomics: frames received, handed to the engine, found invalid, and
//! truncated (longer than `snaplen`); the kernel's own `PACKET_STATISTICS` (frames that
//! reached the socket, and those dropped because its receive buffer was full), read once a
//! second and when the socket closes, and accumulated here because the kernel resets them on
//! every read. Nothing is logged per packet.
//!
//! # Stop
//! [`Capture::stop`] (or [`Capture::shutdown`], or dropping the [`Capture`]) sets a flag and
//! wakes sleeping workers; a reading worker sees the flag within its read timeout (200 ms).

mod worker;

#[allow(unsafe_code)]
mod sys;

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ctrack_core::{ProcessOptions, Tick, Tracker};
use tracing::{debug, error, info, warn};

use crate::clock::Clock;

use self::worker::{Settings, Worker};

/// Default receive buffer of each capture socket: 8 MiB (measured: no loss up to 400 kpps on
/// a veth, where the kernel default lost 40-50% at 100 kpps).
pub const DEFAULT_RCVBUF_BYTES: usize = 8 << 20;
/// Default frames per engine call.
pub const DEFAULT_BATCH: usize = 32;
/// Default bytes read per frame (pnet's own default of 4096 truncates large frames).
pub const DEFAULT_SNAPLEN: usize = 65_600;
/// Most workers per interface.
pub const MAX_WORKERS: usize = 1_024;
/// Accepted `batch` values.
pub const BATCH_RANGE: std::ops::RangeInclusive<usize> = 1..=65_536;
/// Accepted `snaplen` values.
pub const SNAPLEN_RANGE: std::ops::RangeInclusive<usize> = 128..=262_144;

/// How long a read waits when no frame is queued (the stop flag is checked in between).
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// What to capture and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Interfaces to capture on (at least one).
    pub interfaces: Vec<InterfaceSpec>,
    /// Worker threads per interface; 0 means one per CPU.
    pub workers: usize,
    /// Receive buffer of each socket (`SO_RCVBUFFORCE` if permitted, else `SO_RCVBUF`, which
    /// `net.core.rmem_max` caps); 0 keeps the kernel's default.
    pub rcvbuf_bytes: usize,
    /// Reject packets whose L4 checksum is wrong. Off for live capture: with checksum offload
    /// the kernel hands out outgoing packets before their checksum is filled in.
    pub verify_checksums: bool,
    /// Create connections (OVS `ct(commit)`).
    pub commit: bool,
    /// Most frames handed to the engine per call.
    pub batch: usize,
    /// Bytes read per frame; longer frames are truncated (and counted).
    pub snaplen: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            workers: 0,
            rcvbuf_bytes: DEFAULT_RCVBUF_BYTES,
            verify_checksums: false,
            commit: true,
            batch: DEFAULT_BATCH,
            snaplen: DEFAULT_SNAPLEN,
        }
    }
}

/// One interface to capture on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// The interface name (at most 15 bytes).
    pub name: String,
    /// Zone of its untagged frames, and of tagged frames whose VLAN is not in `vlan_zones`.
    pub zone: u16,
    /// Outer 802.1Q/802.1ad VLAN id (0..=4095) to zone.
    pub vlan_zones: BTreeMap<u16, u16>,
}

impl InterfaceSpec {
    /// An interface whose frames all go to `zone`.
    pub fn new(name: impl Into<String>, zone: u16) -> Self {
        Self {
            name: name.into(),
            zone,
            vlan_zones: BTreeMap::new(),
        }
    }
}

/// Why capture cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The configuration lists no interface.
    #[error("no interface to capture on")]
    NoInterfaces,
    /// A setting is out of range.
    #[error("invalid capture configuration: {0}")]
    InvalidConfig(String),
    /// The process may not open packet sockets.
    #[error(
        "no permission to capture packets ({source}): run ctrackd as root, or grant it \
         CAP_NET_RAW (and CAP_NET_ADMIN, for receive buffers above net.core.rmem_max)"
    )]
    PermissionDenied {
        /// The error of the first AF_PACKET socket.
        source: io::Error,
    },
    /// Packet sockets cannot be created for another reason.
    #[error("cannot open a packet socket: {0}")]
    Socket(#[source] io::Error),
    /// A worker thread could not be started.
    #[error("cannot start capture thread {name}: {source}")]
    Spawn {
        /// The thread's name.
        name: String,
        /// The cause.
        source: io::Error,
    },
}

/// Counters and health of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceStats {
    /// The interface name.
    pub name: String,
    /// Its zone (untagged frames).
    pub zone: u16,
    /// Whether it is being captured.
    pub state: InterfaceState,
    /// One entry per worker, in worker order.
    pub workers: Vec<WorkerStats>,
}

/// Health of a captured interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterfaceState {
    /// Every worker is receiving.
    Up,
    /// Some workers are receiving, the others are reopening their sockets (an outage
    /// beginning or ending, or one worker's socket failed).
    Retrying {
        /// The most recent error.
        last_error: String,
    },
    /// No worker is receiving; they retry with backoff.
    Down {
        /// When the last worker lost its socket (capture start if it never had one).
        since: Tick,
        /// The most recent error.
        last_error: String,
    },
}

impl InterfaceState {
    /// `"up"`, `"retrying"` or `"down"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Retrying { .. } => "retrying",
            Self::Down { .. } => "down",
        }
    }

    /// The most recent error, unless the interface is up.
    pub fn last_error(&self) -> Option<&str> {
        match self {
            Self::Up => None,
            Self::Retrying { last_error } | Self::Down { last_error, .. } => Some(last_error),
        }
    }
}

/// Counters of one worker (totals since capture started, over all its sockets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Worker index within its interface.
    pub worker: usize,
    /// It has an open socket.
    pub running: bool,
    /// Frames read.
    pub received: u64,
    /// Frames handed to the engine.
    pub processed: u64,
    /// Frames the engine found invalid.
    pub invalid: u64,
    /// Frames longer than `snaplen` (tracked truncated, so usually invalid).
    pub truncated: u64,
    /// Frames that reached the socket according to the kernel, dropped ones included
    /// (`PACKET_STATISTICS` `tp_packets`; updated about once a second).
    pub kernel_packets: u64,
    /// Frames the kernel dropped because the socket's receive buffer was full
    /// (`PACKET_STATISTICS` `tp_drops`; updated about once a second).
    pub kernel_drops: u64,
    /// `SO_RCVBUF` of the current (or last) socket as the kernel reports it: twice the
    /// granted buffer.
    pub rcvbuf_bytes: usize,
}

/// Running capture: worker threads on every configured interface.
#[derive(Debug)]
pub struct Capture {
    control: Arc<Control>,
    interfaces: Vec<Arc<Interface>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Capture {
    /// Starts `workers` threads per interface. An interface that does not exist or fails is
    /// logged and retried with exponential backoff (1 s doubling to 30 s) until it comes back;
    /// the others keep running. Sockets that can be opened are open when this returns.
    ///
    /// Fails only for an unusable configuration, when packet sockets cannot be created at all
    /// (no CAP_NET_RAW: [`CaptureError::PermissionDenied`]), or when a thread cannot start.
    pub fn start(
        cfg: CaptureConfig,
        tracker: Arc<Tracker>,
        clock: Clock,
    ) -> Result<Self, CaptureError> {
        let workers = validate(&cfg)?;
        sys::check_permission().map_err(|source| match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => CaptureError::PermissionDenied { source },
            _ => CaptureError::Socket(source),
        })?;
        let control = Arc::new(Control {
            stop: AtomicBool::new(false),
            clock,
            fanout_salt: fanout_salt(),
            rcvbuf_requested: cfg.rcvbuf_bytes,
            rcvbuf_reported: AtomicBool::new(false),
        });
        let settings = Settings {
            batch: cfg.batch,
            snaplen: cfg.snaplen,
            opts: ProcessOptions {
                commit: cfg.commit,
                force: false,
                verify_checksums: cfg.verify_checksums,
            },
            rcvbuf_bytes: cfg.rcvbuf_bytes,
            read_timeout: READ_TIMEOUT,
        };
        let mut capture = Self {
            control: Arc::clone(&control),
            interfaces: Vec::with_capacity(cfg.interfaces.len()),
            threads: Mutex::new(Vec::new()),
        };
        for spec in cfg.interfaces {
            let iface = Arc::new(Interface::new(spec, workers, clock.now()));
            capture.interfaces.push(Arc::clone(&iface));
            for index in 0..workers {
                let worker = Worker::new(
                    Arc::clone(&iface),
                    index,
                    Arc::clone(&tracker),
                    Arc::clone(&control),
                    settings,
                );
                // Open now, so that a present interface is captured when `start` returns.
                let socket = worker.open_and_report();
                let name = format!("capture-{}-{index}", iface.spec.name);
                let handle = thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || worker.run(socket))
                    // Dropping `capture` stops the threads already started.
                    .map_err(|source| CaptureError::Spawn { name, source })?;
                lock(&capture.threads).push(handle);
            }
            if iface.running.load(Ordering::Relaxed) == workers {
                info!(
                    interface = %iface.spec.name,
                    zone = iface.spec.zone,
                    workers,
                    "capturing"
                );
            }
        }
        Ok(capture)
    }

    /// Counters and health of every interface, in configuration order.
    pub fn stats(&self) -> Vec<InterfaceStats> {
        self.interfaces.iter().map(|i| i.stats()).collect()
    }

    /// Workers that currently have an open socket, over all interfaces.
    pub fn running_workers(&self) -> usize {
        self.interfaces
            .iter()
            .map(|i| i.running.load(Ordering::Relaxed))
            .sum()
    }

    /// Stops every worker and waits for them (within about the read timeout, 200 ms).
    pub fn stop(self) {
        self.shutdown();
    }

    /// [`Capture::stop`] through a shared reference (for a capture behind an `Arc`); later
    /// calls do nothing. Statistics stay readable afterwards.
    pub fn shutdown(&self) {
        self.control.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in &threads {
            t.thread().unpark();
        }
        for t in threads {
            let name = t.thread().name().unwrap_or("capture").to_owned();
            if t.join().is_err() {
                error!(thread = %name, "capture thread panicked");
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Interfaces that are up and not loopback: what to capture when none is configured.
pub fn default_interfaces() -> Vec<String> {
    pnet_datalink::interfaces()
        .into_iter()
        .filter(|i| i.is_up() && !i.is_loopback())
        .map(|i| i.name)
        .collect()
}

/// Checks `cfg` and returns the number of workers per interface.
fn validate(cfg: &CaptureConfig) -> Result<usize, CaptureError> {
    if cfg.interfaces.is_empty() {
        return Err(CaptureError::NoInterfaces);
    }
    let invalid = |msg: String| Err(CaptureError::InvalidConfig(msg));
    let mut names = BTreeSet::new();
    for spec in &cfg.interfaces {
        let name = &spec.name;
        if name.is_empty()
            || name.len() > 15
            || name == "."
            || name == ".."
            || name.contains(|c: char| c == '/' || c == '\0' || c.is_whitespace())
        {
            return invalid(format!(
                "interface name {name:?}: expected 1 to 15 bytes without '/' or whitespace"
            ));
        }
        if !names.insert(name.as_str()) {
            return invalid(format!("interface {name} is listed twice"));
        }
        if let Some(vlan) = spec.vlan_zones.keys().find(|&&v| v > 4095) {
            return invalid(format!("interface {name}: VLAN id {vlan} is above 4095"));
        }
    }
    if !BATCH_RANGE.contains(&cfg.batch) {
        return invalid(format!(
            "batch {} is outside {}..={}",
            cfg.batch,
            BATCH_RANGE.start(),
            BATCH_RANGE.end()
        ));
    }
    if !SNAPLEN_RANGE.contains(&cfg.snaplen) {
        return invalid(format!(
            "snaplen {} is outside {}..={}",
            cfg.snaplen,
            SNAPLEN_RANGE.start(),
            SNAPLEN_RANGE.end()
        ));
    }
    let workers = match cfg.workers {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    if workers > MAX_WORKERS {
        return invalid(format!(
            "{workers} workers per interface; at most {MAX_WORKERS}"
        ));
    }
    Ok(workers)
}

/// A per-process value mixed into fanout group ids. Fanout groups are shared by the whole
/// network namespace, and with `hostNetwork` a rolling update runs the old and the new pod
/// side by side: joining the old pod's group would split the traffic between them. Process
/// ids alone do not tell them apart (each container's ctrackd may well be pid 1), so the pid
/// is mixed with a random value (std's per-process random hash keys).
fn fanout_salt() -> u16 {
    let pid = std::process::id();
    let random = RandomState::new().hash_one(pid);
    let folded = random ^ (random >> 16) ^ (random >> 32) ^ (random >> 48);
    (pid ^ (pid >> 16)) as u16 ^ folded as u16
}

/// The fanout group of the interface with index `ifindex`: distinct interfaces of one process
/// never share a group (indexes below 65536 differ).
fn fanout_group(salt: u16, ifindex: u32) -> u16 {
    salt.wrapping_add(ifindex as u16)
}

/// What every worker shares.
#[derive(Debug)]
struct Control {
    stop: AtomicBool,
    clock: Clock,
    fanout_salt: u16,
    rcvbuf_requested: usize,
    rcvbuf_reported: AtomicBool,
}

impl Control {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Logs, once per process, what the receive buffer request gave.
    fn report_rcvbuf(&self, rcvbuf: sys::RcvBuf) {
        if self.rcvbuf_requested == 0 || self.rcvbuf_reported.swap(true, Ordering::Relaxed) {
            return;
        }
        let granted = rcvbuf.kernel_bytes / 2;
        let option = if rcvbuf.forced {
            "SO_RCVBUFFORCE"
        } else {
            "SO_RCVBUF"
        };
        if granted < self.rcvbuf_requested {
            warn!(
                requested = self.rcvbuf_requested,
                granted,
                option,
                "capture receive buffer is smaller than configured: grant CAP_NET_ADMIN or \
                 raise net.core.rmem_max"
            );
        } else {
            info!(granted, option, "capture receive buffer set");
        }
    }
}

/// One interface and its workers' counters.
#[derive(Debug)]
struct Interface {
    spec: InterfaceSpec,
    counters: Vec<WorkerCounters>,
    /// Workers with an open socket (mirrors `Health::running` for lock-free reads).
    running: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Debug)]
struct Health {
    running: usize,
    down_since: Tick,
    last_error: Option<String>,
    /// An outage was logged and its end is not yet.
    announced: bool,
    /// Some worker has had a socket at some point.
    ever_up: bool,
}

#[derive(Debug, Default)]
struct WorkerCounters {
    running: AtomicBool,
    received: AtomicU64,
    processed: AtomicU64,
    invalid: AtomicU64,
    truncated: AtomicU64,
    kernel_packets: AtomicU64,
    kernel_drops: AtomicU64,
    rcvbuf_bytes: AtomicUsize,
}

impl Interface {
    fn new(spec: InterfaceSpec, workers: usize, now: Tick) -> Self {
        Self {
            spec,
            counters: (0..workers).map(|_| WorkerCounters::default()).collect(),
            running: AtomicUsize::new(0),
            health: Mutex::new(Health {
                running: 0,
                down_since: now,
                last_error: None,
                announced: false,
                ever_up: false,
            }),
        }
    }

    fn workers(&self) -> usize {
        self.counters.len()
    }

    /// Worker `index` opened a socket.
    fn worker_up(&self, index: usize, now: Tick) {
        self.counters[index].running.store(true, Ordering::Relaxed);
        let mut h = lock(&self.health);
        h.running += 1;
        self.running.store(h.running, Ordering::Relaxed);
        if h.announced {
            h.announced = false;
            let down_ms = now.saturating_since(h.down_since).as_millis() as u64;
            if h.ever_up {
                info!(interface = %self.spec.name, down_ms, "capture resumed");
            } else {
                info!(interface = %self.spec.name, after_ms = down_ms, "capture started");
            }
        }
        h.ever_up = true;
        if h.running == self.workers() {
            h.last_error = None;
        }
    }

    /// Worker `index` could not open a socket.
    fn open_failed(&self, index: usize, err: &io::Error) {
        let mut h = lock(&self.health);
        h.last_error = Some(err.to_string());
        if h.running == 0 && !h.announced {
            h.announced = true;
            warn!(
                interface = %self.spec.name,
                error = %err,
                "cannot capture on interface; retrying with backoff"
            );
        } else {
            debug!(interface = %self.spec.name, worker = index, error = %err, "reopen failed");
        }
    }

    /// Worker `index` lost its socket (`err`), or stopped (`None`).
    fn worker_down(&self, index: usize, err: Option<&io::Error>, now: Tick) {
        self.counters[index].running.store(false, Ordering::Relaxed);
        let mut h = lock(&self.health);
        h.running -= 1;
        self.running.store(h.running, Ordering::Relaxed);
        h.last_error = Some(err.map_or_else(|| "capture stopped".to_owned(), |e| e.to_string()));
        if h.running == 0 {
            h.down_since = now;
        }
        let Some(err) = err else { return };
        if h.running == 0 && !h.announced {
            h.announced = true;
            warn!(
                interface = %self.spec.name,
                error = %err,
                "capture interface failed; retrying with backoff"
            );
        } else if !interface_gone(err) {
            warn!(
                interface = %self.spec.name,
                worker = index,
                error = %err,
                "capture socket failed; reopening"
            );
        }
    }

    fn stats(&self) -> InterfaceStats {
        let state = {
            let h = lock(&self.health);
            let last_error = || {
                h.last_error
                    .clone()
                    .unwrap_or_else(|| "not opened yet".to_owned())
            };
            if h.running == self.workers() {
                InterfaceState::Up
            } else if h.running == 0 {
                InterfaceState::Down {
                    since: h.down_since,
                    last_error: last_error(),
                }
            } else {
                InterfaceState::Retrying {
                    last_error: last_error(),
                }
            }
        };
        let workers = self
            .counters
            .iter()
            .enumerate()
            .map(|(worker, c)| WorkerStats {
                worker,
                running: c.running.load(Ordering::Relaxed),
                received: c.received.load(Ordering::Relaxed),
                processed: c.processed.load(Ordering::Relaxed),
                invalid: c.invalid.load(Ordering::Relaxed),
                truncated: c.truncated.load(Ordering::Relaxed),
                kernel_packets: c.kernel_packets.load(Ordering::Relaxed),
                kernel_drops: c.kernel_drops.load(Ordering::Relaxed),
                rcvbuf_bytes: c.rcvbuf_bytes.load(Ordering::Relaxed),
            })
            .collect();
        InterfaceStats {
            name: self.spec.name.clone(),
            zone: self.spec.zone,
            state,
            workers,
        }
    }
}

/// The error every socket of an interface gets when it goes down or away (logged once per
/// interface, not per worker).
fn interface_gone(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENETDOWN | libc::ENODEV | libc::ENXIO)
    )
}

/// Locks `m`, also after a panic elsewhere (the data are counters and flags, always valid).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(names: &[&str]) -> CaptureConfig {
        CaptureConfig {
            interfaces: names.iter().map(|n| InterfaceSpec::new(*n, 1)).collect(),
            ..CaptureConfig::default()
        }
    }

    #[test]
    fn capture_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Capture>();
        shared::<InterfaceStats>();
    }

    #[test]
    fn defaults_match_the_design() {
        let c = CaptureConfig::default();
        assert_eq!(c.rcvbuf_bytes, 8 << 20);
        assert!(!c.verify_checksums);
        assert!(c.commit);
        assert_eq!(c.batch, 32);
        assert_eq!(c.snaplen, 65_600);
        assert_eq!(c.workers, 0);
    }

    #[test]
    fn workers_zero_means_one_per_cpu() {
        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(validate(&config(&["eth0"])).unwrap(), cpus);
        let c = CaptureConfig {
            workers: 3,
            ..config(&["eth0"])
        };
        assert_eq!(validate(&c).unwrap(), 3);
    }

    #[test]
    fn unusable_configurations_are_refused() {
        assert!(matches!(
            validate(&config(&[])),
            Err(CaptureError::NoInterfaces)
        ));
        for bad in ["", "a-name-that-is-too-long", "a/b", "a b", ".."] {
            assert!(
                matches!(
                    validate(&config(&[bad])),
                    Err(CaptureError::InvalidConfig(_))
                ),
                "{bad:?}"
            );
        }
        assert!(validate(&config(&["eth0", "eth0"])).is_err());
        let mut c = config(&["eth0"]);
        c.interfaces[0].vlan_zones.insert(4096, 1);
        assert!(validate(&c).is_err());
        for (batch, snaplen, workers) in [(0, 65_536, 1), (32, 64, 1), (32, 65_536, 1_025)] {
            let c = CaptureConfig {
                batch,
                snaplen,
                workers,
                ..config(&["eth0"])
            };
            assert!(validate(&c).is_err(), "{batch} {snaplen} {workers}");
        }
    }

    #[test]
    fn fanout_groups_differ_per_interface() {
        let salt = fanout_salt();
        assert_ne!(fanout_group(salt, 2), fanout_group(salt, 3));
        assert_eq!(fanout_group(0xffff, 1), 0);
    }

    #[test]
    fn state_follows_the_workers() {
        let iface = Interface::new(InterfaceSpec::new("x", 4), 2, Tick::from_millis(5));
        let down = iface.stats().state;
        assert!(
            matches!(down, InterfaceState::Down { since, .. } if since == Tick::from_millis(5))
        );
        let enodev = io::Error::from_raw_os_error(libc::ENODEV);
        iface.open_failed(0, &enodev);
        assert_eq!(
            iface.stats().state.last_error(),
            Some(enodev.to_string().as_str())
        );
        iface.worker_up(0, Tick::from_millis(10));
        assert_eq!(iface.stats().state.name(), "retrying");
        iface.worker_up(1, Tick::from_millis(10));
        assert_eq!(iface.stats().state, InterfaceState::Up);
        assert_eq!(iface.running.load(Ordering::Relaxed), 2);
        let enetdown = io::Error::from_raw_os_error(libc::ENETDOWN);
        iface.worker_down(0, Some(&enetdown), Tick::from_millis(20));
        iface.worker_down(1, Some(&enetdown), Tick::from_millis(21));
        match iface.stats().state {
            InterfaceState::Down { since, last_error } => {
                assert_eq!(since, Tick::from_millis(21));
                assert_eq!(last_error, enetdown.to_string());
            }
            other => panic!("{other:?}"),
        }
        assert!(iface.stats().workers.iter().all(|w| !w.running));
    }
}
