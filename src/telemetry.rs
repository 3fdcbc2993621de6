//! Telemetry: logging set-up, the service's metrics, and their Prometheus
//! text exposition.
//!
//! Every metric name lives here. Labels are bounded: model and feature
//! names come from the configuration and baselines, reasons and outcomes
//! from fixed sets — never ids or offsets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Label values of one series, in the family's label order.
type LabelValues = Vec<String>;

/// A family of counters or gauges sharing a name and label names.
#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
    series: BTreeMap<LabelValues, f64>,
}

/// The service's metrics. Cheap enough to update per message; the
/// ingestion loop batches per-event counts before touching it.
#[derive(Debug)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
    processing: Mutex<Histogram<u64>>,
}

/// Metric names, in one place.
pub mod names {
    /// Events decoded and applied, per model.
    pub const EVENTS_CONSUMED: &str = "driftwarden_events_consumed_total";
    /// Events set aside, per reason.
    pub const EVENTS_REJECTED: &str = "driftwarden_events_rejected_total";
    /// Checks run, per model.
    pub const CHECKS: &str = "driftwarden_checks_total";
    /// Features currently drifted (latest verdict), per model.
    pub const DRIFTED_FEATURES: &str = "driftwarden_drifted_features";
    /// Alerts currently firing, per model.
    pub const ALERTS_FIRING: &str = "driftwarden_alerts_firing";
    /// Notifications decided, per model and status.
    pub const NOTIFICATIONS: &str = "driftwarden_notifications_total";
    /// Notifications per channel and final delivery outcome.
    pub const DELIVERIES: &str = "driftwarden_deliveries_total";
    /// Delivery attempts per channel, retries included.
    pub const DELIVERY_ATTEMPTS: &str = "driftwarden_delivery_attempts_total";
    /// Notifications waiting in a channel's queue.
    pub const DELIVERY_QUEUE: &str = "driftwarden_delivery_queue_depth";
    /// Retraining triggers published, per model and outcome.
    pub const RETRAINS: &str = "driftwarden_retrain_triggers_total";
    /// Consumer lag in messages, per topic and partition.
    pub const CONSUMER_LAG: &str = "driftwarden_consumer_lag_messages";
    /// Dead-lettered messages, per outcome.
    pub const DEAD_LETTERS: &str = "driftwarden_dead_letters_total";
    /// Per-message processing time.
    pub const PROCESSING: &str = "driftwarden_processing_seconds";
    /// Label join outcomes, per model and outcome (`matched`, `late`,
    /// `never_matched`, `evicted`, `duplicate_label`, `unknown_id`).
    pub const LABEL_JOINS: &str = "driftwarden_label_joins_total";
    /// Label delay (label time − prediction time, event time) quantiles,
    /// per model.
    pub const LABEL_DELAY: &str = "driftwarden_label_delay_seconds";
    /// Window value of a performance metric, per model and metric.
    pub const PERFORMANCE: &str = "driftwarden_performance_metric";
    /// Baseline files reloaded (or refused) while running.
    pub const BASELINE_RELOADS: &str = "driftwarden_baseline_reloads_total";
}

const FAMILIES: &[(&str, &str, &str, &[&str])] = &[
    (
        names::EVENTS_CONSUMED,
        "counter",
        "Events decoded and applied.",
        &["model"],
    ),
    (
        names::EVENTS_REJECTED,
        "counter",
        "Events set aside, by reason.",
        &["reason"],
    ),
    (names::CHECKS, "counter", "Checks run.", &["model"]),
    (
        names::DRIFTED_FEATURES,
        "gauge",
        "Checks whose latest verdict is drifted.",
        &["model"],
    ),
    (
        names::ALERTS_FIRING,
        "gauge",
        "Alerts currently firing.",
        &["model"],
    ),
    (
        names::NOTIFICATIONS,
        "counter",
        "Notifications decided.",
        &["model", "status"],
    ),
    (
        names::RETRAINS,
        "counter",
        "Retraining triggers.",
        &["model", "outcome"],
    ),
    (
        names::CONSUMER_LAG,
        "gauge",
        "Messages behind the partition's end.",
        &["topic", "partition"],
    ),
    (
        names::LABEL_JOINS,
        "counter",
        "Label join outcomes.",
        &["model", "outcome"],
    ),
    (
        names::LABEL_DELAY,
        "summary",
        "Event time from a prediction to its label.",
        &["model", "quantile"],
    ),
    (
        names::PERFORMANCE,
        "gauge",
        "Performance metric over the window of labelled predictions.",
        &["model", "metric"],
    ),
    (
        names::BASELINE_RELOADS,
        "counter",
        "Baseline files that changed while running, by outcome.",
        &["model", "outcome"],
    ),
    (
        names::DEAD_LETTERS,
        "counter",
        "Messages copied to the dead-letter topic.",
        &["outcome"],
    ),
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All families registered, no series yet.
    pub fn new() -> Metrics {
        let families = FAMILIES
            .iter()
            .map(|&(name, kind, help, labels)| {
                (
                    name,
                    Family {
                        help,
                        kind,
                        labels,
                        series: BTreeMap::new(),
                    },
                )
            })
            .collect();
        // 1 µs .. 60 s at 3 significant digits. The bounds are constants, so
        // this cannot fail whatever the input.
        #[allow(clippy::expect_used)]
        let processing = Histogram::new_with_bounds(1, 60_000_000, 3)
            .expect("constant histogram bounds are valid");
        Metrics {
            families: Mutex::new(families),
            processing: Mutex::new(processing),
        }
    }

    /// Adds to a counter.
    pub fn add(&self, name: &'static str, labels: &[&str], value: u64) {
        self.update(name, labels, |v| *v += value as f64);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[&str], value: f64) {
        self.update(name, labels, |v| *v = value);
    }

    /// Reads a series (tests and the demo summary).
    pub fn get(&self, name: &'static str, labels: &[&str]) -> f64 {
        let key: LabelValues = labels.iter().map(|s| s.to_string()).collect();
        self.lock()
            .get(name)
            .and_then(|f| f.series.get(&key).copied())
            .unwrap_or(0.0)
    }

    /// Sum over all series of a family.
    pub fn total(&self, name: &'static str) -> f64 {
        self.lock()
            .get(name)
            .map(|f| f.series.values().sum())
            .unwrap_or(0.0)
    }

    /// Records one message's processing time.
    pub fn observe_processing(&self, elapsed: Duration) {
        let micros = (elapsed.as_micros() as u64).clamp(1, 60_000_000);
        if let Ok(mut h) = self.processing.lock() {
            let _ = h.record(micros);
        }
    }

    fn update(&self, name: &'static str, labels: &[&str], f: impl FnOnce(&mut f64)) {
        let mut families = self.lock();
        if let Some(family) = families.get_mut(name) {
            let key = labels.iter().map(|s| s.to_string()).collect();
            f(family.series.entry(key).or_insert(0.0));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Family>> {
        // A panic while holding the lock cannot leave a family half-updated
        // in a harmful way (each update is one assignment), so recover.
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, family) in self.lock().iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for (values, v) in &family.series {
                let _ = writeln!(out, "{name}{} {v}", label_text(family.labels, values));
            }
        }
        self.render_processing(&mut out);
        out
    }

    fn render_processing(&self, out: &mut String) {
        let Ok(h) = self.processing.lock() else {
            return;
        };
        let name = names::PROCESSING;
        let _ = writeln!(out, "# HELP {name} Time to decode and apply one message.");
        let _ = writeln!(out, "# TYPE {name} summary");
        for q in [0.5, 0.9, 0.99, 0.999] {
            let _ = writeln!(
                out,
                "{name}{{quantile=\"{q}\"}} {}",
                h.value_at_quantile(q) as f64 / 1e6
            );
        }
        let sum: f64 = h
            .iter_recorded()
            .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
            .sum();
        let _ = writeln!(out, "{name}_sum {}", sum / 1e6);
        let _ = writeln!(out, "{name}_count {}", h.len());
    }
}

fn label_text(names: &[&str], values: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            format!(
                "{n}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// Installs the tracing subscriber: `text` or `json`, filtered by `level`
/// unless `RUST_LOG` says otherwise.
pub fn init_logging(format: &str, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.add(names::EVENTS_REJECTED, &["invalid_json"], 3);
        m.add(names::EVENTS_REJECTED, &["invalid_json"], 2);
        m.set(names::ALERTS_FIRING, &["churn\"x"], 1.0);
        m.observe_processing(Duration::from_micros(20));
        let text = m.render();
        assert!(
            text.contains("driftwarden_events_rejected_total{reason=\"invalid_json\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("driftwarden_alerts_firing{model=\"churn\\\"x\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE driftwarden_processing_seconds summary"));
        assert_eq!(m.get(names::EVENTS_REJECTED, &["invalid_json"]), 5.0);
    }
}
