//! `/metrics` as Prometheus sees it: Debian's Prometheus scrapes a running
//! service (real Kafka broker in front of it) and its HTTP API returns the
//! counts and histograms; and every metric the Grafana dashboard in
//! `config/grafana-dashboard.json` queries is one the service exports.

#[path = "support/backends.rs"]
mod backends;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/service.rs"]
mod service;

use std::collections::BTreeSet;
use std::time::Duration;

use backends::{Prometheus, sample_value};
use kafka::KafkaBroker;
use receivers::{Behaviour, Receiver};
use service::{ConfigText, Running, START_MS, Scratch};

const WINDOW: usize = 500;

/// Series names (before `{` or the value) of a Prometheus text exposition.
fn series_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Metric names a PromQL expression reads: identifiers of the service's
/// namespaces (`driftwarden_…`, `messaging_…`).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("driftwarden_") || t.starts_with("messaging_"))
        .map(str::to_owned)
        .collect()
}

fn config(broker: &KafkaBroker, scratch: &Scratch, topic: &str, extra: String) -> ConfigText {
    ConfigText {
        bootstrap: broker.bootstrap().to_string(),
        group: broker.unique_group("prometheus"),
        topic: topic.to_owned(),
        retrain_topic: broker.unique_topic("retrain"),
        baseline: service::sample_baseline(&scratch.0, 3000).1,
        routes: "[]".into(),
        channels: String::new(),
        extra_kafka: extra,
        window: WINDOW,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_metrics_endpoint_and_sees_the_counts() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("prometheus");
    let topic = broker.unique_topic("predictions");
    broker.create_topic(&topic, 1).await;
    let text = config(broker, &scratch, &topic, String::new()).render();
    let running = Running::start(&scratch.0, &text).await;
    let prometheus = Prometheus::start(&scratch.0, running.address).await;

    let events = 600;
    let mut payloads = service::stream(3, events, 0, 0);
    payloads.push(b"not json".to_vec());
    service::produce(broker.bootstrap(), &topic, &payloads).await;
    running
        .wait_applied("churn", events as u64, Duration::from_secs(60))
        .await;

    let within = Duration::from_secs(30);
    let equals = |want: f64| move |r: &[serde_json::Value]| sample_value(r) == Some(want);
    prometheus
        .wait_for(
            r#"driftwarden_events_consumed_total{model="churn"}"#,
            within,
            equals(events as f64),
        )
        .await;
    let rejected = prometheus
        .wait_for("driftwarden_events_rejected_total", within, equals(1.0))
        .await;
    assert_eq!(rejected.len(), 1, "one reason: {rejected:?}");
    assert_eq!(rejected[0]["metric"]["reason"], "invalid_json");
    // One processing time per message, the malformed one included; one
    // lag per applied event.
    prometheus
        .wait_for(
            r#"messaging_process_duration_seconds_count{messaging_system="kafka"}"#,
            within,
            equals(payloads.len() as f64),
        )
        .await;
    prometheus
        .wait_for(
            r#"driftwarden_event_lag_seconds_bucket{le="+Inf"}"#,
            within,
            equals(events as f64),
        )
        .await;
    // The buckets are usable by histogram_quantile: a processing time is
    // a positive number well under the largest bucket (1 s).
    let p50 = prometheus
        .query("histogram_quantile(0.5, messaging_process_duration_seconds_bucket)")
        .await;
    let p50 = sample_value(&p50).unwrap();
    assert!(p50 > 0.0 && p50 < 1.0, "median processing time {p50}");
    // The series carry the resource as target_info.
    let info = prometheus.query("target_info").await;
    assert_eq!(info[0]["metric"]["service_name"], "driftwarden", "{info:?}");

    prometheus.stop().await;
    running.stop().await;
}

/// The families `tests/service_labels.rs` asserts on `/metrics`: they need
/// labelled traffic against a baseline with reference metrics, which is
/// that test's scenario, not this one's.
const LABEL_FAMILIES: &[&str] = &[
    "driftwarden_label_joins_total",
    "driftwarden_label_delay_seconds",
    "driftwarden_performance_metric",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_only_metrics_the_service_exports() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let queried: BTreeSet<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .flat_map(|t| metric_names(t["expr"].as_str().unwrap()))
        .collect();
    assert!(queried.len() >= 15, "{queried:?}");

    // A drifting stream with a malformed message, a dead-letter topic, a
    // webhook channel and a known episode start: every family gets data.
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("grafana");
    let topic = broker.unique_topic("predictions");
    let dead = broker.unique_topic("dead");
    broker.create_topic(&topic, 1).await;
    broker.create_topic(&dead, 1).await;
    let webhook = Receiver::start(Behaviour::Ok).await;
    let mut config = config(
        broker,
        &scratch,
        &topic,
        format!("dead_letter_topic = \"{dead}\""),
    );
    broker.create_topic(&config.retrain_topic, 1).await;
    config.routes = r#"["webhook"]"#.into();
    config.channels = format!("[channels.webhook]\nurl = \"{}\"\n", webhook.url("/hook"));
    let running = Running::start(&scratch.0, &config.render()).await;
    let (clean, drifted) = (1_000, 1_500);
    running
        .handles
        .episodes
        .start("churn", START_MS + clean as i64 * 10);
    let mut payloads = vec![b"not json".to_vec()];
    payloads.extend(service::stream(5, clean, drifted, 0));
    service::produce(broker.bootstrap(), &topic, &payloads).await;
    running
        .wait_applied("churn", (clean + drifted) as u64, Duration::from_secs(120))
        .await;
    webhook.wait_for(1, Duration::from_secs(30)).await;

    // Consumer lag comes with librdkafka's statistics, every 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let missing = loop {
        let exported = series_names(&running.get_text("/metrics").await);
        let missing: Vec<&String> = queried
            .iter()
            .filter(|m| !exported.contains(*m) && !LABEL_FAMILIES.contains(&m.as_str()))
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break missing
                .into_iter()
                .map(|m| format!("{m} (exported: {exported:?})"))
                .collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(missing.is_empty(), "queried but not exported: {missing:#?}");
    webhook.stop().await;
    running.stop().await;
}
