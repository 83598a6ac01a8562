//! `ctrackctl` against a real `ctrackd --preload FILE.pcap` on a loopback port (or a Unix
//! socket, or mutual TLS): every subcommand, its output (golden files for each dump format)
//! and its exit status, errors included.
//!
//! The daemon binary is found next to this test's directory (`<target>/<profile>/ctrackd`,
//! derived from the test executable's path, so any `CARGO_TARGET_DIR` works), or taken from
//! `$CTRACKD`. When it is missing the tests build it first with
//! `cargo build -p ctrack-server --bin ctrackd`; an existing binary is used as it is (`cargo
//! test --workspace` rebuilds it anyway).
//!
//! Golden files (`tests/golden/*.txt`) hold the dump of `loopback.pcap` in each format, with
//! the fields that change with time normalised by the test: lines sorted by connection id
//! (the daemon's hash order varies per process), the timeout (`timeout=`, the conntrack
//! timeout column, `timeout_ms`, the table's TIMEOUT column) and `age_ms` replaced by `T`.
//! `UPDATE_GOLDEN=1 cargo test -p ctrack-client` rewrites them.

use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

const CTL: &str = env!("CARGO_BIN_EXE_ctrackctl");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    workspace()
        .join("tests/fixtures/conformance")
        .join(name)
        .display()
        .to_string()
}

/// The `ctrackd` binary, built first if missing.
fn ctrackd() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("CTRACKD") {
            return PathBuf::from(p);
        }
        // <target>/<profile>/deps/cli-HASH -> <target>/<profile>/ctrackd
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let path = profile_dir.join(format!("ctrackd{}", std::env::consts::EXE_SUFFIX));
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .current_dir(workspace())
                .args(["build", "-p", "ctrack-server", "--bin", "ctrackd"])
                .arg("--target-dir")
                .arg(profile_dir.parent().unwrap());
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let out = build.output().unwrap();
            assert!(
                out.status.success(),
                "building ctrackd failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(path.exists(), "no ctrackd at {}", path.display());
        path
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: Mutex<u32> = Mutex::new(0);
        let n = {
            let mut n = N.lock().unwrap();
            *n += 1;
            *n
        };
        let dir =
            std::env::temp_dir().join(format!("ctrackctl-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a `ctrackctl` run printed, and its exit status.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }

    /// Asserts the exit status and that stderr is the one line `line`.
    #[track_caller]
    fn fails(self, code: i32, line: &str) -> Self {
        assert_eq!(self.code, code, "{self:?}");
        assert_eq!(self.stderr, format!("{line}\n"), "{self:?}");
        self
    }
}

fn run_ctl(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(CTL);
    cmd.args(args).env_remove("CTRACK_SERVER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A running `ctrackd`, killed on drop.
struct Daemon {
    child: Child,
    server: String,
    tls: Vec<String>,
    _scratch: Option<Scratch>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// `ctrackd --preload FIXTURE` on a free loopback port, with extra flags.
    fn start(preload: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let server = format!("127.0.0.1:{port}");
        let mut d = Self::spawn(preload, &server, extra, None);
        d.wait_tcp(port);
        d.wait_serving();
        d
    }

    fn spawn(preload: &str, listen: &str, extra: &[&str], scratch: Option<Scratch>) -> Self {
        let child = Command::new(ctrackd())
            .args(["--preload", preload, "--listen", listen])
            .args(["--metrics-listen", "off"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            server: listen.to_owned(),
            tls: Vec::new(),
            _scratch: scratch,
        }
    }

    fn wait_tcp(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "ctrackd exited early"
            );
            assert!(Instant::now() < deadline, "ctrackd never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.ctl(&["health"]);
            if r.code == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "never SERVING: {r:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `ctrackctl --server THIS ARGS...`.
    fn ctl(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = vec!["--server", &self.server];
        all.extend(self.tls.iter().map(String::as_str));
        all.extend_from_slice(args);
        run_ctl(&all, &[])
    }
}

// ---------------------------------------------------------------------------------------------
// Normalisation and golden files

/// Replaces the digits after every `key` with `T`.
fn blank_number(line: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = &rest[i + key.len()..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits > 0 {
            out.push('T');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

fn number_after(line: &str, key: &str) -> u64 {
    let i = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len();
    let rest = &line[i..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().unwrap()
}

/// A dump's stdout with time-dependent fields blanked and lines in id order.
fn normalise(format: &str, stdout: &str) -> String {
    let mut lines: Vec<&str> = stdout.lines().collect();
    let mut header = None;
    if format == "table" && lines.first().is_some_and(|l| l.starts_with("ID ")) {
        header = Some(lines.remove(0));
    }
    let timeout_col = header.and_then(|h| h.find("TIMEOUT"));
    let mut keyed: Vec<(String, String)> = lines
        .iter()
        .map(|l| match format {
            "ovs" => (
                format!("{:020}", number_after(l, ",id=")),
                blank_number(l, "timeout="),
            ),
            "json" => (
                format!("{:020}", number_after(l, "{\"id\":")),
                blank_number(&blank_number(l, "\"timeout_ms\":"), "\"age_ms\":"),
            ),
            "table" => {
                let col = timeout_col.expect("a table header");
                let id = l.split_whitespace().next().unwrap().parse::<u64>().unwrap();
                let end = l[col..].find(' ').map_or(l.len(), |e| col + e);
                let text = format!("{}{:<w$}{}", &l[..col], "T", &l[end..], w = end - col);
                (format!("{id:020}"), text)
            }
            "conntrack" => {
                // `proto    N TIMEOUT ...`: blank the third field.
                let after_name = l[l.find(' ').unwrap()..].trim_start();
                let prefix = &l[..l.len() - after_name.len()];
                let (num, tail) = after_name.split_once(' ').unwrap();
                let (_timeout, tail) = tail.split_once(' ').unwrap();
                let text = format!("{prefix}{num} T {tail}");
                (text.clone(), text)
            }
            other => panic!("unknown format {other}"),
        })
        .collect();
    keyed.sort();
    let mut out = String::new();
    if let Some(h) = header {
        out.push_str(h);
        out.push('\n');
    }
    for (_, l) in keyed {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[track_caller]
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

// ---------------------------------------------------------------------------------------------
// dump

#[test]
fn dump_matches_the_golden_files_in_every_format() {
    let d = Daemon::start(&fixture("loopback.pcap"), &[]);
    for format in ["table", "json", "ovs", "conntrack"] {
        let r = d.ctl(&["dump", "-o", format]).ok();
        assert_eq!(r.stderr, "5 connections\n", "{format}");
        golden(&format!("dump-{format}.txt"), &normalise(format, &r.stdout));
    }
    // Not a terminal: JSON lines by default.
    let r = d.ctl(&["dump"]).ok();
    golden("dump-json.txt", &normalise("json", &r.stdout));
    // --no-headers drops the table's header only.
    let r = d.ctl(&["dump", "-o", "table", "--no-headers"]).ok();
    assert_eq!(r.stdout.lines().count(), 5);
    assert!(!r.stdout.contains("TIMEOUT"));
    // Small batches stream the same table.
    let r = d.ctl(&["dump", "-o", "ovs", "--batch-size", "2"]).ok();
    golden("dump-ovs.txt", &normalise("ovs", &r.stdout));
    // Every JSON line is an object with the documented fields.
    for line in d.ctl(&["dump", "-o", "json"]).ok().stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for field in ["id", "zone", "protocol", "orig", "reply", "timeout_ms"] {
            assert!(v.get(field).is_some(), "{field} missing in {line}");
        }
    }
}

/// `ctrackctl -o ovs` prints what ctrackd's own OVS formatter prints for the same capture.
#[test]
fn ovs_lines_match_ctrackd_replay_dump() {
    {
        let pcap = "loopback.pcap";
        let out = Command::new(ctrackd())
            .args(["replay", "--dump", &fixture(pcap)])
            .output()
            .unwrap();
        assert!(out.status.success());
        let replay = String::from_utf8(out.stdout).unwrap();
        let replay_lines: Vec<&str> = replay.lines().filter(|l| l.contains(",orig=(")).collect();
        let d = Daemon::start(&fixture(pcap), &[]);
        let ours = normalise("ovs", &d.ctl(&["dump", "-o", "ovs"]).ok().stdout);
        let theirs = normalise("ovs", &(replay_lines.join("\n") + "\n"));
        // Connections close to expiry may be gone from the live table: compare those that
        // have at least 15 s left.
        let lasting: Vec<&str> = replay_lines
            .iter()
            .filter(|l| number_after(l, "timeout=") >= 15)
            .copied()
            .collect();
        assert!(lasting.len() >= 5, "{pcap}: {replay}");
        for l in normalise("ovs", &(lasting.join("\n") + "\n")).lines() {
            assert!(
                ours.lines().any(|o| o == l),
                "{pcap}: missing {l}\nin\n{ours}"
            );
        }
        for l in ours.lines() {
            assert!(theirs.lines().any(|t| t == l), "{pcap}: extra {l}");
        }
    }
}

#[test]
fn dump_filters_use_the_same_words() {
    let d = Daemon::start(&fixture("loopback.pcap"), &[]);
    let count = |args: &[&str]| {
        let mut all = vec!["dump", "-o", "json"];
        all.extend_from_slice(args);
        let r = d.ctl(&all).ok();
        let n = r.stdout.lines().count();
        assert_eq!(
            r.stderr,
            format!("{n} connection{}\n", if n == 1 { "" } else { "s" })
        );
        n
    };
    assert_eq!(count(&[]), 5);
    assert_eq!(count(&["--proto", "tcp"]), 2);
    assert_eq!(count(&["--proto", "17"]), 2);
    assert_eq!(count(&["--proto", "ICMP"]), 1);
    assert_eq!(count(&["--zone", "0"]), 5);
    assert_eq!(count(&["--zone", "7"]), 0);
    assert_eq!(count(&["--src", "127.0.0.0/8", "--dst", "127.0.0.1"]), 5);
    assert_eq!(count(&["--src", "10.0.0.0/8"]), 0);
    assert_eq!(count(&["--sport", "34768"]), 2);
    assert_eq!(count(&["--sport", "34768", "--dport", "15599"]), 1);
    assert_eq!(count(&["--state", "fin_wait_2"]), 1);
    assert_eq!(count(&["--state", "TIME-WAIT", "--proto", "tcp"]), 1);
    assert_eq!(count(&["--state", "established"]), 0);
    // An empty table still prints its header.
    let r = d.ctl(&["dump", "-o", "table", "--zone", "9"]).ok();
    assert!(r.stdout.starts_with("ID "), "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1);
    // Bad filter values are usage errors: exit 2, nothing sent.
    for bad in [
        &["dump", "--proto", "tcpx"][..],
        &["dump", "--zone", "70000"],
        &["dump", "--src", "10.0.0.0/33"],
        &["dump", "--dst", "not-an-address"],
        &["dump", "--sport", "65536"],
        &["dump", "--state", "open"],
        &["dump", "--batch-size", "0"],
        &["dump", "-o", "xml"],
    ] {
        let r = d.ctl(bad);
        assert_eq!(r.code, 2, "{bad:?}: {r:?}");
        assert!(r.stdout.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// watch

/// A `ctrackctl watch` in the background; its stdout lines arrive on a channel.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Watch {
    fn start(d: &Daemon, args: &[&str]) -> Self {
        let mut child = Command::new(CTL)
            .args(["--server", &d.server, "watch"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    if tx.send(line.unwrap()).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let lines = pipe(Box::new(child.stdout.take().unwrap()));
        let stderr = pipe(Box::new(child.stderr.take().unwrap()));
        let w = Self {
            child,
            lines,
            stderr,
        };
        // The watch says when it is subscribed: nothing after that is missed.
        let first = w.stderr.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(
            first,
            format!("watching ctrackd at {} (Ctrl-C to stop)", d.server)
        );
        w
    }

    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("no event within 10 s")
    }

    /// Ctrl-C: the watch ends with status 0 and its closing count; the remaining stderr.
    fn interrupt(mut self) -> Vec<String> {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid, which has not been waited for yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
        self.stderr.iter().collect()
    }
}

#[test]
fn watch_streams_events_until_ctrl_c() {
    let d = Daemon::start(&fixture("loopback.pcap"), &[]);
    let json = Watch::start(&d, &["-o", "json"]);
    let conntrack = Watch::start(&d, &["-o", "conntrack", "--proto", "udp"]);
    let table = Watch::start(&d, &["-o", "table"]);
    d.ctl(&["flush", "--all", "-o", "json"]).ok();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let v: serde_json::Value = serde_json::from_str(&json.next()).unwrap();
        assert_eq!(v["event"], "destroyed");
        assert_eq!(v["reason"], "flushed");
        ids.push(v["connection"]["id"].as_u64().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    let mut udp: Vec<String> = (0..2).map(|_| conntrack.next()).collect();
    udp.sort();
    assert_eq!(
        udp,
        [
            "[DESTROY] udp      17 src=127.0.0.1 dst=127.0.0.1 sport=34768 dport=15556 \
             packets=1 bytes=29 src=127.0.0.1 dst=127.0.0.1 sport=15556 dport=34768 packets=1 \
             bytes=29 [ASSURED] mark=0 use=1",
            "[DESTROY] udp      17 src=127.0.0.1 dst=127.0.0.1 sport=34768 dport=15599 \
             packets=1 bytes=29 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=15599 \
             dport=34768 packets=0 bytes=0 mark=0 use=1",
        ]
    );
    assert!(table.next().starts_with("EVENT "));
    for _ in 0..5 {
        assert!(table.next().starts_with("FLUSHED "));
    }
    assert_eq!(json.interrupt(), ["5 events"]);
    assert_eq!(conntrack.interrupt(), ["2 events"]);
    assert_eq!(table.interrupt(), ["5 events"]);
}

#[test]
fn watch_says_when_events_were_lost() {
    let scratch = Scratch::new("lost");
    let config = scratch.path("ctrack.toml");
    std::fs::write(&config, "[conntrack]\nevent_capacity = 1\n").unwrap();
    let d = Daemon::start(
        &fixture("loopback.pcap"),
        &["--config", config.to_str().unwrap()],
    );
    let w = Watch::start(&d, &["-o", "json"]);
    d.ctl(&["flush", "--all"]).ok();
    let note = w
        .stderr
        .recv_timeout(Duration::from_secs(10))
        .expect("no lost-events note");
    assert!(
        note.starts_with("ctrackctl: ")
            && note.ends_with(" lost (the watch or ctrackd's event queue fell behind)"),
        "{note}"
    );
    let lost: u64 = note["ctrackctl: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..5).contains(&lost), "{note}");
    let rest = w.interrupt();
    assert_eq!(rest.len(), 1);
    assert!(rest[0].ends_with(&format!(", {lost} lost")), "{rest:?}");
}

// ---------------------------------------------------------------------------------------------
// flush and flush-tuple

#[test]
fn flush_all_zone_filter_and_tuple() {
    let d = Daemon::start(&fixture("loopback.pcap"), &[]);
    // Nothing to flush given: a usage error, nothing removed.
    let r = d.ctl(&["flush"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(d.ctl(&["flush", "--all", "--zone", "0"]).code == 2);
    assert_eq!(d.ctl(&["dump"]).ok().stdout.lines().count(), 5);

    // One exact tuple, from the reply direction.
    let tuple = [
        "flush-tuple",
        "--proto",
        "udp",
        "--src",
        "127.0.0.1",
        "--dst",
        "127.0.0.1",
        "--sport",
        "15556",
        "--dport",
        "34768",
    ];
    let r = d.ctl(&[&tuple[..], &["-o", "table"]].concat()).ok();
    assert_eq!(r.stdout, "1 connection flushed\n");
    d.ctl(&tuple).fails(
        1,
        "ctrackctl: NOT_FOUND: no connection matches the tuple in zone 0",
    );
    // ICMP by echo id.
    let icmp = [
        "flush-tuple",
        "--proto",
        "icmp",
        "--src",
        "127.0.0.1",
        "--dst",
        "127.0.0.1",
        "--icmp-id",
        "15126",
        "-o",
        "json",
    ];
    assert_eq!(d.ctl(&icmp).ok().stdout, "{\"removed\":1}\n");
    // Bad tuples are usage errors.
    for bad in [
        &[
            "flush-tuple",
            "--proto",
            "tcp",
            "--src",
            "127.0.0.1",
            "--dst",
            "127.0.0.1",
        ][..],
        &[
            "flush-tuple",
            "--proto",
            "udp",
            "--src",
            "::1",
            "--dst",
            "127.0.0.1",
            "--sport",
            "1",
            "--dport",
            "2",
        ],
        &["flush-tuple", "--src", "127.0.0.1", "--dst", "127.0.0.1"],
        &[
            "flush-tuple",
            "--proto",
            "icmp",
            "--src",
            "127.0.0.1",
            "--dst",
            "127.0.0.1",
        ],
    ] {
        assert_eq!(d.ctl(bad).code, 2, "{bad:?}");
    }

    // A filter: the UDP flow left.
    let r = d.ctl(&["flush", "--proto", "udp", "-o", "table"]).ok();
    assert_eq!(r.stdout, "1 connection flushed\n");
    // A zone with nothing in it, then zone 0.
    assert_eq!(
        d.ctl(&["flush", "--zone", "3", "-o", "json"]).ok().stdout,
        "{\"removed\":0}\n"
    );
    assert_eq!(
        d.ctl(&["flush", "--zone", "0", "--state", "time_wait", "-o", "json"])
            .ok()
            .stdout,
        "{\"removed\":1}\n"
    );
    assert_eq!(
        d.ctl(&["flush", "--all", "-o", "table"]).ok().stdout,
        "1 connection flushed\n"
    );
    let r = d.ctl(&["dump", "-o", "json"]).ok();
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("", "0 connections\n")
    );
}

// ---------------------------------------------------------------------------------------------
// limits, policies, stats, config, health

#[test]
fn limits_get_set_del() {
    let d = Daemon::start(&fixture("loopback.pcap"), &[]);
    assert_eq!(
        d.ctl(&["limits", "get", "-o", "json"]).ok().stdout,
        "{\"default_limit\":null,\"zones\":[]}\n"
    );
    let r = d
        .ctl(&["limits", "set", "3:10", "default:100", "0:1000"])
        .ok();
    assert_eq!(r.stdout, "");
    let r = d.ctl(&["limits", "get", "-o", "table"]).ok();
    // Connections created before a limit was set do not count toward it.
    assert_eq!(
        r.stdout,
        "ZONE     LIMIT  SOURCE  COUNT  CONNECTIONS\n\
         default  100    -       -      -\n\
         0        1000   zone    0      5\n\
         3        10     zone    0      0\n"
    );
    let r = d
        .ctl(&["limits", "get", "7", "-o", "table", "--no-headers"])
        .ok();
    assert_eq!(
        r.stdout,
        "default  100    -        -      -\n7        100    default  0      0\n"
    );
    let r = d.ctl(&["limits", "get", "3", "-o", "json"]).ok();
    assert_eq!(
        r.stdout,
        "{\"default_limit\":100,\"zones\":[{\"zone\":3,\"explicit_limit\":10,\"limit\":10,\
         \"count\":0,\"connections\":0}]}\n"
    );
    d.ctl(&["limits", "del", "3", "default"]).ok();
    d.ctl(&["limits", "del", "3"]).fails(
        1,
        "ctrackctl: NOT_FOUND: zones[0]: zone 3 has no connection limit",
    );
    d.ctl(&["limits", "del", "default"]).fails(
        1,
        "ctrackctl: NOT_FOUND: default_limit: no default zone limit is set",
    );
    for bad in [
        &["limits", "set"][..],
        &["limits", "set", "3"],
        &["limits", "set", "70000:1"],
        &["limits", "set", "3:-1"],
        &["limits", "del"],
        &["limits", "del", "everything"],
        &["limits", "get", "x"],
    ] {
        assert_eq!(d.ctl(bad).code, 2, "{bad:?}");
    }
}

#[test]
fn policies_set_get_list_bind_unbind_del() {
    let d = Daemon::start(&fixture("loopback.pcap"), &[]);
    let r = d
        .ctl(&[
            "policy",
            "set",
            "5",
            "tcp_established=3600",
            "udp_first=20",
            "-o",
            "json",
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["id"], 5);
    assert_eq!(v["timeouts"]["tcp_established"], 3600);
    assert_eq!(v["timeouts"]["udp_first"], 20);
    assert_eq!(v["timeouts"]["tcp_syn_sent"], 30);
    assert_eq!(v["timeouts"].as_object().unwrap().len(), 11);
    let r = d.ctl(&["policy", "get", "5", "-o", "table"]).ok();
    assert_eq!(
        r.stdout,
        "ATTRIBUTE        SECONDS\n\
         tcp_syn_sent     30\n\
         tcp_syn_recv     30\n\
         tcp_established  3600\n\
         tcp_fin_wait     900\n\
         tcp_time_wait    45\n\
         tcp_close        30\n\
         udp_first        20\n\
         udp_single       60\n\
         udp_multiple     30\n\
         icmp_first       60\n\
         icmp_reply       30\n"
    );
    d.ctl(&["policy", "bind", "7", "5"]).ok();
    // Binding to a policy that does not exist.
    d.ctl(&["policy", "bind", "8", "99"])
        .fails(1, "ctrackctl: NOT_FOUND: timeout policy 99 does not exist");
    let r = d.ctl(&["policy", "list", "-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["bindings"],
        serde_json::json!([{"zone": 7, "policy_id": 5}])
    );
    assert!(
        v["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == 5)
    );
    let r = d.ctl(&["policy", "list", "-o", "table"]).ok();
    assert!(
        r.stdout.starts_with("POLICY  ATTRIBUTE        SECONDS\n"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("5       tcp_established  3600\n"),
        "{r:?}"
    );
    assert!(r.stdout.ends_with("\nZONE  POLICY\n7     5\n"), "{r:?}");
    d.ctl(&["policy", "unbind", "7"]).ok();
    let r = d.ctl(&["policy", "unbind", "7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.starts_with("ctrackctl: NOT_FOUND: "), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1);
    d.ctl(&["policy", "del", "5"]).ok();
    d.ctl(&["policy", "get", "5"]).fails(
        1,
        "ctrackctl: NOT_FOUND: id: timeout policy 5 does not exist",
    );
    // The server checks attribute names.
    let r = d.ctl(&["policy", "set", "6", "tcp_forever=1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("ctrackctl: INVALID_ARGUMENT: policy.timeouts: unknown timeout attribute \"tcp_forever\""),
        "{r:?}"
    );
    for bad in [
        &["policy", "set", "6", "tcp_established"][..],
        &["policy", "set", "6", "tcp_established=-1"],
        &["policy", "get"],
        &["policy", "bind", "70000", "1"],
        &["policy", "frobnicate"],
    ] {
        assert_eq!(d.ctl(bad).code, 2, "{bad:?}");
    }
}

#[test]
fn stats_config_and_health() {
    let d = Daemon::start(&fixture("loopback.pcap"), &[]);
    let r = d.ctl(&["stats", "-o", "table"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines.contains(&"connections                  5"),
        "{}",
        r.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("protocol.tcp ") && l.ends_with(" 2"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("zone.0 ") && l.ends_with(" 5"))
    );
    let v: serde_json::Value =
        serde_json::from_str(&d.ctl(&["stats", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(v["connections"], 5);
    assert_eq!(v["per_protocol"]["udp"], 2);
    assert_eq!(v["per_zone"]["0"], 5);

    let r = d.ctl(&["config", "get", "-o", "table"]).ok();
    assert_eq!(
        r.stdout,
        "max_conns       3000000\nsweep_interval  20s\ntcp_seq_check   on\n"
    );
    let r = d
        .ctl(&[
            "config",
            "set",
            "--max-conns",
            "1000",
            "--sweep-interval",
            "1m30s",
            "--tcp-seq-check",
            "off",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(
        r.stdout,
        "{\"max_conns\":1000,\"sweep_interval_ms\":90000,\"tcp_seq_check\":false}\n"
    );
    let r = d
        .ctl(&["config", "set", "--max-conns", "0", "-o", "table"])
        .ok();
    assert_eq!(
        r.stdout,
        "max_conns       unlimited\nsweep_interval  90s\ntcp_seq_check   off\n"
    );
    let toml = d.ctl(&["config", "get", "--toml"]).ok().stdout;
    assert!(toml.contains("tcp_seq_check = false"), "{toml}");
    assert!(
        toml.contains(&format!("listen = \"{}\"", d.server)),
        "{toml}"
    );
    let r = d.ctl(&["config", "set", "--sweep-interval", "2d"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("ctrackctl: INVALID_ARGUMENT: "),
        "{r:?}"
    );
    assert_eq!(d.ctl(&["config", "set"]).code, 2);
    assert_eq!(
        d.ctl(&["config", "set", "--tcp-seq-check", "maybe"]).code,
        2
    );

    assert_eq!(d.ctl(&["health", "-o", "table"]).ok().stdout, "SERVING\n");
    assert_eq!(
        d.ctl(&["health", "ctrack.v1.ConnTrack", "-o", "json"])
            .ok()
            .stdout,
        "{\"service\":\"ctrack.v1.ConnTrack\",\"status\":\"SERVING\"}\n"
    );
    d.ctl(&["health", "no.such.Service"])
        .fails(1, "ctrackctl: NOT_FOUND: service not registered");
    // Formats for connections only.
    d.ctl(&["stats", "-o", "ovs"]).fails(
        2,
        "ctrackctl: -o ovs and -o conntrack apply to dump and watch only (use table or json)",
    );
}

// ---------------------------------------------------------------------------------------------
// Connections: errors, Unix socket, environment, TLS

#[test]
fn an_unreachable_server_is_one_line_and_exit_2() {
    let port = free_port();
    let server = format!("127.0.0.1:{port}");
    for args in [
        &["stats"][..],
        &["dump"],
        &["watch"],
        &["flush", "--all"],
        &["limits", "get"],
        &["policy", "list"],
        &["config", "get"],
        &["health"],
    ] {
        let mut all = vec!["--server", server.as_str()];
        all.extend_from_slice(args);
        run_ctl(&all, &[]).fails(
            2,
            &format!("ctrackctl: cannot reach ctrackd at {server}: connection refused"),
        );
    }
    // The environment names the server too.
    run_ctl(&["stats"], &[("CTRACK_SERVER", &server)]).fails(
        2,
        &format!("ctrackctl: cannot reach ctrackd at {server}: connection refused"),
    );
    run_ctl(&["--server", "unix:/nonexistent/ctrack.sock", "stats"], &[]).fails(
        2,
        "ctrackctl: cannot reach ctrackd at unix:/nonexistent/ctrack.sock: no such file or directory",
    );
    // A listener that never answers: the timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let r = run_ctl(&["--server", &server, "--timeout", "300ms", "stats"], &[]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr.contains(&server) && r.stderr.contains("300ms"),
        "{r:?}"
    );
    drop(silent);
    // A daemon that went away.
    let d = Daemon::start(&fixture("loopback.pcap"), &[]);
    let server = d.server.clone();
    drop(d);
    run_ctl(&["--server", &server, "dump"], &[]).fails(
        2,
        &format!("ctrackctl: cannot reach ctrackd at {server}: connection refused"),
    );
}

#[test]
fn usage_errors_exit_2() {
    for bad in [
        &[][..],
        &["frobnicate"],
        &["--server", "host:port", "stats"],
        &["--timeout", "soon", "stats"],
        &["--cert", "/dev/null", "stats"],
        &["--server", "unix:/x.sock", "--ca", "/dev/null", "stats"],
        &["--ca", "/nonexistent/ca.pem", "stats"],
        &["completions", "tcsh"],
    ] {
        let r = run_ctl(bad, &[]);
        assert_eq!(r.code, 2, "{bad:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{bad:?}: {r:?}");
    }
    let r = run_ctl(&["--help"], &[]).ok();
    assert!(r.stdout.contains("Exit status:"), "{}", r.stdout);
    assert!(r.stdout.contains("2  usage error"), "{}", r.stdout);
    assert!(r.stdout.contains("CTRACK_SERVER"), "{}", r.stdout);
    run_ctl(&["--version"], &[]).ok();
}

#[test]
fn completions_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let r = run_ctl(&["completions", shell], &[]).ok();
        assert!(r.stdout.contains("ctrackctl"), "{shell}");
        assert!(r.stdout.contains("flush-tuple"), "{shell}");
    }
}

#[test]
fn unix_socket_and_environment() {
    let scratch = Scratch::new("unix");
    let socket = scratch.path("ctrack.sock");
    let listen = format!("unix:{}", socket.display());
    let mut d = Daemon::spawn(&fixture("loopback.pcap"), &listen, &[], Some(scratch));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no socket");
        assert!(
            d.child.try_wait().unwrap().is_none(),
            "ctrackd exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.wait_serving();
    let r = run_ctl(&["dump", "-o", "ovs"], &[("CTRACK_SERVER", &listen)]).ok();
    assert_eq!(r.stdout.lines().count(), 5);
    // --server wins over the environment.
    let r = run_ctl(
        &["--server", &listen, "stats", "-o", "json"],
        &[("CTRACK_SERVER", "127.0.0.1:1")],
    )
    .ok();
    assert!(r.stdout.contains("\"connections\":5"), "{r:?}");
}

#[test]
fn mutual_tls_identities() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let scratch = Scratch::new("tls");
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ctrackctl test CA");
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let issue = |name: &str, stem: &str| -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let (c, k) = (
            scratch.path(&format!("{stem}.pem")),
            scratch.path(&format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    };
    let ca = scratch.path("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let ca = ca.display().to_string();
    let (server_cert, server_key) = issue("localhost", "server");
    let (admin_cert, admin_key) = issue("admin.ctrack.test", "admin");
    let (reader_cert, reader_key) = issue("reader.ctrack.test", "reader");

    let port = free_port();
    let mut d = Daemon::spawn(
        &fixture("loopback.pcap"),
        &format!("127.0.0.1:{port}"),
        &[
            "--tls-cert",
            &server_cert,
            "--tls-key",
            &server_key,
            "--tls-client-ca",
            &ca,
            "--admin-identity",
            "admin.ctrack.test",
        ],
        None,
    );
    d.wait_tcp(port);
    let tls = |cert: &str, key: &str| -> Vec<String> {
        [
            "--ca",
            &ca,
            "--cert",
            cert,
            "--key",
            key,
            "--tls-domain",
            "localhost",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    d.tls = tls(&reader_cert, &reader_key);
    d.wait_serving();
    // A read-only identity reads, but may not change anything.
    assert_eq!(d.ctl(&["dump", "-o", "ovs"]).ok().stdout.lines().count(), 5);
    let r = d.ctl(&["flush", "--all"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("ctrackctl: PERMISSION_DENIED: "),
        "{r:?}"
    );
    assert_eq!(r.stderr.lines().count(), 1);
    // The admin identity may.
    d.tls = tls(&admin_cert, &admin_key);
    assert_eq!(
        d.ctl(&["flush", "--all", "-o", "json"]).ok().stdout,
        "{\"removed\":5}\n"
    );
    // Plaintext against TLS, and TLS without a client certificate: connection errors.
    d.tls.clear();
    let r = d.ctl(&["stats"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr.ends_with(" (if ctrackd serves TLS, give --ca)\n"),
        "{r:?}"
    );
    d.tls = vec![
        "--ca".into(),
        ca.clone(),
        "--tls-domain".into(),
        "localhost".into(),
    ];
    let r = d.ctl(&["stats"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr.starts_with(&format!(
            "ctrackctl: cannot reach ctrackd at {}: ",
            d.server
        )),
        "{r:?}"
    );
    assert!(
        r.stderr
            .ends_with(" (if ctrackd requires client certificates, give --cert and --key)\n"),
        "{r:?}"
    );
    // The wrong name.
    d.tls = tls(&admin_cert, &admin_key);
    d.tls[7] = "elsewhere.test".into();
    let r = d.ctl(&["stats"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("elsewhere.test"), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// 100,000 connections

/// A classic pcap (Ethernet, microseconds) of `n` one-packet UDP flows.
fn write_udp_flows(path: &Path, n: u32) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&65_535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    out.write_all(&header).unwrap();
    let payload = b"ping";
    let ip_len = 20 + 8 + payload.len();
    let mut frame = Vec::with_capacity(14 + ip_len);
    for i in 0..n {
        frame.clear();
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let src = 0x0a00_0000u32 + i + 1; // 10.0.0.1, 10.0.0.2, ...
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&u16::try_from(ip_len).unwrap().to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src.to_be_bytes());
        ip[16..20].copy_from_slice(&[192, 168, 0, 1]);
        let mut sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!u16::try_from(sum).unwrap()).to_be_bytes());
        frame.extend_from_slice(&ip);
        let sport = 1024 + u16::try_from(i % 60_000).unwrap();
        frame.extend_from_slice(&sport.to_be_bytes());
        frame.extend_from_slice(&53u16.to_be_bytes());
        frame.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&[0, 0]); // no checksum (allowed for UDP over IPv4)
        frame.extend_from_slice(payload);
        let len = u32::try_from(frame.len()).unwrap();
        let mut record = Vec::with_capacity(16);
        record.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        record.extend_from_slice(&(i % 1_000_000).to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        out.write_all(&record).unwrap();
        out.write_all(&frame).unwrap();
    }
    out.flush().unwrap();
}

/// Runs ctrackctl, counting its stdout lines as they stream; returns (lines, stderr,
/// wall time, peak resident memory in KiB).
fn counted_run(args: &[&str]) -> (u64, String, Duration, i64) {
    let started = Instant::now();
    #[allow(
        clippy::zombie_processes,
        reason = "reaped below with wait4, which also gives its resource usage"
    )]
    let mut child = Command::new(CTL)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let counter = std::thread::spawn(move || {
        let mut n = 0u64;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            assert!(
                line.starts_with("{\"id\":") && line.ends_with('}'),
                "{line}"
            );
            n += 1;
        }
        n
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let pid = i32::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, not yet waited for (Child::wait is never called), with
    // valid pointers to locals.
    let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    assert_eq!(waited, pid);
    let elapsed = started.elapsed();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}"
    );
    let lines = counter.join().unwrap();
    (lines, err.join().unwrap(), elapsed, usage.ru_maxrss)
}

#[test]
fn a_dump_of_100000_connections_streams_as_json() {
    const N: u32 = 100_000;
    let scratch = Scratch::new("100k");
    let pcap = scratch.path("udp-100k.pcap");
    write_udp_flows(&pcap, N);
    let d = Daemon::start(pcap.to_str().unwrap(), &[]);
    let (small, _, _, small_rss) = counted_run(&[
        "--server", &d.server, "dump", "-o", "json", "--sport", "1024",
    ]);
    assert_eq!(small, 2); // sport 1024 repeats every 60,000 flows
    let (lines, stderr, elapsed, rss) = counted_run(&["--server", &d.server, "dump", "-o", "json"]);
    assert_eq!(lines, u64::from(N));
    assert_eq!(stderr, format!("{N} connections\n"));
    eprintln!(
        "ctrackctl -o json dump of {N} connections: {:.2} s wall, peak RSS {} KiB (a 2-line dump: \
         {small_rss} KiB)",
        elapsed.as_secs_f64(),
        rss
    );
    // Streamed, not collected: holding 100,000 connections would take tens of MiB more.
    assert!(
        rss < small_rss + 16 * 1024,
        "peak RSS {rss} KiB against {small_rss} KiB for a tiny dump"
    );
    // A reader that stops early (`| head -1`) ends the dump quietly, with status 0.
    let mut child = Command::new(CTL)
        .args(["--server", &d.server, "dump", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{\"id\":"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
