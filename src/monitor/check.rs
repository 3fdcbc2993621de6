//! One monitored quantity of a model — an input feature or the prediction —
//! with its window, its test and its alert phase.
//!
//! Numeric quantities keep a [`SlidingKs`] window and are tested with KS;
//! categorical ones keep a ring of category indices with counts maintained
//! per event and are tested with chi-square (PSI reported beside it).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::alert::CheckKind;
use crate::baseline::Distribution;
use crate::event::Value;
use crate::stats::StatsError;
use crate::stats::categorical;
use crate::stats::window::{KsReference, SlidingKs};

use super::lifecycle::Phase;

/// Index of the "unknown category" bucket in a categorical window's counts:
/// the last one, after the baseline's categories.
fn unknown_bucket(categories: usize) -> usize {
    categories
}

/// Index into a categorical window's counts (`buckets` = categories + 1).
fn category_index(value: Value, buckets: usize) -> u32 {
    let unknown = unknown_bucket(buckets - 1) as u32;
    match value {
        Value::Category(i) => i.min(unknown),
        _ => unknown,
    }
}

/// The window and test of one quantity.
#[derive(Debug, Clone)]
pub enum Test {
    /// KS against a numeric baseline.
    Ks {
        /// The sliding window.
        window: SlidingKs,
    },
    /// Chi-square against baseline category proportions.
    ChiSquare {
        /// Category index per windowed value, oldest first.
        ring: VecDeque<u32>,
        /// Count per category (last = unknown).
        counts: Vec<u64>,
        /// Baseline counts per category (last = 0 for unknown).
        baseline_counts: Vec<u64>,
        /// Baseline proportions per category (last = 0 for unknown).
        proportions: Vec<f64>,
        /// Window capacity.
        capacity: usize,
    },
}

/// The latest outcome of a check, for the API and for evidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The statistic (D, or χ²).
    pub statistic: f64,
    /// The threshold it was compared with.
    pub threshold: f64,
    /// Whether it counted as drifted.
    pub drifted: bool,
    /// Window size n at the check.
    pub n: u64,
}

/// One monitored quantity.
#[derive(Debug, Clone)]
pub struct Check {
    /// Feature name, or `"prediction"`.
    pub name: String,
    /// What kind of check this is (for routing).
    pub kind: CheckKind,
    /// Window and test.
    pub test: Test,
    /// Alert phase.
    pub phase: Phase,
    /// Latest outcome.
    pub last: Option<Outcome>,
    /// Event time of each windowed value, oldest first; kept only for
    /// event-time windows (empty for count windows).
    pub times: VecDeque<i64>,
    /// The full window's calibrated threshold (n·m·D*), once looked up: the
    /// model's settings and baseline are fixed for the check's life, and a
    /// look-up in the shared cache per event costs a hash of the request.
    pub calibrated: Cell<Option<u64>>,
}

impl Check {
    /// A check for one baseline distribution with a window of `capacity`.
    pub fn new(
        name: &str,
        kind: CheckKind,
        distribution: &Distribution,
        capacity: usize,
    ) -> Result<Check, StatsError> {
        Ok(Check {
            name: name.to_string(),
            kind,
            test: Test::new(distribution, capacity)?,
            phase: Phase::Inactive,
            last: None,
            times: VecDeque::new(),
            calibrated: Cell::new(None),
        })
    }

    /// Event-time windows: adds a value without evicting, remembering its
    /// time. Missing values are not windowed.
    pub fn insert_at(&mut self, value: Value, at_ms: i64) -> Result<(), StatsError> {
        if self.test.insert(value)? {
            self.times.push_back(at_ms);
        }
        Ok(())
    }

    /// Event-time windows: evicts values older than `cutoff_ms`.
    pub fn evict_before(&mut self, cutoff_ms: i64) {
        while self.times.front().is_some_and(|&t| t < cutoff_ms) {
            self.times.pop_front();
            self.test.pop_oldest();
        }
    }

    /// Baseline size m.
    pub fn baseline_len(&self) -> u64 {
        match &self.test {
            Test::Ks { window } => window.reference().size(),
            Test::ChiSquare {
                baseline_counts, ..
            } => baseline_counts.iter().sum(),
        }
    }

    /// Current window size n.
    pub fn window_len(&self) -> usize {
        match &self.test {
            Test::Ks { window } => window.len(),
            Test::ChiSquare { ring, .. } => ring.len(),
        }
    }

    /// Window capacity.
    pub fn capacity(&self) -> usize {
        match &self.test {
            Test::Ks { window } => window.capacity(),
            Test::ChiSquare { capacity, .. } => *capacity,
        }
    }
}

impl Test {
    fn new(distribution: &Distribution, capacity: usize) -> Result<Test, StatsError> {
        match distribution {
            Distribution::Numeric { values, .. } => {
                let reference = Arc::new(KsReference::new(values)?);
                Ok(Test::Ks {
                    window: SlidingKs::new(reference, capacity)?,
                })
            }
            Distribution::Categorical { counts } => {
                let mut baseline_counts: Vec<u64> = counts.values().copied().collect();
                baseline_counts.push(0);
                let total: u64 = baseline_counts.iter().sum();
                let proportions = baseline_counts
                    .iter()
                    .map(|&c| c as f64 / total as f64)
                    .collect();
                Ok(Test::ChiSquare {
                    ring: VecDeque::with_capacity(capacity),
                    counts: vec![0; baseline_counts.len()],
                    baseline_counts,
                    proportions,
                    capacity,
                })
            }
        }
    }

    /// Adds a value to the window; missing values are not windowed (they
    /// are tracked by the missing-rate check). A value of the wrong kind
    /// cannot reach here: decoding checked it against the same baseline.
    pub fn push(&mut self, value: Value) -> Result<(), StatsError> {
        match (self, value) {
            // The monitor settles the tree only when it needs D (see
            // `SlidingKs::d_scaled_at_most`).
            (Test::Ks { window }, Value::Number(x)) => window.push_deferred(x).map(|_| ()),
            (
                Test::ChiSquare {
                    ring,
                    counts,
                    capacity,
                    ..
                },
                v @ (Value::Category(_) | Value::UnknownCategory),
            ) => {
                let index = category_index(v, counts.len());
                if ring.len() == *capacity
                    && let Some(old) = ring.pop_front()
                {
                    counts[old as usize] -= 1;
                }
                ring.push_back(index);
                counts[index as usize] += 1;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Adds a value without evicting (event-time windows); returns whether
    /// it was windowed (missing values are not).
    pub fn insert(&mut self, value: Value) -> Result<bool, StatsError> {
        match (self, value) {
            (Test::Ks { window }, Value::Number(x)) => window.insert(x).map(|_| true),
            (
                Test::ChiSquare { ring, counts, .. },
                v @ (Value::Category(_) | Value::UnknownCategory),
            ) => {
                let index = category_index(v, counts.len());
                ring.push_back(index);
                counts[index as usize] += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Removes the oldest windowed value (event-time windows).
    pub fn pop_oldest(&mut self) {
        match self {
            Test::Ks { window } => {
                window.pop_oldest();
            }
            Test::ChiSquare { ring, counts, .. } => {
                if let Some(old) = ring.pop_front() {
                    counts[old as usize] -= 1;
                }
            }
        }
    }

    /// The statistic for the current window: D (as n·m·D and as f64) for
    /// KS, χ² for categorical.
    pub fn statistic(&self) -> Result<Statistic, StatsError> {
        match self {
            Test::Ks { window } => Ok(Statistic::Ks {
                d_scaled: window.d_scaled(),
                d: window.statistic(),
            }),
            Test::ChiSquare {
                counts,
                proportions,
                ..
            } => {
                // The verdict compares χ² with a critical value computed once;
                // the p-value is computed only for evidence.
                let (chi2, dof) =
                    categorical::chisquare_statistic_against_proportions(counts, proportions)?;
                Ok(Statistic::ChiSquare {
                    chi2,
                    dof: dof as u64,
                })
            }
        }
    }

    /// PSI of the window against the baseline (categorical only).
    pub fn psi(&self) -> Option<f64> {
        match self {
            Test::ChiSquare {
                counts,
                baseline_counts,
                ..
            } => categorical::psi_categorical(baseline_counts, counts).ok(),
            Test::Ks { .. } => None,
        }
    }
}

/// A statistic as the threshold logic needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// KS: exact numerator over n·m, and D.
    Ks {
        /// n·m·D.
        d_scaled: u64,
        /// D.
        d: f64,
    },
    /// Chi-square and its degrees of freedom.
    ChiSquare {
        /// χ².
        chi2: f64,
        /// Degrees of freedom.
        dof: u64,
    },
}
