//! The `System` service: statistics, run-time settings and the effective configuration.

use std::sync::Arc;
use std::time::Duration;

use ctrack_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{Api, convert, engine_error};

/// Longest accepted sweep interval: one day.
const MAX_SWEEP_INTERVAL_MS: u64 = 86_400_000;

/// Implements `ctrack.v1.System`.
#[derive(Debug, Clone)]
pub struct SystemService {
    api: Arc<Api>,
}

impl SystemService {
    /// The service over `api`.
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    fn settings(&self) -> pb::Settings {
        let t = &self.api.tracker;
        pb::Settings {
            max_conns: t.max_conns(),
            sweep_interval_ms: u64::try_from(t.sweep_interval().as_millis()).unwrap_or(u64::MAX),
            tcp_seq_check: t.tcp_seq_check(),
        }
    }
}

fn named<T: Copy>(items: &[(T, u64)], name: impl Fn(T) -> &'static str) -> Vec<pb::NamedCount> {
    items
        .iter()
        .map(|(k, n)| pb::NamedCount {
            name: name(*k).to_owned(),
            count: *n,
        })
        .collect()
}

#[tonic::async_trait]
impl pb::system_server::System for SystemService {
    async fn get_stats(
        &self,
        _request: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::GetStatsResponse>, Status> {
        let s = self.api.tracker.stats();
        Ok(Response::new(pb::GetStatsResponse {
            connections: s.connections,
            per_protocol: named(&s.per_proto, |p| p.name()),
            per_zone: s
                .per_zone
                .iter()
                .map(|(z, n)| pb::ZoneCount {
                    zone: u32::from(*z),
                    count: *n,
                })
                .collect(),
            invalid: named(&s.invalid, |r| r.name()),
            created: s.created,
            zone_limit_hits: s.zone_limit_hits,
            global_limit_hits: s.global_limit_hits,
            seq_check_bypassed: s.seq_check_bypassed,
            seq_check_failed: s.seq_check_failed,
            related: s.related,
            port_reuse: s.port_reuse,
            forced: s.forced,
            sweeps: s.sweeps,
            scanned: s.scanned,
            expired: s.expired,
            flushed: s.flushed,
            events_dropped: s.events_dropped,
            interfaces: self.api.capture.interfaces(),
        }))
    }

    async fn get_settings(
        &self,
        _request: Request<pb::GetSettingsRequest>,
    ) -> Result<Response<pb::Settings>, Status> {
        Ok(Response::new(self.settings()))
    }

    async fn update_settings(
        &self,
        request: Request<pb::UpdateSettingsRequest>,
    ) -> Result<Response<pb::Settings>, Status> {
        let req = request.into_inner();
        if let Some(ms) = req
            .sweep_interval_ms
            .filter(|ms| *ms == 0 || *ms > MAX_SWEEP_INTERVAL_MS)
        {
            return Err(convert::invalid(
                "sweep_interval_ms",
                format!("{ms} is out of range (1..={MAX_SWEEP_INTERVAL_MS})"),
            ));
        }
        let t = &self.api.tracker;
        if let Some(ms) = req.sweep_interval_ms {
            t.set_sweep_interval(Duration::from_millis(ms))
                .map_err(engine_error)?;
            (self.api.kick_sweeper)();
        }
        if let Some(max) = req.max_conns {
            t.set_max_conns(max);
        }
        if let Some(on) = req.tcp_seq_check {
            t.set_tcp_seq_check(on);
        }
        Ok(Response::new(self.settings()))
    }

    async fn get_config(
        &self,
        _request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        Ok(Response::new(pb::GetConfigResponse {
            toml: (self.api.config_toml)(&self.settings()),
        }))
    }
}
