//! Tests for categorical features and predicted classes: chi-square goodness
//! of fit and contingency tables (as scipy computes them), the population
//! stability index (as Evidently computes it), and the per-category counts a
//! sliding window keeps.
//!
//! | item | role |
//! |---|---|
//! | [`chisquare`] | `scipy.stats.chisquare`, exactly |
//! | [`chisquare_against_proportions`] | the monitor's form: window counts against baseline proportions, with unseen categories set aside |
//! | [`chi2_contingency`] | `scipy.stats.chi2_contingency`, including Yates' correction |
//! | [`psi_numeric`], [`psi_categorical`] | PSI with Evidently's binning and empty-bin floor |
//! | [`CategoryCounts`] | counts per category, updated per event in O(1) |

mod chisquare;
mod contingency;
mod counts;
mod psi;

pub use chisquare::{
    ChiSquareResult, ProportionsChiSquare, chisquare, chisquare_against_proportions,
    chisquare_statistic_against_proportions,
};
pub use contingency::{ContingencyResult, chi2_contingency};
pub use counts::{Category, CategoryCounts};
pub use psi::{psi_categorical, psi_numeric};

use super::{StatsError, check_sample};

/// Rejects empty, non-finite and negative frequencies, naming the argument.
fn check_frequencies(name: &'static str, values: &[f64]) -> Result<(), StatsError> {
    check_sample(name, values)?;
    match values.iter().position(|v| *v < 0.0) {
        Some(index) => Err(StatsError::InvalidArgument {
            name,
            reason: format!("negative frequency {} at index {index}", values[index]),
        }),
        None => Ok(()),
    }
}
