//! Latency distributions kept at full resolution (HdrHistogram, three
//! significant digits) for `GET /api/v1/stats`: per-message processing
//! time, event-time lag, detection delay (seconds and events) and delivery
//! latency per channel. The same observations feed the OpenTelemetry
//! histograms (see [`super::Metrics`]); those have fixed buckets for
//! Prometheus and OTLP, these give exact-enough quantiles.
//!
//! Writers never touch these per event: the ingestion loop records into
//! its own [`Histogram`]s and merges them here when it flushes.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest value of each distribution, in its unit: values above are
/// clamped (and still counted) rather than dropped.
const MAX_MICROS: u64 = 3_600_000_000; // an hour of processing or delivery
const MAX_MILLIS: u64 = 90 * 86_400_000; // 90 days of lag or delay
const MAX_EVENTS: u64 = 1_000_000_000_000;

/// A histogram with constant bounds; the bounds are valid constants, so
/// construction cannot fail.
pub fn histogram(max: u64) -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, max, 3).expect("constant histogram bounds are valid")
}

/// Microsecond histogram for processing time.
pub fn micros_histogram() -> Histogram<u64> {
    histogram(MAX_MICROS)
}

/// Millisecond histogram for event-time lag.
pub fn millis_histogram() -> Histogram<u64> {
    histogram(MAX_MILLIS)
}

/// Records `value` clamped into the histogram's range.
pub fn record_clamped(h: &mut Histogram<u64>, value: u64) {
    let v = value.clamp(h.low(), h.high());
    // In range by construction, so recording cannot fail.
    let _ = h.record(v);
}

/// The distributions behind `/api/v1/stats`.
#[derive(Debug)]
pub struct Latencies {
    processing_us: Mutex<Histogram<u64>>,
    event_lag_ms: Mutex<Histogram<u64>>,
    detection_ms: Mutex<Histogram<u64>>,
    detection_events: Mutex<Histogram<u64>>,
    delivery_us: Mutex<BTreeMap<String, Histogram<u64>>>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            processing_us: Mutex::new(micros_histogram()),
            event_lag_ms: Mutex::new(millis_histogram()),
            detection_ms: Mutex::new(millis_histogram()),
            detection_events: Mutex::new(histogram(MAX_EVENTS)),
            delivery_us: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Quantiles of one distribution, in its unit (seconds or events).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    /// Observations.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest observation.
    pub max: f64,
}

impl Quantiles {
    /// Quantiles of `h`, each value multiplied by `scale` (e.g. 1e-6 from
    /// microseconds to seconds). `None` for an empty histogram.
    pub fn of(h: &Histogram<u64>, scale: f64) -> Option<Quantiles> {
        if h.is_empty() {
            return None;
        }
        let at = |q: f64| h.value_at_quantile(q) as f64 * scale;
        Some(Quantiles {
            count: h.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: h.max() as f64 * scale,
        })
    }
}

/// What `GET /api/v1/stats` returns: `null` for a distribution without
/// observations yet.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyStats {
    /// Time to decode and apply one Kafka message (seconds).
    pub processing_seconds: Option<Quantiles>,
    /// Wall-clock time of consumption minus event time (seconds).
    pub event_lag_seconds: Option<Quantiles>,
    /// Event time from the first event of a known drift episode to the
    /// alert decision (seconds).
    pub detection_delay_seconds: Option<Quantiles>,
    /// Events of the drifting model from the episode's first event to the
    /// alert decision.
    pub detection_delay_events: Option<Quantiles>,
    /// Time from queueing a notification to its delivery, per channel
    /// (seconds).
    pub delivery_seconds: BTreeMap<String, Quantiles>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update is one histogram add; a panic elsewhere cannot leave it
    // half-written in a way that matters for statistics.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Latencies {
    /// Merges a batch of processing times (µs) and event lags (ms).
    pub fn merge_ingest(&self, processing_us: &Histogram<u64>, event_lag_ms: &Histogram<u64>) {
        let _ = lock(&self.processing_us).add(processing_us);
        let _ = lock(&self.event_lag_ms).add(event_lag_ms);
    }

    /// Records one detection delay.
    pub fn record_detection(&self, delay_ms: u64, events: u64) {
        record_clamped(&mut lock(&self.detection_ms), delay_ms);
        record_clamped(&mut lock(&self.detection_events), events);
    }

    /// Records one delivery's latency on `channel`.
    pub fn record_delivery(&self, channel: &str, micros: u64) {
        let mut map = lock(&self.delivery_us);
        let h = match map.get_mut(channel) {
            Some(h) => h,
            None => map
                .entry(channel.to_owned())
                .or_insert_with(micros_histogram),
        };
        record_clamped(h, micros);
    }

    /// The current quantiles.
    pub fn snapshot(&self) -> LatencyStats {
        LatencyStats {
            processing_seconds: Quantiles::of(&lock(&self.processing_us), 1e-6),
            event_lag_seconds: Quantiles::of(&lock(&self.event_lag_ms), 1e-3),
            detection_delay_seconds: Quantiles::of(&lock(&self.detection_ms), 1e-3),
            detection_delay_events: Quantiles::of(&lock(&self.detection_events), 1.0),
            delivery_seconds: lock(&self.delivery_us)
                .iter()
                .filter_map(|(c, h)| Some((c.clone(), Quantiles::of(h, 1e-6)?)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = micros_histogram();
        for v in 1..=1000 {
            record_clamped(&mut h, v * 1000);
        }
        let q = Quantiles::of(&h, 1e-6).unwrap();
        assert_eq!(q.count, 1000);
        assert!((q.p50 - 0.5).abs() < 0.001, "{q:?}");
        assert!((q.p99 - 0.99).abs() < 0.001, "{q:?}");
        assert!((q.max - 1.0).abs() < 0.001, "{q:?}");
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let l = Latencies::default();
        l.record_delivery("webhook", 0);
        l.record_delivery("webhook", u64::MAX);
        let s = l.snapshot();
        assert_eq!(s.delivery_seconds["webhook"].count, 2);
        assert!(s.processing_seconds.is_none());
    }
}
