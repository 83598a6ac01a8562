//! Translation between `ctrack.v1` messages and the engine's types, with request validation:
//! every error names the offending field (`filter.orig.src: ...`).

use std::net::IpAddr;
use std::time::Duration;

use ctrack_core::packet::reverse_icmp_type;
use ctrack_core::{
    ConnEntry, ConnKey, Endpoint, Family, Filter, PolicyId, Prefix, ProtoInfo, TcpPeerInfo,
    TcpState, Tick, TimeoutAttr, TimeoutPolicy, TupleFilter, proto,
};
use ctrack_proto::v1 as pb;
use tonic::Status;

/// An `INVALID_ARGUMENT` status naming `field`.
pub(crate) fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

pub(crate) fn zone(field: &str, v: u32) -> Result<u16, Status> {
    u16::try_from(v).map_err(|_| invalid(field, format!("{v} is out of range (0..=65535)")))
}

fn u8_field(field: &str, v: u32) -> Result<u8, Status> {
    u8::try_from(v).map_err(|_| invalid(field, format!("{v} is out of range (0..=255)")))
}

fn port(field: &str, v: u32) -> Result<u16, Status> {
    u16::try_from(v).map_err(|_| invalid(field, format!("{v} is out of range (0..=65535)")))
}

fn prefix(field: &str, text: &str) -> Result<Prefix, Status> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| invalid(field, format!("{text:?} is not an IP address or prefix")))?;
    match len {
        None => Ok(Prefix::host(addr)),
        Some(l) => {
            let l: u8 = l
                .parse()
                .map_err(|_| invalid(field, format!("{text:?} has a bad prefix length")))?;
            Prefix::new(addr, l).map_err(|e| invalid(field, e))
        }
    }
}

fn tuple_filter(field: &str, t: Option<pb::TupleFilter>) -> Result<TupleFilter, Status> {
    let Some(t) = t else {
        return Ok(TupleFilter::default());
    };
    Ok(TupleFilter {
        src: t
            .src
            .as_deref()
            .map(|s| prefix(&format!("{field}.src"), s))
            .transpose()?,
        dst: t
            .dst
            .as_deref()
            .map(|s| prefix(&format!("{field}.dst"), s))
            .transpose()?,
        sport: t
            .src_port
            .map(|p| port(&format!("{field}.src_port"), p))
            .transpose()?,
        dport: t
            .dst_port
            .map(|p| port(&format!("{field}.dst_port"), p))
            .transpose()?,
        icmp_type: t
            .icmp_type
            .map(|v| u8_field(&format!("{field}.icmp_type"), v))
            .transpose()?,
        icmp_code: t
            .icmp_code
            .map(|v| u8_field(&format!("{field}.icmp_code"), v))
            .transpose()?,
    })
}

fn family(field: &str, v: i32) -> Result<Option<Family>, Status> {
    match pb::Family::try_from(v) {
        Ok(pb::Family::Unspecified) => Ok(None),
        Ok(pb::Family::Ipv4) => Ok(Some(Family::V4)),
        Ok(pb::Family::Ipv6) => Ok(Some(Family::V6)),
        Err(_) => Err(invalid(field, format!("unknown family {v}"))),
    }
}

fn tcp_state_from(field: &str, v: i32) -> Result<TcpState, Status> {
    let state =
        pb::TcpState::try_from(v).map_err(|_| invalid(field, format!("unknown TCP state {v}")))?;
    Ok(match state {
        pb::TcpState::Closed => TcpState::Closed,
        pb::TcpState::Listen => TcpState::Listen,
        pb::TcpState::SynSent => TcpState::SynSent,
        pb::TcpState::SynRecv => TcpState::SynRecv,
        pb::TcpState::Established => TcpState::Established,
        pb::TcpState::CloseWait => TcpState::CloseWait,
        pb::TcpState::FinWait1 => TcpState::FinWait1,
        pb::TcpState::Closing => TcpState::Closing,
        pb::TcpState::LastAck => TcpState::LastAck,
        pb::TcpState::FinWait2 => TcpState::FinWait2,
        pb::TcpState::TimeWait => TcpState::TimeWait,
    })
}

fn tcp_state_to(s: TcpState) -> pb::TcpState {
    match s {
        TcpState::Closed => pb::TcpState::Closed,
        TcpState::Listen => pb::TcpState::Listen,
        TcpState::SynSent => pb::TcpState::SynSent,
        TcpState::SynRecv => pb::TcpState::SynRecv,
        TcpState::Established => pb::TcpState::Established,
        TcpState::CloseWait => pb::TcpState::CloseWait,
        TcpState::FinWait1 => pb::TcpState::FinWait1,
        TcpState::Closing => pb::TcpState::Closing,
        TcpState::LastAck => pb::TcpState::LastAck,
        TcpState::FinWait2 => pb::TcpState::FinWait2,
        TcpState::TimeWait => pb::TcpState::TimeWait,
    }
}

/// A filter from its message (`None`: select everything).
pub(crate) fn filter(field: &str, f: Option<pb::Filter>) -> Result<Filter, Status> {
    let Some(f) = f else {
        return Ok(Filter::default());
    };
    Ok(Filter {
        zone: f
            .zone
            .map(|z| zone(&format!("{field}.zone"), z))
            .transpose()?,
        proto: f
            .protocol
            .map(|p| u8_field(&format!("{field}.protocol"), p))
            .transpose()?,
        family: family(&format!("{field}.family"), f.family)?,
        orig: tuple_filter(&format!("{field}.orig"), f.orig)?,
        reply: tuple_filter(&format!("{field}.reply"), f.reply)?,
        tcp_state: f
            .tcp_state
            .map(|s| tcp_state_from(&format!("{field}.tcp_state"), s))
            .transpose()?,
    })
}

/// An exact connection key from its message.
pub(crate) fn key(field: &str, k: Option<pb::ConnectionKey>) -> Result<ConnKey, Status> {
    let k = k.ok_or_else(|| invalid(field, "missing"))?;
    let zone = zone(&format!("{field}.zone"), k.zone)?;
    let nw_proto = u8_field(&format!("{field}.protocol"), k.protocol)?;
    let t = k
        .tuple
        .ok_or_else(|| invalid(&format!("{field}.tuple"), "missing"))?;
    let parse_addr = |name: &str, text: &str| -> Result<IpAddr, Status> {
        text.trim().parse().map_err(|_| {
            invalid(
                &format!("{field}.tuple.{name}"),
                format!("{text:?} is not an IP address"),
            )
        })
    };
    let src = parse_addr("src", &t.src)?;
    let dst = parse_addr("dst", &t.dst)?;
    let family = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Family::V4,
        (IpAddr::V6(_), IpAddr::V6(_)) => Family::V6,
        _ => {
            return Err(invalid(
                &format!("{field}.tuple"),
                "src and dst are of different families",
            ));
        }
    };
    let mut s = Endpoint::new(src, port(&format!("{field}.tuple.src_port"), t.src_port)?);
    let mut d = Endpoint::new(dst, port(&format!("{field}.tuple.dst_port"), t.dst_port)?);
    let icmp = matches!(
        (nw_proto, family),
        (proto::ICMP, Family::V4) | (proto::ICMPV6, Family::V6)
    );
    if icmp {
        let ty = u8_field(&format!("{field}.tuple.icmp_type"), t.icmp_type)?;
        s.icmp_type = ty;
        d.icmp_type = reverse_icmp_type(nw_proto, ty);
    }
    Ok(ConnKey {
        src: s,
        dst: d,
        zone,
        proto: nw_proto,
        family,
    })
}

fn tuple(key: &ConnKey) -> pb::Tuple {
    pb::Tuple {
        src: key.src.ip(key.family).to_string(),
        dst: key.dst.ip(key.family).to_string(),
        src_port: u32::from(key.src.port),
        dst_port: u32::from(key.dst.port),
        icmp_type: u32::from(key.src.icmp_type),
        icmp_code: u32::from(key.src.icmp_code),
    }
}

fn peer(p: &TcpPeerInfo) -> pb::TcpPeer {
    pb::TcpPeer {
        state: tcp_state_to(p.state) as i32,
        wscale: u32::from(p.wscale),
        window_scale: p.window_scale,
        liberal: p.liberal,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A connection snapshot as a message, times counted from `now`.
pub(crate) fn connection(e: &ConnEntry, now: Tick) -> pb::Connection {
    let state = match e.proto {
        ProtoInfo::Tcp { orig, reply } => pb::connection::State::Tcp(pb::TcpInfo {
            orig: Some(peer(&orig)),
            reply: Some(peer(&reply)),
        }),
        ProtoInfo::Other { state } => pb::connection::State::Other(state.to_owned()),
        ProtoInfo::Icmp { reply_seen } => {
            pb::connection::State::Icmp(if reply_seen { "REPLY" } else { "FIRST" }.to_owned())
        }
    };
    let counters = |d: usize| pb::Counters {
        packets: e.counters.packets[d],
        bytes: e.counters.bytes[d],
    };
    pb::Connection {
        id: e.id,
        zone: u32::from(e.key.zone),
        protocol: u32::from(e.key.proto),
        family: match e.key.family {
            Family::V4 => pb::Family::Ipv4,
            Family::V6 => pb::Family::Ipv6,
        } as i32,
        orig: Some(tuple(&e.key)),
        reply: Some(tuple(&e.reply_key())),
        state: Some(state),
        timeout_ms: millis(e.timeout_left(now)),
        age_ms: millis(e.age(now)),
        orig_counters: Some(counters(0)),
        reply_counters: Some(counters(1)),
        policy_id: e.policy.0,
    }
}

/// A policy message (every attribute) from the engine's policy.
pub(crate) fn policy_to(id: PolicyId, p: &TimeoutPolicy) -> pb::Policy {
    pb::Policy {
        id: id.0,
        timeouts: p.iter().map(|(a, s)| (a.name().to_owned(), s)).collect(),
    }
}

/// An engine policy from its message: named attributes set, the others at their defaults.
pub(crate) fn policy_from(
    field: &str,
    p: Option<pb::Policy>,
) -> Result<(PolicyId, TimeoutPolicy), Status> {
    let p = p.ok_or_else(|| invalid(field, "missing"))?;
    let mut values = Vec::with_capacity(p.timeouts.len());
    for (name, secs) in p.timeouts {
        let attr: TimeoutAttr = name
            .parse()
            .map_err(|e| invalid(&format!("{field}.timeouts"), e))?;
        values.push((attr, secs));
    }
    Ok((PolicyId(p.id), TimeoutPolicy::with(values)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_errors_name_the_field() {
        let bad = pb::Filter {
            zone: Some(70_000),
            ..Default::default()
        };
        let e = filter("filter", Some(bad)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().starts_with("filter.zone: 70000"),
            "{}",
            e.message()
        );
        let bad = pb::Filter {
            orig: Some(pb::TupleFilter {
                src: Some("10.0.0.0/33".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = filter("filter", Some(bad)).unwrap_err();
        assert!(
            e.message().starts_with("filter.orig.src:"),
            "{}",
            e.message()
        );
        let ok = pb::Filter {
            orig: Some(pb::TupleFilter {
                src: Some("10.0.0.0/8".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(filter("filter", Some(ok)).unwrap().orig.src.is_some());
    }

    #[test]
    fn icmp_keys_get_the_reverse_type() {
        let k = key(
            "tuple",
            Some(pb::ConnectionKey {
                zone: 3,
                protocol: 1,
                tuple: Some(pb::Tuple {
                    src: "10.0.0.1".into(),
                    dst: "10.0.0.2".into(),
                    src_port: 7,
                    dst_port: 7,
                    icmp_type: 8,
                    icmp_code: 0,
                }),
            }),
        )
        .unwrap();
        assert_eq!((k.src.icmp_type, k.dst.icmp_type, k.zone), (8, 0, 3));
        let mixed = pb::ConnectionKey {
            tuple: Some(pb::Tuple {
                src: "10.0.0.1".into(),
                dst: "fd00::1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(
            key("tuple", Some(mixed))
                .unwrap_err()
                .message()
                .contains("different families")
        );
    }
}
