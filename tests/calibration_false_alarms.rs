//! False alarms of calibrated thresholds in long streams without drift.
//!
//! Each case pushes at least 10⁷ events through real [`SlidingKs`] windows,
//! checking after every event, and compares the number of false alarms
//! (up-crossings of D*) with what the calibration promises. Written for
//! optimised builds (`cargo test --release`); a debug build takes minutes.
//!
//! # Tolerance
//!
//! False alarms come in clusters (D hovers around D* and re-crosses it) and
//! their rate differs a lot between baselines, so the count N is far more
//! dispersed than a Poisson count. The streams are split over 100
//! independent baselines; the index of dispersion φ = R·s²/N of the
//! per-baseline counts (R baselines, s² their sample variance) measures
//! that spread, and under the calibration's promise N has mean E and
//! variance about φ·E. The test accepts |N − E| ≤ 3·√(max(φ, 1)·E).
//!
//! That still has teeth: a threshold that ignores the clustering of false
//! alarms (θ = 1, the per-check critical value at α = c/T) gives about
//! θ ≈ 0.06 times the alarms it promises, and the uniform case checks that
//! this lands well outside the tolerance.
//!
//! Not flaky: every stream is seeded, so the counts are the same on every
//! run; the tolerance only says how far a correct calibration could have
//! landed for some other seed.

use std::sync::Arc;

use driftwarden::stats::calibration::{Calibration, CalibrationRequest, calibrate};
use driftwarden::stats::ks::{KsOptions, critical_value};
use driftwarden::stats::window::{KsReference, SlidingKs};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const BASELINES: u64 = 100;

/// A uniform value in [0, 1) from the top 53 bits.
fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (-53f64).exp2()
}

/// A standard normal value by Box–Muller: a different continuous
/// distribution, to show that the calibration does not depend on it.
fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let radius = (-2.0 * (1.0 - uniform(rng)).ln()).sqrt();
    radius * (std::f64::consts::TAU * uniform(rng)).cos()
}

/// What one case observed at one threshold.
struct Observed {
    /// False alarms per baseline.
    per_baseline: Vec<u64>,
    /// Checks that had a previous check (and so could be an up-crossing).
    checks: u64,
}

/// Streams of `events` per baseline for `BASELINES` baselines, checked
/// after every event against each of `thresholds` (values of n·m·D).
fn run(
    request: &CalibrationRequest,
    thresholds: &[u64],
    events: u64,
    seed: u64,
    sample: fn(&mut Xoshiro256PlusPlus) -> f64,
) -> Vec<Observed> {
    let mut generator = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut observed: Vec<Observed> = thresholds
        .iter()
        .map(|_| Observed {
            per_baseline: Vec::new(),
            checks: BASELINES * events,
        })
        .collect();
    for _ in 0..BASELINES {
        let mut rng = generator.clone();
        generator.jump();
        let alarms = run_baseline(request, thresholds, events, &mut rng, sample);
        for (seen, count) in observed.iter_mut().zip(alarms) {
            seen.per_baseline.push(count);
        }
    }
    observed
}

/// One baseline and its stream; false alarms per threshold.
fn run_baseline(
    request: &CalibrationRequest,
    thresholds: &[u64],
    events: u64,
    rng: &mut Xoshiro256PlusPlus,
    sample: fn(&mut Xoshiro256PlusPlus) -> f64,
) -> Vec<u64> {
    let baseline: Vec<f64> = (0..request.m).map(|_| sample(rng)).collect();
    let reference = Arc::new(KsReference::new(&baseline).expect("finite baseline"));
    let mut window = SlidingKs::new(reference, request.n as usize).expect("valid window");
    for _ in 0..request.n {
        window.push(sample(rng)).expect("finite value");
    }

    let d = window.d_scaled();
    let mut above: Vec<bool> = thresholds.iter().map(|&t| d >= t).collect();
    let mut alarms = vec![0; thresholds.len()];
    for _ in 0..events {
        window.push(sample(rng)).expect("finite value");
        let d = window.d_scaled();
        for ((&threshold, was), count) in thresholds.iter().zip(&mut above).zip(&mut alarms) {
            let now = d >= threshold;
            *count += u64::from(now && !*was);
            *was = now;
        }
    }
    alarms
}

/// How far the observed count is from `expected`, in units of the
/// tolerance's σ = √(max(φ, 1)·E) (see the module docs).
fn deviation(observed: &Observed, expected: f64) -> (u64, f64, f64) {
    let counts = &observed.per_baseline;
    let total: u64 = counts.iter().sum();
    let mean = total as f64 / counts.len() as f64;
    let variance = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / (counts.len() - 1) as f64;
    let dispersion = (counts.len() as f64 * variance / (total.max(1) as f64)).max(1.0);
    let sigma = (dispersion * expected).sqrt();
    (total, (total as f64 - expected) / sigma, dispersion)
}

/// Asserts the count is within 3σ of what the calibration promises.
fn assert_consistent(case: &str, calibration: &Calibration, observed: &Observed) {
    let expected = observed.checks as f64 * calibration.false_alarm_rate;
    let (total, z, dispersion) = deviation(observed, expected);
    eprintln!(
        "{case}: D* = {:.4}, θ = {:.4}, {} checks, expected {expected:.1} false alarms \
         (target ≤ {:.1}), observed {total}, dispersion {dispersion:.1}, z = {z:.2}",
        calibration.d,
        calibration.extremal_index,
        observed.checks,
        observed.checks as f64 / calibration.request.target_run_length as f64,
    );
    assert!(
        z.abs() <= 3.0,
        "{case}: observed {total}, expected {expected:.1} (z = {z:.2})"
    );
}

fn calibrated(n: u64, m: u64, target_run_length: u64) -> Calibration {
    let request = CalibrationRequest {
        n,
        m,
        check_interval: 1,
        target_run_length,
        seed: 2024,
    };
    let calibration = calibrate(&request).expect("calibrates");
    assert!(calibration.expected_run_length >= target_run_length as f64);
    calibration
}

/// n = 1,000, m = 5,000, T = 10⁵: about 100 false alarms in 10⁷ events.
///
/// The same streams are also checked against the naive threshold, the
/// per-check critical value at α = c/T, which is what ignoring the
/// clustering of false alarms (θ = 1) gives: it must fail the same
/// tolerance, which shows that the tolerance can tell.
#[test]
fn uniform_stream_matches_the_target() {
    let calibration = calibrated(1_000, 5_000, 100_000);
    let request = &calibration.request;
    let alpha = request.check_interval as f64 / request.target_run_length as f64;
    let naive = critical_value(request.n, request.m, alpha, KsOptions::default())
        .expect("valid sizes and level");
    let thresholds = [calibration.d_scaled, naive.d_scaled];
    let observed = run(request, &thresholds, 100_000, 11, uniform);
    assert_consistent("uniform", &calibration, &observed[0]);

    let promised = observed[1].checks as f64 / request.target_run_length as f64;
    let (total, z, _) = deviation(&observed[1], promised);
    eprintln!(
        "naive D = {:.4}: observed {total}, promised {promised:.1}, z = {z:.2}",
        naive.d
    );
    assert!(
        z < -3.0,
        "the naive threshold should be detectably too strict"
    );
}

/// The same threshold holds for normal data (a different seed, too).
#[test]
fn normal_stream_matches_the_same_target() {
    let calibration = calibrated(1_000, 5_000, 100_000);
    let observed = run(
        &calibration.request,
        &[calibration.d_scaled],
        100_000,
        12,
        normal,
    );
    assert_consistent("normal", &calibration, &observed[0]);
}

/// A target beyond the levels the calibration's own simulation crosses
/// often enough to fit (n = 200, m = 1,000, T = 5·10⁵, 2·10⁷ events): the
/// extrapolation of θ is what is tested here.
#[test]
fn extrapolated_threshold_matches_the_target() {
    let calibration = calibrated(200, 1_000, 500_000);
    let top = calibration.fit.map_or(0.0, |fit| fit.top_d);
    assert!(
        calibration.d > top,
        "D* should lie beyond the fitted levels"
    );
    let observed = run(
        &calibration.request,
        &[calibration.d_scaled],
        200_000,
        13,
        uniform,
    );
    assert_consistent("extrapolated", &calibration, &observed[0]);
}
