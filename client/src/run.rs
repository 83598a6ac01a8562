//! The subcommands: each builds its request (usage errors come before connecting), calls
//! ctrackd and prints the answer in the chosen format.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufWriter, IsTerminal, StdoutLock, Write};
use std::net::IpAddr;
use std::time::Duration;

use ctrack_proto::v1 as pb;
use pb::conn_track_client::ConnTrackClient;
use pb::limits_client::LimitsClient;
use pb::policies_client::PoliciesClient;
use pb::system_client::SystemClient;
use serde::Serialize;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::cli::{
    Cli, Command, ConfigCommand, FilterArgs, FlushArgs, FlushTupleArgs, LimitsCommand, Output,
    PolicyCommand, ZoneOrDefault,
};
use crate::connect::{connect, human};
use crate::error::Failure;
use crate::format::{self, Line, Table};

/// What every command needs besides its arguments.
#[derive(Debug)]
struct Ctx {
    server: String,
    timeout: Duration,
    output: Output,
    no_headers: bool,
    out: Out,
}

impl Ctx {
    /// Awaits a unary call (or the opening of a stream) within `--timeout`.
    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => Ok(r?.into_inner()),
            Err(_) => Err(self.no_answer()),
        }
    }

    fn no_answer(&self) -> Failure {
        Failure::Unreachable(format!(
            "ctrackd at {} did not answer within {}",
            self.server,
            human(self.timeout)
        ))
    }

    fn table(&self) -> bool {
        self.output == Output::Table
    }
}

/// Buffered stdout, flushed after each batch or event.
struct Out(BufWriter<StdoutLock<'static>>);

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Out")
    }
}

impl Out {
    fn text(&mut self, s: &str) -> std::io::Result<()> {
        self.0.write_all(s.as_bytes())
    }

    fn line(&mut self, s: &str) -> std::io::Result<()> {
        self.0.write_all(s.as_bytes())?;
        self.0.write_all(b"\n")
    }

    fn json<T: Serialize>(&mut self, v: &T) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.0, v)?;
        self.0.write_all(b"\n")
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `N connection(s)`.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The output format: as asked, else table on a terminal and JSON lines otherwise.
fn output_format(cli: &Cli) -> Result<Output, Failure> {
    let output = cli.output.unwrap_or(if std::io::stdout().is_terminal() {
        Output::Table
    } else {
        Output::Json
    });
    let connections = matches!(cli.command, Command::Dump(_) | Command::Watch(_));
    if !connections && matches!(output, Output::Ovs | Output::Conntrack) {
        return Err(Failure::Usage(
            "-o ovs and -o conntrack apply to dump and watch only (use table or json)".into(),
        ));
    }
    Ok(output)
}

/// Runs the command line's command (not `completions`, which needs no server).
pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    let output = output_format(&cli)?;
    // Requests are built before connecting: a usage error never waits for the server.
    let flush_target = match &cli.command {
        Command::Flush(args) => Some(flush_target(args)),
        Command::FlushTuple(args) => Some(flush_tuple_target(args)?),
        _ => None,
    };
    let channel = connect(&cli).await?;
    let mut ctx = Ctx {
        server: cli.server.clone(),
        timeout: cli.timeout,
        output,
        no_headers: cli.no_headers,
        out: Out(BufWriter::with_capacity(1 << 16, std::io::stdout().lock())),
    };
    let result = match cli.command {
        Command::Dump(args) => dump(&mut ctx, channel, &args.filter, args.batch_size).await,
        Command::Watch(args) => watch(&mut ctx, channel, &args.filter).await,
        Command::Flush(_) | Command::FlushTuple(_) => {
            let target = flush_target.expect("built above");
            flush(&mut ctx, channel, target).await
        }
        Command::Limits(c) => limits(&mut ctx, channel, c).await,
        Command::Policy(c) => policy(&mut ctx, channel, c).await,
        Command::Stats => stats(&mut ctx, channel).await,
        Command::Config(c) => config(&mut ctx, channel, c).await,
        Command::Health(h) => health(&mut ctx, channel, h.service.unwrap_or_default()).await,
        Command::Completions { .. } => Ok(()),
    };
    // Whatever happened, what was printed so far reaches stdout.
    let flushed = ctx.out.flush();
    result?;
    flushed?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// dump and watch

fn write_connections(
    ctx: &mut Ctx,
    table: &mut Table,
    connections: &[pb::Connection],
) -> std::io::Result<()> {
    match ctx.output {
        Output::Table => {
            let rows: Vec<Vec<String>> = connections.iter().map(format::table_row).collect();
            let text = table.render(&rows);
            ctx.out.text(&text)
        }
        Output::Json => connections
            .iter()
            .try_for_each(|c| ctx.out.json(&format::json_connection(c))),
        Output::Ovs => connections
            .iter()
            .try_for_each(|c| ctx.out.line(&format::ovs_line(c))),
        Output::Conntrack => connections
            .iter()
            .try_for_each(|c| ctx.out.line(&format::conntrack_line(c, Line::Entry))),
    }
}

async fn dump(
    ctx: &mut Ctx,
    channel: Channel,
    filter: &FilterArgs,
    batch_size: Option<u32>,
) -> Result<(), Failure> {
    let mut client = ConnTrackClient::new(channel).max_decoding_message_size(64 << 20);
    let request = pb::DumpRequest {
        filter: filter.to_proto(),
        batch_size: batch_size.unwrap_or(0),
    };
    let mut stream = ctx.call(client.dump(request)).await?;
    let mut table = Table::new(
        &format::CONN_HEADERS,
        &format::CONN_MIN_WIDTHS,
        ctx.no_headers,
    );
    let mut count = 0u64;
    loop {
        // Each batch must come within the timeout; the whole dump may take longer.
        let batch = match tokio::time::timeout(ctx.timeout, stream.message()).await {
            Ok(m) => m?,
            Err(_) => return Err(ctx.no_answer()),
        };
        let Some(batch) = batch else { break };
        write_connections(ctx, &mut table, &batch.connections)?;
        ctx.out.flush()?;
        count += batch.connections.len() as u64;
    }
    if ctx.table() && count == 0 {
        // An empty table still shows its columns.
        let header = table.render(&[]);
        ctx.out.text(&header)?;
    }
    ctx.out.flush()?;
    eprintln!("{}", plural(count, "connection", "connections"));
    Ok(())
}

/// The event column of the watch table: NEW, or the reason of the removal.
fn event_word(e: &pb::ConnectionEvent) -> String {
    match e.kind {
        Some(pb::connection_event::Kind::Destroyed(r)) => {
            format::reason_name(r).to_ascii_uppercase()
        }
        _ => "NEW".into(),
    }
}

fn write_event(ctx: &mut Ctx, table: &mut Table, e: &pb::ConnectionEvent) -> std::io::Result<()> {
    let destroyed = matches!(e.kind, Some(pb::connection_event::Kind::Destroyed(_)));
    let Some(c) = &e.connection else {
        return Ok(());
    };
    match ctx.output {
        Output::Table => {
            let mut row = vec![event_word(e)];
            row.extend(format::table_row(c));
            let text = table.render(&[row]);
            ctx.out.text(&text)
        }
        Output::Json => ctx.out.json(&format::json_event(e)),
        Output::Ovs => {
            let tag = if destroyed { "[DESTROY]" } else { "[NEW]" };
            ctx.out.line(&format!("{tag:>9} {}", format::ovs_line(c)))
        }
        Output::Conntrack => {
            let kind = if destroyed { Line::Destroy } else { Line::New };
            ctx.out.line(&format::conntrack_line(c, kind))
        }
    }
}

const WATCH_HEADERS: [&str; 12] = [
    "EVENT", "ID", "ZONE", "PROTO", "SRC", "DST", "SPORT", "DPORT", "STATE", "TIMEOUT", "PACKETS",
    "BYTES",
];
const WATCH_MIN_WIDTHS: [usize; 12] = [7, 4, 4, 5, 15, 15, 5, 5, 11, 7, 7, 7];

async fn watch(ctx: &mut Ctx, channel: Channel, filter: &FilterArgs) -> Result<(), Failure> {
    let mut client = ConnTrackClient::new(channel);
    let request = pb::WatchRequest {
        filter: filter.to_proto(),
    };
    let mut stream = ctx.call(client.watch(request)).await?;
    // The server subscribes before it answers: from here on no event is missed.
    eprintln!("watching ctrackd at {} (Ctrl-C to stop)", ctx.server);
    let mut table = Table::new(&WATCH_HEADERS, &WATCH_MIN_WIDTHS, ctx.no_headers);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let (mut events, mut lost) = (0u64, 0u64);
    loop {
        let message = tokio::select! {
            _ = &mut ctrl_c => break,
            m = stream.message() => m?,
        };
        let Some(message) = message else {
            return Err(Failure::Unreachable(format!(
                "ctrackd at {} ended the watch (shutting down?)",
                ctx.server
            )));
        };
        match message.message {
            Some(pb::watch_response::Message::Event(e)) => {
                write_event(ctx, &mut table, &e)?;
                ctx.out.flush()?;
                events += 1;
            }
            Some(pb::watch_response::Message::Lost(l)) => {
                ctx.out.flush()?;
                lost += l.count;
                eprintln!(
                    "ctrackctl: {} lost (the watch or ctrackd's event queue fell behind)",
                    plural(l.count, "event", "events")
                );
            }
            None => {}
        }
    }
    ctx.out.flush()?;
    let lost = if lost > 0 {
        format!(", {lost} lost")
    } else {
        String::new()
    };
    eprintln!("{}{lost}", plural(events, "event", "events"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// flush

fn flush_target(args: &FlushArgs) -> pb::flush_request::Target {
    use pb::flush_request::Target;
    let f = &args.filter;
    if args.all {
        Target::All(true)
    } else if let (Some(zone), true) = (
        f.zone,
        FilterArgs {
            zone: None,
            ..f.clone()
        }
        .is_empty(),
    ) {
        Target::Zone(u32::from(zone))
    } else {
        Target::Filter(f.to_proto().unwrap_or_default())
    }
}

fn flush_tuple_target(a: &FlushTupleArgs) -> Result<pb::flush_request::Target, Failure> {
    let usage = |m: &str| Err(Failure::Usage(m.to_owned()));
    if a.src.is_ipv4() != a.dst.is_ipv4() {
        return usage("--src and --dst must be addresses of the same family");
    }
    let icmp = matches!(a.proto, 1 | 58);
    let ported = matches!(a.proto, 6 | 17 | 33 | 132 | 136);
    let (src_port, dst_port, icmp_type) = if icmp {
        if a.sport.is_some() || a.dport.is_some() {
            return usage("ICMP has no ports: give its echo id with --icmp-id");
        }
        let Some(id) = a.icmp_id else {
            return usage("an ICMP tuple needs --icmp-id (the echo id)");
        };
        let echo_request = if a.proto == 58 { 128 } else { 8 };
        (id, id, a.icmp_type.unwrap_or(echo_request))
    } else {
        if a.icmp_id.is_some() || a.icmp_type.is_some() {
            return usage("--icmp-id and --icmp-type apply to icmp and icmpv6 only");
        }
        match (a.sport, a.dport) {
            (Some(s), Some(d)) => (s, d, 0),
            _ if ported => return usage("this protocol's tuple needs --sport and --dport"),
            (s, d) => (s.unwrap_or(0), d.unwrap_or(0), 0),
        }
    };
    let text = |ip: IpAddr| ip.to_string();
    Ok(pb::flush_request::Target::Tuple(pb::ConnectionKey {
        zone: u32::from(a.zone),
        protocol: u32::from(a.proto),
        tuple: Some(pb::Tuple {
            src: text(a.src),
            dst: text(a.dst),
            src_port: u32::from(src_port),
            dst_port: u32::from(dst_port),
            icmp_type: u32::from(icmp_type),
            icmp_code: 0,
        }),
    }))
}

async fn flush(
    ctx: &mut Ctx,
    channel: Channel,
    target: pb::flush_request::Target,
) -> Result<(), Failure> {
    let mut client = ConnTrackClient::new(channel);
    let request = pb::FlushRequest {
        target: Some(target),
    };
    let removed = ctx.call(client.flush(request)).await?.removed;
    if ctx.table() {
        ctx.out.line(&format!(
            "{} flushed",
            plural(removed, "connection", "connections")
        ))?;
    } else {
        ctx.out.json(&serde_json::json!({ "removed": removed }))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// limits

fn limit_text(v: Option<u32>) -> String {
    match v {
        None | Some(0) => "unlimited".into(),
        Some(n) => n.to_string(),
    }
}

async fn limits(ctx: &mut Ctx, channel: Channel, command: LimitsCommand) -> Result<(), Failure> {
    let mut client = LimitsClient::new(channel);
    match command {
        LimitsCommand::Get { zones } => {
            let request = pb::GetZoneLimitsRequest {
                zones: zones.into_iter().map(u32::from).collect(),
            };
            let r = ctx.call(client.get_zone_limits(request)).await?;
            if ctx.table() {
                let mut rows = Vec::new();
                if let Some(d) = r.default_limit {
                    rows.push(vec![
                        "default".into(),
                        limit_text(Some(d)),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ]);
                }
                for z in &r.zones {
                    let source = if z.explicit_limit.is_some() {
                        "zone"
                    } else if z.limit.is_some() {
                        "default"
                    } else {
                        "-"
                    };
                    rows.push(vec![
                        z.zone.to_string(),
                        limit_text(z.limit),
                        source.into(),
                        z.count.to_string(),
                        z.connections.to_string(),
                    ]);
                }
                let mut t = Table::new(
                    &["ZONE", "LIMIT", "SOURCE", "COUNT", "CONNECTIONS"],
                    &[7],
                    ctx.no_headers,
                );
                let text = t.render(&rows);
                ctx.out.text(&text)?;
            } else {
                #[derive(Serialize)]
                struct Zone {
                    zone: u32,
                    explicit_limit: Option<u32>,
                    limit: Option<u32>,
                    count: u32,
                    connections: u32,
                }
                let zones: Vec<Zone> = r
                    .zones
                    .iter()
                    .map(|z| Zone {
                        zone: z.zone,
                        explicit_limit: z.explicit_limit,
                        limit: z.limit,
                        count: z.count,
                        connections: z.connections,
                    })
                    .collect();
                #[derive(Serialize)]
                struct Limits {
                    default_limit: Option<u32>,
                    zones: Vec<Zone>,
                }
                ctx.out.json(&Limits {
                    default_limit: r.default_limit,
                    zones,
                })?;
            }
        }
        LimitsCommand::Set { limits } => {
            let mut request = pb::SetZoneLimitsRequest::default();
            for l in limits {
                match l.zone {
                    ZoneOrDefault::Default => request.default_limit = Some(l.limit),
                    ZoneOrDefault::Zone(z) => request.limits.push(pb::ZoneLimit {
                        zone: u32::from(z),
                        limit: l.limit,
                    }),
                }
            }
            ctx.call(client.set_zone_limits(request)).await?;
        }
        LimitsCommand::Del { zones } => {
            let mut request = pb::DeleteZoneLimitsRequest::default();
            for z in zones {
                match z {
                    ZoneOrDefault::Default => request.default_limit = true,
                    ZoneOrDefault::Zone(z) => request.zones.push(u32::from(z)),
                }
            }
            ctx.call(client.delete_zone_limits(request)).await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// policies

fn print_policy(ctx: &mut Ctx, p: &pb::Policy) -> std::io::Result<()> {
    if ctx.table() {
        let rows: Vec<Vec<String>> = format::policy_attributes(p)
            .into_iter()
            .map(|(a, s)| vec![a, s.to_string()])
            .collect();
        let mut t = Table::new(&["ATTRIBUTE", "SECONDS"], &[], ctx.no_headers);
        let text = t.render(&rows);
        ctx.out.text(&text)
    } else {
        ctx.out.json(&format::json_policy(p))
    }
}

async fn policy(ctx: &mut Ctx, channel: Channel, command: PolicyCommand) -> Result<(), Failure> {
    let mut client = PoliciesClient::new(channel);
    match command {
        PolicyCommand::Get { id } => {
            let r = ctx
                .call(client.get_policy(pb::GetPolicyRequest { id }))
                .await?;
            print_policy(ctx, &r.policy.unwrap_or_default())?;
        }
        PolicyCommand::Set { id, timeouts } => {
            let mut map = std::collections::HashMap::new();
            for (name, secs) in timeouts {
                map.insert(name, secs);
            }
            let request = pb::SetPolicyRequest {
                policy: Some(pb::Policy { id, timeouts: map }),
            };
            let r = ctx.call(client.set_policy(request)).await?;
            print_policy(ctx, &r.policy.unwrap_or_default())?;
        }
        PolicyCommand::Del { id } => {
            ctx.call(client.delete_policy(pb::DeletePolicyRequest { id }))
                .await?;
        }
        PolicyCommand::List => {
            let r = ctx
                .call(client.list_policies(pb::ListPoliciesRequest {}))
                .await?;
            let mut policies = r.policies;
            policies.sort_by_key(|p| p.id);
            let mut bindings = r.bindings;
            bindings.sort_by_key(|b| b.zone);
            if ctx.table() {
                let rows: Vec<Vec<String>> = policies
                    .iter()
                    .flat_map(|p| {
                        format::policy_attributes(p)
                            .into_iter()
                            .map(|(a, s)| vec![p.id.to_string(), a, s.to_string()])
                    })
                    .collect();
                let mut t = Table::new(&["POLICY", "ATTRIBUTE", "SECONDS"], &[], ctx.no_headers);
                let text = t.render(&rows);
                ctx.out.text(&text)?;
                if !bindings.is_empty() {
                    let rows: Vec<Vec<String>> = bindings
                        .iter()
                        .map(|b| vec![b.zone.to_string(), b.policy_id.to_string()])
                        .collect();
                    let mut t = Table::new(&["ZONE", "POLICY"], &[], ctx.no_headers);
                    let text = t.render(&rows);
                    ctx.out.text("\n")?;
                    ctx.out.text(&text)?;
                }
            } else {
                #[derive(Serialize)]
                struct Binding {
                    zone: u32,
                    policy_id: u32,
                }
                #[derive(Serialize)]
                struct List<'a> {
                    policies: Vec<format::JsonPolicy<'a>>,
                    bindings: Vec<Binding>,
                }
                ctx.out.json(&List {
                    policies: policies.iter().map(format::json_policy).collect(),
                    bindings: bindings
                        .iter()
                        .map(|b| Binding {
                            zone: b.zone,
                            policy_id: b.policy_id,
                        })
                        .collect(),
                })?;
            }
        }
        PolicyCommand::Bind { zone, policy } => {
            let request = pb::BindZoneRequest {
                zone: u32::from(zone),
                policy_id: policy,
            };
            ctx.call(client.bind_zone(request)).await?;
        }
        PolicyCommand::Unbind { zone } => {
            let request = pb::UnbindZoneRequest {
                zone: u32::from(zone),
            };
            ctx.call(client.unbind_zone(request)).await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// stats, config, health

async fn stats(ctx: &mut Ctx, channel: Channel) -> Result<(), Failure> {
    let mut client = SystemClient::new(channel);
    let s = ctx.call(client.get_stats(pb::GetStatsRequest {})).await?;
    let counters: [(&str, u64); 14] = [
        ("connections", s.connections),
        ("created", s.created),
        ("zone_limit_hits", s.zone_limit_hits),
        ("global_limit_hits", s.global_limit_hits),
        ("seq_check_bypassed", s.seq_check_bypassed),
        ("seq_check_failed", s.seq_check_failed),
        ("related", s.related),
        ("port_reuse", s.port_reuse),
        ("forced", s.forced),
        ("sweeps", s.sweeps),
        ("scanned", s.scanned),
        ("expired", s.expired),
        ("flushed", s.flushed),
        ("events_dropped", s.events_dropped),
    ];
    let named = |v: &[pb::NamedCount]| -> BTreeMap<String, u64> {
        v.iter().map(|n| (n.name.clone(), n.count)).collect()
    };
    if ctx.table() {
        let mut pairs: Vec<(String, String)> = counters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect();
        for (name, n) in named(&s.per_protocol) {
            pairs.push((format!("protocol.{name}"), n.to_string()));
        }
        let mut zones: Vec<&pb::ZoneCount> = s.per_zone.iter().collect();
        zones.sort_by_key(|z| z.zone);
        for z in zones {
            pairs.push((format!("zone.{}", z.zone), z.count.to_string()));
        }
        for (name, n) in named(&s.invalid) {
            pairs.push((format!("invalid.{name}"), n.to_string()));
        }
        for i in &s.interfaces {
            let p = format!("interface.{}", i.name);
            pairs.push((format!("{p}.zone"), i.zone.to_string()));
            pairs.push((format!("{p}.state"), i.state.clone()));
            if !i.last_error.is_empty() {
                pairs.push((format!("{p}.last_error"), i.last_error.clone()));
            }
            for w in &i.workers {
                let p = format!("{p}.worker{}", w.worker);
                pairs.push((format!("{p}.received"), w.received.to_string()));
                pairs.push((format!("{p}.processed"), w.processed.to_string()));
                pairs.push((format!("{p}.invalid"), w.invalid.to_string()));
                pairs.push((format!("{p}.kernel_drops"), w.kernel_drops.to_string()));
            }
        }
        ctx.out.text(&format::key_values(&pairs))?;
    } else {
        let mut obj = serde_json::Map::new();
        for (k, v) in counters {
            obj.insert(k.into(), v.into());
        }
        obj.insert(
            "per_protocol".into(),
            serde_json::json!(named(&s.per_protocol)),
        );
        let zones: BTreeMap<String, u64> = s
            .per_zone
            .iter()
            .map(|z| (z.zone.to_string(), z.count))
            .collect();
        obj.insert("per_zone".into(), serde_json::json!(zones));
        obj.insert("invalid".into(), serde_json::json!(named(&s.invalid)));
        let interfaces: Vec<serde_json::Value> = s
            .interfaces
            .iter()
            .map(|i| {
                let workers: Vec<serde_json::Value> = i
                    .workers
                    .iter()
                    .map(|w| {
                        serde_json::json!({
                            "worker": w.worker,
                            "received": w.received,
                            "processed": w.processed,
                            "invalid": w.invalid,
                            "kernel_drops": w.kernel_drops,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": i.name,
                    "zone": i.zone,
                    "state": i.state,
                    "last_error": i.last_error,
                    "workers": workers,
                })
            })
            .collect();
        obj.insert("interfaces".into(), serde_json::Value::Array(interfaces));
        ctx.out.json(&obj)?;
    }
    Ok(())
}

fn print_settings(ctx: &mut Ctx, s: &pb::Settings) -> std::io::Result<()> {
    if ctx.table() {
        let pairs = [
            ("max_conns".to_owned(), limit_text(Some(s.max_conns))),
            (
                "sweep_interval".to_owned(),
                human(Duration::from_millis(s.sweep_interval_ms)),
            ),
            (
                "tcp_seq_check".to_owned(),
                if s.tcp_seq_check { "on" } else { "off" }.to_owned(),
            ),
        ];
        ctx.out.text(&format::key_values(&pairs))
    } else {
        ctx.out.json(&serde_json::json!({
            "max_conns": s.max_conns,
            "sweep_interval_ms": s.sweep_interval_ms,
            "tcp_seq_check": s.tcp_seq_check,
        }))
    }
}

async fn config(ctx: &mut Ctx, channel: Channel, command: ConfigCommand) -> Result<(), Failure> {
    let mut client = SystemClient::new(channel);
    match command {
        ConfigCommand::Get { toml: true } => {
            let r = ctx.call(client.get_config(pb::GetConfigRequest {})).await?;
            ctx.out.text(&r.toml)?;
            if !r.toml.ends_with('\n') {
                ctx.out.text("\n")?;
            }
        }
        ConfigCommand::Get { toml: false } => {
            let s = ctx
                .call(client.get_settings(pb::GetSettingsRequest {}))
                .await?;
            print_settings(ctx, &s)?;
        }
        ConfigCommand::Set {
            max_conns,
            sweep_interval,
            tcp_seq_check,
        } => {
            let request = pb::UpdateSettingsRequest {
                max_conns,
                sweep_interval_ms: sweep_interval
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                tcp_seq_check,
            };
            let s = ctx.call(client.update_settings(request)).await?;
            print_settings(ctx, &s)?;
        }
    }
    Ok(())
}

async fn health(ctx: &mut Ctx, channel: Channel, service: String) -> Result<(), Failure> {
    let mut client = HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest {
        service: service.clone(),
    };
    let r = ctx.call(client.check(request)).await?;
    let status = ServingStatus::try_from(r.status).unwrap_or(ServingStatus::Unknown);
    let name = status.as_str_name();
    if ctx.table() {
        ctx.out.line(name)?;
    } else {
        ctx.out
            .json(&serde_json::json!({ "service": service, "status": name }))?;
    }
    if status == ServingStatus::Serving {
        Ok(())
    } else {
        let what = if service.is_empty() {
            "ctrackd".to_owned()
        } else {
            format!("service {service}")
        };
        Err(Failure::Failed(format!("{what} is {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn target(args: &[&str]) -> Result<pb::flush_request::Target, Failure> {
        let cli = Cli::try_parse_from(args).unwrap();
        match &cli.command {
            Command::Flush(a) => Ok(flush_target(a)),
            Command::FlushTuple(a) => flush_tuple_target(a),
            _ => unreachable!(),
        }
    }

    #[test]
    fn flush_targets() {
        use pb::flush_request::Target;
        assert_eq!(target(&["c", "flush", "--all"]).unwrap(), Target::All(true));
        assert_eq!(
            target(&["c", "flush", "--zone", "7"]).unwrap(),
            Target::Zone(7)
        );
        let Target::Filter(f) = target(&["c", "flush", "--zone", "7", "--proto", "udp"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((f.zone, f.protocol), (Some(7), Some(17)));
        assert!(Cli::try_parse_from(["c", "flush"]).is_err());
        assert!(Cli::try_parse_from(["c", "flush", "--all", "--zone", "1"]).is_err());
    }

    #[test]
    fn flush_tuple_targets() {
        use pb::flush_request::Target;
        let Target::Tuple(k) = target(&[
            "c",
            "flush-tuple",
            "--proto",
            "icmp",
            "--src",
            "10.0.0.1",
            "--dst",
            "10.0.0.2",
            "--icmp-id",
            "7",
        ])
        .unwrap() else {
            panic!()
        };
        let t = k.tuple.unwrap();
        assert_eq!((t.src_port, t.dst_port, t.icmp_type), (7, 7, 8));
        let Target::Tuple(k) = target(&[
            "c",
            "flush-tuple",
            "--zone",
            "3",
            "--proto",
            "tcp",
            "--src",
            "fd00::1",
            "--dst",
            "fd00::2",
            "--sport",
            "1000",
            "--dport",
            "80",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!((k.zone, k.protocol), (3, 6));
        for bad in [
            &[
                "c",
                "flush-tuple",
                "--proto",
                "tcp",
                "--src",
                "10.0.0.1",
                "--dst",
                "10.0.0.2",
            ][..],
            &[
                "c",
                "flush-tuple",
                "--proto",
                "udp",
                "--src",
                "10.0.0.1",
                "--dst",
                "fd00::2",
                "--sport",
                "1",
                "--dport",
                "2",
            ],
            &[
                "c",
                "flush-tuple",
                "--proto",
                "icmp",
                "--src",
                "10.0.0.1",
                "--dst",
                "10.0.0.2",
            ],
        ] {
            assert!(
                matches!(target(bad), Err(Failure::Usage(_))),
                "{bad:?} accepted"
            );
        }
    }
}
