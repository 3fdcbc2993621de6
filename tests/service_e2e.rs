//! The service end to end against a real Apache Kafka broker (KRaft),
//! real HTTP receivers for the webhook and Slack, and a real SMTP server.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/service.rs"]
mod service;
#[path = "support/smtp.rs"]
mod smtp;

use std::collections::BTreeSet;
use std::time::Duration;

use kafka::KafkaBroker;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use receivers::{Behaviour, Receiver};
use service::{ConfigText, Running, Scratch};
use smtp::{SmtpOptions, SmtpServer};

const WINDOW: usize = 500;
const BASELINE_ROWS: usize = 3000;

/// Reads every message of `topic` that arrives within `quiet` of the last.
async fn read_topic(
    broker: &KafkaBroker,
    topic: &str,
    quiet: Duration,
) -> Vec<(String, serde_json::Value)> {
    let consumer: StreamConsumer = broker
        .client_config()
        .set("group.id", broker.unique_group("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    while let Ok(Ok(m)) = tokio::time::timeout(quiet, consumer.recv()).await {
        let key = m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        out.push((
            key,
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap(),
        ));
    }
    out
}

fn features_of(payload: &serde_json::Value) -> BTreeSet<String> {
    payload["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "firing")
        .map(|a| a["labels"]["feature"].as_str().unwrap().to_string())
        .collect()
}

/// Acceptance (a): drift in 2 of 8 features gives exactly one firing
/// notification per channel naming exactly those 2, within a bounded number
/// of events, and exactly one retraining message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_in_two_features_alerts_every_channel_once_and_triggers_retraining() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("e2e-drift");
    let (topic, retrain) = (
        broker.unique_topic("predictions"),
        broker.unique_topic("retrain"),
    );
    broker.create_topic(&topic, 1).await;
    broker.create_topic(&retrain, 1).await;
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    let webhook = Receiver::start(Behaviour::Ok).await;
    let slack = Receiver::start(Behaviour::Ok).await;
    let mail = SmtpServer::start(SmtpOptions::default()).await;
    let config = ConfigText {
        bootstrap: broker.bootstrap().to_string(),
        group: broker.unique_group("e2e"),
        topic: topic.clone(),
        retrain_topic: retrain.clone(),
        baseline,
        routes: r#"["webhook", "slack", "email"]"#.into(),
        channels: format!(
            "[channels.webhook]\nurl = \"{}\"\n[channels.slack]\nwebhook_url = \"{}\"\n\
             [channels.email]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             from = \"driftwarden@example.com\"\nto = [\"oncall@example.com\"]\n",
            webhook.url("/hook"),
            slack.url("/slack"),
            mail.port()
        ),
        extra_kafka: String::new(),
        window: WINDOW,
    };
    let running = Running::start(&scratch.0, &config.render()).await;

    let (clean, drifted) = (3_000, 3_000);
    service::produce(
        broker.bootstrap(),
        &topic,
        &service::stream(11, clean, drifted, 0),
    )
    .await;
    running
        .wait_applied("churn", (clean + drifted) as u64, Duration::from_secs(120))
        .await;

    let hooks = webhook.wait_for(1, Duration::from_secs(30)).await;
    let posts = slack.wait_for(1, Duration::from_secs(30)).await;
    let mails = mail.wait_for(1, Duration::from_secs(30)).await;
    let triggers = read_topic(broker, &retrain, Duration::from_secs(5)).await;
    // Quiet period: anything else would have arrived by now.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let expected: BTreeSet<String> = ["monthly_charges", "plan"].map(String::from).into();
    assert_eq!(webhook.requests().len(), 1, "one webhook notification");
    assert_eq!(slack.requests().len(), 1, "one Slack message");
    let payload = hooks[0].json();
    assert_eq!(payload["status"], "firing");
    assert_eq!(features_of(&payload), expected);
    assert!(hooks[0].header("idempotency-key").is_some());
    let slack_text = posts[0].json()["text"].as_str().unwrap().to_string();
    assert!(slack_text.contains("churn"), "{slack_text}");
    let body = String::from_utf8_lossy(&mails[0].data);
    assert!(
        body.contains("monthly_charges") && body.contains("plan"),
        "{body}"
    );
    assert_eq!(triggers.len(), 1, "one retraining trigger: {triggers:?}");
    assert_eq!(triggers[0].0, "churn");

    // Detection: each alert started within 300 events of the drift (the
    // 25-event persistence included); the notification itself adds the
    // 200-event grouping wait. With a window of 500 the thresholds sit near
    // D = 0.15 and chi-square = 32, which these shifts reach after about
    // 190 drifted events (see the monitor_streams test for the arithmetic).
    for alert in payload["alerts"].as_array().unwrap() {
        let starts =
            chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap();
        let delay = service::index_of(starts.timestamp_millis()) - clean as i64;
        assert!(
            (0..=300).contains(&delay),
            "{} detected {delay} events after the change",
            alert["labels"]["feature"]
        );
    }
    running.stop().await;
}

/// Acceptance (f): a restarted service resumes from its checkpoint: the
/// windows it had, and the events after the checkpointed offset, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_checkpoint() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("e2e-restart");
    let topic = broker.unique_topic("predictions");
    broker.create_topic(&topic, 1).await;
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    let config = ConfigText {
        bootstrap: broker.bootstrap().to_string(),
        group: broker.unique_group("restart"),
        topic: topic.clone(),
        retrain_topic: broker.unique_topic("retrain"),
        baseline,
        routes: "[]".into(),
        channels: String::new(),
        extra_kafka: String::new(),
        window: WINDOW,
    };
    let events = service::stream(5, 3_000, 0, 0);

    let first = Running::start(&scratch.0, &config.render()).await;
    service::produce(broker.bootstrap(), &topic, &events[..2_000]).await;
    first
        .wait_applied("churn", 2_000, Duration::from_secs(60))
        .await;
    first.stop().await;

    service::produce(broker.bootstrap(), &topic, &events[2_000..]).await;
    let second = Running::start(&scratch.0, &config.render()).await;
    second
        .wait_applied("churn", 3_000, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        second.events_applied("churn").await,
        3_000,
        "the checkpoint's 2,000 events and the 1,000 after it, none twice"
    );
    second.stop().await;
}

/// Acceptance (c): drift that stops, with the window refilling from the
/// baseline distribution, gives a resolved notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_that_stops_resolves() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("e2e-resolve");
    let topic = broker.unique_topic("predictions");
    broker.create_topic(&topic, 1).await;
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    let webhook = Receiver::start(Behaviour::Ok).await;
    let config = ConfigText {
        bootstrap: broker.bootstrap().to_string(),
        group: broker.unique_group("resolve"),
        topic: topic.clone(),
        retrain_topic: broker.unique_topic("retrain"),
        baseline,
        routes: r#"["webhook"]"#.into(),
        channels: format!("[channels.webhook]\nurl = \"{}\"\n", webhook.url("/hook")),
        extra_kafka: String::new(),
        window: WINDOW,
    };
    let running = Running::start(&scratch.0, &config.render()).await;
    service::produce(
        broker.bootstrap(),
        &topic,
        &service::stream(23, 2_000, 2_000, 3_000),
    )
    .await;
    running
        .wait_applied("churn", 7_000, Duration::from_secs(120))
        .await;
    let hooks = webhook.wait_for(2, Duration::from_secs(30)).await;
    let statuses: Vec<String> = hooks
        .iter()
        .map(|h| h.json()["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses.first().map(String::as_str), Some("firing"));
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("resolved"),
        "{statuses:?}"
    );
    let resolved = hooks.last().unwrap().json();
    let resolved_features: BTreeSet<String> = resolved["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["feature"].as_str().unwrap().to_string())
        .collect();
    assert!(resolved_features.contains("monthly_charges"), "{resolved}");
    running.stop().await;
}

/// Acceptance (e): malformed events mixed in are counted by reason and do
/// not change the verdicts on the valid events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_counted_and_change_no_verdict() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("e2e-malformed");
    let (_, baseline) = service::sample_baseline(&scratch.0, BASELINE_ROWS);
    let valid = service::stream(31, 1_500, 1_500, 0);

    let mut mixed: Vec<Vec<u8>> = Vec::new();
    let big = format!(
        r#"{{"model":"churn","pad":"{}"}}"#,
        "x".repeat(10 * 1024 * 1024)
    )
    .into_bytes();
    for (i, event) in valid.iter().enumerate() {
        if i % 300 == 7 {
            mixed.push(b"{not json".to_vec());
            mixed.push(br#"{"model":"churn","features":{"age":"forty"}}"#.to_vec());
            mixed.push(br#"{"model":"churn","features":{"age":NaN}}"#.to_vec());
            mixed.push(br#"{"features":{"age":40}}"#.to_vec());
        }
        if i == 1_000 {
            mixed.push(big.clone());
            // An array with one bad element: the good one counts.
            let good = String::from_utf8(event.clone()).unwrap();
            mixed.push(
                format!(r#"[{good}, {{"model":"churn","features":{{"plan":[1]}}}}]"#).into_bytes(),
            );
            continue;
        }
        mixed.push(event.clone());
    }

    let mut statuses = Vec::new();
    let mut metrics = String::new();
    for (name, payloads) in [("clean", &valid), ("mixed", &mixed)] {
        let topic = broker.unique_topic(name);
        broker
            .create_topic_with(&topic, 1, &[("max.message.bytes", "20000000")])
            .await;
        let config = ConfigText {
            bootstrap: broker.bootstrap().to_string(),
            group: broker.unique_group(name),
            topic: topic.clone(),
            retrain_topic: broker.unique_topic("retrain"),
            baseline: baseline.clone(),
            routes: "[]".into(),
            channels: String::new(),
            extra_kafka: String::new(),
            window: WINDOW,
        };
        // A directory (and so a checkpoint) of its own per run.
        let dir = scratch.0.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let running = Running::start(&dir, &config.render()).await;
        service::produce(broker.bootstrap(), &topic, payloads).await;
        running
            .wait_applied("churn", valid.len() as u64, Duration::from_secs(120))
            .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut status = running.get_json("/api/v1/models/churn").await;
        status.as_object_mut().unwrap().remove("last_event_ms");
        statuses.push(status);
        metrics = running.get_text("/metrics").await;
        running.stop().await;
    }
    assert_eq!(
        statuses[0], statuses[1],
        "the same verdicts with and without malformed events"
    );
    let count = |reason: &str| -> u64 {
        let prefix = format!("driftwarden_events_rejected_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.parse().unwrap())
    };
    assert_eq!(count("invalid_json"), 20, "{metrics}");
    assert_eq!(count("wrong_type"), 11, "{metrics}");
    assert_eq!(count("missing_model"), 10, "{metrics}");
    assert_eq!(count("too_large"), 1, "{metrics}");
}
