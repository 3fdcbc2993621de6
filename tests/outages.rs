//! Faults around the service, with the service as a child process
//! (`driftwarden run`) on a real Kafka broker: the broker stopping, a
//! webhook receiver down across a restart of the service, the checkpoint
//! directory becoming unwritable, and a receiver so slow that its queue
//! overflows.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/process.rs"]
mod process;
#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/service.rs"]
mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use kafka::KafkaBroker;
use process::{ChildSettings, ServiceProcess, write_config};
use receivers::{Behaviour, Receiver};
use service::Scratch;

const BASELINE_ROWS: usize = 3_000;

fn tweaks(webhook: &str) -> ChildSettings<'_> {
    ChildSettings::new(webhook)
}

/// `/readyz` as (HTTP status, body).
async fn readiness(service: &ServiceProcess) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{}/readyz", service.api.base))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `check` every 200 ms until it holds; panics after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, service: &ServiceProcess, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "not within {within:?}: {what}\n{}",
            service.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Drift that comes and goes: `cycles` times `clean` events then `drifted`
/// ones.
fn flipping_stream(seed: u64, cycles: usize, clean: usize, drifted: usize) -> Vec<Vec<u8>> {
    let mut generator =
        driftwarden::demo::generator::Generator::new(seed, service::START_MS, service::test_plan());
    (0..cycles * (clean + drifted))
        .map(|i| serde_json::to_vec(&generator.event(i % (clean + drifted) >= clean)).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_of_thirty_seconds_is_reported_and_loses_nothing() {
    let broker = KafkaBroker::start_private();
    let scratch = Scratch::new("broker-outage");
    let topic = broker.unique_topic("predictions");
    broker.create_topic(&topic, 1).await;
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    let hook = Receiver::start(Behaviour::Ok).await;
    let url = hook.url("/hook");
    let (config, port) = write_config(
        &scratch.0,
        broker.bootstrap(),
        &topic,
        "outage",
        &baseline,
        &tweaks(&url),
    );
    let events = service::stream(31, 20_000, 0, 0);
    service::produce(broker.bootstrap(), &topic, &events[..10_000]).await;
    let running = ServiceProcess::start(&config, port, &scratch.0.join("service.log")).await;
    running
        .wait_applied("churn", 10_000, Duration::from_secs(120))
        .await;
    eventually(Duration::from_secs(30), "ready", &running, || async {
        readiness(&running).await.0 == 200
    })
    .await;

    let stopped = Instant::now();
    broker.stop();
    // Readiness reports the outage while it lasts.
    eventually(
        Duration::from_secs(30),
        "readiness reports the broker unreachable",
        &running,
        || async {
            let (status, body) = readiness(&running).await;
            status == 503 && body["reasons"].to_string().contains("broker unreachable")
        },
    )
    .await;
    while stopped.elapsed() < Duration::from_secs(30) {
        let (status, body) = readiness(&running).await;
        assert_eq!(status, 503, "still down: {body}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    broker.restart();

    service::produce(broker.bootstrap(), &topic, &events[10_000..]).await;
    running
        .wait_applied("churn", 20_000, Duration::from_secs(120))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        running.events_applied("churn").await,
        20_000,
        "every event once"
    );
    eventually(
        Duration::from_secs(60),
        "ready again after the outage",
        &running,
        || async { readiness(&running).await.0 == 200 },
    )
    .await;
    assert!(running.terminate(Duration::from_secs(30)).await);
    hook.stop().await;
}

/// Idempotency keys of the entries the outbox file holds as pending.
fn pending_keys(dir: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join("state/outbox.jsonl")).unwrap_or_default();
    let mut pending = BTreeSet::new();
    for line in text.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let key = value["key"].as_str().unwrap_or_default().to_string();
        match value["op"].as_str() {
            Some("pending") => {
                pending.insert(key);
            }
            Some("settled") => {
                pending.remove(&key);
            }
            _ => {}
        }
    }
    pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_down_across_a_crash_gets_every_notification_once_after_recovery() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("receiver-outage");
    let topic = broker.unique_topic("predictions");
    broker.create_topic(&topic, 1).await;
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    // Nothing listens here until the receiver comes back.
    let hook_port = service::free_port();
    let url = format!("http://127.0.0.1:{hook_port}/hook");
    let mut settings = tweaks(&url);
    settings.max_attempts = 10_000;
    let (config, port) = write_config(
        &scratch.0,
        broker.bootstrap(),
        &topic,
        &broker.unique_group("receiver-outage"),
        &baseline,
        &settings,
    );
    let log = scratch.0.join("service.log");
    let first = ServiceProcess::start(&config, port, &log).await;
    service::produce(
        broker.bootstrap(),
        &topic,
        &flipping_stream(41, 3, 1_500, 1_500),
    )
    .await;
    first
        .wait_applied("churn", 9_000, Duration::from_secs(120))
        .await;
    // Deliveries are being retried, and the outbox holds them.
    eventually(
        Duration::from_secs(30),
        "retries while the receiver is down",
        &first,
        || async {
            first
                .metric(
                    "driftwarden_alert_delivery_attempts_total",
                    &[("channel", "webhook")],
                )
                .await
                >= 3.0
                && first
                    .metric("driftwarden_outbox_pending", &[("channel", "webhook")])
                    .await
                    >= 1.0
        },
    )
    .await;
    let notified = first.metric("driftwarden_notifications_total", &[]).await as usize;
    assert!(notified >= 3, "{notified} notifications decided");
    // A crash while they are undelivered.
    first.kill().await;
    let pending = pending_keys(&scratch.0);
    assert_eq!(
        pending.len(),
        notified,
        "every decided notification pending"
    );

    // The receiver comes back, then the service.
    let hook = Receiver::start_at(hook_port, Behaviour::Ok).await;
    let second = ServiceProcess::start(&config, port, &log).await;
    hook.wait_for(pending.len(), Duration::from_secs(60)).await;
    // Time for a duplicate to show, were there one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = hook.requests();
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for request in requests {
        let key = request.header("idempotency-key").unwrap().to_string();
        *per_key.entry(key).or_default() += 1;
    }
    assert_eq!(
        per_key.keys().cloned().collect::<BTreeSet<_>>(),
        pending,
        "the pending notifications, with the keys they had"
    );
    assert!(
        per_key.values().all(|&n| n == 1),
        "each once (the replayed events decided them again): {per_key:?}"
    );
    eventually(Duration::from_secs(10), "outbox empty", &second, || async {
        second
            .metric("driftwarden_outbox_pending", &[("channel", "webhook")])
            .await
            == 0.0
    })
    .await;
    assert!(second.terminate(Duration::from_secs(30)).await);
    hook.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_checkpoint_directory_is_an_error_a_metric_and_a_degradation() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("unwritable");
    let topic = broker.unique_topic("predictions");
    broker.create_topic(&topic, 1).await;
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    let hook = Receiver::start(Behaviour::Ok).await;
    let url = hook.url("/hook");
    let mut settings = tweaks(&url);
    settings.checkpoint_interval = "200ms";
    let (config, port) = write_config(
        &scratch.0,
        broker.bootstrap(),
        &topic,
        &broker.unique_group("unwritable"),
        &baseline,
        &settings,
    );
    let events = service::stream(51, 6_000, 0, 0);
    let running = ServiceProcess::start(&config, port, &scratch.0.join("service.log")).await;
    service::produce(broker.bootstrap(), &topic, &events[..2_000]).await;
    running
        .wait_applied("churn", 2_000, Duration::from_secs(60))
        .await;
    eventually(
        Duration::from_secs(10),
        "a checkpoint",
        &running,
        || async { checkpoints(&running).await.0 >= 1.0 },
    )
    .await;

    // The directory turns into a file: nothing can be written under it.
    let state = scratch.0.join("state");
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::write(&state, b"not a directory").unwrap();
    service::produce(broker.bootstrap(), &topic, &events[2_000..4_000]).await;
    // Monitoring continues.
    running
        .wait_applied("churn", 4_000, Duration::from_secs(60))
        .await;
    eventually(
        Duration::from_secs(10),
        "a failed checkpoint counted",
        &running,
        || async { checkpoints(&running).await.1 >= 1.0 },
    )
    .await;
    let (status, body) = readiness(&running).await;
    assert_eq!(status, 200, "still ready: {body}");
    assert_eq!(body["degraded"], serde_json::json!(["checkpoints failing"]));
    let log = std::fs::read_to_string(scratch.0.join("service.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("checkpoint could not be written")),
        "an ERROR log line:\n{}",
        running.log_tail()
    );

    // Writable again: the next checkpoint succeeds and the degradation
    // clears.
    std::fs::remove_file(&state).unwrap();
    let before = checkpoints(&running).await.0;
    service::produce(broker.bootstrap(), &topic, &events[4_000..]).await;
    running
        .wait_applied("churn", 6_000, Duration::from_secs(60))
        .await;
    eventually(
        Duration::from_secs(10),
        "checkpoints written again",
        &running,
        || async { checkpoints(&running).await.0 > before },
    )
    .await;
    assert_eq!(
        readiness(&running).await.1["degraded"],
        serde_json::json!([])
    );
    assert!(running.terminate(Duration::from_secs(30)).await);
    assert!(
        driftwarden::state::checkpoint::load(&state)
            .unwrap()
            .is_some()
    );
    hook.stop().await;
}

/// Runs `driftwarden run` over `config` until it exits (at most 60 s);
/// returns whether it succeeded and what it wrote.
fn run_to_exit(config: &Path) -> (bool, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_driftwarden"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("driftwarden started over an unreadable checkpoint");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_newer_checkpoint_stops_the_start_with_its_reason_and_is_kept() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("unreadable");
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    let settings = tweaks("http://127.0.0.1:9/hook");
    let (config, _) = write_config(
        &scratch.0,
        broker.bootstrap(),
        &broker.unique_topic("predictions"),
        &broker.unique_group("unreadable"),
        &baseline,
        &settings,
    );
    let state = scratch.0.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let file = driftwarden::state::checkpoint::path_in(&state);
    let body = br#"{"written_at_ms":0,"models":[],"offsets":[]}"#;
    let cases: [(Vec<u8>, &str); 3] = [
        // Cut short by a torn copy.
        (
            b"driftwarden-checkpoint 1 400 sha256:00\n{\"written".to_vec(),
            "is corrupt",
        ),
        // One byte changed after it was written.
        (
            [
                format!(
                    "driftwarden-checkpoint 1 {} sha256:{}\n",
                    body.len(),
                    "0".repeat(64)
                )
                .into_bytes(),
                body.to_vec(),
            ]
            .concat(),
            "checksum mismatch",
        ),
        // From a newer release.
        (
            [
                format!("driftwarden-checkpoint 7 {} sha256:00\n", body.len()).into_bytes(),
                body.to_vec(),
            ]
            .concat(),
            "has format version 7",
        ),
    ];
    for (bytes, reason) in cases {
        std::fs::write(&file, &bytes).unwrap();
        let (succeeded, output) = run_to_exit(&config);
        assert!(!succeeded, "started over it:\n{output}");
        assert!(output.contains(reason), "says {reason:?}:\n{output}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            bytes,
            "the file is left as it was"
        );
    }
}

/// Checkpoints (written, failed) so far, from the metrics.
async fn checkpoints(service: &ServiceProcess) -> (f64, f64) {
    let text = service.get_text("/metrics").await;
    let count = |outcome| {
        service::sample(
            &text,
            "driftwarden_checkpoints_total",
            &[("outcome", outcome)],
        )
    };
    (count("written"), count("failed"))
}

/// Peak resident memory allowed while a slow receiver holds notifications:
/// the queues are bounded, so memory does not grow with the backlog.
const BACKPRESSURE_RSS_BOUND_KIB: u64 = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_taking_five_seconds_per_request_does_not_hold_up_ingestion() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("backpressure");
    let topic = broker.unique_topic("predictions");
    broker.create_topic(&topic, 1).await;
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    let hook = Receiver::start(Behaviour::Slow(Duration::from_secs(5))).await;
    let url = hook.url("/hook");
    let mut settings = tweaks(&url);
    settings.queue_capacity = 2;
    settings.max_attempts = 1;
    settings.shutdown_deadline = "2s";
    let (config, port) = write_config(
        &scratch.0,
        broker.bootstrap(),
        &topic,
        &broker.unique_group("backpressure"),
        &baseline,
        &settings,
    );
    let events = flipping_stream(61, 20, 1_500, 1_500);
    let total = events.len() as u64;
    service::produce(broker.bootstrap(), &topic, &events).await;
    let started = Instant::now();
    let running = ServiceProcess::start(&config, port, &scratch.0.join("service.log")).await;
    running
        .wait_applied("churn", total, Duration::from_secs(300))
        .await;
    let ingest_time = started.elapsed();
    let answered = hook.requests().len();
    let text = running.get_text("/metrics").await;
    let notified = service::sample(&text, "driftwarden_notifications_total", &[]);
    let dropped = service::sample(
        &text,
        "driftwarden_alert_deliveries_total",
        &[("channel", "webhook"), ("outcome", "dropped_queue_full")],
    );
    let depth = service::sample(
        &text,
        "driftwarden_alert_queue_depth",
        &[("channel", "webhook")],
    );
    eprintln!(
        "{total} events applied in {ingest_time:?}; {notified} notifications decided, \
         {answered} requests received, {dropped} dropped (queue full), queue depth {depth}"
    );
    // Ingestion finished while delivery had barely begun: it did not wait
    // for the receiver.
    assert!(notified >= 20.0, "{notified} notifications");
    assert!(
        (answered as f64) < notified / 2.0,
        "{answered} of {notified} answered by the time every event was applied"
    );
    // The overflow policy, visible in metrics: the queue stays at its
    // capacity and the rest is dropped for this channel.
    assert!(dropped >= 1.0, "dropped_queue_full {dropped}");
    assert!(depth <= 2.0, "queue depth {depth}");
    let peak = running.peak_rss_kib();
    eprintln!("peak resident memory {peak} KiB");
    assert!(peak < BACKPRESSURE_RSS_BOUND_KIB, "peak RSS {peak} KiB");
    assert!(running.terminate(Duration::from_secs(30)).await);
    hook.stop().await;
}
