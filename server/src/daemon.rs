//! `ctrackd` itself: builds the engine from the configuration, then runs the sweeper, the
//! capture workers, the event hub, the gRPC API and the metrics endpoint until shutdown.
//!
//! Shutdown (SIGTERM/SIGINT, or the future the caller passes): health turns NOT_SERVING,
//! capture stops, the gRPC server stops accepting and ends its streams, then the sweeper and
//! the hub stop; all of it bounded by `shutdown_grace` (default 5 s).

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ctrack_core::{PolicyId, ProcessOptions, Tracker};
use ctrack_proto::v1 as pb;
use tokio::sync::{oneshot, watch};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::{Config, Listen};
use crate::events::EventHub;
use crate::grpc::{self, Api, CaptureView, NoCapture, RequestCounters};
use crate::metrics::{self, MetricsSources};
use crate::preload::{PreloadError, preload};
use crate::sweeper::Sweeper;

/// Live capture as the daemon drives it (implemented by the capture module).
pub trait LiveCapture: CaptureView {
    /// Workers currently receiving packets.
    fn running_workers(&self) -> usize;
    /// Stops every worker and waits for them.
    fn stop(&self);
}

/// Starts capture once the engine exists.
pub type StartCapture =
    Box<dyn FnOnce(Arc<Tracker>, Clock) -> Result<Arc<dyn LiveCapture>, DaemonError> + Send>;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A setting was refused by the engine.
    #[error("configuration: {0}")]
    Engine(#[from] ctrack_core::Error),
    /// The preload file could not be used.
    #[error("--preload: {0}")]
    Preload(#[from] PreloadError),
    /// A TLS file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    TlsFile {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A socket could not be opened.
    #[error("cannot listen on {what} {addr}: {source}")]
    Listen {
        /// Which endpoint.
        what: &'static str,
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Capture could not start.
    #[error("capture: {0}")]
    Capture(String),
    /// The gRPC server failed.
    #[error("{0}")]
    Serve(#[from] grpc::ServeError),
    /// A task of the daemon panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
    /// A thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// Builds the engine the configuration describes.
pub fn build_tracker(config: &Config) -> Result<Tracker, DaemonError> {
    let c = &config.conntrack;
    let tracker = Tracker::new(ctrack_core::Config {
        // A secret per process: nobody can aim packets at one hash chain.
        hash_seed: RandomState::new().hash_one(std::process::id()),
        max_conns: c.max_conns,
        sweep_interval: c.sweep_interval,
        tcp_seq_check: c.tcp_seq_check,
        event_capacity: c.event_capacity,
    });
    for (zone, limit) in &c.zone_limits {
        tracker.set_zone_limit(*zone, *limit);
    }
    if let Some(limit) = c.default_zone_limit {
        tracker.set_default_zone_limit(limit);
    }
    for (id, policy) in &config.policies {
        tracker.set_policy(PolicyId(*id), *policy);
    }
    for (zone, id) in &config.zone_policies {
        tracker.bind_zone_policy(*zone, PolicyId(*id))?;
    }
    Ok(tracker)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, DaemonError> {
    std::fs::read(path).map_err(|source| DaemonError::TlsFile {
        what,
        path: path.into(),
        source,
    })
}

fn tls(config: &Config) -> Result<Option<grpc::Tls>, DaemonError> {
    let Some(files) = &config.grpc.tls else {
        return Ok(None);
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        read("certificate", &files.cert)?,
        read("key", &files.key)?,
    ));
    let mut admins = None;
    if let Some(ca) = &files.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read("client CA", ca)?));
        admins = Some(config.grpc.admin_identities.clone());
    }
    Ok(Some(grpc::Tls {
        config: tls,
        admins,
    }))
}

async fn bind_grpc(listen: &Listen) -> Result<grpc::Listener, DaemonError> {
    let err = |source| DaemonError::Listen {
        what: "gRPC",
        addr: listen.to_string(),
        source,
    };
    match listen {
        Listen::Tcp(addr) => Ok(grpc::Listener::Tcp(
            tokio::net::TcpListener::bind(addr).await.map_err(err)?,
        )),
        Listen::Unix(path) => {
            // A socket file left by a daemon that died is removed; a live one is an error.
            if path.exists() {
                if tokio::net::UnixStream::connect(path).await.is_ok() {
                    return Err(err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "another process is serving on this socket",
                    )));
                }
                std::fs::remove_file(path).map_err(err)?;
            }
            Ok(grpc::Listener::Unix(
                tokio::net::UnixListener::bind(path).map_err(err)?,
            ))
        }
    }
}

/// The health service name that is SERVING for as long as the process runs (liveness), while
/// `""` and the API's services follow capture (readiness).
pub const LIVENESS_SERVICE: &str = "liveness";

async fn set_health(reporter: &tonic_health::server::HealthReporter, serving: bool) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    for name in grpc::SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

/// Runs the daemon until `shutdown` completes. `start_capture` is `None` when nothing is to
/// be captured (a preloaded table served on its own).
pub async fn run(
    config: Config,
    start_capture: Option<StartCapture>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    let clock = Clock::start();
    let tracker = Arc::new(build_tracker(&config)?);
    if let Some(path) = config.preload.clone() {
        let (t, opts) = (
            Arc::clone(&tracker),
            ProcessOptions {
                verify_checksums: config.capture.verify_checksums,
                ..ProcessOptions::default()
            },
        );
        let now = clock.now();
        let zone = config.capture.interfaces.first().map_or(0, |i| i.zone);
        let report = tokio::task::spawn_blocking(move || preload(&t, &path, &opts, zone, now))
            .await
            .map_err(|e| DaemonError::Task(format!("preload: {e}")))??;
        info!(
            packets = report.packets,
            connections = tracker.connection_count(),
            "preloaded"
        );
    }
    let sweeper =
        Sweeper::start(Arc::clone(&tracker), clock).map_err(|source| DaemonError::Thread {
            what: "sweeper",
            source,
        })?;
    let hub = Arc::new(EventHub::new(
        Arc::clone(&tracker),
        config.conntrack.event_capacity.min(1 << 16),
    ));
    let (hub_stop, hub_rx) = watch::channel(false);
    let hub_task = tokio::spawn(Arc::clone(&hub).run(hub_rx));

    let capture = match start_capture {
        Some(start) => Some(start(Arc::clone(&tracker), clock)?),
        None => None,
    };
    let view: Arc<dyn CaptureView> = match &capture {
        Some(c) => Arc::clone(c) as Arc<dyn CaptureView>,
        None => Arc::new(NoCapture),
    };

    let grpc_listener = bind_grpc(&config.grpc.listen).await?;
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| DaemonError::Listen {
                    what: "metrics",
                    addr: addr.to_string(),
                    source,
                })?,
        ),
        None => None,
    };

    let requests = Arc::new(RequestCounters::default());
    let kick = {
        let control = sweeper.kicker();
        Arc::new(move || control.kick()) as Arc<dyn Fn() + Send + Sync>
    };
    let rendered = config.clone();
    let api = Arc::new(Api {
        tracker: Arc::clone(&tracker),
        clock,
        hub,
        capture: Arc::clone(&view),
        config_toml: Arc::new(move |s: &pb::Settings| {
            let mut c = rendered.clone();
            c.conntrack.max_conns = s.max_conns;
            c.conntrack.sweep_interval = Duration::from_millis(s.sweep_interval_ms);
            c.conntrack.tcp_seq_check = s.tcp_seq_check;
            c.render_toml()
        }),
        kick_sweeper: kick,
        requests: Arc::clone(&requests),
    });
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, false).await;
    reporter
        .set_service_status(LIVENESS_SERVICE, tonic_health::ServingStatus::Serving)
        .await;
    let (health_only_stop, health_only_stopped) = oneshot::channel::<()>();
    if let Some(addr) = config.health.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| DaemonError::Listen {
                what: "health",
                addr: addr.to_string(),
                source,
            })?;
        info!(listen = %addr, "plaintext health endpoint up");
        tokio::spawn(grpc::serve_health_only(listener, health.clone(), async {
            let _ = health_only_stopped.await;
        }));
    }
    let limits = grpc::Limits {
        request_timeout: config.grpc.request_timeout,
        max_concurrent_requests: config.grpc.max_concurrent_requests,
        max_message_bytes: config.grpc.max_message_bytes,
        keepalive: config.grpc.keepalive_interval,
    };
    let (grpc_stop, grpc_stopped) = oneshot::channel::<()>();
    let tls = tls(&config)?;
    let server = tokio::spawn(grpc::serve(
        grpc_listener,
        api,
        health,
        limits,
        tls,
        async {
            let _ = grpc_stopped.await;
        },
    ));
    info!(listen = %config.grpc.listen, "gRPC API up");

    let (metrics_stop, metrics_stopped) = oneshot::channel::<()>();
    if let Some(listener) = metrics_listener {
        let sources = MetricsSources {
            tracker: Arc::clone(&tracker),
            capture: view,
            sweep: sweeper.metrics(),
            requests,
        };
        info!(listen = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()), "metrics up");
        tokio::spawn(metrics::serve(listener, sources, async {
            let _ = metrics_stopped.await;
        }));
    }

    // Health: SERVING while capture workers run (or at once when nothing is captured).
    let (health_stop, mut health_stopped) = watch::channel(false);
    let health_capture = capture.clone();
    let health_reporter = reporter.clone();
    let health_task = tokio::spawn(async move {
        let mut last = None;
        loop {
            let serving = health_capture
                .as_ref()
                .is_none_or(|c| c.running_workers() > 0);
            if last != Some(serving) {
                set_health(&health_reporter, serving).await;
                last = Some(serving);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = health_stopped.changed() => return,
            }
        }
    });

    tokio::pin!(server);
    let outcome = tokio::select! {
        () = shutdown => Ok(()),
        result = &mut server => result.map_err(|e| DaemonError::Task(format!("gRPC server: {e}")))?.map_err(DaemonError::from),
    };
    info!("shutting down");
    let _ = health_stop.send(true);
    let _ = health_task.await;
    set_health(&reporter, false).await;
    let grace = config.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    if let Some(c) = capture {
        let stopping = tokio::task::spawn_blocking(move || c.stop());
        if tokio::time::timeout_at(deadline, stopping).await.is_err() {
            warn!("capture did not stop within {grace:?}");
        }
    }
    // Open streams end first (the hub tells them), then the server stops.
    let _ = hub_stop.send(true);
    let _ = hub_task.await;
    let _ = grpc_stop.send(());
    let _ = metrics_stop.send(());
    let _ = health_only_stop.send(());
    if outcome.is_ok()
        && tokio::time::timeout_at(deadline, &mut server)
            .await
            .is_err()
    {
        warn!("gRPC connections did not close within {grace:?}; exiting anyway");
    }
    sweeper.stop();
    if let Listen::Unix(path) = &config.grpc.listen {
        let _ = std::fs::remove_file(path);
    }
    outcome
}
