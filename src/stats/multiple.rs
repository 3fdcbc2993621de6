//! Multiple-testing corrections across a model's features.
//!
//! In the `fixed` decision mode every feature of a model is tested at each
//! check, so a model with many features would raise false alarms far more
//! often than α suggests. This module owns the two corrections the monitor
//! offers: Bonferroni (controls the family-wise error rate) and
//! Benjamini–Hochberg (controls the false discovery rate).
//!
//! Adjusted p-values match scipy: Bonferroni is `min(1, p·k)` and
//! Benjamini–Hochberg is `scipy.stats.false_discovery_control(ps,
//! method='bh')`, computed in the same order of operations.

use serde::{Deserialize, Serialize};

use super::{StatsError, check_sample};

/// Which correction to apply across a model's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Family-wise error rate control: adjusted p = min(1, p·k).
    Bonferroni,
    /// False discovery rate control (step-up procedure of Benjamini and
    /// Hochberg, 1995).
    BenjaminiHochberg,
}

/// The outcome of a correction, one entry per hypothesis in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Corrected {
    /// Adjusted p-values, each in [0, 1].
    pub adjusted: Vec<f64>,
    /// Whether each hypothesis is rejected: adjusted p < α.
    pub rejected: Vec<bool>,
}

/// Applies `method` to `pvalues` and decides which hypotheses are rejected.
///
/// A hypothesis is rejected when its adjusted p-value is strictly below α,
/// the `p < α` rule of the `fixed` decision mode. Deciding on the adjusted
/// value (rather than comparing raw p with a scaled α) means the reported
/// adjusted p-value and the decision can never disagree through rounding.
pub fn correct(method: Correction, pvalues: &[f64], alpha: f64) -> Result<Corrected, StatsError> {
    check_alpha(alpha)?;
    let adjusted = match method {
        Correction::Bonferroni => bonferroni_adjust(pvalues)?,
        Correction::BenjaminiHochberg => benjamini_hochberg_adjust(pvalues)?,
    };
    let rejected = adjusted.iter().map(|&p| p < alpha).collect();
    Ok(Corrected { adjusted, rejected })
}

/// Bonferroni-adjusted p-values: `min(1, p·k)` for k hypotheses.
pub fn bonferroni_adjust(pvalues: &[f64]) -> Result<Vec<f64>, StatsError> {
    check_pvalues(pvalues)?;
    let k = pvalues.len() as f64;
    Ok(pvalues.iter().map(|&p| (p * k).min(1.0)).collect())
}

/// Benjamini–Hochberg adjusted p-values, as
/// `scipy.stats.false_discovery_control(ps, method='bh')`.
///
/// With the p-values sorted ascending, p₍ᵢ₎ becomes p₍ᵢ₎·(m/i), then each
/// value is replaced by the smallest value at or after its rank (so the
/// adjusted values are monotone in p), and the result is clipped to [0, 1]
/// and returned in input order.
pub fn benjamini_hochberg_adjust(pvalues: &[f64]) -> Result<Vec<f64>, StatsError> {
    check_pvalues(pvalues)?;
    let m = pvalues.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| pvalues[a].total_cmp(&pvalues[b]));

    // scipy multiplies by the quotient m/i, not by m then divides by i;
    // keeping its order keeps the results bit-for-bit comparable.
    let mut adjusted = vec![0.0; m];
    let mut running_min = f64::INFINITY;
    for (rank, &index) in order.iter().enumerate().rev() {
        let scaled = pvalues[index] * (m as f64 / (rank + 1) as f64);
        running_min = running_min.min(scaled);
        adjusted[index] = running_min.clamp(0.0, 1.0);
    }
    Ok(adjusted)
}

fn check_pvalues(pvalues: &[f64]) -> Result<(), StatsError> {
    check_sample("pvalues", pvalues)?;
    match pvalues.iter().position(|p| !(0.0..=1.0).contains(p)) {
        Some(index) => Err(StatsError::InvalidArgument {
            name: "pvalues",
            reason: format!(
                "value {} at index {index} is outside [0, 1]",
                pvalues[index]
            ),
        }),
        None => Ok(()),
    }
}

fn check_alpha(alpha: f64) -> Result<(), StatsError> {
    if alpha > 0.0 && alpha < 1.0 {
        return Ok(());
    }
    Err(StatsError::InvalidArgument {
        name: "alpha",
        reason: format!("{alpha} is not in the open interval (0, 1)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bonferroni_caps_at_one_and_rejects_below_alpha() {
        let out = correct(Correction::Bonferroni, &[0.01, 0.02, 0.5], 0.05).unwrap();
        assert_eq!(out.adjusted, vec![0.03, 0.06, 1.0]);
        assert_eq!(out.rejected, vec![true, false, false]);
    }

    #[test]
    fn bh_is_monotone_and_handles_ties() {
        let ps = [0.04, 0.01, 0.04, 0.03];
        let adj = benjamini_hochberg_adjust(&ps).unwrap();
        // Sorted: 0.01→0.04, 0.03→0.04, 0.04→min(0.0533,0.04)=0.04, 0.04→0.04.
        for a in &adj {
            assert!((a - 0.04).abs() < 1e-15, "{adj:?}");
        }
    }

    #[test]
    fn single_pvalue_is_unchanged() {
        assert_eq!(benjamini_hochberg_adjust(&[0.3]).unwrap(), vec![0.3]);
        assert_eq!(bonferroni_adjust(&[0.3]).unwrap(), vec![0.3]);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            bonferroni_adjust(&[]),
            Err(StatsError::EmptySample { sample: "pvalues" })
        );
        assert!(matches!(
            benjamini_hochberg_adjust(&[0.1, f64::NAN]),
            Err(StatsError::NonFinite {
                sample: "pvalues",
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            benjamini_hochberg_adjust(&[0.1, 1.5]),
            Err(StatsError::InvalidArgument {
                name: "pvalues",
                ..
            })
        ));
        assert!(matches!(
            benjamini_hochberg_adjust(&[-0.0, -0.1]),
            Err(StatsError::InvalidArgument {
                name: "pvalues",
                ..
            })
        ));
        for alpha in [0.0, 1.0, f64::NAN, -0.1] {
            assert!(matches!(
                correct(Correction::Bonferroni, &[0.1], alpha),
                Err(StatsError::InvalidArgument { name: "alpha", .. })
            ));
        }
    }
}
