//! Decision thresholds: how large a statistic must be before a check counts
//! as drifted, for each decision mode.
//!
//! Thresholds are computed once per (window size, baseline size, level) and
//! cached, so the per-event check is an integer comparison. In calibrated
//! mode the model's false-alarm budget (one per `target_run_length` events)
//! is split evenly across its checked features (a union bound); in fixed
//! mode α is corrected across features (Bonferroni, or Benjamini–Hochberg
//! applied at check time over the per-feature levels).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::stats::StatsError;
use crate::stats::calibration::{Calibration, CalibrationCache, CalibrationRequest};
use crate::stats::ks::{CriticalValueCache, KsOptions, Method};

/// How a model decides that a check is drifted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Decision {
    /// Thresholds chosen so that, without drift, false alarms come no more
    /// often than once per `target_run_length` events for the model.
    Calibrated {
        /// Expected events between false alarms, per model.
        target_run_length: u64,
    },
    /// A fixed per-check significance level with a correction across the
    /// model's features.
    Fixed {
        /// Family-wise (Bonferroni) or false-discovery (BH) level.
        alpha: f64,
        /// The correction across features.
        correction: Correction,
    },
}

/// Correction for testing several features at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Each feature at α.
    None,
    /// Each feature at α / F.
    Bonferroni,
    /// Benjamini–Hochberg over the features' levels at each check.
    Bh,
}

/// Caches of everything threshold-related; shared by all models.
#[derive(Debug, Default)]
pub struct Thresholds {
    critical: CriticalValueCache,
    calibrations: CalibrationCache,
    chi2: HashMap<(u64, u64), f64>,
    seed: u64,
}

impl Thresholds {
    /// Empty caches; `seed` makes calibrations reproducible.
    pub fn new(seed: u64) -> Thresholds {
        Thresholds {
            seed,
            ..Thresholds::default()
        }
    }

    /// The calibration for a full window of `n` against `m` baseline values,
    /// when `features` features share the model's false-alarm budget.
    pub fn calibration(
        &mut self,
        n: u64,
        m: u64,
        check_interval: u64,
        target_run_length: u64,
        features: usize,
    ) -> Result<Calibration, StatsError> {
        let request = CalibrationRequest {
            n,
            m,
            check_interval,
            target_run_length: target_run_length.saturating_mul(features.max(1) as u64),
            seed: self.seed,
        };
        self.calibrations.get_or_calibrate(&request).cloned()
    }

    /// Every calibration computed so far (a checkpoint keeps them: each
    /// takes seconds of simulation, and a restart would otherwise pay it
    /// again at its first full window).
    pub fn calibrations(&self) -> Vec<Calibration> {
        self.calibrations.iter().cloned().collect()
    }

    /// Adds calibrations computed earlier (from a checkpoint). One made
    /// with another seed is kept under its own request and never matches
    /// this monitor's, so a changed seed calibrates afresh.
    pub fn add_calibrations(&mut self, calibrations: impl IntoIterator<Item = Calibration>) {
        for calibration in calibrations {
            self.calibrations.insert(calibration);
        }
    }

    /// KS critical value numerator (over n·m) at level `alpha`.
    pub fn ks_critical(&mut self, n: u64, m: u64, alpha: f64) -> Result<u64, StatsError> {
        self.ks_critical_with(n, m, alpha, Method::Auto)
    }

    /// KS critical value with a chosen p-value method. Event-time windows
    /// change size with the traffic, so each size needs its own threshold;
    /// they use the asymptotic (finite-N Kolmogorov) distribution, which
    /// costs microseconds instead of the exact one's milliseconds.
    pub fn ks_critical_with(
        &mut self,
        n: u64,
        m: u64,
        alpha: f64,
        method: Method,
    ) -> Result<u64, StatsError> {
        let options = KsOptions {
            method,
            ..KsOptions::default()
        };
        Ok(self.critical.get(n, m, alpha, options)?.d_scaled)
    }

    /// Chi-square critical value for `dof` degrees of freedom at `alpha`.
    pub fn chi2_critical(&mut self, dof: u64, alpha: f64) -> f64 {
        *self.chi2.entry((dof, alpha.to_bits())).or_insert_with(|| {
            ChiSquared::new(dof.max(1) as f64)
                .map(|d| d.inverse_cdf(1.0 - alpha))
                .unwrap_or(f64::INFINITY)
        })
    }
}

/// The per-check significance level each feature is tested at in fixed
/// mode for Bonferroni/none; BH uses the ladder `k·α/F` (see [`bh_rejects`]).
pub fn fixed_level(alpha: f64, correction: Correction, features: usize) -> f64 {
    match correction {
        Correction::None => alpha,
        Correction::Bonferroni | Correction::Bh => alpha / features.max(1) as f64,
    }
}

/// Benjamini–Hochberg on "levels": `rank[i]` is the smallest k (1-based)
/// such that feature i's statistic clears the threshold at level k·α/F, or
/// `None` if it clears none. Returns which features BH rejects. Because the
/// p-value is monotone in the statistic, this equals BH on the p-values
/// without computing them.
pub fn bh_rejects(rank: &[Option<usize>]) -> Vec<bool> {
    let f = rank.len();
    let mut at_most = vec![0usize; f + 1];
    for k in rank.iter().flatten() {
        at_most[(*k).min(f)] += 1;
    }
    let mut cumulative = 0;
    let mut largest = 0;
    for (k, count) in at_most.iter().enumerate().skip(1) {
        cumulative += count;
        if cumulative >= k {
            largest = k;
        }
    }
    rank.iter()
        .map(|r| matches!(r, Some(k) if *k <= largest))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrations_added_from_a_checkpoint_are_used_instead_of_simulating_again() {
        let mut first = Thresholds::new(7);
        let computed = first.calibration(40, 80, 1, 1_000, 2).expect("calibrates");
        assert_eq!(first.calibrations(), vec![computed.clone()]);

        // Marked, so that a fresh simulation could not produce it.
        let mut restored = computed.clone();
        restored.d_scaled += 1;
        let mut second = Thresholds::new(7);
        second.add_calibrations([restored.clone()]);
        assert_eq!(second.calibration(40, 80, 1, 1_000, 2), Ok(restored));

        // Another seed is another request: simulated afresh.
        let mut other_seed = Thresholds::new(8);
        other_seed.add_calibrations([computed.clone()]);
        let fresh = other_seed
            .calibration(40, 80, 1, 1_000, 2)
            .expect("calibrates");
        assert_eq!(fresh.request.seed, 8);
        assert_eq!(other_seed.calibrations().len(), 2);
    }

    /// BH from p-values, the textbook way, for comparison.
    fn bh_textbook(p: &[f64], alpha: f64) -> Vec<bool> {
        let f = p.len();
        let mut order: Vec<usize> = (0..f).collect();
        order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
        let mut largest = 0;
        for (i, &j) in order.iter().enumerate() {
            if p[j] <= (i + 1) as f64 * alpha / f as f64 {
                largest = i + 1;
            }
        }
        (0..f)
            .map(|j| order.iter().position(|&o| o == j).unwrap() < largest)
            .collect()
    }

    #[test]
    fn bh_on_levels_matches_bh_on_p_values() {
        let alpha = 0.05;
        let cases: [&[f64]; 4] = [
            &[0.001, 0.02, 0.03, 0.5],
            &[0.04, 0.04, 0.04, 0.04],
            &[0.9, 0.8, 0.7],
            &[0.011, 0.012, 0.3, 0.0001, 0.05],
        ];
        for p in cases {
            let f = p.len();
            let rank: Vec<Option<usize>> = p
                .iter()
                .map(|&pi| (1..=f).find(|&k| pi <= k as f64 * alpha / f as f64))
                .collect();
            assert_eq!(bh_rejects(&rank), bh_textbook(p, alpha), "{p:?}");
        }
    }

    #[test]
    fn chi2_critical_is_the_upper_quantile() {
        let mut t = Thresholds::new(1);
        let c = t.chi2_critical(1, 0.05);
        assert!((c - 3.841_458_820_694_124).abs() < 1e-9, "{c}");
    }
}
