//! Connections in the line format of OVS `ovs-appctl dpctl/dump-conntrack -m -s`.
//!
//! `tcp,orig=(src=..,dst=..,sport=..,dport=..),reply=(...),id=N[,zone=Z],status=N,timeout=S,
//! protoinfo=(state_orig=..,state_reply=..[,wscale_orig=..,wscale_reply=..],flags_orig=..,
//! flags_reply=..)`. ICMP tuples print `id=,type=,code=` instead of ports. OVS's userspace
//! tracker keeps no packet counters or start time, so its lines show none; neither does this
//! format (other outputs of ctrack do). `status` is 0, as OVS's userspace prints.

use std::fmt::Write as _;

use ctrack_core::{ConnEntry, ConnKey, ProtoInfo, TcpPeerInfo, Tick, proto};

/// One connection as a dump line (without newline), `timeout` counted from `now`.
pub fn dump_line(entry: &ConnEntry, now: Tick) -> String {
    let mut s = String::with_capacity(200);
    s.push_str(&proto_name(entry.key.proto));
    s.push_str(",orig=(");
    tuple(&mut s, &entry.key);
    s.push_str("),reply=(");
    tuple(&mut s, &entry.reply_key());
    s.push(')');
    let _ = write!(s, ",id={}", entry.id);
    if entry.key.zone != 0 {
        let _ = write!(s, ",zone={}", entry.key.zone);
    }
    let _ = write!(s, ",status=0,timeout={}", entry.timeout_left(now).as_secs());
    if let ProtoInfo::Tcp { orig, reply } = entry.proto {
        let _ = write!(
            s,
            ",protoinfo=(state_orig={},state_reply={}",
            orig.state.name(),
            reply.state.name()
        );
        if orig.wscale != 0 || reply.wscale != 0 {
            let _ = write!(
                s,
                ",wscale_orig={},wscale_reply={}",
                orig.wscale, reply.wscale
            );
        }
        let _ = write!(
            s,
            ",flags_orig={},flags_reply={})",
            tcp_flags(&orig),
            tcp_flags(&reply)
        );
    }
    s
}

/// OVS's name of an IP protocol, or its number.
pub fn proto_name(p: u8) -> String {
    match p {
        proto::ICMP => "icmp".into(),
        proto::ICMPV6 => "icmpv6".into(),
        proto::TCP => "tcp".into(),
        proto::UDP => "udp".into(),
        proto::SCTP => "sctp".into(),
        proto::UDPLITE => "udplite".into(),
        33 => "dccp".into(),
        2 => "igmp".into(),
        other => other.to_string(),
    }
}

fn tuple(s: &mut String, key: &ConnKey) {
    let _ = write!(
        s,
        "src={},dst={}",
        key.src.ip(key.family),
        key.dst.ip(key.family)
    );
    if key.proto == proto::ICMP || key.proto == proto::ICMPV6 {
        let _ = write!(
            s,
            ",id={},type={},code={}",
            key.src.port, key.src.icmp_type, key.src.icmp_code
        );
    } else {
        let _ = write!(s, ",sport={},dport={}", key.src.port, key.dst.port);
    }
}

fn tcp_flags(peer: &TcpPeerInfo) -> String {
    let mut names = Vec::new();
    if peer.window_scale {
        names.push("WINDOW_SCALE");
    }
    if peer.liberal {
        names.push("BE_LIBERAL");
    }
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}
