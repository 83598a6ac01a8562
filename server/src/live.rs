//! Which interfaces to capture, decided from the configuration.
//!
//! * Interfaces listed in the configuration are captured.
//! * None listed and a `--preload` file given: nothing is captured; the preloaded table is
//!   served on its own (a demo or an offline inspection).
//! * None listed and no preload: every interface that is up and not a loopback is captured.

use crate::config::Config;
use crate::daemon::StartCapture;

/// Why capture cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Live capture is not part of this build yet.
    #[error(
        "live capture is not available in this build yet; serve a capture file with \
         `ctrackd --preload FILE.pcap` instead"
    )]
    Unavailable,
}

/// The capture to start, if any.
pub fn plan(config: &Config) -> Result<Option<StartCapture>, PlanError> {
    if config.capture.interfaces.is_empty() && config.preload.is_some() {
        return Ok(None);
    }
    Err(PlanError::Unavailable)
}
