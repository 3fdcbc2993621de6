//! What the dashboard draws for one check: the baseline and window ECDFs
//! of a numeric quantity with the KS gap D, or baseline and window
//! proportions per category of a categorical one.
//!
//! The monitor is only locked to copy the window (at most its capacity)
//! and to clone the shared baseline reference; the curves are built after
//! the lock is released.

use std::sync::Arc;

use serde::Serialize;

use crate::baseline::Distribution;
use crate::monitor::ModelMonitor;
use crate::monitor::check::{Check, Test};
use crate::stats::window::KsReference;

/// Most points per drawn ECDF.
pub const MAX_POINTS: usize = 400;

/// A check's distributions, as copied from the monitor.
pub enum Snapshot {
    /// A numeric check: the window's values and the baseline reference.
    Numeric {
        /// Window values, in arrival order.
        window: Vec<f64>,
        /// Distinct baseline values with multiplicities.
        reference: Arc<KsReference>,
    },
    /// A categorical check: counts per category, the last one "unknown".
    Categorical {
        /// Category names in the monitor's index order.
        names: Vec<String>,
        /// Window count per category (last = unknown).
        window: Vec<u64>,
        /// Baseline count per category (last = 0).
        baseline: Vec<u64>,
    },
}

/// A step function drawn through its jump points: F(x[i]) = y[i].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ecdf {
    /// Jump positions, ascending.
    pub x: Vec<f64>,
    /// Cumulative fraction at each position.
    pub y: Vec<f64>,
}

/// Where the KS statistic is attained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gap {
    /// D = sup |F_window − F_baseline|.
    pub d: f64,
    /// A value at which the supremum is attained.
    pub at: f64,
    /// F_baseline there.
    pub baseline: f64,
    /// F_window there.
    pub window: f64,
}

/// Baseline against window for a numeric check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumericView {
    /// Window size n.
    pub n: u64,
    /// Baseline size m.
    pub m: u64,
    /// Baseline ECDF, at most [`MAX_POINTS`] points.
    pub baseline: Ecdf,
    /// Window ECDF, at most [`MAX_POINTS`] points.
    pub window: Ecdf,
    /// The gap; `None` while the window is empty.
    pub gap: Option<Gap>,
}

/// One category's share in the baseline and in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryShare {
    /// Category (`(unknown)` for values absent from the baseline).
    pub name: String,
    /// Baseline count.
    pub baseline_count: u64,
    /// Window count.
    pub window_count: u64,
    /// Baseline proportion.
    pub baseline: f64,
    /// Window proportion (0 while the window is empty).
    pub window: f64,
}

/// Baseline against window for a categorical check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoricalView {
    /// Window size n.
    pub n: u64,
    /// Baseline size m.
    pub m: u64,
    /// Per category, baseline order; "unknown" only when seen.
    pub categories: Vec<CategoryShare>,
}

/// Label of the bucket for categories the baseline never saw.
pub const UNKNOWN: &str = "(unknown)";

impl Snapshot {
    /// Copies what is needed from one check of `model`.
    pub fn of(model: &ModelMonitor, check: &Check) -> Snapshot {
        match &check.test {
            Test::Ks { window } => Snapshot::Numeric {
                window: window.values().collect(),
                reference: Arc::clone(window.reference()),
            },
            Test::ChiSquare {
                counts,
                baseline_counts,
                ..
            } => Snapshot::Categorical {
                names: category_names(model, check),
                window: counts.clone(),
                baseline: baseline_counts.clone(),
            },
        }
    }
}

/// Category names of a categorical check, in the order of its counts (the
/// baseline map's key order, which is how decoding numbers categories).
fn category_names(model: &ModelMonitor, check: &Check) -> Vec<String> {
    let baseline = model.baseline();
    let distribution = match baseline.feature(&check.name) {
        Some((_, feature)) if check.kind != crate::alert::CheckKind::PredictionDrift => {
            Some(&feature.distribution)
        }
        _ => baseline.prediction.as_ref(),
    };
    match distribution {
        Some(Distribution::Categorical { counts }) => counts.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The ECDFs of a numeric check and the KS gap between them.
pub fn numeric_view(window: &[f64], reference: &KsReference) -> NumericView {
    let mut sorted = window.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (window_x, window_counts) = distinct(&sorted);
    let baseline_counts: Vec<u64> = reference
        .multiplicities()
        .iter()
        .map(|&c| u64::from(c))
        .collect();
    let (n, m) = (sorted.len() as u64, reference.size());
    let baseline_y = cumulative(&baseline_counts, m);
    let window_y = cumulative(&window_counts, n);
    let gap = (n > 0).then(|| ks_gap(reference.values(), &baseline_y, &window_x, &window_y));
    NumericView {
        n,
        m,
        baseline: downsample(reference.values(), &baseline_y, MAX_POINTS),
        window: downsample(&window_x, &window_y, MAX_POINTS),
        gap,
    }
}

/// Distinct values of a sorted slice with their counts.
fn distinct(sorted: &[f64]) -> (Vec<f64>, Vec<u64>) {
    let mut values: Vec<f64> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    for &x in sorted {
        match values.last() {
            Some(&last) if last == x => {
                if let Some(c) = counts.last_mut() {
                    *c += 1;
                }
            }
            _ => {
                values.push(x);
                counts.push(1);
            }
        }
    }
    (values, counts)
}

/// Running sums of `counts` divided by `total`.
fn cumulative(counts: &[u64], total: u64) -> Vec<f64> {
    let mut sum = 0u64;
    counts
        .iter()
        .map(|&c| {
            sum += c;
            if total == 0 {
                0.0
            } else {
                sum as f64 / total as f64
            }
        })
        .collect()
}

/// sup |F_w − F_b| over the union of both jump sets (right-continuous
/// ECDFs attain it at a jump), by one merge walk.
fn ks_gap(bx: &[f64], by: &[f64], wx: &[f64], wy: &[f64]) -> Gap {
    let (mut i, mut j) = (0, 0);
    let mut best = Gap {
        d: -1.0,
        at: 0.0,
        baseline: 0.0,
        window: 0.0,
    };
    while i < bx.len() || j < wx.len() {
        let x = match (bx.get(i), wx.get(j)) {
            (Some(&b), Some(&w)) => b.min(w),
            (Some(&b), None) => b,
            (None, Some(&w)) => w,
            (None, None) => break,
        };
        while i < bx.len() && bx[i] <= x {
            i += 1;
        }
        while j < wx.len() && wx[j] <= x {
            j += 1;
        }
        let fb = if i == 0 { 0.0 } else { by[i - 1] };
        let fw = if j == 0 { 0.0 } else { wy[j - 1] };
        if (fw - fb).abs() > best.d {
            best = Gap {
                d: (fw - fb).abs(),
                at: x,
                baseline: fb,
                window: fw,
            };
        }
    }
    best.d = best.d.max(0.0);
    best
}

/// Keeps a jump only once F has risen by a visible amount since the last
/// kept one, plus the first and last: the drawn curve is then within
/// 1/(max − 2) of the true one everywhere, in at most `max` points.
fn downsample(x: &[f64], y: &[f64], max: usize) -> Ecdf {
    if x.len() <= max {
        return Ecdf {
            x: x.to_vec(),
            y: y.to_vec(),
        };
    }
    let step = 1.0 / (max.saturating_sub(2).max(1)) as f64;
    let mut out = Ecdf {
        x: Vec::with_capacity(max),
        y: Vec::with_capacity(max),
    };
    let last = x.len() - 1;
    let mut kept = f64::NEG_INFINITY;
    for i in 0..x.len() {
        let first = i == 0;
        if first || i == last || y[i] - kept >= step {
            out.x.push(x[i]);
            out.y.push(y[i]);
            kept = y[i];
        }
    }
    out
}

/// Baseline and window proportions per category.
pub fn categorical_view(names: &[String], window: &[u64], baseline: &[u64]) -> CategoricalView {
    let n: u64 = window.iter().sum();
    let m: u64 = baseline.iter().sum();
    let share = |count: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            count as f64 / total as f64
        }
    };
    let categories = (0..window.len().max(baseline.len()))
        .map(|i| {
            let (w, b) = (
                window.get(i).copied().unwrap_or(0),
                baseline.get(i).copied().unwrap_or(0),
            );
            let name = names.get(i).cloned().unwrap_or_else(|| UNKNOWN.to_string());
            (name, w, b)
        })
        // The unknown bucket is noise unless something landed in it.
        .filter(|(name, w, b)| name != UNKNOWN || *w > 0 || *b > 0)
        .map(|(name, w, b)| CategoryShare {
            name,
            baseline_count: b,
            window_count: w,
            baseline: share(b, m),
            window: share(w, n),
        })
        .collect();
    CategoricalView { n, m, categories }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ks::ks_2samp;

    fn reference(values: &[f64]) -> KsReference {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        KsReference::new(&sorted).unwrap()
    }

    #[test]
    fn gap_equals_scipy_statistic_with_ties() {
        let baseline: Vec<f64> = (0..200).map(|i| f64::from(i % 37) * 0.5).collect();
        let window: Vec<f64> = (0..90).map(|i| f64::from(i % 23) * 0.7 + 1.0).collect();
        let view = numeric_view(&window, &reference(&baseline));
        let gap = view.gap.unwrap();
        let expected = ks_2samp(&window, &baseline).unwrap().statistic;
        assert!((gap.d - expected).abs() < 1e-12, "{} vs {expected}", gap.d);
        assert!(((gap.window - gap.baseline).abs() - gap.d).abs() < 1e-12);
        assert_eq!((view.n, view.m), (90, 200));
    }

    #[test]
    fn curves_are_downsampled_but_keep_their_ends() {
        let baseline: Vec<f64> = (0..5000).map(f64::from).collect();
        let view = numeric_view(&[1.0, 2.0], &reference(&baseline));
        assert!(view.baseline.x.len() <= MAX_POINTS);
        assert_eq!(view.baseline.x.first(), Some(&0.0));
        assert_eq!(view.baseline.x.last(), Some(&4999.0));
        assert_eq!(view.baseline.y.last(), Some(&1.0));
        // A kept point is the first to rise by a step or more, so no
        // two kept points are more than a step and one jump (1/m) apart.
        let rises = view.baseline.y.windows(2).map(|w| w[1] - w[0]);
        assert!(rises.fold(0.0, f64::max) <= 1.0 / 398.0 + 1.0 / 5000.0 + 1e-9);
    }

    #[test]
    fn empty_window_has_no_gap() {
        let view = numeric_view(&[], &reference(&[1.0, 2.0]));
        assert!(view.gap.is_none());
        assert!(view.window.x.is_empty());
    }

    #[test]
    fn categories_show_unknown_only_when_seen() {
        let names = vec!["a".to_string(), "b".to_string()];
        let view = categorical_view(&names, &[3, 1, 0], &[5, 5, 0]);
        assert_eq!(view.categories.len(), 2);
        assert_eq!(view.categories[0].window, 0.75);
        assert_eq!(view.categories[1].baseline, 0.5);
        let view = categorical_view(&names, &[3, 0, 1], &[5, 5, 0]);
        assert_eq!(view.categories[2].name, UNKNOWN);
        assert_eq!(view.categories[2].window, 0.25);
    }
}
