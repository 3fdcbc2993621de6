//! When checkpoints are taken, and what a start restores from one.
//!
//! The ingestion loop owns a [`Checkpointer`] and calls it after each
//! message ([`Checkpointer::after_message`], which counts events towards
//! `interval_events`) and on its flush tick ([`Checkpointer::on_tick`],
//! which also checks `interval`: the clock is read a few times a second,
//! not per message, so `interval` is honoured to within a tick). Taking one
//! copies the monitor's
//! state and the applied positions between two messages, so the state
//! holds every event before those positions and none after; encoding and
//! the durable write run on a blocking thread while ingestion goes on.
//! Once the file is durable, the group's offsets are committed to the same
//! positions, and the outbox file is compacted.
//!
//! At most one write is in flight: a checkpoint that falls due while the
//! previous one is still being written waits for it.
//!
//! # Limitation: one instance per checkpoint directory
//!
//! A directory checkpoint belongs to one instance. With several instances
//! in one group, a partition moved to another instance starts there from
//! the group's committed offset with that instance's own state for its
//! models; state does not follow the partition (that needs the checkpoint
//! topic of the design, which is not built yet).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use crate::config::CheckpointConfig;
use crate::monitor::Monitor;
use crate::state::{Checkpoint, Outbox, PartitionOffset, checkpoint};

use super::Shared;
use super::kafka::{MonitorContext, Positions};

/// Restores the monitor from the checkpoint in `config.dir`, if there is
/// one, and returns the positions it reflects. A checkpoint that cannot be
/// read is an error: the service does not start over it silently.
///
/// A state is restored onto the baseline its slot has now (which may have
/// changed since the checkpoint; windows are raw values). The state of a
/// model or version no longer configured is left out, with a warning.
pub fn restore(config: &CheckpointConfig, monitor: &mut Monitor) -> anyhow::Result<Positions> {
    let started = Instant::now();
    let Some(checkpoint) = checkpoint::load(&config.dir)? else {
        tracing::info!(dir = %config.dir.display(), "no checkpoint: starting with empty windows");
        return Ok(Positions::default());
    };
    monitor.add_calibrations(checkpoint.calibrations.iter().cloned());
    let mut restored = 0;
    for state in &checkpoint.models {
        let version = state.model_version.as_deref();
        let Some(current) = monitor.slot(&state.model, version) else {
            tracing::warn!(model = %state.model, version, "checkpoint holds state of a model \
                (version) no longer configured; left out");
            continue;
        };
        let baseline = Arc::clone(current.baseline());
        let settings = current.settings().clone();
        monitor
            .restore_model(baseline, settings, state)
            .with_context(|| format!("restoring model {} from the checkpoint", state.model))?;
        restored += 1;
    }
    tracing::info!(
        dir = %config.dir.display(),
        models = restored,
        partitions = checkpoint.offsets.len(),
        calibrations = checkpoint.calibrations.len(),
        written_at_ms = checkpoint.written_at_ms,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored from checkpoint"
    );
    Ok(Positions::from_checkpoint(&checkpoint.offsets))
}

/// What a finished write reports.
struct Written {
    offsets: Vec<PartitionOffset>,
    result: std::io::Result<(u64, Duration)>,
}

/// Decides when to checkpoint and carries it out.
pub struct Checkpointer {
    dir: PathBuf,
    every_events: u64,
    every: Duration,
    events_since: u64,
    /// A message was handled since the last checkpoint (even one whose
    /// events were all rejected: its position must be saved too).
    dirty: bool,
    last: Instant,
    in_flight: Option<JoinHandle<Written>>,
    outbox: Arc<Outbox>,
}

impl Checkpointer {
    /// A checkpointer for `config`, compacting `outbox` after each write.
    pub fn new(config: &CheckpointConfig, outbox: Arc<Outbox>) -> Checkpointer {
        Checkpointer {
            dir: config.dir.clone(),
            every_events: config.interval_events.get(),
            every: config.interval,
            events_since: 0,
            dirty: false,
            last: Instant::now(),
            in_flight: None,
            outbox,
        }
    }

    /// After a handled message that applied `events` events: completes a
    /// finished write, and starts a checkpoint if `interval_events` have
    /// been applied since the last one.
    #[inline]
    pub fn after_message(
        &mut self,
        events: u64,
        shared: &Shared,
        positions: &Positions,
        consumer: &StreamConsumer<MonitorContext>,
    ) {
        self.events_since += events;
        // Even a message whose events were all rejected moved its
        // partition's position, which the next checkpoint must save.
        self.dirty = true;
        self.poll(shared, consumer);
        if self.events_since >= self.every_events && self.can_start() {
            self.start(shared, positions);
        }
    }

    /// On the loop's flush tick: completes a finished write, and starts a
    /// checkpoint if `interval` has passed since the last one.
    pub fn on_tick(
        &mut self,
        shared: &Shared,
        positions: &Positions,
        consumer: &StreamConsumer<MonitorContext>,
    ) {
        self.poll(shared, consumer);
        let due = self.events_since >= self.every_events || self.last.elapsed() >= self.every;
        if due && self.can_start() {
            self.start(shared, positions);
        }
    }

    /// Something to save, and no write in flight.
    fn can_start(&self) -> bool {
        self.dirty && self.in_flight.is_none()
    }

    /// Starts a checkpoint of the monitor as it is now: the state is copied
    /// here, between two messages; the write happens on a blocking thread.
    fn start(&mut self, shared: &Shared, positions: &Positions) {
        let checkpoint = snapshot(shared, positions);
        self.events_since = 0;
        self.dirty = false;
        self.last = Instant::now();
        let dir = self.dir.clone();
        let outbox = Arc::clone(&self.outbox);
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let offsets = checkpoint.offsets.clone();
            let result = write(&dir, &checkpoint, &outbox);
            Written { offsets, result }
        }));
    }

    /// Completes a finished write, if any: metrics, readiness, and the
    /// group offset commit. Cheap when nothing has finished.
    fn poll(&mut self, shared: &Shared, consumer: &StreamConsumer<MonitorContext>) {
        if self.in_flight.as_ref().is_some_and(JoinHandle::is_finished)
            && let Some(handle) = self.in_flight.take()
        {
            // Finished: `now_or_never` returns at once.
            if let Some(joined) = futures::FutureExt::now_or_never(handle) {
                finish(joined, shared, consumer, CommitMode::Async);
            }
        }
    }

    /// At shutdown: waits for a write in flight, then writes a last
    /// checkpoint and commits its offsets synchronously.
    pub async fn finish(
        mut self,
        shared: &Shared,
        positions: &Positions,
        consumer: &StreamConsumer<MonitorContext>,
    ) {
        if let Some(handle) = self.in_flight.take() {
            finish(handle.await, shared, consumer, CommitMode::Sync);
        }
        if !self.dirty && checkpoint::path_in(&self.dir).exists() {
            return;
        }
        self.start(shared, positions);
        if let Some(handle) = self.in_flight.take() {
            finish(handle.await, shared, consumer, CommitMode::Sync);
        }
    }
}

/// The checkpoint of the monitor and positions as they are now.
fn snapshot(shared: &Shared, positions: &Positions) -> Checkpoint {
    let monitor = shared.monitor.lock().unwrap_or_else(|e| e.into_inner());
    Checkpoint {
        written_at_ms: chrono::Utc::now().timestamp_millis(),
        models: monitor.states(),
        offsets: positions.snapshot(),
        calibrations: monitor.calibrations(),
    }
}

/// Encodes and durably writes a checkpoint, then compacts the outbox.
/// Returns the size written and the time it took.
fn write(
    dir: &std::path::Path,
    checkpoint: &Checkpoint,
    outbox: &Outbox,
) -> std::io::Result<(u64, Duration)> {
    let started = Instant::now();
    let bytes = checkpoint::encode(checkpoint).map_err(std::io::Error::other)?;
    checkpoint::save(dir, &bytes)?;
    let elapsed = started.elapsed();
    if let Err(error) = outbox.compact() {
        tracing::warn!(%error, "outbox compaction failed; it is retried after the next checkpoint");
    }
    Ok((bytes.len() as u64, elapsed))
}

fn finish(
    joined: Result<Written, tokio::task::JoinError>,
    shared: &Shared,
    consumer: &StreamConsumer<MonitorContext>,
    mode: CommitMode,
) {
    // A write task that panicked is a write that failed.
    let (offsets, result) = match joined {
        Ok(written) => (written.offsets, written.result),
        Err(error) => (Vec::new(), Err(std::io::Error::other(error))),
    };
    match result {
        Ok((bytes, elapsed)) => {
            shared.metrics.checkpoint(Ok((bytes, elapsed)));
            if shared
                .readiness
                .checkpoint_failing
                .swap(false, Ordering::Relaxed)
            {
                tracing::info!("checkpoints are written again");
            }
            tracing::debug!(
                bytes,
                elapsed_ms = elapsed.as_millis() as u64,
                "checkpoint written"
            );
            commit(consumer, &offsets, mode);
        }
        Err(error) => {
            tracing::error!(%error, "checkpoint could not be written; monitoring continues, \
                but a restart now re-reads everything since the last checkpoint");
            shared.metrics.checkpoint(Err(()));
            shared
                .readiness
                .checkpoint_failing
                .store(true, Ordering::Relaxed);
        }
    }
}

/// Commits the checkpointed positions of the partitions this consumer
/// holds, so lag tools see how far the durable state reaches.
fn commit(
    consumer: &StreamConsumer<MonitorContext>,
    offsets: &[PartitionOffset],
    mode: CommitMode,
) {
    let assigned = match consumer.assignment() {
        Ok(list) => list,
        Err(error) => return tracing::warn!(%error, "cannot read the assignment to commit"),
    };
    let mut list = TopicPartitionList::new();
    for o in offsets {
        if assigned.find_partition(&o.topic, o.partition).is_some()
            && let Err(error) =
                list.add_partition_offset(&o.topic, o.partition, Offset::Offset(o.next_offset))
        {
            tracing::warn!(%error, "cannot list an offset to commit");
        }
    }
    if list.count() == 0 {
        return;
    }
    if let Err(error) = consumer.commit(&list, mode) {
        tracing::warn!(%error, "offset commit after checkpoint failed");
    }
}
