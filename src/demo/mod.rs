//! `driftwarden demo`: the whole service on one machine with nothing
//! installed.
//!
//! librdkafka's in-process mock cluster plays the broker; a generator
//! produces traffic for a sample churn model whose `monthly_charges` and
//! `plan` drift half-way; the real service consumes it with a baseline
//! written to a temporary directory and loaded through the normal
//! configuration path; a local HTTP receiver plays the webhook and a
//! consumer of the retraining topic plays the training system. The demo
//! prints a timeline and a summary.

pub mod generator;
mod receiver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::broadcast::error::RecvError;

use crate::alert::{AlertStatus, Notification};
use crate::service::{self, Handles, ServiceEvent};

use generator::{DriftPlan, Generator};

/// Topic the demo's predictions go to.
pub const PREDICTIONS: &str = "predictions";
/// Topic the demo's retraining triggers go to.
pub const RETRAIN: &str = "driftwarden.retrain";
/// First event time of the demo stream (2026-12-03T10:00:00Z).
pub const START_MS: i64 = 1_796_292_000_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Events to produce in total (the mock cluster keeps about 100k per
    /// partition; keep well below).
    pub events: usize,
    /// Index of the first drifted event.
    pub drift_at: usize,
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Keep running after the summary, for the API and dashboard.
    pub keep_running: bool,
    /// Seed of the traffic.
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            events: 40_000,
            drift_at: 20_000,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            keep_running: false,
            seed: 7,
        }
    }
}

/// What happened, for the summary (and tests).
#[derive(Debug, Default)]
pub struct DemoSummary {
    /// Events the service applied.
    pub events_applied: u64,
    /// Firing notifications decided.
    pub firing: Vec<Notification>,
    /// Webhook requests received.
    pub webhook_requests: usize,
    /// Retraining triggers read back from the topic.
    pub retrain_messages: usize,
    /// Events between the drift's start and the first firing decision.
    pub detection_delay_events: Option<i64>,
}

/// Runs the demo and prints its timeline.
pub async fn run(options: DemoOptions) -> anyhow::Result<DemoSummary> {
    let cluster = MockCluster::new(1).context("starting the in-process Kafka mock cluster")?;
    for topic in [PREDICTIONS, RETRAIN] {
        cluster
            .create_topic(topic, 1, 1)
            .with_context(|| format!("creating topic {topic}"))?;
    }
    let bootstrap = cluster.bootstrap_servers();
    let dir = demo_dir()?;
    let baseline =
        Generator::new(options.seed ^ 0xBA5E, START_MS, DriftPlan::default()).baseline(5_000)?;
    let baseline_path = dir.join("churn-baseline.json");
    baseline.save(&baseline_path)?;
    say(&format!(
        "baseline {} written to {} (5,000 rows, 8 features)",
        baseline.id,
        baseline_path.display()
    ));

    let receiver = receiver::start().await?;
    let config_path = write_config(
        &dir,
        &bootstrap,
        &baseline_path,
        receiver.url(),
        options.listen,
    )?;
    let config = crate::config::load(Some(&config_path), std::iter::empty(), &[])
        .map_err(|e| anyhow::anyhow!("demo configuration invalid:\n{e}"))?;

    let handles = Handles::default();
    // The demo knows where its drift starts: the service times the
    // detection delay from there (GET /api/v1/stats, the histograms).
    let step_ms = Generator::new(options.seed, START_MS, DriftPlan::default()).step_ms;
    handles.episodes.start(
        generator::MODEL,
        START_MS + options.drift_at as i64 * step_ms,
    );
    let mut events = handles.events.subscribe();
    let shutdown = handles.shutdown.clone();
    crate::service::cancel_on_signals(shutdown.clone());
    let service = tokio::spawn(service::run(config, handles));
    let retrains = tokio::spawn(read_retrain_topic(bootstrap.clone(), shutdown.clone()));

    produce(&bootstrap, &options).await?;
    say(&format!(
        "produced {} events to '{PREDICTIONS}'; drift in monthly_charges and plan from event {}",
        options.events, options.drift_at
    ));
    let mut summary = follow(&mut events, &options).await;
    summary.webhook_requests = receiver.requests();

    if options.keep_running {
        say("still running (Ctrl-C to stop); the API stays up");
        shutdown.cancelled().await;
    }
    shutdown.cancel();
    service.await.context("service task")??;
    summary.retrain_messages = retrains.await.unwrap_or(0);
    print_summary(&summary, &options);
    drop(cluster);
    Ok(summary)
}

fn demo_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("driftwarden-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn write_config(
    dir: &Path,
    bootstrap: &str,
    baseline: &Path,
    webhook: &str,
    listen: SocketAddr,
) -> anyhow::Result<PathBuf> {
    let text = format!(
        r#"# Written by `driftwarden demo`.
[service]
http_listen = "{listen}"
shutdown_deadline = "10s"

[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "driftwarden-demo"
prediction_topics = ["{PREDICTIONS}"]
retrain_topic = "{RETRAIN}"

[monitor]
window_size = 1000
check_interval = 1
decision = "calibrated"
target_run_length = 1000000
for_events = 25
resolve_after_events = 500

[alerts]
channels = ["webhook"]
group_wait_events = 200

[alerts.retry]
initial_backoff = "200ms"

[channels.webhook]
url = "{webhook}"

[retrain]
cooldown = "1h"

[checkpoint]
dir = "{}"

[[models]]
name = "churn"
baseline = "{}"
"#,
        dir.join("state").display(),
        baseline.display()
    );
    let path = dir.join("driftwarden-demo.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

async fn produce(bootstrap: &str, options: &DemoOptions) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        // The mock cluster keeps about 5 MiB per partition; compressed, the
        // whole demo stream fits, so the consumer never loses its place.
        .set("compression.type", "lz4")
        .create()
        .context("creating the demo producer")?;
    let mut generator = Generator::new(options.seed, START_MS, DriftPlan::default());
    for i in 0..options.events {
        let payload = serde_json::to_vec(&generator.event(i >= options.drift_at))?;
        let record = FutureRecord::to(PREDICTIONS)
            .key(generator::MODEL)
            .payload(&payload);
        // Queue without waiting for each acknowledgement; wait only when
        // librdkafka's local queue is full.
        let mut record = record;
        loop {
            match producer.send_result(record) {
                Ok(_) => break,
                Err((_, r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the demo producer")?;
    Ok(())
}

/// Prints the timeline until every event is applied and deliveries settle.
async fn follow(
    events: &mut tokio::sync::broadcast::Receiver<ServiceEvent>,
    options: &DemoOptions,
) -> DemoSummary {
    let mut summary = DemoSummary::default();
    let quiet = Duration::from_secs(3);
    loop {
        let next = tokio::time::timeout(quiet, events.recv()).await;
        match next {
            Ok(Ok(event)) => note(event, &mut summary, options),
            Ok(Err(RecvError::Lagged(_))) => continue,
            Ok(Err(RecvError::Closed)) => break,
            Err(_) if summary.events_applied >= options.events as u64 => break,
            Err(_) => continue,
        }
    }
    summary
}

fn note(event: ServiceEvent, summary: &mut DemoSummary, options: &DemoOptions) {
    match event {
        ServiceEvent::Listening(address) => say(&format!(
            "HTTP API on http://{address} (/readyz, /metrics, /api/v1/models)"
        )),
        ServiceEvent::Progress { events } => {
            summary.events_applied = summary.events_applied.max(events);
            say(&format!("{events:>6} events applied"));
        }
        ServiceEvent::Notified(n) => {
            let index = (n.decided_at_ms - START_MS) / 10 + 1;
            if n.status == AlertStatus::Firing && summary.firing.is_empty() {
                let first_start = n
                    .alerts
                    .iter()
                    .map(|a| a.starts_at_ms)
                    .min()
                    .unwrap_or(n.decided_at_ms);
                summary.detection_delay_events =
                    Some((first_start - START_MS) / 10 + 1 - options.drift_at as i64);
            }
            let word = if n.status == AlertStatus::Firing {
                "DRIFT DETECTED"
            } else {
                "RESOLVED"
            };
            say(&format!(
                "event {index}: {word} in model {} (notification #{})",
                n.model, n.sequence
            ));
            for alert in &n.alerts {
                let e = &alert.evidence;
                let p = e.p_value.map_or("-".to_string(), |p| format!("{p:.3e}"));
                say(&format!(
                    "    {:<16} {:<6} {:?} statistic {:.4}  p {p}  threshold {:.4}  n {} m {}",
                    alert.feature,
                    e.test,
                    alert.status,
                    e.statistic,
                    e.threshold,
                    e.window_size,
                    e.baseline_size
                ));
            }
            if n.status == AlertStatus::Firing {
                summary.firing.push(n);
            }
        }
        ServiceEvent::RetrainPublished {
            model,
            idempotency_key,
            partition,
            offset,
        } => say(&format!(
            "retraining trigger for {model} published to '{RETRAIN}' [{partition}@{offset}] key {idempotency_key}"
        )),
    }
}

async fn read_retrain_topic(bootstrap: String, stop: tokio_util::sync::CancellationToken) -> usize {
    let consumer: StreamConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "demo-training-system")
        .set("auto.offset.reset", "earliest")
        .create()
    {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, "demo retrain reader not started");
            return 0;
        }
    };
    if consumer.subscribe(&[RETRAIN]).is_err() {
        return 0;
    }
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return seen,
            message = consumer.recv() => if let Ok(m) = message {
                seen += 1;
                let body = m.payload().map(String::from_utf8_lossy).unwrap_or_default();
                let short: String = body.chars().take(120).collect();
                say(&format!("training system received a retraining trigger: {short}…"));
            }
        }
    }
}

fn print_summary(summary: &DemoSummary, options: &DemoOptions) {
    say("summary:");
    say(&format!(
        "    events applied           {}",
        summary.events_applied
    ));
    say(&format!(
        "    drift started at event   {}",
        options.drift_at
    ));
    if let Some(delay) = summary.detection_delay_events {
        say(&format!(
            "    first alert fired after  {delay} drifted events (25-event persistence included)"
        ));
    }
    let features: Vec<String> = summary
        .firing
        .first()
        .map(|n| {
            n.alerts
                .iter()
                .map(|a| format!("{}:{}", a.check.as_str(), a.feature))
                .collect()
        })
        .unwrap_or_default();
    say(&format!(
        "    first alert lists        {}",
        features.join(", ")
    ));
    say(&format!(
        "    webhook requests         {}",
        summary.webhook_requests
    ));
    say(&format!(
        "    retraining triggers read {}",
        summary.retrain_messages
    ));
}

fn say(line: &str) {
    println!("[demo] {line}");
}
