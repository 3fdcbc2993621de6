//! The monitor: the deterministic core that turns events into verdicts,
//! alerts and retraining triggers.
//!
//! No I/O, no clock, no async: time is the events' own timestamps, so the
//! same events always give the same outputs — live, in replay, in benches
//! and after restoring a checkpoint.
//!
//! | module | owns |
//! |---|---|
//! | [`check`] | one monitored quantity: its window, its test, its alert phase |
//! | [`lifecycle`] | pending → firing → resolved with `for` persistence |
//! | [`join`] | labels joined to predictions by id, bounded by entries and event-time age |
//! | [`performance`] | accuracy / MAE / RMSE over the last labelled predictions, tested against the baseline |
//! | [`model`] | one model: its checks, missing rates, grouping into notifications, retraining triggers |
//! | [`state`] | the monitor's state as plain data, for checkpoints and baseline swaps |
//! | [`threshold`] | decision thresholds per mode (calibrated, fixed with corrections), cached |

pub mod check;
pub mod join;
pub mod lifecycle;
pub mod model;
pub mod performance;
pub mod state;
pub mod threshold;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::alert::Notification;
use crate::baseline::Baseline;
use crate::event::{Event, FeatureLayout, LabelEvent};
use crate::stats::StatsError;
use crate::stats::calibration::Calibration;

pub use lifecycle::Persistence;
pub use model::{ModelMonitor, ModelStatus};
pub use performance::{PerformanceSettings, PerformanceStatus};
pub use state::ModelState;
pub use threshold::{Correction, Decision, Thresholds};

/// How a model is monitored; built from the validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorSettings {
    /// Count window length per feature (for event-time windows, the
    /// nominal size the window structures are laid out for).
    pub window_size: usize,
    /// Event-time window span (ms): when set, each window holds the values
    /// of the events within this span of the newest event time seen, and
    /// `window_size` is only a sizing hint.
    #[serde(default)]
    pub window_duration_ms: Option<i64>,
    /// While a window fills, verdicts are given at multiples of this size.
    pub min_window: usize,
    /// Events between checks.
    pub check_interval: u64,
    /// Decision mode.
    pub decision: Decision,
    /// Persistence rules.
    pub persistence: Persistence,
    /// Events to wait after the first alert of a group changes before
    /// notifying, so features that drift together arrive in one message
    /// (Alertmanager's `group_wait`, in events).
    pub group_wait_events: u64,
    /// Event time between repeated notifications of a still-firing group.
    pub repeat_interval_ms: i64,
    /// Whether to notify when a group resolves.
    pub send_resolved: bool,
    /// Minimum event time between retraining triggers of one model; `None`
    /// disables triggers.
    pub retrain_cooldown_ms: Option<i64>,
    /// Data quality: allowed absolute increase of a feature's missing rate
    /// over the baseline's before it counts as drifted.
    pub missing_rate_tolerance: f64,
    /// Seed for calibration simulations.
    pub seed: u64,
    /// Ground truth: label join and performance checks.
    #[serde(default)]
    pub performance: PerformanceSettings,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            window_size: 1000,
            window_duration_ms: None,
            min_window: 100,
            check_interval: 1,
            decision: Decision::Calibrated {
                target_run_length: 1_000_000,
            },
            persistence: Persistence {
                for_checks: 50,
                for_duration_ms: 0,
                resolve_after_checks: 200,
            },
            group_wait_events: 100,
            repeat_interval_ms: 4 * 3600 * 1000,
            send_resolved: true,
            retrain_cooldown_ms: Some(3600 * 1000),
            missing_rate_tolerance: 0.05,
            seed: 0x6472_6966_7477_6172,
            performance: PerformanceSettings::default(),
        }
    }
}

/// Where an event came from in Kafka, so evidence can name offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// A retraining trigger: published on the retrain topic, keyed by model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainTrigger {
    /// The model.
    pub model: String,
    /// The model version, when it is monitored against its own baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Deterministic key: the same trigger after a replay has the same key.
    pub idempotency_key: String,
    /// Event time of the decision (ms).
    pub decided_at_ms: i64,
    /// The baseline the drift was measured against.
    pub baseline_id: String,
    /// The notification that caused it (its alerts are the evidence).
    pub notification: Notification,
}

/// One check's verdict, recorded when the caller asks (replay output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// Model.
    pub model: String,
    /// The model version, when it is monitored against its own baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Feature (or `prediction`, or `<feature>.missing_rate`).
    pub feature: String,
    /// Index of the event within the model's stream (1-based).
    pub event_index: u64,
    /// Event time (ms).
    pub timestamp_ms: i64,
    /// Window size.
    pub n: u64,
    /// Baseline size.
    pub m: u64,
    /// Statistic.
    pub statistic: f64,
    /// Threshold.
    pub threshold: f64,
    /// Verdict.
    pub drifted: bool,
}

/// What applying events produced; the shell carries it out.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Notifications to deliver.
    pub notifications: Vec<Notification>,
    /// Retraining triggers to publish.
    pub retrains: Vec<RetrainTrigger>,
    /// Per-check verdicts, only filled when `record_checks` is set.
    pub checks: Vec<CheckRecord>,
    /// Whether to fill `checks`.
    pub record_checks: bool,
}

/// Why an event was not applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// No baseline for the event's model.
    #[error("no baseline for model {0:?}")]
    UnknownModel(String),
    /// A statistic could not be computed (reported, never fatal).
    #[error(transparent)]
    Stats(#[from] StatsError),
}

/// One model: its default monitor and the monitors of the versions that
/// have a baseline of their own.
#[derive(Debug)]
struct ModelEntry {
    default: ModelMonitor,
    versions: BTreeMap<String, ModelMonitor>,
}

impl ModelEntry {
    fn new(default: ModelMonitor) -> ModelEntry {
        ModelEntry {
            default,
            versions: BTreeMap::new(),
        }
    }

    /// The monitor an event of `version` goes to: the version's own when it
    /// has one, else the default (the documented fallback).
    fn select(&mut self, version: Option<&str>) -> &mut ModelMonitor {
        match version.and_then(|v| self.versions.get_mut(v)) {
            Some(monitor) => monitor,
            None => &mut self.default,
        }
    }

    fn all(&self) -> impl Iterator<Item = &ModelMonitor> {
        std::iter::once(&self.default).chain(self.versions.values())
    }
}

fn no_default(model: &str, version: &str) -> StatsError {
    StatsError::InvalidArgument {
        name: "model_version",
        reason: format!(
            "model {model:?} needs its default baseline before one for version {version:?}"
        ),
    }
}

/// All monitored models.
///
/// Each model has a default baseline and may have one per `model_version`:
/// an event whose version has its own baseline is monitored against it, in
/// windows of its own (versions differ in what normal looks like, so their
/// values never share a window); every other event, with or without a
/// version, goes to the default baseline's monitor.
#[derive(Debug)]
pub struct Monitor {
    models: BTreeMap<String, ModelEntry>,
    thresholds: Thresholds,
}

impl Monitor {
    /// A monitor with no models; `seed` makes calibrations reproducible.
    pub fn new(seed: u64) -> Monitor {
        Monitor {
            models: BTreeMap::new(),
            thresholds: Thresholds::new(seed),
        }
    }

    /// Adds (or replaces, keeping window contents) a model's default
    /// baseline.
    pub fn set_baseline(
        &mut self,
        baseline: Arc<Baseline>,
        settings: MonitorSettings,
    ) -> Result<(), StatsError> {
        self.set_baseline_for(None, baseline, settings)
    }

    /// Adds (or replaces, keeping window contents) the baseline used for
    /// events of `version` (`None`: the model's default). A version's
    /// baseline needs the model's default to be set first.
    pub fn set_baseline_for(
        &mut self,
        version: Option<&str>,
        baseline: Arc<Baseline>,
        settings: MonitorSettings,
    ) -> Result<(), StatsError> {
        let name = baseline.model.clone();
        let fresh = |baseline, settings| {
            Ok::<_, StatsError>(
                ModelMonitor::new(baseline, settings)?.for_version(version.map(str::to_string)),
            )
        };
        match (self.models.get_mut(&name), version) {
            (None, None) => {
                let default = fresh(baseline, settings)?;
                self.models.insert(name, ModelEntry::new(default));
            }
            (None, Some(version)) => {
                return Err(no_default(&name, version));
            }
            (Some(entry), None) => {
                // Rebuilt from the state as plain data: no copy of the
                // old monitor is needed.
                entry.default = ModelMonitor::restore(baseline, settings, &entry.default.state())?;
            }
            (Some(entry), Some(version)) => {
                let next = match entry.versions.remove(version) {
                    Some(old) => old.rebased(baseline, settings)?,
                    None => fresh(baseline, settings)?,
                };
                entry.versions.insert(version.to_string(), next);
            }
        }
        Ok(())
    }

    /// Replaces (or adds) the baseline events of `version` use, with the
    /// settings the model already runs with; window contents carry over
    /// when the slot had a baseline. Returns the id it replaced.
    pub fn install(
        &mut self,
        version: Option<&str>,
        baseline: Arc<Baseline>,
    ) -> Result<Option<String>, ApplyError> {
        let entry = self
            .models
            .get(&baseline.model)
            .ok_or_else(|| ApplyError::UnknownModel(baseline.model.clone()))?;
        let current = match version {
            Some(v) => entry.versions.get(v),
            None => Some(&entry.default),
        };
        let previous = current.map(|m| m.baseline().id.clone());
        // A version new to the model starts with the default's settings.
        let settings = current.unwrap_or(&entry.default).settings().clone();
        self.set_baseline_for(version, baseline, settings)?;
        Ok(previous)
    }

    /// Adds a model (or one of its versions, per `state.model_version`)
    /// restored from saved state (a checkpoint), onto `baseline` (which may
    /// differ from the one the state was built on).
    pub fn restore_model(
        &mut self,
        baseline: Arc<Baseline>,
        settings: MonitorSettings,
        state: &ModelState,
    ) -> Result<(), StatsError> {
        let monitor = ModelMonitor::restore(baseline, settings, state)?;
        let name = monitor.baseline().model.clone();
        match (self.models.get_mut(&name), &state.model_version) {
            (Some(entry), Some(version)) => {
                entry.versions.insert(version.clone(), monitor);
            }
            (Some(entry), None) => entry.default = monitor,
            (None, None) => {
                self.models.insert(name, ModelEntry::new(monitor));
            }
            (None, Some(version)) => {
                return Err(no_default(&name, version));
            }
        }
        Ok(())
    }

    /// Saved state of every model and version.
    pub fn states(&self) -> Vec<ModelState> {
        self.monitors().map(ModelMonitor::state).collect()
    }

    /// The threshold calibrations computed so far, for a checkpoint.
    pub fn calibrations(&self) -> Vec<Calibration> {
        self.thresholds.calibrations()
    }

    /// Adds calibrations from a checkpoint, so that a restarted monitor
    /// does not simulate them again (the same request and seed give the
    /// same calibration, so verdicts are unchanged).
    pub fn add_calibrations(&mut self, calibrations: impl IntoIterator<Item = Calibration>) {
        self.thresholds.add_calibrations(calibrations);
    }

    /// The decoding layout for events of a model (and version), if
    /// monitored.
    pub fn layout(&self, model: &str, version: Option<&str>) -> Option<&FeatureLayout> {
        let entry = self.models.get(model)?;
        let monitor = version
            .and_then(|v| entry.versions.get(v))
            .unwrap_or(&entry.default);
        Some(monitor.layout())
    }

    /// Applies one decoded event to the monitor its model and version
    /// select.
    pub fn apply(
        &mut self,
        event: &Event,
        position: Position,
        out: &mut Outputs,
    ) -> Result<(), ApplyError> {
        let entry = self
            .models
            .get_mut(&event.model)
            .ok_or_else(|| ApplyError::UnknownModel(event.model.clone()))?;
        let model = entry.select(event.model_version.as_deref());
        model.apply(event, position, &mut self.thresholds, out)?;
        Ok(())
    }

    /// Applies one label event: joined to its prediction (now or when it
    /// comes), scored, and checked against the baseline's reference metric.
    ///
    /// A label naming its `model_version` goes to that version's monitor.
    /// Without one it goes to the version monitor that holds its
    /// prediction, else to the default. A label that arrives before its
    /// prediction and names no version therefore waits at the default; for
    /// a version with its own baseline, such labels should carry the
    /// version.
    pub fn apply_label(&mut self, label: &LabelEvent, out: &mut Outputs) -> Result<(), ApplyError> {
        let entry = self
            .models
            .get_mut(&label.model)
            .ok_or_else(|| ApplyError::UnknownModel(label.model.clone()))?;
        let version = match &label.model_version {
            Some(v) => Some(v.clone()),
            None => entry
                .versions
                .iter()
                .find(|(_, m)| m.knows_prediction(&label.id))
                .map(|(v, _)| v.clone()),
        };
        entry.select(version.as_deref()).apply_label(label, out)?;
        Ok(())
    }

    /// Status of every model and version, for the API.
    pub fn status(&self) -> Vec<ModelStatus> {
        self.monitors().map(ModelMonitor::status).collect()
    }

    /// Status of one model's default monitor.
    pub fn model_status(&self, model: &str) -> Option<ModelStatus> {
        self.models.get(model).map(|e| e.default.status())
    }

    /// Status of the monitor of one model version with its own baseline.
    pub fn version_status(&self, model: &str, version: &str) -> Option<ModelStatus> {
        self.models
            .get(model)?
            .versions
            .get(version)
            .map(ModelMonitor::status)
    }

    /// Performance, join counters and label delay of one model's default
    /// monitor (`None` when unknown or without reference metrics).
    pub fn performance_status(&self, model: &str) -> Option<PerformanceStatus> {
        self.models.get(model)?.default.performance_status()
    }

    /// Every model's default monitor.
    pub fn models(&self) -> impl Iterator<Item = &ModelMonitor> {
        self.models.values().map(|e| &e.default)
    }

    /// Every monitor: each model's default, then its versions.
    pub fn monitors(&self) -> impl Iterator<Item = &ModelMonitor> {
        self.models.values().flat_map(ModelEntry::all)
    }

    /// The monitor events of `model` and `version` go to.
    pub fn monitor_for(&self, model: &str, version: Option<&str>) -> Option<&ModelMonitor> {
        let entry = self.models.get(model)?;
        Some(
            version
                .and_then(|v| entry.versions.get(v))
                .unwrap_or(&entry.default),
        )
    }

    /// The monitor of exactly this slot: the model's default (`None`), or
    /// the version with a baseline of its own; no fallback.
    pub fn slot(&self, model: &str, version: Option<&str>) -> Option<&ModelMonitor> {
        let entry = self.models.get(model)?;
        match version {
            None => Some(&entry.default),
            Some(v) => entry.versions.get(v),
        }
    }

    /// Mutable access to one model's default monitor (tests and tools).
    pub fn model_mut(&mut self, model: &str) -> Option<&mut ModelMonitor> {
        self.models.get_mut(model).map(|e| &mut e.default)
    }
}
