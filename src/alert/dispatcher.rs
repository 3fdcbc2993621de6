//! The dispatcher: one bounded queue and one task per channel, per-attempt
//! timeouts, retries with exponential back-off and jitter, outcome counters,
//! and a shutdown bounded by a deadline.
//!
//! # Overflow policy
//!
//! [`Dispatcher::dispatch`] never waits. Each channel has its own bounded
//! queue of `queue_capacity` notifications. When a channel's queue is full,
//! the new notification is dropped *for that channel only* (the other
//! channels still get it), with a WARN log and `dropped_queue_full` counted;
//! the caller sees it in the returned [`Dispatched`]. Queued notifications
//! are kept rather than the newest, so a channel's notifications stay in
//! order. A full queue means the receiver has been failing or slow for a
//! long time; the alert manager re-sends firing alerts on its repeat
//! interval, so a dropped firing notification is repeated later, while a
//! dropped resolution leaves the receiver showing a stale firing alert until
//! the next notification for that model.
//!
//! # Ordering
//!
//! A channel's task delivers one notification at a time, retries included,
//! so a resolution never overtakes its firing on the same channel. A slow
//! receiver delays only its own channel, never the caller or the others.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::delivery::DeliveryError;
use super::notification::Notification;
use super::stats::{ChannelCounters, DeliveryStats};

mod builder;

pub use builder::DispatcherBuilder;

/// Default capacity of each channel's queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;

/// How many outcomes a slow subscriber may fall behind before it misses
/// some (it then gets `RecvError::Lagged`).
const OUTCOME_BUFFER: usize = 1024;

/// What became of one notification on one channel.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    /// Channel name.
    pub channel: String,
    /// The notification's model.
    pub model: String,
    /// The notification's idempotency key, sent with every attempt.
    pub idempotency_key: String,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Time from queueing on the channel to this outcome (queue wait,
    /// attempts and back-off included).
    pub elapsed: std::time::Duration,
    /// Delivered, or the error of the last attempt.
    pub result: Result<(), Arc<DeliveryError>>,
}

/// What [`Dispatcher::dispatch`] did with a notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Channels that queued it.
    pub queued: usize,
    /// Channels that dropped it (queue full, or shutting down).
    pub dropped: usize,
}

/// A notification still queued or in flight when the shutdown deadline
/// passed.
#[derive(Debug, Clone)]
pub struct Undelivered {
    /// Channel name.
    pub channel: String,
    /// The notification, to be kept (e.g. in the outbox) for the next run.
    pub notification: Notification,
}

/// Delivers notifications to every channel in the background.
///
/// Build it with [`DispatcherBuilder`] or [`Dispatcher::from_config`].
/// Dropping it without
/// [`shutdown`](Self::shutdown) lets the tasks finish what is queued in the
/// background, without a deadline.
pub struct Dispatcher {
    /// `None` once shutdown has begun: dropping the senders is what tells
    /// each task to finish its queue and stop.
    lanes: RwLock<Option<Vec<Lane>>>,
    stats: Arc<DeliveryStats>,
    outcomes: broadcast::Sender<DeliveryOutcome>,
    abort: CancellationToken,
    workers: Mutex<Vec<(String, WorkerHandle)>>,
}

/// What a channel's task had not delivered when it stopped.
type Leftovers = Vec<Arc<Notification>>;

/// A channel's task, named by its channel.
type WorkerHandle = JoinHandle<Leftovers>;

/// The sending side of one channel.
struct Lane {
    counters: Arc<ChannelCounters>,
    queue: mpsc::Sender<Queued>,
}

/// A notification in a channel's queue: when it was queued (for the
/// delivery latency) and the span it was decided in (the parent of its
/// delivery span, whose context goes out as `traceparent`).
pub(crate) struct Queued {
    pub(crate) notification: Arc<Notification>,
    pub(crate) queued_at: Instant,
    pub(crate) span: tracing::Span,
}

impl Dispatcher {
    /// A builder with default queue capacity and retry policy.
    pub fn builder() -> DispatcherBuilder {
        DispatcherBuilder::new()
    }

    /// Queues `notification` on every channel without waiting. A channel
    /// whose queue is full drops it (see the module's overflow policy).
    pub fn dispatch(&self, notification: Notification) -> Dispatched {
        self.dispatch_where(notification, |_| true)
    }

    /// Queues `notification` on the named channels only (a model's route);
    /// names that match no channel are ignored.
    pub fn dispatch_to(&self, notification: Notification, channels: &[&str]) -> Dispatched {
        self.dispatch_where(notification, |name| channels.contains(&name))
    }

    fn dispatch_where(
        &self,
        notification: Notification,
        routed: impl Fn(&str) -> bool,
    ) -> Dispatched {
        let notification = Arc::new(notification);
        let lanes = self.lanes.read().unwrap_or_else(PoisonError::into_inner);
        let Some(lanes) = lanes.as_ref() else {
            return self.refuse(&notification);
        };
        let mut dispatched = Dispatched::default();
        let span = tracing::Span::current();
        for lane in lanes.iter().filter(|lane| routed(lane.counters.name())) {
            if lane.offer(&notification, &span) {
                dispatched.queued += 1;
            } else {
                dispatched.dropped += 1;
            }
        }
        dispatched
    }

    /// The per-channel counters, for the metrics endpoint.
    pub fn stats(&self) -> Arc<DeliveryStats> {
        Arc::clone(&self.stats)
    }

    /// A stream of outcomes, one per notification and channel, for tests
    /// and the demo. Outcomes sent before subscribing are not replayed.
    pub fn subscribe(&self) -> broadcast::Receiver<DeliveryOutcome> {
        self.outcomes.subscribe()
    }

    /// Stops accepting notifications, lets the queued ones be delivered
    /// until `deadline`, then interrupts what is left (in-flight attempts
    /// and back-off waits included) and returns it.
    pub async fn shutdown(&self, deadline: Instant) -> Vec<Undelivered> {
        self.stop_accepting();
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));

        let joined = futures::future::join_all(
            workers
                .into_iter()
                .map(|(name, handle)| async move { (name, handle.await) }),
        );
        tokio::pin!(joined);
        let results = match tokio::time::timeout_at(deadline, joined.as_mut()).await {
            Ok(results) => results,
            Err(_elapsed) => {
                self.abort.cancel();
                joined.await
            }
        };

        let undelivered = collect_leftovers(results);
        info!(undelivered = undelivered.len(), "alert delivery stopped");
        undelivered
    }

    /// Drops the senders: each task finishes its queue, then stops.
    fn stop_accepting(&self) {
        let mut lanes = self.lanes.write().unwrap_or_else(PoisonError::into_inner);
        *lanes = None;
    }

    /// Counts a notification that arrived after shutdown began.
    fn refuse(&self, notification: &Notification) -> Dispatched {
        for counters in self.stats.counters() {
            counters.dropped_closed();
        }
        warn!(
            model = %notification.model,
            sequence = notification.sequence,
            "alert delivery is shutting down; notification dropped"
        );
        Dispatched {
            queued: 0,
            dropped: self.stats.counters().len(),
        }
    }
}

/// Turns the tasks' leftovers into owned notifications, logging tasks that
/// panicked (their queues are lost with them).
fn collect_leftovers(
    results: Vec<(String, Result<Leftovers, tokio::task::JoinError>)>,
) -> Vec<Undelivered> {
    let mut undelivered = Vec::new();
    for (channel, result) in results {
        match result {
            Ok(left) => undelivered.extend(left.into_iter().map(|n| Undelivered {
                channel: channel.clone(),
                notification: Arc::unwrap_or_clone(n),
            })),
            Err(join_error) => error!(
                channel = %channel,
                error = %join_error,
                "delivery task failed; its queued notifications are lost"
            ),
        }
    }
    undelivered
}

impl Lane {
    /// Tries to queue; false when the notification was dropped.
    fn offer(&self, notification: &Arc<Notification>, span: &tracing::Span) -> bool {
        // Count before sending: the task may dequeue before `try_send`
        // returns, and the gauge must not go below what is queued.
        self.counters.enqueued();
        let queued = Queued {
            notification: Arc::clone(notification),
            queued_at: Instant::now(),
            span: span.clone(),
        };
        let reason = match self.queue.try_send(queued) {
            Ok(()) => return true,
            Err(TrySendError::Full(_)) => {
                self.counters.dropped_queue_full();
                "delivery queue full; notification dropped for this channel"
            }
            Err(TrySendError::Closed(_)) => {
                self.counters.dropped_closed();
                "delivery task has stopped; notification dropped for this channel"
            }
        };
        self.counters.dequeued();
        warn!(
            channel = self.counters.name(),
            model = %notification.model,
            sequence = notification.sequence,
            capacity = self.queue.max_capacity(),
            "{reason}"
        );
        false
    }
}

#[cfg(test)]
mod tests;
