//! Management behaviour: timeouts and expiry, timeout policies, zone and global limits,
//! `force`, `commit`, flushes, dumps, the sweeper, events and counters (DESIGN.md
//! "Per-packet contract" and "Concurrency and memory", OVS v3.7.1 `lib/conntrack*.c`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use ctrack_core::{
    Config, ConnEntry, DestroyReason, DumpCursor, Error, Event, EventKind, Family, Filter, Frame,
    PolicyId, Prefix, ProtoInfo, SweepReport, TcpState, Tick, TimeoutAttr, TimeoutPolicy, Tracker,
    TupleFilter, ZoneLimitInfo,
};

// === Helpers ===

/// The i-th UDP flow from 10.0.0.1 to 10.0.0.2:53 (source port 10000 + i).
fn flow(i: u16) -> Pkt {
    udp("10.0.0.1", 10_000 + i, "10.0.0.2", 53)
}

/// The reply of `flow(i)`.
fn flow_back(i: u16) -> Pkt {
    udp("10.0.0.2", 53, "10.0.0.1", 10_000 + i)
}

/// Sends `p` in `zone` (whatever `h.zone` says).
fn send_in(h: &Harness, zone: u16, p: &Pkt) -> String {
    let frame = p.frame();
    h.tracker
        .process(Frame::Ethernet(&frame), zone, &h.opts, h.now)
        .to_string()
}

/// The live connection of `p` in `zone`.
fn entry_in(h: &Harness, zone: u16, p: &Pkt) -> Option<ConnEntry> {
    h.tracker.lookup(&p.key(zone), h.now)
}

/// Every live connection of `zone`.
fn zone_dump(h: &Harness, zone: u16) -> Vec<ConnEntry> {
    let filter = Filter {
        zone: Some(zone),
        ..Filter::default()
    };
    h.tracker.dump_all(&filter, h.now)
}

/// Opens `flow(first..first + n)` in `zone`, asserting each is created.
fn open_flows(h: &Harness, zone: u16, first: u16, n: u16) {
    for i in first..first + n {
        let p = flow(i);
        assert_eq!(send_in(h, zone, &p), "new|trk");
        assert!(
            entry_in(h, zone, &p).is_some(),
            "flow {i} in zone {zone} was created"
        );
    }
}

/// Sends `flow(i)` in `zone` and asserts it is `new` but refused (no entry).
#[track_caller]
fn assert_refused(h: &Harness, zone: u16, i: u16) {
    let p = flow(i);
    assert_eq!(
        send_in(h, zone, &p),
        "new|trk",
        "a refused packet is still new"
    );
    assert!(
        entry_in(h, zone, &p).is_none(),
        "flow {i} in zone {zone} was not created"
    );
}

/// Zone `zone`'s limit report.
fn info(h: &Harness, zone: u16) -> ZoneLimitInfo {
    h.tracker.zone_limit(zone)
}

fn drain(h: &Harness) -> Vec<Event> {
    let mut out = Vec::new();
    h.tracker.drain_events(&mut out, usize::MAX);
    out
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

fn prefix(addr: &str, len: u8) -> Prefix {
    Prefix::new(ip(addr), len).expect("valid prefix")
}

fn after_ms(t: Tick, ms: u64) -> Tick {
    Tick::from_millis(t.as_millis() + ms)
}

// === Timeouts ===

#[test]
fn udp_timeouts_first_single_multiple() {
    let mut h = Harness::default();
    let out = flow(1);
    let back = flow_back(1);
    assert_eq!(h.state(&out), "new|trk");
    assert_eq!(h.timeout_of(&out), Some(60), "udp_first");
    assert_eq!(
        h.entry(&out).unwrap().proto,
        ProtoInfo::Other { state: "FIRST" }
    );
    h.advance(10);
    assert_eq!(
        h.state(&out),
        "new|trk",
        "more originator packets: still new"
    );
    assert_eq!(h.timeout_of(&out), Some(60), "udp_single");
    assert_eq!(
        h.entry(&out).unwrap().proto,
        ProtoInfo::Other { state: "MULTIPLE" }
    );
    h.advance(10);
    assert_eq!(h.state(&out), "new|trk", "new until a reply is seen");
    assert_eq!(h.timeout_of(&out), Some(60));
    h.advance(10);
    assert_eq!(h.state(&back), "est|rpl|trk");
    assert_eq!(h.timeout_of(&out), Some(30), "udp_multiple");
    assert_eq!(
        h.entry(&out).unwrap().proto,
        ProtoInfo::Other { state: "BIDIR" }
    );
    h.advance(10);
    assert_eq!(h.state(&out), "est|trk");
    assert_eq!(h.timeout_of(&out), Some(30));
}

#[test]
fn other_protocols_use_the_udp_timeouts() {
    let h = Harness::default();
    let gre = Pkt::new(
        "10.0.0.1",
        "10.0.0.2",
        L4::Raw {
            proto: 47,
            bytes: vec![0; 12],
        },
    );
    let back = Pkt::new(
        "10.0.0.2",
        "10.0.0.1",
        L4::Raw {
            proto: 47,
            bytes: vec![0; 12],
        },
    );
    assert_eq!(h.state(&gre), "new|trk");
    assert_eq!(h.timeout_of(&gre), Some(60));
    assert_eq!(h.state(&back), "est|rpl|trk");
    assert_eq!(h.timeout_of(&gre), Some(30));
}

#[test]
fn icmp_timeouts_first_reply() {
    let mut h = Harness::default();
    let req = icmp("10.0.0.1", "10.0.0.2", 8, 0, 7, 1);
    let rep = icmp("10.0.0.2", "10.0.0.1", 0, 0, 7, 1);
    assert_eq!(h.state(&req), "new|trk");
    assert_eq!(h.timeout_of(&req), Some(60), "icmp_first");
    h.advance(5);
    assert_eq!(
        h.state(&icmp("10.0.0.1", "10.0.0.2", 8, 0, 7, 2)),
        "new|trk"
    );
    assert_eq!(h.timeout_of(&req), Some(60));
    h.advance(5);
    assert_eq!(h.state(&rep), "est|rpl|trk");
    assert_eq!(h.timeout_of(&req), Some(30), "icmp_reply");
    assert_eq!(
        h.entry(&req).unwrap().proto,
        ProtoInfo::Icmp { reply_seen: true }
    );
    assert_eq!(h.state(&req), "est|trk");
    assert_eq!(h.timeout_of(&req), Some(30));
}

#[test]
fn connection_is_invisible_at_expiration_and_counted_until_swept() {
    let mut h = Harness::default();
    let out = flow(1);
    let back = flow_back(1);
    assert_eq!(h.state(&out), "new|trk");
    let old = h.entry(&out).unwrap();
    assert_eq!(old.expires_at, after_ms(h.now, 60_000));
    h.advance(59);
    assert_eq!(h.timeout_of(&out), Some(1), "still alive one second before");
    h.advance(1);
    assert_eq!(h.now, old.expires_at);
    // At exactly `expiration`: invisible to lookups, dumps and flush-by-tuple...
    assert!(h.entry(&out).is_none());
    assert!(h.dump().is_empty());
    assert_eq!(
        h.tracker.flush_tuple(&out.key(0), h.now),
        Err(Error::ConnectionNotFound { zone: 0 })
    );
    // ...but still in the table until the sweeper runs.
    assert_eq!(h.tracker.connection_count(), 1);
    assert_eq!(h.tracker.stats().zone_count(0), 1);
    // A reply is not matched to it: a new connection (a reply-direction `new`, no `rpl`).
    assert_eq!(h.state(&back), "new|trk");
    let fresh = h.entry(&back).unwrap();
    assert_ne!(fresh.id, old.id);
    assert_eq!(
        fresh.key,
        back.key(0),
        "the reply's sender originates the new connection"
    );
    assert_eq!(h.tracker.connection_count(), 2);
    let report = h.tracker.sweep(h.now);
    assert_eq!((report.scanned, report.expired), (2, 1));
    assert_eq!(h.tracker.connection_count(), 1);
    assert_eq!(h.entry(&back).unwrap().id, fresh.id);
}

#[test]
fn expired_connections_count_toward_limits_until_swept() {
    let mut h = Harness::default();
    h.tracker.set_max_conns(1);
    assert_eq!(h.state(&flow(1)), "new|trk");
    h.advance(60);
    assert!(h.entry(&flow(1)).is_none());
    assert_refused(&h, 0, 2);
    assert_eq!(h.tracker.stats().global_limit_hits, 1);
    let _ = h.tracker.sweep(h.now);
    assert_eq!(h.tracker.connection_count(), 0);
    open_flows(&h, 0, 2, 1);

    let mut h = Harness::default();
    h.tracker.set_zone_limit(4, 1);
    open_flows(&h, 4, 1, 1);
    h.advance(60);
    assert_refused(&h, 4, 2);
    assert_eq!(info(&h, 4).count, 1);
    let _ = h.tracker.sweep(h.now);
    assert_eq!(info(&h, 4).count, 0);
    open_flows(&h, 4, 2, 1);
}

// === Timeout policies ===

#[test]
fn zone_policy_applies_to_new_connections() {
    let mut h = Harness::default();
    h.tracker.set_policy(
        PolicyId(5),
        TimeoutPolicy::with([(TimeoutAttr::UdpFirst, 5)]),
    );
    h.tracker.bind_zone_policy(7, PolicyId(5)).unwrap();
    h.zone = 7;
    assert_eq!(h.state(&flow(1)), "new|trk");
    assert_eq!(h.timeout_of(&flow(1)), Some(5));
    assert_eq!(h.entry(&flow(1)).unwrap().policy, PolicyId(5));
    // Other zones keep the defaults.
    h.zone = 8;
    assert_eq!(h.state(&flow(1)), "new|trk");
    assert_eq!(h.timeout_of(&flow(1)), Some(60));
    assert_eq!(h.entry(&flow(1)).unwrap().policy, PolicyId(0));
    // The policy's value decides when the connection expires.
    h.zone = 7;
    h.advance(5);
    assert!(h.entry(&flow(1)).is_none());
}

#[test]
fn tcp_timeouts_follow_the_zone_policy() {
    let h = Harness::default();
    let policy = TimeoutPolicy::with([
        (TimeoutAttr::TcpSynSent, 3),
        (TimeoutAttr::TcpSynRecv, 4),
        (TimeoutAttr::TcpEstablished, 100),
    ]);
    h.tracker.set_policy(PolicyId(2), policy);
    h.tracker.bind_zone_policy(0, PolicyId(2)).unwrap();
    let syn = tcp("10.0.0.1", 1000, "10.0.0.2", 80, SYN, 1, 0);
    assert_eq!(h.state(&syn), "new|trk");
    assert_eq!(h.timeout_of(&syn), Some(3));
    assert_eq!(
        h.state(&tcp("10.0.0.2", 80, "10.0.0.1", 1000, SYN | ACK, 100, 2)),
        "est|rpl|trk"
    );
    assert_eq!(h.timeout_of(&syn), Some(4));
    assert_eq!(
        h.state(&tcp("10.0.0.1", 1000, "10.0.0.2", 80, ACK, 2, 101)),
        "est|trk"
    );
    assert_eq!(h.timeout_of(&syn), Some(100));
}

#[test]
fn policy_edit_applies_to_existing_connections_on_their_next_packet() {
    let mut h = Harness::default();
    h.tracker.set_policy(
        PolicyId(5),
        TimeoutPolicy::with([(TimeoutAttr::UdpFirst, 5)]),
    );
    h.tracker.bind_zone_policy(7, PolicyId(5)).unwrap();
    h.zone = 7;
    let a = flow(1);
    assert_eq!(h.state(&a), "new|trk");
    assert_eq!(h.timeout_of(&a), Some(5));
    // Replace the policy whole: udp_first is no longer given, so it is back to 60.
    let edited = TimeoutPolicy::with([(TimeoutAttr::UdpSingle, 40), (TimeoutAttr::UdpMultiple, 7)]);
    h.tracker.set_policy(PolicyId(5), edited);
    assert_eq!(h.tracker.policy(PolicyId(5)), Some(edited));
    assert_eq!(
        h.timeout_of(&a),
        Some(5),
        "not before the connection's next packet"
    );
    h.advance(1);
    assert_eq!(h.timeout_of(&a), Some(4));
    assert_eq!(h.state(&a), "new|trk");
    assert_eq!(
        h.timeout_of(&a),
        Some(40),
        "udp_single of the edited policy"
    );
    assert_eq!(h.state(&flow_back(1)), "est|rpl|trk");
    assert_eq!(
        h.timeout_of(&a),
        Some(7),
        "udp_multiple of the edited policy"
    );
    // New connections of the zone get the edited policy too.
    assert_eq!(h.state(&flow(2)), "new|trk");
    assert_eq!(
        h.timeout_of(&flow(2)),
        Some(60),
        "udp_first took the default"
    );
}

#[test]
fn deleted_policy_gives_the_defaults_on_the_next_packet() {
    let mut h = Harness::default();
    let policy = TimeoutPolicy::with([(TimeoutAttr::UdpFirst, 5), (TimeoutAttr::UdpSingle, 40)]);
    h.tracker.set_policy(PolicyId(5), policy);
    h.tracker.bind_zone_policy(7, PolicyId(5)).unwrap();
    h.zone = 7;
    let a = flow(1);
    assert_eq!(h.state(&a), "new|trk");
    assert_eq!(h.state(&a), "new|trk");
    assert_eq!(h.timeout_of(&a), Some(40));
    h.tracker.delete_policy(PolicyId(5)).unwrap();
    assert_eq!(h.tracker.policy(PolicyId(5)), None);
    assert_eq!(h.timeout_of(&a), Some(40), "not before the next packet");
    h.advance(1);
    assert_eq!(h.state(&a), "new|trk");
    assert_eq!(h.timeout_of(&a), Some(60), "default udp_single");
    assert_eq!(
        h.entry(&a).unwrap().policy,
        PolicyId(5),
        "the connection keeps its id"
    );
    // New connections of a zone still bound to the deleted id get the defaults.
    assert_eq!(h.state(&flow(2)), "new|trk");
    assert_eq!(h.timeout_of(&flow(2)), Some(60));
    assert_eq!(
        h.tracker.delete_policy(PolicyId(5)),
        Err(Error::PolicyNotFound(5)),
        "deleting it twice"
    );
}

#[test]
fn binding_to_an_undefined_policy_is_an_error() {
    let h = Harness::default();
    assert_eq!(
        h.tracker.bind_zone_policy(3, PolicyId(9)),
        Err(Error::PolicyNotFound(9))
    );
    assert!(h.tracker.zone_policies().is_empty(), "nothing was bound");
    // Policy 0 (the defaults) always exists.
    h.tracker.bind_zone_policy(3, PolicyId(0)).unwrap();
    assert_eq!(h.tracker.zone_policies(), vec![(3, PolicyId(0))]);
    // A failed rebinding leaves the old binding.
    h.tracker.set_policy(PolicyId(4), TimeoutPolicy::DEFAULT);
    h.tracker.bind_zone_policy(3, PolicyId(4)).unwrap();
    assert_eq!(
        h.tracker.bind_zone_policy(3, PolicyId(9)),
        Err(Error::PolicyNotFound(9))
    );
    assert_eq!(h.tracker.zone_policies(), vec![(3, PolicyId(4))]);
}

#[test]
fn unbinding_a_zone_returns_it_to_the_defaults() {
    let mut h = Harness::default();
    h.tracker.set_policy(
        PolicyId(5),
        TimeoutPolicy::with([(TimeoutAttr::UdpFirst, 5)]),
    );
    h.tracker.bind_zone_policy(7, PolicyId(5)).unwrap();
    h.tracker.bind_zone_policy(8, PolicyId(5)).unwrap();
    assert_eq!(
        h.tracker.zone_policies(),
        vec![(7, PolicyId(5)), (8, PolicyId(5))]
    );
    h.zone = 7;
    assert_eq!(h.state(&flow(1)), "new|trk");
    assert_eq!(h.timeout_of(&flow(1)), Some(5));
    h.tracker.unbind_zone_policy(7).unwrap();
    assert_eq!(h.tracker.zone_policies(), vec![(8, PolicyId(5))]);
    assert_eq!(h.tracker.unbind_zone_policy(7), Err(Error::ZoneNotBound(7)));
    assert_eq!(h.state(&flow(2)), "new|trk");
    assert_eq!(h.timeout_of(&flow(2)), Some(60));
    assert_eq!(h.entry(&flow(2)).unwrap().policy, PolicyId(0));
    // An existing connection keeps the policy it was created with.
    assert_eq!(h.state(&flow(1)), "new|trk");
    assert_eq!(h.entry(&flow(1)).unwrap().policy, PolicyId(5));
}

#[test]
fn policies_can_be_read_and_listed() {
    let h = Harness::default();
    assert!(h.tracker.policies().is_empty());
    let five = TimeoutPolicy::with([(TimeoutAttr::UdpFirst, 5)]);
    let three = TimeoutPolicy::with([(TimeoutAttr::TcpEstablished, 3600)]);
    h.tracker.set_policy(PolicyId(5), five);
    h.tracker.set_policy(PolicyId(3), three);
    assert_eq!(h.tracker.policy(PolicyId(5)), Some(five));
    assert_eq!(h.tracker.policy(PolicyId(3)), Some(three));
    assert_eq!(h.tracker.policy(PolicyId(4)), None);
    assert_eq!(
        h.tracker.policies(),
        vec![(PolicyId(3), three), (PolicyId(5), five)]
    );
    h.tracker.delete_policy(PolicyId(3)).unwrap();
    assert_eq!(h.tracker.policies(), vec![(PolicyId(5), five)]);
}

#[test]
fn attributes_not_given_take_the_defaults() {
    let h = Harness::default();
    h.tracker.set_policy(
        PolicyId(5),
        TimeoutPolicy::with([(TimeoutAttr::UdpFirst, 5)]),
    );
    let stored = h.tracker.policy(PolicyId(5)).unwrap();
    for attr in TimeoutAttr::ALL {
        let want = if attr == TimeoutAttr::UdpFirst {
            5
        } else {
            attr.default_secs()
        };
        assert_eq!(stored.secs(attr), want, "{attr}");
    }
    let defaults: Vec<_> = TimeoutPolicy::DEFAULT.iter().collect();
    assert_eq!(
        defaults,
        vec![
            (TimeoutAttr::TcpSynSent, 30),
            (TimeoutAttr::TcpSynRecv, 30),
            (TimeoutAttr::TcpEstablished, 86_400),
            (TimeoutAttr::TcpFinWait, 900),
            (TimeoutAttr::TcpTimeWait, 45),
            (TimeoutAttr::TcpClose, 30),
            (TimeoutAttr::UdpFirst, 60),
            (TimeoutAttr::UdpSingle, 60),
            (TimeoutAttr::UdpMultiple, 30),
            (TimeoutAttr::IcmpFirst, 60),
            (TimeoutAttr::IcmpReply, 30),
        ]
    );
}

// === Zone limits ===

#[test]
fn explicit_zone_limit_refuses_new_connections_at_the_limit() {
    let h = Harness::default();
    h.tracker.set_zone_limit(3, 2);
    open_flows(&h, 3, 1, 2);
    assert_refused(&h, 3, 3);
    assert_eq!(zone_dump(&h, 3).len(), 2, "no entry for the refused packet");
    assert_eq!(h.tracker.stats().zone_limit_hits, 1);
    assert_eq!(h.tracker.connection_count(), 2);
    // Existing connections still work at the limit.
    assert_eq!(send_in(&h, 3, &flow_back(1)), "est|rpl|trk");
    // Other zones are not limited.
    open_flows(&h, 4, 1, 3);
    assert_eq!(
        info(&h, 3),
        ZoneLimitInfo {
            zone: 3,
            explicit: Some(2),
            limit: Some(2),
            count: 2,
            connections: 2
        }
    );
}

#[test]
fn zone_limit_of_zero_is_unlimited() {
    let h = Harness::default();
    h.tracker.set_zone_limit(4, 0);
    open_flows(&h, 4, 0, 50);
    assert_eq!(h.tracker.stats().zone_limit_hits, 0);
    let i = info(&h, 4);
    assert_eq!((i.explicit, i.limit, i.connections), (Some(0), Some(0), 50));
    h.tracker.set_default_zone_limit(0);
    open_flows(&h, 5, 0, 50);
    assert_eq!(h.tracker.stats().zone_limit_hits, 0);
}

#[test]
fn default_limit_applies_to_each_zone_separately() {
    let h = Harness::default();
    assert_eq!(h.tracker.default_zone_limit(), None);
    h.tracker.set_default_zone_limit(2);
    assert_eq!(h.tracker.default_zone_limit(), Some(2));
    open_flows(&h, 10, 1, 2);
    assert_refused(&h, 10, 3);
    open_flows(&h, 11, 1, 2);
    assert_refused(&h, 11, 3);
    assert_eq!(h.tracker.stats().zone_limit_hits, 2);
    assert_eq!(
        info(&h, 10),
        ZoneLimitInfo {
            zone: 10,
            explicit: None,
            limit: Some(2),
            count: 2,
            connections: 2
        }
    );
    // A zone never used reports the default with nothing counted.
    assert_eq!(
        info(&h, 12),
        ZoneLimitInfo {
            zone: 12,
            explicit: None,
            limit: Some(2),
            count: 0,
            connections: 0
        }
    );
    // An explicit limit overrides the default for its zone only.
    h.tracker.set_zone_limit(13, 4);
    open_flows(&h, 13, 1, 4);
    assert_refused(&h, 13, 5);
    assert!(
        h.tracker.zone_limits().iter().all(|i| i.zone == 13),
        "only explicit limits"
    );
}

#[test]
fn connections_created_before_a_limit_do_not_count_toward_it() {
    let h = Harness::default();
    open_flows(&h, 20, 1, 3);
    h.tracker.set_zone_limit(20, 2);
    assert_eq!(
        info(&h, 20),
        ZoneLimitInfo {
            zone: 20,
            explicit: Some(2),
            limit: Some(2),
            count: 0,
            connections: 3
        }
    );
    open_flows(&h, 20, 4, 2);
    assert_refused(&h, 20, 6);
    assert_eq!((info(&h, 20).count, info(&h, 20).connections), (2, 5));
    // Removing a connection admitted before the limit gives nothing back...
    h.tracker.flush_tuple(&flow(1).key(20), h.now).unwrap();
    assert_eq!(info(&h, 20).count, 2);
    assert_refused(&h, 20, 6);
    // ...removing one admitted under it does.
    h.tracker.flush_tuple(&flow(4).key(20), h.now).unwrap();
    assert_eq!(info(&h, 20).count, 1);
    open_flows(&h, 20, 6, 1);
    assert_refused(&h, 20, 7);
}

#[test]
fn deleting_an_explicit_limit_drops_its_record() {
    let h = Harness::default();
    h.tracker.set_zone_limit(21, 2);
    open_flows(&h, 21, 1, 2);
    h.tracker.delete_zone_limit(21).unwrap();
    assert_eq!(
        info(&h, 21),
        ZoneLimitInfo {
            zone: 21,
            explicit: None,
            limit: None,
            count: 0,
            connections: 2
        }
    );
    assert_eq!(
        h.tracker.delete_zone_limit(21),
        Err(Error::ZoneLimitNotFound(21))
    );
    // Setting it again starts a new record at zero.
    h.tracker.set_zone_limit(21, 2);
    assert_eq!(info(&h, 21).count, 0);
    open_flows(&h, 21, 3, 2);
    assert_refused(&h, 21, 5);
    // Connections of the deleted record give nothing back.
    h.tracker.flush_tuple(&flow(1).key(21), h.now).unwrap();
    assert_eq!(info(&h, 21).count, 2);
    assert_refused(&h, 21, 5);
    h.tracker.flush_tuple(&flow(3).key(21), h.now).unwrap();
    assert_eq!(info(&h, 21).count, 1);
    open_flows(&h, 21, 5, 1);
}

#[test]
fn deleting_an_explicit_limit_falls_back_to_a_fresh_default_record() {
    let h = Harness::default();
    h.tracker.set_default_zone_limit(1);
    h.tracker.set_zone_limit(22, 3);
    open_flows(&h, 22, 1, 3);
    assert_refused(&h, 22, 4);
    h.tracker.delete_zone_limit(22).unwrap();
    let i = info(&h, 22);
    assert_eq!(
        (i.explicit, i.limit, i.count, i.connections),
        (None, Some(1), 0, 3)
    );
    open_flows(&h, 22, 4, 1);
    assert_refused(&h, 22, 5);
    assert_eq!(info(&h, 22).count, 1);
}

#[test]
fn deleting_and_setting_the_default_again_starts_fresh() {
    let h = Harness::default();
    assert_eq!(
        h.tracker.delete_default_zone_limit(),
        Err(Error::DefaultLimitNotSet)
    );
    h.tracker.set_default_zone_limit(2);
    open_flows(&h, 30, 1, 2);
    assert_refused(&h, 30, 3);
    h.tracker.delete_default_zone_limit().unwrap();
    assert_eq!(h.tracker.default_zone_limit(), None);
    assert_eq!(info(&h, 30).limit, None);
    open_flows(&h, 30, 3, 1);
    h.tracker.set_default_zone_limit(2);
    assert_eq!(info(&h, 30).count, 0, "a fresh default record");
    open_flows(&h, 30, 4, 2);
    assert_refused(&h, 30, 6);
    assert_eq!((info(&h, 30).count, info(&h, 30).connections), (2, 5));
    // Connections of the old default record, or admitted with no limit, give nothing back.
    h.tracker.flush_tuple(&flow(1).key(30), h.now).unwrap();
    h.tracker.flush_tuple(&flow(3).key(30), h.now).unwrap();
    assert_eq!(info(&h, 30).count, 2);
    assert_refused(&h, 30, 6);
    h.tracker.flush_tuple(&flow(4).key(30), h.now).unwrap();
    assert_eq!(info(&h, 30).count, 1);
    open_flows(&h, 30, 6, 1);
}

#[test]
fn changing_a_limit_keeps_its_count() {
    let h = Harness::default();
    h.tracker.set_zone_limit(31, 2);
    open_flows(&h, 31, 1, 2);
    h.tracker.set_zone_limit(31, 3);
    assert_eq!(info(&h, 31).count, 2);
    open_flows(&h, 31, 3, 1);
    assert_refused(&h, 31, 4);
    h.tracker.set_default_zone_limit(1);
    open_flows(&h, 32, 1, 1);
    h.tracker.set_default_zone_limit(2);
    assert_eq!(info(&h, 32).count, 1);
    open_flows(&h, 32, 2, 1);
    assert_refused(&h, 32, 3);
}

#[test]
fn lowering_a_limit_evicts_nothing() {
    let h = Harness::default();
    h.tracker.set_zone_limit(40, 5);
    open_flows(&h, 40, 1, 4);
    h.tracker.set_zone_limit(40, 2);
    assert_eq!(zone_dump(&h, 40).len(), 4, "nothing evicted");
    assert_eq!(
        info(&h, 40),
        ZoneLimitInfo {
            zone: 40,
            explicit: Some(2),
            limit: Some(2),
            count: 4,
            connections: 4
        }
    );
    assert_refused(&h, 40, 5);
    for i in 1..=3 {
        h.tracker.flush_tuple(&flow(i).key(40), h.now).unwrap();
    }
    assert_eq!(info(&h, 40).count, 1);
    open_flows(&h, 40, 5, 1);
    assert_refused(&h, 40, 6);
    // The same for the global limit.
    h.tracker.set_max_conns(1);
    assert_eq!(h.tracker.connection_count(), 2);
    assert_eq!(zone_dump(&h, 40).len(), 2);
}

#[test]
fn zone_limit_reports_and_errors() {
    let h = Harness::default();
    assert_eq!(
        info(&h, 50),
        ZoneLimitInfo {
            zone: 50,
            explicit: None,
            limit: None,
            count: 0,
            connections: 0
        }
    );
    open_flows(&h, 50, 1, 2);
    assert_eq!(
        info(&h, 50),
        ZoneLimitInfo {
            zone: 50,
            explicit: None,
            limit: None,
            count: 0,
            connections: 2
        }
    );
    assert!(h.tracker.zone_limits().is_empty());
    h.tracker.set_zone_limit(51, 10);
    h.tracker.set_zone_limit(50, 7);
    let mut all = h.tracker.zone_limits();
    all.sort_by_key(|i| i.zone);
    assert_eq!(
        all,
        vec![
            ZoneLimitInfo {
                zone: 50,
                explicit: Some(7),
                limit: Some(7),
                count: 0,
                connections: 2
            },
            ZoneLimitInfo {
                zone: 51,
                explicit: Some(10),
                limit: Some(10),
                count: 0,
                connections: 0
            },
        ]
    );
    assert_eq!(
        h.tracker.delete_zone_limit(52),
        Err(Error::ZoneLimitNotFound(52))
    );
    assert_eq!(
        h.tracker.delete_zone_limit(0),
        Err(Error::ZoneLimitNotFound(0))
    );
}

#[test]
fn global_limit() {
    let h = Harness::default();
    assert_eq!(h.tracker.max_conns(), 3_000_000, "OVS's default");
    h.tracker.set_max_conns(3);
    assert_eq!(h.tracker.max_conns(), 3);
    open_flows(&h, 0, 1, 2);
    open_flows(&h, 9, 1, 1);
    assert_refused(&h, 0, 4);
    assert_refused(&h, 9, 4);
    let st = h.tracker.stats();
    assert_eq!(st.global_limit_hits, 2);
    assert_eq!(st.zone_limit_hits, 0);
    assert_eq!(h.tracker.connection_count(), 3);
    assert_eq!(h.dump().len(), 3);
    h.tracker.set_max_conns(0);
    open_flows(&h, 0, 4, 5);
    assert_eq!(h.tracker.connection_count(), 8);
}

#[test]
fn global_limit_refusal_gives_the_zone_slot_back() {
    let h = Harness::default();
    h.tracker.set_zone_limit(60, 5);
    h.tracker.set_max_conns(1);
    open_flows(&h, 60, 1, 1);
    assert_refused(&h, 60, 2);
    assert_refused(&h, 60, 3);
    assert_eq!(info(&h, 60).count, 1, "refused connections do not count");
    h.tracker.set_max_conns(0);
    open_flows(&h, 60, 2, 4);
    assert_refused(&h, 60, 6);
}

// === Force and commit ===

#[test]
fn force_turns_a_reply_into_the_originator_of_a_new_connection() {
    let mut h = Harness::default();
    let out = flow(1);
    let back = flow_back(1);
    assert_eq!(h.state(&out), "new|trk");
    let old = h.entry(&out).unwrap();
    h.opts.force = true;
    // Originator-direction packets are unaffected by force.
    assert_eq!(h.state(&out), "new|trk");
    assert_eq!(h.entry(&out).unwrap().id, old.id);
    assert_eq!(h.tracker.stats().forced, 0);
    // A reply-direction packet ends the connection and starts a new one.
    assert_eq!(h.state(&back), "new|trk");
    let new = h.entry(&back).unwrap();
    assert_ne!(new.id, old.id);
    assert_eq!(
        new.key,
        back.key(0),
        "the forced packet is the new originator"
    );
    assert_eq!(h.tracker.stats().forced, 1);
    let dump = h.dump();
    assert_eq!(dump.len(), 1, "the old connection is invisible");
    assert_eq!(dump[0].id, new.id);
    assert_eq!(h.tracker.connection_count(), 2, "until swept");
    let report = h.tracker.sweep(h.now);
    assert_eq!(report.expired, 1);
    assert_eq!(h.tracker.connection_count(), 1);
    // The old originator is now the reply direction of the new connection.
    h.opts.force = false;
    assert_eq!(h.state(&out), "est|rpl|trk");
}

#[test]
fn force_on_a_tcp_reply_that_cannot_create_leaves_nothing() {
    let mut h = Harness::default();
    assert_eq!(
        h.state(&tcp("10.0.0.1", 1000, "10.0.0.2", 80, SYN, 1, 0)),
        "new|trk"
    );
    h.opts.force = true;
    let synack = tcp("10.0.0.2", 80, "10.0.0.1", 1000, SYN | ACK, 100, 2);
    assert_eq!(h.state(&synack), "inv|trk");
    assert!(h.dump().is_empty());
    assert_eq!(h.tracker.stats().forced, 1);
}

#[test]
fn without_commit_nothing_is_stored() {
    let mut h = Harness::default();
    h.opts.commit = false;
    let out = flow(1);
    assert_eq!(h.state(&out), "new|trk");
    assert_eq!(h.state(&out), "new|trk");
    assert_eq!(
        h.state(&flow_back(1)),
        "new|trk",
        "no connection, so no rpl"
    );
    let syn = tcp("10.0.0.1", 1000, "10.0.0.2", 80, SYN, 1, 0);
    assert_eq!(h.state(&syn), "new|trk");
    assert_eq!(
        h.state(&icmp("10.0.0.1", "10.0.0.2", 8, 0, 1, 1)),
        "new|trk"
    );
    assert!(h.dump().is_empty());
    assert!(h.entry(&out).is_none());
    assert_eq!(h.tracker.connection_count(), 0);
    assert_eq!(h.tracker.stats().created, 0);
    // Committed connections are still tracked by uncommitted packets.
    h.opts.commit = true;
    assert_eq!(h.state(&out), "new|trk");
    h.opts.commit = false;
    assert_eq!(h.state(&flow_back(1)), "est|rpl|trk");
    assert_eq!(h.entry(&out).unwrap().counters.packets, [1, 1]);
}

// === Flush ===

#[test]
fn flush_all_removes_everything() {
    let mut h = Harness::default();
    open_flows(&h, 0, 1, 2);
    open_flows(&h, 1, 1, 3);
    open_flows(&h, 2, 1, 1);
    h.advance(1);
    assert_eq!(h.tracker.flush_all(h.now), 6);
    assert_eq!(h.tracker.connection_count(), 0);
    assert!(h.dump().is_empty());
    assert_eq!(h.tracker.stats().flushed, 6);
    assert_eq!(send_in(&h, 1, &flow(1)), "new|trk");
    assert_eq!(send_in(&h, 1, &flow_back(2)), "new|trk");
    assert_eq!(h.tracker.flush_all(h.now), 2);
    assert_eq!(h.tracker.flush_all(h.now), 0);
}

#[test]
fn flush_all_counts_only_live_connections() {
    let mut h = Harness::default();
    open_flows(&h, 0, 1, 2);
    h.advance(30);
    open_flows(&h, 0, 3, 1);
    h.advance(30);
    // Two expired (not yet swept), one live: all three are removed, one is reported.
    assert_eq!(h.tracker.connection_count(), 3);
    assert_eq!(h.tracker.flush_all(h.now), 1);
    assert_eq!(h.tracker.connection_count(), 0);
}

#[test]
fn flush_zone_leaves_other_zones_alone() {
    let h = Harness::default();
    open_flows(&h, 1, 1, 2);
    open_flows(&h, 2, 1, 3);
    open_flows(&h, 3, 1, 1);
    assert_eq!(h.tracker.flush_zone(2, h.now), 3);
    assert!(zone_dump(&h, 2).is_empty());
    assert_eq!(zone_dump(&h, 1).len(), 2);
    assert_eq!(zone_dump(&h, 3).len(), 1);
    assert_eq!(h.tracker.connection_count(), 3);
    assert_eq!(
        send_in(&h, 1, &flow_back(1)),
        "est|rpl|trk",
        "zone 1 untouched"
    );
    assert_eq!(
        send_in(&h, 2, &flow_back(1)),
        "new|trk",
        "zone 2 forgot its flows"
    );
    // Flushing a zone now empty, or never used, removes nothing.
    h.tracker.flush_tuple(&flow_back(1).key(2), h.now).unwrap();
    assert_eq!(h.tracker.flush_zone(2, h.now), 0);
    assert_eq!(h.tracker.flush_zone(999, h.now), 0);
    assert_eq!(h.tracker.flush_zone(0, h.now), 0);
    assert_eq!(h.tracker.connection_count(), 3);
}

#[test]
fn flush_tuple_finds_the_connection_from_either_direction() {
    let h = Harness::default();
    open_flows(&h, 0, 1, 3);
    assert_eq!(send_in(&h, 5, &flow(1)), "new|trk");
    // Original direction.
    h.tracker.flush_tuple(&flow(1).key(0), h.now).unwrap();
    assert!(entry_in(&h, 0, &flow(1)).is_none());
    assert!(
        entry_in(&h, 5, &flow(1)).is_some(),
        "the same tuple in another zone stays"
    );
    // Reply direction.
    h.tracker.flush_tuple(&flow_back(2).key(0), h.now).unwrap();
    assert!(entry_in(&h, 0, &flow(2)).is_none());
    assert_eq!(h.tracker.connection_count(), 2);
    assert_eq!(h.tracker.stats().flushed, 2);
    // Flushed connections are gone: the next packet is new.
    assert_eq!(send_in(&h, 0, &flow_back(2)), "new|trk");
    assert_eq!(send_in(&h, 0, &flow_back(3)), "est|rpl|trk");
}

#[test]
fn flush_tuple_of_an_absent_or_expired_connection_is_not_found() {
    let mut h = Harness::default();
    assert_eq!(
        h.tracker.flush_tuple(&flow(1).key(0), h.now),
        Err(Error::ConnectionNotFound { zone: 0 }),
        "empty tracker"
    );
    open_flows(&h, 0, 1, 1);
    assert_eq!(
        h.tracker.flush_tuple(&flow(2).key(0), h.now),
        Err(Error::ConnectionNotFound { zone: 0 }),
        "another tuple"
    );
    assert_eq!(
        h.tracker.flush_tuple(&flow(1).key(3), h.now),
        Err(Error::ConnectionNotFound { zone: 3 }),
        "another zone"
    );
    h.tracker.flush_tuple(&flow(1).key(0), h.now).unwrap();
    assert_eq!(
        h.tracker.flush_tuple(&flow(1).key(0), h.now),
        Err(Error::ConnectionNotFound { zone: 0 }),
        "flushed twice"
    );
    open_flows(&h, 0, 2, 1);
    h.advance(60);
    assert_eq!(
        h.tracker.flush_tuple(&flow(2).key(0), h.now),
        Err(Error::ConnectionNotFound { zone: 0 }),
        "expired"
    );
    assert_eq!(h.tracker.stats().flushed, 1);
}

/// Five connections in zone 0 and one in zone 2, for the filter tests.
fn filter_fixture(h: &Harness) -> [Pkt; 6] {
    let conns = [
        udp("10.1.0.1", 1000, "10.9.0.1", 53),
        udp("10.1.0.2", 1000, "10.9.0.1", 53),
        udp("10.2.0.1", 1000, "10.9.0.1", 53),
        udp("10.1.0.3", 1000, "10.9.0.1", 123),
        tcp("10.1.0.4", 1000, "10.9.0.1", 53, SYN, 1, 0),
        udp("fd00::1", 1000, "fd00::9", 53),
    ];
    for p in &conns[..5] {
        assert_eq!(send_in(h, 0, p), "new|trk");
    }
    assert_eq!(send_in(h, 2, &conns[0]), "new|trk");
    assert_eq!(send_in(h, 0, &conns[5]), "new|trk");
    conns
}

#[test]
fn flush_filter_by_protocol_and_partial_original_tuple() {
    let h = Harness::default();
    let c = filter_fixture(&h);
    let filter = Filter {
        zone: Some(0),
        proto: Some(17),
        orig: TupleFilter {
            src: Some(prefix("10.1.0.0", 16)),
            dport: Some(53),
            ..TupleFilter::default()
        },
        ..Filter::default()
    };
    assert_eq!(h.tracker.flush_filter(&filter, h.now), 2);
    assert!(entry_in(&h, 0, &c[0]).is_none());
    assert!(entry_in(&h, 0, &c[1]).is_none());
    for p in &c[2..] {
        assert!(entry_in(&h, 0, p).is_some(), "{p:?} stays");
    }
    assert!(entry_in(&h, 2, &c[0]).is_some(), "another zone");
    assert_eq!(h.tracker.connection_count(), 5);
    // Not reachable afterwards: the next packet is new.
    assert_eq!(
        send_in(&h, 0, &udp("10.9.0.1", 53, "10.1.0.1", 1000)),
        "new|trk"
    );
    // Without a zone the filter applies to every zone.
    let filter = Filter {
        zone: None,
        ..filter
    };
    assert_eq!(h.tracker.flush_filter(&filter, h.now), 1);
    assert!(entry_in(&h, 2, &c[0]).is_none());
}

#[test]
fn flush_filter_by_reply_tuple_state_zone_and_family() {
    let h = Harness::default();
    let c = filter_fixture(&h);
    // The reply direction of 10.1.0.3:1000 -> 10.9.0.1:123 is 10.9.0.1:123 -> 10.1.0.3:1000.
    let by_reply = Filter {
        reply: TupleFilter {
            src: Some(Prefix::host(ip("10.9.0.1"))),
            sport: Some(123),
            dst: Some(prefix("10.1.0.0", 24)),
            ..TupleFilter::default()
        },
        ..Filter::default()
    };
    assert_eq!(h.tracker.flush_filter(&by_reply, h.now), 1);
    assert!(entry_in(&h, 0, &c[3]).is_none());
    // A reply filter written as the original direction matches nothing.
    let wrong_way = Filter {
        reply: TupleFilter {
            dport: Some(53),
            ..TupleFilter::default()
        },
        ..Filter::default()
    };
    assert_eq!(h.tracker.flush_filter(&wrong_way, h.now), 0);
    // TCP state.
    let syn_sent = Filter {
        tcp_state: Some(TcpState::SynSent),
        ..Filter::default()
    };
    assert_eq!(h.tracker.flush_filter(&syn_sent, h.now), 1);
    assert!(entry_in(&h, 0, &c[4]).is_none());
    assert_eq!(h.tracker.flush_filter(&syn_sent, h.now), 0);
    // Family.
    let v6 = Filter {
        family: Some(Family::V6),
        ..Filter::default()
    };
    assert_eq!(h.tracker.flush_filter(&v6, h.now), 1);
    assert!(entry_in(&h, 0, &c[5]).is_none());
    // Zone only.
    let zone2 = Filter {
        zone: Some(2),
        ..Filter::default()
    };
    assert_eq!(h.tracker.flush_filter(&zone2, h.now), 1);
    assert_eq!(h.tracker.connection_count(), 3);
    assert_eq!(h.tracker.stats().flushed, 4);
    // An empty filter flushes everything that is left.
    assert_eq!(h.tracker.flush_filter(&Filter::default(), h.now), 3);
    assert_eq!(h.tracker.connection_count(), 0);
}

// === Dump ===

#[test]
fn dump_with_filters() {
    let h = Harness::default();
    let c = filter_fixture(&h);
    let ids = |f: Filter| -> HashSet<_> {
        h.tracker
            .dump_all(&f, h.now)
            .into_iter()
            .map(|e| (e.key.zone, e.key))
            .collect()
    };
    let want =
        |ps: &[(u16, &Pkt)]| -> HashSet<_> { ps.iter().map(|(z, p)| (*z, p.key(*z))).collect() };
    assert_eq!(h.dump().len(), 7);
    assert_eq!(
        ids(Filter {
            proto: Some(6),
            ..Filter::default()
        }),
        want(&[(0, &c[4])])
    );
    assert_eq!(
        ids(Filter {
            orig: TupleFilter {
                src: Some(prefix("10.1.0.0", 16)),
                ..TupleFilter::default()
            },
            ..Filter::default()
        }),
        want(&[(0, &c[0]), (0, &c[1]), (0, &c[3]), (0, &c[4]), (2, &c[0])])
    );
    assert_eq!(
        ids(Filter {
            zone: Some(0),
            orig: TupleFilter {
                src: Some(prefix("10.1.0.0", 16)),
                dport: Some(53),
                ..TupleFilter::default()
            },
            proto: Some(17),
            ..Filter::default()
        }),
        want(&[(0, &c[0]), (0, &c[1])])
    );
    assert_eq!(
        ids(Filter {
            reply: TupleFilter {
                sport: Some(123),
                ..TupleFilter::default()
            },
            ..Filter::default()
        }),
        want(&[(0, &c[3])])
    );
    assert_eq!(
        ids(Filter {
            family: Some(Family::V6),
            ..Filter::default()
        }),
        want(&[(0, &c[5])])
    );
    assert_eq!(
        ids(Filter {
            orig: TupleFilter {
                dst: Some(prefix("fd00::", 64)),
                ..TupleFilter::default()
            },
            ..Filter::default()
        }),
        want(&[(0, &c[5])])
    );
    assert_eq!(
        ids(Filter {
            tcp_state: Some(TcpState::Closed),
            ..Filter::default()
        }),
        want(&[(0, &c[4])]),
        "a TCP state filter matches either peer"
    );
    assert!(
        ids(Filter {
            tcp_state: Some(TcpState::Established),
            ..Filter::default()
        })
        .is_empty()
    );
    assert_eq!(
        ids(Filter {
            zone: Some(2),
            ..Filter::default()
        }),
        want(&[(2, &c[0])])
    );
    assert!(
        ids(Filter {
            zone: Some(3),
            ..Filter::default()
        })
        .is_empty()
    );
    // Filter::matches agrees with the dump.
    let f = Filter {
        proto: Some(17),
        ..Filter::default()
    };
    for e in h.dump() {
        assert_eq!(f.matches(&e), e.key.proto == 17);
    }
}

#[test]
fn paged_dump_returns_each_connection_exactly_once() {
    let h = Harness::default();
    open_flows(&h, 0, 0, 10);
    open_flows(&h, 9, 0, 7);
    open_flows(&h, 700, 0, 3);
    let mut cursor = DumpCursor::default();
    let mut seen = Vec::new();
    let mut pages = 0;
    while !cursor.is_done() {
        let page = h.tracker.dump(&Filter::default(), h.now, &mut cursor, 3);
        assert!(page.len() <= 3, "page of {}", page.len());
        seen.extend(page.into_iter().map(|e| e.id));
        pages += 1;
        assert!(pages <= 20, "the dump does not end");
    }
    assert_eq!(seen.len(), 20);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 20, "no duplicates");
    let all: HashSet<_> = h.dump().into_iter().map(|e| e.id).collect();
    assert_eq!(unique, all.iter().collect());
    // A finished cursor returns nothing more.
    assert!(
        h.tracker
            .dump(&Filter::default(), h.now, &mut cursor, 3)
            .is_empty()
    );
    // Paging one zone.
    let mut cursor = DumpCursor::default();
    let zone9 = Filter {
        zone: Some(9),
        ..Filter::default()
    };
    let mut n = 0;
    while !cursor.is_done() {
        n += h.tracker.dump(&zone9, h.now, &mut cursor, 2).len();
    }
    assert_eq!(n, 7);
}

#[test]
fn dump_skips_expired_connections() {
    let mut h = Harness::default();
    open_flows(&h, 0, 1, 3);
    h.advance(30);
    open_flows(&h, 0, 4, 2);
    h.advance(30);
    let live: HashSet<_> = h.dump().into_iter().map(|e| e.key).collect();
    assert_eq!(live, [4, 5].into_iter().map(|i| flow(i).key(0)).collect());
    assert_eq!(h.tracker.connection_count(), 5);
    let mut cursor = DumpCursor::default();
    let mut n = 0;
    while !cursor.is_done() {
        n += h
            .tracker
            .dump(&Filter::default(), h.now, &mut cursor, 1)
            .len();
    }
    assert_eq!(n, 2);
}

// === Sweep ===

/// Runs sweep passes the way the daemon does (each at the time the previous one asked for)
/// until a full pass; returns every report.
fn sweep_until_full(h: &mut Harness) -> Vec<SweepReport> {
    let mut reports = Vec::new();
    loop {
        let now = h.now;
        let r = h.tracker.sweep(now);
        reports.push(r);
        if !r.partial {
            return reports;
        }
        assert_eq!(
            r.next_sweep,
            after_ms(now, 200),
            "a partial pass asks again in 200 ms"
        );
        h.now = r.next_sweep;
        assert!(reports.len() < 1000, "the sweep does not finish");
    }
}

#[test]
fn sweep_passes_are_bounded_by_max_conns_over_64() {
    let mut h = Harness::new(Tracker::new(Config {
        max_conns: 640,
        ..Config::default()
    }));
    // One connection on each of the 100 expiration lists.
    open_flows(&h, 0, 0, 100);
    h.advance(60);
    let reports = sweep_until_full(&mut h);
    // Budget 640 / 64 = 10: a pass stops once it has scanned more than that, i.e. after the
    // list holding the 11th connection.
    let scanned: Vec<_> = reports.iter().map(|r| r.scanned).collect();
    assert_eq!(scanned, [11, 11, 11, 11, 11, 11, 11, 11, 11, 1]);
    assert!(
        reports.iter().all(|r| r.expired == r.scanned),
        "everything scanned had expired"
    );
    let partial: Vec<_> = reports.iter().map(|r| r.partial).collect();
    assert_eq!(
        partial,
        [true, true, true, true, true, true, true, true, true, false]
    );
    let last = reports.last().unwrap();
    assert_eq!(
        last.next_sweep,
        after_ms(h.now, 20_000),
        "a full pass waits the interval"
    );
    assert_eq!(h.tracker.connection_count(), 0);
    let st = h.tracker.stats();
    assert_eq!((st.sweeps, st.scanned, st.expired), (10, 100, 100));
}

#[test]
fn sweep_removes_only_expired_connections() {
    let mut h = Harness::default();
    open_flows(&h, 0, 0, 30);
    h.advance(30);
    open_flows(&h, 0, 30, 20);
    h.advance(30);
    let r = h.tracker.sweep(h.now);
    assert_eq!((r.scanned, r.expired, r.partial), (50, 30, false));
    assert_eq!(r.next_sweep, after_ms(h.now, 20_000));
    assert_eq!(h.tracker.connection_count(), 20);
    assert_eq!(h.dump().len(), 20);
    let r = h.tracker.sweep(h.now);
    assert_eq!((r.scanned, r.expired), (20, 0));
    let st = h.tracker.stats();
    assert_eq!((st.sweeps, st.scanned, st.expired), (2, 70, 30));
}

#[test]
fn partial_sweep_resumes_after_the_last_list_swept() {
    // OVS v3.7.1 `conntrack_clean` checks the budget before sweeping each list
    // (`if (count > clean_end) { next_wakeup = 0; break; }` at the top of the loop) and
    // stores that unswept list as `next_sweep`; the next pass starts there.
    let mut h = Harness::new(Tracker::new(Config {
        max_conns: 640,
        ..Config::default()
    }));
    // Two connections per list: an old one (expired at sweep time) and a young one.
    open_flows(&h, 0, 0, 100);
    h.advance(30);
    open_flows(&h, 0, 100, 100);
    h.advance(30);
    // Pass 1: lists 0..=5 (12 scanned, 6 expired), stops before list 6.
    let r = h.tracker.sweep(h.now);
    assert_eq!((r.scanned, r.expired, r.partial), (12, 6, true));
    // Pass 2: lists 6..=11, the same amount of work; it must not scan list 5 again.
    h.now = r.next_sweep;
    let r = h.tracker.sweep(h.now);
    assert_eq!((r.scanned, r.expired, r.partial), (12, 6, true));
}

#[test]
fn sweep_interval_is_settable() {
    let h = Harness::default();
    assert_eq!(h.tracker.sweep_interval(), Duration::from_secs(20));
    let r = h.tracker.sweep(h.now);
    assert_eq!((r.scanned, r.expired, r.partial), (0, 0, false));
    assert_eq!(r.next_sweep, after_ms(h.now, 20_000));
    h.tracker
        .set_sweep_interval(Duration::from_secs(5))
        .unwrap();
    assert_eq!(h.tracker.sweep_interval(), Duration::from_secs(5));
    assert_eq!(h.tracker.sweep(h.now).next_sweep, after_ms(h.now, 5_000));
    for bad in [Duration::ZERO, Duration::from_micros(999)] {
        assert!(
            matches!(
                h.tracker.set_sweep_interval(bad),
                Err(Error::InvalidArgument {
                    field: "sweep_interval",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        h.tracker.sweep_interval(),
        Duration::from_secs(5),
        "unchanged by errors"
    );
    let h = Harness::new(Tracker::new(Config {
        sweep_interval: Duration::from_secs(7),
        ..Config::default()
    }));
    assert_eq!(h.tracker.sweep(h.now).next_sweep, after_ms(h.now, 7_000));
}

// === Events ===

#[test]
fn events_are_off_by_default() {
    let mut h = Harness::default();
    open_flows(&h, 0, 1, 2);
    h.tracker.flush_tuple(&flow(1).key(0), h.now).unwrap();
    h.advance(60);
    let _ = h.tracker.sweep(h.now);
    assert!(drain(&h).is_empty());
    assert_eq!(h.tracker.stats().events_dropped, 0);
}

#[test]
fn new_and_destroy_events_for_expiry_and_flush() {
    let mut h = Harness::default();
    h.tracker.set_events_enabled(true);
    let t0 = h.now;
    open_flows(&h, 0, 1, 2);
    let events = drain(&h);
    assert_eq!(kinds(&events), [EventKind::New, EventKind::New]);
    assert_eq!(events[0].entry.key, flow(1).key(0));
    assert_eq!(events[1].entry.key, flow(2).key(0));
    assert!(events.iter().all(|e| e.at == t0));
    h.advance(1);
    h.tracker.flush_tuple(&flow(1).key(0), h.now).unwrap();
    let events = drain(&h);
    assert_eq!(kinds(&events), [EventKind::Destroy(DestroyReason::Flushed)]);
    assert_eq!(events[0].entry.key, flow(1).key(0));
    assert_eq!(events[0].at, h.now);
    // Refused or uncommitted packets create nothing, so no events.
    h.opts.commit = false;
    assert_eq!(h.state(&flow(9)), "new|trk");
    h.opts.commit = true;
    assert!(drain(&h).is_empty());
    h.advance(60);
    let _ = h.tracker.sweep(h.now);
    let events = drain(&h);
    assert_eq!(kinds(&events), [EventKind::Destroy(DestroyReason::Expired)]);
    assert_eq!(events[0].entry.key, flow(2).key(0));
    assert_eq!(events[0].at, h.now, "a sweep destroy is stamped when swept");
    // Flushing a zone reports each connection.
    open_flows(&h, 3, 1, 2);
    assert_eq!(h.tracker.flush_zone(3, h.now), 2);
    let events = drain(&h);
    assert_eq!(
        kinds(&events),
        [
            EventKind::New,
            EventKind::New,
            EventKind::Destroy(DestroyReason::Flushed),
            EventKind::Destroy(DestroyReason::Flushed),
        ]
    );
    // Turning events off stops them.
    h.tracker.set_events_enabled(false);
    open_flows(&h, 0, 20, 1);
    assert!(drain(&h).is_empty());
}

#[test]
fn destroy_events_for_port_reuse_and_force() {
    let mut h = Harness::default();
    h.tracker.set_events_enabled(true);
    // A TCP connection opened and fully closed, then reused.
    let c = |flags, seq, ack| tcp("10.0.0.1", 40000, "10.0.0.2", 80, flags, seq, ack);
    let s = |flags, seq, ack| tcp("10.0.0.2", 80, "10.0.0.1", 40000, flags, seq, ack);
    for (p, want) in [
        (c(SYN, 1000, 0), "new|trk"),
        (s(SYN | ACK, 5000, 1001), "est|rpl|trk"),
        (c(ACK, 1001, 5001), "est|trk"),
        (c(FIN | ACK, 1001, 5001), "est|trk"),
        (s(FIN | ACK, 5001, 1002), "est|rpl|trk"),
        (c(ACK, 1002, 5002), "est|trk"),
    ] {
        assert_eq!(h.state(&p), want, "{p:?}");
    }
    let old = h.entry(&c(ACK, 1002, 5002)).unwrap().id;
    assert_eq!(h.state(&c(SYN, 90_000, 0)), "new|trk");
    let new = h.entry(&c(SYN, 90_000, 0)).unwrap().id;
    let events = drain(&h);
    assert_eq!(kinds(&events), [EventKind::New, EventKind::New]);
    assert_eq!((events[0].entry.id, events[1].entry.id), (old, new));
    let _ = h.tracker.sweep(h.now);
    let events = drain(&h);
    assert_eq!(
        kinds(&events),
        [EventKind::Destroy(DestroyReason::PortReuse)]
    );
    assert_eq!(events[0].entry.id, old);

    // A UDP connection replaced by a forced reply.
    assert_eq!(h.state(&flow(1)), "new|trk");
    let old = h.entry(&flow(1)).unwrap().id;
    h.opts.force = true;
    assert_eq!(h.state(&flow_back(1)), "new|trk");
    let _ = h.tracker.sweep(h.now);
    let events = drain(&h);
    assert_eq!(
        kinds(&events),
        [
            EventKind::New,
            EventKind::New,
            EventKind::Destroy(DestroyReason::Forced)
        ]
    );
    assert_eq!(events[2].entry.id, old);
    assert_eq!(events[1].entry.key, flow_back(1).key(0));
}

#[test]
fn events_beyond_the_queue_capacity_are_dropped_and_counted() {
    let h = Harness::new(Tracker::new(Config {
        event_capacity: 2,
        ..Config::default()
    }));
    h.tracker.set_events_enabled(true);
    open_flows(&h, 0, 1, 5);
    assert_eq!(h.tracker.stats().events_dropped, 3);
    let mut out = Vec::new();
    assert_eq!(h.tracker.drain_events(&mut out, 1), 1, "drain honours max");
    assert_eq!(h.tracker.drain_events(&mut out, 10), 1);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].entry.key,
        flow(1).key(0),
        "the oldest events are kept"
    );
    assert_eq!(out[1].entry.key, flow(2).key(0));
    // Room again once drained.
    h.tracker.flush_tuple(&flow(1).key(0), h.now).unwrap();
    assert_eq!(
        kinds(&drain(&h)),
        [EventKind::Destroy(DestroyReason::Flushed)]
    );
    assert_eq!(h.tracker.stats().events_dropped, 3);
}

// === Counters ===

#[test]
fn counters_per_direction() {
    let h = Harness::default();
    // UDP with a 5-byte payload: 20 + 8 + 5 = 33 IP bytes.
    for _ in 0..3 {
        assert!(h.state(&flow(1)).contains("trk"));
    }
    assert_eq!(h.state(&flow_back(1)), "est|rpl|trk");
    let e = h.entry(&flow(1)).unwrap();
    assert_eq!(e.counters.packets, [3, 1]);
    assert_eq!(e.counters.bytes, [99, 33]);
    // ICMP echo with 8 bytes of data: 20 + 8 + 8 = 36.
    let req = icmp("10.0.0.1", "10.0.0.2", 8, 0, 3, 1);
    assert_eq!(h.state(&req), "new|trk");
    assert_eq!(
        h.state(&icmp("10.0.0.2", "10.0.0.1", 0, 0, 3, 1)),
        "est|rpl|trk"
    );
    assert_eq!(
        h.state(&icmp("10.0.0.2", "10.0.0.1", 0, 0, 3, 2)),
        "est|rpl|trk"
    );
    let e = h.entry(&req).unwrap();
    assert_eq!((e.counters.packets, e.counters.bytes), ([1, 2], [36, 72]));
    // TCP: 40-byte headers plus payload; invalid segments are not counted.
    let syn = tcp("10.0.0.1", 1000, "10.0.0.2", 80, SYN, 1, 0);
    assert_eq!(h.state(&syn), "new|trk");
    assert_eq!(
        h.state(&tcp("10.0.0.2", 80, "10.0.0.1", 1000, SYN | ACK, 100, 2)),
        "est|rpl|trk"
    );
    assert_eq!(
        h.state(&tcp_data("10.0.0.1", 1000, "10.0.0.2", 80, ACK, 2, 101, 60)),
        "est|trk"
    );
    assert_eq!(
        h.state(&tcp_data(
            "10.0.0.1", 1000, "10.0.0.2", 80, ACK, 2_000_000, 101, 60
        )),
        "inv|trk"
    );
    assert_eq!(
        h.state(&tcp("10.0.0.1", 1000, "10.0.0.2", 80, FIN, 62, 0)),
        "inv|trk"
    );
    let e = h.entry(&syn).unwrap();
    assert_eq!((e.counters.packets, e.counters.bytes), ([2, 1], [140, 40]));
}

#[test]
fn created_and_age() {
    let mut h = Harness::default();
    let t0 = h.now;
    assert_eq!(h.state(&flow(1)), "new|trk");
    h.advance(10);
    assert_eq!(h.state(&flow_back(1)), "est|rpl|trk");
    h.advance(5);
    let e = h.entry(&flow(1)).unwrap();
    assert_eq!(e.created, t0, "creation time does not move with updates");
    assert_eq!(e.age(h.now), Duration::from_secs(15));
    assert_eq!(e.timeout_left(h.now), Duration::from_secs(25));
    assert_eq!(e.expires_at, after_ms(t0, 40_000));
    assert_eq!(e.reply_key(), flow_back(1).key(0));
    let st = h.tracker.stats();
    assert_eq!((st.created, st.connections), (1, 1));
    assert_eq!(st.zone_count(0), 1);
}
