//! The `Limits` service: per-zone and default connection limits.

use std::sync::Arc;

use ctrack_core::ZoneLimitInfo;
use ctrack_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{Api, convert, engine_error};

/// Implements `ctrack.v1.Limits`.
#[derive(Debug, Clone)]
pub struct LimitsService {
    api: Arc<Api>,
}

impl LimitsService {
    /// The service over `api`.
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }
}

fn status(i: ZoneLimitInfo) -> pb::ZoneLimitStatus {
    pb::ZoneLimitStatus {
        zone: u32::from(i.zone),
        explicit_limit: i.explicit,
        limit: i.limit,
        count: i.count,
        connections: i.connections,
    }
}

#[tonic::async_trait]
impl pb::limits_server::Limits for LimitsService {
    async fn set_zone_limits(
        &self,
        request: Request<pb::SetZoneLimitsRequest>,
    ) -> Result<Response<pb::SetZoneLimitsResponse>, Status> {
        let req = request.into_inner();
        let mut limits = Vec::with_capacity(req.limits.len());
        for (i, l) in req.limits.iter().enumerate() {
            limits.push((
                convert::zone(&format!("limits[{i}].zone"), l.zone)?,
                l.limit,
            ));
        }
        let tracker = &self.api.tracker;
        for (zone, limit) in limits {
            tracker.set_zone_limit(zone, limit);
        }
        if let Some(d) = req.default_limit {
            tracker.set_default_zone_limit(d);
        }
        Ok(Response::new(pb::SetZoneLimitsResponse {}))
    }

    async fn get_zone_limits(
        &self,
        request: Request<pb::GetZoneLimitsRequest>,
    ) -> Result<Response<pb::GetZoneLimitsResponse>, Status> {
        let req = request.into_inner();
        let tracker = &self.api.tracker;
        let zones = if req.zones.is_empty() {
            tracker.zone_limits().into_iter().map(status).collect()
        } else {
            let mut out = Vec::with_capacity(req.zones.len());
            for (i, z) in req.zones.iter().enumerate() {
                out.push(status(
                    tracker.zone_limit(convert::zone(&format!("zones[{i}]"), *z)?),
                ));
            }
            out
        };
        Ok(Response::new(pb::GetZoneLimitsResponse {
            zones,
            default_limit: tracker.default_zone_limit(),
        }))
    }

    async fn delete_zone_limits(
        &self,
        request: Request<pb::DeleteZoneLimitsRequest>,
    ) -> Result<Response<pb::DeleteZoneLimitsResponse>, Status> {
        let req = request.into_inner();
        let tracker = &self.api.tracker;
        let mut zones = Vec::with_capacity(req.zones.len());
        for (i, z) in req.zones.iter().enumerate() {
            let zone = convert::zone(&format!("zones[{i}]"), *z)?;
            if tracker.zone_limit(zone).explicit.is_none() {
                return Err(Status::not_found(format!(
                    "zones[{i}]: zone {zone} has no connection limit"
                )));
            }
            zones.push(zone);
        }
        if req.default_limit && tracker.default_zone_limit().is_none() {
            return Err(Status::not_found(
                "default_limit: no default zone limit is set",
            ));
        }
        for zone in zones {
            tracker.delete_zone_limit(zone).map_err(engine_error)?;
        }
        if req.default_limit {
            tracker.delete_default_zone_limit().map_err(engine_error)?;
        }
        Ok(Response::new(pb::DeleteZoneLimitsResponse {}))
    }
}
