//! Delivery counters per channel, shared between the dispatcher's tasks
//! (which bump them) and the metrics endpoint (which reads snapshots).
//!
//! Plain relaxed atomics: each counter is independent, and a snapshot that
//! is a few increments behind is fine for metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// The live counters of one channel.
#[derive(Debug, Default)]
pub(crate) struct ChannelCounters {
    name: String,
    delivered: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    attempts: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_closed: AtomicU64,
    abandoned: AtomicU64,
    queued: AtomicU64,
}

impl ChannelCounters {
    pub(crate) fn new(name: &str) -> Self {
        ChannelCounters {
            name: name.to_owned(),
            ..ChannelCounters::default()
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Counts attempt number `attempt` (1 for a notification's first).
    pub(crate) fn attempt(&self, attempt: u32) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if attempt > 1 {
            self.retried.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped_queue_full(&self) {
        self.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped_closed(&self) {
        self.dropped_closed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn abandoned(&self, count: usize) {
        self.abandoned.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub(crate) fn enqueued(&self) {
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dequeued(&self) {
        // Saturating: a snapshot must never show a wrapped-around gauge.
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    fn snapshot(&self) -> ChannelStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ChannelStats {
            channel: self.name.clone(),
            delivered: read(&self.delivered),
            failed: read(&self.failed),
            retried: read(&self.retried),
            attempts: read(&self.attempts),
            dropped_queue_full: read(&self.dropped_queue_full),
            dropped_closed: read(&self.dropped_closed),
            abandoned: read(&self.abandoned),
            queued: read(&self.queued),
        }
    }
}

/// The counters of every channel of one dispatcher.
///
/// Get it from [`Dispatcher::stats`](super::dispatcher::Dispatcher::stats)
/// and read it with [`snapshot`](Self::snapshot) from any thread.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    channels: Vec<Arc<ChannelCounters>>,
}

impl DeliveryStats {
    pub(crate) fn new(channels: Vec<Arc<ChannelCounters>>) -> Self {
        DeliveryStats { channels }
    }

    pub(crate) fn counters(&self) -> &[Arc<ChannelCounters>] {
        &self.channels
    }

    /// The current values, one entry per channel in the order the channels
    /// were added.
    pub fn snapshot(&self) -> Vec<ChannelStats> {
        self.channels.iter().map(|c| c.snapshot()).collect()
    }

    /// The current values of one channel.
    pub fn channel(&self, name: &str) -> Option<ChannelStats> {
        self.channels
            .iter()
            .find(|c| c.name() == name)
            .map(|c| c.snapshot())
    }
}

/// A snapshot of one channel's counters. All but `queued` only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelStats {
    /// Channel name.
    pub channel: String,
    /// Notifications the receiver accepted.
    pub delivered: u64,
    /// Notifications given up on: a non-retryable error, or the last
    /// attempt failed.
    pub failed: u64,
    /// Attempts that were retries (every attempt after a notification's
    /// first).
    pub retried: u64,
    /// Attempts in total, first attempts and retries.
    pub attempts: u64,
    /// Notifications dropped at `dispatch` because this channel's queue
    /// was full.
    pub dropped_queue_full: u64,
    /// Notifications dropped at `dispatch` because the dispatcher was
    /// shutting down.
    pub dropped_closed: u64,
    /// Notifications still queued or in flight when the shutdown deadline
    /// passed; they are returned by `shutdown`.
    pub abandoned: u64,
    /// Notifications waiting in the queue now (a gauge).
    pub queued: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_increments() {
        let counters = Arc::new(ChannelCounters::new("hook"));
        let stats = DeliveryStats::new(vec![Arc::clone(&counters)]);

        counters.attempt(1);
        counters.attempt(2);
        counters.delivered();
        counters.enqueued();
        counters.dequeued();
        counters.dequeued();

        let snap = stats.channel("hook").unwrap();
        assert_eq!((snap.attempts, snap.retried, snap.delivered), (2, 1, 1));
        assert_eq!(snap.queued, 0);
        assert!(stats.channel("other").is_none());
    }
}
