//! The ingestion loop: Kafka messages in, decoded into events, applied to
//! the monitor, with the monitor's decisions handed to delivery and the
//! retraining producer.
//!
//! A partition's position advances only after its message has been applied
//! (and its outputs handed on). Checkpoints are taken between messages
//! (see [`super::checkpointer`]), so a restart re-reads exactly what the
//! restored state does not hold.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::event::{DecodeError, decode_label_message, decode_message};
use crate::monitor::{Monitor, Outputs, Position};
use crate::telemetry::IngestBatch;

use super::checkpointer::Checkpointer;
use super::deliveries::Deliveries;
use super::kafka::{MonitorContext, Positions};
use super::{ServiceEvent, Shared};

/// Events between progress reports to observers.
const PROGRESS_EVERY: u64 = 10_000;

/// How often the loop hands its batch of counts and latencies to the
/// metrics (and closes the batch's span). Short enough that a scrape or a
/// test sees counts promptly, long enough that the hand-over is rare next
/// to the events it carries.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Settings of the loop that do not belong to the monitor.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Largest accepted message.
    pub max_message_bytes: usize,
    /// Where malformed messages are copied, if anywhere.
    pub dead_letter_topic: Option<String>,
    /// Where retraining triggers go, if enabled.
    pub retrain_topic: Option<String>,
    /// How often to log a summary of rejected events.
    pub reject_log_interval: Duration,
    /// Channel names each model's notifications go to.
    pub routes: HashMap<String, Vec<String>>,
    /// Prediction topics (the subscription the service starts with).
    pub prediction_topics: Vec<String>,
    /// Label topics: their messages are label events.
    pub label_topics: HashSet<String>,
}

/// Counts of rejected events since the last summary log, with one example.
#[derive(Default)]
struct RejectLog {
    since: Option<Instant>,
    count: u64,
    example: Option<(String, String)>,
}

impl RejectLog {
    fn note(&mut self, error: &DecodeError, interval: Duration) {
        self.count += 1;
        self.example
            .get_or_insert_with(|| (error.reason().to_string(), error.to_string()));
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() >= interval {
            if let Some((reason, detail)) = self.example.take() {
                tracing::warn!(rejected = self.count, example_reason = %reason, example = %detail,
                    "events set aside since the last report");
            }
            self.count = 0;
            self.since = Some(Instant::now());
        }
    }
}

/// A drift episode the loop is timing: its first event's time and the
/// model's events applied since.
#[derive(Debug, Clone, Copy)]
struct OpenEpisode {
    start_ms: i64,
    events: u64,
}

/// What the loop keeps between flushes: counts and latencies (see
/// [`IngestBatch`]), the batch's span, and the drift episodes being timed.
struct Batch {
    counts: IngestBatch,
    span: Option<tracing::Span>,
    messages: u64,
    events: u64,
    episodes: HashMap<String, OpenEpisode>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            counts: IngestBatch::default(),
            span: None,
            messages: 0,
            events: 0,
            episodes: HashMap::new(),
        }
    }

    /// The span of the batch, opened by its first message.
    fn span(&mut self) -> &tracing::Span {
        self.span.get_or_insert_with(|| {
            tracing::info_span!(
                "consume_batch",
                messaging.system = "kafka",
                messaging.operation.name = "process",
                messaging.batch.message_count = tracing::field::Empty,
                events = tracing::field::Empty
            )
        })
    }

    /// Counts an applied event (and its episode, if one is timed).
    #[inline]
    fn applied(&mut self, model: &str, event_ms: i64, now_ms: i64) {
        self.counts.consumed(model, now_ms - event_ms);
        self.events += 1;
        if !self.episodes.is_empty()
            && let Some(episode) = self.episodes.get_mut(model)
            && event_ms >= episode.start_ms
        {
            episode.events += 1;
        }
    }
}

/// The running loop's collaborators.
pub struct Ingest {
    /// The consumer.
    pub consumer: StreamConsumer<MonitorContext>,
    /// Dead letters.
    pub producer: FutureProducer,
    /// State shared with the HTTP API.
    pub shared: Shared,
    /// Notifications and retraining triggers, through the outbox.
    pub deliveries: Deliveries,
    /// Where each partition resumes (advanced after each message).
    pub positions: Arc<Positions>,
    /// Observers (demo timeline, tests).
    pub events: broadcast::Sender<ServiceEvent>,
    /// Loop settings.
    pub settings: IngestSettings,
}

impl Ingest {
    /// Runs until `shutdown` is cancelled, then writes a last checkpoint
    /// and commits its offsets.
    pub async fn run(self, mut checkpointer: Checkpointer, shutdown: CancellationToken) {
        self.subscribe_labels();
        let mut rejects = RejectLog::default();
        let mut applied: u64 = 0;
        let mut next_report: u64 = PROGRESS_EVERY;
        let mut batch = Batch::new();
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                // Before `recv`, which is always ready under load.
                _ = flush.tick() => {
                    self.flush(&mut batch);
                    checkpointer.on_tick(&self.shared, &self.positions, &self.consumer);
                    continue;
                }
                message = self.consumer.recv() => message,
            };
            match message {
                Ok(message) => {
                    self.shared
                        .readiness
                        .broker_up
                        .store(true, Ordering::Relaxed);
                    for (model, start_ms) in self.shared.episodes.take() {
                        batch.episodes.insert(
                            model,
                            OpenEpisode {
                                start_ms,
                                events: 0,
                            },
                        );
                    }
                    let span = batch.span().clone();
                    let entered = span.enter();
                    let events = self.handle(&message, &mut rejects, &mut batch);
                    drop(entered);
                    applied += events;
                    batch.messages += 1;
                    self.positions.advance(
                        message.topic(),
                        message.partition(),
                        message.offset() + 1,
                    );
                    // Stored (not committed) for librdkafka's lag statistics.
                    if let Err(error) = self.consumer.store_offset_from_message(&message) {
                        tracing::warn!(%error, "could not store offset");
                    }
                    checkpointer.after_message(
                        events,
                        &self.shared,
                        &self.positions,
                        &self.consumer,
                    );
                    if applied >= next_report {
                        next_report = applied + PROGRESS_EVERY;
                        let _ = self.events.send(ServiceEvent::Progress { events: applied });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "consume error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.flush(&mut batch);
        let _ = self.events.send(ServiceEvent::Progress { events: applied });
        checkpointer
            .finish(&self.shared, &self.positions, &self.consumer)
            .await;
        tracing::info!("checkpoint written and offsets committed");
    }

    /// Hands the batch to the metrics and closes its span.
    fn flush(&self, batch: &mut Batch) {
        // Every count and latency comes with a message.
        if batch.messages == 0 {
            return;
        }
        if let Some(span) = batch.span.take() {
            span.record("messaging.batch.message_count", batch.messages);
            span.record("events", batch.events);
        }
        batch.messages = 0;
        batch.events = 0;
        self.shared.metrics.flush_ingest(&mut batch.counts);
    }

    /// Adds the label topics to the subscription. The loop owns the
    /// knowledge of which topics carry labels, so it extends the prediction
    /// subscription here, before the first poll (a subscription replaces
    /// the previous one, hence both lists).
    fn subscribe_labels(&self) {
        if self.settings.label_topics.is_empty() {
            return;
        }
        let topics: BTreeSet<&str> = self
            .settings
            .prediction_topics
            .iter()
            .chain(&self.settings.label_topics)
            .map(String::as_str)
            .collect();
        let topics: Vec<&str> = topics.into_iter().collect();
        if let Err(error) = self.consumer.subscribe(&topics) {
            tracing::error!(%error, "cannot subscribe to label topics; labels are not joined");
        }
    }

    /// Decodes and applies one message; returns the number of events applied.
    fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        rejects: &mut RejectLog,
        batch: &mut Batch,
    ) -> u64 {
        if self.settings.label_topics.contains(message.topic()) {
            return self.handle_labels(message, rejects, batch);
        }
        let started = Instant::now();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let payload = message.payload().unwrap_or_default();
        let message_time = message.timestamp().to_millis().unwrap_or(0);
        let position = Position {
            partition: message.partition(),
            offset: message.offset(),
        };
        let mut outputs = Outputs::default();
        let mut applied = 0;
        let mut first_error: Option<DecodeError> = None;
        {
            let mut monitor = self
                .shared
                .monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let results = {
                let m: &Monitor = &monitor;
                let lookup = |model: &str, version: Option<&str>| m.layout(model, version);
                decode_message(
                    payload,
                    message_time,
                    self.settings.max_message_bytes,
                    &lookup,
                )
            };
            for result in results {
                match result.map_err(ApplyOrDecode::Decode).and_then(|event| {
                    monitor
                        .apply(&event, position, &mut outputs)
                        .map(|_| event)
                        .map_err(ApplyOrDecode::Apply)
                }) {
                    Ok(event) => {
                        applied += 1;
                        batch.applied(&event.model, event.timestamp_ms, now_ms);
                    }
                    Err(ApplyOrDecode::Decode(error)) => {
                        batch.counts.rejected(error.reason());
                        rejects.note(&error, self.settings.reject_log_interval);
                        first_error.get_or_insert(error);
                    }
                    Err(ApplyOrDecode::Apply(error)) => {
                        batch.counts.rejected("monitor_error");
                        tracing::warn!(%error, "event could not be applied");
                    }
                }
            }
        }
        if let Some(error) = first_error {
            self.dead_letter(message, &error);
        }
        self.carry_out(outputs, batch);
        batch.counts.processed(started.elapsed());
        applied
    }

    /// Decodes and applies one label-topic message; returns the number of
    /// labels applied. Rejected labels are counted and dead-lettered like
    /// events.
    fn handle_labels(
        &self,
        message: &BorrowedMessage<'_>,
        rejects: &mut RejectLog,
        batch: &mut Batch,
    ) -> u64 {
        let started = Instant::now();
        let payload = message.payload().unwrap_or_default();
        let message_time = message.timestamp().to_millis().unwrap_or(0);
        let max_bytes = self.settings.max_message_bytes;
        let mut outputs = Outputs::default();
        let mut applied = 0;
        let mut first_error: Option<DecodeError> = None;
        {
            let mut monitor = self
                .shared
                .monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for result in decode_label_message(payload, message_time, max_bytes) {
                let outcome = result.and_then(|label| {
                    let model = label.model.clone();
                    match monitor.apply_label(&label, &mut outputs) {
                        Ok(()) => Ok(model),
                        Err(crate::monitor::ApplyError::UnknownModel(model)) => {
                            Err(DecodeError::UnknownModel { model })
                        }
                        Err(error) => {
                            tracing::warn!(%error, "label could not be applied");
                            Ok(model)
                        }
                    }
                });
                match outcome {
                    Ok(_model) => applied += 1,
                    Err(error) => {
                        batch.counts.rejected(error.reason());
                        rejects.note(&error, self.settings.reject_log_interval);
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        if let Some(error) = first_error {
            self.dead_letter(message, &error);
        }
        self.carry_out(outputs, batch);
        batch.counts.processed(started.elapsed());
        applied
    }

    /// Hands notifications to delivery and triggers to the producer.
    fn carry_out(&self, outputs: Outputs, batch: &mut Batch) {
        for notification in outputs.notifications {
            let status = status_label(&notification);
            self.shared.metrics.notified(&notification.model, status);
            if status == "firing" {
                self.time_detection(&notification, batch);
            }
            let _ = self
                .events
                .send(ServiceEvent::Notified(notification.clone()));
            let route = self.settings.routes.get(&notification.model);
            let channels: Vec<&str> = route
                .map(|r| r.iter().map(String::as_str).collect())
                .unwrap_or_default();
            self.deliveries.notify(notification, &channels);
        }
        for trigger in outputs.retrains {
            self.deliveries.retrain(trigger);
        }
    }

    /// The detection delay of a drift episode being timed for the model
    /// of a firing notification: from the episode's first event to the
    /// decision, in event time and in the model's events. A firing
    /// notification before any event of the episode (an alert that was
    /// already firing) leaves the episode open.
    fn time_detection(&self, notification: &crate::alert::Notification, batch: &mut Batch) {
        let Some(episode) = batch.episodes.get(&notification.model).copied() else {
            return;
        };
        if episode.events == 0 {
            return;
        }
        batch.episodes.remove(&notification.model);
        let delay_ms = notification.decided_at_ms - episode.start_ms;
        tracing::info!(model = %notification.model, delay_ms, events = episode.events,
            "drift episode detected");
        self.shared
            .metrics
            .detection(&notification.model, delay_ms, episode.events);
    }

    /// Copies a message with a rejected event to the dead-letter topic,
    /// the reason in a header. Fire-and-forget: a dead letter that cannot
    /// be written is counted, never retried at the cost of ingestion.
    fn dead_letter(&self, message: &BorrowedMessage<'_>, error: &DecodeError) {
        let Some(topic) = self.settings.dead_letter_topic.as_deref() else {
            return;
        };
        let reason = error.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "driftwarden-reason",
                value: Some(error.reason()),
            })
            .insert(Header {
                key: "driftwarden-detail",
                value: Some(reason.as_str()),
            })
            .insert(Header {
                key: "driftwarden-source-topic",
                value: Some(message.topic()),
            });
        let payload = message.payload().unwrap_or_default();
        let mut record = FutureRecord::to(topic).payload(payload).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        let outcome = match self.producer.send_result(record) {
            Ok(_) => "queued",
            Err(_) => "failed",
        };
        self.shared.metrics.dead_letter(outcome);
    }
}

enum ApplyOrDecode {
    Decode(DecodeError),
    Apply(crate::monitor::ApplyError),
}

fn status_label(notification: &crate::alert::Notification) -> &'static str {
    match notification.status {
        crate::alert::AlertStatus::Firing => "firing",
        crate::alert::AlertStatus::Resolved => "resolved",
    }
}
