//! Connections as text: the OVS `dpctl/dump-conntrack` line, the `conntrack -L` line, table
//! rows and JSON objects, all from the `ctrack.v1.Connection` message alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ctrack_proto::v1 as pb;
use serde::Serialize;

const ICMP: u32 = 1;
const TCP: u32 = 6;
const ICMPV6: u32 = 58;

fn is_icmp(protocol: u32) -> bool {
    protocol == ICMP || protocol == ICMPV6
}

/// OVS's name of an IP protocol, or its number (as `dpctl/dump-conntrack` prints it).
pub(crate) fn ovs_proto_name(p: u32) -> String {
    match p {
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        33 => "dccp".into(),
        2 => "igmp".into(),
        other => other.to_string(),
    }
}

/// conntrack-tools' name of an IP protocol (`unknown` for the others).
fn conntrack_proto_name(p: u32) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        136 => "udplite",
        1 => "icmp",
        58 => "icmpv6",
        132 => "sctp",
        47 => "gre",
        33 => "dccp",
        _ => "unknown",
    }
}

/// A TCP peer state as OVS names it (`ESTABLISHED`, `FIN_WAIT_2`, ...).
pub(crate) fn tcp_state_name(v: i32) -> String {
    match pb::TcpState::try_from(v) {
        Ok(s) => s.as_str_name().trim_start_matches("TCP_STATE_").to_owned(),
        Err(_) => format!("UNKNOWN_{v}"),
    }
}

fn peers(c: &pb::Connection) -> Option<(pb::TcpPeer, pb::TcpPeer)> {
    match &c.state {
        Some(pb::connection::State::Tcp(t)) => {
            Some((t.orig.unwrap_or_default(), t.reply.unwrap_or_default()))
        }
        _ => None,
    }
}

fn default_tuple() -> &'static pb::Tuple {
    static EMPTY: std::sync::OnceLock<pb::Tuple> = std::sync::OnceLock::new();
    EMPTY.get_or_init(pb::Tuple::default)
}

fn orig(c: &pb::Connection) -> &pb::Tuple {
    c.orig.as_ref().unwrap_or_else(|| default_tuple())
}

fn reply(c: &pb::Connection) -> &pb::Tuple {
    c.reply.as_ref().unwrap_or_else(|| default_tuple())
}

fn counters(c: Option<&pb::Counters>) -> (u64, u64) {
    c.map_or((0, 0), |c| (c.packets, c.bytes))
}

/// Whole seconds left, as both OVS and conntrack print them (rounded down).
fn timeout_secs(c: &pb::Connection) -> u64 {
    c.timeout_ms / 1000
}

// ---------------------------------------------------------------------------------------------
// OVS

fn ovs_tuple(s: &mut String, protocol: u32, t: &pb::Tuple) {
    let _ = write!(s, "src={},dst={}", t.src, t.dst);
    if is_icmp(protocol) {
        let _ = write!(
            s,
            ",id={},type={},code={}",
            t.src_port, t.icmp_type, t.icmp_code
        );
    } else {
        let _ = write!(s, ",sport={},dport={}", t.src_port, t.dst_port);
    }
}

fn ovs_flags(p: &pb::TcpPeer) -> String {
    let mut names = Vec::new();
    if p.window_scale {
        names.push("WINDOW_SCALE");
    }
    if p.liberal {
        names.push("BE_LIBERAL");
    }
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

/// One connection in the line format of `ovs-appctl dpctl/dump-conntrack -m -s` (as
/// `ctrackd replay --dump` prints it): `proto,orig=(...),reply=(...),id=N[,zone=Z],status=0,
/// timeout=S[,protoinfo=(...)]`.
pub(crate) fn ovs_line(c: &pb::Connection) -> String {
    let mut s = String::with_capacity(200);
    s.push_str(&ovs_proto_name(c.protocol));
    s.push_str(",orig=(");
    ovs_tuple(&mut s, c.protocol, orig(c));
    s.push_str("),reply=(");
    ovs_tuple(&mut s, c.protocol, reply(c));
    s.push(')');
    let _ = write!(s, ",id={}", c.id);
    if c.zone != 0 {
        let _ = write!(s, ",zone={}", c.zone);
    }
    let _ = write!(s, ",status=0,timeout={}", timeout_secs(c));
    if let Some((o, r)) = peers(c) {
        let _ = write!(
            s,
            ",protoinfo=(state_orig={},state_reply={}",
            tcp_state_name(o.state),
            tcp_state_name(r.state)
        );
        if o.wscale != 0 || r.wscale != 0 {
            let _ = write!(s, ",wscale_orig={},wscale_reply={}", o.wscale, r.wscale);
        }
        let _ = write!(
            s,
            ",flags_orig={},flags_reply={})",
            ovs_flags(&o),
            ovs_flags(&r)
        );
    }
    s
}

// ---------------------------------------------------------------------------------------------
// conntrack -L

/// The Linux conntrack state of a TCP connection, from the two pf-style peer states ctrack
/// keeps (OVS's model). Linux keeps one state per connection; this is the closest one.
fn linux_tcp_state(o: i32, r: i32) -> &'static str {
    use pb::TcpState as S;
    let (established, closing, fin_wait_2, time_wait) = (
        S::Established as i32,
        S::Closing as i32,
        S::FinWait2 as i32,
        S::TimeWait as i32,
    );
    if o >= time_wait || r >= time_wait {
        "CLOSE" // a reset was seen
    } else if o >= fin_wait_2 && r >= fin_wait_2 {
        "TIME_WAIT" // both FINs acknowledged
    } else if o >= closing && r >= closing {
        "LAST_ACK" // both FINs sent, the last one not yet acknowledged
    } else if o >= closing || r >= closing {
        // One side closed: FIN_WAIT until its FIN is acknowledged, CLOSE_WAIT after.
        if o >= fin_wait_2 || r >= fin_wait_2 {
            "CLOSE_WAIT"
        } else {
            "FIN_WAIT"
        }
    } else if o >= established && r >= established {
        "ESTABLISHED"
    } else if r == S::Closed as i32 {
        if o == S::Closed as i32 {
            "NONE"
        } else {
            "SYN_SENT"
        }
    } else {
        "SYN_RECV"
    }
}

/// (seen a reply, assured) as Linux would flag the connection.
fn linux_status(c: &pb::Connection) -> (bool, bool) {
    match &c.state {
        Some(pb::connection::State::Tcp(t)) => {
            let o = t.orig.as_ref().map_or(0, |p| p.state);
            let r = t.reply.as_ref().map_or(0, |p| p.state);
            let est = pb::TcpState::Established as i32;
            (r != pb::TcpState::Closed as i32, o >= est && r >= est)
        }
        Some(pb::connection::State::Other(s)) => (s == "BIDIR", s == "BIDIR"),
        Some(pb::connection::State::Icmp(s)) => (s == "REPLY", false),
        None => (false, false),
    }
}

fn conntrack_tuple(s: &mut String, protocol: u32, t: &pb::Tuple) {
    let _ = write!(s, " src={} dst={}", t.src, t.dst);
    match protocol {
        6 | 17 | 136 | 132 | 33 => {
            let _ = write!(s, " sport={} dport={}", t.src_port, t.dst_port);
        }
        1 | 58 => {
            let _ = write!(
                s,
                " type={} code={} id={}",
                t.icmp_type, t.icmp_code, t.src_port
            );
        }
        _ => {}
    }
}

/// What kind of line: a table entry (`conntrack -L`) or an event (`conntrack -E`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A listed connection.
    Entry,
    /// A `[NEW]` event.
    New,
    /// A `[DESTROY]` event (no timeout, no state, as the kernel reports them).
    Destroy,
}

/// One connection in the line format of conntrack-tools (`conntrack -L`, or `conntrack -E`
/// for events): `tcp      6 431999 ESTABLISHED src=.. dst=.. sport=.. dport=.. packets=..
/// bytes=.. src=.. ... [ASSURED] mark=0 [zone=Z ]use=1`.
pub(crate) fn conntrack_line(c: &pb::Connection, kind: Line) -> String {
    let mut s = String::with_capacity(240);
    match kind {
        Line::Entry => {}
        Line::New => s.push_str("    [NEW] "),
        Line::Destroy => s.push_str("[DESTROY] "),
    }
    let _ = write!(s, "{:<8} {}", conntrack_proto_name(c.protocol), c.protocol);
    if kind != Line::Destroy {
        let _ = write!(s, " {}", timeout_secs(c));
        if c.protocol == TCP
            && let Some((o, r)) = peers(c)
        {
            let _ = write!(s, " {}", linux_tcp_state(o.state, r.state));
        }
    }
    let (seen_reply, assured) = linux_status(c);
    conntrack_tuple(&mut s, c.protocol, orig(c));
    let (p, b) = counters(c.orig_counters.as_ref());
    let _ = write!(s, " packets={p} bytes={b}");
    if !seen_reply {
        s.push_str(" [UNREPLIED]");
    }
    conntrack_tuple(&mut s, c.protocol, reply(c));
    let (p, b) = counters(c.reply_counters.as_ref());
    let _ = write!(s, " packets={p} bytes={b}");
    if assured {
        s.push_str(" [ASSURED]");
    }
    s.push_str(" mark=0");
    if c.zone != 0 {
        let _ = write!(s, " zone={}", c.zone);
    }
    s.push_str(" use=1");
    s
}

// ---------------------------------------------------------------------------------------------
// Table

/// Column headers of the connection table.
pub(crate) const CONN_HEADERS: [&str; 11] = [
    "ID", "ZONE", "PROTO", "SRC", "DST", "SPORT", "DPORT", "STATE", "TIMEOUT", "PACKETS", "BYTES",
];

/// Least widths of the connection table's columns, so that rows streamed later line up
/// with the first ones in the common case (IPv4, 5-digit ports).
pub(crate) const CONN_MIN_WIDTHS: [usize; 11] = [4, 4, 5, 15, 15, 5, 5, 11, 7, 7, 7];

/// The state of a connection in one word: the TCP peer states (`ESTABLISHED`, or
/// `SYN_SENT/CLOSED` when they differ), else `FIRST`, `MULTIPLE`, `BIDIR` or `REPLY`.
pub(crate) fn state_word(c: &pb::Connection) -> String {
    match &c.state {
        Some(pb::connection::State::Tcp(_)) => {
            let (o, r) = peers(c).unwrap_or_default();
            if o.state == r.state {
                tcp_state_name(o.state)
            } else {
                format!("{}/{}", tcp_state_name(o.state), tcp_state_name(r.state))
            }
        }
        Some(pb::connection::State::Other(s) | pb::connection::State::Icmp(s)) => s.clone(),
        None => "-".into(),
    }
}

/// A connection as the cells of a table row (`CONN_HEADERS`). Packets and bytes are
/// `originator/responder`. ICMP ports are the echo id; protocols without ports show `-`.
pub(crate) fn table_row(c: &pb::Connection) -> Vec<String> {
    let t = orig(c);
    let ported = matches!(c.protocol, 6 | 17 | 132 | 136 | 33) || is_icmp(c.protocol);
    let port = |p: u32| if ported { p.to_string() } else { "-".into() };
    let (op, ob) = counters(c.orig_counters.as_ref());
    let (rp, rb) = counters(c.reply_counters.as_ref());
    vec![
        c.id.to_string(),
        c.zone.to_string(),
        ovs_proto_name(c.protocol),
        t.src.clone(),
        t.dst.clone(),
        port(t.src_port),
        port(t.dst_port),
        state_word(c),
        timeout_secs(c).to_string(),
        format!("{op}/{rp}"),
        format!("{ob}/{rb}"),
    ]
}

/// Writes rows in aligned columns as they come, without holding them: widths come from
/// the headers, the least widths and the first batch, and grow (shifting later rows) only
/// when a later cell is wider.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<&'static str>,
    widths: Vec<usize>,
    header_due: bool,
}

impl Table {
    /// A table; `headers` is printed before the first batch unless `no_headers`.
    pub(crate) fn new(headers: &[&'static str], min_widths: &[usize], no_headers: bool) -> Self {
        let widths = headers
            .iter()
            .enumerate()
            .map(|(i, h)| h.len().max(min_widths.get(i).copied().unwrap_or(0)))
            .collect();
        Self {
            headers: headers.to_vec(),
            widths,
            header_due: !no_headers,
        }
    }

    /// The text of a batch of rows (with the header before the first one).
    pub(crate) fn render(&mut self, rows: &[Vec<String>]) -> String {
        for row in rows {
            for (w, cell) in self.widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        if self.header_due {
            self.header_due = false;
            let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
            self.line(&mut out, &header);
        }
        for row in rows {
            self.line(&mut out, row);
        }
        out
    }

    fn line(&self, out: &mut String, row: &[String]) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let w = self.widths.get(i).copied().unwrap_or(0);
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.push('\n');
    }
}

/// Key-value lines aligned on the values (`stats`, `config get`).
pub(crate) fn key_values(pairs: &[(String, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let _ = writeln!(out, "{k:<w$}  {v}");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// JSON

/// One direction's tuple in JSON.
#[derive(Debug, Serialize)]
pub(crate) struct JsonTuple<'a> {
    src: &'a str,
    dst: &'a str,
    src_port: u32,
    dst_port: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u32>,
}

/// A TCP peer in JSON.
#[derive(Debug, Serialize)]
pub(crate) struct JsonPeer {
    state: String,
    wscale: u32,
    window_scale: bool,
    liberal: bool,
}

/// The TCP state in JSON.
#[derive(Debug, Serialize)]
pub(crate) struct JsonTcp {
    orig: JsonPeer,
    reply: JsonPeer,
}

/// Packet and byte counters in JSON.
#[derive(Debug, Serialize)]
pub(crate) struct JsonCounters {
    packets: u64,
    bytes: u64,
}

/// A connection in JSON (one object per line).
#[derive(Debug, Serialize)]
pub(crate) struct JsonConnection<'a> {
    id: u64,
    zone: u32,
    protocol: String,
    protocol_number: u32,
    family: &'static str,
    orig: JsonTuple<'a>,
    reply: JsonTuple<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<JsonTcp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    timeout_ms: u64,
    age_ms: u64,
    orig_counters: JsonCounters,
    reply_counters: JsonCounters,
    policy_id: u32,
}

fn json_tuple(protocol: u32, t: &pb::Tuple) -> JsonTuple<'_> {
    let icmp = is_icmp(protocol);
    JsonTuple {
        src: &t.src,
        dst: &t.dst,
        src_port: t.src_port,
        dst_port: t.dst_port,
        icmp_type: icmp.then_some(t.icmp_type),
        icmp_code: icmp.then_some(t.icmp_code),
    }
}

fn json_peer(p: &pb::TcpPeer) -> JsonPeer {
    JsonPeer {
        state: tcp_state_name(p.state),
        wscale: p.wscale,
        window_scale: p.window_scale,
        liberal: p.liberal,
    }
}

/// A connection as its JSON object.
pub(crate) fn json_connection(c: &pb::Connection) -> JsonConnection<'_> {
    let count = |x: Option<&pb::Counters>| {
        let (packets, bytes) = counters(x);
        JsonCounters { packets, bytes }
    };
    let (tcp, state) = match &c.state {
        Some(pb::connection::State::Tcp(_)) => {
            let (o, r) = peers(c).unwrap_or_default();
            (
                Some(JsonTcp {
                    orig: json_peer(&o),
                    reply: json_peer(&r),
                }),
                None,
            )
        }
        Some(pb::connection::State::Other(s) | pb::connection::State::Icmp(s)) => {
            (None, Some(s.as_str()))
        }
        None => (None, None),
    };
    JsonConnection {
        id: c.id,
        zone: c.zone,
        protocol: ovs_proto_name(c.protocol),
        protocol_number: c.protocol,
        family: match pb::Family::try_from(c.family) {
            Ok(pb::Family::Ipv4) => "ipv4",
            Ok(pb::Family::Ipv6) => "ipv6",
            _ => "unspecified",
        },
        orig: json_tuple(c.protocol, orig(c)),
        reply: json_tuple(c.protocol, reply(c)),
        tcp,
        state,
        timeout_ms: c.timeout_ms,
        age_ms: c.age_ms,
        orig_counters: count(c.orig_counters.as_ref()),
        reply_counters: count(c.reply_counters.as_ref()),
        policy_id: c.policy_id,
    }
}

/// A watch event in JSON.
#[derive(Debug, Serialize)]
pub(crate) struct JsonEvent<'a> {
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    at_ms: u64,
    connection: Option<JsonConnection<'a>>,
}

/// The name of a destroy reason.
pub(crate) fn reason_name(v: i32) -> &'static str {
    match pb::DestroyReason::try_from(v) {
        Ok(pb::DestroyReason::Expired) => "expired",
        Ok(pb::DestroyReason::Flushed) => "flushed",
        Ok(pb::DestroyReason::PortReuse) => "port_reuse",
        Ok(pb::DestroyReason::Forced) => "forced",
        _ => "unspecified",
    }
}

/// A watch event as its JSON object.
pub(crate) fn json_event(e: &pb::ConnectionEvent) -> JsonEvent<'_> {
    let (event, reason) = match e.kind {
        Some(pb::connection_event::Kind::Destroyed(r)) => ("destroyed", Some(reason_name(r))),
        _ => ("new", None),
    };
    JsonEvent {
        event,
        reason,
        at_ms: e.at_ms,
        connection: e.connection.as_ref().map(json_connection),
    }
}

/// A timeout policy in JSON (attributes sorted by name).
#[derive(Debug, Serialize)]
pub(crate) struct JsonPolicy<'a> {
    id: u32,
    timeouts: BTreeMap<&'a str, u32>,
}

/// A policy as its JSON object.
pub(crate) fn json_policy(p: &pb::Policy) -> JsonPolicy<'_> {
    JsonPolicy {
        id: p.id,
        timeouts: p.timeouts.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
    }
}

/// Timeout attributes in the order of the documentation (TCP, UDP, ICMP).
pub(crate) const ATTRIBUTES: [&str; 11] = [
    "tcp_syn_sent",
    "tcp_syn_recv",
    "tcp_established",
    "tcp_fin_wait",
    "tcp_time_wait",
    "tcp_close",
    "udp_first",
    "udp_single",
    "udp_multiple",
    "icmp_first",
    "icmp_reply",
];

/// A policy's attributes in documentation order, unknown names (if any) after them.
pub(crate) fn policy_attributes(p: &pb::Policy) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = ATTRIBUTES
        .iter()
        .filter_map(|a| p.timeouts.get(*a).map(|v| ((*a).to_owned(), *v)))
        .collect();
    let mut rest: Vec<(String, u32)> = p
        .timeouts
        .iter()
        .filter(|(k, _)| !ATTRIBUTES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    rest.sort();
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(src: &str, dst: &str, sp: u32, dp: u32, ty: u32) -> Option<pb::Tuple> {
        Some(pb::Tuple {
            src: src.into(),
            dst: dst.into(),
            src_port: sp,
            dst_port: dp,
            icmp_type: ty,
            icmp_code: 0,
        })
    }

    fn peer(state: pb::TcpState, wscale: u32, ws: bool) -> Option<pb::TcpPeer> {
        Some(pb::TcpPeer {
            state: state as i32,
            wscale,
            window_scale: ws,
            liberal: false,
        })
    }

    fn tcp(zone: u32) -> pb::Connection {
        pb::Connection {
            id: 42,
            zone,
            protocol: 6,
            family: pb::Family::Ipv4 as i32,
            orig: tuple("10.0.0.1", "10.0.0.2", 40000, 80, 0),
            reply: tuple("10.0.0.2", "10.0.0.1", 80, 40000, 0),
            state: Some(pb::connection::State::Tcp(pb::TcpInfo {
                orig: peer(pb::TcpState::Established, 7, true),
                reply: peer(pb::TcpState::Established, 0, false),
            })),
            timeout_ms: 431_999_900,
            age_ms: 1234,
            orig_counters: Some(pb::Counters {
                packets: 3,
                bytes: 180,
            }),
            reply_counters: Some(pb::Counters {
                packets: 2,
                bytes: 120,
            }),
            policy_id: 0,
        }
    }

    fn icmp6() -> pb::Connection {
        pb::Connection {
            id: 11,
            zone: 0,
            protocol: 58,
            family: pb::Family::Ipv6 as i32,
            orig: tuple("fd00::1", "fd00::2", 5, 5, 128),
            reply: tuple("fd00::2", "fd00::1", 5, 5, 129),
            state: Some(pb::connection::State::Icmp("FIRST".into())),
            timeout_ms: 22_500,
            age_ms: 10,
            orig_counters: Some(pb::Counters {
                packets: 1,
                bytes: 104,
            }),
            reply_counters: Some(pb::Counters::default()),
            policy_id: 0,
        }
    }

    #[test]
    fn ovs_lines() {
        assert_eq!(
            ovs_line(&tcp(3)),
            "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=80),\
             reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40000),id=42,zone=3,status=0,\
             timeout=431999,protoinfo=(state_orig=ESTABLISHED,state_reply=ESTABLISHED,\
             wscale_orig=7,wscale_reply=0,flags_orig=WINDOW_SCALE,flags_reply=0)"
        );
        assert_eq!(
            ovs_line(&icmp6()),
            "icmpv6,orig=(src=fd00::1,dst=fd00::2,id=5,type=128,code=0),\
             reply=(src=fd00::2,dst=fd00::1,id=5,type=129,code=0),id=11,status=0,timeout=22"
        );
        let gre = pb::Connection {
            protocol: 47,
            orig: tuple("10.0.0.1", "10.0.0.2", 0, 0, 0),
            reply: tuple("10.0.0.2", "10.0.0.1", 0, 0, 0),
            state: Some(pb::connection::State::Other("FIRST".into())),
            timeout_ms: 999,
            id: 13,
            ..pb::Connection::default()
        };
        assert_eq!(
            ovs_line(&gre),
            "47,orig=(src=10.0.0.1,dst=10.0.0.2,sport=0,dport=0),\
             reply=(src=10.0.0.2,dst=10.0.0.1,sport=0,dport=0),id=13,status=0,timeout=0"
        );
    }

    #[test]
    fn conntrack_lines() {
        assert_eq!(
            conntrack_line(&tcp(3), Line::Entry),
            "tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 \
             packets=3 bytes=180 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 packets=2 \
             bytes=120 [ASSURED] mark=0 zone=3 use=1"
        );
        assert_eq!(
            conntrack_line(&icmp6(), Line::Entry),
            "icmpv6   58 22 src=fd00::1 dst=fd00::2 type=128 code=0 id=5 packets=1 bytes=104 \
             [UNREPLIED] src=fd00::2 dst=fd00::1 type=129 code=0 id=5 packets=0 bytes=0 \
             mark=0 use=1"
        );
        assert_eq!(
            conntrack_line(&tcp(0), Line::Destroy),
            "[DESTROY] tcp      6 src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 packets=3 \
             bytes=180 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 packets=2 bytes=120 \
             [ASSURED] mark=0 use=1"
        );
        assert!(conntrack_line(&tcp(0), Line::New).starts_with("    [NEW] tcp      6 431999 "));
    }

    #[test]
    fn linux_tcp_states() {
        use pb::TcpState as S;
        let st = |o: S, r: S| linux_tcp_state(o as i32, r as i32);
        assert_eq!(st(S::SynSent, S::Closed), "SYN_SENT");
        assert_eq!(st(S::Established, S::SynSent), "SYN_RECV");
        assert_eq!(st(S::Established, S::Established), "ESTABLISHED");
        assert_eq!(st(S::Closing, S::Established), "FIN_WAIT");
        assert_eq!(st(S::FinWait2, S::Established), "CLOSE_WAIT");
        assert_eq!(st(S::Closing, S::Closing), "LAST_ACK");
        assert_eq!(st(S::FinWait2, S::FinWait2), "TIME_WAIT");
        assert_eq!(st(S::TimeWait, S::TimeWait), "CLOSE");
        assert_eq!(st(S::Closed, S::Closed), "NONE");
    }

    #[test]
    fn table_rows_and_alignment() {
        let mut t = Table::new(&CONN_HEADERS, &CONN_MIN_WIDTHS, false);
        let text = t.render(&[table_row(&tcp(3)), table_row(&icmp6())]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID    ZONE  PROTO   SRC "), "{text}");
        let col = lines[0].find("STATE").unwrap();
        assert_eq!(&lines[1][col..col + 11], "ESTABLISHED");
        assert_eq!(&lines[2][col..col + 5], "FIRST");
        assert!(lines[1].ends_with("3/2      180/120"), "{text}");
        assert!(!text.lines().any(|l| l.ends_with(' ')));
        // Later batches keep the columns; no second header.
        let more = t.render(&[table_row(&tcp(0))]);
        assert_eq!(more.lines().count(), 1);
        assert_eq!(more.find("ESTABLISHED"), Some(col));
        let mut quiet = Table::new(&CONN_HEADERS, &CONN_MIN_WIDTHS, true);
        assert_eq!(quiet.render(&[table_row(&tcp(3))]).lines().count(), 1);
    }

    #[test]
    fn json_objects() {
        let v = serde_json::to_value(json_connection(&tcp(3))).unwrap();
        assert_eq!(v["protocol"], "tcp");
        assert_eq!(v["tcp"]["orig"]["state"], "ESTABLISHED");
        assert_eq!(v["orig"]["dst_port"], 80);
        assert!(v["orig"].get("icmp_type").is_none());
        assert!(v.get("state").is_none());
        let v = serde_json::to_value(json_connection(&icmp6())).unwrap();
        assert_eq!(v["reply"]["icmp_type"], 129);
        assert_eq!(v["state"], "FIRST");
        assert_eq!(v["family"], "ipv6");
        let e = pb::ConnectionEvent {
            kind: Some(pb::connection_event::Kind::Destroyed(
                pb::DestroyReason::Flushed as i32,
            )),
            connection: Some(icmp6()),
            at_ms: 5,
        };
        let v = serde_json::to_value(json_event(&e)).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["reason"].as_str()),
            (Some("destroyed"), Some("flushed"))
        );
    }
}
