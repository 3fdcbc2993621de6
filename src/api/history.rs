//! Recent history for the dashboard, kept by the shell rather than the
//! monitor: a background task samples [`Monitor::status`] on a wall-clock
//! timer and keeps, per (model, check kind, feature), the last few hundred
//! points of (time, events, statistic, threshold, state), plus each model's
//! event rate, the state changes it saw and the last notifications.
//!
//! The monitor stays pure (no clock); sampling costs one status read per
//! tick however fast events arrive. The cost is resolution: a state that
//! lasts less than one tick between two samples is not seen, and the
//! notifications list is where such short alerts still show up.
//!
//! [`Monitor::status`]: crate::monitor::Monitor::status

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::alert::{AlertStatus, CheckKind, Notification};
use crate::monitor::ModelStatus;
use crate::service::{ServiceEvent, Shared};

/// Sampling period the service uses.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(1);
/// Points kept per series by the service (ten minutes at one per second).
pub const DEFAULT_KEEP: usize = 600;
/// Notifications and state changes kept for the "recent" list.
const RECENT: usize = 100;

/// Shared, bounded history; cheap to clone. The sampling tasks stop when
/// the last clone is dropped (with the router that owns it).
#[derive(Clone)]
pub struct History {
    inner: Arc<Mutex<Samples>>,
}

/// Everything the history holds.
struct Samples {
    /// Sampling period, reported so the page can label its axes.
    every: Duration,
    /// Points kept per series.
    keep: usize,
    models: BTreeMap<String, ModelHistory>,
    /// Observed state changes, newest last.
    changes: VecDeque<Change>,
    /// Notifications decided by the monitor, newest last.
    notifications: VecDeque<NotificationEntry>,
    /// Cancelled when the history is dropped, to end its tasks.
    stop: CancellationToken,
}

impl Drop for Samples {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One model's series.
#[derive(Default)]
struct ModelHistory {
    /// Previous (instant, events) sample, for the rate.
    previous: Option<(Instant, u64)>,
    rate: VecDeque<RatePoint>,
    series: BTreeMap<(CheckKind, String), Series>,
}

/// Event rate at one sample.
#[derive(Debug, Clone, Copy, Serialize)]
struct RatePoint {
    t_ms: i64,
    events: u64,
    per_second: f64,
}

/// One check's points.
struct Series {
    test: &'static str,
    /// Wall time the current state was first sampled.
    state_since_ms: i64,
    points: VecDeque<Point>,
}

/// One sample of one check.
#[derive(Debug, Clone, Copy)]
struct Point {
    t_ms: i64,
    events: u64,
    statistic: Option<f64>,
    threshold: Option<f64>,
    state: &'static str,
}

/// What the history keeps of one model's status.
struct ModelSample {
    model: String,
    events: u64,
    checks: Vec<CheckSample>,
}

/// What the history keeps of one check's status.
struct CheckSample {
    kind: CheckKind,
    name: String,
    test: &'static str,
    statistic: Option<f64>,
    threshold: Option<f64>,
    state: &'static str,
}

impl From<ModelStatus> for ModelSample {
    fn from(status: ModelStatus) -> ModelSample {
        ModelSample {
            model: status.model,
            events: status.events,
            checks: status
                .checks
                .into_iter()
                .map(|c| CheckSample {
                    kind: c.check,
                    name: c.name,
                    test: c.test,
                    statistic: c.statistic,
                    threshold: c.threshold,
                    state: c.state,
                })
                .collect(),
        }
    }
}

/// A state change seen between two samples.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Wall time of the sample that saw it (ms since the epoch).
    pub t_ms: i64,
    /// Model.
    pub model: String,
    /// Check kind.
    pub check: CheckKind,
    /// Feature (or `prediction`).
    pub feature: String,
    /// State before.
    pub from: &'static str,
    /// State after.
    pub to: &'static str,
}

/// A notification, reduced to what the page lists.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationEntry {
    /// Wall time it was decided (ms since the epoch).
    pub received_ms: i64,
    /// Event time of the decision.
    pub decided_at_ms: i64,
    /// Model.
    pub model: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Per-model sequence number.
    pub sequence: u64,
    /// The alerts it carried.
    pub alerts: Vec<NotifiedAlert>,
}

/// One alert of a notification.
#[derive(Debug, Clone, Serialize)]
pub struct NotifiedAlert {
    /// Check kind.
    pub check: CheckKind,
    /// Feature.
    pub feature: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// Test name.
    pub test: String,
    /// Statistic at the notification.
    pub statistic: f64,
    /// Its p-value, when the test has one.
    pub p_value: Option<f64>,
    /// Threshold.
    pub threshold: f64,
}

/// One check's series in columns, as the page reads it.
#[derive(Debug, Serialize)]
pub struct SeriesView {
    /// Feature (or `prediction`).
    pub name: String,
    /// Check kind.
    pub check: CheckKind,
    /// `ks`, `chi2` or `missing_rate`.
    pub test: &'static str,
    /// Wall time the current state was first sampled.
    pub state_since_ms: i64,
    /// Sample times (ms since the epoch).
    pub t: Vec<i64>,
    /// Events applied at each sample.
    pub events: Vec<u64>,
    /// Statistic at each sample (null before the first verdict).
    pub statistic: Vec<Option<f64>>,
    /// Threshold at each sample.
    pub threshold: Vec<Option<f64>>,
    /// State at each sample.
    pub state: Vec<&'static str>,
}

/// A model's history from a given time on.
#[derive(Debug, Serialize)]
pub struct ModelHistoryView {
    /// Model.
    pub model: String,
    /// Sampling period (ms).
    pub every_ms: u64,
    /// Points kept per series.
    pub keep: usize,
    /// Event-rate samples.
    pub rate: Vec<RatePointView>,
    /// Per-check series.
    pub checks: Vec<SeriesView>,
}

/// One event-rate sample.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RatePointView {
    /// Sample time (ms since the epoch).
    pub t_ms: i64,
    /// Events applied.
    pub events: u64,
    /// Events per second since the previous sample.
    pub per_second: f64,
}

/// Starts sampling `shared.monitor` every `every`, keeping the last `keep`
/// points per series. Needs a Tokio runtime. The task ends when the
/// returned history (and all its clones) is dropped.
pub fn spawn_history(shared: Shared, every: Duration, keep: usize) -> History {
    let stop = CancellationToken::new();
    let history = History::new(every, keep, stop.clone());
    let weak = Arc::downgrade(&history.inner);
    tokio::spawn(sample_until_dropped(shared, every, weak, stop));
    history
}

async fn sample_until_dropped(
    shared: Shared,
    every: Duration,
    history: Weak<Mutex<Samples>>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // The monitor lock is released before the history lock is taken,
        // so a slow page never holds up ingestion.
        let statuses = match shared.monitor.lock() {
            Ok(monitor) => monitor.status(),
            Err(_) => continue,
        };
        let Some(history) = history.upgrade() else {
            return;
        };
        let models = statuses.into_iter().map(ModelSample::from).collect();
        if let Ok(mut samples) = history.lock() {
            samples.record(wall_ms(), Instant::now(), models);
        }
    }
}

/// Milliseconds since the epoch by the wall clock.
fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl History {
    fn new(every: Duration, keep: usize, stop: CancellationToken) -> History {
        History {
            inner: Arc::new(Mutex::new(Samples {
                every,
                keep: keep.max(1),
                models: BTreeMap::new(),
                changes: VecDeque::new(),
                notifications: VecDeque::new(),
                stop,
            })),
        }
    }

    /// Keeps the last notifications the service decides, read from its
    /// broadcast of [`ServiceEvent`]s, until the history is dropped or the
    /// broadcast closes.
    pub fn follow_notifications(&self, mut events: broadcast::Receiver<ServiceEvent>) {
        let weak = Arc::downgrade(&self.inner);
        let stop = match self.inner.lock() {
            Ok(samples) => samples.stop.clone(),
            Err(_) => return,
        };
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => return,
                    event = events.recv() => event,
                };
                match event {
                    Ok(ServiceEvent::Notified(n)) => match weak.upgrade() {
                        Some(history) => History { inner: history }.note_notification(&n),
                        None => return,
                    },
                    // Missing a few under a burst only shortens the list.
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// Adds a notification to the recent list.
    pub fn note_notification(&self, notification: &Notification) {
        let entry = NotificationEntry::from_notification(notification, wall_ms());
        if let Ok(mut samples) = self.inner.lock() {
            push_bounded(&mut samples.notifications, entry, RECENT);
        }
    }

    /// A model's series with points newer than `since_ms` (all when
    /// `None`); `None` if the model was never sampled.
    pub fn model(&self, model: &str, since_ms: Option<i64>) -> Option<ModelHistoryView> {
        let samples = self.inner.lock().ok()?;
        let history = samples.models.get(model)?;
        let newer = |t: i64| since_ms.is_none_or(|s| t > s);
        Some(ModelHistoryView {
            model: model.to_string(),
            every_ms: samples.every.as_millis() as u64,
            keep: samples.keep,
            rate: history
                .rate
                .iter()
                .filter(|p| newer(p.t_ms))
                .map(|p| RatePointView {
                    t_ms: p.t_ms,
                    events: p.events,
                    per_second: p.per_second,
                })
                .collect(),
            checks: history
                .series
                .iter()
                .map(|((kind, name), s)| s.view(*kind, name, &newer))
                .collect(),
        })
    }

    /// Latest events-per-second of every model.
    pub fn rates(&self) -> BTreeMap<String, f64> {
        let Ok(samples) = self.inner.lock() else {
            return BTreeMap::new();
        };
        samples
            .models
            .iter()
            .filter_map(|(name, h)| h.rate.back().map(|p| (name.clone(), p.per_second)))
            .collect()
    }

    /// Wall time since which each check of `model` has been in its
    /// current state, keyed by (kind, feature).
    pub fn state_since(&self, model: &str) -> BTreeMap<(CheckKind, String), i64> {
        let Ok(samples) = self.inner.lock() else {
            return BTreeMap::new();
        };
        samples
            .models
            .get(model)
            .map(|h| {
                h.series
                    .iter()
                    .map(|(key, s)| (key.clone(), s.state_since_ms))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Recent state changes and notifications, newest first.
    pub fn recent(&self) -> (Vec<Change>, Vec<NotificationEntry>) {
        let Ok(samples) = self.inner.lock() else {
            return (Vec::new(), Vec::new());
        };
        (
            samples.changes.iter().rev().cloned().collect(),
            samples.notifications.iter().rev().cloned().collect(),
        )
    }
}

impl Samples {
    fn record(&mut self, t_ms: i64, at: Instant, models: Vec<ModelSample>) {
        let keep = self.keep;
        for status in models {
            let history = self.models.entry(status.model.clone()).or_default();
            history.note_rate(t_ms, at, status.events, keep);
            for check in &status.checks {
                let point = Point {
                    t_ms,
                    events: status.events,
                    statistic: check.statistic,
                    threshold: check.threshold,
                    state: check.state,
                };
                let key = (check.kind, check.name.clone());
                let series = history.series.entry(key).or_insert_with(|| Series {
                    test: check.test,
                    state_since_ms: t_ms,
                    points: VecDeque::new(),
                });
                if let Some(from) = series.push(point, keep) {
                    let change = Change {
                        t_ms,
                        model: status.model.clone(),
                        check: check.kind,
                        feature: check.name.clone(),
                        from,
                        to: check.state,
                    };
                    push_bounded(&mut self.changes, change, RECENT);
                }
            }
        }
    }
}

impl ModelHistory {
    fn note_rate(&mut self, t_ms: i64, at: Instant, events: u64, keep: usize) {
        let per_second = match self.previous {
            Some((before, count)) => {
                let seconds = at.duration_since(before).as_secs_f64();
                if seconds > 0.0 {
                    events.saturating_sub(count) as f64 / seconds
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.previous = Some((at, events));
        let point = RatePoint {
            t_ms,
            events,
            per_second,
        };
        push_bounded(&mut self.rate, point, keep);
    }
}

impl Series {
    /// Appends a point; returns the previous state if it changed.
    fn push(&mut self, point: Point, keep: usize) -> Option<&'static str> {
        let previous = self.points.back().map(|p| p.state);
        push_bounded(&mut self.points, point, keep);
        match previous {
            Some(from) if from != point.state => {
                self.state_since_ms = point.t_ms;
                Some(from)
            }
            _ => None,
        }
    }

    fn view(&self, check: CheckKind, name: &str, newer: &dyn Fn(i64) -> bool) -> SeriesView {
        let points: Vec<&Point> = self.points.iter().filter(|p| newer(p.t_ms)).collect();
        SeriesView {
            name: name.to_string(),
            check,
            test: self.test,
            state_since_ms: self.state_since_ms,
            t: points.iter().map(|p| p.t_ms).collect(),
            events: points.iter().map(|p| p.events).collect(),
            statistic: points.iter().map(|p| p.statistic).collect(),
            threshold: points.iter().map(|p| p.threshold).collect(),
            state: points.iter().map(|p| p.state).collect(),
        }
    }
}

impl NotificationEntry {
    fn from_notification(n: &Notification, received_ms: i64) -> NotificationEntry {
        NotificationEntry {
            received_ms,
            decided_at_ms: n.decided_at_ms,
            model: n.model.clone(),
            status: n.status,
            sequence: n.sequence,
            alerts: n
                .alerts
                .iter()
                .map(|a| NotifiedAlert {
                    check: a.check,
                    feature: a.feature.clone(),
                    status: a.status,
                    test: a.evidence.test.clone(),
                    statistic: a.evidence.statistic,
                    p_value: a.evidence.p_value,
                    threshold: a.evidence.threshold,
                })
                .collect(),
        }
    }
}

/// Pushes onto a ring of at most `keep` items, dropping the oldest.
fn push_bounded<T>(ring: &mut VecDeque<T>, item: T, keep: usize) {
    while ring.len() >= keep {
        ring.pop_front();
    }
    ring.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detached(keep: usize) -> History {
        History::new(Duration::from_secs(1), keep, CancellationToken::new())
    }

    fn record(history: &History, i: u64, statistic: f64, state: &'static str) {
        // One base instant per test run, so the rate divides by exactly 1 s.
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let at = *BASE.get_or_init(Instant::now) + Duration::from_secs(i);
        let sample = ModelSample {
            model: "churn".into(),
            events: 100 * i,
            checks: vec![CheckSample {
                kind: CheckKind::FeatureDrift,
                name: "age".into(),
                test: "ks",
                statistic: Some(statistic),
                threshold: Some(0.1),
                state,
            }],
        };
        let mut samples = history.inner.lock().unwrap();
        samples.record(1_000 * i as i64, at, vec![sample]);
    }

    #[test]
    fn keeps_the_last_points_and_notes_state_changes() {
        let history = detached(3);
        let states = ["ok", "ok", "pending", "firing", "firing"];
        for (i, state) in states.into_iter().enumerate() {
            record(&history, i as u64, 0.05, state);
        }

        let view = history.model("churn", None).unwrap();
        assert_eq!(view.checks.len(), 1);
        assert_eq!(view.checks[0].t, vec![2_000, 3_000, 4_000]);
        assert_eq!(view.checks[0].state, vec!["pending", "firing", "firing"]);
        assert_eq!(view.checks[0].state_since_ms, 3_000);
        assert_eq!(view.rate.len(), 3);
        assert!((view.rate[2].per_second - 100.0).abs() < 1e-9);

        let (changes, _) = history.recent();
        let moves: Vec<(&str, &str)> = changes.iter().map(|c| (c.from, c.to)).collect();
        assert_eq!(moves, vec![("pending", "firing"), ("ok", "pending")]);
    }

    #[test]
    fn since_returns_only_newer_points() {
        let history = detached(10);
        for i in 0..4 {
            record(&history, i, 0.2, "ok");
        }
        let view = history.model("churn", Some(1_000)).unwrap();
        assert_eq!(view.checks[0].t, vec![2_000, 3_000]);
        assert!(history.model("other", None).is_none());
    }

    #[test]
    fn dropping_the_history_stops_its_tasks() {
        let history = detached(10);
        let stop = history.inner.lock().unwrap().stop.clone();
        assert!(!stop.is_cancelled());
        drop(history);
        assert!(stop.is_cancelled());
    }
}
