//! Kafka clients: the prediction consumer (with a context that tracks
//! assignment and lag for readiness and metrics) and the producer used for
//! retraining triggers and dead letters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;

use crate::config::KafkaConfig;
use crate::telemetry::Metrics;

/// Shared flags the HTTP readiness probe reads.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Baselines are loaded and the monitor is built.
    pub baselines_loaded: AtomicBool,
    /// The consumer holds at least one partition (or the group has
    /// assigned none yet, but the broker answered).
    pub assigned: AtomicBool,
    /// The broker is reachable (cleared on a transport error, set again
    /// on the next message or statistics report).
    pub broker_up: AtomicBool,
}

impl Readiness {
    /// Ready to serve: baselines loaded, partitions assigned, broker up.
    pub fn is_ready(&self) -> bool {
        self.baselines_loaded.load(Ordering::Relaxed)
            && self.assigned.load(Ordering::Relaxed)
            && self.broker_up.load(Ordering::Relaxed)
    }

    /// Why not ready, for the probe's body.
    pub fn reasons(&self) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        if !self.baselines_loaded.load(Ordering::Relaxed) {
            reasons.push("baselines not loaded");
        }
        if !self.assigned.load(Ordering::Relaxed) {
            reasons.push("no partitions assigned yet");
        }
        if !self.broker_up.load(Ordering::Relaxed) {
            reasons.push("broker unreachable");
        }
        reasons
    }
}

/// Consumer context: records assignment, broker state and lag.
pub struct MonitorContext {
    /// Readiness flags.
    pub readiness: Arc<Readiness>,
    /// Metrics for lag.
    pub metrics: Arc<Metrics>,
}

impl ClientContext for MonitorContext {
    fn stats(&self, statistics: Statistics) {
        self.readiness.broker_up.store(true, Ordering::Relaxed);
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // librdkafka reports -1 for partitions this client does not consume.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .set_consumer_lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.readiness.broker_up.store(false, Ordering::Relaxed);
        }
        tracing::warn!(%error, reason, "kafka client error");
    }
}

impl ConsumerContext for MonitorContext {
    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions assigned");
                self.readiness.assigned.store(true, Ordering::Relaxed);
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions revoked");
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
        }
    }
}

/// The prediction consumer: offsets are stored by the service only after
/// the event is applied, and committed by librdkafka every
/// `commit_interval` (and once more at shutdown).
pub fn consumer(
    config: &KafkaConfig,
    context: MonitorContext,
) -> Result<StreamConsumer<MonitorContext>, KafkaError> {
    let mut client = base_config(config);
    client
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "true")
        .set(
            "auto.commit.interval.ms",
            config.commit_interval.as_millis().to_string(),
        )
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", config.auto_offset_reset.as_str())
        .set("statistics.interval.ms", "5000")
        .set("enable.partition.eof", "false");
    client
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(context)
}

/// The producer for retraining triggers and dead letters: idempotent, so a
/// retried send is not duplicated by the broker.
pub fn producer(config: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    let mut client = base_config(config);
    client
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5");
    client.create()
}

fn base_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.bootstrap_servers);
    for (key, value) in config.properties.iter() {
        client.set(key, value);
    }
    client
}
