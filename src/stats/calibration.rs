//! Thresholds for continuous checking: the KS critical value D* such that a
//! window checked every c events, with no drift, raises a false alarm no
//! more often than once per T events on average.
//!
//! # What counts as a false alarm
//!
//! A false alarm is an *up-crossing*: a check whose statistic reaches the
//! threshold (n·m·D ≥ `d_scaled`) while the previous check's did not. A run
//! of checks above the threshold is one alarm, since the alert is already
//! firing; a statistic that dips below for one check and comes back counts
//! twice, as it would for an alert without hysteresis (the monitor's `for`
//! persistence only lowers the count further).
//!
//! # Method
//!
//! With no drift and continuous data the law of the whole sequence of
//! checked statistics does not depend on the data's distribution: every
//! value can be replaced by its probability transform, which preserves all
//! the comparisons D is made of. So uniform streams stand for every
//! continuous feature.
//!
//! The false-alarm rate per event at a threshold h is
//!
//! > rate(h) = θ(h) · P(D ≥ h) / c
//!
//! where P(D ≥ h) is the chance that one check reaches h and θ(h), the
//! extremal index of the checked sequence at h, is the share of those
//! checks that are up-crossings. The two factors are found differently:
//!
//! - P(D ≥ h) is the two-sample KS p-value at h, computed exactly (as
//!   scipy) by [`ks::p_value_scaled`](super::ks::p_value_scaled). It is the
//!   unconditional law of D, so it already averages over baselines.
//! - θ(h) comes from simulation: many independent uniform baselines, each
//!   with a stream pushed through a [`SlidingKs`] and checked every c
//!   events, counting up-crossings for a grid of levels. θ is estimated as
//!   (up-crossings per check) / P(D ≥ h) with the exact p-value, not as
//!   up-crossings over simulated exceedances: how long D stays above a
//!   high level varies enormously between excursions, so the count of
//!   exceedances is far noisier than the count of crossings and would bias
//!   θ upwards in the tail, where exceedances are undersampled.
//!
//! The targets of interest (T = 10⁵ to 10⁷) lie beyond the levels a
//! simulation of a few seconds crosses often enough, so θ is extrapolated
//! with θ(h) = κ·h. Why linear: when checks are dense (c ≪ n) the KS
//! process moves by small steps, and a check is the first above h when the
//! step since the previous check (spread ∝ √(c/n)) outgrows the overshoot
//! above h (∝ 1/h in standard units). The window's empirical process has
//! correlation 1 − τ/n over τ events, locally like Brownian motion, and
//! for such a process θ = 2Φ(h̃·√(c/2n)) − 1 at a level h̃ in standard units:
//! linear at first, concave later, so a line fitted at lower levels errs
//! on the high side of θ (fewer false alarms) when it errs. κ is pooled
//! over levels with P(D ≥ h) ≤ 5% that are crossed at least 50 times
//! (observed up-crossings over those predicted per unit κ, the Poisson
//! maximum-likelihood estimate).
//!
//! Validation (n = 1,000, m = 5,000, c = 1): in 1.5·10⁸ simulated events
//! over 3,000 baselines θ/D stays within 0.74–0.81 from P = 2·10⁻² to
//! 2·10⁻⁵, and the up-crossing rates observed at D = 0.0826, 0.0844 and
//! 0.0892 (1.3·10⁻⁶, 7.6·10⁻⁷, 2.5·10⁻⁷ per event) match κ·D·P(D ≥ h)
//! with the κ ≈ 0.75 that one 10⁷-event calibration finds (1.4·10⁻⁶,
//! 8.4·10⁻⁷, 2.2·10⁻⁷). Across seeds κ varies by about 5%.
//!
//! D* is then the smallest point on the lattice of attainable statistics
//! (multiples of gcd(n, m) in units of 1/(n·m)) with rate(D*) ≤ 1/T, found
//! by bisection above the simulated median of D (the up-crossing rate only
//! decreases with h there).
//!
//! When the simulation has too few up-crossings to fit (tiny budgets,
//! windows too long to simulate), θ is taken as 1. Up-crossings are a
//! subset of exceedances, so this bound is conservative: D* becomes the
//! per-check critical value at α = c/T.
//!
//! # Cost
//!
//! About 10⁷ simulated events per calibration, spread over up to four
//! threads with one deterministic random stream per baseline, so the result
//! depends on the seed only. Cache results with [`CalibrationCache`].
//!
//! # Limitations
//!
//! - The target holds on average over baselines. For one particular
//!   baseline the run length can be several times shorter or longer: the
//!   baseline's own sampling error shifts D, and in the far tail that shift
//!   matters. In simulation (n = 1,000, m = 5,000, D ≈ 0.078) the
//!   up-crossings of 20 baselines over 10⁶ events each ranged from 0 to 8
//!   times their mean. Calibrating to one baseline would need the unknown
//!   distribution it was drawn from.
//! - Ties in real data make D stochastically smaller, so false alarms are
//!   rarer than calibrated (conservative), never more frequent.
//! - Windows longer than 10⁶ values and baselines larger than 2·10⁷ are
//!   not simulated (θ = 1, see above). For windows beyond about 10⁵ values
//!   the budget covers few window lengths per baseline, so the fit rests
//!   on few levels and, failing that, falls back to θ = 1 as well.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::num::NonZero;
use std::sync::Arc;
use std::thread;

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::StatsError;
use super::ks::{KsOptions, MethodUsed, p_value_scaled};
use super::window::{KsReference, SlidingKs};

/// Events simulated per calibration, window fills included: about one
/// second of CPU at n = 1,000, m = 5,000.
const SIM_EVENTS: u64 = 10_000_000;

/// Baseline values generated per calibration, which bounds the cost of
/// sorting baselines when m is large.
const SIM_BASELINE_VALUES: u64 = 20_000_000;

/// Each baseline's stream lasts at least this many window lengths (or
/// check intervals), so filling the window is a small overhead.
const STREAM_WINDOWS: u64 = 50;

/// Windows longer than this are not simulated: filling them would eat the
/// budget. Baselines larger than [`SIM_BASELINE_VALUES`] are not either.
const MAX_SIMULATED_WINDOW: u64 = SIM_EVENTS / 10;

/// Number of threshold levels tracked by the simulation.
const BINS: usize = 1024;

/// Levels per 1/√N_eff, the scale of D; 1,024 levels reach 4/√N_eff,
/// where P(D ≥ h) ≈ 10⁻¹⁴, far beyond what a simulation crosses.
const BINS_PER_SCALE: f64 = 256.0;

/// κ is fitted on levels with P(D ≥ h) at most this.
const FIT_TAIL: f64 = 0.05;

/// …and crossed at least this many times.
const MIN_UPCROSSINGS: u64 = 50;

/// Levels fitted at most (each costs an exact p-value).
const MAX_FIT_LEVELS: usize = 32;

/// Upper bound on simulation threads.
const MAX_THREADS: usize = 4;

/// What to calibrate: sizes, how often the window is checked, and the
/// desired mean number of events between false alarms. Hashable so that it
/// can key a [`CalibrationCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CalibrationRequest {
    /// n, the length of the (full) count window.
    pub n: u64,
    /// m, the baseline size.
    pub m: u64,
    /// c, events between two checks (1 = check after every event).
    pub check_interval: u64,
    /// T, the desired mean number of events between false alarms.
    pub target_run_length: u64,
    /// Seed of the simulation; the result depends on it and nothing else.
    pub seed: u64,
}

impl CalibrationRequest {
    fn validate(&self) -> Result<(), StatsError> {
        let fields = [
            ("n", self.n),
            ("m", self.m),
            ("check_interval", self.check_interval),
            ("target_run_length", self.target_run_length),
        ];
        if let Some((name, _)) = fields.iter().find(|(_, value)| *value == 0) {
            return Err(invalid(name, "must be at least 1".to_owned()));
        }
        if self.n.checked_mul(self.m).is_none_or(|nm| nm > 1 << 53) {
            return Err(invalid(
                "n",
                format!("n·m = {}·{} exceeds 2^53", self.n, self.m),
            ));
        }
        Ok(())
    }

    fn n_times_m(&self) -> u64 {
        self.n * self.m
    }
}

/// How θ was extrapolated: θ(D) = min(1, `theta_per_d` · D) for D at or
/// above `from_d`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExtremalFit {
    /// κ, the fitted ratio θ/D.
    pub theta_per_d: f64,
    /// The lowest fitted level; below it θ is read from the simulation.
    pub from_d: f64,
    /// The highest fitted level: beyond it θ is extrapolated.
    pub top_d: f64,
    /// Number of levels fitted.
    pub levels: usize,
    /// Up-crossings summed over the fitted levels.
    pub upcrossings: u64,
    /// Up-crossings observed at `top_d`.
    pub upcrossings_at_top: u64,
}

/// A calibrated threshold with the quantities it was derived from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// What was calibrated.
    pub request: CalibrationRequest,
    /// Alarm when n·m·D ≥ `d_scaled`.
    pub d_scaled: u64,
    /// D* = `d_scaled` / (n·m).
    pub d: f64,
    /// P(D ≥ D*) at one check with no drift: the exact KS p-value at D*.
    pub per_check_alpha: f64,
    /// How that p-value was computed.
    pub pvalue_method: MethodUsed,
    /// θ(D*), the share of checks at or above D* that start an alarm.
    pub extremal_index: f64,
    /// Modelled false alarms per event, θ·α/c; at most 1/T.
    pub false_alarm_rate: f64,
    /// 1 / `false_alarm_rate`; at least T.
    pub expected_run_length: f64,
    /// Events simulated, window fills included.
    pub simulated_events: u64,
    /// Independent baselines simulated.
    pub simulated_baselines: u64,
    /// The extrapolation of θ, or `None` when θ was taken as 1.
    pub fit: Option<ExtremalFit>,
}

/// Finds D* for a request (see the module docs). Deterministic for a given
/// request; costs about a second at n = 1,000, m = 5,000.
pub fn calibrate(request: &CalibrationRequest) -> Result<Calibration, StatsError> {
    calibrate_with_budget(request, SIM_EVENTS)
}

/// [`calibrate`] with a chosen simulation budget (tests use small ones).
fn calibrate_with_budget(
    request: &CalibrationRequest,
    budget: u64,
) -> Result<Calibration, StatsError> {
    request.validate()?;
    let plan = Plan::new(request, budget);
    let levels = plan.simulate(request)?;
    let model = ExtremalModel::fit(levels, request)?;
    let point = solve(request, &model)?;

    let rate = point.rate(request);
    Ok(Calibration {
        request: *request,
        d_scaled: point.d_scaled,
        d: point.d_scaled as f64 / request.n_times_m() as f64,
        per_check_alpha: point.pvalue,
        pvalue_method: point.method,
        extremal_index: point.theta,
        false_alarm_rate: rate,
        expected_run_length: 1.0 / rate,
        simulated_events: plan.events(request),
        simulated_baselines: plan.streams,
        fit: model.fit,
    })
}

fn invalid(name: &'static str, reason: String) -> StatsError {
    StatsError::InvalidArgument { name, reason }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// How the simulation budget is spent.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Independent baselines, each with its own stream.
    streams: u64,
    /// Events per stream after the window is full.
    stream_events: u64,
    /// Width of a threshold level, in units of 1/(n·m); a multiple of
    /// gcd(n, m) so that every level is an attainable statistic.
    bin_width: u64,
}

impl Plan {
    fn new(request: &CalibrationRequest, budget: u64) -> Self {
        let (n, m) = (request.n, request.m);
        let bin_width = Self::bin_width(n, m);
        if n > MAX_SIMULATED_WINDOW || m > SIM_BASELINE_VALUES {
            return Self {
                streams: 0,
                stream_events: 0,
                bin_width,
            };
        }

        // As many baselines as the budget allows, each stream long enough
        // that the window fill is a small overhead.
        let shortest = STREAM_WINDOWS.saturating_mul(n.max(request.check_interval));
        let by_events = budget / shortest.saturating_add(n);
        let streams = by_events.min(SIM_BASELINE_VALUES / m).max(1);
        Self {
            streams,
            stream_events: (budget / streams).saturating_sub(n),
            bin_width,
        }
    }

    fn bin_width(n: u64, m: u64) -> u64 {
        let nm = (n * m) as f64;
        let effective = nm / (n + m) as f64;
        let desired = nm / (BINS_PER_SCALE * effective.sqrt());
        let g = gcd(n, m);
        g * ((desired / g as f64).round() as u64).max(1)
    }

    fn events(&self, request: &CalibrationRequest) -> u64 {
        self.streams * (self.stream_events + request.n)
    }

    fn bin(&self, d_scaled: u64) -> usize {
        ((d_scaled / self.bin_width) as usize).min(BINS - 1)
    }

    /// Runs every stream, spread over threads, and merges their counts.
    /// Each baseline has its own generator and integer sums do not depend
    /// on the order, so the result depends on the seed only, not on the
    /// number of threads or their timing.
    fn simulate(&self, request: &CalibrationRequest) -> Result<Levels, StatsError> {
        let generators = self.generators(request.seed);
        let threads = thread::available_parallelism().map_or(1, NonZero::get);
        let threads = threads.min(MAX_THREADS).min(generators.len()).max(1);
        let tallies = thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|first| {
                    let mine = generators.iter().skip(first).step_by(threads).cloned();
                    let mine: Vec<_> = mine.collect();
                    scope.spawn(move || self.run_streams(request, mine))
                })
                .collect();
            let joined = workers.into_iter().map(thread::ScopedJoinHandle::join);
            joined.collect::<Vec<_>>()
        });

        let mut total = Tally::new();
        for tally in tallies {
            // A worker panics only on a bug: let it surface as one.
            let tally = tally.unwrap_or_else(|payload| std::panic::resume_unwind(payload));
            total.merge(&tally?);
        }
        Ok(Levels::from_tally(&total, self.bin_width))
    }

    /// One generator per baseline, 2^128 draws apart, so streams never
    /// overlap.
    fn generators(&self, seed: u64) -> Vec<Xoshiro256PlusPlus> {
        let mut generator = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut generators = Vec::new();
        for _ in 0..self.streams {
            generators.push(generator.clone());
            generator.jump();
        }
        generators
    }

    fn run_streams(
        &self,
        request: &CalibrationRequest,
        generators: Vec<Xoshiro256PlusPlus>,
    ) -> Result<Tally, StatsError> {
        let mut tally = Tally::new();
        for generator in generators {
            self.run_stream(request, generator, &mut tally)?;
        }
        Ok(tally)
    }

    /// One baseline and its stream: fill the window, then check every c
    /// events and tally each pair of consecutive checks.
    fn run_stream(
        &self,
        request: &CalibrationRequest,
        mut rng: Xoshiro256PlusPlus,
        tally: &mut Tally,
    ) -> Result<(), StatsError> {
        let baseline: Vec<f64> = (0..request.m).map(|_| uniform(&mut rng)).collect();
        let reference = Arc::new(KsReference::new(&baseline)?);
        let mut window = SlidingKs::new(reference, request.n as usize)?;
        for _ in 0..request.n {
            window.push(uniform(&mut rng))?;
        }

        let mut previous = None;
        for event in 1..=self.stream_events {
            window.push(uniform(&mut rng))?;
            if event % request.check_interval == 0 {
                let bin = self.bin(window.d_scaled());
                if let Some(before) = previous {
                    tally.record(before, bin);
                }
                previous = Some(bin);
            }
        }
        Ok(())
    }
}

/// A uniform value in [0, 1) from the top 53 bits.
fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (-53f64).exp2()
}

/// Raw simulation counts over pairs of consecutive checks.
#[derive(Debug, Clone, PartialEq)]
struct Tally {
    pairs: u64,
    /// Checks per level bin (the later check of each pair).
    at: Vec<u64>,
    /// Difference array of up-crossings: a pair going from bin a up to bin
    /// b crosses every level in (a, b].
    crossings: Vec<i64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            pairs: 0,
            at: vec![0; BINS],
            crossings: vec![0; BINS + 1],
        }
    }

    fn record(&mut self, before: usize, now: usize) {
        self.pairs += 1;
        self.at[now] += 1;
        if now > before {
            self.crossings[before + 1] += 1;
            self.crossings[now + 1] -= 1;
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.pairs += other.pairs;
        for (mine, theirs) in self.at.iter_mut().zip(&other.at) {
            *mine += theirs;
        }
        for (mine, theirs) in self.crossings.iter_mut().zip(&other.crossings) {
            *mine += theirs;
        }
    }
}

/// For each level h_b = b·width: checks at or above it and up-crossings.
#[derive(Debug, Clone, PartialEq)]
struct Levels {
    pairs: u64,
    width: u64,
    exceedances: Vec<u64>,
    upcrossings: Vec<u64>,
}

impl Levels {
    fn from_tally(tally: &Tally, width: u64) -> Self {
        let mut exceedances = tally.at.clone();
        for b in (0..BINS - 1).rev() {
            exceedances[b] += exceedances[b + 1];
        }
        let upcrossings = tally.crossings[..BINS].iter().scan(0i64, |running, &step| {
            *running += step;
            Some(running.unsigned_abs())
        });
        Self {
            pairs: tally.pairs,
            width,
            exceedances,
            upcrossings: upcrossings.collect(),
        }
    }

    fn share_exceeding(&self, bin: usize) -> f64 {
        self.exceedances[bin] as f64 / self.pairs.max(1) as f64
    }

    /// Levels crossed often enough to fit and exceeded by at most a few
    /// times [`FIT_TAIL`] of the checks (the exact p-value decides), at
    /// most [`MAX_FIT_LEVELS`] of them, evenly spread.
    fn fit_candidates(&self) -> Vec<usize> {
        let bins: Vec<usize> = (1..BINS)
            .filter(|&b| self.share_exceeding(b) <= 2.0 * FIT_TAIL)
            .filter(|&b| self.upcrossings[b] >= MIN_UPCROSSINGS)
            .collect();
        let stride = bins.len().div_ceil(MAX_FIT_LEVELS).max(1);
        let mut chosen: Vec<usize> = bins.iter().rev().step_by(stride).copied().collect();
        chosen.reverse();
        chosen
    }

    /// The lowest level exceeded by at most half the checks: the search for
    /// D* starts there (0 without a simulation).
    fn median_scaled(&self) -> u64 {
        let bin = (0..BINS).find(|&b| self.share_exceeding(b) <= 0.5);
        bin.map_or(0, |b| b as u64 * self.width)
    }
}

/// θ as a function of the level: κ·D from the fit's lowest level up,
/// simulated below it, 1 without a fit.
struct ExtremalModel {
    levels: Levels,
    nm: u64,
    fit: Option<ExtremalFit>,
}

/// One simulated level used in the fit.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FitPoint {
    d: f64,
    pvalue: f64,
    upcrossings: u64,
}

impl ExtremalModel {
    fn fit(levels: Levels, request: &CalibrationRequest) -> Result<Self, StatsError> {
        let nm = request.n_times_m();
        let mut points = Vec::new();
        for bin in levels.fit_candidates() {
            let d_scaled = bin as u64 * levels.width;
            let (pvalue, _, _) =
                p_value_scaled(request.n, request.m, d_scaled, KsOptions::default())?;
            if pvalue <= FIT_TAIL {
                let d = d_scaled as f64 / nm as f64;
                let upcrossings = levels.upcrossings[bin];
                points.push(FitPoint {
                    d,
                    pvalue,
                    upcrossings,
                });
            }
        }
        let fit = fit_slope(&points, levels.pairs);
        Ok(Self { levels, nm, fit })
    }

    /// θ at a level whose exact p-value is `pvalue`.
    fn theta(&self, d_scaled: u64, pvalue: f64) -> f64 {
        let Some(fit) = &self.fit else {
            return 1.0;
        };
        let d = d_scaled as f64 / self.nm as f64;
        if d >= fit.from_d {
            return (fit.theta_per_d * d).min(1.0);
        }
        // Below the fit the simulation crosses the level often: read θ off
        // it. The bin's level is at or below d, so this errs high.
        let bin = ((d_scaled / self.levels.width) as usize).min(BINS - 1);
        let crossings = self.levels.upcrossings[bin] as f64 / self.levels.pairs as f64;
        (crossings / pvalue).min(1.0)
    }
}

/// κ in θ = κ·D, pooled over the levels: observed up-crossings over those
/// the model predicts per unit κ (the Poisson maximum-likelihood estimate
/// if the levels were independent).
fn fit_slope(points: &[FitPoint], pairs: u64) -> Option<ExtremalFit> {
    let (first, top) = (points.first()?, points.last()?);
    let observed: u64 = points.iter().map(|p| p.upcrossings).sum();
    let per_unit: f64 = points.iter().map(|p| pairs as f64 * p.pvalue * p.d).sum();
    Some(ExtremalFit {
        theta_per_d: observed as f64 / per_unit,
        from_d: first.d,
        top_d: top.d,
        levels: points.len(),
        upcrossings: observed,
        upcrossings_at_top: top.upcrossings,
    })
}

/// A candidate threshold with its modelled rate's factors.
#[derive(Debug, Clone, Copy)]
struct Point {
    d_scaled: u64,
    pvalue: f64,
    theta: f64,
    method: MethodUsed,
}

impl Point {
    /// False alarms per event.
    fn rate(&self, request: &CalibrationRequest) -> f64 {
        self.theta * self.pvalue / request.check_interval as f64
    }

    fn meets(&self, request: &CalibrationRequest) -> bool {
        self.rate(request) * request.target_run_length as f64 <= 1.0
    }
}

/// The smallest lattice point at or above the simulated median of D whose
/// rate meets the target, by bisection on the lattice index.
fn solve(request: &CalibrationRequest, model: &ExtremalModel) -> Result<Point, StatsError> {
    let (n, m) = (request.n, request.m);
    let g = gcd(n, m);
    let lcm = request.n_times_m() / g;
    let eval = |index: u64| -> Result<Point, StatsError> {
        let d_scaled = index * g;
        let (pvalue, _, method) = p_value_scaled(n, m, d_scaled, KsOptions::default())?;
        let theta = model.theta(d_scaled, pvalue);
        Ok(Point {
            d_scaled,
            pvalue,
            theta,
            method,
        })
    };

    let mut low = model.levels.median_scaled().div_ceil(g).clamp(1, lcm);
    let first = eval(low)?;
    if first.meets(request) {
        return Ok(first);
    }
    let mut high = eval(lcm)?;
    if !high.meets(request) {
        let reason = format!(
            "no threshold gives a run length of {} events (D = 1 gives {:.3e})",
            request.target_run_length,
            1.0 / high.rate(request),
        );
        return Err(invalid("target_run_length", reason));
    }
    while high.d_scaled / g - low > 1 {
        let middle = eval(low + (high.d_scaled / g - low) / 2)?;
        if middle.meets(request) {
            high = middle;
        } else {
            low = middle.d_scaled / g;
        }
    }
    Ok(high)
}

/// Calibrations already computed, keyed by request. Entries are few (one
/// per distinct window size, baseline size, interval and target) and are
/// never evicted.
#[derive(Debug, Clone, Default)]
pub struct CalibrationCache {
    entries: HashMap<CalibrationRequest, Calibration>,
}

impl CalibrationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calibration for `request`, computed on first use. Errors are
    /// returned, not cached.
    pub fn get_or_calibrate(
        &mut self,
        request: &CalibrationRequest,
    ) -> Result<&Calibration, StatsError> {
        match self.entries.entry(*request) {
            Entry::Occupied(found) => Ok(found.into_mut()),
            Entry::Vacant(slot) => Ok(slot.insert(calibrate(request)?)),
        }
    }

    /// The cached calibration for `request`, if any.
    pub fn get(&self, request: &CalibrationRequest) -> Option<&Calibration> {
        self.entries.get(request)
    }

    /// Adds a calibration computed elsewhere (e.g. restored from a
    /// checkpoint), keyed by its own request.
    pub fn insert(&mut self, calibration: Calibration) {
        self.entries.insert(calibration.request, calibration);
    }

    /// Every cached calibration, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Calibration> {
        self.entries.values()
    }

    /// Number of cached calibrations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ks::critical_value;

    fn request(n: u64, m: u64, target_run_length: u64) -> CalibrationRequest {
        CalibrationRequest {
            n,
            m,
            check_interval: 1,
            target_run_length,
            seed: 5,
        }
    }

    #[test]
    fn rejects_zero_fields() {
        let valid = request(20, 40, 1_000);
        let zeroed = [
            ("n", CalibrationRequest { n: 0, ..valid }),
            ("m", CalibrationRequest { m: 0, ..valid }),
            (
                "check_interval",
                CalibrationRequest {
                    check_interval: 0,
                    ..valid
                },
            ),
            (
                "target_run_length",
                CalibrationRequest {
                    target_run_length: 0,
                    ..valid
                },
            ),
        ];
        for (field, bad) in zeroed {
            let err = calibrate(&bad).expect_err("invalid");
            assert!(matches!(err, StatsError::InvalidArgument { name, .. } if name == field));
        }
    }

    #[test]
    fn tally_counts_crossings_of_every_level() {
        let mut tally = Tally::new();
        let bins = [0, 3, 1, 2, 2, 0, 5];
        for pair in bins.windows(2) {
            tally.record(pair[0], pair[1]);
        }
        let levels = Levels::from_tally(&tally, 1);
        // Crossings: 0→3 crosses 1..=3, 1→2 crosses 2, 0→5 crosses 1..=5.
        assert_eq!(&levels.upcrossings[..7], &[0, 2, 3, 2, 1, 1, 0]);
        // Later checks at 3, 1, 2, 2, 0, 5.
        assert_eq!(&levels.exceedances[..7], &[6, 5, 4, 2, 1, 1, 0]);
        assert_eq!(levels.pairs, 6);
    }

    #[test]
    fn slope_is_pooled_over_levels() {
        let kappa = 0.8;
        let pairs = 1_000_000;
        let points: Vec<FitPoint> = [(0.05, 0.04), (0.06, 0.01), (0.07, 0.002)]
            .iter()
            .map(|&(d, pvalue)| FitPoint {
                d,
                pvalue,
                upcrossings: (kappa * d * pvalue * pairs as f64).round() as u64,
            })
            .collect();
        let fit = fit_slope(&points, pairs).expect("points");
        assert!((fit.theta_per_d - kappa).abs() < 1e-3, "{fit:?}");
        assert_eq!((fit.from_d, fit.top_d, fit.levels), (0.05, 0.07, 3));
        assert!(fit_slope(&[], pairs).is_none());
    }

    #[test]
    fn without_simulation_the_threshold_is_the_per_check_critical_value() {
        // θ = 1 bounds the up-crossing rate by the exceedance rate, so the
        // threshold must be the critical value at α = c/T.
        let req = request(30, 60, 1_000);
        let calibration = calibrate_with_budget(&req, 0).expect("calibrates");
        assert_eq!(calibration.fit, None);
        assert_eq!(calibration.extremal_index, 1.0);
        let naive = critical_value(30, 60, 1e-3, KsOptions::default()).expect("valid");
        assert_eq!(calibration.d_scaled, naive.d_scaled);
    }

    #[test]
    fn threshold_is_the_smallest_that_meets_the_target() {
        let req = request(20, 40, 2_000);
        let plan = Plan::new(&req, 400_000);
        let levels = plan.simulate(&req).expect("simulates");
        let model = ExtremalModel::fit(levels, &req).expect("fits");
        assert!(model.fit.is_some(), "the budget should allow a fit");
        let point = solve(&req, &model).expect("solves");
        assert!(point.meets(&req));

        let below = point.d_scaled - gcd(20, 40);
        let (pvalue, _, method) =
            p_value_scaled(20, 40, below, KsOptions::default()).expect("valid");
        let theta = model.theta(below, pvalue);
        let lower = Point {
            d_scaled: below,
            pvalue,
            theta,
            method,
        };
        assert!(!lower.meets(&req), "{lower:?} also meets the target");
    }

    #[test]
    fn same_seed_same_result() {
        let req = request(20, 40, 5_000);
        let first = calibrate_with_budget(&req, 200_000).expect("calibrates");
        let again = calibrate_with_budget(&req, 200_000).expect("calibrates");
        assert_eq!(first, again);
        assert!(first.expected_run_length >= 5_000.0);

        let other = CalibrationRequest { seed: 6, ..req };
        let other = calibrate_with_budget(&other, 200_000).expect("calibrates");
        assert_ne!(
            first.fit, other.fit,
            "a different seed simulates other streams"
        );
    }

    #[test]
    fn calibration_round_trips_through_json() {
        let calibration =
            calibrate_with_budget(&request(20, 40, 5_000), 50_000).expect("calibrates");
        let json = serde_json::to_string(&calibration).expect("serializes");
        let back: Calibration = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, calibration);
    }

    #[test]
    fn cache_returns_what_it_holds() {
        let req = request(20, 40, 5_000);
        let calibration = calibrate_with_budget(&req, 50_000).expect("calibrates");
        let mut cache = CalibrationCache::new();
        assert!(cache.is_empty());
        cache.insert(calibration.clone());
        // A cached request is answered without simulating again (a fresh
        // calibration would use the full budget and differ from this one).
        assert_eq!(cache.get_or_calibrate(&req), Ok(&calibration));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&CalibrationRequest { seed: 9, ..req }), None);
    }
}
