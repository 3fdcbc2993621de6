//! Telemetry: logging and span set-up, the service's metrics as
//! OpenTelemetry instruments, their Prometheus exposition and OTLP export,
//! and the latency distributions behind `GET /api/v1/stats`.
//!
//! | module | owns |
//! |---|---|
//! | [`prometheus`] | `/metrics` text rendered from the SDK's collected metrics |
//! | [`latency`] | HdrHistogram quantiles of processing, lag, detection and delivery |
//! | `otlp` | OTLP/HTTP exporters for metrics and spans |
//!
//! Every instrument name lives in [`names`]; names and units follow the
//! OpenTelemetry semantic conventions (dot-separated, unit in `unit`, not in
//! the name), and the Prometheus names derive from them (see
//! [`prometheus`]). Attributes are bounded: model and feature names come
//! from the configuration and baselines, channels from the configuration,
//! reasons and outcomes from fixed sets — never ids or offsets.
//!
//! # Cost per event
//!
//! Nothing here is touched per event. The ingestion loop counts events per
//! model and records processing time and lag into its own histograms, and
//! [`Metrics::flush_ingest`] hands the batch to the instruments a few times
//! a second. Gauges that describe the monitor (drifted features, firing
//! alerts, label joins, performance) and delivery counters are observed
//! from their owners when metrics are collected.

pub mod latency;
mod otlp;
pub mod prometheus;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use hdrhistogram::Histogram as HdrHistogram;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};

use crate::alert::stats::DeliveryStats;
use crate::config::TelemetryConfig;
use crate::monitor::Monitor;

pub use latency::{Latencies, LatencyStats, Quantiles};
pub use prometheus::SharedReader;

/// Instrument names (OpenTelemetry) with the Prometheus family each gives
/// on `/metrics`.
pub mod names {
    /// Events decoded and applied, per `model`
    /// (`driftwarden_events_consumed_total`).
    pub const EVENTS_CONSUMED: &str = "driftwarden.events.consumed";
    /// Events set aside, per `reason` (`driftwarden_events_rejected_total`).
    pub const EVENTS_REJECTED: &str = "driftwarden.events.rejected";
    /// Checks whose latest verdict is drifted, per `model`
    /// (`driftwarden_features_drifted`).
    pub const FEATURES_DRIFTED: &str = "driftwarden.features.drifted";
    /// Alerts currently firing, per `model` (`driftwarden_alerts_firing`).
    pub const ALERTS_FIRING: &str = "driftwarden.alerts.firing";
    /// Notifications decided, per `model` and `status`
    /// (`driftwarden_notifications_total`).
    pub const NOTIFICATIONS: &str = "driftwarden.notifications";
    /// Notifications per `channel` and final delivery `outcome`
    /// (`driftwarden_alert_deliveries_total`).
    pub const DELIVERIES: &str = "driftwarden.alert.deliveries";
    /// Delivery attempts per `channel`, retries included
    /// (`driftwarden_alert_delivery_attempts_total`).
    pub const DELIVERY_ATTEMPTS: &str = "driftwarden.alert.delivery.attempts";
    /// Notifications waiting in a `channel`'s queue
    /// (`driftwarden_alert_queue_depth`).
    pub const DELIVERY_QUEUE: &str = "driftwarden.alert.queue.depth";
    /// Retraining triggers, per `model` and `outcome`
    /// (`driftwarden_retrain_triggers_total`).
    pub const RETRAINS: &str = "driftwarden.retrain.triggers";
    /// Messages behind the partition's end, per `topic` and `partition`
    /// (`driftwarden_consumer_lag`).
    pub const CONSUMER_LAG: &str = "driftwarden.consumer.lag";
    /// Messages copied to the dead-letter topic, per `outcome`
    /// (`driftwarden_dead_letters_total`).
    pub const DEAD_LETTERS: &str = "driftwarden.dead_letters";
    /// Baseline files that changed while running, per `model` and
    /// `outcome` (`replaced`, `failed`) (`driftwarden_baseline_reloads_total`).
    pub const BASELINE_RELOADS: &str = "driftwarden.baseline.reloads";
    /// Label join outcomes, per `model` and `outcome` (`matched`, `late`,
    /// `never_matched`, `evicted`, `duplicate_label`, `unknown_id`)
    /// (`driftwarden_label_joins_total`).
    pub const LABEL_JOINS: &str = "driftwarden.label.joins";
    /// Label delay (label time − prediction time, event time) quantiles,
    /// per `model` and `quantile` (`driftwarden_label_delay_seconds`).
    pub const LABEL_DELAY: &str = "driftwarden.label.delay";
    /// Window value of a performance metric, per `model` and `metric`
    /// (`driftwarden_performance_metric`).
    pub const PERFORMANCE: &str = "driftwarden.performance.metric";
    /// Time to decode and apply one Kafka message: the semantic
    /// conventions' messaging metric (`messaging_process_duration_seconds`).
    pub const PROCESSING: &str = "messaging.process.duration";
    /// Consumption time minus event time (`driftwarden_event_lag_seconds`).
    pub const EVENT_LAG: &str = "driftwarden.event.lag";
    /// Event time from a drift episode's first event to the alert
    /// decision, per `model` (`driftwarden_detection_delay_seconds`).
    pub const DETECTION_DELAY: &str = "driftwarden.detection.delay";
    /// Events from a drift episode's first event to the alert decision,
    /// per `model` (`driftwarden_detection_delay_events`).
    pub const DETECTION_DELAY_EVENTS: &str = "driftwarden.detection.delay.events";
    /// Time from queueing a notification to its delivery, per `channel`
    /// (`driftwarden_alert_delivery_duration_seconds`).
    pub const DELIVERY_DURATION: &str = "driftwarden.alert.delivery.duration";
    /// Checkpoints written, per `outcome` (`written`, `failed`)
    /// (`driftwarden_checkpoints_total`).
    pub const CHECKPOINTS: &str = "driftwarden.checkpoints";
    /// Time to encode and durably write one checkpoint
    /// (`driftwarden_checkpoint_duration_seconds`).
    pub const CHECKPOINT_DURATION: &str = "driftwarden.checkpoint.duration";
    /// Size of the latest checkpoint written (`driftwarden_checkpoint_bytes`).
    pub const CHECKPOINT_SIZE: &str = "driftwarden.checkpoint.size";
    /// Deliveries in the durable outbox not yet acknowledged, notifications
    /// per channel and retraining triggers (`driftwarden_outbox_pending`).
    pub const OUTBOX_PENDING: &str = "driftwarden.outbox.pending";
}

/// Histogram bucket boundaries chosen for each quantity (seconds unless
/// named otherwise), instead of the SDK's default 0..10000.
pub mod buckets {
    /// Processing one message: microseconds to a second.
    pub const PROCESSING: &[f64] = &[
        1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0,
    ];
    /// Event-time lag: milliseconds (live) to a day (replayed backlog).
    pub const EVENT_LAG: &[f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
        3600.0, 21600.0, 86400.0,
    ];
    /// Detection delay in event time: a second to a day.
    pub const DETECTION: &[f64] = &[
        1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
    ];
    /// Detection delay in events: a window's worth, give or take.
    pub const DETECTION_EVENTS: &[f64] = &[
        10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 25000.0, 50000.0,
        100000.0,
    ];
    /// Writing a checkpoint.
    pub const CHECKPOINT: &[f64] = &[
        1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ];
    /// Delivering a notification, queue wait and retries included.
    pub const DELIVERY: &[f64] = &[
        1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        300.0,
    ];
}

/// The service's instruments, their provider and readers, and the
/// latency distributions.
pub struct Metrics {
    provider: SdkMeterProvider,
    reader: SharedReader,
    meter: Meter,
    events_consumed: Counter<u64>,
    events_rejected: Counter<u64>,
    notifications: Counter<u64>,
    retrains: Counter<u64>,
    dead_letters: Counter<u64>,
    baseline_reloads: Counter<u64>,
    checkpoints: Counter<u64>,
    checkpoint_duration: Histogram<f64>,
    checkpoint_size: Arc<std::sync::atomic::AtomicU64>,
    processing: Histogram<f64>,
    event_lag: Histogram<f64>,
    detection_delay: Histogram<f64>,
    detection_events: Histogram<u64>,
    delivery_duration: Histogram<f64>,
    consumer_lag: Arc<Mutex<BTreeMap<(String, i32), i64>>>,
    /// Observable instruments: kept so their callbacks live as long as
    /// the provider.
    observers: Mutex<Vec<Box<dyn std::any::Any + Send + Sync>>>,
    latencies: Latencies,
    processing_attributes: [KeyValue; 2],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The resource every signal carries.
pub fn resource() -> Resource {
    Resource::builder()
        .with_service_name("driftwarden")
        .with_attributes([KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))])
        .build()
}

/// An observable instrument whose callback reports what `read` returns:
/// `(value, attributes)` pairs, read when metrics are collected.
macro_rules! observed {
    ($builder:expr, $unit:expr, $help:expr, $read:expr) => {{
        let read = $read;
        $builder
            .with_unit($unit)
            .with_description($help)
            .with_callback(move |observer| {
                for (value, attributes) in read() {
                    observer.observe(value, &attributes);
                }
            })
            .build()
    }};
}

/// Observations per model from the monitor's status.
fn per_status<T>(
    monitor: &Mutex<Monitor>,
    value: impl Fn(&crate::monitor::ModelStatus) -> T,
) -> Vec<(T, Vec<KeyValue>)> {
    lock(monitor)
        .status()
        .into_iter()
        .map(|s| (value(&s), vec![KeyValue::new("model", s.model)]))
        .collect()
}

/// Observations per model with labelled performance, each with its own
/// extra attribute.
fn per_performance<T>(
    monitor: &Mutex<Monitor>,
    values: impl Fn(&crate::monitor::performance::Performance) -> Vec<(T, KeyValue)>,
) -> Vec<(T, Vec<KeyValue>)> {
    let monitor = lock(monitor);
    let mut out = Vec::new();
    for model in monitor.models() {
        let Some(p) = model.performance() else {
            continue;
        };
        let name = &model.baseline().model;
        for (v, extra) in values(p) {
            out.push((v, vec![KeyValue::new("model", name.clone()), extra]));
        }
    }
    out
}

/// Observations per delivery channel, with an optional extra attribute.
fn per_channel<T>(
    stats: &DeliveryStats,
    values: impl Fn(&crate::alert::stats::ChannelStats) -> Vec<(T, Option<KeyValue>)>,
) -> Vec<(T, Vec<KeyValue>)> {
    let mut out = Vec::new();
    for c in stats.snapshot() {
        for (v, extra) in values(&c) {
            let mut attributes = vec![KeyValue::new("channel", c.channel.clone())];
            attributes.extend(extra);
            out.push((v, attributes));
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Instruments read by `/metrics` only (no OTLP export).
    pub fn new() -> Metrics {
        Self::build(SdkMeterProvider::builder())
    }

    /// Instruments read by `/metrics` and, when `config` names an OTLP
    /// endpoint, pushed there every `export_interval`. Must be called
    /// within a tokio runtime, which carries the export requests.
    pub fn with_export(config: &TelemetryConfig) -> anyhow::Result<Metrics> {
        let mut builder = SdkMeterProvider::builder();
        if let Some(endpoint) = &config.otlp_endpoint {
            let runtime = tokio::runtime::Handle::try_current()?;
            builder = builder.with_reader(otlp::metric_reader(config, endpoint, runtime)?);
        }
        Ok(Self::build(builder))
    }

    fn build(builder: opentelemetry_sdk::metrics::MeterProviderBuilder) -> Metrics {
        let reader = SharedReader(Arc::new(ManualReader::builder().build()));
        let provider = builder
            .with_resource(resource())
            .with_reader(reader.clone())
            .build();
        let meter = provider.meter("driftwarden");
        let counter = |name: &'static str, unit: &'static str, help: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(help)
                .build()
        };
        let seconds = |name: &'static str, help: &'static str, bounds: &[f64]| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(help)
                .with_boundaries(bounds.to_vec())
                .build()
        };
        let consumer_lag: Arc<Mutex<BTreeMap<(String, i32), i64>>> = Arc::default();
        let lag = Arc::clone(&consumer_lag);
        let lag_gauge = observed!(
            meter.i64_observable_gauge(names::CONSUMER_LAG),
            "{message}",
            "Messages behind the partition's end.",
            move || {
                lock(&lag)
                    .iter()
                    .map(|((topic, partition), v)| {
                        let attributes = vec![
                            KeyValue::new("topic", topic.clone()),
                            KeyValue::new("partition", i64::from(*partition)),
                        ];
                        (*v, attributes)
                    })
                    .collect::<Vec<_>>()
            }
        );
        let checkpoint_size: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        let size = Arc::clone(&checkpoint_size);
        let size_gauge = observed!(
            meter.u64_observable_gauge(names::CHECKPOINT_SIZE),
            "By",
            "Size of the latest checkpoint written.",
            move || {
                let bytes = size.load(std::sync::atomic::Ordering::Relaxed);
                if bytes == 0 {
                    Vec::new()
                } else {
                    vec![(bytes, Vec::new())]
                }
            }
        );
        Metrics {
            checkpoints: counter(
                names::CHECKPOINTS,
                "{checkpoint}",
                "Checkpoints, by outcome (written, failed).",
            ),
            checkpoint_duration: seconds(
                names::CHECKPOINT_DURATION,
                "Time to encode and durably write one checkpoint.",
                buckets::CHECKPOINT,
            ),
            checkpoint_size,
            events_consumed: counter(
                names::EVENTS_CONSUMED,
                "{event}",
                "Events decoded and applied.",
            ),
            events_rejected: counter(
                names::EVENTS_REJECTED,
                "{event}",
                "Events set aside, by reason.",
            ),
            notifications: counter(
                names::NOTIFICATIONS,
                "{notification}",
                "Notifications decided.",
            ),
            retrains: counter(names::RETRAINS, "{trigger}", "Retraining triggers."),
            dead_letters: counter(
                names::DEAD_LETTERS,
                "{message}",
                "Messages copied to the dead-letter topic.",
            ),
            baseline_reloads: counter(
                names::BASELINE_RELOADS,
                "{file}",
                "Baseline files that changed while running, by outcome.",
            ),
            processing: seconds(
                names::PROCESSING,
                "Time to decode and apply one Kafka message.",
                buckets::PROCESSING,
            ),
            event_lag: seconds(
                names::EVENT_LAG,
                "Consumption time minus event time.",
                buckets::EVENT_LAG,
            ),
            detection_delay: seconds(
                names::DETECTION_DELAY,
                "Event time from a drift episode's first event to the alert decision.",
                buckets::DETECTION,
            ),
            detection_events: meter
                .u64_histogram(names::DETECTION_DELAY_EVENTS)
                .with_unit("{event}")
                .with_description(
                    "Events from a drift episode's first event to the alert decision.",
                )
                .with_boundaries(buckets::DETECTION_EVENTS.to_vec())
                .build(),
            delivery_duration: seconds(
                names::DELIVERY_DURATION,
                "Time from queueing a notification to its delivery.",
                buckets::DELIVERY,
            ),
            consumer_lag,
            observers: Mutex::new(vec![Box::new(lag_gauge), Box::new(size_gauge)]),
            latencies: Latencies::default(),
            processing_attributes: [
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.name", "process"),
            ],
            provider,
            reader,
            meter,
        }
    }

    /// The Prometheus text exposition of every instrument.
    pub fn render(&self) -> String {
        prometheus::render(&self.reader)
    }

    /// The latency quantiles of `/api/v1/stats`.
    pub fn latency_stats(&self) -> LatencyStats {
        self.latencies.snapshot()
    }

    /// Hands one batch of the ingestion loop to the instruments:
    /// per-model event counts, per-reason rejections, processing times
    /// (µs) and event lags (ms).
    ///
    /// The OpenTelemetry histogram API records one value at a time, so
    /// each distinct value of the batch's HdrHistograms is recorded as
    /// often as it was seen; at three significant digits that is at most
    /// the batch's event count, done once per flush off the per-event path.
    pub fn flush_ingest(&self, batch: &mut IngestBatch) {
        for (model, count) in batch.consumed.iter_mut().filter(|(_, c)| *c > 0) {
            self.events_consumed
                .add(*count, &[KeyValue::new("model", model.clone())]);
            *count = 0;
        }
        for (reason, count) in batch.rejected.iter_mut().filter(|(_, c)| *c > 0) {
            self.events_rejected
                .add(*count, &[KeyValue::new("reason", *reason)]);
            *count = 0;
        }
        self.latencies
            .merge_ingest(&batch.processing_us, &batch.event_lag_ms);
        replay(&batch.processing_us, 1e-6, |v| {
            self.processing.record(v, &self.processing_attributes)
        });
        replay(&batch.event_lag_ms, 1e-3, |v| self.event_lag.record(v, &[]));
        batch.processing_us.reset();
        batch.event_lag_ms.reset();
    }

    /// Counts one rejection outside the ingestion loop's batches.
    pub fn rejected(&self, reason: &'static str) {
        self.events_rejected
            .add(1, &[KeyValue::new("reason", reason)]);
    }

    /// Counts a decided notification.
    pub fn notified(&self, model: &str, status: &'static str) {
        self.notifications.add(
            1,
            &[
                KeyValue::new("model", model.to_owned()),
                KeyValue::new("status", status),
            ],
        );
    }

    /// Counts a retraining trigger's outcome.
    pub fn retrain(&self, model: &str, outcome: &'static str) {
        self.retrains.add(
            1,
            &[
                KeyValue::new("model", model.to_owned()),
                KeyValue::new("outcome", outcome),
            ],
        );
    }

    /// Counts a baseline file change's outcome (`replaced`, `failed`).
    pub fn baseline_reload(&self, model: &str, outcome: &'static str) {
        self.baseline_reloads.add(
            1,
            &[
                KeyValue::new("model", model.to_owned()),
                KeyValue::new("outcome", outcome),
            ],
        );
    }

    /// Counts a dead letter's outcome.
    pub fn dead_letter(&self, outcome: &'static str) {
        self.dead_letters
            .add(1, &[KeyValue::new("outcome", outcome)]);
    }

    /// Sets a partition's consumer lag (from librdkafka's statistics).
    pub fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        let mut map = lock(&self.consumer_lag);
        match map.get_mut(&(topic.to_owned(), partition)) {
            Some(v) => *v = lag,
            None => {
                map.insert((topic.to_owned(), partition), lag);
            }
        }
    }

    /// Counts a checkpoint that was written (with its size and the time
    /// it took) or failed.
    pub fn checkpoint(&self, outcome: Result<(u64, std::time::Duration), ()>) {
        let label = match outcome {
            Ok((bytes, elapsed)) => {
                self.checkpoint_size
                    .store(bytes, std::sync::atomic::Ordering::Relaxed);
                self.checkpoint_duration.record(elapsed.as_secs_f64(), &[]);
                "written"
            }
            Err(()) => "failed",
        };
        self.checkpoints.add(1, &[KeyValue::new("outcome", label)]);
    }

    /// Observes the durable outbox's pending deliveries per channel.
    pub fn observe_outbox(&self, outbox: Arc<crate::state::Outbox>) {
        let gauge = observed!(
            self.meter.u64_observable_gauge(names::OUTBOX_PENDING),
            "{delivery}",
            "Deliveries in the durable outbox not yet acknowledged.",
            move || {
                outbox
                    .pending_by_channel()
                    .into_iter()
                    .map(|(channel, n)| (n, vec![KeyValue::new("channel", channel)]))
                    .collect::<Vec<_>>()
            }
        );
        lock(&self.observers).push(Box::new(gauge));
    }

    /// Records a drift episode's detection delay.
    pub fn detection(&self, model: &str, delay_ms: i64, events: u64) {
        let delay_ms = delay_ms.max(0) as u64;
        self.latencies.record_detection(delay_ms, events);
        let attributes = [KeyValue::new("model", model.to_owned())];
        self.detection_delay
            .record(delay_ms as f64 / 1000.0, &attributes);
        self.detection_events.record(events, &attributes);
    }

    /// Records a delivered notification's latency on `channel`.
    pub fn delivery(&self, channel: &str, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latencies.record_delivery(channel, micros);
        self.delivery_duration.record(
            elapsed.as_secs_f64(),
            &[KeyValue::new("channel", channel.to_owned())],
        );
    }

    /// Observes the monitor's gauges (drifted features, firing alerts) and
    /// performance figures (label joins and delay, metric values) whenever
    /// metrics are collected.
    pub fn observe_monitor(&self, monitor: Arc<Mutex<Monitor>>) {
        let meter = &self.meter;
        let m = Arc::clone(&monitor);
        let drifted = observed!(
            meter.u64_observable_gauge(names::FEATURES_DRIFTED),
            "{feature}",
            "Checks whose latest verdict is drifted.",
            move || per_status(&m, |s| s.checks.iter().filter(|c| c.drifted).count() as u64)
        );
        let m = Arc::clone(&monitor);
        let firing = observed!(
            meter.u64_observable_gauge(names::ALERTS_FIRING),
            "{alert}",
            "Alerts currently firing.",
            move || per_status(&m, |s| s.firing as u64)
        );
        let m = Arc::clone(&monitor);
        let joins = observed!(
            meter.u64_observable_counter(names::LABEL_JOINS),
            "{label}",
            "Label join outcomes.",
            move || {
                per_performance(&m, |p| {
                    let c = p.join_counters();
                    [
                        ("matched", c.matched),
                        ("late", c.late),
                        ("never_matched", c.never_matched),
                        ("evicted", c.evicted),
                        ("duplicate_label", c.duplicate_labels),
                        ("unknown_id", c.unknown_ids),
                    ]
                    .map(|(outcome, n)| (n, KeyValue::new("outcome", outcome)))
                    .to_vec()
                })
            }
        );
        let m = Arc::clone(&monitor);
        let delay = observed!(
            meter.f64_observable_gauge(names::LABEL_DELAY),
            "s",
            "Event time from a prediction to its label, by quantile.",
            move || {
                per_performance(&m, |p| {
                    p.delay_quantiles()
                        .map(|d| {
                            [("0.5", d.p50), ("0.9", d.p90), ("0.99", d.p99)]
                                .map(|(q, v)| (v, KeyValue::new("quantile", q)))
                                .to_vec()
                        })
                        .unwrap_or_default()
                })
            }
        );
        let performance = observed!(
            meter.f64_observable_gauge(names::PERFORMANCE),
            "",
            "Performance metric over the window of labelled predictions.",
            move || {
                per_performance(&monitor, |p| {
                    p.values()
                        .into_iter()
                        .map(|(metric, v)| (v, KeyValue::new("metric", metric.to_owned())))
                        .collect()
                })
            }
        );
        self.keep(vec![
            Box::new(drifted),
            Box::new(firing),
            Box::new(joins),
            Box::new(delay),
            Box::new(performance),
        ]);
    }

    /// Observes the dispatcher's per-channel counters.
    pub fn observe_delivery(&self, stats: Arc<DeliveryStats>) {
        let meter = &self.meter;
        let s = Arc::clone(&stats);
        let deliveries = observed!(
            meter.u64_observable_counter(names::DELIVERIES),
            "{notification}",
            "Notifications by final delivery outcome.",
            move || {
                per_channel(&s, |c| {
                    [
                        ("delivered", c.delivered),
                        ("failed", c.failed),
                        ("dropped_queue_full", c.dropped_queue_full),
                        ("dropped_closed", c.dropped_closed),
                        ("abandoned", c.abandoned),
                    ]
                    .map(|(outcome, n)| (n, Some(KeyValue::new("outcome", outcome))))
                    .to_vec()
                })
            }
        );
        let s = Arc::clone(&stats);
        let attempts = observed!(
            meter.u64_observable_counter(names::DELIVERY_ATTEMPTS),
            "{attempt}",
            "Delivery attempts, retries included.",
            move || per_channel(&s, |c| vec![(c.attempts, None)])
        );
        let queue = observed!(
            meter.i64_observable_up_down_counter(names::DELIVERY_QUEUE),
            "{notification}",
            "Notifications waiting in a channel's queue.",
            move || {
                per_channel(&stats, |c| {
                    vec![(i64::try_from(c.queued).unwrap_or(i64::MAX), None)]
                })
            }
        );
        self.keep(vec![
            Box::new(deliveries),
            Box::new(attempts),
            Box::new(queue),
        ]);
    }

    fn keep(&self, instruments: Vec<Box<dyn std::any::Any + Send + Sync>>) {
        lock(&self.observers).extend(instruments);
    }

    /// Exports what is left and stops the exporters. Blocks while the
    /// last export runs, so it is run off the async workers.
    pub async fn shutdown(self: Arc<Self>) {
        let provider = self.provider.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(error) = provider.shutdown() {
                tracing::debug!(%error, "meter provider shutdown");
            }
        })
        .await;
    }
}

/// Records each distinct value of `h` (scaled) as often as it was seen.
fn replay(h: &HdrHistogram<u64>, scale: f64, mut record: impl FnMut(f64)) {
    for v in h.iter_recorded() {
        let value = h.median_equivalent(v.value_iterated_to()) as f64 * scale;
        for _ in 0..v.count_at_value() {
            record(value);
        }
    }
}

/// Starts of drift episodes, where they are known (the demo knows when
/// its generator drifts; a test or an operator replaying an incident can
/// say so through `POST /api/v1/episodes`). The ingestion loop takes them
/// and measures the detection delay to the model's next firing alert.
#[derive(Debug, Default)]
pub struct Episodes {
    pending: Mutex<Vec<(String, i64)>>,
    any: std::sync::atomic::AtomicBool,
}

impl Episodes {
    /// A drift episode of `model` whose first event has event time
    /// `start_ms`.
    pub fn start(&self, model: &str, start_ms: i64) {
        lock(&self.pending).push((model.to_owned(), start_ms));
        self.any.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Episodes announced since the last call (one atomic load when none).
    pub fn take(&self) -> Vec<(String, i64)> {
        if !self.any.swap(false, std::sync::atomic::Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *lock(&self.pending))
    }
}

/// What the ingestion loop accumulates between two flushes, owned by the
/// loop so that recording an event takes no lock and allocates nothing
/// (a model's name is copied once, the first time it is seen).
#[derive(Debug)]
pub struct IngestBatch {
    /// Events applied per model since the last flush. A list: a service
    /// monitors a handful of models, and a scan of a few short names is
    /// cheaper than hashing one.
    pub consumed: Vec<(String, u64)>,
    /// Events rejected per reason since the last flush.
    pub rejected: Vec<(&'static str, u64)>,
    /// Processing time per message (µs).
    pub processing_us: HdrHistogram<u64>,
    /// Event-time lag per event (ms).
    pub event_lag_ms: HdrHistogram<u64>,
}

impl Default for IngestBatch {
    fn default() -> Self {
        IngestBatch {
            consumed: Default::default(),
            rejected: Vec::new(),
            processing_us: latency::micros_histogram(),
            event_lag_ms: latency::millis_histogram(),
        }
    }
}

impl IngestBatch {
    /// Counts one applied event of `model` consumed `lag_ms` after its
    /// event time.
    #[inline]
    pub fn consumed(&mut self, model: &str, lag_ms: i64) {
        match self.consumed.iter_mut().find(|(m, _)| m == model) {
            Some((_, n)) => *n += 1,
            None => self.consumed.push((model.to_owned(), 1)),
        }
        latency::record_clamped(&mut self.event_lag_ms, lag_ms.max(0) as u64);
    }

    /// Counts one rejected event.
    #[inline]
    pub fn rejected(&mut self, reason: &'static str) {
        match self.rejected.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.rejected.push((reason, 1)),
        }
    }

    /// Records one message's processing time.
    #[inline]
    pub fn processed(&mut self, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        latency::record_clamped(&mut self.processing_us, micros);
    }
}

/// Installs the tracing subscriber: `text` or `json`, filtered by `level`
/// unless `RUST_LOG` says otherwise.
pub fn init_logging(format: &str, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Installs the service's tracing subscriber: log lines as `text` or
/// `json` filtered by `level` (unless `RUST_LOG` says otherwise) and, when
/// `config` names an OTLP endpoint and traces are on, the crate's spans
/// exported as OpenTelemetry spans. Returns the tracer provider to shut
/// down at exit. Must be called within a tokio runtime when spans are
/// exported (it carries the export requests).
pub fn init_service_tracing(
    format: &str,
    level: &str,
    config: &TelemetryConfig,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, Layer};

    let provider = match (&config.otlp_endpoint, config.traces) {
        (Some(endpoint), true) => Some(otlp::tracer_provider(
            config,
            endpoint,
            tokio::runtime::Handle::try_current()?,
            resource(),
        )?),
        _ => None,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "json" {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    // Spans of this crate only, at INFO: the batch, check and delivery
    // spans, whatever the log level.
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("driftwarden"))
            .with_filter(Targets::new().with_target("driftwarden", tracing::Level::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(spans)
        .try_init();
    Ok(provider)
}

/// Exports the spans still buffered and stops the exporter.
pub fn shutdown_tracing(provider: opentelemetry_sdk::trace::SdkTracerProvider) {
    if let Err(error) = provider.shutdown() {
        tracing::debug!(%error, "tracer provider shutdown");
    }
}

/// The W3C `traceparent` (and `tracestate`) headers of the current span,
/// for an outgoing request; empty when no span is exported.
pub fn trace_headers() -> Vec<(String, String)> {
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = tracing::Span::current().context();
    let mut headers = std::collections::HashMap::new();
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .inject_context(&context, &mut headers);
    headers.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_instruments_as_prometheus_text() {
        let m = Metrics::new();
        let mut batch = IngestBatch::default();
        for _ in 0..3 {
            batch.consumed("churn", 1500);
        }
        batch.rejected("invalid_json");
        batch.rejected("invalid_json");
        batch.processed(std::time::Duration::from_micros(20));
        m.flush_ingest(&mut batch);
        m.rejected("invalid_json");
        m.set_consumer_lag("events", 0, 7);
        let text = m.render();
        for line in [
            "driftwarden_events_consumed_total{model=\"churn\"} 3",
            "driftwarden_events_rejected_total{reason=\"invalid_json\"} 3",
            "driftwarden_consumer_lag{partition=\"0\",topic=\"events\"} 7",
            "# TYPE messaging_process_duration_seconds histogram",
            "messaging_process_duration_seconds_bucket{messaging_operation_name=\"process\",messaging_system=\"kafka\",le=\"0.000025\"} 1",
            "driftwarden_event_lag_seconds_bucket{le=\"2.5\"} 3",
            "driftwarden_event_lag_seconds_count 3",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // The batch was handed over and emptied.
        assert!(batch.processing_us.is_empty());
        assert_eq!(batch.consumed, vec![("churn".to_owned(), 0)]);
        let stats = m.latency_stats();
        assert_eq!(stats.event_lag_seconds.map(|q| q.count), Some(3));
    }
}
