//! The daemon's clock: the only place that turns wall time into engine [`Tick`]s.
//!
//! Ticks are milliseconds since the clock was started (monotonic, never goes back).

use std::time::{Duration, Instant};

use ctrack_core::Tick;

/// A monotonic millisecond clock starting at the daemon's start.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// The current tick.
    pub fn now(&self) -> Tick {
        Tick::ZERO.saturating_add(self.epoch.elapsed())
    }

    /// The instant a tick corresponds to (for sleeping until a deadline).
    pub fn instant(&self, tick: Tick) -> Instant {
        self.epoch + Duration::from_millis(tick.as_millis())
    }
}
