//! The monitor's state as plain data: what a checkpoint stores and what a
//! baseline swap carries over.
//!
//! Windows are kept as raw values (numbers, or category names), never as
//! derived structures: those belong to a baseline and are rebuilt against
//! whichever baseline the state is restored onto.

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, CheckKind};

use super::Position;
use super::check::Outcome;
use super::lifecycle::Phase;
use super::performance::PerformanceState;

/// Everything one model's monitor knows beyond its baseline and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    /// The model.
    pub model: String,
    /// The `model_version` the monitor was selected for (`None`: default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The baseline the state was built against (informational: a state can
    /// be restored onto another baseline).
    pub baseline_id: String,
    /// Events applied.
    pub events: u64,
    /// Newest event time seen (event-time windows' clock).
    #[serde(default)]
    pub newest_ms: Option<i64>,
    /// Event time and position of the most recent events (window range).
    pub recent: Vec<(i64, Position)>,
    /// One entry per check (features, then prediction).
    pub checks: Vec<CheckState>,
    /// One entry per feature: its data-quality trackers.
    pub quality: Vec<QualityState>,
    /// Notification grouping.
    pub group: GroupState,
    /// Performance window, metric alerts and label join store (absent in
    /// checkpoints from before ground truth, and for models without
    /// reference metrics).
    #[serde(default)]
    pub performance: Option<PerformanceState>,
    /// Label events applied (with `events`, the grouping clock).
    #[serde(default)]
    pub labels: u64,
}

/// A check's window and alert phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckState {
    /// Feature name, or `prediction`.
    pub name: String,
    /// Check kind.
    pub kind: CheckKind,
    /// Window contents, oldest first.
    pub window: WindowState,
    /// Alert phase.
    pub phase: Phase,
    /// Latest outcome.
    pub last: Option<Outcome>,
    /// Event time of each windowed value (event-time windows only).
    #[serde(default)]
    pub times: Vec<i64>,
}

/// Raw window contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WindowState {
    /// Numbers.
    Numeric {
        /// Values, oldest first.
        values: Vec<f64>,
    },
    /// Categories by name; `None` is a category the baseline did not know.
    Categorical {
        /// Values, oldest first.
        values: Vec<Option<String>>,
    },
}

/// Missing-value and unknown-category tracking of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityState {
    /// Feature name.
    pub name: String,
    /// Whether each of the last events had the feature missing.
    pub missing: Vec<bool>,
    /// Missing-rate alert phase and latest outcome.
    pub missing_phase: Phase,
    /// Latest missing-rate outcome.
    pub missing_last: Option<Outcome>,
    /// Unknown-category alert phase (categorical features).
    pub unknown_phase: Phase,
    /// Latest unknown-category outcome.
    pub unknown_last: Option<Outcome>,
    /// Event time of each entry of `missing` (event-time windows only).
    #[serde(default)]
    pub times: Vec<i64>,
}

/// Grouping of alert changes into notifications.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupState {
    /// Event count at which pending changes are flushed.
    pub flush_at_event: Option<u64>,
    /// Event time of the last notification.
    pub last_notified_ms: Option<i64>,
    /// Resolved alerts waiting for the next notification.
    pub resolved: Vec<Alert>,
    /// Checks announced as firing, so only those get a resolution.
    pub announced: Vec<(CheckKind, String)>,
    /// Something newly fired since the last notification.
    pub fired_since_last: bool,
    /// Notifications sent so far.
    pub sequence: u64,
    /// Event time of the last retraining trigger.
    pub last_retrain_ms: Option<i64>,
}
