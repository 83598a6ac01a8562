//! The `Policies` service: timeout policies and zone bindings.

use std::sync::Arc;

use ctrack_core::PolicyId;
use ctrack_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::{Api, convert, engine_error};

/// Implements `ctrack.v1.Policies`.
#[derive(Debug, Clone)]
pub struct PoliciesService {
    api: Arc<Api>,
}

impl PoliciesService {
    /// The service over `api`.
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }
}

#[tonic::async_trait]
impl pb::policies_server::Policies for PoliciesService {
    async fn set_policy(
        &self,
        request: Request<pb::SetPolicyRequest>,
    ) -> Result<Response<pb::SetPolicyResponse>, Status> {
        let (id, policy) = convert::policy_from("policy", request.into_inner().policy)?;
        self.api.tracker.set_policy(id, policy);
        Ok(Response::new(pb::SetPolicyResponse {
            policy: Some(convert::policy_to(id, &policy)),
        }))
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        let id = PolicyId(request.into_inner().id);
        let policy = self.api.tracker.policy(id).ok_or_else(|| {
            Status::not_found(format!("id: timeout policy {} does not exist", id.0))
        })?;
        Ok(Response::new(pb::GetPolicyResponse {
            policy: Some(convert::policy_to(id, &policy)),
        }))
    }

    async fn list_policies(
        &self,
        _request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        let tracker = &self.api.tracker;
        let policies = tracker
            .policies()
            .iter()
            .map(|(id, p)| convert::policy_to(*id, p))
            .collect();
        let bindings = tracker
            .zone_policies()
            .into_iter()
            .map(|(zone, id)| pb::ZoneBinding {
                zone: u32::from(zone),
                policy_id: id.0,
            })
            .collect();
        Ok(Response::new(pb::ListPoliciesResponse {
            policies,
            bindings,
        }))
    }

    async fn delete_policy(
        &self,
        request: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        self.api
            .tracker
            .delete_policy(PolicyId(request.into_inner().id))
            .map_err(engine_error)?;
        Ok(Response::new(pb::DeletePolicyResponse {}))
    }

    async fn bind_zone(
        &self,
        request: Request<pb::BindZoneRequest>,
    ) -> Result<Response<pb::BindZoneResponse>, Status> {
        let req = request.into_inner();
        let zone = convert::zone("zone", req.zone)?;
        self.api
            .tracker
            .bind_zone_policy(zone, PolicyId(req.policy_id))
            .map_err(engine_error)?;
        Ok(Response::new(pb::BindZoneResponse {}))
    }

    async fn unbind_zone(
        &self,
        request: Request<pb::UnbindZoneRequest>,
    ) -> Result<Response<pb::UnbindZoneResponse>, Status> {
        let zone = convert::zone("zone", request.into_inner().zone)?;
        self.api
            .tracker
            .unbind_zone_policy(zone)
            .map_err(engine_error)?;
        Ok(Response::new(pb::UnbindZoneResponse {}))
    }
}
