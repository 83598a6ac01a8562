//! The real `ctrackd` binary end to end, as root: it captures on one end of a veth pair in a
//! throwaway network namespace while the kernel stacks of two namespaces exchange TCP, UDP and
//! ICMP, and the test drives it over its gRPC API on a Unix socket (dump, flush by tuple, zone
//! limits, watch, stats, health) and stops it with SIGTERM.
//!
//! Namespaces `cte-a-<pid>` and `cte-b-<pid>` are joined by the veth pair `cte-a0` (in A,
//! 10.202.0.1/24) - `cte-b0` (in B, 10.202.0.2/24); no other address is used and no traffic
//! leaves the pair. The daemon runs in A (`ip netns exec`), captures `cte-a0` in zone 0 and
//! listens on a Unix socket in a temporary directory, reachable from the test's own namespace.
//! Python servers in A and clients in B make the traffic. A guard kills every process it
//! started and deletes both namespaces (and with them the veths) when the test ends, panics
//! included. Without root the test prints a skip line and passes.

mod netns;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ctrack_proto::v1 as pb;
use pb::conn_track_client::ConnTrackClient;
use pb::limits_client::LimitsClient;
use pb::system_client::SystemClient;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const A_ADDR: &str = "10.202.0.1";
const B_ADDR: &str = "10.202.0.2";
const TCP_PORT: u32 = 18080;
const UDP_PORT: u32 = 18081;
/// Source ports used by B's clients.
const TCP_SPORT: u32 = 40001;
const UDP_SPORT: u32 = 40002;
const LIMITED_SPORTS: [u32; 4] = [40011, 40012, 40013, 40014];
const WATCHED_SPORT: u32 = 40021;
/// The echo id of B's pings.
const ICMP_ID: u32 = 0x4321;

/// In A: a UDP echo server on 10.202.0.1:18081 (every datagram, forever) and a TCP server on
/// 10.202.0.1:18080 that accepts one connection, reads "hello", answers "world" and keeps the
/// connection open until a line arrives on stdin. Prints "ready" once both are bound, and
/// nothing after that (the test stops reading its output).
const SERVER_A: &str = r#"
import socket, sys, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('10.202.0.1', 18081))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(('10.202.0.1', 18080))
t.listen(1)
def echo():
    while True:
        data, peer = u.recvfrom(2048)
        u.sendto(data, peer)
threading.Thread(target=echo, daemon=True).start()
print('ready', flush=True)
c, _ = t.accept()
c.settimeout(20)
buf = b''
while len(buf) < 5:
    chunk = c.recv(5 - len(buf))
    if not chunk:
        sys.exit('tcp peer closed early')
    buf += chunk
assert buf == b'hello', buf
c.sendall(b'world')
sys.stdin.readline()
c.close()
"#;

/// In B: connects from 10.202.0.2:argv[1] to 10.202.0.1:18080, sends "hello", reads "world",
/// prints "connected" and keeps the connection open until a line arrives on stdin.
const TCP_CLIENT_B: &str = r#"
import socket, sys
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.settimeout(5)
t.bind(('10.202.0.2', int(sys.argv[1])))
t.connect(('10.202.0.1', 18080))
t.sendall(b'hello')
buf = b''
while len(buf) < 5:
    chunk = t.recv(5 - len(buf))
    assert chunk, 'server closed early'
    buf += chunk
assert buf == b'world', buf
print('connected', flush=True)
sys.stdin.readline()
t.close()
"#;

/// In B: one UDP exchange with A's echo server per source port given in argv, in order.
const UDP_CLIENT_B: &str = r#"
import socket, sys
for sport in sys.argv[1:]:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(3)
    u.bind(('10.202.0.2', int(sport)))
    msg = b'ping-' + sport.encode()
    u.sendto(msg, ('10.202.0.1', 18081))
    assert u.recv(100) == msg
    u.close()
"#;

/// In B: ICMP echo requests to A with id argv[1], sequence numbers argv[2] .. argv[2] +
/// argv[3] - 1, each waiting for its reply (a raw socket: no ping needed).
const ICMP_CLIENT_B: &str = r#"
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
ident, first, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(3)
for seq in range(first, first + count):
    body = struct.pack('!HH', ident, seq) + b'ctrack-e2e'
    pkt = struct.pack('!BBH', 8, 0, csum(struct.pack('!BBH', 8, 0, 0) + body)) + body
    s.sendto(pkt, ('10.202.0.1', 0))
    while True:
        data = s.recv(1500)
        ihl = (data[0] & 15) * 4
        t, c, _, i, q = struct.unpack('!BBHHH', data[ihl:ihl + 8])
        if t == 0 and i == ident and q == seq:
            break
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_tracks_live_traffic_between_namespaces() {
    if !netns::can_run("the end-to-end namespace test") {
        return;
    }
    let started = Instant::now();
    let mut env = Env::new();
    env.start_daemon();
    let channel = env.connect().await;
    wait_serving(&channel, &mut env).await;
    println!("daemon SERVING after {:?}", started.elapsed());

    // --- Real traffic: TCP (kept open), UDP, ICMP echo, all from B to A.
    env.start_server_a();
    let mut tcp_client = env.spawn_py(&env.ns_b, TCP_CLIENT_B, &[&TCP_SPORT.to_string()]);
    let mut out = BufReader::new(tcp_client.stdout.take().expect("tcp client stdout"));
    env.children.push(tcp_client);
    let mut line = String::new();
    out.read_line(&mut line).expect("tcp client output");
    assert_eq!(line.trim(), "connected", "the TCP client did not connect");
    py_in(&env.ns_b, UDP_CLIENT_B, &[&UDP_SPORT.to_string()]);
    py_in(&env.ns_b, ICMP_CLIENT_B, &[&ICMP_ID.to_string(), "0", "3"]);

    let tcp = wait_conn(&channel, "TCP established both ways", |c| {
        is_from_b(c, 6, TCP_SPORT, TCP_PORT)
            && matches!(&c.state, Some(pb::connection::State::Tcp(t))
                if peer_state(t.orig.as_ref()) == pb::TcpState::Established
                    && peer_state(t.reply.as_ref()) == pb::TcpState::Established)
    })
    .await;
    let udp = wait_conn(&channel, "UDP BIDIR", |c| {
        is_from_b(c, 17, UDP_SPORT, UDP_PORT)
            && c.state == Some(pb::connection::State::Other("BIDIR".into()))
    })
    .await;
    let icmp = wait_conn(&channel, "ICMP echo REPLY with 3 replies", |c| {
        c.protocol == 1
            && tuple_is(c.orig.as_ref(), B_ADDR, A_ADDR)
            && c.orig.as_ref().is_some_and(|t| t.src_port == ICMP_ID)
            && c.state == Some(pb::connection::State::Icmp("REPLY".into()))
            && counters(c.reply_counters.as_ref()).0 >= 3
    })
    .await;
    for c in [&tcp, &udp, &icmp] {
        assert_eq!(c.zone, 0, "{c:?}");
        assert_eq!(c.family, pb::Family::Ipv4 as i32, "{c:?}");
        let (op, ob) = counters(c.orig_counters.as_ref());
        let (rp, rb) = counters(c.reply_counters.as_ref());
        assert!(op > 0 && ob > 0 && rp > 0 && rb > 0, "counters: {c:?}");
        let reply = c.reply.as_ref().expect("reply tuple");
        assert_eq!((reply.src.as_str(), reply.dst.as_str()), (A_ADDR, B_ADDR));
    }
    // SYN, ACK, "hello" at least from B; SYN-ACK and "world" at least from A.
    assert!(counters(tcp.orig_counters.as_ref()).0 >= 3, "{tcp:?}");
    assert!(counters(tcp.reply_counters.as_ref()).0 >= 2, "{tcp:?}");
    assert_eq!(counters(icmp.orig_counters.as_ref()).0, 3, "{icmp:?}");
    assert_eq!(counters(udp.orig_counters.as_ref()), (1, 20 + 8 + 10));
    assert_eq!(counters(udp.reply_counters.as_ref()), (1, 20 + 8 + 10));
    println!("traffic tracked after {:?}", started.elapsed());

    // --- Flush by tuple, given in the reply direction: exactly that connection goes.
    let mut ct = ConnTrackClient::new(channel.clone());
    let udp_key = pb::ConnectionKey {
        zone: 0,
        protocol: 17,
        tuple: udp.reply.clone(),
    };
    let before = dump(&channel).await.len();
    let removed = ct
        .flush(pb::FlushRequest {
            target: Some(pb::flush_request::Target::Tuple(udp_key.clone())),
        })
        .await
        .expect("flush by tuple")
        .into_inner()
        .removed;
    assert_eq!(removed, 1);
    let err = ct
        .flush(pb::FlushRequest {
            target: Some(pb::flush_request::Target::Tuple(udp_key)),
        })
        .await
        .expect_err("a second flush of the same tuple");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let after = dump(&channel).await;
    assert_eq!(after.len(), before - 1, "{after:?}");
    assert!(
        !after.iter().any(|c| c.id == udp.id),
        "the flushed UDP connection is still dumped: {after:?}"
    );
    assert!(after.iter().any(|c| c.id == tcp.id) && after.iter().any(|c| c.id == icmp.id));

    // --- Zone limit: connections made before an explicit limit exists do not count toward
    // it, so with a limit of 2 exactly two of four new UDP flows get in.
    let mut limits = LimitsClient::new(channel.clone());
    let mut system = SystemClient::new(channel.clone());
    limits
        .set_zone_limits(pb::SetZoneLimitsRequest {
            limits: vec![pb::ZoneLimit { zone: 0, limit: 2 }],
            default_limit: None,
        })
        .await
        .expect("set zone limit");
    let status = zone0(&mut limits).await;
    assert_eq!(status.explicit_limit, Some(2), "{status:?}");
    assert_eq!(status.limit, Some(2), "{status:?}");
    assert_eq!(
        status.count, 0,
        "older connections do not count: {status:?}"
    );
    assert_eq!(status.connections, 2, "TCP and ICMP: {status:?}");
    let hits_before = stats(&mut system).await.zone_limit_hits;

    let sports: Vec<String> = LIMITED_SPORTS.iter().map(u32::to_string).collect();
    let sports: Vec<&str> = sports.iter().map(String::as_str).collect();
    py_in(&env.ns_b, UDP_CLIENT_B, &sports);
    // One worker handles packets in order: once this ping and its reply are counted, every
    // packet of the flows above has been through the engine.
    barrier(&channel, &env, icmp.id, 3).await;
    let admitted: BTreeSet<u32> = dump(&channel)
        .await
        .iter()
        .filter(|c| c.protocol == 17)
        .map(|c| {
            assert!(is_from_b(
                c,
                17,
                c.orig.as_ref().map_or(0, |t| t.src_port),
                UDP_PORT
            ));
            assert_eq!(
                c.state,
                Some(pb::connection::State::Other("BIDIR".into())),
                "{c:?}"
            );
            c.orig.as_ref().map_or(0, |t| t.src_port)
        })
        .collect();
    assert_eq!(
        admitted,
        BTreeSet::from([LIMITED_SPORTS[0], LIMITED_SPORTS[1]]),
        "only the first two flows fit under the limit"
    );
    let hits = stats(&mut system).await.zone_limit_hits;
    println!("zone_limit_hits {hits_before} -> {hits}");
    // The two refused requests, and their echoes (each again a new connection, refused).
    assert!(
        hits >= hits_before + 2,
        "zone_limit_hits {hits_before} -> {hits}"
    );
    let status = zone0(&mut limits).await;
    assert_eq!(status.count, 2, "{status:?}");
    assert_eq!(status.connections, 4, "{status:?}");
    // Lift the limit again for what follows.
    limits
        .delete_zone_limits(pb::DeleteZoneLimitsRequest {
            zones: vec![0],
            default_limit: false,
        })
        .await
        .expect("delete zone limit");
    let status = zone0(&mut limits).await;
    assert_eq!((status.explicit_limit, status.limit), (None, None));
    println!("zone limit checked after {:?}", started.elapsed());

    // --- Watch: a new UDP flow is announced; flushing it is announced as FLUSHED.
    let mut watch = ConnTrackClient::new(channel.clone())
        .watch(pb::WatchRequest {
            filter: Some(pb::Filter {
                protocol: Some(17),
                ..Default::default()
            }),
        })
        .await
        .expect("watch")
        .into_inner();
    py_in(&env.ns_b, UDP_CLIENT_B, &[&WATCHED_SPORT.to_string()]);
    let new = next_event(&mut watch, "new event for the watched flow", |e| {
        e.kind == Some(pb::connection_event::Kind::New(true))
    })
    .await;
    assert_eq!(new.protocol, 17);
    // Its reply must be through the engine before the flush, or it would open a new one.
    let watched = wait_conn(&channel, "watched flow BIDIR", |c| {
        c.id == new.id && c.state == Some(pb::connection::State::Other("BIDIR".into()))
    })
    .await;
    let removed = ct
        .flush(pb::FlushRequest {
            target: Some(pb::flush_request::Target::Tuple(pb::ConnectionKey {
                zone: 0,
                protocol: 17,
                tuple: watched.orig.clone(),
            })),
        })
        .await
        .expect("flush the watched flow")
        .into_inner()
        .removed;
    assert_eq!(removed, 1);
    let gone = next_event(&mut watch, "destroyed event for the watched flow", |e| {
        e.kind
            == Some(pb::connection_event::Kind::Destroyed(
                pb::DestroyReason::Flushed as i32,
            ))
    })
    .await;
    assert_eq!(gone.id, watched.id);
    println!("watch checked after {:?}", started.elapsed());

    // --- Capture counters made it to the stats.
    let s = stats(&mut system).await;
    let iface = s
        .interfaces
        .iter()
        .find(|i| i.name == "cte-a0")
        .unwrap_or_else(|| panic!("no cte-a0 in {:?}", s.interfaces));
    assert_eq!((iface.zone, iface.state.as_str()), (0, "up"), "{iface:?}");
    assert_eq!(iface.workers.len(), 1, "{iface:?}");
    // TCP 7, UDP 2, ICMP 8, the limited flows 8, the watched flow 2 (plus ARP).
    assert!(iface.workers[0].processed >= 27, "{iface:?}");
    assert_eq!(iface.workers[0].kernel_drops, 0, "{iface:?}");
    assert!(s.flushed >= 2 && s.created >= 6, "{s:?}");

    // --- SIGTERM: exit status 0 within 5 s, socket removed, the open watch stream ends.
    let daemon = env.daemon.as_mut().expect("daemon");
    let pid = daemon.id().to_string();
    let sent = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success(), "kill -TERM {pid}");
    let status = loop {
        if let Some(s) = daemon.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "ctrackd still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "ctrackd exited {status:?} {:?} after SIGTERM",
        sent.elapsed()
    );
    assert!(status.success(), "exit status {status:?}");
    assert!(!env.socket.exists(), "{} left behind", env.socket.display());
    let end = tokio::time::timeout(Duration::from_secs(2), watch.message())
        .await
        .expect("the watch stream ends with the daemon");
    assert!(!matches!(end, Ok(Some(_))), "unexpected message {end:?}");
    let log = std::fs::read_to_string(&env.log).unwrap_or_default();
    assert!(log.contains("SIGTERM received"), "{log}");
    println!("whole test took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// The environment: namespaces, veth, daemon, python processes; all undone on drop.

struct Env {
    ns_a: String,
    ns_b: String,
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    daemon: Option<Child>,
    children: Vec<Child>,
}

impl Env {
    fn new() -> Self {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("ctrack-e2e-{pid}"));
        let env = Self {
            ns_a: format!("cte-a-{pid}"),
            ns_b: format!("cte-b-{pid}"),
            socket: dir.join("ctrack.sock"),
            log: dir.join("ctrackd.log"),
            dir,
            daemon: None,
            children: Vec::new(),
        };
        let _ = std::fs::remove_dir_all(&env.dir);
        std::fs::create_dir_all(&env.dir).expect("create the temporary directory");
        for ns in [&env.ns_a, &env.ns_b] {
            // A namespace left by a crashed run with the same pid.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for ns in [&env.ns_a, &env.ns_b] {
            netns::ip(&["netns", "add", ns]);
            netns::ip(&["-n", ns, "link", "set", "lo", "up"]);
            // No IPv6 chatter (router and neighbour solicitations) on the pair. Best effort:
            // the kernel may have no IPv6 at all.
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "sh", "-c"])
                .arg(
                    "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; \
                     echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6",
                )
                .stderr(Stdio::null())
                .status();
        }
        netns::ip(&[
            "link", "add", "cte-a0", "netns", &env.ns_a, "type", "veth", "peer", "name", "cte-b0",
            "netns", &env.ns_b,
        ]);
        let ends = [
            (&env.ns_a, "cte-a0", "10.202.0.1/24"),
            (&env.ns_b, "cte-b0", "10.202.0.2/24"),
        ];
        let ethtool = netns::tool_exists("ethtool");
        for (ns, dev, addr) in ends {
            netns::ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            if ethtool {
                // Best effort: offloads off (live capture checks no L4 checksum anyway).
                let _ = Command::new("ip")
                    .args(["netns", "exec", ns, "ethtool", "-K", dev])
                    .args(["rx", "off", "tx", "off", "tso", "off"])
                    .args(["gso", "off", "gro", "off"])
                    .output();
            }
            netns::ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        env
    }

    fn start_daemon(&mut self) {
        let log = std::fs::File::create(&self.log).expect("create the daemon log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns_a])
            .arg(env!("CARGO_BIN_EXE_ctrackd"))
            .args(["--interface", "cte-a0:0"])
            .arg("--listen")
            .arg(format!("unix:{}", self.socket.display()))
            .args(["--metrics-listen", "off", "--workers", "1"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ctrackd");
        self.daemon = Some(child);
    }

    /// Panics with the daemon's log if it has exited.
    fn check_daemon_alive(&mut self) {
        if let Some(status) = self
            .daemon
            .as_mut()
            .and_then(|d| d.try_wait().expect("try_wait"))
        {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("ctrackd exited early with {status:?}:\n{log}");
        }
    }

    /// A channel over the daemon's Unix socket (retried while it starts, 10 s at most).
    async fn connect(&mut self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.check_daemon_alive();
            if self.socket.exists() {
                match unix_channel(&self.socket).await {
                    Ok(c) => return c,
                    Err(e) => assert!(
                        Instant::now() < deadline,
                        "cannot connect to {}: {e}",
                        self.socket.display()
                    ),
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} never appeared",
                self.socket.display()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Starts the servers in A and waits until they are bound.
    fn start_server_a(&mut self) {
        let mut server = self.spawn_py(&self.ns_a, SERVER_A, &[]);
        let mut out = BufReader::new(server.stdout.take().expect("server stdout"));
        self.children.push(server);
        let mut line = String::new();
        out.read_line(&mut line).expect("server output");
        assert_eq!(line.trim(), "ready", "the servers in A did not start");
    }

    fn spawn_py(&self, ns: &str, script: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", script])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python3")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for child in self.children.iter_mut() {
            if let Some(stdin) = child.stdin.as_mut() {
                let _ = stdin.write_all(b"close\n");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(daemon) = self.daemon.as_mut() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- ctrackd log\n{log}---");
        }
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Runs a python script in namespace `ns` and checks it succeeded.
fn py_in(ns: &str, script: &str, args: &[&str]) -> Output {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python in {ns} ({args:?}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn unix_channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let sock = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let sock = sock.clone();
            async move {
                tokio::net::UnixStream::connect(sock)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
}

/// Waits (10 s at most) for `grpc.health.v1` to say SERVING: capture workers run.
async fn wait_serving(channel: &Channel, env: &mut Env) {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status);
        if status.as_ref().ok()
            == Some(&(tonic_health::pb::health_check_response::ServingStatus::Serving as i32))
        {
            return;
        }
        env.check_daemon_alive();
        assert!(Instant::now() < deadline, "never SERVING: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dump(channel: &Channel) -> Vec<pb::Connection> {
    let mut stream = ConnTrackClient::new(channel.clone())
        .dump(pb::DumpRequest {
            filter: None,
            batch_size: 0,
        })
        .await
        .expect("dump")
        .into_inner();
    let mut all = Vec::new();
    while let Some(batch) = stream.message().await.expect("dump batch") {
        all.extend(batch.connections);
    }
    all
}

/// Polls the dump (5 s at most) until a connection satisfies `pred`.
async fn wait_conn(
    channel: &Channel,
    what: &str,
    pred: impl Fn(&pb::Connection) -> bool,
) -> pb::Connection {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let all = dump(channel).await;
        if let Some(c) = all.iter().find(|c| pred(c)) {
            println!("found {what}: {c:?}");
            return c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the table: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends one more echo on the ICMP connection `id` (whose requests so far are `seen`) and
/// waits until its reply is counted: with one capture worker, everything sent before it has
/// then been processed.
async fn barrier(channel: &Channel, env: &Env, id: u64, seen: u64) {
    py_in(
        &env.ns_b,
        ICMP_CLIENT_B,
        &[&ICMP_ID.to_string(), &seen.to_string(), "1"],
    );
    wait_conn(channel, "the barrier ping's reply", |c| {
        c.id == id && counters(c.reply_counters.as_ref()).0 > seen
    })
    .await;
}

/// Reads the watch stream (5 s at most) until an event satisfies `pred` for the watched flow.
async fn next_event(
    stream: &mut tonic::Streaming<pb::WatchResponse>,
    what: &str,
    pred: impl Fn(&pb::ConnectionEvent) -> bool,
) -> pb::Connection {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let msg = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("watch stream")
            .unwrap_or_else(|| panic!("the watch stream ended before {what}"));
        match msg.message {
            Some(pb::watch_response::Message::Event(e)) => {
                let watched = e
                    .connection
                    .as_ref()
                    .is_some_and(|c| c.protocol == 17 && is_from_b(c, 17, WATCHED_SPORT, UDP_PORT));
                println!("watch: {:?} {:?}", e.kind, e.connection);
                if watched && pred(&e) {
                    return e.connection.expect("event connection");
                }
            }
            Some(pb::watch_response::Message::Lost(l)) => println!("watch: {} lost", l.count),
            None => {}
        }
    }
}

async fn zone0(limits: &mut LimitsClient<Channel>) -> pb::ZoneLimitStatus {
    let mut zones = limits
        .get_zone_limits(pb::GetZoneLimitsRequest { zones: vec![0] })
        .await
        .expect("get zone limits")
        .into_inner()
        .zones;
    assert_eq!(zones.len(), 1, "{zones:?}");
    zones.remove(0)
}

async fn stats(system: &mut SystemClient<Channel>) -> pb::GetStatsResponse {
    system
        .get_stats(pb::GetStatsRequest {})
        .await
        .expect("get stats")
        .into_inner()
}

fn tuple_is(t: Option<&pb::Tuple>, src: &str, dst: &str) -> bool {
    t.is_some_and(|t| t.src == src && t.dst == dst)
}

/// A `proto` connection from B (`sport`) to A (`dport`), in zone 0.
fn is_from_b(c: &pb::Connection, proto: u32, sport: u32, dport: u32) -> bool {
    c.protocol == proto
        && c.zone == 0
        && tuple_is(c.orig.as_ref(), B_ADDR, A_ADDR)
        && c.orig
            .as_ref()
            .is_some_and(|t| t.src_port == sport && t.dst_port == dport)
}

fn peer_state(p: Option<&pb::TcpPeer>) -> pb::TcpState {
    p.and_then(|p| pb::TcpState::try_from(p.state).ok())
        .unwrap_or(pb::TcpState::Closed)
}

/// (packets, bytes).
fn counters(c: Option<&pb::Counters>) -> (u64, u64) {
    c.map_or((0, 0), |c| (c.packets, c.bytes))
}
