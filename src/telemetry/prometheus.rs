//! The Prometheus text exposition (format 0.0.4) of the OpenTelemetry SDK's
//! metrics, rendered from a [`ManualReader`]'s `collect()` output.
//!
//! The `opentelemetry-prometheus` exporter is discontinued upstream (it
//! depends on the unmaintained `protobuf` crate), so the service renders
//! the SDK's own aggregation here. Names follow the OpenTelemetry →
//! Prometheus compatibility rules, so that `/metrics` and an OTLP export
//! translated by the Collector or by Prometheus' OTLP receiver give the same
//! series:
//!
//! - `.` and other characters outside `[a-zA-Z0-9_:]` become `_`;
//! - the unit is appended as a word (`s` → `_seconds`, `By` → `_bytes`,
//!   `1` → `_ratio` on gauges); annotations such as `{event}` add nothing;
//! - monotonic sums are counters and get `_total`; other sums are gauges;
//! - histograms give `_bucket{le=…}` (cumulative), `_sum` and `_count`;
//! - resource attributes are published once as `target_info`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Histogram, Metric, MetricData, ResourceMetrics,
};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// A [`ManualReader`] that the meter provider owns and the HTTP handler
/// collects from: the provider takes its readers by value, so both hold
/// the same reader through an `Arc`.
#[derive(Debug, Clone)]
pub struct SharedReader(pub Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Collects from `reader` and renders the exposition.
pub fn render(reader: &SharedReader) -> String {
    let mut rm = ResourceMetrics::default();
    if let Err(error) = reader.collect(&mut rm) {
        tracing::warn!(%error, "metrics collection failed");
        return String::new();
    }
    render_resource_metrics(&rm)
}

/// Renders collected metrics.
pub fn render_resource_metrics(rm: &ResourceMetrics) -> String {
    let mut out = String::new();
    let resource: Vec<KeyValue> = rm
        .resource()
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    if !resource.is_empty() {
        out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\n");
        out.push_str("target_info");
        labels(&mut out, resource.iter(), None);
        out.push_str(" 1\n");
    }
    for scope in rm.scope_metrics() {
        for metric in scope.metrics() {
            render_metric(&mut out, metric);
        }
    }
    out
}

/// The Prometheus family name of an instrument (without `_total`).
pub fn family_name(name: &str, unit: &str, gauge: bool) -> String {
    let mut family = sanitize(name);
    let suffix = match unit {
        "" => None,
        u if u.starts_with('{') => None,
        "1" if gauge => Some("ratio".to_owned()),
        "1" => None,
        u => Some(unit_word(u)),
    };
    if let Some(suffix) = suffix
        && !family.ends_with(&format!("_{suffix}"))
    {
        family.push('_');
        family.push_str(&suffix);
    }
    family
}

fn unit_word(unit: &str) -> String {
    match unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "By" => "bytes",
        "%" => "percent",
        other => return sanitize(other),
    }
    .to_owned()
}

fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn render_metric(out: &mut String, metric: &Metric) {
    match metric.data() {
        AggregatedMetrics::F64(data) => render_data(out, metric, data),
        AggregatedMetrics::U64(data) => render_data(out, metric, data),
        AggregatedMetrics::I64(data) => render_data(out, metric, data),
    }
}

/// A number that prints in Prometheus' float syntax.
trait Sample: Copy {
    fn to_f64(self) -> f64;
}
impl Sample for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}
impl Sample for u64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl Sample for i64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
}

fn render_data<T: Sample>(out: &mut String, metric: &Metric, data: &MetricData<T>) {
    let (name, unit, help) = (metric.name(), metric.unit(), metric.description());
    match data {
        MetricData::Gauge(g) => {
            let family = family_name(name, unit, true);
            header(out, &family, help, "gauge");
            for p in g.data_points() {
                sample(out, &family, p.attributes(), p.value().to_f64());
            }
        }
        MetricData::Sum(s) => {
            let counter = s.is_monotonic();
            let mut family = family_name(name, unit, !counter);
            if counter {
                family.push_str("_total");
            }
            header(
                out,
                &family,
                help,
                if counter { "counter" } else { "gauge" },
            );
            for p in s.data_points() {
                sample(out, &family, p.attributes(), p.value().to_f64());
            }
        }
        MetricData::Histogram(h) => render_histogram(out, &family_name(name, unit, false), help, h),
        // No instrument of the service aggregates exponentially.
        MetricData::ExponentialHistogram(_) => {}
    }
}

fn render_histogram<T: Sample>(out: &mut String, family: &str, help: &str, h: &Histogram<T>) {
    header(out, family, help, "histogram");
    let bucket = format!("{family}_bucket");
    for p in h.data_points() {
        let mut cumulative = 0u64;
        let bounds = p.bounds().map(Some).chain(std::iter::once(None));
        for (bound, count) in bounds.zip(p.bucket_counts()) {
            cumulative += count;
            let le = match bound {
                Some(b) => number(b),
                None => "+Inf".to_owned(),
            };
            out.push_str(&bucket);
            labels(out, p.attributes(), Some(&le));
            let _ = writeln!(out, " {cumulative}");
        }
        sample(
            out,
            &format!("{family}_sum"),
            p.attributes(),
            p.sum().to_f64(),
        );
        sample(
            out,
            &format!("{family}_count"),
            p.attributes(),
            p.count() as f64,
        );
    }
}

fn header(out: &mut String, family: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
}

fn sample<'a>(
    out: &mut String,
    name: &str,
    attributes: impl Iterator<Item = &'a KeyValue>,
    value: f64,
) {
    out.push_str(name);
    labels(out, attributes, None);
    let _ = writeln!(out, " {}", number(value));
}

/// `{a="x",b="y"}` in attribute-name order, with `le` last when given.
fn labels<'a>(out: &mut String, attributes: impl Iterator<Item = &'a KeyValue>, le: Option<&str>) {
    let mut pairs: Vec<(String, String)> = attributes
        .map(|kv| (sanitize(kv.key.as_str()), value_text(&kv.value)))
        .collect();
    pairs.sort();
    if let Some(le) = le {
        pairs.push(("le".to_owned(), le.to_owned()));
    }
    if pairs.is_empty() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out.push('}');
}

fn value_text(value: &Value) -> String {
    value.as_str().into_owned()
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_compatibility_rules() {
        assert_eq!(
            family_name("driftwarden.event.lag", "s", false),
            "driftwarden_event_lag_seconds"
        );
        assert_eq!(
            family_name("driftwarden.events.consumed", "{event}", false),
            "driftwarden_events_consumed"
        );
        assert_eq!(
            family_name("driftwarden.label.delay_seconds", "s", true),
            "driftwarden_label_delay_seconds"
        );
        assert_eq!(family_name("x.share", "1", true), "x_share_ratio");
    }
}
