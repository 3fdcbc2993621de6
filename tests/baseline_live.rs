//! Baselines in the running service, through the real Kafka broker: the
//! live service and `replay` decide the same notifications for the same
//! events, and a baseline replaced through the API keeps the windows and
//! names itself in the next alert.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/service.rs"]
mod service;

use std::time::Duration;

use driftwarden::alert::Notification;
use driftwarden::baseline::{Baseline, Distribution};
use driftwarden::replay::{self, Record, ReplayOptions};
use driftwarden::service::ServiceEvent;
use kafka::KafkaBroker;
use receivers::{Behaviour, Receiver};
use service::{ConfigText, Running, Scratch};

const WINDOW: usize = 500;
const TOKEN: &str = "live-token";

fn config_for(broker: &KafkaBroker, scratch: &Scratch, topic: &str, hook: &Receiver) -> String {
    let (_, baseline) = service::sample_baseline(&scratch.0, 3000);
    let text = ConfigText {
        bootstrap: broker.bootstrap().to_string(),
        group: broker.unique_group("baseline-live"),
        topic: topic.to_string(),
        retrain_topic: broker.unique_topic("retrain"),
        baseline,
        routes: r#"["webhook"]"#.into(),
        channels: format!(
            "[channels.webhook]\nurl = \"{}\"\n[baselines]\ndir = \"{}\"\nreload_interval = \"0s\"\n",
            hook.url("/hook"),
            scratch.0.join("store").display()
        ),
        extra_kafka: String::new(),
        window: WINDOW,
    }
    .render();
    text.replacen(
        "shutdown_deadline = \"10s\"",
        &format!("shutdown_deadline = \"10s\"\napi_token = \"{TOKEN}\""),
        1,
    )
}

/// Notifications the service decided, in order, once `applied` events
/// were applied (they wait in the service's event channel meanwhile).
async fn notifications_until(running: &mut Running, applied: u64) -> Vec<Notification> {
    running
        .wait_applied("churn", applied, Duration::from_secs(180))
        .await;
    // Decisions are sent before the status counts the event.
    let mut out = Vec::new();
    while let Ok(event) = running.events.try_recv() {
        if let ServiceEvent::Notified(n) = event {
            out.push(n);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_service_and_replay_decide_the_same_notifications() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("live-replay");
    let topic = broker.unique_topic("predictions");
    broker.create_topic(&topic, 1).await;
    let hook = Receiver::start(Behaviour::Ok).await;
    let text = config_for(broker, &scratch, &topic, &hook);
    let mut running = Running::start(&scratch.0, &text).await;

    // Clean, a drift episode, clean again: alerts fire and resolve.
    let payloads = service::stream(21, 2_000, 2_000, 3_000);
    service::produce(broker.bootstrap(), &topic, &payloads).await;
    let live = notifications_until(&mut running, payloads.len() as u64).await;
    running.stop().await;
    assert!(
        live.iter().any(|n| n.firing().next().is_some()) && live.len() >= 2,
        "the stream fires and resolves: {live:#?}"
    );

    // The same events from a file, with the same configuration; a
    // record's number is its Kafka offset, so evidence offsets compare too.
    let config = driftwarden::config::load_str(&text, std::iter::empty(), &[]).unwrap();
    let mut monitor = replay::setup::build_monitor(&config, &[]).unwrap();
    let records = payloads.iter().enumerate().map(|(i, p)| Record {
        line: i as u64,
        bytes: p.as_slice(),
    });
    let summary = replay::run(records, &mut monitor, &ReplayOptions::default(), None).unwrap();
    assert_eq!(summary.applied, payloads.len() as u64);
    assert_eq!(summary.notifications.len(), live.len());
    for (replayed, decided) in summary.notifications.iter().zip(&live) {
        assert_eq!(replayed, decided, "replay and the live service differ");
    }
}

/// The sample baseline with `monthly_charges` shifted far away.
fn shifted(baseline: &Baseline) -> Baseline {
    let mut next = baseline.clone();
    for feature in &mut next.features {
        if feature.name == "monthly_charges"
            && let Distribution::Numeric { values, .. } = &mut feature.distribution
        {
            values.iter_mut().for_each(|v| *v += 40.0);
        }
    }
    next.id.clear();
    Baseline::new(next).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_replaced_through_the_api_names_itself_in_the_next_alert() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("live-swap");
    let topic = broker.unique_topic("predictions");
    broker.create_topic(&topic, 1).await;
    let hook = Receiver::start(Behaviour::Ok).await;
    let text = config_for(broker, &scratch, &topic, &hook);
    let running = Running::start(&scratch.0, &text).await;

    let payloads = service::stream(31, 1_600, 0, 0);
    service::produce(broker.bootstrap(), &topic, &payloads[..1_000]).await;
    running
        .wait_applied("churn", 1_000, Duration::from_secs(120))
        .await;
    let before = running.get_json("/api/v1/models/churn").await;
    let old_id = before["baseline_id"].as_str().unwrap().to_string();

    let current = Baseline::load(&scratch.0.join("churn.json")).unwrap();
    let next = shifted(&current);
    let response = reqwest::Client::new()
        .put(format!(
            "http://{}/api/v1/models/churn/baseline",
            running.address
        ))
        .bearer_auth(TOKEN)
        .body(serde_json::to_vec(&next).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let after = running.get_json("/api/v1/models/churn").await;
    assert_eq!(after["baseline_id"], next.id.as_str());
    let fill = |status: &serde_json::Value| {
        status["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "monthly_charges" && c["test"] == "ks")
            .unwrap()["n"]
            .clone()
    };
    assert_eq!(fill(&after), WINDOW, "the window survived the swap");
    assert!(hook.requests().is_empty(), "no alert before the swap");

    service::produce(broker.bootstrap(), &topic, &payloads[1_000..]).await;
    let hooks = hook.wait_for(1, Duration::from_secs(60)).await;
    let alert = hooks[0].json()["alerts"][0].clone();
    assert_eq!(alert["labels"]["feature"], "monthly_charges", "{alert}");
    assert_eq!(alert["annotations"]["baseline_id"], next.id.as_str());
    assert_ne!(old_id, next.id);
    running.stop().await;
}
