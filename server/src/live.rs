//! Which interfaces to capture, decided from the configuration, and the capture module seen
//! through the daemon's `LiveCapture` trait.
//!
//! * Interfaces listed in the configuration are captured.
//! * None listed and a `--preload` file given: nothing is captured; the preloaded table is
//!   served on its own (a demo, or an offline inspection, without root).
//! * None listed and no preload: every interface that is up and not a loopback is captured,
//!   in zone 0.

use std::sync::Arc;

use ctrack_proto::v1 as pb;

use crate::capture::{Capture, CaptureConfig, CaptureError, InterfaceSpec, default_interfaces};
use crate::config::Config;
use crate::daemon::{DaemonError, LiveCapture, StartCapture};
use crate::grpc::CaptureView;

/// Why capture cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No interface was named and none is up apart from loopback.
    #[error(
        "no interface to capture on: none is up apart from loopback; name one with \
         --interface NAME, or serve a capture file with --preload FILE.pcap"
    )]
    NoInterfaces,
}

/// The capture to start, if any.
pub fn plan(config: &Config) -> Result<Option<StartCapture>, PlanError> {
    let interfaces: Vec<InterfaceSpec> = if !config.capture.interfaces.is_empty() {
        config
            .capture
            .interfaces
            .iter()
            .map(|i| InterfaceSpec {
                name: i.name.clone(),
                zone: i.zone,
                vlan_zones: i.vlan_zones.clone(),
            })
            .collect()
    } else if config.preload.is_some() {
        return Ok(None);
    } else {
        let names = default_interfaces();
        if names.is_empty() {
            return Err(PlanError::NoInterfaces);
        }
        names
            .into_iter()
            .map(|name| InterfaceSpec::new(name, 0))
            .collect()
    };
    let c = &config.capture;
    let cfg = CaptureConfig {
        interfaces,
        workers: c.workers,
        rcvbuf_bytes: c.rcvbuf_bytes,
        verify_checksums: c.verify_checksums,
        commit: true,
        batch: c.batch,
        snaplen: c.snaplen,
    };
    Ok(Some(Box::new(move |tracker, clock| {
        match Capture::start(cfg, tracker, clock) {
            Ok(capture) => Ok(Arc::new(Live(capture)) as Arc<dyn LiveCapture>),
            Err(e @ CaptureError::PermissionDenied { .. }) => Err(DaemonError::Capture(format!(
                "{e}; to try ctrack without root, serve a capture file: ctrackd --preload FILE.pcap"
            ))),
            Err(e) => Err(DaemonError::Capture(e.to_string())),
        }
    })))
}

struct Live(Capture);

impl CaptureView for Live {
    fn interfaces(&self) -> Vec<pb::InterfaceStats> {
        self.0
            .stats()
            .into_iter()
            .map(|i| pb::InterfaceStats {
                name: i.name,
                zone: u32::from(i.zone),
                state: i.state.name().to_owned(),
                last_error: i.state.last_error().unwrap_or_default().to_owned(),
                workers: i
                    .workers
                    .iter()
                    .map(|w| pb::WorkerStats {
                        worker: u32::try_from(w.worker).unwrap_or(u32::MAX),
                        received: w.received,
                        processed: w.processed,
                        invalid: w.invalid,
                        kernel_drops: w.kernel_drops,
                    })
                    .collect(),
            })
            .collect()
    }
}

impl LiveCapture for Live {
    fn running_workers(&self) -> usize {
        self.0.running_workers()
    }

    fn stop(&self) {
        self.0.shutdown();
    }
}
