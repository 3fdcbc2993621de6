//! Ground truth at the monitor level: labels joined to predictions (inline
//! and on their own), windowed accuracy / MAE / RMSE checked against the
//! baseline's reference metrics, alerts through the usual lifecycle, and
//! the join store's bound under a flood. Pure: no Kafka, no clock.

use std::sync::Arc;

use driftwarden::alert::{Alert, CheckKind};
use driftwarden::baseline::{
    Baseline, Distribution, FeatureBaseline, MetricValue, ReferenceMetrics, SourceFacts,
};
use driftwarden::event::{Event, Label, LabelEvent, Value};
use driftwarden::monitor::join::JoinBounds;
use driftwarden::monitor::{Monitor, MonitorSettings, Outputs, PerformanceSettings, Position};

const START_MS: i64 = 1_796_292_000_000;
const STEP_MS: i64 = 100;
/// Labels arrive 10 s of event time after their prediction.
const LABEL_DELAY_MS: i64 = 10_000;
const LAG: usize = (LABEL_DELAY_MS / STEP_MS) as usize;

/// A small seeded generator (splitmix64): uniform draws in [0, 1).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn baseline(prediction: Distribution, metrics: ReferenceMetrics) -> Arc<Baseline> {
    let values: Vec<f64> = (0..2000).map(|i| i as f64 / 2000.0).collect();
    let baseline = Baseline::new(Baseline {
        schema_version: 1,
        id: String::new(),
        model: "churn".into(),
        model_version: None,
        source: SourceFacts::default(),
        features: vec![FeatureBaseline {
            name: "x".into(),
            distribution: Distribution::Numeric {
                values,
                population: None,
            },
            missing: 0,
        }],
        prediction: Some(prediction),
        metrics,
    });
    Arc::new(baseline.unwrap())
}

/// A classifier predicting `no`/`yes` (category indices 0/1), reference
/// accuracy 0.9 on 5000 rows.
fn classifier(settings: MonitorSettings) -> Monitor {
    let prediction = Distribution::Categorical {
        counts: [("no".to_string(), 500), ("yes".to_string(), 500)].into(),
    };
    let metrics = ReferenceMetrics {
        accuracy: Some(MetricValue {
            value: 0.9,
            n: 5000,
        }),
        ..ReferenceMetrics::default()
    };
    let mut monitor = Monitor::new(settings.seed);
    monitor
        .set_baseline(baseline(prediction, metrics), settings)
        .unwrap();
    monitor
}

fn event(i: usize, x: f64, prediction: Value, label: Option<Label>) -> Event {
    Event {
        model: "churn".into(),
        model_version: None,
        id: Some(format!("req-{i}")),
        timestamp_ms: START_MS + i as i64 * STEP_MS,
        values: vec![Value::Number(x)],
        prediction,
        label,
    }
}

fn position(i: usize) -> Position {
    Position {
        partition: 0,
        offset: i as i64,
    }
}

/// Streams `n` classified predictions; accuracy is `accuracy(i)` for the
/// i-th. Labels arrive on their own, `LAG` predictions (10 s) later.
fn run_classifier(n: usize, accuracy: impl Fn(usize) -> f64) -> (Monitor, Outputs) {
    let mut monitor = classifier(MonitorSettings::default());
    let mut rng = Rng(42);
    let mut out = Outputs::default();
    let mut truths = Vec::with_capacity(n);
    for i in 0..n {
        let predicted = u32::from(rng.uniform() < 0.5);
        let right = rng.uniform() < accuracy(i);
        let truth = if right { predicted } else { 1 - predicted };
        truths.push(if truth == 1 { "yes" } else { "no" });
        let e = event(i, rng.uniform(), Value::Category(predicted), None);
        monitor.apply(&e, position(i), &mut out).unwrap();
        if i >= LAG {
            let label = LabelEvent {
                model: "churn".into(),
                model_version: None,
                id: format!("req-{}", i - LAG),
                label: Label::Class(truths[i - LAG].into()),
                timestamp_ms: e.timestamp_ms,
            };
            monitor.apply_label(&label, &mut out).unwrap();
        }
    }
    (monitor, out)
}

fn performance_alerts(out: &Outputs) -> Vec<&Alert> {
    out.notifications
        .iter()
        .flat_map(|n| n.firing())
        .filter(|a| a.check == CheckKind::Performance)
        .collect()
}

#[test]
fn accuracy_falling_from_0_9_to_0_7_fires_a_performance_alert() {
    let (monitor, out) = run_classifier(6_000, |i| if i < 3_000 { 0.9 } else { 0.7 });

    let alerts = performance_alerts(&out);
    let alert = alerts.first().expect("a performance alert");
    assert_eq!(alert.feature, "accuracy");
    assert_eq!(alert.evidence.test, "accuracy_drop");
    assert!(
        alert.evidence.statistic < 0.88,
        "window accuracy {}",
        alert.evidence.statistic
    );
    assert_eq!(alert.evidence.threshold, 0.9, "the baseline's accuracy");
    assert_eq!(alert.evidence.baseline_size, 5000);
    assert!(alert.evidence.p_value.unwrap() < 0.01);
    assert!(alert.starts_at_ms > START_MS + 3_000 * STEP_MS);

    let retrain = out.retrains.iter().flat_map(|r| r.notification.firing());
    assert!(
        retrain
            .into_iter()
            .any(|a| a.check == CheckKind::Performance)
    );

    let status = monitor.performance_status("churn").unwrap();
    assert_eq!(status.task, "classification");
    assert_eq!(status.samples, 1000);
    let accuracy = status.metrics[0].value.unwrap();
    assert!((accuracy - 0.7).abs() < 0.05, "accuracy {accuracy}");
    assert_eq!(status.metrics[0].state, "firing");
    assert_eq!(status.join.matched, 6_000 - LAG as u64);
    let delay = status.label_delay.unwrap();
    assert!((delay.p50 - 10.0).abs() < 0.2 && (delay.p99 - 10.0).abs() < 0.2);
    assert_eq!(status.classes.len(), 2);

    let rows = monitor.model_status("churn").unwrap().checks;
    let row = rows
        .iter()
        .find(|c| c.check == CheckKind::Performance)
        .unwrap();
    assert_eq!(
        (row.name.as_str(), row.state, row.m),
        ("accuracy", "firing", 5000)
    );
}

#[test]
fn steady_accuracy_fires_nothing() {
    let (monitor, out) = run_classifier(6_000, |_| 0.9);
    assert!(performance_alerts(&out).is_empty());
    let status = monitor.performance_status("churn").unwrap();
    assert_eq!(status.metrics[0].state, "ok");
    assert!(status.metrics[0].p_value.is_some(), "checks did run");
}

#[test]
fn a_regression_model_whose_error_grows_fires_on_mae_and_rmse() {
    let prediction = Distribution::Numeric {
        values: (0..2000).map(|i| i as f64 / 100.0).collect(),
        population: None,
    };
    // Errors ~ N(0, 1.25): MAE = 1.25·√(2/π) ≈ 0.997, RMSE = 1.25.
    let metrics = ReferenceMetrics {
        mae: Some(MetricValue {
            value: 0.997,
            n: 5000,
        }),
        rmse: Some(MetricValue {
            value: 1.25,
            n: 5000,
        }),
        ..ReferenceMetrics::default()
    };
    let settings = MonitorSettings::default();
    let mut monitor = Monitor::new(settings.seed);
    monitor
        .set_baseline(baseline(prediction, metrics), settings)
        .unwrap();
    let mut rng = Rng(7);
    let mut out = Outputs::default();
    for i in 0..6_000 {
        let sd = if i < 3_000 { 1.25 } else { 1.6 };
        let target = rng.uniform() * 20.0;
        let predicted = target + sd * rng.normal();
        // Inline labels: scored as they come, no join needed.
        let e = event(
            i,
            rng.uniform(),
            Value::Number(predicted),
            Some(Label::Number(target)),
        );
        monitor.apply(&e, position(i), &mut out).unwrap();
        if i == 2_999 {
            assert!(
                performance_alerts(&out).is_empty(),
                "quiet before the change"
            );
        }
    }
    let fired: Vec<&str> = performance_alerts(&out)
        .iter()
        .map(|a| a.feature.as_str())
        .collect();
    assert!(
        fired.contains(&"mae") && fired.contains(&"rmse"),
        "fired {fired:?}"
    );
    let rmse = performance_alerts(&out)
        .into_iter()
        .find(|a| a.feature == "rmse")
        .unwrap();
    assert_eq!(rmse.evidence.threshold, 1.25);
    assert!(rmse.evidence.statistic > 1.25 * 1.1);
    assert!(rmse.evidence.p_value.unwrap() < 0.01);
    let status = monitor.performance_status("churn").unwrap();
    assert_eq!(status.task, "regression");
}

#[test]
fn a_flood_of_unmatched_labels_keeps_the_join_store_within_its_bound() {
    let settings = MonitorSettings {
        performance: PerformanceSettings {
            join: JoinBounds {
                max_entries: 1_000,
                max_age_ms: 24 * 3600 * 1000,
            },
            ..PerformanceSettings::default()
        },
        ..MonitorSettings::default()
    };
    let mut monitor = classifier(settings);
    let mut out = Outputs::default();
    for i in 0..100_000 {
        let label = LabelEvent {
            model: "churn".into(),
            model_version: None,
            id: format!("unknown-{i}"),
            label: Label::Class("yes".into()),
            timestamp_ms: START_MS + i,
        };
        monitor.apply_label(&label, &mut out).unwrap();
    }
    let status = monitor.performance_status("churn").unwrap();
    assert!(status.waiting_labels + status.waiting_predictions <= 1_000);
    assert_eq!(status.join.unknown_ids + status.waiting_labels, 100_000);
    assert_eq!(status.join.matched, 0);
    assert_eq!(status.samples, 0);
}

/// A version with a baseline of its own gets its events and the labels of
/// its predictions (found by id when the label names no version); the
/// default keeps everything else.
#[test]
fn labels_follow_their_predictions_to_the_version_monitor() {
    let settings = MonitorSettings {
        performance: PerformanceSettings {
            min_samples: 10,
            ..PerformanceSettings::default()
        },
        ..MonitorSettings::default()
    };
    let mut monitor = classifier(settings.clone());
    let default_baseline = monitor.model_status("churn").unwrap().baseline_id;
    let prediction = Distribution::Categorical {
        counts: [("no".to_string(), 400), ("yes".to_string(), 600)].into(),
    };
    let metrics = ReferenceMetrics {
        accuracy: Some(MetricValue {
            value: 0.8,
            n: 1000,
        }),
        ..ReferenceMetrics::default()
    };
    monitor
        .set_baseline_for(Some("v2"), baseline(prediction, metrics), settings)
        .unwrap();
    let mut out = Outputs::default();
    for i in 0..40 {
        let mut e = event(i, 0.5, Value::Category(1), None);
        if i % 2 == 0 {
            e.model_version = Some("v2".into());
        }
        monitor.apply(&e, position(i), &mut out).unwrap();
        let label = LabelEvent {
            model: "churn".into(),
            model_version: None,
            id: format!("req-{i}"),
            label: Label::Class("yes".into()),
            timestamp_ms: e.timestamp_ms,
        };
        monitor.apply_label(&label, &mut out).unwrap();
    }
    let v2 = monitor.version_status("churn", "v2").unwrap();
    let default = monitor.model_status("churn").unwrap();
    assert_eq!((v2.events, default.events), (20, 20));
    assert_eq!(default.baseline_id, default_baseline);
    assert_ne!(v2.baseline_id, default_baseline);
    assert_eq!(v2.model_version.as_deref(), Some("v2"));
    let joined =
        |s: &driftwarden::monitor::ModelStatus| s.performance.as_ref().unwrap().join.matched;
    assert_eq!(
        (joined(&v2), joined(&default)),
        (20, 20),
        "every label met its prediction"
    );
}
