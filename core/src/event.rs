//! Connection events, handed to the embedding program through a bounded queue.
//!
//! The engine never blocks on a slow consumer: when the queue is full the event is dropped
//! and counted. Events are off until the embedder turns them on (nobody listening costs
//! nothing on the packet path).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::conn::DestroyReason;
use crate::entry::ConnEntry;
use crate::time::Tick;

/// What happened to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// It left the table.
    Destroy(DestroyReason),
    /// It was created (committed).
    New,
}

/// One event.
#[derive(Clone, Debug)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The connection at that moment.
    pub entry: ConnEntry,
    /// When (for destroys by the sweeper: when it was swept).
    pub at: Tick,
}

#[derive(Debug)]
pub(crate) struct EventQueue {
    queue: ArrayQueue<Event>,
    dropped: AtomicU64,
    enabled: AtomicBool,
}

impl EventQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: ArrayQueue::new(capacity.max(1)),
            dropped: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    pub(crate) fn push(&self, event: Event) {
        if self.queue.push(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn drain(&self, out: &mut Vec<Event>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(e) = self.queue.pop() else { break };
            out.push(e);
            n += 1;
        }
        n
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
