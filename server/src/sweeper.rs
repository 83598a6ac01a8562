//! The sweeper: one OS thread that calls the engine's `sweep` when it asks to be called.
//!
//! The engine says when the next pass is due (200 ms after a pass that stopped at its budget,
//! the sweep interval after a full one); the thread sleeps until then, or until it is kicked
//! (the interval changed) or stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use ctrack_core::Tracker;

use crate::clock::Clock;

#[derive(Debug, Default)]
struct Control {
    stop: bool,
    kicked: bool,
}

/// Figures the metrics export.
#[derive(Debug, Default)]
pub struct SweepMetrics {
    /// Total time spent sweeping, in microseconds.
    pub busy_micros: AtomicU64,
    /// Duration of the last pass, in microseconds.
    pub last_micros: AtomicU64,
}

/// Wakes the sweeper (cheap to clone, usable from any thread).
#[derive(Debug, Clone)]
pub struct Kicker {
    control: Arc<(Mutex<Control>, Condvar)>,
}

impl Kicker {
    /// Makes the sweeper run a pass now.
    pub fn kick(&self) {
        let (lock, cvar) = &*self.control;
        lock.lock().unwrap_or_else(PoisonError::into_inner).kicked = true;
        cvar.notify_all();
    }
}

/// A running sweeper thread.
#[derive(Debug)]
pub struct Sweeper {
    control: Arc<(Mutex<Control>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    metrics: Arc<SweepMetrics>,
}

impl Sweeper {
    /// Starts the thread.
    pub fn start(tracker: Arc<Tracker>, clock: Clock) -> std::io::Result<Self> {
        let control = Arc::new((Mutex::new(Control::default()), Condvar::new()));
        let metrics = Arc::new(SweepMetrics::default());
        let (c, m) = (Arc::clone(&control), Arc::clone(&metrics));
        let thread = std::thread::Builder::new()
            .name("sweeper".into())
            .spawn(move || {
                let (lock, cvar) = &*c;
                loop {
                    let started = Instant::now();
                    let report = tracker.sweep(clock.now());
                    let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    m.busy_micros.fetch_add(took, Ordering::Relaxed);
                    m.last_micros.store(took, Ordering::Relaxed);
                    let due = clock.instant(report.next_sweep);
                    let mut ctl = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    while !ctl.stop && !ctl.kicked {
                        let left = due.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        ctl = cvar
                            .wait_timeout(ctl, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    if ctl.stop {
                        return;
                    }
                    ctl.kicked = false;
                }
            })?;
        Ok(Self {
            control,
            thread: Some(thread),
            metrics,
        })
    }

    /// Makes the sweeper run a pass now (for example after the interval changed).
    pub fn kick(&self) {
        self.kicker().kick();
    }

    /// A handle that can kick the sweeper from anywhere.
    pub fn kicker(&self) -> Kicker {
        Kicker {
            control: Arc::clone(&self.control),
        }
    }

    /// The sweeper's timing figures.
    pub fn metrics(&self) -> Arc<SweepMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (lock, cvar) = &*self.control;
        lock.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.shutdown();
    }
}
