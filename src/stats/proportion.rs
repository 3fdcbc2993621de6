//! One-sided tests that a windowed accuracy fell below a reference accuracy.
//!
//! A classification model's window holds `k` correct predictions out of `n`
//! labelled events; the reference accuracy `p0` comes from the baseline,
//! either as a known value or estimated from `n0` reference events. Two tests
//! answer "is the window's accuracy lower?":
//!
//! - the exact binomial lower tail P(X ≤ k | n, p0), which is
//!   `scipy.stats.binomtest(k, n, p0, alternative='less').pvalue`;
//! - the pooled two-proportion z-test, as
//!   `statsmodels.stats.proportion.proportions_ztest([k, k0], [n, n0],
//!   alternative='smaller')`.
//!
//! [`accuracy_drop_test`] picks one of them for the monitor.
//!
//! The binomial tail is our own: statrs' binomial CDF goes through an
//! incomplete beta whose prefactor loses accuracy for large n (about 5e-4
//! off at n = 10^6). Here the first term of the tail comes from Loader's
//! saddle-point form of the binomial pmf, which keeps full relative precision
//! for any n, and the rest of the tail follows by the ratio of consecutive
//! terms.

use serde::{Deserialize, Serialize};

use super::StatsError;

/// A z statistic and its one-sided (`less`) p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZTest {
    /// z = (p̂ − p̂₀) / sqrt(p̄(1 − p̄)(1/n + 1/n₀)).
    pub statistic: f64,
    /// Φ(z), the probability of a z at least this low with no drop.
    pub pvalue: f64,
}

/// The pooled two-proportion z-test, one-sided: is the window's success
/// rate below the reference's?
///
/// With p̂ = k/n, p̂₀ = k₀/n₀ and the pooled rate p̄ = (k + k₀)/(n + n₀):
///
/// ```text
/// z = (p̂ − p̂₀) / sqrt(p̄ · (1 − p̄) · (1/n + 1/n₀)),   p-value = Φ(z)
/// ```
///
/// which is `proportions_ztest([k, k0], [n, n0], alternative='smaller')` in
/// statsmodels. When p̄ is 0 or 1 both samples are all failures or all
/// successes; statsmodels returns NaN there, we return z = 0 and p = 1
/// because identical, variance-free samples carry no evidence of a drop.
pub fn two_proportion_ztest_less(
    successes: u64,
    n: u64,
    reference_successes: u64,
    reference_n: u64,
) -> Result<ZTest, StatsError> {
    check_successes("successes", successes, n)?;
    check_successes("reference_successes", reference_successes, reference_n)?;
    Ok(pooled_ztest(
        successes as f64,
        n as f64,
        reference_successes as f64,
        reference_n as f64,
    ))
}

/// The binomial lower tail P(X ≤ k) for X ~ Binomial(n, p), which is
/// `scipy.stats.binomtest(k, n, p, alternative='less').pvalue`.
pub fn binomial_test_less(k: u64, n: u64, p: f64) -> Result<f64, StatsError> {
    check_successes("k", k, n)?;
    check_probability("p", p)?;
    Ok(binomial_cdf(k, n, p))
}

/// Which test [`accuracy_drop_test`] used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccuracyTestMethod {
    /// Exact binomial lower tail with the reference accuracy taken as known.
    ExactBinomial,
    /// Pooled two-proportion z-test.
    PooledZ,
}

/// The verdict of [`accuracy_drop_test`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccuracyDrop {
    /// The window's accuracy k/n for the binomial test (as scipy's
    /// `binomtest` reports it), the z statistic for the z-test.
    pub statistic: f64,
    /// One-sided p-value for "the window's accuracy is lower".
    pub pvalue: f64,
    /// Which test produced the p-value.
    pub method: AccuracyTestMethod,
    /// Whether p < α.
    pub rejects: bool,
}

/// Below this many expected successes or failures in the window the normal
/// approximation is poor, so the exact test is used (the usual np ≥ 10 rule).
const MIN_EXPECTED_FOR_Z: f64 = 10.0;

/// Tests whether a window's accuracy (`successes` of `n`) dropped below the
/// reference accuracy.
///
/// The rule:
/// - `reference_n` is `None` (the reference accuracy is known): the exact
///   binomial test, always; it is exact and costs O(√n) at worst.
/// - the window is small, n·p0 < 10 or n·(1 − p0) < 10: the exact binomial
///   test with p0 taken as known, since the z-test's normal approximation
///   is poor there.
/// - otherwise the pooled z-test with k₀ = p0·n₀ reference successes, which
///   accounts for the reference accuracy being an estimate.
///
/// Limitation: for a small window the binomial test ignores the sampling
/// error of an estimated p0. That is sound when n₀ is much larger than the
/// window (the usual case for a baseline) and anti-conservative otherwise.
pub fn accuracy_drop_test(
    successes: u64,
    n: u64,
    reference_accuracy: f64,
    reference_n: Option<u64>,
    alpha: f64,
) -> Result<AccuracyDrop, StatsError> {
    check_successes("successes", successes, n)?;
    check_probability("reference_accuracy", reference_accuracy)?;
    check_alpha(alpha)?;
    let expected_min = n as f64 * reference_accuracy.min(1.0 - reference_accuracy);

    let (statistic, pvalue, method) = match reference_n {
        Some(n0) if expected_min >= MIN_EXPECTED_FOR_Z => {
            if n0 == 0 {
                return Err(invalid("reference_n", "must be at least 1".into()));
            }
            let n0 = n0 as f64;
            let z = pooled_ztest(successes as f64, n as f64, reference_accuracy * n0, n0);
            (z.statistic, z.pvalue, AccuracyTestMethod::PooledZ)
        }
        _ => {
            let pvalue = binomial_cdf(successes, n, reference_accuracy);
            let accuracy = successes as f64 / n as f64;
            (accuracy, pvalue, AccuracyTestMethod::ExactBinomial)
        }
    };
    Ok(AccuracyDrop {
        statistic,
        pvalue,
        method,
        rejects: pvalue < alpha,
    })
}

/// The z-test on (possibly fractional) counts; arguments already checked.
fn pooled_ztest(k: f64, n: f64, k0: f64, n0: f64) -> ZTest {
    // Same order of operations as statsmodels, to stay comparable.
    let diff = k / n - k0 / n0;
    let pooled = (k + k0) / (n + n0);
    let variance = pooled * (1.0 - pooled) * (1.0 / n + 1.0 / n0);
    if variance <= 0.0 {
        return ZTest {
            statistic: 0.0,
            pvalue: 1.0,
        };
    }
    let statistic = diff / variance.sqrt();
    ZTest {
        statistic,
        pvalue: normal_cdf(statistic),
    }
}

/// Φ(z), the standard normal CDF, to about 1e-15 relative error.
///
/// statrs' `Normal::cdf` goes through an `erfc` that is only good to ~1e-10
/// relative beyond |z| ≈ 1, not enough to match scipy's `ndtr` to 1e-10.
/// Here: for |z| ≤ 2 the series Φ(z) = ½ + φ(z)·Σ z^(2n+1)/(2n+1)!!, whose
/// cancellation costs at most a factor 22 (Φ(−2) ≈ 0.023); beyond, Φ(−t) =
/// φ(t)·R(t) with Mills' ratio R from Laplace's continued fraction, which
/// converges quickly for t > 2. Upper values come from Φ(z) = 1 − Φ(−z),
/// which loses nothing as the result is then above ½.
fn normal_cdf(z: f64) -> f64 {
    if z.is_nan() || z.is_infinite() {
        // NaN stays NaN; Φ(±∞) is 0 or 1 without the 0·∞ of the tail form.
        return if z.is_nan() {
            z
        } else {
            f64::from(u8::from(z > 0.0))
        };
    }
    if z.abs() <= 2.0 {
        return 0.5 + normal_pdf(z) * odd_series(z);
    }
    let tail = normal_pdf(z) * mills_ratio(z.abs());
    if z < 0.0 { tail } else { 1.0 - tail }
}

fn normal_pdf(z: f64) -> f64 {
    const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
    INV_SQRT_2PI * (-0.5 * z * z).exp()
}

/// Σ z^(2n+1)/(2n+1)!!, for |z| ≤ 2 (the terms fall below ε after ~40).
fn odd_series(z: f64) -> f64 {
    let z2 = z * z;
    let mut term = z;
    let mut sum = z;
    for n in 1..200 {
        term *= z2 / f64::from(2 * n + 1);
        let next = sum + term;
        if next == sum {
            break;
        }
        sum = next;
    }
    sum
}

/// R(t) = 1/(t + 1/(t + 2/(t + 3/(t + …)))) for t > 2, evaluated by the
/// modified Lentz method.
fn mills_ratio(t: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut f = t;
    let mut c = t;
    let mut d = 0.0;
    // At t = 2 about 120 terms reach full precision; larger t needs fewer.
    for n in 1..1000 {
        let a = f64::from(n);
        d = t + a * d;
        d = if d.abs() < TINY { 1.0 / TINY } else { 1.0 / d };
        c = t + a / c;
        if c.abs() < TINY {
            c = TINY;
        }
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    1.0 / f
}

/// P(X ≤ k) for X ~ Binomial(n, p), p in [0, 1].
///
/// Sums whichever tail is cheaper and never small: the lower tail when
/// k < np (terms fall geometrically below k), otherwise 1 − P(X > k), whose
/// complement is at least ½ because k is then at or above the median.
///
/// Limitation: the sum runs until the terms stop mattering, up to about
/// 40·√(npq) terms when k is near the mean (a few thousand at n = 10⁶);
/// windows of 10⁹ events or more would make this slow.
fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if k >= n || p == 0.0 {
        return 1.0;
    }
    if p == 1.0 {
        return 0.0;
    }
    let q = 1.0 - p;
    if (k as f64) < n as f64 * p {
        lower_tail_sum(k, n, p, q)
    } else {
        1.0 - upper_tail_sum(k + 1, n, p, q)
    }
}

/// Σ_{j ≤ k} pmf(j), for k below the mean so the terms shrink as j falls.
fn lower_tail_sum(k: u64, n: u64, p: f64, q: f64) -> f64 {
    let mut term = binomial_pmf(k as f64, n as f64, p, q);
    let mut sum = term;
    for j in (1..=k).rev() {
        let ratio = (j as f64 * q) / ((n - j + 1) as f64 * p);
        term *= ratio;
        sum += term;
        if tail_is_negligible(term, sum, ratio) {
            break;
        }
    }
    sum
}

/// Σ_{j ≥ from} pmf(j), for `from` above the mean so the terms shrink.
fn upper_tail_sum(from: u64, n: u64, p: f64, q: f64) -> f64 {
    let mut term = binomial_pmf(from as f64, n as f64, p, q);
    let mut sum = term;
    for j in from..n {
        let ratio = ((n - j) as f64 * p) / ((j + 1) as f64 * q);
        term *= ratio;
        sum += term;
        if tail_is_negligible(term, sum, ratio) {
            break;
        }
    }
    sum
}

/// The ratios only shrink further along a tail, so what is left after
/// `term` is at most term·r/(1 − r); stop once that cannot change the sum.
fn tail_is_negligible(term: f64, sum: f64, ratio: f64) -> bool {
    term <= 1e-3 * f64::EPSILON * sum * (1.0 - ratio)
}

/// Binomial pmf by Loader's saddle-point expansion (Loader 2000, "Fast and
/// accurate computation of binomial probabilities", the form R's `dbinom`
/// uses): exp of a sum of small, accurately computed terms instead of a
/// difference of huge log-gamma values, so it keeps relative accuracy for
/// any n. Requires 0 < p < 1 and 0 ≤ x ≤ n.
fn binomial_pmf(x: f64, n: f64, p: f64, q: f64) -> f64 {
    if x == 0.0 {
        // (1 − p)^n; bd0 keeps precision when p is small.
        let log = if p < 0.1 {
            -bd0(n, n * q) - n * p
        } else {
            n * q.ln()
        };
        return log.exp();
    }
    if x == n {
        let log = if q < 0.1 {
            -bd0(n, n * p) - n * q
        } else {
            n * p.ln()
        };
        return log.exp();
    }
    let log = stirlerr(n) - stirlerr(x) - stirlerr(n - x) - bd0(x, n * p) - bd0(n - x, n * q);
    // ln(2π·x·(n − x)/n). Loader writes ln x + log1p(−x/n), which loses
    // precision when x is close to n (1 − x/n inherits x/n's rounding);
    // n − x is exact, so this form does not.
    let log_scale = (2.0 * std::f64::consts::PI).ln() + (x * (n - x) / n).ln();
    (log - 0.5 * log_scale).exp()
}

/// ln(n!) − [(n + ½)·ln n − n + ½·ln 2π] for integer n ≥ 1: the error of
/// Stirling's formula, tabulated where its series converges slowly.
fn stirlerr(n: f64) -> f64 {
    // Computed to 50 digits with Python's decimal module.
    const TABLE: [f64; 16] = [
        0.0,
        0.08106146679532726,
        0.0413406959554093,
        0.02767792568499834,
        0.020790672103765093,
        0.016644691189821193,
        0.013876128823070748,
        0.01189670994589177,
        0.010411265261972096,
        0.009255462182712733,
        0.00833056343336287,
        0.007573675487951841,
        0.00694284010720953,
        0.006408994188004207,
        0.0059513701127588475,
        0.005554733551962801,
    ];
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    if n <= 15.0 {
        return TABLE[n as usize];
    }
    let nn = n * n;
    if n > 500.0 {
        (S0 - S1 / nn) / n
    } else if n > 80.0 {
        (S0 - (S1 - S2 / nn) / nn) / n
    } else if n > 35.0 {
        (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n
    }
}

/// x·ln(x/m) + m − x, the "deviance" term, computed without cancellation
/// when x is close to m by the series in v = (x − m)/(x + m).
fn bd0(x: f64, m: f64) -> f64 {
    if (x - m).abs() >= 0.1 * (x + m) {
        return x * (x / m).ln() + m - x;
    }
    let mut v = (x - m) / (x + m);
    let mut sum = (x - m) * v;
    let mut power = 2.0 * x * v;
    v *= v;
    // |v| < 0.1/1 so each term is at least 100 times smaller; 1000 is a
    // bound that is never reached, kept so the loop cannot run away.
    for j in 1..1000 {
        power *= v;
        let next = sum + power / (2 * j + 1) as f64;
        if next == sum {
            break;
        }
        sum = next;
    }
    sum
}

fn check_successes(name: &'static str, successes: u64, n: u64) -> Result<(), StatsError> {
    if n == 0 {
        return Err(invalid(name, "the number of trials is 0".into()));
    }
    if successes > n {
        return Err(invalid(name, format!("{successes} exceeds the {n} trials")));
    }
    Ok(())
}

fn check_probability(name: &'static str, p: f64) -> Result<(), StatsError> {
    if (0.0..=1.0).contains(&p) {
        return Ok(());
    }
    Err(invalid(name, format!("{p} is not a probability in [0, 1]")))
}

fn check_alpha(alpha: f64) -> Result<(), StatsError> {
    if alpha > 0.0 && alpha < 1.0 {
        return Ok(());
    }
    Err(invalid("alpha", format!("{alpha} is not in (0, 1)")))
}

fn invalid(name: &'static str, reason: String) -> StatsError {
    StatsError::InvalidArgument { name, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_edges() {
        assert_eq!(binomial_test_less(5, 5, 0.3).unwrap(), 1.0);
        assert_eq!(binomial_test_less(0, 5, 0.0).unwrap(), 1.0);
        assert_eq!(binomial_test_less(4, 5, 1.0).unwrap(), 0.0);
        // P(X ≤ 0) = 0.7^5.
        let p = binomial_test_less(0, 5, 0.3).unwrap();
        assert!((p - 0.7f64.powi(5)).abs() < 1e-16);
    }

    #[test]
    fn tail_recurrence_agrees_with_summed_pmf() {
        let (n, p) = (1000u64, 0.37);
        let pmf = |j: u64| binomial_pmf(j as f64, n as f64, p, 1.0 - p);
        let mut direct = 0.0;
        for k in 0..n {
            direct += pmf(k);
            let tail = binomial_cdf(k, n, p);
            let error = (tail - direct).abs() / direct.max(1e-300);
            assert!(error < 1e-12, "k = {k}: {tail} vs {direct}");
        }
    }

    #[test]
    fn normal_cdf_matches_reference_values() {
        // scipy.special.ndtr, itself accurate to a few 1e-14 (at z = −20 it
        // is 2.8e-14 off the true 2.7536241186062336e-89; we are closer).
        let cases = [
            (-37.5, 4.605353009581954e-308),
            (-20.0, 2.7536241186061556e-89),
            (-8.0, 6.22096057427174e-16),
            (-5.0, 2.866515718791933e-07),
            (-2.0001, 0.022744733391410532),
            (-2.0, 0.022750131948179195),
            (-1.0, 0.15865525393145707),
            (-1e-300, 0.5),
            (0.3, 0.6179114221889526),
            (1.9999, 0.9772444684152328),
            (2.5, 0.9937903346742238),
            (9.0, 1.0),
        ];
        for (z, want) in cases {
            let got = normal_cdf(z);
            assert!(
                (got - want).abs() <= 1e-13 * want,
                "Φ({z}) = {got:e}, want {want:e}"
            );
        }
        assert!(normal_cdf(f64::NAN).is_nan());
        assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            binomial_test_less(6, 5, 0.5),
            Err(StatsError::InvalidArgument { name: "k", .. })
        ));
        assert!(matches!(
            binomial_test_less(0, 0, 0.5),
            Err(StatsError::InvalidArgument { name: "k", .. })
        ));
        for p in [f64::NAN, -0.1, 1.1, f64::INFINITY] {
            assert!(matches!(
                binomial_test_less(1, 5, p),
                Err(StatsError::InvalidArgument { name: "p", .. })
            ));
        }
        assert!(matches!(
            two_proportion_ztest_less(3, 10, 11, 10),
            Err(StatsError::InvalidArgument {
                name: "reference_successes",
                ..
            })
        ));
        assert!(matches!(
            accuracy_drop_test(3, 10, 0.9, None, 1.0),
            Err(StatsError::InvalidArgument { name: "alpha", .. })
        ));
        assert!(matches!(
            accuracy_drop_test(300, 1000, 0.5, Some(0), 0.05),
            Err(StatsError::InvalidArgument {
                name: "reference_n",
                ..
            })
        ));
    }

    #[test]
    fn degenerate_pooled_rate_is_no_evidence() {
        let z = two_proportion_ztest_less(10, 10, 50, 50).unwrap();
        assert_eq!(
            z,
            ZTest {
                statistic: 0.0,
                pvalue: 1.0
            }
        );
    }

    #[test]
    fn accuracy_drop_picks_the_method_by_window_size() {
        // 50 events at p0 = 0.95: 2.5 expected failures → exact.
        let small = accuracy_drop_test(40, 50, 0.95, Some(10_000), 0.05).unwrap();
        assert_eq!(small.method, AccuracyTestMethod::ExactBinomial);
        assert!(small.rejects);
        assert_eq!(small.statistic, 0.8);

        let large = accuracy_drop_test(930, 1000, 0.95, Some(10_000), 0.05).unwrap();
        assert_eq!(large.method, AccuracyTestMethod::PooledZ);
        assert!(large.statistic < 0.0 && large.rejects);

        let known = accuracy_drop_test(950, 1000, 0.95, None, 0.05).unwrap();
        assert_eq!(known.method, AccuracyTestMethod::ExactBinomial);
        assert!(!known.rejects);
    }
}
