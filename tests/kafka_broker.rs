//! Smoke tests of the real Kafka broker that integration tests use (`tools/kafka/`,
//! `tests/support/kafka.rs`): it accepts topics, keeps order within a partition, serves a
//! consumer group with committed offsets, and comes back after a clean stop and a crash
//! with its address and data.

#[path = "support/kafka.rs"]
mod kafka;

use std::time::Duration;

use kafka::KafkaBroker;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::Offset;

const TIMEOUT: Duration = Duration::from_secs(60);

fn producer(broker: &KafkaBroker) -> FutureProducer {
    broker
        .client_config()
        // Idempotence keeps the order within a partition while several requests are in flight.
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

fn consumer(broker: &KafkaBroker, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = broker
        .client_config()
        .set("group.id", broker.unique_group("smoke-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Produces `payloads` to partition 0 of `topic`, all in flight at once, and checks that
/// they got consecutive offsets starting at `first_offset`.
async fn produce(producer: &FutureProducer, topic: &str, payloads: &[String], first_offset: i64) {
    let deliveries: Vec<_> = payloads
        .iter()
        .map(|payload| {
            let record = FutureRecord::to(topic)
                .partition(0)
                .key("model-a")
                .payload(payload);
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let delivery = tokio::time::timeout(TIMEOUT, delivery)
            .await
            .expect("delivery timed out")
            .expect("delivery canceled")
            .unwrap_or_else(|(e, _)| panic!("delivery of message {i} failed: {e}"));
        assert_eq!(
            (delivery.partition, delivery.offset),
            (0, first_offset + i as i64)
        );
    }
}

/// Receives `n` messages; returns their payloads and commits after the last one.
async fn consume(consumer: &StreamConsumer, n: usize) -> Vec<String> {
    let mut received = Vec::with_capacity(n);
    while received.len() < n {
        let message = tokio::time::timeout(TIMEOUT, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages after {TIMEOUT:?}", received.len()))
            .expect("consume");
        assert_eq!(
            message.offset(),
            received.len() as i64,
            "offsets must be consecutive"
        );
        let payload = message
            .payload_view::<str>()
            .expect("payload")
            .expect("utf-8");
        received.push(payload.to_owned());
        if received.len() == n {
            consumer
                .commit_message(&message, CommitMode::Sync)
                .expect("commit");
        }
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_come_back_in_order_through_a_consumer_group() {
    let broker = KafkaBroker::shared();
    let topic = broker.unique_topic("smoke");
    broker.create_topic(&topic, 1).await;

    let payloads: Vec<String> = (0..1000).map(|i| format!("event-{i:04}")).collect();
    produce(&producer(broker), &topic, &payloads, 0).await;

    let consumer = consumer(broker, &topic);
    assert_eq!(consume(&consumer, payloads.len()).await, payloads);

    // The group's offset went through the group coordinator (__consumer_offsets).
    let committed = consumer.committed(TIMEOUT).expect("committed offsets");
    let offset = committed
        .find_partition(&topic, 0)
        .expect("partition 0")
        .offset();
    assert_eq!(offset, Offset::Offset(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_broker_keeps_address_and_data_across_stop_and_crash() {
    let broker = KafkaBroker::start_private();
    assert!(!broker.is_external());
    let topic = broker.unique_topic("restart");
    broker
        .create_topic_with(&topic, 1, &[("cleanup.policy", "compact")])
        .await;
    let batch = |from: usize| {
        (from..from + 10)
            .map(|i| format!("event-{i}"))
            .collect::<Vec<_>>()
    };

    produce(&producer(&broker), &topic, &batch(0), 0).await;
    broker.stop();
    broker.restart();
    produce(&producer(&broker), &topic, &batch(10), 10).await;
    broker.kill();
    broker.restart();

    let consumer = consumer(&broker, &topic);
    let all: Vec<String> = batch(0).into_iter().chain(batch(10)).collect();
    assert_eq!(consume(&consumer, all.len()).await, all);
}
