//! The dashboard in a real browser. The service runs in-process on
//! librdkafka's mock cluster, fed a stream whose `monthly_charges` and
//! `plan` drift half-way; Debian's Chromium (headless) loads the page, and
//! the test reads every feature card's state from the DOM it dumps. It
//! leaves screenshots at `target/dashboard.png` (the page as it opens) and
//! `target/dashboard-plan.png` (the categorical view of `plan`).
//!
//! CI installs Chromium (`tools/test-all.sh`); without it the test fails
//! and says so rather than passing silently.

#[path = "support/service.rs"]
mod service;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use driftwarden::demo::generator::{self, Generator};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use service::{Running, Scratch};

const CHROMIUM: &str = "/usr/bin/chromium";
const TOPIC: &str = "predictions";
const EVENTS: usize = 6_000;
const DRIFT_AT: usize = 3_000;
/// Produced in batches with a pause, so the once-a-second history sampler
/// sees the statistics rise rather than one jump.
const BATCH: usize = 100;
const PAUSE: Duration = Duration::from_millis(250);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_marks_exactly_the_drifted_features_as_firing() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: this test drives Debian's Chromium headless. \
         Install it with `apt-get install -y chromium` (tools/test-all.sh does)."
    );
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 1, 1).expect("topic");
    let bootstrap = cluster.bootstrap_servers();
    let scratch = Scratch::new("dashboard");
    let (_, baseline) = service::sample_baseline(&scratch.0, 5_000);
    let running = Running::start(&scratch.0, &config(&bootstrap, &baseline)).await;

    produce_paced(&bootstrap).await;
    running
        .wait_applied(generator::MODEL, EVENTS as u64, Duration::from_secs(120))
        .await;
    // One more sampling tick, so the history ends at the final state.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let url = format!("http://{}/", running.address);
    let dom = chromium(&["--dump-dom", &url]).await;
    let cards = feature_cards(&dom);
    let expected = expected_states();
    assert_eq!(
        cards.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "one card per feature and the prediction"
    );
    for (feature, card) in &cards {
        assert_eq!(
            card.state,
            expected[feature.as_str()],
            "data-state of {feature}"
        );
        assert_eq!(card.text, card.state, "visible state of {feature}");
    }

    screenshot(&url, "dashboard.png").await;
    screenshot(&format!("{url}#feature=plan"), "dashboard-plan.png").await;
    running.stop().await;
    drop(cluster);
}

fn expected_states() -> BTreeMap<&'static str, &'static str> {
    let mut expected: BTreeMap<&str, &str> = generator::NUMERIC
        .iter()
        .chain(generator::CATEGORICAL.iter())
        .map(|f| (*f, "ok"))
        .collect();
    expected.insert("prediction", "ok");
    expected.insert("monthly_charges", "firing");
    expected.insert("plan", "firing");
    expected
}

fn config(bootstrap: &str, baseline: &Path) -> String {
    format!(
        r#"
[service]
http_listen = "127.0.0.1:0"
shutdown_deadline = "5s"

[kafka]
bootstrap_servers = "{bootstrap}"
group_id = "dashboard-test"
prediction_topics = ["{TOPIC}"]

[monitor]
window_size = 500
min_window = 500
check_interval = 1
decision = "calibrated"
target_run_length = 1000000
for_events = 25

[alerts]
group_wait_events = 100

[retrain]
enabled = false

[[models]]
name = "churn"
baseline = "{}"
"#,
        baseline.display()
    )
}

/// The test stream, `BATCH` events at a time with a pause between.
async fn produce_paced(bootstrap: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        // As in the demo: the mock cluster keeps little per partition.
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    let mut generator = Generator::new(11, service::START_MS, service::test_plan());
    for start in (0..EVENTS).step_by(BATCH) {
        let payloads: Vec<Vec<u8>> = (start..(start + BATCH).min(EVENTS))
            .map(|i| serde_json::to_vec(&generator.event(i >= DRIFT_AT)).unwrap())
            .collect();
        // `send_result` enqueues at once (a batch of 100 fits the queue);
        // `send` would enqueue only when awaited, one linger per message.
        let acks: Vec<_> = payloads
            .iter()
            .map(|payload| {
                let record = FutureRecord::to(TOPIC)
                    .key(generator::MODEL)
                    .payload(payload);
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("enqueued")
            })
            .collect();
        for ack in acks {
            ack.await
                .expect("delivery reported")
                .map_err(|(e, _)| e)
                .expect("acknowledged");
        }
        tokio::time::sleep(PAUSE).await;
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// Runs headless Chromium with a fresh profile; returns its stdout.
async fn chromium(args: &[&str]) -> String {
    let profile = Scratch::new("chromium-profile");
    let output = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium started");
    assert!(
        output.status.success(),
        "chromium failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn screenshot(url: &str, name: &str) {
    let path = target_dir().join(name);
    let _ = std::fs::remove_file(&path);
    chromium(&[
        &format!("--screenshot={}", path.display()),
        "--window-size=1400,1000",
        url,
    ])
    .await;
    let png = std::fs::read(&path).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "no screenshot at {}",
        path.display()
    );
}

fn target_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&dir).expect("target directory");
    dir
}

/// What a feature card says about itself.
#[derive(Debug)]
struct Card {
    /// `data-state`.
    state: String,
    /// The text of its state badge.
    text: String,
}

/// Every `<article class="card …" data-feature=… data-state=…>` in the
/// dumped DOM, with the text of its `data-role="state"` badge.
fn feature_cards(dom: &str) -> BTreeMap<String, Card> {
    let mut cards = BTreeMap::new();
    for (start, _) in dom.match_indices("<article") {
        let rest = &dom[start..];
        let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
        let is_card = attribute(tag, "class").is_some_and(|c| c.split(' ').any(|c| c == "card"));
        let (Some(feature), Some(state)) =
            (attribute(tag, "data-feature"), attribute(tag, "data-state"))
        else {
            continue;
        };
        if !is_card {
            continue;
        }
        let body = &rest[..rest.find("</article>").unwrap_or(rest.len())];
        let text = body
            .split_once("data-role=\"state\">")
            .and_then(|(_, after)| after.split('<').next())
            .unwrap_or_default();
        let card = Card {
            state: state.to_string(),
            text: text.trim().to_string(),
        };
        assert!(
            cards.insert(feature.to_string(), card).is_none(),
            "two cards for {feature}"
        );
    }
    cards
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}
