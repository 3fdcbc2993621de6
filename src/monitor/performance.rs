//! Ground truth: model performance over the last labelled predictions,
//! checked against the baseline's reference metrics.
//!
//! The task is decided by the baseline's reference metrics, never guessed
//! from traffic: a reference `accuracy` makes the model a classifier
//! (accuracy, and per-class precision/recall/F1 for reporting); otherwise a
//! reference `mae` or `rmse` makes it a regressor. A baseline with no
//! reference metric has nothing to compare with, so no performance checks.
//!
//! A metric fires only when it is worse than the reference by more than
//! the tolerance (absolute for accuracy, relative for MAE and RMSE) AND a
//! one-sided test at `alpha` agrees: the tolerance keeps a statistically
//! real but negligible drop quiet; the test keeps noise in a small window
//! quiet.

use std::collections::{BTreeMap, VecDeque};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::baseline::{Distribution, MetricValue, ReferenceMetrics};
use crate::event::{Label, Value};
use crate::stats::proportion::accuracy_drop_test;

use super::check::Outcome;
use super::join::{JoinBounds, JoinCounters, JoinStore, Joined};
use super::lifecycle::{Persistence, Phase, Transition};

/// Performance settings, from `[monitor]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerformanceSettings {
    /// Labelled predictions in the window.
    pub window: usize,
    /// No verdict before the window holds this many.
    pub min_samples: usize,
    /// Accuracy: allowed absolute drop below the reference.
    pub accuracy_tolerance: f64,
    /// MAE and RMSE: allowed relative increase over the reference.
    pub error_tolerance: f64,
    /// Level of the one-sided tests.
    pub alpha: f64,
    /// Classes given precision/recall/F1 in the status (most frequent).
    pub max_classes: usize,
    /// Bounds of the join store.
    pub join: JoinBounds,
}

impl Default for PerformanceSettings {
    fn default() -> Self {
        PerformanceSettings {
            window: 1000,
            min_samples: 200,
            accuracy_tolerance: 0.02,
            error_tolerance: 0.10,
            alpha: 0.01,
            max_classes: 20,
            join: JoinBounds {
                max_entries: 100_000,
                max_age_ms: 24 * 3600 * 1000,
            },
        }
    }
}

/// One scored labelled prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sample {
    /// Classification: predicted and true class names.
    Class {
        /// Predicted class.
        predicted: String,
        /// True class.
        actual: String,
    },
    /// Regression: prediction minus target.
    Error {
        /// The error.
        error: f64,
    },
}

/// One performance metric's alert: its reference, phase and latest verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricCheck {
    /// `accuracy`, `mae` or `rmse`.
    pub name: String,
    /// The baseline's value and sample size.
    pub reference: MetricValue,
    /// Alert phase.
    pub phase: Phase,
    /// Latest verdict: statistic is the window's metric value, threshold
    /// the reference value.
    pub last: Option<Outcome>,
    /// p-value of the latest one-sided test.
    pub last_pvalue: Option<f64>,
}

/// Saved performance state (checkpoints). The label-delay histogram is not
/// kept: its quantiles restart after a restore.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PerformanceState {
    /// Window, oldest first.
    pub samples: Vec<Sample>,
    /// Metric checks.
    pub checks: Vec<MetricCheck>,
    /// The join store.
    pub join: JoinStore,
}

/// Quantiles of label delay (label time − prediction time), seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DelayQuantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Delays recorded.
    pub count: u64,
}

/// Precision, recall and F1 of one class over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Class name.
    pub class: String,
    /// Times it was the true class in the window.
    pub support: u64,
    /// Precision (`None` when never predicted).
    pub precision: Option<f64>,
    /// Recall (`None` when never the true class).
    pub recall: Option<f64>,
    /// F1 (`None` when either is undefined).
    pub f1: Option<f64>,
}

/// One metric for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricStatus {
    /// `accuracy`, `mae` or `rmse`.
    pub name: String,
    /// Window value.
    pub value: Option<f64>,
    /// Baseline value.
    pub baseline: f64,
    /// Latest p-value.
    pub p_value: Option<f64>,
    /// `ok`, `pending` or `firing`.
    pub state: &'static str,
}

/// A model's performance for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceStatus {
    /// `classification` or `regression`.
    pub task: &'static str,
    /// Labelled predictions in the window.
    pub samples: u64,
    /// Window capacity.
    pub window: u64,
    /// Metrics against the baseline.
    pub metrics: Vec<MetricStatus>,
    /// Per-class metrics (classification), most frequent classes first.
    pub classes: Vec<ClassMetrics>,
    /// Join outcomes.
    pub join: JoinCounters,
    /// Predictions and labels waiting in the join store.
    pub waiting_predictions: u64,
    /// Labels waiting for their prediction.
    pub waiting_labels: u64,
    /// Label delay quantiles, once any label joined.
    pub label_delay: Option<DelayQuantiles>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Classification,
    Regression,
}

/// A model's performance tracking.
#[derive(Debug, Clone)]
pub struct Performance {
    task: Task,
    settings: PerformanceSettings,
    /// Class names of a categorical prediction, in index order.
    classes: Vec<String>,
    samples: VecDeque<Sample>,
    /// Running sums over the window: correct, |e|, e², e⁴ (for the
    /// regression tests' variances).
    correct: u64,
    abs: f64,
    sq: f64,
    quad: f64,
    pushes: u64,
    checks: Vec<MetricCheck>,
    join: JoinStore,
    /// Label delay in ms, 1 ms .. 30 days.
    delay: Option<Histogram<u64>>,
}

impl Performance {
    /// Tracking for a baseline's reference metrics; `None` when it has none.
    pub fn new(
        metrics: &ReferenceMetrics,
        prediction: Option<&Distribution>,
        settings: PerformanceSettings,
    ) -> Option<Performance> {
        let (task, references) = match (metrics.accuracy, metrics.mae, metrics.rmse) {
            (Some(a), _, _) => (Task::Classification, vec![("accuracy", a)]),
            (None, None, None) => return None,
            (None, mae, rmse) => {
                let named = [("mae", mae), ("rmse", rmse)];
                let present = named.into_iter().filter_map(|(n, v)| Some((n, v?)));
                (Task::Regression, present.collect())
            }
        };
        let checks = references
            .into_iter()
            .map(|(name, reference)| MetricCheck {
                name: name.to_string(),
                reference,
                phase: Phase::Inactive,
                last: None,
                last_pvalue: None,
            })
            .collect();
        let classes = match prediction {
            Some(Distribution::Categorical { counts }) => counts.keys().cloned().collect(),
            _ => Vec::new(),
        };
        Some(Performance {
            task,
            settings,
            classes,
            samples: VecDeque::with_capacity(settings.window),
            correct: 0,
            abs: 0.0,
            sq: 0.0,
            quad: 0.0,
            pushes: 0,
            checks,
            join: JoinStore::default(),
            delay: Histogram::new_with_bounds(1, 30 * 24 * 3600 * 1000, 2).ok(),
        })
    }

    /// Saved state.
    pub fn state(&self) -> PerformanceState {
        PerformanceState {
            samples: self.samples.iter().cloned().collect(),
            checks: self.checks.clone(),
            join: self.join.clone(),
        }
    }

    /// Restores saved state; checks whose metric this baseline lacks are
    /// dropped, the window is re-scored from its samples.
    pub fn restore(&mut self, state: &PerformanceState) {
        for sample in &state.samples {
            self.push(sample.clone());
        }
        for check in &mut self.checks {
            if let Some(saved) = state.checks.iter().find(|c| c.name == check.name) {
                check.phase = saved.phase;
                check.last = saved.last;
                check.last_pvalue = saved.last_pvalue;
            }
        }
        self.join = state.join.clone();
    }

    /// A prediction event: scored at once with an inline label, else kept
    /// for its label when it has an id. Returns the checks' transitions.
    pub fn on_prediction(
        &mut self,
        id: Option<&str>,
        prediction: Value,
        label: Option<&Label>,
        at_ms: i64,
        rules: &Persistence,
    ) -> Vec<(String, Transition)> {
        let joined = match (label, id) {
            (Some(label), _) => Some(Joined {
                prediction,
                label: label.clone(),
                delay_ms: 0,
            }),
            (None, Some(id)) => self
                .join
                .add_prediction(id, prediction, at_ms, self.settings.join),
            (None, None) => None,
        };
        self.score(joined, at_ms, rules)
    }

    /// A label event. Returns the checks' transitions.
    pub fn on_label(
        &mut self,
        id: &str,
        label: Label,
        at_ms: i64,
        rules: &Persistence,
    ) -> Vec<(String, Transition)> {
        let joined = self.join.add_label(id, label, at_ms, self.settings.join);
        self.score(joined, at_ms, rules)
    }

    fn score(
        &mut self,
        joined: Option<Joined>,
        at_ms: i64,
        rules: &Persistence,
    ) -> Vec<(String, Transition)> {
        let Some(joined) = joined.and_then(|j| self.record_delay(j)) else {
            return Vec::new();
        };
        let Some(sample) = self.sample(&joined) else {
            return Vec::new();
        };
        self.push(sample);
        self.run_checks(at_ms, rules)
    }

    fn record_delay(&mut self, joined: Joined) -> Option<Joined> {
        if let Some(h) = self.delay.as_mut() {
            let _ = h.record(joined.delay_ms.clamp(1, 30 * 24 * 3600 * 1000) as u64);
        }
        Some(joined)
    }

    /// Scores a pair; `None` when it cannot be scored (a missing
    /// prediction, or a class label for a regressor).
    fn sample(&self, joined: &Joined) -> Option<Sample> {
        match self.task {
            Task::Classification => Some(Sample::Class {
                predicted: self.class_of(joined.prediction)?,
                actual: match &joined.label {
                    Label::Class(c) => c.clone(),
                    Label::Number(x) => x.to_string(),
                },
            }),
            Task::Regression => match (joined.prediction, &joined.label) {
                (Value::Number(p), Label::Number(y)) => Some(Sample::Error { error: p - y }),
                _ => None,
            },
        }
    }

    /// A prediction's class name: a baseline category by name, a number in
    /// the form integer-coded classes take (`1`, not `1.0`).
    fn class_of(&self, prediction: Value) -> Option<String> {
        match prediction {
            Value::Category(i) => self.classes.get(i as usize).cloned(),
            Value::Number(x) => Some(x.to_string()),
            // Its name is lost in decoding; it is wrong for any label the
            // baseline knows.
            Value::UnknownCategory => Some("<unknown>".to_string()),
            Value::Missing => None,
        }
    }

    fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.settings.window.max(1)
            && let Some(old) = self.samples.pop_front()
        {
            self.account(&old, -1.0);
        }
        self.account(&sample, 1.0);
        self.samples.push_back(sample);
        self.pushes += 1;
        // Running float sums drift; re-summing once per window bounds it.
        if self
            .pushes
            .is_multiple_of(self.settings.window.max(1) as u64)
        {
            self.resum();
        }
    }

    fn account(&mut self, sample: &Sample, sign: f64) {
        match sample {
            Sample::Class { predicted, actual } => {
                if predicted == actual {
                    self.correct = (self.correct as i64 + sign as i64) as u64;
                }
            }
            Sample::Error { error } => {
                let sq = error * error;
                self.abs += sign * error.abs();
                self.sq += sign * sq;
                self.quad += sign * sq * sq;
            }
        }
    }

    fn resum(&mut self) {
        let samples = std::mem::take(&mut self.samples);
        (self.correct, self.abs, self.sq, self.quad) = (0, 0.0, 0.0, 0.0);
        for sample in &samples {
            self.account(sample, 1.0);
        }
        self.samples = samples;
    }

    /// Window value of a metric.
    fn value(&self, name: &str) -> Option<f64> {
        let n = self.samples.len() as f64;
        if n == 0.0 {
            return None;
        }
        match name {
            "accuracy" => Some(self.correct as f64 / n),
            "mae" => Some(self.abs / n),
            "rmse" => Some((self.sq.max(0.0) / n).sqrt()),
            _ => None,
        }
    }

    fn run_checks(&mut self, now_ms: i64, rules: &Persistence) -> Vec<(String, Transition)> {
        let n = self.samples.len();
        if n < self.settings.min_samples.max(2) {
            return Vec::new();
        }
        let mut transitions = Vec::new();
        for i in 0..self.checks.len() {
            let name = self.checks[i].name.clone();
            let Some((value, pvalue)) = self.test(&name, self.checks[i].reference) else {
                continue;
            };
            let reference = self.checks[i].reference.value;
            let worse = match name.as_str() {
                "accuracy" => reference - value > self.settings.accuracy_tolerance,
                _ => value > reference * (1.0 + self.settings.error_tolerance),
            };
            let drifted = worse && pvalue < self.settings.alpha;
            let check = &mut self.checks[i];
            check.last = Some(Outcome {
                statistic: value,
                threshold: reference,
                drifted,
                n: n as u64,
            });
            check.last_pvalue = Some(pvalue);
            if let Some(t) = check.phase.step(drifted, now_ms, rules) {
                transitions.push((name, t));
            }
        }
        transitions
    }

    /// Window value and one-sided p-value for "worse than the reference".
    fn test(&self, name: &str, reference: MetricValue) -> Option<(f64, f64)> {
        let n = self.samples.len() as u64;
        let value = self.value(name)?;
        let pvalue = match name {
            "accuracy" => {
                let reference_n = (reference.n > 0).then_some(reference.n);
                accuracy_drop_test(
                    self.correct,
                    n,
                    reference.value,
                    reference_n,
                    self.settings.alpha,
                )
                .ok()?
                .pvalue
            }
            "mae" => self.mean_increase_pvalue(self.abs, self.sq, reference.value, reference.n),
            _ => {
                let reference_ms = reference.value * reference.value;
                self.mean_increase_pvalue(self.sq, self.quad, reference_ms, reference.n)
            }
        };
        Some((value, pvalue))
    }

    /// One-sided z test that the window's mean of a per-sample loss (|e|
    /// for MAE, e² for RMSE, given its sum and sum of squares) exceeds the
    /// reference mean. The reference reports only its mean and n, so its
    /// variance is taken to be the window's (equal under the null
    /// hypothesis of no change): se = s·√(1/n + 1/n₀), with n₀ = ∞ when
    /// unknown. The window holds at least `min_samples` (default 200), so
    /// the central limit theorem makes the normal reference adequate; for
    /// RMSE this avoids the chi-square variance test's assumption of normal
    /// errors, which heavy-tailed residuals break.
    fn mean_increase_pvalue(&self, sum: f64, sum_sq: f64, reference_mean: f64, n0: u64) -> f64 {
        let n = self.samples.len() as f64;
        let mean = sum / n;
        let variance = ((sum_sq - n * mean * mean) / (n - 1.0)).max(0.0);
        let inverse_n0 = if n0 > 0 { 1.0 / n0 as f64 } else { 0.0 };
        let se = (variance * (1.0 / n + inverse_n0)).sqrt();
        if se <= 0.0 || !se.is_finite() {
            return if mean > reference_mean { 0.0 } else { 1.0 };
        }
        let z = (mean - reference_mean) / se;
        Normal::standard().sf(z)
    }

    /// The metric checks.
    pub fn checks(&self) -> &[MetricCheck] {
        &self.checks
    }

    /// Window value of each metric checked, once the window has samples.
    pub fn values(&self) -> Vec<(&str, f64)> {
        self.checks
            .iter()
            .filter_map(|c| Some((c.name.as_str(), self.value(&c.name)?)))
            .collect()
    }

    /// Whether any metric alert fires.
    pub fn any_firing(&self) -> bool {
        self.checks.iter().any(|c| c.phase.is_firing())
    }

    /// Whether the join store holds (or has settled) a prediction with
    /// this id.
    pub fn knows_prediction(&self, id: &str) -> bool {
        self.join.knows_prediction(id)
    }

    /// Join outcomes so far.
    pub fn join_counters(&self) -> JoinCounters {
        self.join.counters()
    }

    /// Label delay quantiles (seconds), once any label joined.
    pub fn delay_quantiles(&self) -> Option<DelayQuantiles> {
        let h = self.delay.as_ref().filter(|h| !h.is_empty())?;
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        Some(DelayQuantiles {
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            count: h.len(),
        })
    }

    /// The metric checks as status rows beside the drift checks.
    pub fn check_statuses(&self) -> Vec<super::model::CheckStatus> {
        self.checks
            .iter()
            .map(|c| super::model::CheckStatus {
                name: c.name.clone(),
                check: crate::alert::CheckKind::Performance,
                test: test_name(&c.name),
                statistic: self.value(&c.name),
                threshold: Some(c.reference.value),
                drifted: c.last.is_some_and(|o| o.drifted),
                n: self.samples.len() as u64,
                capacity: self.settings.window as u64,
                m: c.reference.n,
                state: c.phase.name(),
            })
            .collect()
    }

    /// Status for the API.
    pub fn status(&self) -> PerformanceStatus {
        let (waiting_predictions, waiting_labels) = self.join.waiting();
        let metrics = self
            .checks
            .iter()
            .map(|c| MetricStatus {
                name: c.name.clone(),
                value: self.value(&c.name),
                baseline: c.reference.value,
                p_value: c.last_pvalue,
                state: c.phase.name(),
            })
            .collect();
        PerformanceStatus {
            task: match self.task {
                Task::Classification => "classification",
                Task::Regression => "regression",
            },
            samples: self.samples.len() as u64,
            window: self.settings.window as u64,
            metrics,
            classes: self.class_metrics(),
            join: self.join.counters(),
            waiting_predictions: waiting_predictions as u64,
            waiting_labels: waiting_labels as u64,
            label_delay: self.delay_quantiles(),
        }
    }

    /// Per-class precision/recall/F1 over the window for the most frequent
    /// true classes (computed on request, not per event).
    fn class_metrics(&self) -> Vec<ClassMetrics> {
        // (true positives, predicted, actual) per class.
        let mut counts: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
        for sample in &self.samples {
            if let Sample::Class { predicted, actual } = sample {
                counts.entry(predicted).or_default().1 += 1;
                let entry = counts.entry(actual).or_default();
                entry.2 += 1;
                entry.0 += u64::from(predicted == actual);
            }
        }
        let mut classes: Vec<_> = counts.into_iter().collect();
        classes.sort_by(|a, b| b.1.2.cmp(&a.1.2).then(a.0.cmp(b.0)));
        classes.truncate(self.settings.max_classes);
        classes
            .into_iter()
            .map(|(class, (tp, predicted, actual))| {
                let ratio = |d: u64| (d > 0).then(|| tp as f64 / d as f64);
                let (precision, recall) = (ratio(predicted), ratio(actual));
                let f1 = match (precision, recall) {
                    (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
                    (Some(_), Some(_)) => Some(0.0),
                    _ => None,
                };
                ClassMetrics {
                    class: class.to_string(),
                    support: actual,
                    precision,
                    recall,
                    f1,
                }
            })
            .collect()
    }
}

/// The evidence's test name of a metric.
pub fn test_name(metric: &str) -> &'static str {
    match metric {
        "accuracy" => "accuracy_drop",
        "mae" => "mae_increase_z",
        _ => "rmse_increase_z",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Persistence = Persistence {
        for_checks: 1,
        for_duration_ms: 0,
        resolve_after_checks: 1,
    };

    fn classifier(accuracy: f64) -> Performance {
        let metrics = ReferenceMetrics {
            accuracy: Some(MetricValue {
                value: accuracy,
                n: 5000,
            }),
            ..ReferenceMetrics::default()
        };
        let settings = PerformanceSettings {
            window: 100,
            min_samples: 50,
            ..PerformanceSettings::default()
        };
        Performance::new(&metrics, None, settings).unwrap()
    }

    #[test]
    fn accuracy_and_class_metrics_over_the_window() {
        let mut p = classifier(0.9);
        // 3 of 4 right: predicted 1,1,0,0 for labels 1,0,0,0.
        for (pred, label) in [(1.0, 1.0), (1.0, 0.0), (0.0, 0.0), (0.0, 0.0)] {
            p.on_prediction(
                None,
                Value::Number(pred),
                Some(&Label::Number(label)),
                0,
                &RULES,
            );
        }
        assert_eq!(p.value("accuracy"), Some(0.75));
        let classes = p.class_metrics();
        assert_eq!(classes[0].class, "0");
        assert_eq!(
            (classes[0].precision, classes[0].recall),
            (Some(1.0), Some(2.0 / 3.0))
        );
        assert_eq!(
            (classes[1].precision, classes[1].recall),
            (Some(0.5), Some(1.0))
        );
        assert!((classes[1].f1.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn window_slides_and_regression_metrics_match_a_direct_sum() {
        let metrics = ReferenceMetrics {
            mae: Some(MetricValue { value: 1.0, n: 0 }),
            rmse: Some(MetricValue { value: 1.0, n: 0 }),
            ..ReferenceMetrics::default()
        };
        let settings = PerformanceSettings {
            window: 10,
            ..PerformanceSettings::default()
        };
        let mut p = Performance::new(&metrics, None, settings).unwrap();
        let errors: Vec<f64> = (0..25).map(|i| (i as f64 * 0.7).sin() * 3.0).collect();
        for e in &errors {
            p.on_prediction(
                None,
                Value::Number(*e),
                Some(&Label::Number(0.0)),
                0,
                &RULES,
            );
        }
        let last = &errors[15..];
        let mae = last.iter().map(|e| e.abs()).sum::<f64>() / 10.0;
        let rmse = (last.iter().map(|e| e * e).sum::<f64>() / 10.0).sqrt();
        assert!((p.value("mae").unwrap() - mae).abs() < 1e-12);
        assert!((p.value("rmse").unwrap() - rmse).abs() < 1e-12);
    }

    #[test]
    fn no_verdict_before_min_samples_then_a_real_drop_fires() {
        let mut p = classifier(0.9);
        let mut fired = Vec::new();
        for i in 0..100 {
            let label = if i % 2 == 0 { 1.0 } else { 0.0 };
            let t = p.on_prediction(
                None,
                Value::Number(1.0),
                Some(&Label::Number(label)),
                i,
                &RULES,
            );
            if i < 49 {
                assert!(p.checks[0].last.is_none());
            }
            fired.extend(t);
        }
        assert!(matches!(fired[0].1, Transition::Fired { .. }));
        assert!(p.checks[0].last_pvalue.unwrap() < 1e-6);
    }
}
