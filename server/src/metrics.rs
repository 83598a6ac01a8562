//! Prometheus metrics: the text exposition format over a minimal HTTP/1.1 endpoint.
//!
//! `GET /metrics` returns every engine, sweeper, capture and gRPC figure; any other path is a
//! 404. Each connection serves one request and is closed (scrapers reconnect cheaply); a
//! request must arrive within 5 s and its head fit in 8 KiB.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ctrack_core::Tracker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::grpc::{CaptureView, RequestCounters};
use crate::sweeper::SweepMetrics;

/// Everything the metrics page reads.
#[derive(Clone)]
pub struct MetricsSources {
    /// The engine.
    pub tracker: Arc<Tracker>,
    /// Capture counters.
    pub capture: Arc<dyn CaptureView>,
    /// Sweeper timings.
    pub sweep: Arc<SweepMetrics>,
    /// gRPC requests by method and status.
    pub requests: Arc<RequestCounters>,
}

impl std::fmt::Debug for MetricsSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSources").finish_non_exhaustive()
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics page.
pub fn render(src: &MetricsSources) -> String {
    let s = src.tracker.stats();
    let mut o = String::with_capacity(8192);
    family(
        &mut o,
        "ctrack_connections",
        "gauge",
        "Connections in the table (expired ones not yet swept included).",
    );
    let _ = writeln!(o, "ctrack_connections {}", s.connections);
    family(
        &mut o,
        "ctrack_zone_connections",
        "gauge",
        "Connections per zone.",
    );
    for (zone, n) in &s.per_zone {
        let _ = writeln!(o, "ctrack_zone_connections{{zone=\"{zone}\"}} {n}");
    }
    family(
        &mut o,
        "ctrack_protocol_connections",
        "gauge",
        "Connections per protocol.",
    );
    for (p, n) in &s.per_proto {
        let _ = writeln!(
            o,
            "ctrack_protocol_connections{{protocol=\"{}\"}} {n}",
            p.name()
        );
    }
    family(
        &mut o,
        "ctrack_connections_created_total",
        "counter",
        "Connections created.",
    );
    let _ = writeln!(o, "ctrack_connections_created_total {}", s.created);
    family(
        &mut o,
        "ctrack_invalid_packets_total",
        "counter",
        "Packets marked invalid, by reason.",
    );
    for (r, n) in &s.invalid {
        let _ = writeln!(
            o,
            "ctrack_invalid_packets_total{{reason=\"{}\"}} {n}",
            r.name()
        );
    }
    family(
        &mut o,
        "ctrack_limit_hits_total",
        "counter",
        "New connections refused by a limit.",
    );
    let _ = writeln!(
        o,
        "ctrack_limit_hits_total{{limit=\"zone\"}} {}",
        s.zone_limit_hits
    );
    let _ = writeln!(
        o,
        "ctrack_limit_hits_total{{limit=\"global\"}} {}",
        s.global_limit_hits
    );
    family(
        &mut o,
        "ctrack_tcp_seq_check_total",
        "counter",
        "TCP window-check outcomes that matter.",
    );
    let _ = writeln!(
        o,
        "ctrack_tcp_seq_check_total{{outcome=\"failed\"}} {}",
        s.seq_check_failed
    );
    let _ = writeln!(
        o,
        "ctrack_tcp_seq_check_total{{outcome=\"bypassed\"}} {}",
        s.seq_check_bypassed
    );
    family(
        &mut o,
        "ctrack_connections_removed_total",
        "counter",
        "Connections removed, by cause.",
    );
    let _ = writeln!(
        o,
        "ctrack_connections_removed_total{{cause=\"expired\"}} {}",
        s.expired
    );
    let _ = writeln!(
        o,
        "ctrack_connections_removed_total{{cause=\"flushed\"}} {}",
        s.flushed
    );
    family(
        &mut o,
        "ctrack_connections_replaced_total",
        "counter",
        "Connections replaced, by cause.",
    );
    let _ = writeln!(
        o,
        "ctrack_connections_replaced_total{{cause=\"port_reuse\"}} {}",
        s.port_reuse
    );
    let _ = writeln!(
        o,
        "ctrack_connections_replaced_total{{cause=\"forced\"}} {}",
        s.forced
    );
    family(
        &mut o,
        "ctrack_sweeps_total",
        "counter",
        "Sweep passes run.",
    );
    let _ = writeln!(o, "ctrack_sweeps_total {}", s.sweeps);
    family(
        &mut o,
        "ctrack_sweep_scanned_total",
        "counter",
        "Connections the sweeper looked at.",
    );
    let _ = writeln!(o, "ctrack_sweep_scanned_total {}", s.scanned);
    family(
        &mut o,
        "ctrack_sweep_seconds_total",
        "counter",
        "Time spent sweeping.",
    );
    let busy = src.sweep.busy_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(o, "ctrack_sweep_seconds_total {busy}");
    family(
        &mut o,
        "ctrack_sweep_last_seconds",
        "gauge",
        "Duration of the last sweep pass.",
    );
    let last = src.sweep.last_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(o, "ctrack_sweep_last_seconds {last}");
    family(
        &mut o,
        "ctrack_events_lost_total",
        "counter",
        "Events the engine dropped (queue full).",
    );
    let _ = writeln!(o, "ctrack_events_lost_total {}", s.events_dropped);

    let interfaces = src.capture.interfaces();
    family(
        &mut o,
        "ctrack_capture_up",
        "gauge",
        "1 if the interface is being captured.",
    );
    for i in &interfaces {
        let _ = writeln!(
            o,
            "ctrack_capture_up{{interface=\"{}\"}} {}",
            label(&i.name),
            u8::from(i.state == "up")
        );
    }
    for (name, help, get) in [
        (
            "ctrack_capture_received_total",
            "Frames received.",
            (|w: &ctrack_proto::v1::WorkerStats| w.received) as fn(&_) -> u64,
        ),
        ("ctrack_capture_processed_total", "Frames tracked.", |w| {
            w.processed
        }),
        (
            "ctrack_capture_invalid_total",
            "Frames the tracker found invalid.",
            |w| w.invalid,
        ),
        (
            "ctrack_capture_kernel_drops_total",
            "Frames the kernel dropped.",
            |w| w.kernel_drops,
        ),
    ] {
        family(&mut o, name, "counter", help);
        for i in &interfaces {
            for w in &i.workers {
                let _ = writeln!(
                    o,
                    "{name}{{interface=\"{}\",worker=\"{}\"}} {}",
                    label(&i.name),
                    w.worker,
                    get(w)
                );
            }
        }
    }
    family(
        &mut o,
        "ctrack_grpc_requests_total",
        "counter",
        "gRPC requests, by method and status code.",
    );
    for ((method, code), n) in src.requests.snapshot() {
        let _ = writeln!(
            o,
            "ctrack_grpc_requests_total{{method=\"{}\",code=\"{code}\"}} {n}",
            label(&method)
        );
    }
    o
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    sources: MetricsSources,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let sources = sources.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), answer(stream, &sources)).await;
                });
            }
        }
    }
}

async fn answer(mut stream: TcpStream, sources: &MetricsSources) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (status, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", render(sources)),
        (b"GET", _) => (
            "404 Not Found",
            "not found: the metrics are at /metrics\n".to_owned(),
        ),
        _ => ("405 Method Not Allowed", "only GET is served\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
