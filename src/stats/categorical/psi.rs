//! The population stability index, with Evidently's definition.
//!
//! PSI = Σ (r − c)·ln(r/c) over bins, where r and c are the reference's and
//! the current sample's proportions in a bin. Evidently
//! (`calculations/stattests/psi.py` and `get_binned_data` in
//! `calculations/stattests/utils.py`) bins as follows:
//!
//! - numeric data whose *reference* holds more than 20 distinct values:
//!   equal-width bins from `numpy.histogram_bin_edges(reference ++ current,
//!   bins="sturges")`, counted by `numpy.histogram` with those edges (bins
//!   closed on the left, the last bin closed on both sides);
//! - other numeric data: one bin per distinct value of either sample;
//! - categorical data: one bin per category present in either sample.
//!
//! An empty bin would make ln(r/c) infinite, so each sample's zero
//! proportions are replaced, separately for r and for c, by that sample's
//! smallest non-zero proportion divided by 10⁶ if it is at most 10⁻⁴, and
//! by 10⁻⁴ otherwise. A histogram bin empty in both samples stays a bin, so
//! it contributes when the two floors differ; that is Evidently's behaviour
//! and is kept for comparability.

use crate::stats::{StatsError, check_sample};

/// Distinct reference values above which numeric data are histogrammed.
const MAX_DISTINCT_FOR_VALUE_BINS: usize = 20;

/// PSI of a numeric `current` sample against `reference`, binned as
/// Evidently bins numeric features (see the module docs).
pub fn psi_numeric(reference: &[f64], current: &[f64]) -> Result<f64, StatsError> {
    check_sample("reference", reference)?;
    check_sample("current", current)?;
    let reference = sorted(reference);
    let current = sorted(current);

    let (reference_counts, current_counts) =
        if distinct(&reference).len() > MAX_DISTINCT_FOR_VALUE_BINS {
            let edges = sturges_edges(&reference, &current)?;
            (histogram(&reference, &edges), histogram(&current, &edges))
        } else {
            let keys = union_of_values(&reference, &current);
            (
                value_counts(&reference, &keys),
                value_counts(&current, &keys),
            )
        };
    Ok(psi_from_counts(&reference_counts, &current_counts))
}

/// PSI of `current_counts` against `reference_counts`, one bin per
/// category. Categories absent from both are not bins, as in Evidently,
/// which only sees the values present.
pub fn psi_categorical(
    reference_counts: &[u64],
    current_counts: &[u64],
) -> Result<f64, StatsError> {
    if reference_counts.len() != current_counts.len() {
        return Err(StatsError::InvalidArgument {
            name: "current_counts",
            reason: format!(
                "{} categories, the reference has {}",
                current_counts.len(),
                reference_counts.len()
            ),
        });
    }
    let (reference, current): (Vec<f64>, Vec<f64>) = reference_counts
        .iter()
        .zip(current_counts)
        .filter(|(r, c)| **r > 0 || **c > 0)
        .map(|(r, c)| (*r as f64, *c as f64))
        .unzip();
    check_total("reference_counts", &reference)?;
    check_total("current_counts", &current)?;
    Ok(psi_from_counts(&reference, &current))
}

fn check_total(name: &'static str, counts: &[f64]) -> Result<(), StatsError> {
    if counts.iter().sum::<f64>() > 0.0 {
        return Ok(());
    }
    Err(StatsError::EmptySample { sample: name })
}

/// PSI from per-bin counts; each sample's total must be positive.
fn psi_from_counts(reference: &[f64], current: &[f64]) -> f64 {
    let r = floored_proportions(reference);
    let c = floored_proportions(current);
    r.iter().zip(&c).map(|(r, c)| (r - c) * (r / c).ln()).sum()
}

/// Proportions per bin with Evidently's floor for empty bins.
fn floored_proportions(counts: &[f64]) -> Vec<f64> {
    let total: f64 = counts.iter().sum();
    let mut proportions: Vec<f64> = counts.iter().map(|c| c / total).collect();
    let min_nonzero = proportions
        .iter()
        .copied()
        .filter(|p| *p > 0.0)
        .fold(f64::INFINITY, f64::min);
    let floor = if min_nonzero <= 1e-4 {
        min_nonzero / 1e6
    } else {
        1e-4
    };
    for p in proportions.iter_mut().filter(|p| **p == 0.0) {
        *p = floor;
    }
    proportions
}

/// Edges of `numpy.histogram_bin_edges(a ++ b, bins="sturges")`: the range
/// of the combined data split into ⌈range / width⌉ equal bins with width
/// range / (log₂ N + 1), edges placed as `numpy.linspace` places them.
fn sturges_edges(a: &[f64], b: &[f64]) -> Result<Vec<f64>, StatsError> {
    // Both are sorted and non-empty.
    let low = a[0].min(b[0]);
    let high = a[a.len() - 1].max(b[b.len() - 1]);
    let range = high - low;
    if !range.is_finite() {
        return Err(StatsError::InvalidArgument {
            name: "reference",
            reason: format!("the range [{low}, {high}] overflows"),
        });
    }
    let width = range / (((a.len() + b.len()) as f64).log2() + 1.0);
    // The quotient is not always an integer in floating point; numpy takes
    // its ceiling as computed, and so must we to get the same bins. A width
    // that underflows to 0 (a subnormal range) means one bin, as in numpy.
    let bins = if width > 0.0 {
        (range / width).ceil() as usize
    } else {
        1
    };
    let step = range / bins as f64;
    let mut edges: Vec<f64> = (0..bins).map(|i| i as f64 * step + low).collect();
    edges.push(high);
    if edges.windows(2).any(|w| w[0] >= w[1]) {
        return Err(StatsError::InvalidArgument {
            name: "reference",
            reason: format!("the range [{low}, {high}] is too narrow for {bins} bins"),
        });
    }
    Ok(edges)
}

/// Counts of sorted `values` per bin, as `numpy.histogram` with explicit
/// edges: [e_i, e_{i+1}) with the last bin closed.
fn histogram(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let last = edges.len() - 1;
    let cumulative: Vec<usize> = edges
        .iter()
        .enumerate()
        .map(|(i, &e)| {
            if i == last {
                values.partition_point(|v| *v <= e)
            } else {
                values.partition_point(|v| *v < e)
            }
        })
        .collect();
    cumulative
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64)
        .collect()
}

/// Occurrences of each key in sorted `values`.
fn value_counts(values: &[f64], keys: &[f64]) -> Vec<f64> {
    keys.iter()
        .map(|&k| {
            let below = values.partition_point(|v| *v < k);
            let through = values.partition_point(|v| *v <= k);
            (through - below) as f64
        })
        .collect()
}

fn union_of_values(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut keys: Vec<f64> = a.iter().chain(b).copied().collect();
    keys.sort_by(f64::total_cmp);
    distinct(&keys)
}

/// Distinct values of sorted `values`; -0.0 and 0.0 are one value, as they
/// are for pandas' `nunique`.
fn distinct(values: &[f64]) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for &v in values {
        if out.last() != Some(&v) {
            out.push(v);
        }
    }
    out
}

/// Sorted copy; -0.0 sorts with 0.0 so equal values stay adjacent.
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut out = values.to_vec();
    out.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_have_zero_psi() {
        let x: Vec<f64> = (0..100).map(|i| f64::from(i) * 0.37).collect();
        assert_eq!(psi_numeric(&x, &x).unwrap(), 0.0);
        assert_eq!(psi_categorical(&[5, 0, 3], &[10, 0, 6]).unwrap(), 0.0);
    }

    #[test]
    fn empty_bins_get_the_floor() {
        // r = (0.5, 0.5, 0), c = (0.5, 0.25, 0.25): r's empty bin gets 1e-4.
        let psi = psi_categorical(&[1, 1, 0], &[2, 1, 1]).unwrap();
        let expected = 0.25 * 2f64.ln() + (1e-4 - 0.25) * (1e-4f64 / 0.25).ln();
        assert!((psi - expected).abs() < 1e-15);
    }

    #[test]
    fn floor_scales_with_tiny_proportions() {
        let mut counts = vec![0.0, 1.0];
        counts.push(99_999.0);
        let p = floored_proportions(&counts);
        assert_eq!(p[0], 1.0 / 100_000.0 / 1e6);
    }

    #[test]
    fn sturges_matches_numpy_on_a_known_case() {
        // numpy.histogram_bin_edges(list(range(32)) + [31], bins="sturges"):
        // 33 values give width 31 / (log2(33) + 1), so ceil(6.04…) = 7 bins.
        let a: Vec<f64> = (0..32).map(f64::from).collect();
        let edges = sturges_edges(&a, &[31.0]).unwrap();
        assert_eq!(edges.len(), 8);
        assert_eq!((edges[0], edges[1], edges[7]), (0.0, 31.0 / 7.0, 31.0));
    }

    #[test]
    fn subnormal_ranges_do_not_explode() {
        let tiny: Vec<f64> = (0..30).map(|i| f64::from(i) * 5e-324).collect();
        assert!(psi_numeric(&tiny, &tiny[..5]).is_ok_and(f64::is_finite));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            psi_numeric(&[], &[1.0]),
            Err(StatsError::EmptySample {
                sample: "reference"
            })
        );
        assert!(matches!(
            psi_numeric(&[1.0], &[f64::NAN]),
            Err(StatsError::NonFinite {
                sample: "current",
                index: 0,
                ..
            })
        ));
        assert!(matches!(
            psi_categorical(&[1, 2], &[1]),
            Err(StatsError::InvalidArgument {
                name: "current_counts",
                ..
            })
        ));
        assert_eq!(
            psi_categorical(&[1, 2], &[0, 0]),
            Err(StatsError::EmptySample {
                sample: "current_counts"
            })
        );
        let huge = [-f64::MAX, f64::MAX];
        let many: Vec<f64> = (0..30)
            .map(|i| f64::from(i) * 1e300 - 1e301)
            .chain(huge)
            .collect();
        assert!(matches!(
            psi_numeric(&many, &[0.0]),
            Err(StatsError::InvalidArgument {
                name: "reference",
                ..
            })
        ));
    }
}
