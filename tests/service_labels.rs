//! Ground truth end to end against a real Apache Kafka broker: predictions
//! on one topic, labels on another (10 s late in event time). Accuracy
//! dropping → a Performance notification on a real webhook receiver; labels
//! for unknown ids counted in `/metrics`; steady accuracy → nothing; a
//! regressor whose error grows → MAE and RMSE alerts; a flood of unmatched
//! labels → the join store stays within its configured bound.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/receivers.rs"]
mod receivers;
#[path = "support/service.rs"]
mod service;

use std::collections::BTreeMap;
use std::time::Duration;

use driftwarden::baseline::{Baseline, Distribution, MetricValue};
use driftwarden::demo::generator::Generator;
use kafka::KafkaBroker;
use receivers::{Behaviour, Receiver};
use serde_json::json;
use service::{ConfigText, Running, START_MS, Scratch};

const PREDICTIONS: usize = 5_000;
/// Accuracy is 0.9 before this prediction, 0.7 from it on.
const DROP_AT: usize = 2_000;
const STEP_MS: i64 = 100;
const LABEL_DELAY_MS: i64 = 10_000;
const UNKNOWN_LABELS: usize = 40;

/// A seeded splitmix64 for the test traffic.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The sample model's features, a yes/no classifier's prediction, and the
/// reference accuracy 0.9 measured on 5000 labelled rows.
fn classifier_baseline(scratch: &Scratch) -> std::path::PathBuf {
    let (sample, _) = service::sample_baseline(&scratch.0, 3_000);
    let mut baseline = Baseline {
        prediction: Some(Distribution::Categorical {
            counts: BTreeMap::from([("no".to_string(), 1_500), ("yes".to_string(), 1_500)]),
        }),
        ..sample
    };
    baseline.metrics.accuracy = Some(MetricValue {
        value: 0.9,
        n: 5_000,
    });
    let baseline = Baseline::new(baseline).unwrap();
    let path = scratch.0.join("classifier.json");
    baseline.save(&path).unwrap();
    path
}

/// Predictions (undrifted features, yes/no at random) and their labels,
/// each label 10 s of event time after its prediction; preceded by labels
/// for ids no prediction has, stamped two days back so the join store's
/// age bound (24 h) evicts them as unknown.
fn traffic() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut generator = Generator::new(21, START_MS, service::test_plan());
    let mut rng = Rng(9);
    let (mut predictions, mut labels) = (Vec::new(), Vec::new());
    for i in 0..UNKNOWN_LABELS {
        let label = json!({"model": "churn", "id": format!("nobody-{i}"), "label": "yes",
            "timestamp": START_MS - 48 * 3600 * 1000});
        labels.push(serde_json::to_vec(&label).unwrap());
    }
    for i in 0..PREDICTIONS {
        let (features, _) = generator.row(false);
        let at = START_MS + i as i64 * STEP_MS;
        let predicted = if rng.uniform() < 0.5 { "yes" } else { "no" };
        let accuracy = if i < DROP_AT { 0.9 } else { 0.7 };
        let right = rng.uniform() < accuracy;
        let truth = match (right, predicted) {
            (true, p) => p,
            (false, "yes") => "no",
            (false, _) => "yes",
        };
        let id = format!("req-{i}");
        let event = json!({"model": "churn", "id": id, "timestamp": at,
            "features": features, "prediction": predicted});
        predictions.push(serde_json::to_vec(&event).unwrap());
        let label = json!({"model": "churn", "id": id, "label": truth,
            "timestamp": at + LABEL_DELAY_MS});
        labels.push(serde_json::to_vec(&label).unwrap());
    }
    (predictions, labels)
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

/// Fresh prediction, label and retrain topics, created.
async fn topics(broker: &KafkaBroker) -> (String, String, String) {
    let (topic, label_topic, retrain) = (
        broker.unique_topic("predictions"),
        broker.unique_topic("labels"),
        broker.unique_topic("retrain"),
    );
    for t in [&topic, &label_topic, &retrain] {
        broker.create_topic(t, 1).await;
    }
    (topic, label_topic, retrain)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_labels_with_falling_accuracy_notify_performance_and_count_unknown_ids() {
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("e2e-labels");
    let (topic, label_topic, retrain) = topics(broker).await;
    let webhook = Receiver::start(Behaviour::Ok).await;
    let config = ConfigText {
        bootstrap: broker.bootstrap().to_string(),
        group: broker.unique_group("labels"),
        topic: topic.clone(),
        retrain_topic: retrain,
        baseline: classifier_baseline(&scratch),
        routes: r#"["webhook"]"#.into(),
        channels: format!("[channels.webhook]\nurl = \"{}\"\n", webhook.url("/hook")),
        extra_kafka: format!("label_topics = [\"{label_topic}\"]"),
        window: 500,
    };
    let running = Running::start(&scratch.0, &config.render()).await;

    // Predictions first, all applied, then the ground truth: the order a
    // labelling pipeline that runs behind the traffic gives.
    let (predictions, labels) = traffic();
    service::produce(broker.bootstrap(), &topic, &predictions).await;
    let within = Duration::from_secs(120);
    running
        .wait_applied("churn", PREDICTIONS as u64, within)
        .await;
    service::produce(broker.bootstrap(), &label_topic, &labels).await;

    let hooks = webhook.wait_for(1, Duration::from_secs(120)).await;
    let payload = hooks[0].json();
    let alerts = payload["alerts"].as_array().unwrap();
    let accuracy = alerts
        .iter()
        .find(|a| a["labels"]["check"] == "performance")
        .unwrap_or_else(|| panic!("no performance alert in {payload:#}"));
    assert_eq!(accuracy["labels"]["feature"], "accuracy");
    assert_eq!(accuracy["status"], "firing");
    assert!(
        alerts.iter().all(|a| a["labels"]["check"] == "performance"),
        "only performance alerts: {payload:#}"
    );

    // Every label applied: the matched and unknown counters add up.
    let joins = "driftwarden_label_joins_total{model=\"churn\",outcome=";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = running.get_text("/metrics").await;
        let matched = metric(&text, &format!("{joins}\"matched\"}}"));
        if matched == Some(PREDICTIONS as f64) || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        metric(&text, &format!("{joins}\"matched\"}}")),
        Some(PREDICTIONS as f64),
        "{text}"
    );
    assert_eq!(
        metric(&text, &format!("{joins}\"unknown_id\"}}")),
        Some(UNKNOWN_LABELS as f64),
        "{text}"
    );
    let p50 = "driftwarden_label_delay_seconds{model=\"churn\",quantile=\"0.5\"}";
    // The delay histogram keeps 2 significant digits (1% resolution).
    let p50 = metric(&text, p50).unwrap();
    assert!((p50 - 10.0).abs() <= 0.1, "median label delay {p50} s");
    // The window's accuracy, below the reference 0.9 after the drop.
    let accuracy = metric(
        &text,
        "driftwarden_performance_metric{metric=\"accuracy\",model=\"churn\"}",
    )
    .unwrap_or_else(|| panic!("no accuracy gauge in\n{text}"));
    assert!(
        accuracy > 0.5 && accuracy < 0.9,
        "window accuracy {accuracy}"
    );

    // The same figures in the model's status.
    let status = running.get_json("/api/v1/models/churn").await;
    let performance = &status["performance"];
    assert_eq!(
        performance["join"]["matched"], PREDICTIONS as u64,
        "{status:#}"
    );
    for q in ["p50", "p90", "p99"] {
        let delay = performance["label_delay"][q].as_f64().unwrap();
        assert!(
            (delay - 10.0).abs() <= 0.1,
            "{q} label delay {delay} s: {performance:#}"
        );
    }

    running.stop().await;
    webhook.stop().await;
}

/// Reference metrics on `scratch`'s sample features: a classifier with
/// accuracy 0.9, or a regressor (numeric prediction, MAE 0.8, RMSE 1.0).
fn model_baseline(scratch: &Scratch, model: &str, regression: bool) -> std::path::PathBuf {
    let (sample, _) = service::sample_baseline(&scratch.0, 3_000);
    let mut rng = Rng(77);
    let prediction = if regression {
        Distribution::Numeric {
            values: (0..3_000).map(|_| 10.0 * rng.uniform()).collect(),
            population: None,
        }
    } else {
        Distribution::Categorical {
            counts: BTreeMap::from([("no".to_string(), 1_500), ("yes".to_string(), 1_500)]),
        }
    };
    let mut baseline = Baseline {
        model: model.to_string(),
        model_version: None,
        prediction: Some(prediction),
        ..sample
    };
    let reference = |value| Some(MetricValue { value, n: 5_000 });
    if regression {
        baseline.metrics.mae = reference(0.8);
        baseline.metrics.rmse = reference(1.0);
    } else {
        baseline.metrics.accuracy = reference(0.9);
    }
    baseline.id.clear();
    let baseline = Baseline::new(baseline).unwrap();
    let path = scratch.0.join(format!("{model}.json"));
    baseline.save(&path).unwrap();
    path
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let (u, v) = (1.0 - rng.uniform(), rng.uniform());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Predictions and 10 s late labels for two models: `steady` keeps its
/// reference accuracy 0.9 throughout; `eta`'s error doubles (σ 1 → 2) at
/// `DROP_AT`.
fn steady_and_regression_traffic() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut generator = Generator::new(23, START_MS, service::test_plan());
    let mut rng = Rng(5);
    let (mut predictions, mut labels) = (Vec::new(), Vec::new());
    for i in 0..PREDICTIONS {
        let at = START_MS + i as i64 * STEP_MS;
        let id = format!("req-{i}");
        let (features, _) = generator.row(false);
        let predicted = if rng.uniform() < 0.5 { "yes" } else { "no" };
        let truth = match (rng.uniform() < 0.9, predicted) {
            (true, p) => p,
            (false, "yes") => "no",
            (false, _) => "yes",
        };
        predictions.push(
            serde_json::to_vec(&json!({"model": "steady", "id": id,
            "timestamp": at, "features": features, "prediction": predicted}))
            .unwrap(),
        );
        labels.push(
            serde_json::to_vec(&json!({"model": "steady", "id": id,
            "label": truth, "timestamp": at + LABEL_DELAY_MS}))
            .unwrap(),
        );

        let (features, _) = generator.row(false);
        let estimate = 10.0 * rng.uniform();
        let sigma = if i < DROP_AT { 1.0 } else { 2.0 };
        let actual = estimate + sigma * normal(&mut rng);
        predictions.push(
            serde_json::to_vec(&json!({"model": "eta", "id": id,
            "timestamp": at, "features": features, "prediction": estimate}))
            .unwrap(),
        );
        labels.push(
            serde_json::to_vec(&json!({"model": "eta", "id": id,
            "label": actual, "timestamp": at + LABEL_DELAY_MS}))
            .unwrap(),
        );
    }
    (predictions, labels)
}

/// Join counters and waiting entries of a model, from its status.
async fn join_of(running: &Running, model: &str) -> serde_json::Value {
    running.get_json(&format!("/api/v1/models/{model}")).await["performance"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_accuracy_is_quiet_growing_error_fires_and_a_label_flood_stays_bounded() {
    const BOUND: u64 = 6_000;
    const FLOOD: usize = 30_000;
    let broker = KafkaBroker::shared();
    let scratch = Scratch::new("e2e-ground-truth");
    let (topic, label_topic, retrain) = topics(broker).await;
    let webhook = Receiver::start(Behaviour::Ok).await;
    let text = format!(
        "[service]\nhttp_listen = \"127.0.0.1:0\"\nshutdown_deadline = \"10s\"\n\
         [kafka]\nbootstrap_servers = \"{}\"\ngroup_id = \"{}\"\nprediction_topics = [\"{topic}\"]\n\
         label_topics = [\"{label_topic}\"]\nretrain_topic = \"{retrain}\"\n\
         [monitor]\nwindow_size = 500\nmin_window = 500\nlabel_join_max_entries = {BOUND}\n\
         [alerts]\ngroup_wait_events = 200\nchannels = [\"webhook\"]\n\
         [channels.webhook]\nurl = \"{}\"\n\
         [[models]]\nname = \"steady\"\nbaseline = \"{}\"\n\
         [[models]]\nname = \"eta\"\nbaseline = \"{}\"\n",
        broker.bootstrap(),
        broker.unique_group("ground-truth"),
        webhook.url("/hook"),
        model_baseline(&scratch, "steady", false).display(),
        model_baseline(&scratch, "eta", true).display(),
    );
    let running = Running::start(&scratch.0, &text).await;

    let (predictions, labels) = steady_and_regression_traffic();
    service::produce(broker.bootstrap(), &topic, &predictions).await;
    let within = Duration::from_secs(120);
    for model in ["steady", "eta"] {
        running
            .wait_applied(model, PREDICTIONS as u64, within)
            .await;
    }
    service::produce(broker.bootstrap(), &label_topic, &labels).await;

    // The regression model fires on its error metrics.
    let hooks = webhook.wait_for(1, Duration::from_secs(60)).await;
    let payload = hooks[0].json();
    let fired: Vec<&str> = payload["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["check"] == "performance" && a["status"] == "firing")
        .map(|a| a["labels"]["feature"].as_str().unwrap())
        .collect();
    assert_eq!(
        payload["alerts"][0]["labels"]["model"], "eta",
        "{payload:#}"
    );
    assert!(
        fired.contains(&"mae") && fired.contains(&"rmse"),
        "{payload:#}"
    );
    let rmse = payload["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["feature"] == "rmse")
        .unwrap();
    assert_eq!(rmse["annotations"]["threshold"], "1", "the baseline's RMSE");
    let window_rmse: f64 = rmse["annotations"]["statistic"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(window_rmse > 1.1, "window RMSE {window_rmse}");

    // Every label applied, and steady accuracy fired nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while join_of(&running, "steady").await["join"]["matched"] != PREDICTIONS as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "labels not all joined"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let steady = running.get_json("/api/v1/models/steady").await;
    assert_eq!(steady["firing"], 0, "{steady:#}");
    let accuracy = steady["performance"]["metrics"][0]["value"]
        .as_f64()
        .unwrap();
    assert!(
        (accuracy - 0.9).abs() < 0.03,
        "steady window accuracy {accuracy}"
    );
    assert!(
        webhook
            .requests()
            .iter()
            .all(|r| r.json()["alerts"][0]["labels"]["model"] == "eta"),
        "no notification for the steady model"
    );

    // A flood of labels for ids no prediction has: the store keeps at most
    // its bound, evicting the oldest, and counts them as unknown ids.
    let flood: Vec<Vec<u8>> = (0..FLOOD)
        .map(|i| {
            let at = START_MS + PREDICTIONS as i64 * STEP_MS + i as i64;
            serde_json::to_vec(&json!({"model": "steady", "id": format!("ghost-{i}"),
                "label": "yes", "timestamp": at}))
            .unwrap()
        })
        .collect();
    service::produce(broker.bootstrap(), &label_topic, &flood).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let performance = loop {
        let p = join_of(&running, "steady").await;
        let waiting =
            p["waiting_labels"].as_u64().unwrap() + p["waiting_predictions"].as_u64().unwrap();
        assert!(
            waiting <= BOUND,
            "the join store holds {waiting} > {BOUND}: {p:#}"
        );
        if p["join"]["unknown_ids"].as_u64().unwrap() >= (FLOOD as u64 - BOUND) {
            break p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "flood not applied: {p:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(performance["waiting_labels"], BOUND, "{performance:#}");
    assert_eq!(performance["join"]["matched"], PREDICTIONS as u64);
    let steady = running.get_json("/api/v1/models/steady").await;
    assert_eq!(steady["firing"], 0, "unmatched labels change no verdict");

    running.stop().await;
    webhook.stop().await;
}
