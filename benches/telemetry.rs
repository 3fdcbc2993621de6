//! Cost per event of the ingestion loop's metric path.
//!
//! - `batch`: what the loop does — count the event per model and record
//!   its lag into the loop's own HdrHistogram, then hand the batch to the
//!   OpenTelemetry instruments once per 37,500 events (250 ms at 150k
//!   events/s), the hand-over's cost spread over the events.
//! - `batch_recording_only`: the same without the hand-over, i.e. what
//!   stays on the per-event path.
//! - `instrument_per_event`: an OpenTelemetry counter add and histogram
//!   record per event, attributes built per event.
//! - `locked_map_per_event`: the former registry's way, a mutex-guarded map
//!   keyed by label strings allocated per update.
//!
//! Run with `cargo bench --bench telemetry`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;

use criterion::{Criterion, Throughput};
use driftwarden::telemetry::{IngestBatch, Metrics};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// Events per flush: 250 ms at 150k events/s.
const BATCH: u64 = 37_500;
const MODELS: [&str; 3] = ["churn", "fraud", "ranking"];

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics_per_event");
    group.throughput(Throughput::Elements(BATCH));

    let metrics = Metrics::new();
    let mut counts = IngestBatch::default();
    group.bench_function("batch", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                let model = MODELS[(i % 3) as usize];
                counts.consumed(black_box(model), black_box((i % 2000) as i64));
            }
            metrics.flush_ingest(&mut counts);
        })
    });

    // The part on the per-event path alone: counting and recording, with
    // the batch emptied instead of handed over.
    group.bench_function("batch_recording_only", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                let model = MODELS[(i % 3) as usize];
                counts.consumed(black_box(model), black_box((i % 2000) as i64));
            }
            counts.event_lag_ms.reset();
            counts.consumed.clear();
        })
    });

    let provider = SdkMeterProvider::builder().build();
    let meter = provider.meter("bench");
    let counter = meter.u64_counter("events").build();
    let histogram = meter
        .f64_histogram("lag")
        .with_boundaries(driftwarden::telemetry::buckets::EVENT_LAG.to_vec())
        .build();
    group.bench_function("instrument_per_event", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                let model = MODELS[(i % 3) as usize];
                counter.add(1, &[KeyValue::new("model", black_box(model).to_owned())]);
                histogram.record(black_box((i % 2000) as f64 / 1000.0), &[]);
            }
        })
    });

    let families: Mutex<BTreeMap<&str, BTreeMap<Vec<String>, f64>>> =
        Mutex::new(BTreeMap::from([("events", BTreeMap::new())]));
    group.bench_function("locked_map_per_event", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                let model = MODELS[(i % 3) as usize];
                let mut families = families.lock().unwrap();
                if let Some(family) = families.get_mut("events") {
                    let key = vec![black_box(model).to_string()];
                    *family.entry(key).or_insert(0.0) += 1.0;
                }
            }
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(3));
    batch(&mut c);
    c.final_summary();
}
