//! The daemon's clock: the only place that turns wall time into engine [`Tick`]s.
//!
//! Ticks are milliseconds on a monotonic clock whose origin lies [`Clock::PAST_MS`] before the
//! daemon started. The head start lets `--preload` place a capture's packets in the past (its
//! last packet at "now", the earlier ones before it) however long the capture is.

use std::time::{Duration, Instant};

use ctrack_core::Tick;

/// A monotonic millisecond clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// How far the origin lies before the start: about 34 years of room for preloaded captures.
    pub const PAST_MS: u64 = 1 << 40;

    /// A clock started now.
    pub fn start() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// The current tick.
    pub fn now(&self) -> Tick {
        Tick::from_millis(Self::PAST_MS).saturating_add(self.epoch.elapsed())
    }

    /// Milliseconds from the clock's start to `tick` (0 for ticks before the start).
    pub fn since_start(&self, tick: Tick) -> u64 {
        tick.as_millis().saturating_sub(Self::PAST_MS)
    }

    /// The instant a tick corresponds to (for sleeping until a deadline).
    pub fn instant(&self, tick: Tick) -> Instant {
        self.epoch + Duration::from_millis(self.since_start(tick))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_start_in_the_future_of_zero() {
        let c = Clock::start();
        let now = c.now();
        assert!(now.as_millis() >= Clock::PAST_MS);
        assert!(c.since_start(now) < 1000);
        assert_eq!(c.since_start(Tick::ZERO), 0);
        assert!(c.instant(now) >= c.epoch);
    }
}
