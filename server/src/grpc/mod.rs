//! The gRPC API: the four `ctrack.v1` services, health and reflection, behind tower layers.
//!
//! Services translate and validate, then call the engine; they never decide anything the
//! engine decides. Every request is bounded: a per-request timeout (unary calls; a stream ends
//! when its client stops reading or cancels), a global concurrency limit with load shedding
//! (overload is `RESOURCE_EXHAUSTED` at once, never a queue), message size limits and HTTP/2
//! keepalive.

mod auth;
mod conntrack;
pub(crate) mod convert;
mod limits;
mod policies;
mod record;
mod system;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ctrack_core::Tracker;
use ctrack_proto::v1 as pb;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::Status;
use tonic::transport::Server;

use crate::clock::Clock;
use crate::events::EventHub;

pub use auth::AdminOnlyLayer;
pub use conntrack::ConnTrackService;
pub use limits::LimitsService;
pub use policies::PoliciesService;
pub use record::{RecordLayer, RequestCounters};
pub use system::SystemService;

/// Capture counters as the API reports them.
pub trait CaptureView: Send + Sync {
    /// Per-interface counters.
    fn interfaces(&self) -> Vec<pb::InterfaceStats>;
}

/// No capture (a preloaded table, or tests).
#[derive(Debug, Clone, Copy)]
pub struct NoCapture;

impl CaptureView for NoCapture {
    fn interfaces(&self) -> Vec<pb::InterfaceStats> {
        Vec::new()
    }
}

/// What the services share.
pub struct Api {
    /// The engine.
    pub tracker: Arc<Tracker>,
    /// The daemon clock.
    pub clock: Clock,
    /// Event fan-out for `Watch`.
    pub hub: Arc<EventHub>,
    /// Capture counters.
    pub capture: Arc<dyn CaptureView>,
    /// Renders the effective configuration with the current settings.
    pub config_toml: Arc<dyn Fn(&pb::Settings) -> String + Send + Sync>,
    /// Wakes the sweeper (after the sweep interval changed).
    pub kick_sweeper: Arc<dyn Fn() + Send + Sync>,
    /// Requests by method and status, for metrics.
    pub requests: Arc<RequestCounters>,
}

impl Api {
    /// An API over `tracker` alone: no capture, no sweeper to wake, and `GetConfig` showing only
    /// the run-time settings (embedding the engine, tests). Fields can be replaced afterwards.
    pub fn standalone(tracker: Arc<Tracker>, clock: Clock, hub: Arc<EventHub>) -> Self {
        Self {
            tracker,
            clock,
            hub,
            capture: Arc::new(NoCapture),
            config_toml: Arc::new(|s: &pb::Settings| {
                format!(
                    "max_conns = {}\nsweep_interval_ms = {}\ntcp_seq_check = {}\n",
                    s.max_conns, s.sweep_interval_ms, s.tcp_seq_check
                )
            }),
            kick_sweeper: Arc::new(|| {}),
            requests: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("tracker", &self.tracker)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Limits applied to every request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deadline of a unary call.
    pub request_timeout: Duration,
    /// Requests in progress at once, over all connections; more are refused at once.
    pub max_concurrent_requests: usize,
    /// Largest request or response message.
    pub max_message_bytes: usize,
    /// HTTP/2 keepalive ping interval.
    pub keepalive: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            max_concurrent_requests: 64,
            max_message_bytes: 4 << 20,
            keepalive: Duration::from_secs(30),
        }
    }
}

/// The status for an engine error.
pub(crate) fn engine_error(e: ctrack_core::Error) -> Status {
    use ctrack_core::Error as E;
    match e {
        E::InvalidArgument { .. } => Status::invalid_argument(e.to_string()),
        E::ConnectionNotFound { .. }
        | E::PolicyNotFound(_)
        | E::ZoneNotBound(_)
        | E::ZoneLimitNotFound(_)
        | E::DefaultLimitNotSet => Status::not_found(e.to_string()),
    }
}

/// Every gRPC service name the server registers (health reports on each).
pub const SERVICE_NAMES: [&str; 4] = [
    "ctrack.v1.ConnTrack",
    "ctrack.v1.Limits",
    "ctrack.v1.Policies",
    "ctrack.v1.System",
];

/// Serves the API on `listener` until `shutdown` completes. `health` comes from
/// `tonic_health::server::health_reporter()`; the caller keeps the reporter and marks the
/// services SERVING once capture runs.
pub async fn serve<H: tonic_health::pb::health_server::Health>(
    listener: impl Into<Listener>,
    api: Arc<Api>,
    health: tonic_health::pb::health_server::HealthServer<H>,
    limits: Limits,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let listener = listener.into();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ctrack_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ctrack_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let max = limits.max_message_bytes;
    let record = RecordLayer::new(Arc::clone(&api.requests));
    let conntrack =
        pb::conn_track_server::ConnTrackServer::new(ConnTrackService::new(Arc::clone(&api)))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
    let limits_svc = pb::limits_server::LimitsServer::new(LimitsService::new(Arc::clone(&api)))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let policies = pb::policies_server::PoliciesServer::new(PoliciesService::new(Arc::clone(&api)))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let system = pb::system_server::SystemServer::new(SystemService::new(api))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let mut builder = Server::builder();
    let mut admin = None;
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.config)?;
        admin = tls.admins.map(AdminOnlyLayer::new);
    }
    let router = builder
        .timeout(limits.request_timeout)
        .load_shed(true)
        .concurrency_limit_per_connection(limits.max_concurrent_requests)
        .layer(
            tower::ServiceBuilder::new()
                .layer(record)
                .option_layer(admin)
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    limits.max_concurrent_requests,
                )),
        )
        .http2_keepalive_interval(Some(limits.keepalive))
        .http2_keepalive_timeout(Some(limits.keepalive))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(conntrack)
        .add_service(limits_svc)
        .add_service(policies)
        .add_service(system);
    match listener {
        Listener::Tcp(l) => {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(l), shutdown)
                .await?
        }
        Listener::Unix(l) => {
            router
                .serve_with_incoming_shutdown(UnixListenerStream::new(l), shutdown)
                .await?
        }
    }
    Ok(())
}

/// Serves `grpc.health.v1` alone, in plaintext, on `listener` until `shutdown` completes: for
/// kubelet gRPC probes when the API itself requires mutual TLS. Health status is not secret.
pub async fn serve_health_only<H: tonic_health::pb::health_server::Health>(
    listener: TcpListener,
    health: tonic_health::pb::health_server::HealthServer<H>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    Server::builder()
        .timeout(Duration::from_secs(5))
        .concurrency_limit_per_connection(8)
        .load_shed(true)
        .add_service(health)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

/// Where the API listens.
#[derive(Debug)]
pub enum Listener {
    /// A TCP socket.
    Tcp(TcpListener),
    /// A Unix-domain socket (never TLS: access is governed by the socket file's permissions).
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Self::Tcp(l)
    }
}

/// TLS for the gRPC server.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Certificate, key and (for mutual TLS) the client CA.
    pub config: tonic::transport::ServerTlsConfig,
    /// With mutual TLS: the client identities (certificate DNS names) allowed to call
    /// mutating RPCs. `None` without client authentication.
    pub admins: Option<Vec<String>>,
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The transport failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be built from the descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}
