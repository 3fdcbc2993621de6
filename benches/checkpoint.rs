//! What a checkpoint costs, for the benchmark workload's model shape (20
//! numeric and 2 categorical features, baselines of 5,000 values, windows
//! of 1,000, full windows) and 1 or 10 models:
//!
//! - `snapshot`: copying the monitor's state (`Monitor::states`), the part
//!   taken on the ingestion thread between two events;
//! - `encode`: the checkpoint file's bytes (JSON body, SHA-256 header);
//! - `write`: the durable write (temporary file, fsync, rename, directory
//!   fsync) into `target/bench-data/checkpoint/`, so on that file system;
//! - `restore`: reading, verifying and decoding the file and rebuilding
//!   every model's monitor from it, as a start does before it consumes.
//!
//! Before the criterion timings it prints the file size and one timed pass
//! of each step per model count.
//!
//! `cargo bench --bench checkpoint`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use criterion::Criterion;
use driftwarden::baseline::Baseline;
use driftwarden::event::{FeatureLayout, decode_event};
use driftwarden::monitor::{Monitor, MonitorSettings, Outputs, Position};
use driftwarden::state::{Checkpoint, PartitionOffset, checkpoint};
use driftwarden::workload::{MODEL, Workload, WorkloadSpec};

/// Events applied to every model before its state is taken: the windows
/// are full and have slid.
const EVENTS: usize = 2_000;

/// A monitor with `models` copies of the workload's model (named
/// `churn-0`, `churn-1`, ...), each fed the same events, and its baselines.
fn monitor(models: usize) -> (Monitor, Vec<Arc<Baseline>>) {
    let workload = Workload::new(WorkloadSpec::with_events(EVENTS));
    let template = workload.baseline().expect("the workload's baseline");
    let layout = FeatureLayout::from_baseline(&template);
    let lookup = |m: &str, _: Option<&str>| (m == MODEL).then_some(&layout);
    let events: Vec<_> = workload
        .events()
        .map(|line| decode_event(&line, 0, &lookup).expect("workload events decode"))
        .collect();
    let mut monitor = Monitor::new(MonitorSettings::default().seed);
    let mut baselines = Vec::new();
    let mut out = Outputs::default();
    for m in 0..models {
        let mut baseline = template.clone();
        baseline.model = format!("churn-{m}");
        let baseline = Arc::new(baseline);
        monitor
            .set_baseline(Arc::clone(&baseline), MonitorSettings::default())
            .expect("the workload's baseline is valid");
        for (offset, event) in events.iter().enumerate() {
            let mut event = event.clone();
            event.model.clone_from(&baseline.model);
            let position = Position {
                partition: 0,
                offset: offset as i64,
            };
            monitor
                .apply(&event, position, &mut out)
                .expect("workload events apply");
        }
        baselines.push(baseline);
    }
    (monitor, baselines)
}

fn snapshot(monitor: &Monitor) -> Checkpoint {
    Checkpoint {
        written_at_ms: 0,
        models: monitor.states(),
        offsets: vec![PartitionOffset {
            topic: "predictions".into(),
            partition: 0,
            next_offset: EVENTS as i64,
        }],
        calibrations: monitor.calibrations(),
    }
}

/// Reads the checkpoint in `dir` and rebuilds every model onto its
/// baseline, as a start does.
fn restore(dir: &Path, baselines: &[Arc<Baseline>]) -> Monitor {
    let checkpoint = checkpoint::load(dir)
        .expect("the checkpoint reads")
        .expect("a checkpoint was written");
    let mut monitor = Monitor::new(MonitorSettings::default().seed);
    for (state, baseline) in checkpoint.models.iter().zip(baselines) {
        monitor
            .restore_model(Arc::clone(baseline), MonitorSettings::default(), state)
            .expect("the state restores");
    }
    monitor
}

fn bench_dir(models: usize) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let dir = target
        .join("bench-data")
        .join("checkpoint")
        .join(models.to_string());
    std::fs::create_dir_all(&dir).expect("the bench directory can be made");
    dir
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// One timed pass of each step, and the file size.
fn report(models: usize, monitor: &Monitor, baselines: &[Arc<Baseline>], dir: &Path) {
    let started = Instant::now();
    let taken = snapshot(monitor);
    let snapshot_ms = millis(started);
    let started = Instant::now();
    let bytes = checkpoint::encode(&taken).expect("the checkpoint encodes");
    let encode_ms = millis(started);
    let started = Instant::now();
    checkpoint::save(dir, &bytes).expect("the checkpoint is written");
    let write_ms = millis(started);
    let started = Instant::now();
    black_box(restore(dir, baselines));
    let restore_ms = millis(started);
    println!(
        "{models:>2} model(s) x 22 features: {:.2} MiB; snapshot {snapshot_ms:.1} ms, \
         encode {encode_ms:.1} ms, write {write_ms:.1} ms, restore {restore_ms:.1} ms",
        bytes.len() as f64 / (1024.0 * 1024.0)
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    for models in [1, 10] {
        let (monitor, baselines) = monitor(models);
        let dir = bench_dir(models);
        report(models, &monitor, &baselines, &dir);
        let mut group = criterion.benchmark_group(format!("checkpoint_{models}_models"));
        group.sample_size(10);
        group.bench_function("snapshot", |b| b.iter(|| black_box(snapshot(&monitor))));
        let taken = snapshot(&monitor);
        group.bench_function("encode", |b| {
            b.iter(|| black_box(checkpoint::encode(&taken).expect("the checkpoint encodes")))
        });
        let bytes = checkpoint::encode(&taken).expect("the checkpoint encodes");
        group.bench_function("write", |b| {
            b.iter(|| checkpoint::save(&dir, &bytes).expect("the checkpoint is written"))
        });
        group.bench_function("restore", |b| {
            b.iter(|| black_box(restore(&dir, &baselines)))
        });
        group.finish();
    }
    criterion.final_summary();
}
