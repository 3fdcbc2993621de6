//! The two-sample Kolmogorov–Smirnov test, computed as
//! `scipy.stats.ks_2samp` 1.17 computes it: the same statistic (to the bit),
//! the same choice between the exact and the asymptotic p-value, the same
//! fallback when scipy's exact computation fails, and p-values that agree
//! with scipy's to 1e-10 (checked against `tests/vectors/ks.json`).
//!
//! The sliding window knows its statistic as an exact integer n·m·D, so
//! besides [`ks_2samp`] this module offers [`p_value_scaled`] and decision
//! thresholds ([`critical_value`], cached by [`CriticalValueCache`]).
//!
//! How scipy reaches a p-value, and so how this module does:
//! * `auto` is exact when neither sample exceeds 10 000 values; `exact` is
//!   honoured unless lcm(n, m) would overflow an i32.
//! * Exact two-sided: equal sizes use an alternating sum in Horner form;
//!   unequal sizes run Viehmann's recursion for the share of lattice paths
//!   that leave the band |x/m − y/n| < D. Here the recursion runs over
//!   anti-diagonals, whose cells are independent and vectorise, but every
//!   cell is the same floating-point expression as in scipy, so the result
//!   is bit-identical.
//! * Exact one-sided: equal sizes use a product; unequal sizes count paths
//!   with binomial coefficients in f64, which overflow for moderately large
//!   samples. scipy then warns and falls back to the asymptotic formula; this
//!   module reproduces that by emulating numpy's floating-point error checks.
//! * Asymptotic: two-sided `kstwo.sf(D, round(nm/(n+m)))` (see
//!   [`super::kolmogorov`]), one-sided Hodges' approximation.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::kolmogorov::kstwo_sf;
use super::{StatsError, check_sample};

/// Sizes up to which `Method::Auto` computes the exact p-value (scipy's
/// `MAX_AUTO_N`).
const MAX_AUTO_N: u64 = 10_000;

/// Which alternative hypothesis the p-value is for, as scipy's `alternative`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Alternative {
    /// The distributions differ; the statistic is max |F_x − F_y|.
    #[default]
    TwoSided,
    /// F_x < F_y somewhere (x tends to larger values); the statistic is
    /// D⁻ = max(F_y − F_x).
    Less,
    /// F_x > F_y somewhere (x tends to smaller values); the statistic is
    /// D⁺ = max(F_x − F_y).
    Greater,
}

/// The p-value method requested, as scipy's `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Exact when both samples have at most 10 000 values, else asymptotic.
    #[default]
    Auto,
    /// Exact unless lcm(n, m) would overflow an i32 or the computation
    /// fails; then asymptotic, as scipy does (with a warning there).
    Exact,
    /// The asymptotic distribution.
    Asymp,
}

/// The p-value method actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodUsed {
    /// The exact distribution of D under the null hypothesis.
    Exact,
    /// The asymptotic approximation.
    Asymp,
}

/// Options of the test; the default is scipy's (two-sided, auto).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct KsOptions {
    /// The alternative hypothesis.
    pub alternative: Alternative,
    /// The requested p-value method.
    pub method: Method,
}

/// The outcome of [`ks_2samp`], field for field as scipy's `KstestResult`
/// plus the exact one-sided statistics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KsResult {
    /// The statistic exactly as scipy returns it: h/lcm(n, m) when an exact
    /// p-value was attempted, otherwise the raw difference of the two
    /// empirical CDFs as floats (which may differ from h/lcm in the last bit).
    pub statistic: f64,
    /// The p-value; NaN only where scipy's is NaN (asymptotic two-sided with
    /// both samples of size 1).
    pub pvalue: f64,
    /// The method actually used.
    pub method: MethodUsed,
    /// +1 when F_x exceeds F_y at the statistic's location, −1 otherwise.
    pub statistic_sign: i8,
    /// The observation (from either sample) where the statistic is attained.
    pub statistic_location: f64,
    /// n·m·D⁺ with D⁺ = max(F_x − F_y), exact.
    pub d_plus_scaled: u64,
    /// n·m·D⁻ with D⁻ = max(F_y − F_x), exact.
    pub d_minus_scaled: u64,
}

/// Two-sided test with the automatic method, as `scipy.stats.ks_2samp(x, y)`.
///
/// Errors if either sample is empty or holds NaN or ±∞ (naming the sample as
/// `"x"` or `"y"`).
pub fn ks_2samp(x: &[f64], y: &[f64]) -> Result<KsResult, StatsError> {
    ks_2samp_with(x, y, KsOptions::default())
}

/// The test with explicit options, as
/// `scipy.stats.ks_2samp(x, y, alternative=…, method=…)`.
pub fn ks_2samp_with(x: &[f64], y: &[f64], options: KsOptions) -> Result<KsResult, StatsError> {
    check_sample("x", x)?;
    check_sample("y", y)?;
    let extremes = Extremes::of(x, y);
    let chosen = extremes.choose(options.alternative);
    let request = Request {
        n1: x.len() as u64,
        n2: y.len() as u64,
        d_scaled: chosen.d_scaled,
        d_raw: chosen.d,
        options,
    };
    let (pvalue, statistic, method) = request.p_value();
    Ok(KsResult {
        statistic,
        pvalue,
        method,
        statistic_sign: chosen.sign,
        statistic_location: chosen.location,
        d_plus_scaled: extremes.d_plus_scaled,
        d_minus_scaled: extremes.d_minus_scaled,
    })
}

/// P-value for a statistic given exactly as `d_scaled` = n·m·D, with the
/// statistic as scipy would report it and the method used.
///
/// This is what the sliding window calls: it knows n·m·D exactly. The
/// result equals [`ks_2samp_with`]'s for any samples of sizes n and m with
/// this statistic, except on the asymptotic path, where scipy uses the raw
/// float difference of the CDFs and this uses d_scaled/(n·m) correctly
/// rounded (the p-values then differ by a relative ~1e-15).
///
/// Errors if n or m is 0, n·m overflows, d_scaled > n·m, or d_scaled is not a
/// multiple of gcd(n, m) (no samples of these sizes have that statistic).
pub fn p_value_scaled(
    n: u64,
    m: u64,
    d_scaled: u64,
    options: KsOptions,
) -> Result<(f64, f64, MethodUsed), StatsError> {
    let nm = checked_sizes(n, m)?;
    if d_scaled > nm {
        return Err(invalid(
            "d_scaled",
            format!("{d_scaled} exceeds n·m = {nm}"),
        ));
    }
    let g = gcd(n, m);
    if !d_scaled.is_multiple_of(g) {
        let reason = format!("{d_scaled} is not a multiple of gcd(n, m) = {g}");
        return Err(invalid("d_scaled", reason));
    }
    let request = Request {
        n1: n,
        n2: m,
        d_scaled,
        d_raw: d_scaled as f64 / nm as f64,
        options,
    };
    Ok(request.p_value())
}

fn checked_sizes(n: u64, m: u64) -> Result<u64, StatsError> {
    if n == 0 || m == 0 {
        let name = if n == 0 { "n" } else { "m" };
        return Err(invalid(name, "a sample size must be at least 1".into()));
    }
    n.checked_mul(m)
        .ok_or_else(|| invalid("n", format!("n·m = {n}·{m} overflows u64")))
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

/// Where the difference of the empirical CDFs is largest and smallest, found
/// as scipy finds them (first index in `sorted(x) ++ sorted(y)`, comparing
/// the same float differences), plus the exact extremes as integers.
struct Extremes {
    max_diff: f64,
    max_location: f64,
    min_diff: f64,
    min_location: f64,
    d_plus_scaled: u64,
    d_minus_scaled: u64,
}

/// The one statistic scipy reports for an alternative.
struct Chosen {
    d: f64,
    sign: i8,
    location: f64,
    d_scaled: u64,
}

impl Extremes {
    fn of(x: &[f64], y: &[f64]) -> Self {
        let (xs, ys) = (sorted(x), sorted(y));
        let (n1, n2) = (xs.len(), ys.len());
        let mut e = Extremes {
            max_diff: f64::NEG_INFINITY,
            max_location: f64::NAN,
            min_diff: f64::INFINITY,
            min_location: f64::NAN,
            d_plus_scaled: 0,
            d_minus_scaled: 0,
        };
        let (mut d_plus, mut d_minus) = (0i128, 0i128);
        for &v in xs.iter().chain(&ys) {
            let c1 = xs.partition_point(|&a| a <= v);
            let c2 = ys.partition_point(|&a| a <= v);
            // numpy: searchsorted(...) / n, then the difference, in f64.
            let diff = c1 as f64 / n1 as f64 - c2 as f64 / n2 as f64;
            if diff > e.max_diff {
                (e.max_diff, e.max_location) = (diff, v);
            }
            if diff < e.min_diff {
                (e.min_diff, e.min_location) = (diff, v);
            }
            let scaled = c1 as i128 * n2 as i128 - c2 as i128 * n1 as i128;
            d_plus = d_plus.max(scaled);
            d_minus = d_minus.max(-scaled);
        }
        // Both lie in [0, n·m], which the caller's sizes keep within u64.
        e.d_plus_scaled = u64::try_from(d_plus).unwrap_or(u64::MAX);
        e.d_minus_scaled = u64::try_from(d_minus).unwrap_or(u64::MAX);
        e
    }

    fn choose(&self, alternative: Alternative) -> Chosen {
        // scipy: minS = np.clip(-cddiffs[argmin], 0, 1), which keeps −0.0.
        let neg = -self.min_diff;
        let min_s = if neg < 0.0 { 0.0 } else { neg.min(1.0) };
        let max_s = self.max_diff;
        let use_min = match alternative {
            Alternative::Less => true,
            Alternative::TwoSided => min_s > max_s,
            Alternative::Greater => false,
        };
        if use_min {
            Chosen {
                d: min_s,
                sign: -1,
                location: self.min_location,
                d_scaled: self.d_minus_scaled,
            }
        } else {
            Chosen {
                d: max_s,
                sign: 1,
                location: self.max_location,
                d_scaled: self.d_plus_scaled,
            }
        }
    }
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    // Inputs are finite; total_cmp only decides −0.0 against 0.0, which
    // scipy's sort leaves unspecified too.
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// A p-value request in the form scipy's `ks_2samp` reaches its p-value code.
struct Request {
    n1: u64,
    n2: u64,
    /// n1·n2·D, exact.
    d_scaled: u64,
    /// The statistic as a float, as the asymptotic path receives it.
    d_raw: f64,
    options: KsOptions,
}

impl Request {
    /// (p-value, statistic as reported, method used).
    fn p_value(&self) -> (f64, f64, MethodUsed) {
        let (n1, n2) = (self.n1, self.n2);
        let g = gcd(n1, n2);
        let (n1g, n2g) = (n1 / g, n2 / g);
        let try_exact = match self.options.method {
            Method::Auto => n1.max(n2) <= MAX_AUTO_N,
            Method::Exact => (n1g as f64) < i32::MAX as f64 / n2g as f64,
            Method::Asymp => false,
        };
        let alternative = self.options.alternative;
        if !try_exact {
            return (
                asymp(n1, n2, self.d_raw, alternative),
                self.d_raw,
                MethodUsed::Asymp,
            );
        }
        // scipy rounds d·lcm to the integer h and reports h/lcm from here on,
        // also when the exact attempt fails.
        let h = self.d_scaled / g;
        let d = h as f64 / (n1g * n2) as f64;
        match exact::p_value(n1, n2, g, h, alternative) {
            Some(p) => (clip01(p), d, MethodUsed::Exact),
            None => (asymp(n1, n2, d, alternative), d, MethodUsed::Asymp),
        }
    }
}

fn clip01(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

/// The asymptotic p-value: two-sided `kstwo.sf(d, round(en))`, one-sided
/// Hodges' eq. 5.3, with m the larger size.
fn asymp(n1: u64, n2: u64, d: f64, alternative: Alternative) -> f64 {
    let (m, n) = if n1 >= n2 {
        (n1 as f64, n2 as f64)
    } else {
        (n2 as f64, n1 as f64)
    };
    let en = m * n / (m + n);
    let p = match alternative {
        // np.round rounds half to even: en = 0.5 (n = m = 1) gives kstwo with
        // n = 0, whose p-value is NaN in scipy as here.
        Alternative::TwoSided => kstwo_sf(d, en.round_ties_even() as u64),
        Alternative::Less | Alternative::Greater => {
            let z = en.sqrt() * d;
            let expt =
                -2.0 * z.powf(2.0) - 2.0 * z * (m + 2.0 * n) / (m * n * (m + n)).sqrt() / 3.0;
            expt.exp()
        }
    };
    clip01(p)
}

/// scipy's `_attempt_exact_2kssamp` and the path counters it calls.
mod exact {
    use super::Alternative;
    use crate::stats::kolmogorov::special::binom;

    /// The exact p-value for D = h/lcm(n1, n2), or None where scipy's exact
    /// attempt fails (and it falls back to the asymptotic p-value).
    pub(super) fn p_value(
        n1: u64,
        n2: u64,
        g: u64,
        h: u64,
        alternative: Alternative,
    ) -> Option<f64> {
        if h == 0 {
            return Some(1.0);
        }
        let prob = match (alternative, n1 == n2) {
            (Alternative::TwoSided, true) => prob_outside_square(n1, h),
            (Alternative::TwoSided, false) => outer_prob_inside(n1, n2, g, h),
            (_, true) => one_sided_equal(n1, h),
            (_, false) => one_sided_unequal(n1, n2, g, h)?,
        };
        (0.0..=1.0).contains(&prob).then_some(prob)
    }

    /// P(D_{n,n} ≥ h/n) = 2·Σ_k (−1)^(k+1) C(2n, n − kh)/C(2n, n), summed in
    /// Horner form 2·A₀(1 − A₁(1 − A₂(…))) to avoid cancellation.
    fn prob_outside_square(n: u64, h: u64) -> f64 {
        let (n, h) = (n as i64, h as i64);
        let mut p = 0.0;
        for k in (0..=n / h).rev() {
            let mut p1 = 1.0;
            for j in 0..h {
                p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
            }
            p = p1 * (1.0 - p);
        }
        2.0 * p
    }

    /// One-sided, equal sizes: C(2n, n − h)/C(2n, n) as a product.
    fn one_sided_equal(n: u64, h: u64) -> f64 {
        (0..h).fold(1.0, |p, j| p * ((n - j) as f64 / ((n + j) as f64 + 1.0)))
    }

    /// One-sided, unequal sizes: paths crossing the line, over all paths.
    /// None where scipy's computation overflows.
    fn one_sided_unequal(n1: u64, n2: u64, g: u64, h: u64) -> Option<f64> {
        // scipy computes the path count first and the total after, failing
        // on overflow in either; testing the total first only saves time.
        let total = binom((n1 + n2) as f64, n1 as f64);
        if total.is_infinite() {
            return None;
        }
        let num_paths = count_paths_outside(n1, n2, g, h)?;
        if num_paths > total {
            return None;
        }
        Some(num_paths / total)
    }

    /// numpy scalar arithmetic under `np.errstate(over="raise",
    /// invalid="raise")`: None where numpy would raise FloatingPointError.
    fn np_checked(a: f64, b: f64, result: f64) -> Option<f64> {
        let overflow = result.is_infinite() && a.is_finite() && b.is_finite();
        let invalid = result.is_nan() && !a.is_nan() && !b.is_nan();
        (!overflow && !invalid).then_some(result)
    }

    /// scipy's `_count_paths_outside_method` (Hodges): the number of lattice
    /// paths from (0, 0) to (m, n) that reach m·y ≤ n·x − h·g, in f64 with
    /// scipy's binomials, so it overflows (None) exactly where scipy's does.
    fn count_paths_outside(n1: u64, n2: u64, g: u64, h: u64) -> Option<f64> {
        let (m, n) = if n1 < n2 {
            (n2 as i64, n1 as i64)
        } else {
            (n1 as i64, n2 as i64)
        };
        let (mg, ng, h) = (m / g as i64, n / g as i64, h as i64);
        // The x where the line crosses each row y = j, rounded up.
        let lxj = n + (mg - h).div_euclid(mg);
        if lxj <= 0 {
            return Some(binom((m + n) as f64, n as f64));
        }
        let xj: Vec<i64> = (0..lxj)
            .map(|j| (h + mg * j + ng - 1).div_euclid(ng))
            .collect();
        let first_passages = first_passage_counts(&xj)?;
        let mut num_paths = 0.0;
        for (j, (&x, &b)) in (0i64..).zip(xj.iter().zip(&first_passages)) {
            let extensions = binom(((m - x) + (n - j)) as f64, (n - j) as f64);
            let term = np_checked(b, extensions, b * extensions)?;
            num_paths = np_checked(num_paths, term, num_paths + term)?;
        }
        Some(num_paths)
    }

    /// B[j]: paths from (0, 0) to (xj[j], j) that touch the line there first.
    fn first_passage_counts(xj: &[i64]) -> Option<Vec<f64>> {
        let mut b = vec![0.0; xj.len()];
        b[0] = 1.0;
        for j in 1..xj.len() {
            let mut bj = binom((xj[j] + j as i64) as f64, j as f64);
            for i in 0..j {
                let steps = (j - i) as i64;
                let bin = binom((xj[j] - xj[i] + steps) as f64, steps as f64);
                let through = np_checked(bin, b[i], bin * b[i])?;
                bj = np_checked(bj, through, bj - through)?;
            }
            b[j] = bj;
        }
        Some(b)
    }

    /// Column windows of scipy's `_compute_outer_prob_inside_method`: in
    /// column i (0 ≤ i ≤ m) the cells lo[i] ≤ j < hi[i] lie strictly inside
    /// the band |ng·i − mg·j| < h.
    struct Band {
        lo: Vec<usize>,
        hi: Vec<usize>,
    }

    impl Band {
        /// None when some column has no inside cell (scipy then returns 1).
        fn new(m: i64, n: i64, mg: i64, ng: i64, h: i64) -> Option<Band> {
            let ceil_div = |a: i64, b: i64| -((-a).div_euclid(b));
            let mut lo = vec![0usize];
            let mut hi = vec![ceil_div(h, mg).min(n + 1) as usize];
            for i in 1..=m {
                let minj = ((ng * i - h).div_euclid(mg) + 1).max(0).min(n);
                let maxj = ceil_div(ng * i + h, mg).min(n + 1);
                if maxj <= minj {
                    return None;
                }
                lo.push(minj as usize);
                hi.push(maxj as usize);
            }
            Some(Band { lo, hi })
        }
    }

    /// The share of lattice paths from (0, 0) to (m, n) that leave the band
    /// |x/m − y/n| < h/lcm (Viehmann's recursion for 1 − p, arXiv:2102.08037).
    ///
    /// A(i, j) = (A(i−1, j)·i + A(i, j−1)·j)/(i + j) inside the band, 1
    /// outside, 0 on the first column. scipy sweeps column by column, a chain
    /// of dependent divisions; the cells of one anti-diagonal i + j = s are
    /// independent, so this sweeps anti-diagonals instead, with the identical
    /// expression per cell.
    fn outer_prob_inside(n1: u64, n2: u64, g: u64, h: u64) -> f64 {
        let (m, n) = if n1 < n2 {
            (n2 as i64, n1 as i64)
        } else {
            (n1 as i64, n2 as i64)
        };
        let (mg, ng) = (m / g as i64, n / g as i64);
        match Band::new(m, n, mg, ng, h as i64) {
            Some(band) => sweep_anti_diagonals(&band, m as usize, n as usize),
            None => 1.0,
        }
    }

    fn sweep_anti_diagonals(band: &Band, m: usize, n: usize) -> f64 {
        let coef: Vec<f64> = (0..=m).map(|i| i as f64).collect();
        let mut prev = Diagonal::new(m, (0, 0));
        prev.values[0] = 0.0;
        prev.zeros = (0, 0);
        let mut next = Diagonal::new(m, EMPTY);
        let (mut first, mut last) = (0usize, 0usize);
        for s in 1..=(m + n) {
            // Cells (i, s − i) inside the band form the range first..=last.
            while last < m.min(s) && last + 1 + band.lo[last + 1] <= s {
                last += 1;
            }
            while first + band.hi[first] <= s {
                first += 1;
            }
            if first > last {
                // Every path leaves the band here; all later cells are 1.
                return 1.0;
            }
            next.retire_before(first);
            next.fill_from(&prev, &coef, s, (first, last));
            std::mem::swap(&mut prev, &mut next);
        }
        prev.values[m]
    }

    /// An empty inclusive range.
    const EMPTY: (usize, usize) = (1, 0);

    /// One anti-diagonal i + j = s, indexed by i: band cells hold A(i, s − i)
    /// inside `range`, every other entry holds 1.0 (outside the band), and
    /// `zeros` is a run of cells known to be exactly 0.
    ///
    /// For large D most of the band underflows to exact zeros, and a cell
    /// whose two inputs are exact zeros is an exact zero, so those cells are
    /// skipped: same result, a fraction of the work.
    struct Diagonal {
        values: Vec<f64>,
        range: (usize, usize),
        zeros: (usize, usize),
    }

    impl Diagonal {
        fn new(m: usize, range: (usize, usize)) -> Self {
            Self {
                values: vec![1.0; m + 1],
                range,
                zeros: EMPTY,
            }
        }

        /// This buffer last held diagonal s − 2; cells below `first` have
        /// left the band since and are outside again.
        fn retire_before(&mut self, first: usize) {
            let (a, b) = self.range;
            if a < first && a <= b {
                self.values[a..=b.min(first - 1)].fill(1.0);
            }
            self.zeros.0 = self.zeros.0.max(first);
        }

        /// Diagonal s from diagonal s − 1 (`prev`) over `range`.
        fn fill_from(&mut self, prev: &Diagonal, coef: &[f64], s: usize, range: (usize, usize)) {
            let (first, last) = range;
            if first == 0 {
                self.values[0] = 0.0;
            }
            let start = first.max(1);
            let skip = ((prev.zeros.0 + 1).max(start), prev.zeros.1.min(last));
            if skip.0 <= skip.1 {
                step_cells(&prev.values, &mut self.values, coef, s, (start, skip.0 - 1));
                self.zero_fill(skip);
                step_cells(&prev.values, &mut self.values, coef, s, (skip.1 + 1, last));
            } else {
                step_cells(&prev.values, &mut self.values, coef, s, (start, last));
            }
            self.range = range;
            self.zeros = zero_run(&self.values, range, skip);
        }

        /// Writes 0 over `skip` where this buffer does not hold 0 already.
        fn zero_fill(&mut self, skip: (usize, usize)) {
            let (za, zb) = self.zeros;
            if za > zb || zb < skip.0 || za > skip.1 {
                self.values[skip.0..=skip.1].fill(0.0);
                return;
            }
            if skip.0 < za {
                self.values[skip.0..za].fill(0.0);
            }
            if zb < skip.1 {
                self.values[zb + 1..=skip.1].fill(0.0);
            }
        }
    }

    /// The run of exact zeros in `range`: `seed` (known zeros) widened while
    /// its neighbours are 0, or if `seed` is empty the longest run found.
    fn zero_run(
        values: &[f64],
        (first, last): (usize, usize),
        seed: (usize, usize),
    ) -> (usize, usize) {
        if seed.0 <= seed.1 {
            let (mut a, mut b) = seed;
            while a > first && values[a - 1] == 0.0 {
                a -= 1;
            }
            while b < last && values[b + 1] == 0.0 {
                b += 1;
            }
            return (a, b);
        }
        longest_zero_run(values, first, last)
    }

    fn longest_zero_run(values: &[f64], first: usize, last: usize) -> (usize, usize) {
        let (mut best, mut start) = (EMPTY, None);
        for (i, &v) in (first..).zip(&values[first..=last]) {
            if v != 0.0 {
                start = None;
                continue;
            }
            let a = *start.get_or_insert(i);
            if best.0 > best.1 || i - a > best.1 - best.0 {
                best = (a, i);
            }
        }
        best
    }

    /// Cells a..=b (a ≥ 1) of diagonal s from diagonal s − 1.
    fn step_cells(prev: &[f64], next: &mut [f64], coef: &[f64], s: usize, (a, b): (usize, usize)) {
        if a > b {
            return;
        }
        let fs = s as f64;
        let cells = next[a..=b].iter_mut();
        let inputs = prev[a - 1..b].iter().zip(&prev[a..=b]).zip(&coef[a..=b]);
        for (cell, ((&left, &down), &i)) in cells.zip(inputs) {
            // scipy: (A[i-1, j]·i + A[i, j-1]·j) / (i + j), j = s − i.
            *cell = (left * i + down * (fs - i)) / fs;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// scipy's `_compute_outer_prob_inside_method` transcribed literally
        /// (column by column in one sliding buffer): the reference for the
        /// anti-diagonal sweep.
        fn scipy_column_sweep(n1: i64, n2: i64, g: i64, h: i64) -> f64 {
            let (m, n) = if n1 < n2 { (n2, n1) } else { (n1, n2) };
            let (mg, ng) = (m / g, n / g);
            let ceil_div = |a: i64, b: i64| -((-a).div_euclid(b));
            let (mut minj, mut maxj) = (0, ceil_div(h, mg).min(n + 1));
            let mut curlen = maxj - minj;
            let mut a = vec![1.0; (2 * maxj + 2).min(n + 1) as usize];
            a[..maxj as usize].fill(0.0);
            for i in 1..=m {
                let (lastminj, lastlen) = (minj, curlen);
                minj = ((ng * i - h).div_euclid(mg) + 1).max(0).min(n);
                maxj = ceil_div(ng * i + h, mg).min(n + 1);
                if maxj <= minj {
                    return 1.0;
                }
                let mut val = if minj == 0 { 0.0 } else { 1.0 };
                for jj in 0..(maxj - minj) {
                    let j = jj + minj;
                    let left = a[(jj + minj - lastminj) as usize];
                    val = (left * i as f64 + val * j as f64) / (i + j) as f64;
                    a[jj as usize] = val;
                }
                curlen = maxj - minj;
                if lastlen > curlen {
                    let end = ((maxj - minj + lastlen - curlen) as usize).min(a.len());
                    a[(maxj - minj) as usize..end].fill(1.0);
                }
            }
            a[(maxj - minj - 1) as usize]
        }

        #[test]
        fn anti_diagonal_sweep_is_bit_identical_to_scipys_column_sweep() {
            let sizes = [
                (2, 3),
                (5, 7),
                (12, 18),
                (30, 45),
                (64, 100),
                (101, 37),
                (250, 260),
                (900, 40),
            ];
            for (n1, n2) in sizes {
                let g = super::super::gcd(n1, n2);
                let lcm = n1 / g * n2;
                for h in (1..=lcm).step_by((lcm / 150).max(1) as usize).chain([lcm]) {
                    let ours = outer_prob_inside(n1, n2, g, h);
                    let scipy = scipy_column_sweep(n1 as i64, n2 as i64, g as i64, h as i64);
                    assert_eq!(
                        ours.to_bits(),
                        scipy.to_bits(),
                        "{n1}x{n2} h={h}: {ours:e} vs {scipy:e}"
                    );
                }
            }
        }
    }
}

/// A decision threshold for the KS statistic at level α.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CriticalValue {
    /// n·m·D* for the smallest D* on the lattice of multiples of
    /// 1/lcm(n, m) whose p-value is ≤ α, so that a caller compares integers:
    /// reject when n·m·D ≥ `d_scaled`. When no statistic reaches α (tiny
    /// samples) this is n·m + 1, which no statistic reaches.
    pub d_scaled: u64,
    /// D* as a float, as scipy would report it (above 1 when unreachable).
    pub d: f64,
    /// The p-value at D* (at D = 1 when unreachable).
    pub pvalue_at: f64,
    /// The method used for the p-value at D*.
    pub method: MethodUsed,
}

impl CriticalValue {
    /// Whether some statistic reaches the level at all.
    pub fn is_reachable(&self) -> bool {
        self.d <= 1.0
    }
}

/// How far below the bisection result to look for a smaller lattice point
/// that also reaches α, in case rounding makes the p-value locally
/// non-monotone.
const MONOTONE_SCAN: u64 = 2;

/// The critical value of the KS statistic for sizes n, m at level α
/// (0 < α < 1): the smallest lattice point D* = h/lcm(n, m) with p(D*) ≤ α.
///
/// The p-value is non-increasing in D in exact arithmetic (scipy's
/// rounding can make it wiggle by an ulp or two), so the boundary is
/// bracketed from the asymptotic critical value and bisected, and the few
/// lattice points just below are checked as well. That takes a few to ~30
/// evaluations of the requested p-value: about 0.2 s for exact p-values at
/// coprime n, m ≈ 10⁴ (lcm ≈ 10⁸), a few ms for smaller or commensurate
/// sizes. Cache the result with [`CriticalValueCache`].
pub fn critical_value(
    n: u64,
    m: u64,
    alpha: f64,
    options: KsOptions,
) -> Result<CriticalValue, StatsError> {
    let nm = checked_sizes(n, m)?;
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(invalid("alpha", format!("{alpha} is not in (0, 1)")));
    }
    let g = gcd(n, m);
    let lcm = nm / g;
    let eval = |h: u64| p_value_scaled(n, m, h * g, options);
    let (p_top, _, method_top) = eval(lcm)?;
    if p_top.is_nan() || p_top > alpha {
        let never = nm.saturating_add(1);
        let d = never as f64 / nm as f64;
        return Ok(CriticalValue {
            d_scaled: never,
            d,
            pvalue_at: p_top,
            method: method_top,
        });
    }
    let reaches = |h: u64| eval(h).map(|(p, _, _)| p <= alpha);
    let start = search_start(n, m, alpha, options, lcm)?;
    let h = smallest_reaching(start, lcm, &reaches)?;
    let (pvalue_at, d, method) = eval(h)?;
    Ok(CriticalValue {
        d_scaled: h * g,
        d,
        pvalue_at,
        method,
    })
}

/// Where the search for the critical value starts. The asymptotic p-value
/// costs microseconds, and near the boundary the exact p-value is roughly a
/// constant multiple of it: find the asymptotic boundary, measure that
/// multiple there with one exact evaluation, and find the asymptotic
/// boundary for the level rescaled by it. The exact p-value has irregular
/// fine structure on the lattice, so this lands within about lcm/(n+m)
/// points rather than exactly, but it saves a third of the costly exact
/// evaluations against starting from Kolmogorov's limit.
fn search_start(
    n: u64,
    m: u64,
    alpha: f64,
    options: KsOptions,
    lcm: u64,
) -> Result<u64, StatsError> {
    let kolmogorov = asymptotic_guess(n, m, alpha, options.alternative, lcm);
    if options.method == Method::Asymp {
        return Ok(kolmogorov);
    }
    let asymp = KsOptions {
        method: Method::Asymp,
        ..options
    };
    let g = gcd(n, m);
    let p_asymp = |h: u64| p_value_scaled(n, m, h * g, asymp).map(|(p, _, _)| p);
    let boundary =
        |level: f64| smallest_reaching(kolmogorov, lcm, &|h: u64| p_asymp(h).map(|p| p <= level));
    let first = boundary(alpha)?;
    let ratio = p_value_scaled(n, m, first * g, options)?.0 / p_asymp(first)?;
    if ratio.is_finite() && ratio > 0.0 {
        boundary(alpha / ratio)
    } else {
        Ok(first)
    }
}

/// The smallest h in [1, lcm] with `reaches(h)`, given that `reaches(lcm)`
/// holds, `reaches(0)` does not, and `reaches` is monotone up to rounding:
/// brackets from `guess`, bisects, then checks the few lattice points below
/// so that a rounding wiggle at the boundary cannot hide a smaller one.
fn smallest_reaching(
    guess: u64,
    lcm: u64,
    reaches: &impl Fn(u64) -> Result<bool, StatsError>,
) -> Result<u64, StatsError> {
    let (lo, hi) = bracket(guess, lcm, reaches)?;
    let mut h = bisect(lo, hi, reaches)?;
    let mut candidate = h;
    while candidate > 1 && h - candidate < MONOTONE_SCAN {
        candidate -= 1;
        if reaches(candidate)? {
            h = candidate;
        }
    }
    Ok(h)
}

/// Kolmogorov's limit: D* ≈ c(α)·√((n+m)/(nm)) with c = √(−ln(α/2)/2)
/// two-sided and √(−ln α/2) one-sided, as a lattice index in [1, lcm].
fn asymptotic_guess(n: u64, m: u64, alpha: f64, alternative: Alternative, lcm: u64) -> u64 {
    let tail = if alternative == Alternative::TwoSided {
        alpha / 2.0
    } else {
        alpha
    };
    let (nf, mf) = (n as f64, m as f64);
    let d = (-tail.ln() / 2.0).sqrt() * ((nf + mf) / (nf * mf)).sqrt();
    ((d * lcm as f64).round() as u64).clamp(1, lcm)
}

/// Gallops from `guess` to (lo, hi) with lo failing and hi reaching α;
/// lo = 0 always fails (p = 1 > α) and hi = lcm reaches it.
fn bracket(
    guess: u64,
    lcm: u64,
    reaches: &impl Fn(u64) -> Result<bool, StatsError>,
) -> Result<(u64, u64), StatsError> {
    let (mut lo, mut hi) = (0, lcm);
    let mut step = 1;
    if reaches(guess)? {
        hi = guess;
        while hi - lo > 1 {
            let candidate = hi.saturating_sub(step).max(lo + 1);
            if !reaches(candidate)? {
                lo = candidate;
                break;
            }
            (hi, step) = (candidate, step * 2);
        }
    } else {
        lo = guess;
        while hi - lo > 1 {
            let candidate = (lo + step).min(hi - 1);
            if reaches(candidate)? {
                hi = candidate;
                break;
            }
            (lo, step) = (candidate, step * 2);
        }
    }
    Ok((lo, hi))
}

fn bisect(
    mut lo: u64,
    mut hi: u64,
    reaches: &impl Fn(u64) -> Result<bool, StatsError>,
) -> Result<u64, StatsError> {
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// Critical values already computed, keyed by sizes, α and options, so a
/// monitor computes each once. Entries are few (one per distinct window and
/// baseline size and level) and are never evicted.
#[derive(Debug, Clone, Default)]
pub struct CriticalValueCache {
    entries: HashMap<CacheKey, CriticalValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CacheKey {
    n: u64,
    m: u64,
    alpha_bits: u64,
    options: KsOptions,
}

impl CriticalValueCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The critical value for (n, m, α, options), computed on first use.
    /// Errors are returned, not cached.
    pub fn get(
        &mut self,
        n: u64,
        m: u64,
        alpha: f64,
        options: KsOptions,
    ) -> Result<CriticalValue, StatsError> {
        // The p-value is symmetric in the two sizes.
        let key = CacheKey {
            n: n.min(m),
            m: n.max(m),
            alpha_bits: alpha.to_bits(),
            options,
        };
        if let Some(found) = self.entries.get(&key) {
            return Ok(*found);
        }
        let value = critical_value(key.n, key.m, alpha, options)?;
        self.entries.insert(key, value);
        Ok(value)
    }

    /// Number of cached critical values.
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
    use proptest::prelude::*;

    const TWO_SIDED: KsOptions = KsOptions {
        alternative: Alternative::TwoSided,
        method: Method::Auto,
    };

    fn all_options() -> Vec<KsOptions> {
        let alternatives = [
            Alternative::TwoSided,
            Alternative::Less,
            Alternative::Greater,
        ];
        let methods = [Method::Auto, Method::Exact, Method::Asymp];
        alternatives
            .iter()
            .flat_map(|&alternative| {
                methods.iter().map(move |&method| KsOptions {
                    alternative,
                    method,
                })
            })
            .collect()
    }

    #[test]
    fn non_finite_values_are_rejected_naming_the_sample() {
        let err = ks_2samp(&[1.0, f64::NAN], &[2.0]).unwrap_err();
        assert!(
            matches!(err, StatsError::NonFinite { sample: "x", index: 1, value } if value.is_nan())
        );
        let err = ks_2samp(&[1.0], &[2.0, 3.0, f64::NEG_INFINITY]).unwrap_err();
        assert_eq!(
            err,
            StatsError::NonFinite {
                sample: "y",
                index: 2,
                value: f64::NEG_INFINITY
            }
        );
        assert!(err.to_string().contains("the y sample"), "{err}");
    }

    #[test]
    fn empty_samples_are_rejected() {
        assert_eq!(
            ks_2samp(&[], &[1.0]).unwrap_err(),
            StatsError::EmptySample { sample: "x" }
        );
        assert_eq!(
            ks_2samp(&[1.0], &[]).unwrap_err(),
            StatsError::EmptySample { sample: "y" }
        );
    }

    #[test]
    fn scaled_statistics_off_the_lattice_are_rejected() {
        // gcd(4, 6) = 2: n·m·D is always even.
        assert!(p_value_scaled(4, 6, 3, TWO_SIDED).is_err());
        assert!(p_value_scaled(4, 6, 26, TWO_SIDED).is_err());
        assert!(p_value_scaled(0, 6, 0, TWO_SIDED).is_err());
        assert_eq!(p_value_scaled(4, 6, 0, TWO_SIDED).unwrap().0, 1.0);
    }

    #[test]
    fn scaled_p_value_matches_the_sample_test() {
        let x = [0.1, 0.4, 0.45, 0.9, 1.3, 2.0, 2.2];
        let y = [0.5, 0.7, 1.1, 1.9, 2.5, 2.6, 3.0, 3.3, 4.1];
        for options in all_options() {
            let r = ks_2samp_with(&x, &y, options).unwrap();
            let d_scaled = match options.alternative {
                Alternative::Less => r.d_minus_scaled,
                Alternative::Greater => r.d_plus_scaled,
                Alternative::TwoSided => r.d_plus_scaled.max(r.d_minus_scaled),
            };
            let (p, d, method) = p_value_scaled(7, 9, d_scaled, options).unwrap();
            assert_eq!(
                (p, d, method),
                (r.pvalue, r.statistic, r.method),
                "{options:?}"
            );
        }
    }

    /// The critical-value search relies on p being non-increasing in D; check
    /// it on every lattice point for sizes where that is cheap, including
    /// the one-sided paths that fall back to the asymptotic formula.
    #[test]
    fn p_value_is_non_increasing_in_d() {
        for &(n, m) in &[
            (1, 1),
            (1, 5),
            (3, 3),
            (7, 5),
            (12, 18),
            (25, 40),
            (60, 61),
            (520, 530),
        ] {
            let g = gcd(n, m);
            let lcm = n / g * m;
            let step = (lcm / 400).max(1);
            for options in all_options() {
                // scipy's only NaN: kstwo with round(nm/(n+m)) = round(0.5) = 0.
                let nan_expected = (n, m) == (1, 1)
                    && options.alternative == Alternative::TwoSided
                    && options.method == Method::Asymp;
                let mut last = f64::INFINITY;
                for h in (0..=lcm).step_by(step as usize) {
                    let (p, _, _) = p_value_scaled(n, m, h * g, options).unwrap();
                    assert_eq!(p.is_nan(), nan_expected, "{n}x{m} {options:?} h={h}: {p}");
                    assert!(
                        nan_expected || p <= last,
                        "{n}x{m} {options:?} h={h}: {p} > {last}"
                    );
                    last = p;
                }
            }
        }
    }

    #[test]
    fn critical_value_is_the_smallest_lattice_point_reaching_alpha() {
        let cases = [
            (10, 12, 0.05, TWO_SIDED),
            (50, 50, 0.01, TWO_SIDED),
            (37, 91, 0.05, TWO_SIDED),
            (
                300,
                200,
                0.001,
                KsOptions {
                    alternative: Alternative::TwoSided,
                    method: Method::Asymp,
                },
            ),
            (
                100,
                130,
                0.05,
                KsOptions {
                    alternative: Alternative::Greater,
                    method: Method::Auto,
                },
            ),
            (
                64,
                64,
                0.05,
                KsOptions {
                    alternative: Alternative::Less,
                    method: Method::Exact,
                },
            ),
            (1000, 1500, 0.05, TWO_SIDED),
        ];
        for (n, m, alpha, options) in cases {
            let cv = critical_value(n, m, alpha, options).unwrap();
            let g = gcd(n, m);
            assert!(
                cv.is_reachable() && cv.d_scaled.is_multiple_of(g),
                "{n}x{m}: {cv:?}"
            );
            let (p_at, d, method) = p_value_scaled(n, m, cv.d_scaled, options).unwrap();
            assert_eq!((p_at, d, method), (cv.pvalue_at, cv.d, cv.method));
            assert!(p_at <= alpha, "{n}x{m}: p(D*) = {p_at} > {alpha}");
            let (p_below, _, _) = p_value_scaled(n, m, cv.d_scaled - g, options).unwrap();
            assert!(
                p_below > alpha,
                "{n}x{m}: one lattice step below D* still has p = {p_below}"
            );
        }
    }

    #[test]
    fn unreachable_level_is_reported_as_never() {
        // n = m = 1: D is 0 or 1 and p(1) = 1.
        let cv = critical_value(1, 1, 0.05, TWO_SIDED).unwrap();
        assert_eq!(cv.d_scaled, 2);
        assert!(!cv.is_reachable());
        assert_eq!(cv.pvalue_at, 1.0);
        assert!(critical_value(5, 5, 0.0, TWO_SIDED).is_err());
        assert!(critical_value(5, 5, f64::NAN, TWO_SIDED).is_err());
    }

    #[test]
    fn cache_returns_what_it_computed() {
        let mut cache = CriticalValueCache::new();
        let first = cache.get(40, 70, 0.05, TWO_SIDED).unwrap();
        assert_eq!(first, critical_value(40, 70, 0.05, TWO_SIDED).unwrap());
        assert_eq!(cache.get(40, 70, 0.05, TWO_SIDED).unwrap(), first);
        assert_eq!(cache.get(70, 40, 0.05, TWO_SIDED).unwrap(), first);
        assert_eq!(cache.len(), 1);
        let other = cache.get(40, 70, 0.01, TWO_SIDED).unwrap();
        assert!(other.d_scaled > first.d_scaled);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(0, 70, 0.05, TWO_SIDED).is_err());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn options_serialise_with_scipy_names() {
        let options = KsOptions {
            alternative: Alternative::TwoSided,
            method: Method::Asymp,
        };
        let json = serde_json::to_string(&options).unwrap();
        assert_eq!(json, r#"{"alternative":"two-sided","method":"asymp"}"#);
        let back: KsOptions = serde_json::from_str(r#"{"alternative":"less"}"#).unwrap();
        assert_eq!(
            back,
            KsOptions {
                alternative: Alternative::Less,
                method: Method::Auto
            }
        );
    }

    fn sample() -> impl Strategy<Value = Vec<f64>> {
        // Quarter steps: plenty of ties and exactly representable values.
        proptest::collection::vec((-40i32..40).prop_map(|v| f64::from(v) / 4.0), 1..60)
    }

    proptest! {
        #[test]
        fn statistic_lies_in_unit_interval(x in sample(), y in sample()) {
            for options in all_options() {
                let r = ks_2samp_with(&x, &y, options).unwrap();
                prop_assert!((0.0..=1.0).contains(&r.statistic), "{options:?}: {}", r.statistic);
                prop_assert!(r.pvalue.is_nan() || (0.0..=1.0).contains(&r.pvalue));
                let nm = (x.len() * y.len()) as u64;
                prop_assert!(r.d_plus_scaled <= nm && r.d_minus_scaled <= nm);
            }
        }

        #[test]
        fn two_sided_statistic_is_symmetric(x in sample(), y in sample()) {
            let xy = ks_2samp(&x, &y).unwrap();
            let yx = ks_2samp(&y, &x).unwrap();
            prop_assert_eq!(xy.statistic, yx.statistic);
            prop_assert_eq!(xy.pvalue.to_bits(), yx.pvalue.to_bits());
            prop_assert_eq!((xy.d_plus_scaled, xy.d_minus_scaled), (yx.d_minus_scaled, yx.d_plus_scaled));
        }
    }
}
