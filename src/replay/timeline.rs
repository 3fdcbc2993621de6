//! The alert timeline of a replay: each alert that fired or resolved, at
//! which event (index in its model's stream, line in the file, event
//! time), with the numbers behind it. Built from the monitor's
//! notifications, which also repeat alerts that are still firing; those
//! repeats appear as such, not as new firings.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::alert::{Alert, AlertStatus, CheckKind, Notification};
use crate::monitor::RetrainTrigger;

/// What happened at one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Alerts started firing.
    Fired,
    /// Alerts resolved.
    Resolved,
    /// A still-firing group was notified again (repeat interval).
    Repeated,
}

/// One alert's numbers at the notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineAlert {
    /// Kind of check.
    pub check: CheckKind,
    /// Feature, `prediction`, or the quality check's subject.
    pub feature: String,
    /// `ks`, `chi2`, `missing_rate`, …
    pub test: String,
    /// The statistic.
    pub statistic: f64,
    /// The p-value, when the test has one.
    pub p_value: Option<f64>,
    /// The threshold it was compared with.
    pub threshold: f64,
    /// Window size.
    pub n: u64,
    /// Baseline size.
    pub m: u64,
}

impl TimelineAlert {
    fn from_alert(alert: &Alert) -> TimelineAlert {
        let e = &alert.evidence;
        TimelineAlert {
            check: alert.check,
            feature: alert.feature.clone(),
            test: e.test.clone(),
            statistic: e.statistic,
            p_value: e.p_value,
            threshold: e.threshold,
            n: e.window_size,
            m: e.baseline_size,
        }
    }
}

/// One point of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// Model.
    pub model: String,
    /// Index of the deciding event in the model's stream (1-based).
    pub event_index: u64,
    /// Its line in the file.
    pub line: u64,
    /// Its event time (ms since the epoch).
    pub timestamp_ms: i64,
    /// What happened.
    pub change: Change,
    /// The notification's sequence number for the model.
    pub notification: u64,
    /// The alerts concerned.
    pub alerts: Vec<TimelineAlert>,
    /// Idempotency key of the retraining trigger decided with it.
    pub retrain: Option<String>,
}

impl TimelineEntry {
    /// Whether alerts fired here.
    pub fn is_fired(&self) -> bool {
        self.change == Change::Fired
    }

    /// Whether alerts resolved here.
    pub fn is_resolved(&self) -> bool {
        self.change == Change::Resolved
    }
}

/// Builds the timeline from notifications as they come.
#[derive(Debug, Default)]
pub struct Timeline {
    /// Fingerprints of alerts currently firing.
    firing: BTreeSet<String>,
    entries: Vec<TimelineEntry>,
}

impl Timeline {
    /// Notes the notifications and triggers decided at one event.
    pub fn note(
        &mut self,
        event_index: u64,
        line: u64,
        notifications: &[Notification],
        retrains: &[RetrainTrigger],
    ) {
        for n in notifications {
            let retrain = retrains
                .iter()
                .find(|r| r.notification.sequence == n.sequence && r.model == n.model)
                .map(|r| r.idempotency_key.clone());
            let entry = |change, alerts: Vec<TimelineAlert>, retrain| TimelineEntry {
                model: n.model.clone(),
                event_index,
                line,
                timestamp_ms: n.decided_at_ms,
                change,
                notification: n.sequence,
                alerts,
                retrain,
            };
            let (fired, resolved) = self.split(n);
            let repeated = fired.is_empty() && resolved.is_empty();
            if !fired.is_empty() {
                self.entries
                    .push(entry(Change::Fired, fired, retrain.clone()));
            }
            if !resolved.is_empty() {
                self.entries.push(entry(Change::Resolved, resolved, None));
            }
            if repeated {
                let still: Vec<_> = n.firing().map(TimelineAlert::from_alert).collect();
                self.entries.push(entry(Change::Repeated, still, None));
            }
        }
    }

    /// The alerts of a notification that newly fire and that resolve.
    fn split(&mut self, n: &Notification) -> (Vec<TimelineAlert>, Vec<TimelineAlert>) {
        let (mut fired, mut resolved) = (Vec::new(), Vec::new());
        for alert in &n.alerts {
            let fingerprint = alert.fingerprint();
            match alert.status {
                AlertStatus::Firing => {
                    if self.firing.insert(fingerprint) {
                        fired.push(TimelineAlert::from_alert(alert));
                    }
                }
                AlertStatus::Resolved => {
                    self.firing.remove(&fingerprint);
                    resolved.push(TimelineAlert::from_alert(alert));
                }
            }
        }
        (fired, resolved)
    }

    /// The entries, in order.
    pub fn into_entries(self) -> Vec<TimelineEntry> {
        self.entries
    }
}

/// An event time as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

impl TimelineAlert {
    /// One indented line: feature (padded to `width`), check, test and the
    /// numbers.
    fn write_line(&self, f: &mut fmt::Formatter<'_>, width: usize) -> fmt::Result {
        let p = self
            .p_value
            .map_or_else(|| "-".to_string(), |p| format!("{p:.3e}"));
        writeln!(
            f,
            "    {:<width$}  {:<16} {:<12} statistic {:.4}  p {p}  threshold {:.4}  n {}  m {}",
            self.feature,
            self.check.as_str(),
            self.test,
            self.statistic,
            self.threshold,
            self.n,
            self.m
        )
    }
}

impl fmt::Display for TimelineEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.change {
            Change::Fired => "FIRED",
            Change::Resolved => "RESOLVED",
            Change::Repeated => "STILL FIRING",
        };
        writeln!(
            f,
            "event {} (line {}, {}): {} {what} (notification #{})",
            self.event_index,
            self.line,
            rfc3339(self.timestamp_ms),
            self.model,
            self.notification
        )?;
        let width = self
            .alerts
            .iter()
            .map(|a| a.feature.len())
            .max()
            .unwrap_or(0);
        for alert in &self.alerts {
            alert.write_line(f, width)?;
        }
        if let Some(key) = &self.retrain {
            writeln!(f, "    retraining trigger {key}")?;
        }
        Ok(())
    }
}
