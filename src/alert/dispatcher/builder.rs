//! [`DispatcherBuilder`]: collects channels, validates the settings, and
//! starts one queue and task per channel.

use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::{DEFAULT_QUEUE_CAPACITY, Dispatcher, Lane, OUTCOME_BUFFER, WorkerHandle};
use crate::alert::delivery::{Channel, ConfigError, RetryPolicy};
use crate::alert::stats::{ChannelCounters, DeliveryStats};
use crate::alert::worker::{Worker, WorkerSetup};

/// Starts a channel's task once the dispatcher's shared parts exist.
type StartWorker = Box<dyn FnOnce(WorkerSetup) -> WorkerHandle + Send>;

/// A channel added to the builder, not started yet.
struct PendingLane {
    name: String,
    retry: Option<RetryPolicy>,
    start: StartWorker,
}

/// Assembles a [`Dispatcher`] from channels.
pub struct DispatcherBuilder {
    queue_capacity: usize,
    retry: RetryPolicy,
    lanes: Vec<PendingLane>,
}

impl Default for DispatcherBuilder {
    fn default() -> Self {
        DispatcherBuilder::new()
    }
}

impl DispatcherBuilder {
    /// Queue capacity [`DEFAULT_QUEUE_CAPACITY`], default [`RetryPolicy`].
    pub fn new() -> Self {
        DispatcherBuilder {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            retry: RetryPolicy::default(),
            lanes: Vec::new(),
        }
    }

    /// Capacity of each channel's queue (at least 1).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Retry policy for channels added without their own.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Adds a channel that uses the builder's retry policy.
    pub fn channel<C: Channel>(self, channel: C) -> Self {
        self.add(channel, None)
    }

    /// Adds a channel with its own retry policy.
    pub fn channel_with_retry<C: Channel>(self, channel: C, policy: RetryPolicy) -> Self {
        self.add(channel, Some(policy))
    }

    fn add<C: Channel>(mut self, channel: C, retry: Option<RetryPolicy>) -> Self {
        let name = channel.name().to_owned();
        let start: StartWorker =
            Box::new(move |setup| tokio::spawn(Worker::new(channel, setup).run()));
        self.lanes.push(PendingLane { name, retry, start });
        self
    }

    /// Validates the settings and starts one task per channel.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as `tokio::spawn` does.
    pub fn build(self) -> Result<Dispatcher, Vec<ConfigError>> {
        let problems = self.validate();
        if !problems.is_empty() {
            return Err(problems);
        }

        let (outcomes, _) = broadcast::channel(OUTCOME_BUFFER);
        let abort = CancellationToken::new();
        let mut lanes = Vec::new();
        let mut workers = Vec::new();
        for pending in self.lanes {
            let retry = pending.retry.unwrap_or_else(|| self.retry.clone());
            let (sender, receiver) = mpsc::channel(self.queue_capacity);
            let counters = Arc::new(ChannelCounters::new(&pending.name));
            let setup = WorkerSetup {
                queue: receiver,
                retry,
                counters: Arc::clone(&counters),
                outcomes: outcomes.clone(),
                abort: abort.clone(),
            };
            workers.push((pending.name, (pending.start)(setup)));
            lanes.push(Lane {
                counters,
                queue: sender,
            });
        }

        let stats = DeliveryStats::new(lanes.iter().map(|l| Arc::clone(&l.counters)).collect());
        Ok(Dispatcher {
            lanes: RwLock::new(Some(lanes)),
            stats: Arc::new(stats),
            outcomes,
            abort,
            workers: Mutex::new(workers),
        })
    }

    fn validate(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if self.queue_capacity == 0 {
            problems.push(ConfigError::new("queue_capacity", "must be at least 1"));
        }
        problems.extend(self.retry.validate().into_iter().map(|e| e.within("retry")));
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(retry) = &lane.retry {
                let prefix = format!("{}.retry", lane.name);
                problems.extend(retry.validate().into_iter().map(|e| e.within(&prefix)));
            }
            if self.lanes[..i].iter().any(|other| other.name == lane.name) {
                let reason = format!("channel name `{}` is used more than once", lane.name);
                problems.push(ConfigError::new("name", reason));
            }
        }
        problems
    }
}
