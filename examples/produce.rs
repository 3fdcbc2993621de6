//! Produces a JSON lines file to a Kafka topic, one message per line keyed
//! by model, for the broker bench (`benches/broker/run.sh`).
//!
//! `cargo run --release --example produce -- BOOTSTRAP TOPIC FILE`

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, topic, file] = args.as_slice() else {
        bail!("usage: produce BOOTSTRAP TOPIC FILE");
    };
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .context("creating the producer")?;
    let reader = BufReader::new(File::open(file).with_context(|| file.clone())?);
    let mut sent = 0u64;
    for line in reader.lines() {
        let line = line?;
        let mut record = BaseRecord::to(topic).key("bench").payload(line.as_str());
        // A full local queue waits for deliveries rather than dropping.
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    println!("{sent}");
    Ok(())
}
