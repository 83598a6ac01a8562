//! The gRPC API against a real server on a loopback port, through the generated client: every
//! RPC, success and error paths, and that a rejected request changes nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ctrack_core::{Frame, ProcessOptions, Tracker};
use ctrack_proto::v1 as pb;
use ctrack_server::clock::Clock;
use ctrack_server::events::EventHub;
use ctrack_server::grpc::{self, Api, NoCapture};
use ctrack_server::preload::preload;
use pb::conn_track_client::ConnTrackClient;
use pb::limits_client::LimitsClient;
use pb::policies_client::PoliciesClient;
use pb::system_client::SystemClient;
use tokio::sync::{oneshot, watch};
use tonic::Code;
use tonic::transport::Channel;

struct TestServer {
    tracker: Arc<Tracker>,
    requests: Arc<grpc::RequestCounters>,
    clock: Clock,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    hub_stop: watch::Sender<bool>,
    reporter: tonic_health::server::HealthReporter,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.hub_stop.send(true);
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/conformance")
        .join(name)
}

async fn start(pcap: Option<&str>) -> TestServer {
    let tracker = Arc::new(Tracker::default());
    let clock = Clock::start();
    if let Some(name) = pcap {
        preload(
            &tracker,
            &fixture(name),
            &ProcessOptions::default(),
            0,
            clock.now(),
        )
        .expect("preload");
    }
    let hub = Arc::new(EventHub::new(Arc::clone(&tracker), 1024));
    let (hub_stop, hub_rx) = watch::channel(false);
    tokio::spawn(Arc::clone(&hub).run(hub_rx));
    let requests = Arc::new(grpc::RequestCounters::default());
    let api = Arc::new(Api {
        config_toml: Arc::new(|s: &pb::Settings| {
            format!(
                "max_conns = {}
",
                s.max_conns
            )
        }),
        requests: Arc::clone(&requests),
        ..Api::standalone(Arc::clone(&tracker), clock, hub)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(async move {
        grpc::serve(
            listener,
            api,
            health,
            grpc::Limits::default(),
            None,
            async {
                let _ = stopped.await;
            },
        )
        .await
        .expect("server runs");
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    TestServer {
        tracker,
        requests,
        clock,
        channel,
        stop: Some(stop),
        hub_stop,
        reporter,
    }
}

async fn dump_all(s: &TestServer, filter: Option<pb::Filter>) -> Vec<pb::Connection> {
    let mut stream = ConnTrackClient::new(s.channel.clone())
        .dump(pb::DumpRequest {
            filter,
            batch_size: 2,
        })
        .await
        .unwrap()
        .into_inner();
    let mut all = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        assert!(batch.connections.len() <= 2, "batches respect batch_size");
        all.extend(batch.connections);
    }
    all.sort_by_key(|c| c.id);
    all
}

fn tuple(src: &str, dst: &str, sport: u32, dport: u32) -> pb::Tuple {
    pb::Tuple {
        src: src.into(),
        dst: dst.into(),
        src_port: sport,
        dst_port: dport,
        ..Default::default()
    }
}

#[tokio::test]
async fn dump_streams_the_table_with_filters() {
    let s = start(Some("loopback.pcap")).await;
    let all = dump_all(&s, None).await;
    assert_eq!(all.len(), 5);
    let tcp: Vec<_> = all.iter().filter(|c| c.protocol == 6).collect();
    assert_eq!(tcp.len(), 2);
    let first = tcp[0];
    assert_eq!(first.orig.as_ref().unwrap().dst_port, 15555);
    assert_eq!(first.reply.as_ref().unwrap().src_port, 15555);
    let Some(pb::connection::State::Tcp(info)) = &first.state else {
        panic!("tcp state")
    };
    assert_eq!(
        info.orig.as_ref().unwrap().state,
        pb::TcpState::FinWait2 as i32
    );
    assert!(
        first.timeout_ms > 25_000 && first.timeout_ms <= 30_000,
        "{}",
        first.timeout_ms
    );
    assert!(first.orig_counters.unwrap().packets > 0);

    let udp_only = pb::Filter {
        protocol: Some(17),
        ..Default::default()
    };
    assert_eq!(dump_all(&s, Some(udp_only)).await.len(), 2);
    let by_port = pb::Filter {
        orig: Some(pb::TupleFilter {
            dst_port: Some(15556),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(dump_all(&s, Some(by_port)).await.len(), 1);
    let by_state = pb::Filter {
        tcp_state: Some(pb::TcpState::TimeWait as i32),
        ..Default::default()
    };
    assert_eq!(dump_all(&s, Some(by_state)).await.len(), 1);

    let mut client = ConnTrackClient::new(s.channel.clone());
    let err = client
        .dump(pb::DumpRequest {
            filter: None,
            batch_size: 20_000,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("batch_size"));
    let bad = pb::Filter {
        zone: Some(70_000),
        ..Default::default()
    };
    let err = client
        .dump(pb::DumpRequest {
            filter: Some(bad),
            batch_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("filter.zone: 70000"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn flush_by_tuple_zone_filter_and_all() {
    let s = start(Some("loopback.pcap")).await;
    let mut client = ConnTrackClient::new(s.channel.clone());
    // The UDP flow 34768 -> 15556, named from its reply direction.
    let key = pb::ConnectionKey {
        zone: 0,
        protocol: 17,
        tuple: Some(tuple("127.0.0.1", "127.0.0.1", 15556, 34768)),
    };
    let removed = client
        .flush(pb::FlushRequest {
            target: Some(pb::flush_request::Target::Tuple(key.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert_eq!(removed, 1);
    assert_eq!(dump_all(&s, None).await.len(), 4);
    let err = client
        .flush(pb::FlushRequest {
            target: Some(pb::flush_request::Target::Tuple(key)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Rejected requests change nothing.
    for target in [
        None,
        Some(pb::flush_request::Target::Zone(65_536)),
        Some(pb::flush_request::Target::Filter(pb::Filter {
            orig: Some(pb::TupleFilter {
                src: Some("not-an-ip".into()),
                ..Default::default()
            }),
            ..Default::default()
        })),
        Some(pb::flush_request::Target::Tuple(pb::ConnectionKey {
            zone: 0,
            protocol: 6,
            tuple: Some(tuple("127.0.0.1", "::1", 1, 2)),
        })),
    ] {
        let err = client.flush(pb::FlushRequest { target }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    assert_eq!(dump_all(&s, None).await.len(), 4);

    let icmp = pb::Filter {
        protocol: Some(1),
        ..Default::default()
    };
    let removed = client
        .flush(pb::FlushRequest {
            target: Some(pb::flush_request::Target::Filter(icmp)),
        })
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert_eq!(removed, 1);
    let removed = client
        .flush(pb::FlushRequest {
            target: Some(pb::flush_request::Target::Zone(9)),
        })
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert_eq!(removed, 0);
    let removed = client
        .flush(pb::FlushRequest {
            target: Some(pb::flush_request::Target::All(true)),
        })
        .await
        .unwrap()
        .into_inner()
        .removed;
    assert_eq!(removed, 3);
    assert!(dump_all(&s, None).await.is_empty());
    assert_eq!(s.tracker.connection_count(), 0);
}

#[tokio::test]
async fn zone_limits_set_get_delete() {
    let s = start(None).await;
    let mut client = LimitsClient::new(s.channel.clone());
    client
        .set_zone_limits(pb::SetZoneLimitsRequest {
            limits: vec![
                pb::ZoneLimit { zone: 3, limit: 10 },
                pb::ZoneLimit { zone: 4, limit: 0 },
            ],
            default_limit: Some(100),
        })
        .await
        .unwrap();
    let got = client
        .get_zone_limits(pb::GetZoneLimitsRequest { zones: vec![] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.default_limit, Some(100));
    assert_eq!(got.zones.len(), 2);
    assert_eq!(got.zones[0].explicit_limit, Some(10));
    let got = client
        .get_zone_limits(pb::GetZoneLimitsRequest { zones: vec![7] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.zones[0].explicit_limit, got.zones[0].limit),
        (None, Some(100))
    );

    // All or nothing: zone 70000 rejects the request, zone 5 is not set.
    let err = client
        .set_zone_limits(pb::SetZoneLimitsRequest {
            limits: vec![
                pb::ZoneLimit { zone: 5, limit: 1 },
                pb::ZoneLimit {
                    zone: 70_000,
                    limit: 1,
                },
            ],
            default_limit: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("limits[1].zone"),
        "{}",
        err.message()
    );
    assert_eq!(s.tracker.zone_limit(5).explicit, None);

    let err = client
        .delete_zone_limits(pb::DeleteZoneLimitsRequest {
            zones: vec![3, 8],
            default_limit: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(
        s.tracker.zone_limit(3).explicit,
        Some(10),
        "nothing deleted"
    );
    client
        .delete_zone_limits(pb::DeleteZoneLimitsRequest {
            zones: vec![3],
            default_limit: true,
        })
        .await
        .unwrap();
    assert_eq!(s.tracker.zone_limit(3).explicit, None);
    assert_eq!(s.tracker.default_zone_limit(), None);
}

#[tokio::test]
async fn policies_set_get_list_bind_delete() {
    let s = start(None).await;
    let mut client = PoliciesClient::new(s.channel.clone());
    let policy = pb::Policy {
        id: 5,
        timeouts: [("udp_first".to_owned(), 7)].into_iter().collect(),
    };
    let stored = client
        .set_policy(pb::SetPolicyRequest {
            policy: Some(policy),
        })
        .await
        .unwrap()
        .into_inner();
    let stored = stored.policy.unwrap();
    assert_eq!(stored.timeouts.len(), 11);
    assert_eq!(stored.timeouts["udp_first"], 7);
    assert_eq!(stored.timeouts["udp_single"], 60);
    let got = client
        .get_policy(pb::GetPolicyRequest { id: 5 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.policy.unwrap().timeouts["udp_first"], 7);
    assert_eq!(
        client
            .get_policy(pb::GetPolicyRequest { id: 6 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    let bad = pb::Policy {
        id: 6,
        timeouts: [("udp_frist".to_owned(), 7)].into_iter().collect(),
    };
    let err = client
        .set_policy(pb::SetPolicyRequest { policy: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("udp_frist"), "{}", err.message());
    assert!(s.tracker.policy(ctrack_core::PolicyId(6)).is_none());

    client
        .bind_zone(pb::BindZoneRequest {
            zone: 2,
            policy_id: 5,
        })
        .await
        .unwrap();
    let err = client
        .bind_zone(pb::BindZoneRequest {
            zone: 2,
            policy_id: 9,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .bind_zone(pb::BindZoneRequest {
            zone: 90_000,
            policy_id: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let list = client
        .list_policies(pb::ListPoliciesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.policies.len(), 1);
    assert_eq!(
        list.bindings,
        vec![pb::ZoneBinding {
            zone: 2,
            policy_id: 5
        }]
    );

    // A new UDP connection in zone 2 gets the bound policy's 7 s.
    let frame = udp_frame();
    s.tracker.process(
        Frame::Ethernet(&frame),
        2,
        &ProcessOptions::default(),
        s.clock.now(),
    );
    let conns = dump_all(
        &s,
        Some(pb::Filter {
            zone: Some(2),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].policy_id, 5);
    assert!(
        conns[0].timeout_ms <= 7_000 && conns[0].timeout_ms > 5_000,
        "{}",
        conns[0].timeout_ms
    );

    client
        .unbind_zone(pb::UnbindZoneRequest { zone: 2 })
        .await
        .unwrap();
    assert_eq!(
        client
            .unbind_zone(pb::UnbindZoneRequest { zone: 2 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    client
        .delete_policy(pb::DeletePolicyRequest { id: 5 })
        .await
        .unwrap();
    assert_eq!(
        client
            .delete_policy(pb::DeletePolicyRequest { id: 5 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

/// A UDP frame 10.0.0.1:1000 -> 10.0.0.2:53 with a valid IPv4 header checksum and a zero
/// (absent) UDP checksum.
fn udp_frame() -> Vec<u8> {
    udp_frame_from(1, 1000)
}

/// A UDP frame from 10.0.(host >> 8).(host & 0xff):`sport` to 10.0.0.2:53.
fn udp_frame_from(host: u16, sport: u16) -> Vec<u8> {
    let [hi, lo] = host.to_be_bytes();
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![
        0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, hi, lo, 10, 0, 0, 2,
    ];
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend(ip);
    f.extend(sport.to_be_bytes());
    f.extend([0, 53, 0, 13, 0, 0, b'h', b'e', b'l', b'l', b'o']);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_dump_of_100k_connections_while_packets_flow() {
    let s = start(None).await;
    let opts = ProcessOptions {
        verify_checksums: false,
        ..ProcessOptions::default()
    };
    for i in 0..100_000u32 {
        let frame = udp_frame_from((i / 50_000 + 1) as u16, (i % 50_000 + 1) as u16);
        s.tracker
            .process(Frame::Ethernet(&frame), 0, &opts, s.clock.now());
    }
    assert_eq!(s.tracker.connection_count(), 100_000);
    // Packets keep flowing on another thread: new flows (from another host) and old ones.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tracker, clock, flag) = (Arc::clone(&s.tracker), s.clock, Arc::clone(&stop));
    let writer = std::thread::spawn(move || {
        let mut n = 0u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let new = udp_frame_from(9, (n % 60_000 + 1) as u16);
            tracker.process(Frame::Ethernet(&new), 0, &opts, clock.now());
            let old = udp_frame_from(1, (n % 50_000 + 1) as u16);
            tracker.process(Frame::Ethernet(&old), 0, &opts, clock.now());
            n += 2;
        }
        n
    });
    let mut stream = ConnTrackClient::new(s.channel.clone())
        .dump(pb::DumpRequest {
            filter: None,
            batch_size: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    let mut batches = 0;
    while let Some(batch) = stream.message().await.unwrap() {
        batches += 1;
        ids.extend(
            batch
                .connections
                .iter()
                .filter(|c| c.orig.as_ref().unwrap().src != "10.0.0.9")
                .map(|c| c.id),
        );
        // A slow reader: the server must not stall packet processing meanwhile.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let packets = writer.join().unwrap();
    assert!(batches >= 100, "streamed in batches ({batches})");
    let before = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), before, "no connection twice");
    assert_eq!(
        ids.len(),
        100_000,
        "every connection present throughout was dumped"
    );
    assert!(
        packets > 1000,
        "packets kept flowing during the dump ({packets})"
    );
}

#[tokio::test]
async fn stats_settings_and_config() {
    let s = start(Some("crafted.pcap")).await;
    let mut client = SystemClient::new(s.channel.clone());
    let stats = client
        .get_stats(pb::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.connections, s.tracker.connection_count());
    let invalid: u64 = stats.invalid.iter().map(|n| n.count).sum();
    let expected = include_str!("../../tests/fixtures/conformance/crafted.out")
        .matches("inv|trk")
        .count();
    assert_eq!(
        invalid, expected as u64,
        "the invalid packets of crafted.pcap (OVS output)"
    );
    assert!(
        stats
            .per_protocol
            .iter()
            .any(|n| n.name == "tcp" && n.count > 0)
    );
    assert!(stats.interfaces.is_empty());

    let settings = client
        .update_settings(pb::UpdateSettingsRequest {
            max_conns: Some(10),
            sweep_interval_ms: Some(5_000),
            tcp_seq_check: Some(false),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            settings.max_conns,
            settings.sweep_interval_ms,
            settings.tcp_seq_check
        ),
        (10, 5_000, false)
    );
    assert!(!s.tracker.tcp_seq_check());
    let err = client
        .update_settings(pb::UpdateSettingsRequest {
            max_conns: Some(1),
            sweep_interval_ms: Some(0),
            tcp_seq_check: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        s.tracker.max_conns(),
        10,
        "a rejected update changes nothing"
    );
    let got = client
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, settings);
    let config = client
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config.toml, "max_conns = 10\n");
}

#[tokio::test]
async fn watch_delivers_new_and_destroy_events() {
    let s = start(None).await;
    let mut stream = ConnTrackClient::new(s.channel.clone())
        .watch(pb::WatchRequest {
            filter: Some(pb::Filter {
                protocol: Some(17),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    // Give the hub a moment to see the watcher, then make a connection and flush it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let frame = udp_frame();
    s.tracker.process(
        Frame::Ethernet(&frame),
        0,
        &ProcessOptions::default(),
        s.clock.now(),
    );
    s.tracker.flush_all(s.clock.now());
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap();
        match msg.message.unwrap() {
            pb::watch_response::Message::Event(e) => {
                assert_eq!(e.connection.unwrap().orig.unwrap().dst_port, 53);
                kinds.push(e.kind.unwrap());
            }
            pb::watch_response::Message::Lost(l) => panic!("lost {} events", l.count),
        }
    }
    assert_eq!(kinds[0], pb::connection_event::Kind::New(true));
    assert_eq!(
        kinds[1],
        pb::connection_event::Kind::Destroyed(pb::DestroyReason::Flushed as i32)
    );
}

#[tokio::test]
async fn health_follows_the_reporter() {
    let s = start(None).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel.clone());
    let req = || tonic_health::pb::HealthCheckRequest {
        service: "ctrack.v1.ConnTrack".into(),
    };
    let err = health.check(req()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "unknown until reported");
    s.reporter
        .set_service_status(
            "ctrack.v1.ConnTrack",
            tonic_health::ServingStatus::NotServing,
        )
        .await;
    let got = health.check(req()).await.unwrap().into_inner();
    assert_eq!(
        got.status,
        tonic_health::pb::health_check_response::ServingStatus::NotServing as i32
    );
    s.reporter
        .set_service_status("ctrack.v1.ConnTrack", tonic_health::ServingStatus::Serving)
        .await;
    let got = health.check(req()).await.unwrap().into_inner();
    assert_eq!(
        got.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn metrics_page_counts_requests_and_serves_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start(Some("loopback.pcap")).await;
    let mut policies = PoliciesClient::new(s.channel.clone());
    let _ = policies
        .get_policy(pb::GetPolicyRequest { id: 42 })
        .await
        .unwrap_err();
    let _ = policies
        .list_policies(pb::ListPoliciesRequest {})
        .await
        .unwrap();
    assert_eq!(dump_all(&s, None).await.len(), 5);
    let sources = ctrack_server::metrics::MetricsSources {
        tracker: Arc::clone(&s.tracker),
        capture: Arc::new(NoCapture),
        sweep: Arc::default(),
        requests: Arc::clone(&s.requests),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(ctrack_server::metrics::serve(listener, sources, async {
        let _ = stopped.await;
    }));
    let get = |path: &'static str| async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).await.unwrap();
        text
    };
    let page = get("/metrics").await;
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("\nctrack_connections 5\n"), "{page}");
    assert!(
        page.contains("ctrack_protocol_connections{protocol=\"tcp\"} 2"),
        "{page}"
    );
    assert!(page.contains("ctrack_grpc_requests_total{method=\"/ctrack.v1.Policies/GetPolicy\",code=\"NotFound\"} 1"), "{page}");
    assert!(
        page.contains(
            "ctrack_grpc_requests_total{method=\"/ctrack.v1.Policies/ListPolicies\",code=\"Ok\"} 1"
        ),
        "{page}"
    );
    assert!(
        page.contains(
            "ctrack_grpc_requests_total{method=\"/ctrack.v1.ConnTrack/Dump\",code=\"Ok\"} 1"
        ),
        "{page}"
    );
    assert!(get("/other").await.starts_with("HTTP/1.1 404"));
    let _ = stop.send(());
}

#[tokio::test]
async fn serves_on_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("ctrack-grpc-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ctrack.sock");
    let _ = std::fs::remove_file(&path);
    let tracker = Arc::new(Tracker::default());
    let hub = Arc::new(EventHub::new(Arc::clone(&tracker), 16));
    let api = Arc::new(Api::standalone(Arc::clone(&tracker), Clock::start(), hub));
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        grpc::serve(
            grpc::Listener::Unix(listener),
            api,
            health,
            grpc::Limits::default(),
            None,
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    let sock = path.clone();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let sock = sock.clone();
            async move {
                tokio::net::UnixStream::connect(sock)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        }))
        .await
        .unwrap();
    let settings = SystemClient::new(channel)
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settings.max_conns, tracker.max_conns());
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn preload_ages_entries_as_if_the_capture_just_ended() {
    // timeouts.pcap spans 403 s; at its end only two connections are alive (OVS's own dump of
    // it, tests/fixtures/conformance/timeouts-dump.out): UDP with 57 s left, TCP with 86400 s.
    let s = start(Some("timeouts.pcap")).await;
    let all = dump_all(&s, None).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let udp = all.iter().find(|c| c.protocol == 17).unwrap();
    assert!(
        udp.timeout_ms > 55_000 && udp.timeout_ms <= 57_000,
        "{}",
        udp.timeout_ms
    );
    assert_eq!(udp.orig.as_ref().unwrap().src_port, 300);
    let tcp = all.iter().find(|c| c.protocol == 6).unwrap();
    assert!(
        tcp.timeout_ms > 86_398_000 && tcp.timeout_ms <= 86_400_000,
        "{}",
        tcp.timeout_ms
    );
    assert!(
        tcp.age_ms >= 2_000,
        "created 2 s before the end of the capture: {}",
        tcp.age_ms
    );
    assert_eq!(
        s.tracker.connection_count(),
        8,
        "expired ones still counted until swept"
    );
}
