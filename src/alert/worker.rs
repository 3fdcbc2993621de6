//! The task that owns one channel: takes notifications off the channel's
//! queue one at a time and attempts each until it is delivered, fails for
//! good, or the shutdown deadline interrupts it.

use std::hash::BuildHasher;
use std::sync::Arc;

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, error, info, warn};

use super::delivery::{Channel, DeliveryError, RetryPolicy};
use super::dispatcher::{DeliveryOutcome, Queued};
use super::notification::Notification;
use super::stats::ChannelCounters;

/// What a channel's task gets from the dispatcher.
pub(crate) struct WorkerSetup {
    pub(crate) queue: mpsc::Receiver<Queued>,
    pub(crate) retry: RetryPolicy,
    pub(crate) counters: Arc<ChannelCounters>,
    pub(crate) outcomes: broadcast::Sender<DeliveryOutcome>,
    pub(crate) abort: CancellationToken,
}

/// A delivery interrupted by the shutdown deadline.
struct Aborted;

/// The task that owns one channel.
pub(crate) struct Worker<C> {
    channel: C,
    queue: mpsc::Receiver<Queued>,
    retry: RetryPolicy,
    jitter: Xoshiro256PlusPlus,
    counters: Arc<ChannelCounters>,
    outcomes: broadcast::Sender<DeliveryOutcome>,
    abort: CancellationToken,
}

impl<C: Channel> Worker<C> {
    pub(crate) fn new(channel: C, setup: WorkerSetup) -> Self {
        // A per-process random seed: instances retrying the same receiver
        // must not pick the same delays.
        let seed = std::hash::RandomState::new().hash_one(channel.name());
        Worker {
            channel,
            queue: setup.queue,
            retry: setup.retry,
            jitter: Xoshiro256PlusPlus::seed_from_u64(seed),
            counters: setup.counters,
            outcomes: setup.outcomes,
            abort: setup.abort,
        }
    }

    /// Delivers until the queue is closed and empty, or the deadline
    /// aborts; returns what was not delivered.
    pub(crate) async fn run(mut self) -> Vec<Arc<Notification>> {
        let mut left = Vec::new();
        while let Some(queued) = self.next().await {
            let span = tracing::info_span!(parent: &queued.span, "deliver_alert",
                channel = self.channel.name(),
                model = %queued.notification.model,
                attempts = tracing::field::Empty);
            let delivered = self
                .deliver(&queued.notification, queued.queued_at)
                .instrument(span)
                .await;
            if let Err(Aborted) = delivered {
                left.push(queued.notification);
                break;
            }
        }
        left.extend(self.drain());

        if !left.is_empty() {
            self.counters.abandoned(left.len());
            warn!(
                channel = self.channel.name(),
                undelivered = left.len(),
                "shutdown deadline passed; notifications left undelivered"
            );
        }
        left
    }

    async fn next(&mut self) -> Option<Queued> {
        let next = tokio::select! {
            biased;
            () = self.abort.cancelled() => None,
            next = self.queue.recv() => next,
        };
        if next.is_some() {
            self.counters.dequeued();
        }
        next
    }

    fn drain(&mut self) -> Vec<Arc<Notification>> {
        self.queue.close();
        let mut left = Vec::new();
        while let Ok(queued) = self.queue.try_recv() {
            self.counters.dequeued();
            left.push(queued.notification);
        }
        left
    }

    /// Attempts until delivered, a final error, or the last attempt.
    async fn deliver(
        &mut self,
        notification: &Notification,
        queued_at: tokio::time::Instant,
    ) -> Result<(), Aborted> {
        let key = notification.idempotency_key();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.counters.attempt(attempt);

            let error = match self.attempt(notification).await? {
                Ok(()) => {
                    self.finish(notification, key, attempt, queued_at, Ok(()));
                    return Ok(());
                }
                Err(error) => error,
            };

            if !error.is_retryable() || attempt >= self.retry.max_attempts {
                self.finish(notification, key, attempt, queued_at, Err(error));
                return Ok(());
            }
            self.back_off(notification, &key, attempt, &error).await?;
        }
    }

    /// One attempt, bounded by the channel's timeout and the deadline.
    async fn attempt(
        &self,
        notification: &Notification,
    ) -> Result<Result<(), DeliveryError>, Aborted> {
        let timeout = self.channel.timeout();
        let attempt = tokio::time::timeout(timeout, self.channel.deliver(notification));
        tokio::select! {
            biased;
            () = self.abort.cancelled() => Err(Aborted),
            result = attempt => Ok(result.unwrap_or_else(|_elapsed| {
                Err(DeliveryError::Timeout {
                    channel: self.channel.name().to_owned(),
                    endpoint: self.channel.endpoint().to_owned(),
                    timeout,
                })
            })),
        }
    }

    async fn back_off(
        &mut self,
        notification: &Notification,
        key: &str,
        failures: u32,
        error: &DeliveryError,
    ) -> Result<(), Aborted> {
        let unit = unit_interval(self.jitter.next_u64());
        let delay = self.retry.delay(failures, error, unit);
        warn!(
            channel = self.channel.name(),
            endpoint = self.channel.endpoint(),
            model = %notification.model,
            idempotency_key = %key,
            attempt = failures,
            reason = error.reason(),
            error = %error,
            retry_in = ?delay,
            "alert delivery attempt failed; will retry"
        );
        tokio::select! {
            biased;
            () = self.abort.cancelled() => Err(Aborted),
            () = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// Counts, logs and publishes the final outcome.
    fn finish(
        &self,
        notification: &Notification,
        key: String,
        attempts: u32,
        queued_at: tokio::time::Instant,
        result: Result<(), DeliveryError>,
    ) {
        let channel = self.channel.name();
        tracing::Span::current().record("attempts", attempts);
        match &result {
            Ok(()) => {
                self.counters.delivered();
                info!(
                    channel,
                    model = %notification.model,
                    idempotency_key = %key,
                    attempts,
                    "alert delivered"
                );
            }
            Err(error) => {
                self.counters.failed();
                error!(
                    channel,
                    endpoint = self.channel.endpoint(),
                    model = %notification.model,
                    idempotency_key = %key,
                    attempts,
                    reason = error.reason(),
                    retryable = error.is_retryable(),
                    error = %error,
                    "alert delivery failed; giving up"
                );
            }
        }
        let outcome = DeliveryOutcome {
            channel: channel.to_owned(),
            model: notification.model.clone(),
            idempotency_key: key,
            attempts,
            elapsed: queued_at.elapsed(),
            result: result.map_err(Arc::new),
        };
        // An error only means nobody subscribed, the normal case outside
        // tests and the demo.
        let _ = self.outcomes.send(outcome);
    }
}

/// A uniform number in [0, 1) from 53 random bits.
fn unit_interval(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
