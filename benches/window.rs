//! Cost of the sliding-window KS statistic per event, of recomputing D from
//! scratch, of a critical value and of a false-alarm calibration, and the
//! resident memory of one feature's window.
//!
//! Run with `cargo bench --bench window`. The memory figures are printed
//! before the timings; they come from a counting global allocator, so they
//! are what the allocator actually handed out, not an estimate.

use std::hint::black_box;
use std::sync::Arc;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use driftwarden::stats::calibration::{CalibrationRequest, calibrate};
use driftwarden::stats::ks::{KsOptions, critical_value};
use driftwarden::stats::window::{KsReference, SlidingKs};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

const WINDOW: usize = 1_000;
const DISTINCT: [usize; 3] = [1_000, 5_000, 50_000];

fn uniforms(seed: u64, len: usize) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..len)
        .map(|_| (rng.next_u64() >> 11) as f64 * (-53f64).exp2())
        .collect()
}

fn full_window(distinct: usize) -> SlidingKs {
    let reference = KsReference::new(&uniforms(1, distinct)).expect("finite baseline");
    SlidingKs::from_values(Arc::new(reference), WINDOW, &uniforms(2, WINDOW))
        .expect("finite window")
}

/// From-scratch n·m·D: sort the window, merge it with the sorted baseline.
fn scratch_d(window: &[f64], sorted_baseline: &[f64]) -> u64 {
    let mut w = window.to_vec();
    w.sort_unstable_by(f64::total_cmp);
    let (n, m) = (w.len() as i64, sorted_baseline.len() as i64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0u64);
    while i < w.len() || j < sorted_baseline.len() {
        let x = match (w.get(i), sorted_baseline.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        while w.get(i).is_some_and(|&v| v <= x) {
            i += 1;
        }
        while sorted_baseline.get(j).is_some_and(|&v| v <= x) {
            j += 1;
        }
        d = d.max((m * i as i64 - n * j as i64).unsigned_abs());
    }
    d
}

fn report_memory() {
    for distinct in DISTINCT {
        let before = counting::live();
        let window = full_window(distinct);
        let heap = counting::live() - before;
        let total = heap + size_of::<SlidingKs>();
        let reference = window.reference().heap_bytes();
        println!(
            "memory k={distinct} n={WINDOW}: {:.1} KiB per feature \
             (reference {:.1} KiB, window {:.1} KiB)",
            total as f64 / 1024.0,
            reference as f64 / 1024.0,
            window.memory_bytes() as f64 / 1024.0,
        );
    }
}

fn bench_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("window_update");
    for distinct in DISTINCT {
        let mut window = full_window(distinct);
        let stream = uniforms(3, 1 << 16);
        let mut next = stream.iter().copied().cycle();
        group.bench_function(BenchmarkId::from_parameter(distinct), |b| {
            b.iter(|| {
                let x = next.next().unwrap_or(0.5);
                let evicted = window.push(black_box(x));
                black_box((evicted, window.d_scaled()))
            })
        });
    }
    group.finish();
}

/// A push whose verdict the monitor can take from the bound, as it does
/// with no drift: the tree is settled once per 32 pushes.
fn bench_update_bounded(c: &mut Criterion) {
    let mut group = c.benchmark_group("window_update_settle_every_32");
    for distinct in DISTINCT {
        let mut window = full_window(distinct);
        let stream = uniforms(3, 1 << 16);
        let mut next = stream.iter().copied().cycle();
        let mut pushes = 0u32;
        group.bench_function(BenchmarkId::from_parameter(distinct), |b| {
            b.iter(|| {
                let x = next.next().unwrap_or(0.5);
                let evicted = window.push_deferred(black_box(x));
                pushes = pushes.wrapping_add(1);
                if pushes.is_multiple_of(32) {
                    window.settle();
                }
                black_box((evicted, window.d_scaled_at_most()))
            })
        });
    }
    group.finish();
}

fn bench_scratch(c: &mut Criterion) {
    let mut group = c.benchmark_group("scratch_d");
    let window = uniforms(2, WINDOW);
    for distinct in DISTINCT {
        let mut baseline = uniforms(1, distinct);
        baseline.sort_unstable_by(f64::total_cmp);
        group.bench_function(BenchmarkId::from_parameter(distinct), |b| {
            b.iter(|| scratch_d(black_box(&window), black_box(&baseline)))
        });
    }
    group.finish();
}

/// The per-check critical value at α = 10⁻⁵ for a window of 1,000 against
/// baselines of each size (what the `fixed` decision mode computes once).
fn bench_critical_value(c: &mut Criterion) {
    let mut group = c.benchmark_group("critical_value");
    for m in DISTINCT {
        group.bench_function(BenchmarkId::from_parameter(m), |b| {
            b.iter(|| {
                critical_value(
                    WINDOW as u64,
                    black_box(m as u64),
                    1e-5,
                    KsOptions::default(),
                )
            })
        });
    }
    group.finish();
}

/// One calibration at the project's reference point: n = 1,000, m = 5,000,
/// checked after every event, one false alarm per 10⁶ events.
fn bench_calibration(c: &mut Criterion) {
    let mut group = c.benchmark_group("calibration");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let request = CalibrationRequest {
        n: 1_000,
        m: 5_000,
        check_interval: 1,
        target_run_length: 1_000_000,
        seed: 1,
    };
    group.bench_function("n1000_m5000_c1_T1e6", |b| {
        b.iter(|| calibrate(black_box(&request)))
    });
    group.finish();
}

fn main() {
    report_memory();
    let mut criterion = Criterion::default().configure_from_args();
    bench_update(&mut criterion);
    bench_update_bounded(&mut criterion);
    bench_scratch(&mut criterion);
    bench_critical_value(&mut criterion);
    bench_calibration(&mut criterion);
    criterion.final_summary();
}
