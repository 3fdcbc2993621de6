//! Alert channels against real receivers started by the test: an HTTP
//! server (axum) that records every request, and an SMTP server. Covers
//! the wire formats (Alertmanager JSON, Slack blocks, multipart email),
//! retries with back-off and a stable idempotency key, final failures,
//! timeouts, queue overflow and shutdown.

#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/smtp.rs"]
mod smtp;

use std::collections::BTreeMap;
use std::time::Duration;

use driftwarden::alert::email::{EmailChannel, EmailConfig, EmailTls};
use driftwarden::alert::slack::{MAX_BLOCKS, SlackChannel, SlackConfig};
use driftwarden::alert::webhook::{WebhookChannel, WebhookConfig};
use driftwarden::alert::{
    Alert, AlertStatus, CheckKind, DeliveryConfig, DeliveryError, DeliveryOutcome, Dispatched,
    Dispatcher, Evidence, Notification, RetryPolicy, Secret,
};
use receivers::{Behaviour, Receiver};
use smtp::{SmtpOptions, SmtpServer};
use tokio::sync::broadcast;
use tokio::time::Instant;

/// Generous bound for anything the test waits on; the machine is shared.
const WAIT: Duration = Duration::from_secs(20);

fn alert(feature: &str) -> Alert {
    Alert {
        model: "churn".into(),
        model_version: None,
        check: CheckKind::FeatureDrift,
        feature: feature.into(),
        status: AlertStatus::Firing,
        starts_at_ms: 1_764_756_000_000,
        ends_at_ms: None,
        evidence: Evidence {
            test: "ks".into(),
            statistic: 0.213,
            p_value: Some(4.2e-5),
            threshold: 0.12,
            psi: None,
            window_size: 500,
            baseline_size: 10_000,
            window_start_ms: 1_764_755_700_000,
            window_end_ms: 1_764_756_000_000,
            offsets: Some((1_000, 1_499)),
            baseline_id: "b-5f2e".into(),
        },
    }
}

fn notification(features: &[&str], sequence: u64) -> Notification {
    Notification {
        model: "churn".into(),
        model_version: None,
        status: AlertStatus::Firing,
        alerts: features.iter().map(|f| alert(f)).collect(),
        decided_at_ms: 1_764_756_000_000,
        sequence,
    }
}

/// Short, deterministic back-off: 50ms, 100ms, 200ms, …
fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.0,
    }
}

fn webhook(receiver: &Receiver, timeout: Duration) -> WebhookChannel {
    let mut config = WebhookConfig::new(receiver.url("/hook/secret-token"));
    config.timeout = timeout;
    config
        .headers
        .insert("Authorization".into(), Secret::from("Bearer t0ken"));
    WebhookChannel::new(&config, Some("http://driftwarden.test:8080")).unwrap()
}

async fn next_outcome(outcomes: &mut broadcast::Receiver<DeliveryOutcome>) -> DeliveryOutcome {
    tokio::time::timeout(WAIT, outcomes.recv())
        .await
        .expect("an outcome in time")
        .unwrap()
}

async fn shut_down(dispatcher: Dispatcher) {
    let left = dispatcher.shutdown(Instant::now() + WAIT).await;
    assert!(left.is_empty(), "undelivered: {left:?}");
}

#[tokio::test]
async fn webhook_sends_alertmanager_json_with_an_idempotency_key() {
    let receiver = Receiver::start(Behaviour::Ok).await;
    let dispatcher = Dispatcher::builder()
        .channel(webhook(&receiver, WAIT))
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();
    let n = notification(&["age", "plan"], 7);

    dispatcher.dispatch(n.clone());
    let outcome = next_outcome(&mut outcomes).await;

    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(outcome.idempotency_key, n.idempotency_key());
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.uri, "/hook/secret-token");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("idempotency-key"),
        Some(n.idempotency_key().as_str())
    );
    assert_eq!(request.header("authorization"), Some("Bearer t0ken"));
    assert_alertmanager_shape(&request.json(), &n);

    shut_down(dispatcher).await;
    receiver.stop().await;
}

/// The fields an Alertmanager webhook receiver reads.
fn assert_alertmanager_shape(body: &serde_json::Value, n: &Notification) {
    assert_eq!(body["version"], "4");
    assert_eq!(body["groupKey"], n.group_key());
    assert_eq!(body["truncatedAlerts"], 0);
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "webhook");
    assert_eq!(body["groupLabels"], serde_json::json!({ "model": "churn" }));
    assert_eq!(body["commonLabels"]["alertname"], "DriftDetected");
    assert_eq!(body["commonLabels"]["model"], "churn");
    assert!(body["commonLabels"].get("feature").is_none());
    assert_eq!(body["commonAnnotations"]["baseline_id"], "b-5f2e");
    assert_eq!(body["externalURL"], "http://driftwarden.test:8080");

    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    for (sent, alert) in alerts.iter().zip(&n.alerts) {
        assert_eq!(sent["status"], "firing");
        assert_eq!(sent["labels"]["feature"], alert.feature.as_str());
        assert_eq!(sent["labels"]["check"], "feature_drift");
        assert_eq!(sent["labels"]["severity"], "warning");
        assert_eq!(sent["fingerprint"], alert.fingerprint());
        assert_eq!(sent["endsAt"], "0001-01-01T00:00:00Z");
        let starts = sent["startsAt"].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(starts).unwrap();
        assert_eq!(parsed.timestamp_millis(), alert.starts_at_ms);
        assert!(
            sent["generatorURL"]
                .as_str()
                .unwrap()
                .starts_with("http://driftwarden.test:8080/")
        );
        let annotations = &sent["annotations"];
        let number = |key: &str| annotations[key].as_str().unwrap().parse::<f64>().unwrap();
        assert_eq!(number("statistic"), 0.213);
        assert_eq!(number("p_value"), 4.2e-5);
        assert_eq!(number("threshold"), 0.12);
        assert_eq!(number("window_size"), 500.0);
        assert_eq!(number("baseline_size"), 10_000.0);
        assert_eq!(annotations["window_start"], "2025-12-03T09:55:00.000Z");
        assert_eq!(annotations["window_end"], "2025-12-03T10:00:00.000Z");
        assert!(
            annotations["summary"]
                .as_str()
                .unwrap()
                .contains(&alert.feature)
        );
        assert!(
            annotations["description"]
                .as_str()
                .unwrap()
                .contains("b-5f2e")
        );
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_growing_back_off_and_the_same_key() {
    let receiver = Receiver::start(Behaviour::FailFirst {
        failures: 3,
        status: 500,
    })
    .await;
    let dispatcher = Dispatcher::builder()
        .retry(fast_retry(5))
        .channel(webhook(&receiver, WAIT))
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();
    let n = notification(&["age"], 1);

    dispatcher.dispatch(n.clone());
    let outcome = next_outcome(&mut outcomes).await;

    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(outcome.attempts, 4);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4);
    let key = n.idempotency_key();
    assert!(
        requests
            .iter()
            .all(|r| r.header("idempotency-key") == Some(key.as_str()))
    );

    // Back-off of 50, 100 and 200ms between attempts: each gap is at least
    // its back-off, and the last is clearly longer than the first.
    let gaps: Vec<Duration> = requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, backoff) in gaps.iter().zip([50, 100, 200]) {
        assert!(*gap >= Duration::from_millis(backoff), "gaps {gaps:?}");
    }
    assert!(gaps[2] > gaps[0], "gaps {gaps:?}");

    let stats = dispatcher.stats().channel("webhook").unwrap();
    assert_eq!((stats.delivered, stats.failed), (1, 0));
    assert_eq!((stats.attempts, stats.retried), (4, 3));

    shut_down(dispatcher).await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_client_error_is_final_and_counted_failed() {
    let receiver = Receiver::start(Behaviour::Always(400)).await;
    let dispatcher = Dispatcher::builder()
        .retry(fast_retry(5))
        .channel(webhook(&receiver, WAIT))
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();

    dispatcher.dispatch(notification(&["age"], 1));
    let outcome = next_outcome(&mut outcomes).await;

    let error = outcome.result.unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert!(!error.is_retryable());
    assert_eq!(outcome.attempts, 1);
    assert_eq!(receiver.requests().len(), 1);
    let stats = dispatcher.stats().channel("webhook").unwrap();
    assert_eq!((stats.failed, stats.retried, stats.delivered), (1, 0, 0));

    shut_down(dispatcher).await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_slow_receiver_times_out_on_every_attempt_then_fails() {
    let receiver = Receiver::start(Behaviour::Slow(Duration::from_secs(30))).await;
    let dispatcher = Dispatcher::builder()
        .retry(fast_retry(3))
        .channel(webhook(&receiver, Duration::from_millis(200)))
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();

    let started = Instant::now();
    dispatcher.dispatch(notification(&["age"], 1));
    let outcome = next_outcome(&mut outcomes).await;

    let error = outcome.result.unwrap_err();
    assert!(matches!(*error, DeliveryError::Timeout { .. }), "{error}");
    assert!(error.is_retryable());
    assert_eq!(outcome.attempts, 3);
    assert_eq!(receiver.requests().len(), 3);
    // Three 200ms timeouts and 50 + 100ms of back-off, not 30s.
    assert!(started.elapsed() < Duration::from_secs(10));
    let stats = dispatcher.stats().channel("webhook").unwrap();
    assert_eq!((stats.failed, stats.attempts), (1, 3));

    shut_down(dispatcher).await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_blocked_receiver_fills_the_queue_without_blocking_dispatch() {
    let receiver = Receiver::start(Behaviour::Hang).await;
    let dispatcher = Dispatcher::builder()
        .queue_capacity(2)
        .channel(webhook(&receiver, Duration::from_secs(60)))
        .build()
        .unwrap();

    // On this single-threaded runtime the channel's task cannot run
    // between these calls, so the queue takes exactly 2.
    let started = Instant::now();
    let results: Vec<Dispatched> = (0..10)
        .map(|i| dispatcher.dispatch(notification(&["age"], i)))
        .collect();
    let took = started.elapsed();

    assert!(took < Duration::from_millis(100), "dispatch took {took:?}");
    assert_eq!(results.iter().map(|d| d.queued).sum::<usize>(), 2);
    assert_eq!(results.iter().map(|d| d.dropped).sum::<usize>(), 8);
    let stats = dispatcher.stats().channel("webhook").unwrap();
    assert_eq!(stats.dropped_queue_full, 8);

    // The task takes the first and hangs on it; the deadline cuts it off.
    receiver.wait_for(1, WAIT).await;
    let left = dispatcher
        .shutdown(Instant::now() + Duration::from_millis(200))
        .await;
    let sequences: Vec<u64> = left.iter().map(|u| u.notification.sequence).collect();
    assert_eq!(sequences, [0, 1]);
    assert_eq!(dispatcher.stats().channel("webhook").unwrap().abandoned, 2);

    receiver.stop().await;
}

#[tokio::test]
async fn errors_never_show_the_secret_url() {
    // A port that was free a moment ago: the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook/secret-token");
    let channel = WebhookChannel::new(&WebhookConfig::new(url), None).unwrap();
    let dispatcher = Dispatcher::builder()
        .retry(fast_retry(1))
        .channel(channel)
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();

    dispatcher.dispatch(notification(&["age"], 1));
    let outcome = next_outcome(&mut outcomes).await;

    let error = outcome.result.unwrap_err();
    assert!(
        matches!(*error, DeliveryError::Connection { .. }),
        "{error}"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("secret-token"), "{shown}");
    assert!(
        shown.contains(&format!("http://127.0.0.1:{port}")),
        "{shown}"
    );

    shut_down(dispatcher).await;
}

#[tokio::test]
async fn slack_gets_a_fallback_text_and_at_most_fifty_blocks() {
    let receiver = Receiver::start(Behaviour::Ok).await;
    let config = SlackConfig::new(receiver.url("/services/T0/B0/secret"));
    let channel = SlackChannel::new(&config, Some("http://driftwarden.test:8080")).unwrap();
    let dispatcher = Dispatcher::builder().channel(channel).build().unwrap();
    let mut outcomes = dispatcher.subscribe();
    let features: Vec<String> = (0..60).map(|i| format!("feature_{i:02}")).collect();
    let names: Vec<&str> = features.iter().map(String::as_str).collect();

    dispatcher.dispatch(notification(&names, 1));
    let outcome = next_outcome(&mut outcomes).await;

    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let body = receiver.requests()[0].json();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING] churn: drift in 60 features"),
        "{text}"
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), MAX_BLOCKS);
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("feature_00")
    );
    assert_eq!(blocks[48]["text"]["text"], "…and 13 more features");
    assert_eq!(blocks[49]["type"], "context");

    shut_down(dispatcher).await;
    receiver.stop().await;
}

fn email_config(server: &SmtpServer, to: Vec<String>) -> EmailConfig {
    let mut config = EmailConfig::new("127.0.0.1", "driftwarden <dw@example.com>", to);
    config.tls = EmailTls::None;
    config.port = Some(server.port());
    config.timeout = Duration::from_secs(10);
    config
}

#[tokio::test]
async fn email_arrives_as_multipart_text_and_html_over_real_smtp() {
    let server = SmtpServer::start(SmtpOptions {
        login: Some(("dw".into(), "hunter2".into())),
        ..SmtpOptions::default()
    })
    .await;
    let mut config = email_config(
        &server,
        vec!["oncall@example.com".into(), "ml@example.com".into()],
    );
    config.username = Some("dw".into());
    config.password = Some(Secret::from("hunter2"));
    let dispatcher = Dispatcher::builder()
        .channel(EmailChannel::new(&config, None).unwrap())
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();
    let n = notification(&["age", "<b>plan</b>"], 1);

    dispatcher.dispatch(n.clone());
    let outcome = next_outcome(&mut outcomes).await;

    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let mail = server.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.login, Some(("dw".into(), "hunter2".into())));
    assert_eq!(mail.from, "dw@example.com");
    assert_eq!(mail.to, ["oncall@example.com", "ml@example.com"]);
    assert_message(&mail.data, &n);

    shut_down(dispatcher).await;
    server.stop().await;
}

/// Subject, both parts, feature names (escaped in HTML), Message-ID.
fn assert_message(raw: &[u8], n: &Notification) {
    let message = mail_parser::MessageParser::default().parse(raw).unwrap();
    assert_eq!(
        message.subject(),
        Some("[FIRING] churn: drift in 2 features")
    );
    let message_id = format!("{}@driftwarden", n.idempotency_key());
    assert_eq!(message.message_id(), Some(message_id.as_str()));
    assert!(String::from_utf8_lossy(raw).contains("multipart/alternative"));

    let text_part = message.text_part(0).unwrap();
    assert!(matches!(text_part.body, mail_parser::PartType::Text(_)));
    let text = message.body_text(0).unwrap();
    assert!(text.contains("age (feature_drift, firing)"), "{text}");
    assert!(text.contains("<b>plan</b>"), "{text}");

    let html_part = message.html_part(0).unwrap();
    assert!(matches!(html_part.body, mail_parser::PartType::Html(_)));
    let html = message.body_html(0).unwrap();
    assert!(html.contains("<td>age</td>"), "{html}");
    assert!(html.contains("<td>&lt;b&gt;plan&lt;/b&gt;</td>"), "{html}");
    assert!(!html.contains("<b>plan</b>"), "{html}");
}

/// A mail server answering 4xx (here 452, insufficient storage) is retried
/// with back-off until it accepts; the mail arrives once.
#[tokio::test]
async fn an_smtp_server_answering_4xx_is_retried_until_it_accepts() {
    let server = SmtpServer::start(SmtpOptions {
        transient_failures: 2,
        ..SmtpOptions::default()
    })
    .await;
    let dispatcher = Dispatcher::builder()
        .channel(
            EmailChannel::new(
                &email_config(&server, vec!["oncall@example.com".into()]),
                None,
            )
            .unwrap(),
        )
        .retry(fast_retry(5))
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();
    let n = notification(&["age", "<b>plan</b>"], 1);

    dispatcher.dispatch(n.clone());
    let outcome = next_outcome(&mut outcomes).await;

    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(outcome.attempts, 3, "two 452 answers, then accepted");
    let mails = server.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    assert_message(&mails[0].data, &n);

    shut_down(dispatcher).await;
    server.stop().await;
}

#[tokio::test]
async fn a_rejected_recipient_is_a_final_failure() {
    let server = SmtpServer::start(SmtpOptions {
        reject_recipient: Some("nobody@example.com".into()),
        ..SmtpOptions::default()
    })
    .await;
    let config = email_config(&server, vec!["nobody@example.com".into()]);
    let dispatcher = Dispatcher::builder()
        .retry(fast_retry(5))
        .channel(EmailChannel::new(&config, None).unwrap())
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();

    dispatcher.dispatch(notification(&["age"], 1));
    let outcome = next_outcome(&mut outcomes).await;

    let error = outcome.result.unwrap_err();
    assert_eq!(error.status(), Some(550), "{error}");
    assert!(!error.is_retryable());
    assert_eq!(outcome.attempts, 1);

    shut_down(dispatcher).await;
    server.stop().await;
}

#[tokio::test]
async fn starttls_is_required_when_configured() {
    let server = SmtpServer::start(SmtpOptions::default()).await;
    let mut config = email_config(&server, vec!["oncall@example.com".into()]);
    config.tls = EmailTls::Starttls;
    let dispatcher = Dispatcher::builder()
        .retry(fast_retry(3))
        .channel(EmailChannel::new(&config, None).unwrap())
        .build()
        .unwrap();
    let mut outcomes = dispatcher.subscribe();

    dispatcher.dispatch(notification(&["age"], 1));
    let outcome = next_outcome(&mut outcomes).await;

    // The test server offers no STARTTLS: nothing may be sent in clear.
    let error = outcome.result.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(server.wait_for(0, WAIT).await.is_empty());

    shut_down(dispatcher).await;
    server.stop().await;
}

#[tokio::test]
async fn a_dispatcher_from_config_delivers_to_every_channel() {
    let hooks = Receiver::start(Behaviour::Ok).await;
    let smtp = SmtpServer::start(SmtpOptions::default()).await;
    let config: DeliveryConfig = toml::from_str(&format!(
        r#"
        queue_capacity = 4
        external_url = "http://driftwarden.test:8080/"
        [retry]
        max_attempts = 2
        initial_backoff = "10ms"
        [[webhooks]]
        url = "{webhook}"
        [[slack]]
        webhook_url = "{slack}"
        [[email]]
        host = "127.0.0.1"
        port = {port}
        tls = "none"
        from = "dw@example.com"
        to = ["oncall@example.com"]
        "#,
        webhook = hooks.url("/hook"),
        slack = hooks.url("/slack"),
        port = smtp.port(),
    ))
    .unwrap();
    let dispatcher = Dispatcher::from_config(&config).unwrap();
    let mut outcomes = dispatcher.subscribe();

    dispatcher.dispatch(notification(&["age"], 1));
    let mut delivered = BTreeMap::new();
    for _ in 0..3 {
        let outcome = next_outcome(&mut outcomes).await;
        delivered.insert(outcome.channel.clone(), outcome.result.is_ok());
    }

    let expected = [("email", true), ("slack", true), ("webhook", true)];
    assert_eq!(delivered, expected.map(|(c, ok)| (c.to_owned(), ok)).into());
    let names: Vec<String> = dispatcher
        .stats()
        .snapshot()
        .into_iter()
        .map(|s| s.channel)
        .collect();
    assert_eq!(names, ["webhook", "slack", "email"]);
    assert_eq!(smtp.wait_for(1, WAIT).await.len(), 1);

    shut_down(dispatcher).await;
    hooks.stop().await;
    smtp.stop().await;
}
