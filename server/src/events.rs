//! Fans the engine's connection events out to gRPC watchers.
//!
//! The engine queues events only while someone listens (`set_events_enabled`). The hub task
//! drains that queue every few milliseconds and broadcasts each event; a watcher that falls
//! behind the broadcast buffer, or events the engine itself had to drop, are reported to
//! watchers as a count of lost events, never by blocking anything upstream.

use std::sync::Arc;
use std::time::Duration;

use ctrack_core::{Event, Tracker};
use tokio::sync::{broadcast, watch};

/// How often the hub drains the engine's queue.
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// Events drained per round at most.
const DRAIN_MAX: usize = 8192;

/// What watchers receive.
#[derive(Clone, Debug)]
pub enum HubItem {
    /// An event.
    Event(Arc<Event>),
    /// The engine dropped this many events (its queue was full).
    Lost(u64),
}

/// The broadcast point between the engine and the watchers.
#[derive(Debug)]
pub struct EventHub {
    tracker: Arc<Tracker>,
    tx: broadcast::Sender<HubItem>,
    /// Turns true when the daemon shuts down: open streams end.
    closing: watch::Sender<bool>,
}

impl EventHub {
    /// A hub whose per-watcher buffer holds `capacity` items.
    pub fn new(tracker: Arc<Tracker>, capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self {
            tracker,
            tx,
            closing: watch::channel(false).0,
        }
    }

    /// Turns true when the daemon shuts down; every open stream (watch or dump) ends then.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Tells every open stream to end.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A new watcher's receiver; turns the engine's events on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubItem> {
        let rx = self.tx.subscribe();
        self.tracker.set_events_enabled(true);
        rx
    }

    /// Drains and broadcasts until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut buf = Vec::with_capacity(DRAIN_MAX);
        let mut seen_dropped = self.tracker.events_dropped();
        let mut tick = tokio::time::interval(DRAIN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                self.close();
                return;
            }
            let listening = self.tx.receiver_count() > 0;
            self.tracker.set_events_enabled(listening);
            buf.clear();
            self.tracker.drain_events(&mut buf, DRAIN_MAX);
            let dropped = self.tracker.events_dropped();
            if listening {
                if dropped > seen_dropped {
                    let _ = self.tx.send(HubItem::Lost(dropped - seen_dropped));
                }
                for event in buf.drain(..) {
                    let _ = self.tx.send(HubItem::Event(Arc::new(event)));
                }
            }
            seen_dropped = dropped;
        }
    }
}
