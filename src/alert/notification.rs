//! The alert and notification types shared by the monitor and every channel.
//!
//! An alert is identified by (model, model version, check, feature), the
//! version only when the model's version has a baseline of its own (see
//! [`crate::monitor`]). Its fingerprint is a
//! hash of that identity, so it is the same across restarts and replays. A
//! notification groups the alerts of one model that changed together and
//! carries an idempotency key derived from its content, so a notification
//! sent twice (a retry, a replay after a crash) is recognisable downstream.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Whether an alert (or a notification as a whole) is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds and has persisted for its `for` duration.
    Firing,
    /// The condition no longer holds.
    Resolved,
}

/// Which kind of check raised an alert; users route on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Distribution drift of an input feature (KS or chi-square).
    FeatureDrift,
    /// Distribution drift of the model's predictions.
    PredictionDrift,
    /// Data quality: missing or unknown-category rate.
    DataQuality,
    /// Performance against labels (accuracy, MAE, RMSE).
    Performance,
}

impl CheckKind {
    /// The label value used in notifications and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::FeatureDrift => "feature_drift",
            CheckKind::PredictionDrift => "prediction_drift",
            CheckKind::DataQuality => "data_quality",
            CheckKind::Performance => "performance",
        }
    }
}

/// The numbers behind a verdict, as a user would check them against scipy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Test name: `"ks"`, `"chi2"`, `"missing_rate"`, …
    pub test: String,
    /// The test statistic (D for KS, χ² for chi-square).
    pub statistic: f64,
    /// The p-value, when the test has one.
    pub p_value: Option<f64>,
    /// The decision threshold the statistic was compared with.
    pub threshold: f64,
    /// PSI, reported beside chi-square for categorical features.
    pub psi: Option<f64>,
    /// Window size n.
    pub window_size: u64,
    /// Baseline size m.
    pub baseline_size: u64,
    /// Event time (ms since the epoch) of the oldest event in the window.
    pub window_start_ms: i64,
    /// Event time (ms since the epoch) of the newest event in the window.
    pub window_end_ms: i64,
    /// Kafka offsets of the window's first and last events, when known.
    pub offsets: Option<(i64, i64)>,
    /// Id (content hash) of the baseline compared against.
    pub baseline_id: String,
}

/// One alert: one (model, check, feature) whose state changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The model's id.
    pub model: String,
    /// The model version, when this version is monitored against a
    /// baseline of its own; absent for the model's default baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The kind of check.
    pub check: CheckKind,
    /// The feature (or `"prediction"`, or a metric name).
    pub feature: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Event time the alert started firing (ms since the epoch).
    pub starts_at_ms: i64,
    /// Event time it resolved, if it has.
    pub ends_at_ms: Option<i64>,
    /// The evidence at the moment of the notification.
    pub evidence: Evidence,
}

impl Alert {
    /// Deterministic identity of (model, check, feature): the same across
    /// restarts, replays and instances. 16 hex digits, as Alertmanager's.
    pub fn fingerprint(&self) -> String {
        fingerprint(
            &self.model,
            self.model_version.as_deref(),
            self.check,
            &self.feature,
        )
    }
}

/// Fingerprint of an alert identity. Without a version it is the hash of
/// (model, check, feature) alone, so default-baseline alerts keep the
/// fingerprints they had before versions were monitored separately.
pub fn fingerprint(model: &str, version: Option<&str>, check: CheckKind, feature: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [model, check.as_str(), feature] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    if let Some(version) = version {
        hasher.update(b"version\0");
        hasher.update(version.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// One message for one model: every alert of that model that fired or
/// resolved at the same decision point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The model the alerts belong to (the grouping key, with the version).
    pub model: String,
    /// The model version, when it is monitored against its own baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Firing if any alert fires, else resolved.
    pub status: AlertStatus,
    /// The alerts, sorted by (check, feature).
    pub alerts: Vec<Alert>,
    /// Event time of the decision (ms since the epoch).
    pub decided_at_ms: i64,
    /// Sequence number of this notification for the model, counted by the
    /// monitor; part of the idempotency key.
    pub sequence: u64,
}

/// Test fixture: an empty firing notification of the model "churn" with
/// the given sequence number (the dispatcher's and the outbox's tests).
#[cfg(test)]
pub(crate) fn empty_firing(sequence: u64) -> Notification {
    Notification {
        model: "churn".into(),
        model_version: None,
        status: AlertStatus::Firing,
        alerts: Vec::new(),
        decided_at_ms: 0,
        sequence,
    }
}

impl Notification {
    /// Alertmanager-style group key.
    pub fn group_key(&self) -> String {
        match &self.model_version {
            Some(version) => format!(
                "{{}}:{{model=\"{}\", model_version=\"{version}\"}}",
                self.model
            ),
            None => format!("{{}}:{{model=\"{}\"}}", self.model),
        }
    }

    /// Key a receiver can use to drop duplicates: the same notification
    /// (same model, sequence, status and alerts) always has the same key.
    pub fn idempotency_key(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.model.as_bytes());
        if let Some(version) = &self.model_version {
            hasher.update(b"\0version\0");
            hasher.update(version.as_bytes());
        }
        hasher.update(self.sequence.to_be_bytes());
        hasher.update([self.status as u8]);
        for alert in &self.alerts {
            hasher.update(alert.fingerprint().as_bytes());
            hasher.update([alert.status as u8]);
        }
        hex::encode(&hasher.finalize()[..16])
    }

    /// The firing alerts only.
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
    }
}
