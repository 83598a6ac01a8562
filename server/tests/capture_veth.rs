//! Real capture on veth pairs in throwaway network namespaces (needs root; skipped otherwise).
//!
//! Each outer test creates namespaces `ctcap-a-<pid>-<tag>` and `ctcap-b-<pid>-<tag>` joined by
//! veth pairs, then runs its `inner_*` twin inside namespace A with
//! `ip netns exec A <this test binary> --exact inner_... --ignored`: the whole process then
//! lives in A, so pnet's interface list and the packet sockets see A's interfaces only. The
//! inner tests are `#[ignore]`d and do nothing unless `CTCAP_INNER` is set, so a plain
//! `cargo test -- --ignored` does not run them outside a namespace. A guard removes the
//! namespaces (and with them the veths) when the outer test ends, panics included.
//!
//! Traffic is made by the kernel stacks of the two namespaces (ICMP echo, UDP, TCP) with
//! python3 on the B side and std sockets on the A side, plus raw Ethernet frames (VLAN tagged,
//! or on an interface without addresses) injected on B's end with an AF_PACKET socket. The only
//! addresses used are 10.201.0.1/24 (A) and 10.201.0.2/24 (B), inside the namespaces.

mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ctrack_core::{ConnEntry, Filter, ProtoInfo, TcpState, Tracker, proto};
use ctrack_server::capture::{Capture, CaptureConfig, CaptureError, InterfaceSpec, InterfaceState};
use ctrack_server::clock::Clock;

const INNER_ENV: &str = "CTCAP_INNER";
const NS_B_ENV: &str = "CTCAP_NS_B";
const A_ADDR: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const B_ADDR: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);

// ---------------------------------------------------------------------------------------------
// Outer tests: build the namespaces, run the inner test in A.

#[test]
fn captures_icmp_udp_tcp_and_vlan_zones_on_a_veth() {
    if !netns::can_run("the capture tests") {
        return;
    }
    let ns = Namespaces::new("t");
    ns.veth("veth-a", "veth-b", true);
    ns.run_inner("inner_captures_icmp_udp_tcp_and_vlan_zones");
}

#[test]
fn picks_up_an_interface_created_after_start() {
    if !netns::can_run("the capture tests") {
        return;
    }
    let ns = Namespaces::new("l");
    ns.run_inner("inner_picks_up_an_interface_created_after_start");
}

#[test]
fn deleted_interface_goes_down_while_the_other_keeps_working() {
    if !netns::can_run("the capture tests") {
        return;
    }
    let ns = Namespaces::new("d");
    ns.veth("one0", "one1", true);
    ns.veth("two0", "two1", false);
    ns.run_inner("inner_deleted_interface_goes_down_while_the_other_keeps_working");
}

#[test]
fn counts_truncated_frames() {
    if !netns::can_run("the capture tests") {
        return;
    }
    let ns = Namespaces::new("s");
    ns.veth("veth-a", "veth-b", false);
    ns.run_inner("inner_counts_truncated_frames");
}

#[test]
fn refuses_to_start_without_cap_net_raw() {
    if !netns::can_run("the capture tests") {
        return;
    }
    if !netns::tool_exists("setpriv") {
        println!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    // Root without CAP_NET_RAW and CAP_NET_ADMIN: drop them from the bounding set, so the
    // exec'd test binary does not get them back.
    let out = Command::new("setpriv")
        .args(["--bounding-set=-net_raw,-net_admin", "--inh-caps=-all"])
        .arg(std::env::current_exe().expect("test binary path"))
        .args(inner_args("inner_refuses_to_start_without_cap_net_raw"))
        .env(INNER_ENV, "1")
        .output()
        .expect("run setpriv");
    check_inner(&out);
}

// ---------------------------------------------------------------------------------------------
// Inner tests: run inside namespace A.

#[test]
#[ignore = "run by captures_icmp_udp_tcp_and_vlan_zones_on_a_veth inside a namespace"]
fn inner_captures_icmp_udp_tcp_and_vlan_zones() {
    let Some(ns_b) = inner_env() else { return };
    let (tracker, clock) = engine();
    let mut spec = InterfaceSpec::new("veth-a", 7);
    spec.vlan_zones.insert(100, 42);
    spec.vlan_zones.insert(7, 43);
    let capture = start(vec![spec], 2, &tracker, clock);
    assert_eq!(capture.running_workers(), 2);
    assert_eq!(capture.stats()[0].state, InterfaceState::Up);
    // The kernel keeps 15 bytes of a thread name: "capture-veth-a-0" shows as "capture-veth-a-".
    // Each thread names itself as it starts, hence the wait.
    wait_for("named worker threads", Duration::from_secs(2), || {
        (thread_names("capture-veth-a") == 2).then_some(())
    });

    // ICMP echo (answered by A's kernel) and UDP to a server here in A.
    let udp = udp_echo_server(5301);
    py_in(&ns_b, ICMP_AND_UDP_CLIENT, &["40001", "5301"]);
    udp.join().expect("udp server");

    // TCP: the client stays connected until told to close.
    let tcp = tcp_server(5302);
    let mut client = py_spawn(&ns_b, TCP_CLIENT, &["40002", "5302"]);
    let mut lines = BufReader::new(client.stdout.take().expect("client stdout"));
    let mut line = String::new();
    lines.read_line(&mut line).expect("client output");
    assert_eq!(line.trim(), "connected", "tcp client");

    // VLAN-tagged UDP frames injected on B's end: the kernel strips the outer tag before the
    // capture socket sees the frame; the zone comes from that tag.
    py_in(
        &ns_b,
        INJECT_UDP,
        &[
            "veth-b",
            "40010:5310:8100.100",
            "40011:5311:88a8.7+8100.100",
            "40012:5312:8100.9",
        ],
    );

    // One connection (the echo id), 3 requests and 3 replies.
    wait_for_conn(&tracker, clock, "ICMP echo with replies", |e| {
        e.key.proto == proto::ICMP
            && e.key.zone == 7
            && src_dst(e) == (IpAddr::V4(B_ADDR), IpAddr::V4(A_ADDR))
            && e.proto == ProtoInfo::Icmp { reply_seen: true }
            && e.counters.packets == [3, 3]
    });
    wait_for_conn(&tracker, clock, "UDP with reply (BIDIR)", |e| {
        is_udp(e, 7, 40001, 5301) && e.proto == ProtoInfo::Other { state: "BIDIR" }
    });
    wait_for_conn(&tracker, clock, "TCP established both ways", |e| {
        e.key.proto == proto::TCP
            && e.key.zone == 7
            && e.key.src.port == 40002
            && e.key.dst.port == 5302
            && matches!(e.proto, ProtoInfo::Tcp { orig, reply }
                if orig.state == TcpState::Established && reply.state == TcpState::Established)
    });
    wait_for_conn(&tracker, clock, "802.1Q VLAN 100 -> zone 42", |e| {
        is_udp(e, 42, 40010, 5310)
    });
    wait_for_conn(&tracker, clock, "802.1ad VLAN 7 (outer) -> zone 43", |e| {
        is_udp(e, 43, 40011, 5311)
    });
    wait_for_conn(
        &tracker,
        clock,
        "unmapped VLAN 9 -> interface zone 7",
        |e| is_udp(e, 7, 40012, 5312),
    );

    // Close the TCP connection: both FINs are seen.
    client
        .stdin
        .take()
        .expect("client stdin")
        .write_all(b"close\n")
        .expect("tell the client to close");
    let status = client.wait().expect("client exit");
    assert!(status.success(), "tcp client failed");
    tcp.join().expect("tcp server");
    wait_for_conn(&tracker, clock, "TCP closed both ways", |e| {
        e.key.proto == proto::TCP
            && e.key.src.port == 40002
            && matches!(e.proto, ProtoInfo::Tcp { orig, reply }
                if closing(orig.state) && closing(reply.state))
    });

    // Counters: everything read was tracked; the kernel's figures arrive within a second.
    let stats = wait_for("kernel statistics", Duration::from_secs(3), || {
        let s = capture.stats().remove(0);
        let kernel: u64 = s.workers.iter().map(|w| w.kernel_packets).sum();
        let received: u64 = s.workers.iter().map(|w| w.received).sum();
        let processed: u64 = s.workers.iter().map(|w| w.processed).sum();
        (kernel >= 20 && received == processed).then_some(s)
    });
    let received: u64 = stats.workers.iter().map(|w| w.received).sum();
    assert!(received >= 20, "at least the frames above: {stats:?}");
    for w in &stats.workers {
        assert!(w.running);
        assert_eq!(w.kernel_drops, 0);
        assert_eq!(w.truncated, 0);
        // As root SO_RCVBUFFORCE is granted; the kernel reports twice the 8 MiB.
        assert!(w.rcvbuf_bytes >= 16 << 20, "{w:?}");
    }

    let t = Instant::now();
    capture.stop();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
#[ignore = "run by picks_up_an_interface_created_after_start inside a namespace"]
fn inner_picks_up_an_interface_created_after_start() {
    let Some(ns_b) = inner_env() else { return };
    let (tracker, clock) = engine();
    let capture = start(vec![InterfaceSpec::new("late0", 3)], 2, &tracker, clock);
    assert_eq!(capture.running_workers(), 0);
    match &capture.stats()[0].state {
        InterfaceState::Down { last_error, .. } => {
            assert!(last_error.contains("no such interface"), "{last_error}");
        }
        other => panic!("expected down, got {other:?}"),
    }

    let created = Instant::now();
    netns::ip(&[
        "link", "add", "late0", "type", "veth", "peer", "name", "late1", "netns", &ns_b,
    ]);
    netns::ip(&["addr", "add", "10.201.0.1/24", "dev", "late0"]);
    netns::ip(&["link", "set", "late0", "up"]);
    netns::ip(&["-n", &ns_b, "addr", "add", "10.201.0.2/24", "dev", "late1"]);
    netns::ip(&["-n", &ns_b, "link", "set", "late1", "up"]);

    // The first retry comes 1 s after start, the next 2 s later.
    wait_for("late0 up", Duration::from_secs(8), || {
        (capture.running_workers() == 2 && capture.stats()[0].state == InterfaceState::Up)
            .then_some(())
    });
    println!(
        "late0 captured {:?} after it was created",
        created.elapsed()
    );

    let udp = udp_echo_server(5401);
    py_in(&ns_b, ICMP_AND_UDP_CLIENT, &["40401", "5401"]);
    udp.join().expect("udp server");
    wait_for_conn(&tracker, clock, "UDP on the late interface", |e| {
        is_udp(e, 3, 40401, 5401) && e.proto == ProtoInfo::Other { state: "BIDIR" }
    });

    // Administratively down, then up again: down while it is down, captured again after.
    netns::ip(&["link", "set", "late0", "down"]);
    wait_for("late0 down", Duration::from_secs(3), || {
        matches!(capture.stats()[0].state, InterfaceState::Down { .. }).then_some(())
    });
    thread::sleep(Duration::from_millis(1_500));
    match &capture.stats()[0].state {
        InterfaceState::Down { last_error, .. } => {
            assert!(last_error.contains("down"), "{last_error}");
        }
        other => panic!("expected down, got {other:?}"),
    }
    netns::ip(&["link", "set", "late0", "up"]);
    wait_for("late0 up again", Duration::from_secs(8), || {
        (capture.stats()[0].state == InterfaceState::Up).then_some(())
    });
    let udp = udp_echo_server(5402);
    py_in(&ns_b, ICMP_AND_UDP_CLIENT, &["40402", "5402"]);
    udp.join().expect("udp server");
    wait_for_conn(&tracker, clock, "UDP after down/up", |e| {
        is_udp(e, 3, 40402, 5402) && e.proto == ProtoInfo::Other { state: "BIDIR" }
    });
    capture.stop();
}

#[test]
#[ignore = "run by counts_truncated_frames inside a namespace"]
fn inner_counts_truncated_frames() {
    let Some(ns_b) = inner_env() else { return };
    let (tracker, clock) = engine();
    let cfg = CaptureConfig {
        interfaces: vec![InterfaceSpec::new("veth-a", 0)],
        workers: 1,
        snaplen: 128,
        ..CaptureConfig::default()
    };
    let capture = Capture::start(cfg, Arc::clone(&tracker), clock).expect("capture starts");
    py_in(&ns_b, INJECT_UDP, &["veth-b", "40030:5330:-:1000"]);
    let w = wait_for("a truncated frame", Duration::from_secs(3), || {
        let w = capture.stats()[0].workers[0];
        (w.truncated >= 1 && w.processed == w.received).then_some(w)
    });
    println!("{w:?}");
    // The IPv4 header claims more bytes than the snap length kept.
    assert!(w.invalid >= 1, "{w:?}");
    capture.stop();
}

#[test]
#[ignore = "run by deleted_interface_goes_down_while_the_other_keeps_working inside a namespace"]
fn inner_deleted_interface_goes_down_while_the_other_keeps_working() {
    let Some(ns_b) = inner_env() else { return };
    let (tracker, clock) = engine();
    let specs = vec![InterfaceSpec::new("one0", 1), InterfaceSpec::new("two0", 2)];
    let capture = start(specs, 2, &tracker, clock);
    assert_eq!(capture.running_workers(), 4);

    py_in(&ns_b, INJECT_UDP, &["two1", "40020:5320:-"]);
    wait_for_conn(&tracker, clock, "frame on two0", |e| {
        is_udp(e, 2, 40020, 5320)
    });

    let deleted = clock.now();
    netns::ip(&["link", "del", "two0"]);
    let last_error = wait_for("two0 down", Duration::from_secs(3), || {
        match capture.stats().remove(1).state {
            InterfaceState::Down { since, last_error } if since >= deleted => Some(last_error),
            _ => None,
        }
    });
    println!("two0 down: {last_error}");
    let stats = capture.stats();
    assert_eq!(stats[0].state, InterfaceState::Up, "one0 is not affected");
    assert_eq!(capture.running_workers(), 2);
    let before: u64 = stats[0].workers.iter().map(|w| w.processed).sum();

    let udp = udp_echo_server(5321);
    py_in(&ns_b, ICMP_AND_UDP_CLIENT, &["40021", "5321"]);
    udp.join().expect("udp server");
    wait_for_conn(&tracker, clock, "UDP on one0 after two0 went away", |e| {
        is_udp(e, 1, 40021, 5321) && e.proto == ProtoInfo::Other { state: "BIDIR" }
    });
    let after: u64 = capture.stats()[0].workers.iter().map(|w| w.processed).sum();
    assert!(after > before, "one0 kept capturing ({before} -> {after})");

    // The interface comes back: capture resumes on its own.
    netns::ip(&[
        "link", "add", "two0", "type", "veth", "peer", "name", "two1", "netns", &ns_b,
    ]);
    netns::ip(&["link", "set", "two0", "up"]);
    netns::ip(&["-n", &ns_b, "link", "set", "two1", "up"]);
    wait_for("two0 up again", Duration::from_secs(10), || {
        (capture.stats()[1].state == InterfaceState::Up && capture.running_workers() == 4)
            .then_some(())
    });
    py_in(&ns_b, INJECT_UDP, &["two1", "40022:5322:-"]);
    wait_for_conn(&tracker, clock, "frame on the new two0", |e| {
        is_udp(e, 2, 40022, 5322)
    });
    capture.stop();
}

#[test]
#[ignore = "run by refuses_to_start_without_cap_net_raw without CAP_NET_RAW"]
fn inner_refuses_to_start_without_cap_net_raw() {
    if inner_env().is_none() {
        return;
    }
    let (tracker, clock) = engine();
    let cfg = CaptureConfig {
        interfaces: vec![InterfaceSpec::new("lo", 0)],
        workers: 1,
        ..CaptureConfig::default()
    };
    match Capture::start(cfg, tracker, clock) {
        Err(e @ CaptureError::PermissionDenied { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("CAP_NET_RAW") && msg.contains("root"), "{msg}");
        }
        Err(e) => panic!("expected PermissionDenied, got {e}"),
        Ok(_) => panic!("capture started without CAP_NET_RAW"),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Echo request/reply x3 to A, then one UDP exchange (argv: source port, destination port).
const ICMP_AND_UDP_CLIENT: &str = r#"
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
ident = 0x4321
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(3)
for seq in range(3):
    body = struct.pack('!HH', ident, seq) + b'ctrack'
    pkt = struct.pack('!BBH', 8, 0, csum(struct.pack('!BBH', 8, 0, 0) + body)) + body
    s.sendto(pkt, ('10.201.0.1', 0))
    while True:
        data = s.recv(1500)
        ihl = (data[0] & 15) * 4
        t, c, _, i, q = struct.unpack('!BBHHH', data[ihl:ihl + 8])
        if t == 0 and i == ident and q == seq:
            break
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.bind(('10.201.0.2', int(sys.argv[1])))
u.sendto(b'ping', ('10.201.0.1', int(sys.argv[2])))
assert u.recv(100) == b'pong'
"#;

/// Connects (argv: source port, destination port), exchanges a line, prints "connected", and
/// closes when a line arrives on stdin.
const TCP_CLIENT: &str = r#"
import socket, sys
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.settimeout(5)
t.bind(('10.201.0.2', int(sys.argv[1])))
t.connect(('10.201.0.1', int(sys.argv[2])))
t.sendall(b'hello')
assert t.recv(5) == b'world'
print('connected', flush=True)
sys.stdin.readline()
t.shutdown(socket.SHUT_WR)
assert t.recv(10) == b''
t.close()
"#;

/// Sends raw UDP frames 10.201.0.2 -> 10.201.0.1 on an interface (argv[1]); each further
/// argument is `SPORT:DPORT:TAGS[:PAYLOAD_BYTES]`, TAGS being `-` or `TPID.VID[+TPID.VID]`
/// (outer first).
const INJECT_UDP: &str = r#"
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
p.bind((sys.argv[1], 0))
for arg in sys.argv[2:]:
    sport, dport, tags, *size = arg.split(':')
    payload = b'x' * int(size[0]) if size else b'ctrack'
    udp = struct.pack('!HHHH', int(sport), int(dport), 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton('10.201.0.2'), socket.inet_aton('10.201.0.1'))
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    eth = b'\xff' * 6 + b'\x02\x00\x0a\xc9\x00\x02'
    if tags != '-':
        for tag in tags.split('+'):
            tpid, vid = tag.split('.')
            eth += struct.pack('!HH', int(tpid, 16), int(vid))
    p.send(eth + struct.pack('!H', 0x0800) + ip + udp)
"#;

/// The namespace B's name when running as an inner test, else `None` (after a skip line).
fn inner_env() -> Option<String> {
    if std::env::var_os(INNER_ENV).is_none() {
        println!("skipped: an inner test, run by its outer test inside a namespace");
        return None;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "debug".into()),
        )
        .with_test_writer()
        .try_init();
    Some(std::env::var(NS_B_ENV).unwrap_or_default())
}

fn inner_args(test: &str) -> [&str; 5] {
    [
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]
}

fn check_inner(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- inner stdout\n{stdout}--- inner stderr\n{stderr}---");
    assert!(out.status.success(), "inner test failed: {}", out.status);
    assert!(
        stdout.contains("1 passed"),
        "the inner test did not run (filtered out?)"
    );
}

/// Two fresh namespaces, deleted on drop.
struct Namespaces {
    a: String,
    b: String,
}

impl Namespaces {
    fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let ns = Self {
            a: format!("ctcap-a-{pid}-{tag}"),
            b: format!("ctcap-b-{pid}-{tag}"),
        };
        for name in [&ns.a, &ns.b] {
            netns::ip(&["netns", "add", name]);
            netns::ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        ns
    }

    /// A veth pair `in_a` (in A) - `in_b` (in B), both up; with `addresses`, 10.201.0.1/24 on
    /// A's end and 10.201.0.2/24 on B's.
    fn veth(&self, in_a: &str, in_b: &str, addresses: bool) {
        netns::ip(&[
            "link", "add", in_a, "netns", &self.a, "type", "veth", "peer", "name", in_b, "netns",
            &self.b,
        ]);
        if addresses {
            netns::ip(&["-n", &self.a, "addr", "add", "10.201.0.1/24", "dev", in_a]);
            netns::ip(&["-n", &self.b, "addr", "add", "10.201.0.2/24", "dev", in_b]);
        }
        netns::ip(&["-n", &self.a, "link", "set", in_a, "up"]);
        netns::ip(&["-n", &self.b, "link", "set", in_b, "up"]);
    }

    /// Runs the inner test `test` of this binary inside namespace A.
    fn run_inner(&self, test: &str) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.a])
            .arg(std::env::current_exe().expect("test binary path"))
            .args(inner_args(test))
            .env(INNER_ENV, "1")
            .env(NS_B_ENV, &self.b)
            .output()
            .expect("run ip netns exec");
        check_inner(&out);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn py_command(ns: &str, script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "python3", "-c", script])
        .args(args);
    cmd
}

/// Runs a python script in namespace `ns` and checks it succeeded.
fn py_in(ns: &str, script: &str, args: &[&str]) {
    let out = py_command(ns, script, args).output().expect("run python3");
    assert!(
        out.status.success(),
        "python in {ns} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn py_spawn(ns: &str, script: &str, args: &[&str]) -> Child {
    py_command(ns, script, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3")
}

fn engine() -> (Arc<Tracker>, Clock) {
    (
        Arc::new(Tracker::new(ctrack_core::Config::default())),
        Clock::start(),
    )
}

fn start(
    specs: Vec<InterfaceSpec>,
    workers: usize,
    tracker: &Arc<Tracker>,
    clock: Clock,
) -> Capture {
    let cfg = CaptureConfig {
        interfaces: specs,
        workers,
        batch: 8,
        ..CaptureConfig::default()
    };
    Capture::start(cfg, Arc::clone(tracker), clock).expect("capture starts")
}

/// Answers one datagram on A's address with "pong".
fn udp_echo_server(port: u16) -> thread::JoinHandle<()> {
    let sock = UdpSocket::bind((A_ADDR, port)).expect("bind udp");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    thread::spawn(move || {
        let mut buf = [0u8; 100];
        let (n, from) = sock.recv_from(&mut buf).expect("udp request");
        assert_eq!(&buf[..n], b"ping");
        sock.send_to(b"pong", from).expect("udp reply");
    })
}

/// Accepts one connection on A's address, answers "hello" with "world", waits for the
/// client's FIN and closes.
fn tcp_server(port: u16) -> thread::JoinHandle<()> {
    let listener = TcpListener::bind((A_ADDR, port)).expect("bind tcp");
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut hello = [0u8; 5];
        conn.read_exact(&mut hello).expect("hello");
        conn.write_all(b"world").expect("world");
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).expect("client FIN");
    })
}

fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_conn(
    tracker: &Tracker,
    clock: Clock,
    what: &str,
    pred: impl Fn(&ConnEntry) -> bool,
) -> ConnEntry {
    let found = wait_for(what, Duration::from_secs(5), || {
        tracker
            .dump_all(&Filter::default(), clock.now())
            .into_iter()
            .find(&pred)
    });
    println!("found {what}: {found:?}");
    found
}

fn src_dst(e: &ConnEntry) -> (IpAddr, IpAddr) {
    (e.key.src.ip(e.key.family), e.key.dst.ip(e.key.family))
}

fn is_udp(e: &ConnEntry, zone: u16, sport: u16, dport: u16) -> bool {
    e.key.proto == proto::UDP
        && e.key.zone == zone
        && e.key.src.port == sport
        && e.key.dst.port == dport
        && src_dst(e) == (IpAddr::V4(B_ADDR), IpAddr::V4(A_ADDR))
}

/// Threads of this process whose (kernel, 15-byte) name starts with `prefix`.
fn thread_names(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

fn closing(s: TcpState) -> bool {
    matches!(
        s,
        TcpState::Closing | TcpState::FinWait2 | TcpState::TimeWait
    )
}
