//! Events per second on one core, and CPU time per event, over the
//! benchmark workload (`driftwarden::workload`: 20 numeric and 2
//! categorical features, baselines of 5,000 values, windows of 1,000,
//! calibrated thresholds, checks after every event):
//!
//! - `decode`: JSON bytes into the model's feature layout only;
//! - `decode_monitor`: decoding and applying every event to the monitor;
//! - `replay_file`: the same through `replay::run` over a JSON lines file,
//!   as `driftwarden replay` does (one decoding thread when the process is
//!   pinned to one core).
//!
//! Run pinned to one core: `taskset -c 1 cargo bench --bench throughput`.
//! Before the criterion timings it prints one pass of each over the whole
//! stream in the same run (wall and CPU time per event, and the ratio of
//! the two rates), and the resident memory per feature counted by the
//! allocator. The events file goes to `target/bench-data/`.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use driftwarden::baseline::Baseline;
use driftwarden::event::{Event, FeatureLayout, decode_event};
use driftwarden::monitor::{Monitor, MonitorSettings, Outputs, Position};
use driftwarden::replay::input::Lines;
use driftwarden::replay::{self, ReplayOptions};
use driftwarden::workload::{MODEL, Workload, WorkloadSpec};

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// Events applied per criterion iteration.
const BATCH: usize = 1_000;

/// The stream and what it is measured against.
struct Setup {
    baseline: Arc<Baseline>,
    layout: FeatureLayout,
    lines: Vec<Vec<u8>>,
}

impl Setup {
    fn new(events: usize) -> Setup {
        let workload = Workload::new(WorkloadSpec::with_events(events));
        let baseline = Arc::new(
            workload
                .baseline()
                .expect("the workload's baseline is valid"),
        );
        Setup {
            layout: FeatureLayout::from_baseline(&baseline),
            lines: workload.events().collect(),
            baseline,
        }
    }

    fn decode(&self, line: &[u8]) -> Event {
        let lookup = |m: &str, _: Option<&str>| (m == MODEL).then_some(&self.layout);
        decode_event(line, 0, &lookup).expect("workload events decode")
    }

    /// A monitor for the workload's model with the default settings
    /// (calibrated, window 1,000, a check after every event).
    fn monitor(&self) -> Monitor {
        let mut monitor = Monitor::new(MonitorSettings::default().seed);
        monitor
            .set_baseline(self.baseline.clone(), MonitorSettings::default())
            .expect("the workload's baseline is valid");
        monitor
    }
}

/// Process CPU time (user + system) from /proc, in seconds; `None` off
/// Linux. Coarse (clock ticks), so it is read around whole passes only.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs `pass` once and prints its rate; returns events per second.
fn timed_pass(name: &str, events: usize, pass: impl FnOnce()) -> f64 {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    pass();
    let wall = wall.elapsed().as_secs_f64();
    let cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
    let rate = events as f64 / wall;
    let cpu_text = cpu.map_or(String::from("n/a"), |c| {
        format!("{:.2} µs", c * 1e6 / events as f64)
    });
    println!(
        "{name:<15} {rate:>11.0} events/s  wall {:.2} µs/event  CPU {cpu_text}/event",
        wall * 1e6 / events as f64
    );
    rate
}

fn bench_data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    target.join("bench-data")
}

/// One pass of each mode over the whole stream, in one run, so that the
/// ratio of the rates is measured under the same conditions.
fn report_passes(setup: &Setup) {
    let events = setup.lines.len();
    println!("workload: {events} events, 20 numeric + 2 categorical features, window 1000, m 5000");
    let decode = timed_pass("decode", events, || {
        for line in &setup.lines {
            black_box(setup.decode(line));
        }
    });
    let mut monitor = setup.monitor();
    // The calibration runs at the first full window; take it out of the
    // timing (it is computed once per (n, m) and cached).
    let warm = 1_000.min(events);
    apply_lines(setup, &mut monitor, &setup.lines[..warm]);
    let monitor_rate = timed_pass("decode_monitor", events - warm, || {
        apply_lines(setup, &mut monitor, &setup.lines[warm..]);
    });
    println!(
        "decode_monitor / decode = {:.2}",
        monitor_rate / decode.max(f64::MIN_POSITIVE)
    );
    report_replay(setup);
}

fn apply_lines(setup: &Setup, monitor: &mut Monitor, lines: &[Vec<u8>]) {
    let mut out = Outputs::default();
    for (i, line) in lines.iter().enumerate() {
        let event = setup.decode(line);
        let position = Position {
            partition: 0,
            offset: i as i64,
        };
        monitor
            .apply(&event, position, &mut out)
            .expect("workload events apply");
        out.notifications.clear();
        out.retrains.clear();
    }
}

/// `replay::run` over the events written to a file (calibration included,
/// as a replay pays it).
fn report_replay(setup: &Setup) {
    let dir = bench_data_dir();
    let path = dir.join(format!("workload-{}.jsonl", setup.lines.len()));
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let mut out = BufWriter::new(File::create(&path)?);
        for line in &setup.lines {
            std::io::Write::write_all(&mut out, line)?;
            std::io::Write::write_all(&mut out, b"\n")?;
        }
        std::io::Write::flush(&mut out)
    });
    if let Err(error) = written {
        println!("replay_file     skipped: {}: {error}", path.display());
        return;
    }
    let mut monitor = setup.monitor();
    let file = File::open(&path).expect("the events file was just written");
    let summary = replay::run(
        Lines::new(BufReader::new(file)),
        &mut monitor,
        &ReplayOptions::default(),
        None,
    )
    .expect("replay of the workload runs");
    println!(
        "replay_file     {:>11.0} events/s  (decode {:.2} s, monitor {:.2} s, {} alerts fired)",
        summary.events_per_second(),
        summary.decode_time.as_secs_f64(),
        summary.apply_time.as_secs_f64(),
        summary.fired()
    );
}

/// Heap held by one model's monitor (windows, references, trackers) and
/// its baseline, after its windows are full, per feature.
fn report_memory(setup: &Setup) {
    let before = counting::live();
    let baseline = Arc::new((*setup.baseline).clone());
    let after_baseline = counting::live();
    let mut monitor = Monitor::new(1);
    monitor
        .set_baseline(baseline, MonitorSettings::default())
        .expect("the workload's baseline is valid");
    let fill = 1_000.min(setup.lines.len());
    apply_lines(setup, &mut monitor, &setup.lines[..fill]);
    let total = counting::live() - before;
    let features = setup.baseline.features.len();
    println!(
        "memory: {:.1} KiB per feature over {features} features \
         (monitor {:.1} KiB, baseline snapshot {:.1} KiB per feature)",
        total as f64 / 1024.0 / features as f64,
        (total - (after_baseline - before)) as f64 / 1024.0 / features as f64,
        (after_baseline - before) as f64 / 1024.0 / features as f64,
    );
    drop(monitor);
}

fn bench_rates(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group("throughput");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .measurement_time(Duration::from_secs(10));
    let mut next = setup.lines.chunks_exact(BATCH).cycle();
    group.bench_function("decode", |b| {
        b.iter(|| {
            for line in next.next().unwrap_or_default() {
                black_box(setup.decode(line));
            }
        })
    });
    let mut monitor = setup.monitor();
    apply_lines(
        setup,
        &mut monitor,
        &setup.lines[..BATCH.min(setup.lines.len())],
    );
    let mut next = setup.lines.chunks_exact(BATCH).cycle();
    group.bench_function("decode_monitor", |b| {
        b.iter(|| apply_lines(setup, &mut monitor, next.next().unwrap_or_default()))
    });
    group.finish();
}

fn main() {
    // `cargo test --all-targets` runs each bench once without `--bench`:
    // keep that quick with a short stream.
    let benching = std::env::args().any(|a| a == "--bench");
    let events = if benching { 200_000 } else { 4_000 };
    let setup = Setup::new(events);
    // Under `--profile-time` (perf, callgrind) only the chosen bench runs.
    if !std::env::args().any(|a| a == "--profile-time") {
        report_memory(&setup);
        report_passes(&setup);
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench_rates(&mut criterion, &setup);
    criterion.final_summary();
}
