//! OTLP export to a real OpenTelemetry Collector (built with the
//! Collector Builder by `tools/otelcol/build.sh`: OTLP/HTTP receiver, file
//! exporter), end to end with a real Kafka broker and a real webhook
//! receiver: a known drift episode is detected, its alert delivered with a
//! `traceparent` header, and the collector's output holds the delivery
//! span of that trace, the event count and the detection delay.

#[path = "support/backends.rs"]
mod backends;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/service.rs"]
mod service;

use std::time::Duration;

use backends::Collector;
use driftwarden::config::TelemetryConfig;
use kafka::KafkaBroker;
use receivers::{Behaviour, Receiver};
use serde_json::Value;
use service::{ConfigText, Running, START_MS, Scratch};

const WINDOW: usize = 500;
const TOKEN: &str = "episode-token";

/// Every item of the arrays at `path` under each of `docs`, flattened
/// (`["resourceSpans", "scopeSpans", "spans"]`).
fn walk<'a>(docs: &'a [Value], path: &[&str]) -> Vec<&'a Value> {
    let mut items: Vec<&Value> = docs.iter().collect();
    for key in path {
        items = items
            .into_iter()
            .flat_map(|v| v[*key].as_array().into_iter().flatten())
            .collect();
    }
    items
}

/// Data points of the metric called `name`, in export order.
fn points<'a>(docs: &'a [Value], name: &str) -> Vec<&'a Value> {
    walk(docs, &["resourceMetrics", "scopeMetrics", "metrics"])
        .into_iter()
        .filter(|m| m["name"] == name)
        .flat_map(|m| {
            ["sum", "histogram", "gauge"]
                .iter()
                .flat_map(|kind| m[*kind]["dataPoints"].as_array().into_iter().flatten())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// An OTLP JSON integer (int64 values are strings in OTLP JSON).
fn int(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
}

/// `(version, trace id, parent id, flags)` of a W3C `traceparent`.
fn parse_traceparent(header: &str) -> (String, String, String, String) {
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {header:?}");
    let hex = |s: &str, len: usize| {
        assert_eq!(s.len(), len, "traceparent {header:?}");
        assert!(
            s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "traceparent {header:?}"
        );
        assert!(s.chars().any(|c| c != '0'), "all-zero id in {header:?}");
        s.to_owned()
    };
    (
        parts[0].to_owned(),
        hex(parts[1], 32),
        hex(parts[2], 16),
        parts[3].to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_spans_reach_a_real_collector_and_webhooks_carry_traceparent() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("otlp");
    let (topic, retrain) = (
        broker.unique_topic("predictions"),
        broker.unique_topic("retrain"),
    );
    broker.create_topic(&topic, 1).await;
    broker.create_topic(&retrain, 1).await;
    let (_, baseline) = service::sample_baseline(&scratch.0, 3000);
    let collector = Collector::start(&scratch.0).await;
    let webhook = Receiver::start(Behaviour::Ok).await;

    // Spans go through the process-wide subscriber, as in the binary.
    let telemetry = TelemetryConfig {
        otlp_endpoint: Some(collector.endpoint()),
        export_interval: Duration::from_millis(500),
        ..TelemetryConfig::default()
    };
    let tracer = driftwarden::telemetry::init_service_tracing("text", "warn", &telemetry)
        .unwrap()
        .expect("spans are exported with an endpoint");

    let config = ConfigText {
        bootstrap: broker.bootstrap().to_string(),
        group: broker.unique_group("otlp"),
        topic: topic.clone(),
        retrain_topic: retrain,
        baseline,
        routes: r#"["webhook"]"#.into(),
        channels: format!(
            "[channels.webhook]\nurl = \"{}\"\n\n[telemetry]\notlp_endpoint = \"{}\"\n\
             export_interval = \"500ms\"\n",
            webhook.url("/hook"),
            collector.endpoint()
        ),
        extra_kafka: String::new(),
        window: WINDOW,
    }
    .render()
    .replace(
        "shutdown_deadline = \"10s\"",
        &format!("shutdown_deadline = \"10s\"\napi_token = \"{TOKEN}\""),
    );
    let running = Running::start(&scratch.0, &config).await;

    // The episode starts with the first drifted event of the stream.
    let (clean, drifted) = (1_000, 1_500);
    let start_ms = START_MS + clean as i64 * 10;
    let client = reqwest::Client::new();
    let episodes = format!("http://{}/api/v1/episodes", running.address);
    let body = serde_json::json!({ "model": "churn", "start_ms": start_ms });
    let refused = client.post(&episodes).json(&body).send().await.unwrap();
    assert_eq!(refused.status(), 401, "the route wants the bearer token");
    let accepted = client
        .post(&episodes)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);

    service::produce(
        broker.bootstrap(),
        &topic,
        &service::stream(7, clean, drifted, 0),
    )
    .await;
    let total = (clean + drifted) as u64;
    running
        .wait_applied("churn", total, Duration::from_secs(120))
        .await;
    let hooks = webhook.wait_for(1, Duration::from_secs(30)).await;

    // The delivery's trace context went out with the webhook.
    let header = hooks[0]
        .header("traceparent")
        .expect("webhook carries traceparent")
        .to_owned();
    let (version, trace_id, _parent, flags) = parse_traceparent(&header);
    assert_eq!(version, "00");
    assert_eq!(flags, "01", "sampled");

    // The detection delay of the announced episode, in /api/v1/stats
    // (the loop hands its counts over a few times a second).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let stats = running.get_json("/api/v1/stats").await;
        if stats["event_lag_seconds"]["count"] == total || tokio::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let events = &stats["detection_delay_events"];
    assert_eq!(events["count"], 1, "{stats}");
    let delay_events = events["max"].as_f64().unwrap();
    assert!(
        delay_events >= 1.0 && delay_events <= drifted as f64,
        "detected {delay_events} events into the episode: {stats}"
    );
    let delay_seconds = stats["detection_delay_seconds"]["max"].as_f64().unwrap();
    // Events are 10 ms apart in event time.
    assert!(
        (delay_seconds - delay_events * 0.01).abs() <= 0.011,
        "{delay_seconds} s for {delay_events} events: {stats}"
    );
    assert_eq!(stats["event_lag_seconds"]["count"], total, "{stats}");
    assert!(stats["delivery_seconds"]["webhook"]["count"].as_u64() >= Some(1));
    for q in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            stats["processing_seconds"][q].as_f64().unwrap() > 0.0,
            "{stats}"
        );
    }

    // The service exports its last metrics at shutdown; the tracer
    // provider its last spans.
    running.stop().await;
    tokio::task::spawn_blocking(move || driftwarden::telemetry::shutdown_tracing(tracer))
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let docs = collector.exported();
        let spans = walk(&docs, &["resourceSpans", "scopeSpans", "spans"]);
        let in_trace = |name: &str| {
            spans
                .iter()
                .any(|s| s["name"] == name && s["traceId"] == trace_id.as_str())
        };
        let consumed = points(&docs, "driftwarden.events.consumed")
            .last()
            .and_then(|p| int(&p["asInt"]));
        let detections = points(&docs, "driftwarden.detection.delay.events")
            .last()
            .and_then(|p| int(&p["count"]));
        let lag_count = points(&docs, "driftwarden.event.lag")
            .last()
            .and_then(|p| int(&p["count"]));
        if in_trace("deliver_alert")
            && in_trace("consume_batch")
            && consumed == Some(total)
            && detections == Some(1)
            && lag_count == Some(total)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "collector output incomplete: deliver_alert in trace {trace_id}: {}, \
             consume_batch in it: {}, events consumed {consumed:?} of {total}, \
             detections {detections:?}, lag count {lag_count:?}; span names: {:?}",
            in_trace("deliver_alert"),
            in_trace("consume_batch"),
            spans.iter().map(|s| &s["name"]).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    webhook.stop().await;
    collector.stop().await;
}
