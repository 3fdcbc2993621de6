//! One monitored model: its checks, its missing-rate tracking, and the
//! grouping of alert changes into notifications and retraining triggers.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

use crate::alert::{Alert, AlertStatus, CheckKind, Evidence, Notification};
use crate::baseline::Baseline;
use crate::event::{Event, FeatureLayout, LabelEvent, Value};
use crate::stats::StatsError;
use crate::stats::ks::{KsOptions, Method, p_value_scaled};

use super::check::{Check, Outcome, Statistic, Test};
use super::lifecycle::{Phase, Transition};
use super::performance::{Performance, PerformanceStatus};
use super::state::{CheckState, GroupState, ModelState, QualityState, WindowState};
use super::threshold::{Correction, Decision, Thresholds, bh_rejects, fixed_level};
use super::{CheckRecord, MonitorSettings, Outputs, Position, RetrainTrigger};

/// Missing-value rate of one feature over the last `capacity` events.
#[derive(Debug, Clone)]
struct MissingRate {
    ring: VecDeque<bool>,
    missing: u64,
    capacity: usize,
    baseline_rate: f64,
    phase: Phase,
    last: Option<Outcome>,
    /// Unknown-category rate (categorical features): phase and outcome.
    unknown_phase: Phase,
    unknown_last: Option<Outcome>,
    /// Event time per entry of `ring` (event-time windows only).
    times: VecDeque<i64>,
}

impl MissingRate {
    /// Event-time windows: adds without evicting.
    fn insert_at(&mut self, is_missing: bool, at_ms: i64) {
        self.ring.push_back(is_missing);
        self.missing += u64::from(is_missing);
        self.times.push_back(at_ms);
    }

    /// Event-time windows: evicts entries older than `cutoff_ms`.
    fn evict_before(&mut self, cutoff_ms: i64) {
        while self.times.front().is_some_and(|&t| t < cutoff_ms) {
            self.times.pop_front();
            if let Some(old) = self.ring.pop_front() {
                self.missing -= u64::from(old);
            }
        }
    }

    fn push(&mut self, is_missing: bool) {
        if self.ring.len() == self.capacity
            && let Some(old) = self.ring.pop_front()
        {
            self.missing -= u64::from(old);
        }
        self.ring.push_back(is_missing);
        self.missing += u64::from(is_missing);
    }
}

/// A quantity's state for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckStatus {
    /// Feature (or `prediction`).
    pub name: String,
    /// Check kind.
    pub check: CheckKind,
    /// `ks`, `chi2` or `missing_rate`.
    pub test: &'static str,
    /// Latest statistic.
    pub statistic: Option<f64>,
    /// Latest threshold.
    pub threshold: Option<f64>,
    /// Latest verdict.
    pub drifted: bool,
    /// Window fill n.
    pub n: u64,
    /// Window capacity.
    pub capacity: u64,
    /// Baseline size m.
    pub m: u64,
    /// `ok`, `pending` or `firing`.
    pub state: &'static str,
}

/// A model's state for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStatus {
    /// Model id.
    pub model: String,
    /// The model version monitored against its own baseline; absent for
    /// the model's default baseline (every other version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Active baseline id.
    pub baseline_id: String,
    /// Events applied.
    pub events: u64,
    /// Event time of the newest event.
    pub last_event_ms: Option<i64>,
    /// Firing alerts.
    pub firing: usize,
    /// Per-check state; performance metrics appear as rows of kind
    /// `performance` (statistic: window value, threshold: baseline value,
    /// n: labelled samples, m: the reference's sample size).
    pub checks: Vec<CheckStatus>,
    /// Labelled performance: metrics, per-class scores, join counters and
    /// label-delay quantiles; absent when the baseline has no reference
    /// metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<PerformanceStatus>,
}

/// Suffix of the data-quality alert on a categorical feature's
/// unknown-category rate (`plan.unknown_category`).
pub const UNKNOWN_SUFFIX: &str = ".unknown_category";

/// The verdict of a full KS count window whose statistic cannot have
/// reached its calibrated threshold since the window was last settled
/// ([`SlidingKs::d_scaled_at_most`](crate::stats::window::SlidingKs::d_scaled_at_most),
/// tightened when the plain bound reaches the threshold):
/// not drifted, known exactly without reading D. The outcome carries D as
/// of the last settle (what the window last measured exactly), which is
/// what [`CheckStatus`] falls back on; status and evidence read the
/// current D from the window. `None` when D must be read.
/// Pushes a tightened bound must leave room for before the threshold (see
/// [`quiet_verdict`]).
const TIGHTEN_HEADROOM: u64 = 32;

fn quiet_verdict(check: &mut Check) -> Option<Outcome> {
    let (Test::Ks { window }, Some(threshold), Some(last)) =
        (&mut check.test, check.calibrated.get(), check.last)
    else {
        return None;
    };
    if window.d_scaled_at_most() < threshold {
        return Some(Outcome {
            drifted: false,
            ..last
        });
    }
    // A tightened bound that leaves room for fewer than `TIGHTEN_HEADROOM`
    // more pushes would be tightened again at once, each time over every
    // changed block: settling then costs less.
    window.tighten();
    let headroom = TIGHTEN_HEADROOM.saturating_mul(window.reference().size());
    (window.d_scaled_at_most().saturating_add(headroom) < threshold).then_some(Outcome {
        drifted: false,
        ..last
    })
}

fn rate_outcome(rate: f64, threshold: f64, n: usize) -> Outcome {
    Outcome {
        statistic: rate,
        threshold,
        drifted: rate > threshold,
        n: n as u64,
    }
}

/// One model's monitor.
#[derive(Debug, Clone)]
pub struct ModelMonitor {
    baseline: Arc<Baseline>,
    /// The `model_version` this monitor is selected for; `None` for the
    /// model's default baseline.
    version: Option<String>,
    layout: FeatureLayout,
    settings: MonitorSettings,
    /// Features in layout order, then the prediction if the baseline has one.
    checks: Vec<Check>,
    missing: Vec<MissingRate>,
    /// Event time and position of the last `window_size` events.
    recent: VecDeque<(i64, Position)>,
    events: u64,
    /// Newest event time seen (event-time windows' clock).
    newest_ms: Option<i64>,
    group: GroupState,
    /// Labelled performance, when the baseline has reference metrics.
    performance: Option<Performance>,
    /// Label events applied (part of the grouping clock).
    labels: u64,
}

impl ModelMonitor {
    /// A fresh monitor for a baseline.
    pub fn new(
        baseline: Arc<Baseline>,
        settings: MonitorSettings,
    ) -> Result<ModelMonitor, StatsError> {
        let capacity = settings.window_size;
        let mut checks = Vec::with_capacity(baseline.features.len() + 1);
        for feature in &baseline.features {
            checks.push(Check::new(
                &feature.name,
                CheckKind::FeatureDrift,
                &feature.distribution,
                capacity,
            )?);
        }
        if let Some(prediction) = &baseline.prediction {
            checks.push(Check::new(
                "prediction",
                CheckKind::PredictionDrift,
                prediction,
                capacity,
            )?);
        }
        let missing = baseline
            .features
            .iter()
            .map(|f| MissingRate {
                ring: VecDeque::with_capacity(capacity),
                missing: 0,
                capacity,
                baseline_rate: f.missing_rate(),
                phase: Phase::Inactive,
                last: None,
                unknown_phase: Phase::Inactive,
                unknown_last: None,
                times: VecDeque::new(),
            })
            .collect();
        let performance = Performance::new(
            &baseline.metrics,
            baseline.prediction.as_ref(),
            settings.performance,
        );
        Ok(ModelMonitor {
            performance,
            labels: 0,
            layout: FeatureLayout::from_baseline(&baseline),
            baseline,
            version: None,
            settings,
            checks,
            missing,
            recent: VecDeque::with_capacity(capacity),
            events: 0,
            newest_ms: None,
            group: GroupState::default(),
        })
    }

    /// The same monitor against a new baseline: window contents, alert
    /// phases and grouping carry over (windows are rebuilt from their raw
    /// values), for the features the two baselines share with one kind.
    pub fn rebased(
        self,
        baseline: Arc<Baseline>,
        settings: MonitorSettings,
    ) -> Result<ModelMonitor, StatsError> {
        let state = self.state();
        ModelMonitor::restore(baseline, settings, &state)
    }

    /// The monitor's state as plain data (for checkpoints and swaps).
    pub fn state(&self) -> ModelState {
        let checks = self
            .checks
            .iter()
            .map(|check| CheckState {
                name: check.name.clone(),
                kind: check.kind,
                window: self.window_state(check),
                phase: check.phase,
                last: check.last,
                times: check.times.iter().copied().collect(),
            })
            .collect();
        let quality = self
            .missing
            .iter()
            .zip(&self.baseline.features)
            .map(|(t, f)| QualityState {
                name: f.name.clone(),
                missing: t.ring.iter().copied().collect(),
                missing_phase: t.phase,
                missing_last: t.last,
                unknown_phase: t.unknown_phase,
                unknown_last: t.unknown_last,
                times: t.times.iter().copied().collect(),
            })
            .collect();
        ModelState {
            model: self.baseline.model.clone(),
            model_version: self.version.clone(),
            baseline_id: self.baseline.id.clone(),
            events: self.events,
            newest_ms: self.newest_ms,
            recent: self.recent.iter().copied().collect(),
            checks,
            quality,
            group: self.group.clone(),
            performance: self.performance.as_ref().map(Performance::state),
            labels: self.labels,
        }
    }

    fn window_state(&self, check: &Check) -> WindowState {
        match &check.test {
            Test::Ks { window } => WindowState::Numeric {
                values: window.values().collect(),
            },
            Test::ChiSquare { ring, .. } => {
                let names = self.category_names(check);
                let values = ring
                    .iter()
                    .map(|&i| names.get(i as usize).cloned())
                    .collect();
                WindowState::Categorical { values }
            }
        }
    }

    /// Category names of a categorical check, in index order.
    fn category_names(&self, check: &Check) -> Vec<String> {
        let distribution = if check.kind == CheckKind::PredictionDrift {
            self.baseline.prediction.as_ref()
        } else {
            self.baseline
                .feature(&check.name)
                .map(|(_, f)| &f.distribution)
        };
        match distribution {
            Some(crate::baseline::Distribution::Categorical { counts }) => {
                counts.keys().cloned().collect()
            }
            _ => Vec::new(),
        }
    }

    /// A monitor for `baseline` holding `state`. Values of a feature whose
    /// kind differs in the new baseline, or that it lacks, are dropped.
    pub fn restore(
        baseline: Arc<Baseline>,
        settings: MonitorSettings,
        state: &ModelState,
    ) -> Result<ModelMonitor, StatsError> {
        let mut next = ModelMonitor::new(baseline, settings)?;
        next.version = state.model_version.clone();
        for i in 0..next.checks.len() {
            let (name, kind) = (next.checks[i].name.clone(), next.checks[i].kind);
            let Some(saved) = state
                .checks
                .iter()
                .find(|c| c.name == name && c.kind == kind)
            else {
                continue;
            };
            let names = next.category_names(&next.checks[i]);
            let timed = next.settings.window_duration_ms.is_some();
            let check = &mut next.checks[i];
            check.phase = saved.phase;
            check.last = saved.last;
            let values: Vec<Value> = match &saved.window {
                WindowState::Numeric { values } => {
                    values.iter().map(|&x| Value::Number(x)).collect()
                }
                WindowState::Categorical { values } => values
                    .iter()
                    .map(|v| {
                        let index = v.as_ref().and_then(|v| names.iter().position(|n| n == v));
                        index.map_or(Value::UnknownCategory, |i| Value::Category(i as u32))
                    })
                    .collect(),
            };
            for (j, value) in values.into_iter().enumerate() {
                match timed {
                    // A state saved from a count window has no times: its
                    // values count as seen at the newest time.
                    true => check.insert_at(
                        value,
                        saved.times.get(j).copied().or(state.newest_ms).unwrap_or(0),
                    )?,
                    false => check.test.push(value)?,
                }
            }
        }
        for tracker_state in &state.quality {
            let Some((i, _)) = next.baseline.feature(&tracker_state.name) else {
                continue;
            };
            let timed = next.settings.window_duration_ms.is_some();
            let tracker = &mut next.missing[i];
            for (j, &m) in tracker_state.missing.iter().enumerate() {
                match timed {
                    true => tracker.insert_at(
                        m,
                        tracker_state
                            .times
                            .get(j)
                            .copied()
                            .or(state.newest_ms)
                            .unwrap_or(0),
                    ),
                    false => tracker.push(m),
                }
            }
            tracker.phase = tracker_state.missing_phase;
            tracker.last = tracker_state.missing_last;
            tracker.unknown_phase = tracker_state.unknown_phase;
            tracker.unknown_last = tracker_state.unknown_last;
        }
        let capacity = match next.settings.window_duration_ms {
            Some(_) => usize::MAX,
            None => next.settings.window_size,
        };
        let skip = state.recent.len().saturating_sub(capacity);
        next.recent = state.recent.iter().skip(skip).copied().collect();
        next.events = state.events;
        next.newest_ms = state.newest_ms;
        next.group = state.group.clone();
        next.labels = state.labels;
        if let (Some(performance), Some(saved)) = (&mut next.performance, &state.performance) {
            performance.restore(saved);
        }
        Ok(next)
    }

    /// This monitor selected for events of one `model_version` (its own
    /// baseline), rather than as the model's default.
    pub fn for_version(mut self, version: Option<String>) -> ModelMonitor {
        self.version = version;
        self
    }

    /// The `model_version` this monitor is selected for (`None`: default).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Whether this monitor's join store holds or settled a prediction
    /// with this id.
    pub fn knows_prediction(&self, id: &str) -> bool {
        self.performance
            .as_ref()
            .is_some_and(|p| p.knows_prediction(id))
    }

    /// The settings this monitor runs with.
    pub fn settings(&self) -> &MonitorSettings {
        &self.settings
    }

    /// The decoding layout.
    pub fn layout(&self) -> &FeatureLayout {
        &self.layout
    }

    /// The active baseline.
    pub fn baseline(&self) -> &Arc<Baseline> {
        &self.baseline
    }

    /// The checks (features, then prediction).
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Events applied so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Applies one event and runs the checks when due.
    pub fn apply(
        &mut self,
        event: &Event,
        position: Position,
        thresholds: &mut Thresholds,
        out: &mut Outputs,
    ) -> Result<(), StatsError> {
        self.events += 1;
        match self.settings.window_duration_ms {
            None => self.push_counted(event, position)?,
            Some(span) => self.push_timed(event, position, span)?,
        }

        if self.events.is_multiple_of(self.settings.check_interval) {
            self.run_checks(event.timestamp_ms, thresholds, out)?;
            self.run_missing_checks(event.timestamp_ms, out);
        }
        self.score_prediction(event);
        self.maybe_notify(event.timestamp_ms, out)
    }

    /// Ground truth from the prediction side: an inline label is scored at
    /// once; an id without one waits in the join store for its label.
    fn score_prediction(&mut self, event: &Event) {
        let rules = self.settings.persistence;
        let Some(performance) = self.performance.as_mut() else {
            return;
        };
        let transitions = performance.on_prediction(
            event.id.as_deref(),
            event.prediction,
            event.label.as_ref(),
            event.timestamp_ms,
            &rules,
        );
        self.note_performance(transitions, event.timestamp_ms);
    }

    /// Applies a label event (label topics). A model without reference
    /// metrics ignores labels: there is nothing to compare them with.
    pub fn apply_label(&mut self, label: &LabelEvent, out: &mut Outputs) -> Result<(), StatsError> {
        let rules = self.settings.persistence;
        let Some(performance) = self.performance.as_mut() else {
            return Ok(());
        };
        self.labels += 1;
        let at = label.timestamp_ms;
        let transitions = performance.on_label(&label.id, label.label.clone(), at, &rules);
        self.note_performance(transitions, at);
        self.maybe_notify(at, out)
    }

    fn note_performance(&mut self, transitions: Vec<(String, Transition)>, now_ms: i64) {
        for (name, transition) in transitions {
            self.note_transition(CheckKind::Performance, &name, Some(transition), now_ms);
        }
    }

    /// The grouping clock: events and labels applied. Labels count so that
    /// an alert decided while only labels arrive (a batch of ground truth
    /// after the traffic) is still notified after the group wait.
    fn inputs(&self) -> u64 {
        self.events + self.labels
    }

    /// Performance, join counters and label delay for the API, if the
    /// baseline has reference metrics.
    pub fn performance_status(&self) -> Option<PerformanceStatus> {
        self.performance.as_ref().map(Performance::status)
    }

    /// Labelled performance, if the baseline has reference metrics.
    pub fn performance(&self) -> Option<&Performance> {
        self.performance.as_ref()
    }

    /// Count windows: the last `window_size` values of each quantity.
    fn push_counted(&mut self, event: &Event, position: Position) -> Result<(), StatsError> {
        if self.recent.len() == self.settings.window_size {
            self.recent.pop_front();
        }
        self.recent.push_back((event.timestamp_ms, position));
        let features = self.baseline.features.len();
        for (i, value) in event.values.iter().enumerate().take(features) {
            self.checks[i].test.push(*value)?;
            self.missing[i].push(*value == Value::Missing);
        }
        if let Some(check) = self.checks.get_mut(features) {
            check.test.push(event.prediction)?;
        }
        Ok(())
    }

    /// Event-time windows: the values of events no older than `span_ms`
    /// before the newest event time seen. A late event enters the window
    /// like any other and leaves once its time falls behind the cutoff;
    /// eviction goes in arrival order, so a late event can stay up to the
    /// lateness longer than the span (bounded by the stream's disorder).
    fn push_timed(
        &mut self,
        event: &Event,
        position: Position,
        span_ms: i64,
    ) -> Result<(), StatsError> {
        let at = event.timestamp_ms;
        self.newest_ms = Some(self.newest_ms.map_or(at, |n| n.max(at)));
        self.recent.push_back((at, position));
        let features = self.baseline.features.len();
        for (i, value) in event.values.iter().enumerate().take(features) {
            self.checks[i].insert_at(*value, at)?;
            self.missing[i].insert_at(*value == Value::Missing, at);
        }
        if let Some(check) = self.checks.get_mut(features) {
            check.insert_at(event.prediction, at)?;
        }
        let cutoff = self.newest_ms.unwrap_or(at).saturating_sub(span_ms);
        while self.recent.front().is_some_and(|r| r.0 < cutoff) {
            self.recent.pop_front();
        }
        for check in &mut self.checks {
            check.evict_before(cutoff);
        }
        for tracker in &mut self.missing {
            tracker.evict_before(cutoff);
        }
        Ok(())
    }

    /// Whether a window of `n` values (capacity `capacity`) is checked now:
    /// a full count window always; a filling one at multiples of
    /// `min_window` (each size needs its own threshold); an event-time
    /// window whenever it holds at least `min_window`.
    fn due(&self, n: usize, capacity: usize) -> bool {
        let min = self.settings.min_window.max(2);
        if self.settings.window_duration_ms.is_some() {
            return n >= min;
        }
        n == capacity || (n >= min && n.is_multiple_of(min))
    }

    /// Whether a data-quality window of `n` entries is judged now.
    fn quality_due(&self, n: usize, capacity: usize) -> bool {
        match self.settings.window_duration_ms {
            Some(_) => n >= self.settings.min_window.max(2),
            None => n == capacity,
        }
    }

    fn run_checks(
        &mut self,
        now_ms: i64,
        thresholds: &mut Thresholds,
        out: &mut Outputs,
    ) -> Result<(), StatsError> {
        let family = self.checks.len();
        let mut verdicts: Vec<Option<(Outcome, Option<usize>)>> = Vec::with_capacity(family);
        for i in 0..family {
            let check = &self.checks[i];
            let (n, capacity) = (check.window_len(), check.capacity());
            if !self.due(n, capacity) {
                verdicts.push(None);
                continue;
            }
            let quiet = if out.record_checks {
                None
            } else {
                quiet_verdict(&mut self.checks[i])
            };
            verdicts.push(Some(match quiet {
                Some(outcome) => (outcome, None),
                None => {
                    if let Test::Ks { window } = &mut self.checks[i].test {
                        window.settle();
                    }
                    self.evaluate(&self.checks[i], thresholds, family)?
                }
            }));
        }
        if let Decision::Fixed {
            correction: Correction::Bh,
            ..
        } = self.settings.decision
        {
            let ranks: Vec<Option<usize>> =
                verdicts.iter().map(|v| v.and_then(|(_, r)| r)).collect();
            for (verdict, reject) in verdicts.iter_mut().zip(bh_rejects(&ranks)) {
                if let Some((outcome, _)) = verdict {
                    outcome.drifted = reject;
                }
            }
        }
        // A span for each run in which some verdict changed (drifted or
        // back): checks run per event by default, and a span per run would
        // cost more than the run itself, so the runs that move an alert are
        // the ones traced. Its parent is the consumed batch; the alert the
        // change leads to is delivered in a span of the same trace.
        let changed = verdicts
            .iter()
            .zip(&self.checks)
            .filter(|(v, c)| {
                v.as_ref()
                    .is_some_and(|(o, _)| c.last.map(|l| l.drifted) != Some(o.drifted))
            })
            .count();
        let span = (changed > 0).then(|| {
            tracing::info_span!("run_checks",
                model = %self.baseline.model,
                checks = family,
                changed,
                drifted = verdicts.iter().flatten().filter(|(o, _)| o.drifted).count())
        });
        let _entered = span.as_ref().map(tracing::Span::enter);
        for (i, verdict) in verdicts.into_iter().enumerate() {
            let Some((outcome, _)) = verdict else {
                continue;
            };
            let m = self.checks[i].baseline_len();
            self.record(i, outcome, m, now_ms, out);
        }
        Ok(())
    }

    fn record(&mut self, i: usize, outcome: Outcome, m: u64, now_ms: i64, out: &mut Outputs) {
        let rules = self.settings.persistence;
        let check = &mut self.checks[i];
        check.last = Some(outcome);
        if out.record_checks {
            out.checks.push(CheckRecord {
                model: self.baseline.model.clone(),
                model_version: self.version.clone(),
                feature: check.name.clone(),
                event_index: self.events,
                timestamp_ms: now_ms,
                n: outcome.n,
                m,
                statistic: outcome.statistic,
                threshold: outcome.threshold,
                drifted: outcome.drifted,
            });
        }
        // The name is cloned only for a transition: this runs per check per
        // event, and transitions are rare.
        let Some(transition) = check.phase.step(outcome.drifted, now_ms, &rules) else {
            return;
        };
        let (kind, name) = (check.kind, check.name.clone());
        self.note_transition(kind, &name, Some(transition), now_ms);
    }

    /// Statistic, threshold and verdict of one check; for BH also the rank
    /// (smallest k with the statistic past the level k·α/F).
    fn evaluate(
        &self,
        check: &Check,
        thresholds: &mut Thresholds,
        family: usize,
    ) -> Result<(Outcome, Option<usize>), StatsError> {
        let n = check.window_len() as u64;
        let m = check.baseline_len();
        // Event-time windows are never "full": their size changes with the
        // traffic, so they use per-size critical values, not the
        // calibration (which is for one fixed n).
        let timed = self.settings.window_duration_ms.is_some();
        let full = !timed && check.window_len() == check.capacity();
        let method = if timed { Method::Asymp } else { Method::Auto };
        let statistic = check.test.statistic()?;
        let level = |k: usize| -> f64 {
            match self.settings.decision {
                Decision::Fixed {
                    alpha,
                    correction: Correction::Bh,
                } => k as f64 * alpha / family.max(1) as f64,
                Decision::Fixed { alpha, correction } => fixed_level(alpha, correction, family),
                Decision::Calibrated { target_run_length } => {
                    // Union bound over time and features: conservative where
                    // no simulation-calibrated threshold applies.
                    self.settings.check_interval as f64
                        / (target_run_length as f64 * family.max(1) as f64)
                }
            }
        };
        let is_bh = matches!(
            self.settings.decision,
            Decision::Fixed {
                correction: Correction::Bh,
                ..
            }
        );
        match statistic {
            Statistic::Ks { d_scaled, d } => {
                let threshold_scaled = match self.settings.decision {
                    Decision::Calibrated { target_run_length } if full => {
                        match check.calibrated.get() {
                            Some(cached) => cached,
                            None => {
                                let calibration = thresholds.calibration(
                                    n,
                                    m,
                                    self.settings.check_interval,
                                    target_run_length,
                                    family,
                                )?;
                                check.calibrated.set(Some(calibration.d_scaled));
                                calibration.d_scaled
                            }
                        }
                    }
                    _ => thresholds.ks_critical_with(n, m, level(1), method)?,
                };
                let rank = if is_bh {
                    let mut found = None;
                    for k in 1..=family {
                        if d_scaled >= thresholds.ks_critical_with(n, m, level(k), method)? {
                            found = Some(k);
                            break;
                        }
                    }
                    found
                } else {
                    None
                };
                let threshold = threshold_scaled as f64 / (n * m) as f64;
                let drifted = d_scaled >= threshold_scaled;
                Ok((
                    Outcome {
                        statistic: d,
                        threshold,
                        drifted,
                        n,
                    },
                    rank,
                ))
            }
            Statistic::ChiSquare { chi2, dof } => {
                let threshold = thresholds.chi2_critical(dof, level(1));
                let rank = if is_bh {
                    (1..=family).find(|&k| chi2 >= thresholds.chi2_critical(dof, level(k)))
                } else {
                    None
                };
                Ok((
                    Outcome {
                        statistic: chi2,
                        threshold,
                        drifted: chi2 >= threshold,
                        n,
                    },
                    rank,
                ))
            }
        }
    }

    /// Data quality per feature: the missing-value rate against the
    /// baseline's, and for categorical features the rate of categories the
    /// baseline never saw (chi-square sets those aside; this judges them).
    fn run_missing_checks(&mut self, now_ms: i64, out: &mut Outputs) {
        let rules = self.settings.persistence;
        let tolerance = self.settings.missing_rate_tolerance;
        // Names and labels are built only when a verdict is recorded or an
        // alert changes: this runs per feature per event.
        let features = Arc::clone(&self.baseline);
        for (i, feature) in features.features.iter().enumerate() {
            let name = &feature.name;
            let m = feature.present() + feature.missing;
            let due = self.quality_due(self.missing[i].ring.len(), self.missing[i].capacity);
            let tracker = &mut self.missing[i];
            if due {
                let rate = tracker.missing as f64 / tracker.ring.len() as f64;
                let outcome =
                    rate_outcome(rate, tracker.baseline_rate + tolerance, tracker.ring.len());
                tracker.last = Some(outcome);
                let transition = tracker.phase.step(outcome.drifted, now_ms, &rules);
                if out.record_checks {
                    self.record_quality(&format!("{name}.missing_rate"), outcome, m, now_ms, out);
                }
                if transition.is_some() {
                    self.note_transition(CheckKind::DataQuality, name, transition, now_ms);
                }
            }
            if let Some(rate) = self.unknown_rate(i) {
                let n = self.checks[i].window_len();
                let outcome = rate_outcome(rate, tolerance, n);
                let tracker = &mut self.missing[i];
                tracker.unknown_last = Some(outcome);
                let transition = tracker.unknown_phase.step(outcome.drifted, now_ms, &rules);
                if out.record_checks || transition.is_some() {
                    let label = format!("{name}{UNKNOWN_SUFFIX}");
                    self.record_quality(&label, outcome, m, now_ms, out);
                    self.note_transition(CheckKind::DataQuality, &label, transition, now_ms);
                }
            }
        }
    }

    /// Share of a full categorical window that the baseline never saw.
    fn unknown_rate(&self, feature: usize) -> Option<f64> {
        match &self.checks.get(feature)?.test {
            Test::ChiSquare {
                ring,
                counts,
                capacity,
                ..
            } if ring.len() == *capacity => Some(*counts.last()? as f64 / ring.len() as f64),
            _ => None,
        }
    }

    fn record_quality(
        &self,
        feature: &str,
        outcome: Outcome,
        m: u64,
        now_ms: i64,
        out: &mut Outputs,
    ) {
        if out.record_checks {
            out.checks.push(CheckRecord {
                model: self.baseline.model.clone(),
                model_version: self.version.clone(),
                feature: feature.to_string(),
                event_index: self.events,
                timestamp_ms: now_ms,
                n: outcome.n,
                m,
                statistic: outcome.statistic,
                threshold: outcome.threshold,
                drifted: outcome.drifted,
            });
        }
    }

    fn note_transition(
        &mut self,
        kind: CheckKind,
        name: &str,
        transition: Option<Transition>,
        now_ms: i64,
    ) {
        let Some(transition) = transition else { return };
        match transition {
            Transition::Fired { .. } => self.group.fired_since_last = true,
            Transition::Resolved { since_ms, at_ms } => {
                let key = (kind, name.to_string());
                let was_announced = self.group.announced.contains(&key);
                self.group.announced.retain(|k| k != &key);
                if was_announced && self.settings.send_resolved {
                    if let Ok(mut alert) = self.alert_for(kind, name, since_ms) {
                        alert.status = AlertStatus::Resolved;
                        alert.ends_at_ms = Some(at_ms);
                        self.group.resolved.push(alert);
                    }
                } else {
                    return;
                }
            }
        }
        if self.group.flush_at_event.is_none() {
            self.group.flush_at_event = Some(self.inputs() + self.settings.group_wait_events);
        }
        let _ = now_ms;
    }

    fn maybe_notify(&mut self, now_ms: i64, out: &mut Outputs) -> Result<(), StatsError> {
        let due_flush = self
            .group
            .flush_at_event
            .is_some_and(|at| self.inputs() >= at);
        let due_repeat = self.group.flush_at_event.is_none()
            && self
                .group
                .last_notified_ms
                .is_some_and(|last| now_ms - last >= self.settings.repeat_interval_ms)
            && self.any_firing();
        if !due_flush && !due_repeat {
            return Ok(());
        }
        // Evidence (with exact p-values) is computed only here, when a
        // notification is actually due, never per event.
        let firing = self.firing_alerts()?;
        self.group.flush_at_event = None;
        let resolved = std::mem::take(&mut self.group.resolved);
        if firing.is_empty() && resolved.is_empty() {
            return Ok(());
        }
        for alert in &firing {
            let key = (alert.check, alert.feature.clone());
            if !self.group.announced.contains(&key) {
                self.group.announced.push(key);
            }
        }
        let newly_fired = std::mem::take(&mut self.group.fired_since_last) && !firing.is_empty();
        let mut alerts = firing;
        alerts.extend(resolved);
        alerts.sort_by(|a, b| (a.check as u8, &a.feature).cmp(&(b.check as u8, &b.feature)));
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        self.group.sequence += 1;
        self.group.last_notified_ms = Some(now_ms);
        let notification = Notification {
            model: self.baseline.model.clone(),
            model_version: self.version.clone(),
            status,
            alerts,
            decided_at_ms: now_ms,
            sequence: self.group.sequence,
        };
        if newly_fired {
            self.maybe_retrain(&notification, now_ms, out);
        }
        out.notifications.push(notification);
        Ok(())
    }

    fn maybe_retrain(&mut self, notification: &Notification, now_ms: i64, out: &mut Outputs) {
        let Some(cooldown) = self.settings.retrain_cooldown_ms else {
            return;
        };
        if self
            .group
            .last_retrain_ms
            .is_some_and(|last| now_ms - last < cooldown)
        {
            return;
        }
        self.group.last_retrain_ms = Some(now_ms);
        out.retrains.push(RetrainTrigger {
            model: self.baseline.model.clone(),
            model_version: self.version.clone(),
            idempotency_key: format!("retrain-{}", notification.idempotency_key()),
            decided_at_ms: now_ms,
            baseline_id: self.baseline.id.clone(),
            notification: notification.clone(),
        });
    }

    fn any_firing(&self) -> bool {
        self.checks.iter().any(|c| c.phase.is_firing())
            || self.missing.iter().any(|m| m.phase.is_firing())
            || self
                .performance
                .as_ref()
                .is_some_and(Performance::any_firing)
    }

    /// Every currently firing alert with fresh evidence.
    fn firing_alerts(&self) -> Result<Vec<Alert>, StatsError> {
        let mut alerts = Vec::new();
        for check in &self.checks {
            if let Phase::Firing { since_ms, .. } = check.phase {
                alerts.push(self.alert_for(check.kind, &check.name, since_ms)?);
            }
        }
        for (i, tracker) in self.missing.iter().enumerate() {
            let name = &self.baseline.features[i].name;
            if let Phase::Firing { since_ms, .. } = tracker.phase {
                alerts.push(self.alert_for(CheckKind::DataQuality, name, since_ms)?);
            }
            if let Phase::Firing { since_ms, .. } = tracker.unknown_phase {
                let label = format!("{name}{UNKNOWN_SUFFIX}");
                alerts.push(self.alert_for(CheckKind::DataQuality, &label, since_ms)?);
            }
        }
        for check in self.performance.iter().flat_map(|p| p.checks()) {
            if let Phase::Firing { since_ms, .. } = check.phase {
                alerts.push(self.alert_for(CheckKind::Performance, &check.name, since_ms)?);
            }
        }
        Ok(alerts)
    }

    fn alert_for(&self, kind: CheckKind, name: &str, since_ms: i64) -> Result<Alert, StatsError> {
        let evidence = if kind == CheckKind::DataQuality {
            self.missing_evidence(name)
        } else if kind == CheckKind::Performance {
            self.performance_evidence(name)
        } else {
            let check = self
                .checks
                .iter()
                .find(|c| c.name == name && c.kind == kind);
            match check {
                Some(check) => self.check_evidence(check)?,
                None => self.empty_evidence("unknown"),
            }
        };
        Ok(Alert {
            model: self.baseline.model.clone(),
            model_version: self.version.clone(),
            check: kind,
            feature: name.to_string(),
            status: AlertStatus::Firing,
            starts_at_ms: since_ms,
            ends_at_ms: None,
            evidence,
        })
    }

    fn check_evidence(&self, check: &Check) -> Result<Evidence, StatsError> {
        let mut evidence = self.empty_evidence("ks");
        let n = check.window_len() as u64;
        let m = check.baseline_len();
        evidence.window_size = n;
        evidence.baseline_size = m;
        if let Some(last) = check.last {
            evidence.statistic = last.statistic;
            evidence.threshold = last.threshold;
        }
        match check.test.statistic()? {
            Statistic::Ks { d_scaled, d } if n > 0 => {
                evidence.statistic = d;
                evidence.p_value = Some(p_value_scaled(n, m, d_scaled, KsOptions::default())?.0);
            }
            Statistic::ChiSquare { chi2, .. } => {
                evidence.test = "chi2".into();
                evidence.statistic = chi2;
                if let Test::ChiSquare {
                    counts,
                    proportions,
                    ..
                } = &check.test
                {
                    evidence.p_value = crate::stats::categorical::chisquare_against_proportions(
                        counts,
                        proportions,
                    )
                    .ok()
                    .map(|r| r.test.pvalue);
                }
                evidence.psi = check.test.psi();
            }
            _ => {}
        }
        Ok(evidence)
    }

    fn missing_evidence(&self, name: &str) -> Evidence {
        let (feature_name, unknown) = match name.strip_suffix(UNKNOWN_SUFFIX) {
            Some(base) => (base, true),
            None => (name, false),
        };
        let mut evidence = self.empty_evidence(if unknown {
            "unknown_category_rate"
        } else {
            "missing_rate"
        });
        if let Some((i, feature)) = self.baseline.feature(feature_name) {
            let tracker = &self.missing[i];
            let last = if unknown {
                tracker.unknown_last
            } else {
                tracker.last
            };
            evidence.baseline_size = feature.present() + feature.missing;
            if let Some(last) = last {
                evidence.window_size = last.n;
                evidence.statistic = last.statistic;
                evidence.threshold = last.threshold;
            }
        }
        evidence
    }

    /// Evidence of a performance alert: `statistic` is the window's metric
    /// value, `threshold` the baseline's reference value, `p_value` the
    /// one-sided test's; `test` names the metric and the test.
    fn performance_evidence(&self, name: &str) -> Evidence {
        let mut evidence = self.empty_evidence(super::performance::test_name(name));
        let check = self
            .performance
            .iter()
            .flat_map(|p| p.checks())
            .find(|c| c.name == name);
        if let Some(check) = check {
            evidence.baseline_size = check.reference.n;
            evidence.threshold = check.reference.value;
            evidence.p_value = check.last_pvalue;
            if let Some(last) = check.last {
                evidence.statistic = last.statistic;
                evidence.window_size = last.n;
            }
        }
        evidence
    }

    fn empty_evidence(&self, test: &str) -> Evidence {
        let first = self.recent.front().copied().unwrap_or_default();
        let last = self.recent.back().copied().unwrap_or_default();
        Evidence {
            test: test.to_string(),
            statistic: 0.0,
            p_value: None,
            threshold: 0.0,
            psi: None,
            window_size: 0,
            baseline_size: 0,
            window_start_ms: first.0,
            window_end_ms: last.0,
            offsets: Some((first.1.offset, last.1.offset)),
            baseline_id: self.baseline.id.clone(),
        }
    }

    /// The statistic a status reports: for a full KS count window, D of
    /// the window now, read exactly (a verdict decided by the bound in
    /// [`quiet_verdict`] leaves the outcome's D as of the last settle);
    /// otherwise the last check's.
    fn current_statistic(&self, check: &Check, last: Outcome) -> f64 {
        match &check.test {
            Test::Ks { window }
                if self.settings.window_duration_ms.is_none() && window.is_full() =>
            {
                window.statistic()
            }
            _ => last.statistic,
        }
    }

    /// The model's state for the API.
    pub fn status(&self) -> ModelStatus {
        let mut checks: Vec<CheckStatus> = self
            .checks
            .iter()
            .map(|c| CheckStatus {
                name: c.name.clone(),
                check: c.kind,
                test: match c.test {
                    Test::Ks { .. } => "ks",
                    Test::ChiSquare { .. } => "chi2",
                },
                statistic: c.last.map(|o| self.current_statistic(c, o)),
                threshold: c.last.map(|o| o.threshold),
                drifted: c.last.is_some_and(|o| o.drifted),
                n: c.window_len() as u64,
                capacity: c.capacity() as u64,
                m: c.baseline_len(),
                state: c.phase.name(),
            })
            .collect();
        for (tracker, feature) in self.missing.iter().zip(&self.baseline.features) {
            checks.push(CheckStatus {
                name: feature.name.clone(),
                check: CheckKind::DataQuality,
                test: "missing_rate",
                statistic: tracker.last.map(|o| o.statistic),
                threshold: tracker.last.map(|o| o.threshold),
                drifted: tracker.last.is_some_and(|o| o.drifted),
                n: tracker.ring.len() as u64,
                capacity: tracker.capacity as u64,
                m: feature.present() + feature.missing,
                state: tracker.phase.name(),
            });
            if matches!(
                feature.distribution,
                crate::baseline::Distribution::Categorical { .. }
            ) {
                checks.push(CheckStatus {
                    name: format!("{}{UNKNOWN_SUFFIX}", feature.name),
                    check: CheckKind::DataQuality,
                    test: "unknown_category_rate",
                    statistic: tracker.unknown_last.map(|o| o.statistic),
                    threshold: tracker.unknown_last.map(|o| o.threshold),
                    drifted: tracker.unknown_last.is_some_and(|o| o.drifted),
                    n: tracker.unknown_last.map_or(0, |o| o.n),
                    capacity: tracker.capacity as u64,
                    m: feature.present(),
                    state: tracker.unknown_phase.name(),
                });
            }
        }
        checks.extend(
            self.performance
                .iter()
                .flat_map(Performance::check_statuses),
        );
        ModelStatus {
            model: self.baseline.model.clone(),
            model_version: self.version.clone(),
            baseline_id: self.baseline.id.clone(),
            events: self.events,
            last_event_ms: self.recent.back().map(|r| r.0),
            firing: checks.iter().filter(|c| c.state == "firing").count(),
            checks,
            performance: self.performance_status(),
        }
    }
}
