//! Kafka clients: the prediction consumer (with a context that tracks
//! assignment and lag for readiness and metrics) and the producer used for
//! retraining triggers and dead letters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

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
    /// The latest checkpoint could not be written. Monitoring goes on (the
    /// service stays ready), but a crash now would re-read more from Kafka,
    /// and a lost checkpoint directory would lose the windows.
    pub checkpoint_failing: AtomicBool,
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

    /// What works less well than it should while the service is still
    /// ready, for the probe's body.
    pub fn degradations(&self) -> Vec<&'static str> {
        let mut degraded = Vec::new();
        if self.checkpoint_failing.load(Ordering::Relaxed) {
            degraded.push("checkpoints failing");
        }
        degraded
    }
}

/// The next offset to read of every partition, as the ingestion loop has
/// applied them: seeded from the checkpoint at start, advanced after each
/// applied message, and used to position a partition when it is assigned
/// (so a partition revoked and assigned again resumes where this instance
/// left it, not at the group's older committed offset).
#[derive(Debug, Default)]
pub struct Positions(Mutex<HashMap<String, HashMap<i32, i64>>>);

impl Positions {
    /// Positions restored from a checkpoint.
    pub fn from_checkpoint(offsets: &[crate::state::PartitionOffset]) -> Positions {
        let positions = Positions::default();
        for o in offsets {
            positions.advance(&o.topic, o.partition, o.next_offset);
        }
        positions
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<i32, i64>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that every message before `next_offset` has been applied.
    pub fn advance(&self, topic: &str, partition: i32, next_offset: i64) {
        let mut map = self.lock();
        match map.get_mut(topic) {
            Some(partitions) => {
                partitions.insert(partition, next_offset);
            }
            None => {
                map.insert(topic.to_owned(), HashMap::from([(partition, next_offset)]));
            }
        }
    }

    /// Where to resume a partition, if this instance has applied from it.
    pub fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.lock().get(topic)?.get(&partition).copied()
    }

    /// Every position, sorted, for a checkpoint.
    pub fn snapshot(&self) -> Vec<crate::state::PartitionOffset> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .map(|(&partition, &next_offset)| crate::state::PartitionOffset {
                        topic: topic.clone(),
                        partition,
                        next_offset,
                    })
            })
            .collect();
        all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        all
    }
}

/// Consumer context: positions assigned partitions, records assignment,
/// broker state and lag.
pub struct MonitorContext {
    /// Readiness flags.
    pub readiness: Arc<Readiness>,
    /// Metrics for lag.
    pub metrics: Arc<Metrics>,
    /// Where each partition resumes.
    pub positions: Arc<Positions>,
}

impl ClientContext for MonitorContext {
    fn stats(&self, statistics: Statistics) {
        // Statistics keep coming while every broker is down; only a broker
        // connection in state UP means the broker is reachable.
        let up = statistics.brokers.values().any(|b| b.state == "UP");
        self.readiness.broker_up.store(up, Ordering::Relaxed);
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // The lag behind what this instance has applied (its stored
                // offset), falling back to the committed offset, which lags
                // by up to a checkpoint interval. librdkafka reports -1 for
                // partitions this client does not consume.
                let lag = if p.consumer_lag_stored >= 0 {
                    p.consumer_lag_stored
                } else {
                    p.consumer_lag
                };
                if *partition >= 0 && lag >= 0 {
                    self.metrics.set_consumer_lag(topic, *partition, lag);
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
    /// librdkafka's default rebalance, except that an assigned partition
    /// this instance has state for starts at its checkpointed (or applied)
    /// position rather than the group's committed offset: the windows
    /// reflect exactly the events before it.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        error: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let assigning = error == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        let revoking = error == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS;
        if assigning {
            let assigned: Vec<(String, i32)> = partitions
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            for (topic, partition) in assigned {
                if let Some(next) = self.positions.get(&topic, partition)
                    && let Err(error) =
                        partitions.set_partition_offset(&topic, partition, Offset::Offset(next))
                {
                    tracing::error!(%error, topic, partition, "cannot position partition");
                }
            }
        }
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            rdkafka::consumer::RebalanceProtocol::Cooperative
        );
        let result = match (assigning, revoking, cooperative) {
            (true, _, true) => consumer.incremental_assign(partitions),
            (true, _, false) => consumer.assign(partitions),
            (false, _, true) => consumer.incremental_unassign(partitions),
            (false, _, false) => consumer.unassign(),
        };
        if let Err(error) = result {
            tracing::error!(%error, "applying the rebalance failed");
        }
        let rebalance = if assigning {
            Rebalance::Assign(partitions)
        } else if revoking {
            Rebalance::Revoke(partitions)
        } else {
            Rebalance::Error(KafkaError::Rebalance(error.into()))
        };
        self.post_rebalance(consumer, &rebalance);
    }

    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let positioned: Vec<String> = partitions
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some(format!("{}/{}@{o}", e.topic(), e.partition())),
                        _ => None,
                    })
                    .collect();
                tracing::info!(partitions = partitions.count(), from_checkpoint = ?positioned,
                    "partitions assigned");
                self.readiness.assigned.store(true, Ordering::Relaxed);
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions revoked");
            }
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance error"),
        }
    }
}

/// The prediction consumer. Offsets are stored by the service after each
/// applied message (for the lag statistics) and committed to the group
/// only after a checkpoint that covers them, never automatically: the
/// group's offsets are for lag tools and for a start without a checkpoint.
pub fn consumer(
    config: &KafkaConfig,
    context: MonitorContext,
) -> Result<StreamConsumer<MonitorContext>, KafkaError> {
    let mut client = base_config(config);
    client
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
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
