//! Pearson's chi-square goodness-of-fit test: scipy's form and the
//! monitor's form against baseline proportions.

use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::check_frequencies;
use crate::stats::StatsError;

/// Statistic, p-value and degrees of freedom of a chi-square test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquareResult {
    /// Pearson's statistic Σ (o − e)² / e.
    pub statistic: f64,
    /// P(χ²_dof ≥ statistic).
    pub pvalue: f64,
    /// Degrees of freedom of the reference chi-square distribution.
    pub dof: usize,
}

/// scipy's relative tolerance between the observed and expected totals:
/// the square root of f64's machine epsilon.
const SUM_RTOL: f64 = 1.490_116_119_384_765_6e-8;

/// How far baseline proportions may sum from 1. Loose enough for
/// proportions rounded when stored, tight enough to catch counts passed by
/// mistake.
const PROPORTION_SUM_TOL: f64 = 1e-6;

/// Pearson's chi-square test, as `scipy.stats.chisquare(observed, expected,
/// ddof)`.
///
/// Without `expected` every category is expected to hold the mean count.
/// With it, the two totals must agree to a relative tolerance of √ε ≈
/// 1.49e-8 (|Σo − Σe| / min(Σo, Σe)), as scipy 1.17 requires; scipy then uses
/// `expected` as given, without rescaling. The degrees of freedom are
/// k − 1 − ddof and must be at least 1. With none left, scipy falls back on
/// the point mass at 0 (p = 0 for any positive statistic, NaN for 0); a
/// test that can measure nothing would then always reject, so here it is an
/// error.
///
/// A zero expected frequency follows scipy where scipy's answer means
/// something: with a positive observed count there the data are impossible
/// under the hypothesis, so the statistic is +∞ and the p-value 0. With a
/// zero observed count too, scipy's term is 0/0 and its result NaN; that is
/// an error here rather than a NaN that would poison later comparisons.
pub fn chisquare(
    observed: &[f64],
    expected: Option<&[f64]>,
    ddof: usize,
) -> Result<ChiSquareResult, StatsError> {
    check_frequencies("observed", observed)?;
    let dof = degrees_of_freedom(observed.len(), ddof)?;
    let statistic = match expected {
        Some(expected) => {
            check_expected(observed, expected)?;
            pearson(observed, expected)?
        }
        None => pearson_uniform(observed)?,
    };
    let pvalue = chi2_sf(dof, statistic)?;
    Ok(ChiSquareResult {
        statistic,
        pvalue,
        dof,
    })
}

/// The monitor's chi-square test: did the window's categories come from the
/// baseline's proportions?
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProportionsChiSquare {
    /// The test over the categories the baseline has seen.
    pub test: ChiSquareResult,
    /// Window events in those categories: the n of the test.
    pub tested: u64,
    /// Window events the test set aside: categories whose baseline
    /// proportion is 0 (and, for [`super::CategoryCounts`], the unknown
    /// bucket).
    pub unseen: u64,
}

/// Chi-square test of window counts against baseline proportions, with
/// expected counts n·p.
///
/// Categories the baseline never saw (proportion 0) are set aside and
/// reported as `unseen`; the test runs over the remaining categories with n
/// their total. scipy would give such a category expected count 0, so a
/// single unseen event makes its statistic infinite: one malformed value
/// would then page an operator, and pooling with a small floor instead would
/// make the statistic depend on an arbitrary floor. The monitor judges unseen
/// values by the unknown-category rate, a separate data-quality check.
///
/// `baseline_proportions` must sum to 1 within 1e-6; those kept are
/// rescaled to sum to 1 so the totals agree as scipy requires.
pub fn chisquare_against_proportions(
    window_counts: &[u64],
    baseline_proportions: &[f64],
) -> Result<ProportionsChiSquare, StatsError> {
    check_proportions(window_counts.len(), baseline_proportions)?;
    let (seen, unseen): (Vec<_>, Vec<_>) = window_counts
        .iter()
        .zip(baseline_proportions)
        .partition(|(_, p)| **p > 0.0);
    if seen.len() < 2 {
        return Err(invalid(
            "baseline_proportions",
            "fewer than two categories have a positive proportion".into(),
        ));
    }

    let tested = checked_total(seen.iter().map(|(count, _)| **count))?;
    let unseen = checked_total(unseen.iter().map(|(count, _)| **count))?;
    if tested == 0 {
        return Err(invalid(
            "window_counts",
            "no events in categories the baseline has seen".into(),
        ));
    }

    let observed: Vec<f64> = seen.iter().map(|(count, _)| **count as f64).collect();
    let proportions: Vec<f64> = seen.iter().map(|(_, p)| **p).collect();
    let test = chisquare(&observed, Some(&expected_counts(tested, &proportions)), 0)?;
    Ok(ProportionsChiSquare {
        test,
        tested,
        unseen,
    })
}

/// The statistic and degrees of freedom of [`chisquare_against_proportions`]
/// without its p-value and without allocating: what the monitor needs after
/// every event, since it compares χ² with a critical value computed once.
/// The arithmetic is the same, in the same order, so the statistic is
/// bit-identical; the same inputs are errors.
pub fn chisquare_statistic_against_proportions(
    window_counts: &[u64],
    baseline_proportions: &[f64],
) -> Result<(f64, usize), StatsError> {
    check_proportions(window_counts.len(), baseline_proportions)?;
    let cells = || {
        window_counts
            .iter()
            .zip(baseline_proportions)
            .filter(|(_, p)| **p > 0.0)
    };
    let seen = cells().count();
    if seen < 2 {
        return Err(invalid(
            "baseline_proportions",
            "fewer than two categories have a positive proportion".into(),
        ));
    }
    let tested = checked_total(cells().map(|(count, _)| *count))?;
    if tested == 0 {
        return Err(invalid(
            "window_counts",
            "no events in categories the baseline has seen".into(),
        ));
    }
    let mass: f64 = cells().map(|(_, p)| *p).sum();
    let mut statistic = 0.0;
    for (&count, &p) in cells() {
        let (o, e) = (count as f64, tested as f64 * p / mass);
        statistic += (o - e) * (o - e) / e;
    }
    Ok((statistic, seen - 1))
}

/// n·p for each kept category, with p rescaled over the kept categories.
fn expected_counts(tested: u64, proportions: &[f64]) -> Vec<f64> {
    let mass: f64 = proportions.iter().sum();
    proportions
        .iter()
        .map(|p| tested as f64 * p / mass)
        .collect()
}

fn checked_total(counts: impl Iterator<Item = u64>) -> Result<u64, StatsError> {
    let mut total: u64 = 0;
    for count in counts {
        total = total
            .checked_add(count)
            .ok_or_else(|| invalid("window_counts", "the counts overflow u64".into()))?;
    }
    Ok(total)
}

/// Pearson's statistic over paired cells; a zero expected cell gives +∞ if
/// anything was observed there and an error (scipy's NaN) if not.
pub(super) fn pearson(observed: &[f64], expected: &[f64]) -> Result<f64, StatsError> {
    let mut statistic = 0.0;
    for (index, (&o, &e)) in observed.iter().zip(expected).enumerate() {
        if e == 0.0 && o == 0.0 {
            return Err(invalid(
                "expected",
                format!(
                    "expected and observed are both 0 at index {index}; the statistic is undefined"
                ),
            ));
        }
        statistic += (o - e) * (o - e) / e;
    }
    Ok(statistic)
}

/// Upper tail of χ²_dof at `statistic`, as scipy's `chdtrc`.
pub(super) fn chi2_sf(dof: usize, statistic: f64) -> Result<f64, StatsError> {
    let distribution = ChiSquared::new(dof as f64).map_err(|e| invalid("dof", e.to_string()))?;
    Ok(distribution.sf(statistic))
}

fn pearson_uniform(observed: &[f64]) -> Result<f64, StatsError> {
    let mean = observed.iter().sum::<f64>() / observed.len() as f64;
    if mean == 0.0 {
        return Err(invalid("observed", "every frequency is 0".into()));
    }
    Ok(observed
        .iter()
        .map(|&o| (o - mean) * (o - mean) / mean)
        .sum())
}

fn degrees_of_freedom(categories: usize, ddof: usize) -> Result<usize, StatsError> {
    match categories.checked_sub(1 + ddof) {
        Some(dof) if dof >= 1 => Ok(dof),
        _ => Err(invalid(
            "ddof",
            format!("{categories} categories with ddof {ddof} leave no degrees of freedom"),
        )),
    }
}

fn check_expected(observed: &[f64], expected: &[f64]) -> Result<(), StatsError> {
    check_frequencies("expected", expected)?;
    if expected.len() != observed.len() {
        return Err(invalid(
            "expected",
            format!(
                "{} categories, observed has {}",
                expected.len(),
                observed.len()
            ),
        ));
    }
    let (o_sum, e_sum) = (observed.iter().sum::<f64>(), expected.iter().sum::<f64>());
    // Written as scipy writes it: when both totals are 0 the ratio is NaN
    // and passes, and the all-zero cells are rejected by `pearson`.
    let relative_diff = (o_sum - e_sum).abs() / o_sum.min(e_sum);
    if relative_diff > SUM_RTOL {
        return Err(invalid(
            "expected",
            format!(
                "totals differ: observed {o_sum}, expected {e_sum} (relative {relative_diff:e} > {SUM_RTOL:e})"
            ),
        ));
    }
    Ok(())
}

fn check_proportions(categories: usize, proportions: &[f64]) -> Result<(), StatsError> {
    check_frequencies("baseline_proportions", proportions)?;
    if proportions.len() != categories {
        return Err(invalid(
            "window_counts",
            format!(
                "{categories} categories, the baseline has {}",
                proportions.len()
            ),
        ));
    }
    let sum: f64 = proportions.iter().sum();
    if (sum - 1.0).abs() > PROPORTION_SUM_TOL {
        return Err(invalid(
            "baseline_proportions",
            format!("sum to {sum}, not 1"),
        ));
    }
    Ok(())
}

fn invalid(name: &'static str, reason: String) -> StatsError {
    StatsError::InvalidArgument { name, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn statistic_only_is_bit_identical_to_the_full_test(
            counts in proptest::collection::vec(0u64..500, 3..9),
            weights in proptest::collection::vec(0u32..20, 3..9),
        ) {
            let k = counts.len().min(weights.len());
            let total: u32 = weights[..k].iter().sum();
            prop_assume!(total > 0);
            let proportions: Vec<f64> =
                weights[..k].iter().map(|&w| f64::from(w) / f64::from(total)).collect();
            let full = chisquare_against_proportions(&counts[..k], &proportions);
            let fast = chisquare_statistic_against_proportions(&counts[..k], &proportions);
            match (full, fast) {
                (Ok(full), Ok((statistic, dof))) => {
                    prop_assert_eq!(full.test.statistic.to_bits(), statistic.to_bits());
                    prop_assert_eq!(full.test.dof, dof);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
            }
        }
    }

    #[test]
    fn zero_expected_with_observed_counts_is_infinite() {
        let r = chisquare(&[3.0, 2.0, 5.0], Some(&[5.0, 5.0, 0.0]), 0).unwrap();
        assert_eq!(r.statistic, f64::INFINITY);
        assert_eq!(r.pvalue, 0.0);
    }

    #[test]
    fn zero_expected_and_zero_observed_is_an_error() {
        let r = chisquare(&[5.0, 5.0, 0.0], Some(&[5.0, 5.0, 0.0]), 0);
        assert!(matches!(
            r,
            Err(StatsError::InvalidArgument {
                name: "expected",
                ..
            })
        ));
        let r = chisquare(&[0.0, 0.0], None, 0);
        assert!(matches!(
            r,
            Err(StatsError::InvalidArgument {
                name: "observed",
                ..
            })
        ));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            chisquare(&[], None, 0),
            Err(StatsError::EmptySample { sample: "observed" })
        );
        assert!(matches!(
            chisquare(&[1.0, f64::INFINITY], None, 0),
            Err(StatsError::NonFinite {
                sample: "observed",
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            chisquare(&[1.0, -1.0, 3.0], None, 0),
            Err(StatsError::InvalidArgument {
                name: "observed",
                ..
            })
        ));
        assert!(matches!(
            chisquare(&[1.0, 2.0], Some(&[1.0, 2.0, 0.0]), 0),
            Err(StatsError::InvalidArgument {
                name: "expected",
                ..
            })
        ));
        assert!(matches!(
            chisquare(&[1.0, 2.0, 3.0], None, 2),
            Err(StatsError::InvalidArgument { name: "ddof", .. })
        ));
        // Totals 6 and 6.1 differ by far more than √ε.
        assert!(matches!(
            chisquare(&[1.0, 2.0, 3.0], Some(&[1.0, 2.0, 3.1]), 0),
            Err(StatsError::InvalidArgument {
                name: "expected",
                ..
            })
        ));
    }

    #[test]
    fn unseen_categories_are_set_aside() {
        let r = chisquare_against_proportions(&[30, 50, 7, 20], &[0.3, 0.5, 0.0, 0.2]).unwrap();
        assert_eq!((r.tested, r.unseen), (100, 7));
        let direct = chisquare(&[30.0, 50.0, 20.0], Some(&[30.0, 50.0, 20.0]), 0).unwrap();
        assert_eq!(r.test, direct);
    }

    #[test]
    fn overflowing_counts_are_an_error() {
        let e = chisquare_against_proportions(&[u64::MAX, 1], &[0.5, 0.5]);
        assert!(matches!(
            e,
            Err(StatsError::InvalidArgument {
                name: "window_counts",
                ..
            })
        ));
    }

    #[test]
    fn proportions_are_checked() {
        let e = chisquare_against_proportions(&[3, 4], &[30.0, 70.0]);
        assert!(matches!(
            e,
            Err(StatsError::InvalidArgument {
                name: "baseline_proportions",
                ..
            })
        ));
        let e = chisquare_against_proportions(&[3, 4], &[1.0, 0.0]);
        assert!(matches!(
            e,
            Err(StatsError::InvalidArgument {
                name: "baseline_proportions",
                ..
            })
        ));
        let e = chisquare_against_proportions(&[3, 4, 5], &[0.5, 0.5]);
        assert!(matches!(
            e,
            Err(StatsError::InvalidArgument {
                name: "window_counts",
                ..
            })
        ));
        let e = chisquare_against_proportions(&[0, 0, 5], &[0.5, 0.5, 0.0]);
        assert!(matches!(
            e,
            Err(StatsError::InvalidArgument {
                name: "window_counts",
                ..
            })
        ));
    }
}
