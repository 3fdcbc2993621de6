//! Nothing lost across crashes, and bad input at scale, with the service as
//! a child process (`driftwarden run`) on the real Kafka broker.
//!
//! One stream of 1,000,000 messages (seeded): 900,000 events of the sample
//! model with drift episodes, and 100,000 malformed messages (10 %) of five
//! kinds. It is consumed twice, by two consumer groups:
//!
//! 1. uninterrupted, then stopped with SIGTERM: the reference. Every valid
//!    event is counted once, the malformed ones by reason, and the process's
//!    peak resident memory stays under a stated bound;
//! 2. with SIGKILL at ten seeded moments (half at an event count, half at a
//!    delay after start, so some fall during restore, start-up or a
//!    checkpoint write), restarting each time, then SIGTERM.
//!
//! At the end the two final checkpoints hold the same monitor state (window
//! contents, alert phases, counters, grouping), the webhook received the
//! same notifications in the same order (by idempotency key, with the same
//! alerts), no alert id is missing, and a notification that arrived twice
//! came both times with the same key and the same alerts.

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
use std::time::Duration;

use driftwarden::demo::generator::Generator;
use kafka::KafkaBroker;
use process::{ChildSettings, ServiceProcess};
use receivers::{Behaviour, Receiver, Recorded};
use serde_json::Value;
use service::Scratch;

const MESSAGES: usize = 1_000_000;
const MALFORMED_EVERY: usize = 10;
const KILLS: usize = 10;
const WINDOW: usize = 1_000;
const BASELINE_ROWS: usize = 5_000;
/// Peak resident memory allowed for the reference run: the monitor's
/// windows and baseline of one model are a few MiB; the rest is the Kafka
/// client's buffers (librdkafka pre-fetches up to its queue limits), the
/// runtime and the HTTP server.
const PEAK_RSS_BOUND_KIB: u64 = 512 * 1024;

/// The five kinds of malformed message, and the reason each is counted by.
const MALFORMED: [&str; 5] = [
    "invalid_json",
    "not_an_object",
    "missing_model",
    "unknown_model",
    "wrong_type",
];

/// The stream: valid events with a drift episode in every 100,000, and
/// every tenth message malformed (cycling through [`MALFORMED`]).
fn stream() -> Vec<Vec<u8>> {
    let mut generator = Generator::new(11, service::START_MS, service::test_plan());
    let mut out = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1 {
            let kind = (i / MALFORMED_EVERY) % MALFORMED.len();
            out.push(malformed(kind, &mut generator));
            continue;
        }
        let drifted = (60_000..75_000).contains(&(i % 100_000));
        out.push(serde_json::to_vec(&generator.event(drifted)).unwrap());
    }
    out
}

fn malformed(kind: usize, generator: &mut Generator) -> Vec<u8> {
    match MALFORMED[kind] {
        "invalid_json" => b"{\"model\": \"churn\", \"features\": {".to_vec(),
        "not_an_object" => b"\"a string\"".to_vec(),
        "missing_model" => br#"{"id": "x", "timestamp": 1, "features": {}}"#.to_vec(),
        "unknown_model" => {
            br#"{"model": "no-such-model", "id": "x", "timestamp": 1, "features": {}}"#.to_vec()
        }
        "wrong_type" => {
            // A valid event whose first numeric feature is a string (it
            // takes a place in the generator's sequence; both runs read the
            // same stream).
            let mut event = generator.event(false);
            let features = event["features"].as_object_mut().unwrap();
            let numeric = features
                .iter()
                .find(|(_, v)| v.is_number())
                .map(|(k, _)| k.clone())
                .unwrap();
            features.insert(numeric, Value::from("not a number"));
            serde_json::to_vec(&event).unwrap()
        }
        other => unreachable!("{other}"),
    }
}

/// A deterministic sequence of numbers for the kill moments.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The configuration of one run, with its path and port.
fn write_config(
    dir: &Path,
    broker: &KafkaBroker,
    topic: &str,
    group: &str,
    baseline: &Path,
    webhook: &str,
) -> (std::path::PathBuf, u16) {
    let mut settings = ChildSettings::new(webhook);
    settings.window = WINDOW;
    settings.checkpoint_events = 50_000;
    settings.checkpoint_interval = "700ms";
    process::write_config(dir, broker.bootstrap(), topic, group, baseline, &settings)
}

/// What one notification request said: its key, status and alerts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Said {
    key: String,
    status: String,
    alerts: Vec<(String, String)>,
}

fn said(request: &Recorded) -> Said {
    let body = request.json();
    Said {
        key: request
            .header("idempotency-key")
            .expect("Idempotency-Key header")
            .to_string(),
        status: body["status"].as_str().unwrap_or_default().to_string(),
        alerts: body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["fingerprint"].as_str().unwrap_or_default().to_string(),
                    a["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    }
}

/// Distinct notifications in order of first arrival, and whether every
/// repeat equals its first arrival.
fn distinct_in_order(requests: &[Recorded]) -> (Vec<Said>, bool) {
    let mut first: BTreeMap<String, Said> = BTreeMap::new();
    let mut order = Vec::new();
    let mut repeats_equal = true;
    for request in requests {
        let s = said(request);
        match first.get(&s.key) {
            Some(earlier) => repeats_equal &= *earlier == s,
            None => {
                first.insert(s.key.clone(), s.clone());
                order.push(s);
            }
        }
    }
    (order, repeats_equal)
}

/// Waits until the receiver has been quiet for `quiet`.
async fn settle(receiver: &Receiver, quiet: Duration) -> Vec<Recorded> {
    let mut seen = receiver.requests().len();
    loop {
        tokio::time::sleep(quiet).await;
        let now = receiver.requests().len();
        if now == seen {
            return receiver.requests();
        }
        seen = now;
    }
}

fn final_state(dir: &Path) -> Vec<driftwarden::monitor::ModelState> {
    driftwarden::state::checkpoint::load(&dir.join("state"))
        .expect("readable checkpoint")
        .expect("a checkpoint after SIGTERM")
        .models
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_messages_survive_ten_sigkills_and_bad_ones_are_counted_by_reason() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("crash");
    let topic = broker.unique_topic("predictions-crash");
    broker.create_topic(&topic, 1).await;
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    let messages = stream();
    let valid = (MESSAGES - MESSAGES / MALFORMED_EVERY) as u64;
    service::produce(broker.bootstrap(), &topic, &messages).await;
    drop(messages);

    // 1. The reference: uninterrupted.
    let reference_hook = Receiver::start(Behaviour::Ok).await;
    let reference_dir = scratch.0.join("reference");
    let (config, port) = write_config(
        &reference_dir,
        broker,
        &topic,
        &broker.unique_group("crash-reference"),
        &baseline,
        &reference_hook.url("/hook"),
    );
    let log = scratch.0.join("reference.log");
    let reference = ServiceProcess::start(&config, port, &log).await;
    reference
        .wait_applied("churn", valid, Duration::from_secs(600))
        .await;
    // Every valid event once, every malformed one by its reason. (The
    // loop hands its counts to the metrics every 250 ms: wait for the last
    // hand-over.)
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = reference.get_text("/metrics").await;
        if service::sample(
            &metrics,
            "driftwarden_events_consumed_total",
            &[("model", "churn")],
        ) >= valid as f64
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        service::sample(
            &metrics,
            "driftwarden_events_consumed_total",
            &[("model", "churn")]
        ),
        valid as f64
    );
    for reason in MALFORMED {
        assert_eq!(
            service::sample(
                &metrics,
                "driftwarden_events_rejected_total",
                &[("reason", reason)]
            ),
            (MESSAGES / MALFORMED_EVERY / MALFORMED.len()) as f64,
            "rejected as {reason}"
        );
    }
    let peak = reference.peak_rss_kib();
    eprintln!("reference run: peak resident memory {peak} KiB");
    assert!(
        peak < PEAK_RSS_BOUND_KIB,
        "peak RSS {peak} KiB over {PEAK_RSS_BOUND_KIB} KiB"
    );
    let reference_requests = settle(&reference_hook, Duration::from_secs(2)).await;
    assert!(reference.terminate(Duration::from_secs(60)).await);
    let (reference_said, _) = distinct_in_order(&reference_requests);
    assert!(
        reference_said.len() >= 10,
        "the drift episodes gave {} notifications",
        reference_said.len()
    );

    // 2. The same stream, killed ten times.
    let crash_hook = Receiver::start(Behaviour::Ok).await;
    let crash_dir = scratch.0.join("crashing");
    let (config, port) = write_config(
        &crash_dir,
        broker,
        &topic,
        &broker.unique_group("crash-killed"),
        &baseline,
        &crash_hook.url("/hook"),
    );
    let log = scratch.0.join("crashing.log");
    let mut moments = SplitMix(0x6b69_6c6c);
    let mut targets: Vec<u64> = (0..KILLS / 2)
        .map(|_| 20_000 + moments.next() % (valid - 60_000))
        .collect();
    targets.sort_unstable();
    let mut targets = targets.into_iter();
    for kill in 0..KILLS {
        let spawned = std::time::Instant::now();
        let running = ServiceProcess::start(&config, port, &log).await;
        if kill % 2 == 0 {
            // The restart time: from spawning the process (which restores
            // the checkpoint before its API answers) to the first event
            // consumed after the restored ones.
            let restored = running.events_applied("churn").await;
            running
                .wait_applied("churn", restored + 1, Duration::from_secs(60))
                .await;
            eprintln!(
                "restart {kill}: {restored} events restored, consuming {:?} after spawn",
                spawned.elapsed()
            );
            let target = targets.next().unwrap();
            running
                .wait_applied("churn", target, Duration::from_secs(600))
                .await;
            eprintln!("kill {kill}: at {target} events or just after");
        } else {
            let delay = Duration::from_millis(moments.next() % 1_500);
            tokio::time::sleep(delay).await;
            eprintln!("kill {kill}: {delay:?} after start");
        }
        running.kill().await;
    }
    let last = ServiceProcess::start(&config, port, &log).await;
    last.wait_applied("churn", valid, Duration::from_secs(600))
        .await;
    // Exactly once: nothing more arrives after the stream's end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        last.events_applied("churn").await,
        valid,
        "{}",
        last.log_tail()
    );
    let crash_requests = settle(&crash_hook, Duration::from_secs(2)).await;
    assert!(last.terminate(Duration::from_secs(60)).await);

    // The same windows, alert states and counters.
    let reference_state = final_state(&reference_dir);
    let crash_state = final_state(&crash_dir);
    assert_eq!(reference_state.len(), crash_state.len());
    for (r, c) in reference_state.iter().zip(&crash_state) {
        assert_eq!(r.events, c.events);
        assert_eq!(r.checks, c.checks, "window contents and alert phases");
        assert_eq!(r.quality, c.quality, "data-quality windows");
        assert_eq!(r.group, c.group, "notification grouping");
        assert_eq!(r, c);
    }

    // The same notifications in the same order; repeats only with the same
    // key and the same content.
    let (crash_said, repeats_equal) = distinct_in_order(&crash_requests);
    assert!(repeats_equal, "a repeated key carried other content");
    assert_eq!(
        crash_said.iter().map(|s| &s.key).collect::<Vec<_>>(),
        reference_said.iter().map(|s| &s.key).collect::<Vec<_>>(),
        "notifications by idempotency key, in order"
    );
    assert_eq!(crash_said, reference_said);
    let alert_ids = |said: &[Said]| -> BTreeSet<String> {
        said.iter()
            .flat_map(|s| s.alerts.iter().map(|(id, _)| id.clone()))
            .collect()
    };
    assert_eq!(alert_ids(&crash_said), alert_ids(&reference_said));
    eprintln!(
        "reference: {} notifications; after {KILLS} kills: {} requests, {} distinct",
        reference_requests.len(),
        crash_requests.len(),
        crash_said.len()
    );
    reference_hook.stop().await;
    crash_hook.stop().await;
}
