//! Reference metrics from the rows that have both a label and a
//! prediction, accumulated in one pass because the rule that picks the
//! metric depends on every row:
//!
//! - a label or a prediction that is text or a boolean: classification;
//!   accuracy is the share of rows where they are equal (numbers compare
//!   by value, so `1` and `1.0` agree);
//! - numeric labels that are all 0 or 1 with scores in [0, 1] that are not
//!   all whole numbers: a binary classifier's scores; accuracy with class 1
//!   when the score is above 0.5 (scikit-learn's `predict`);
//! - whole-number labels and whole-number predictions: classes; accuracy;
//! - otherwise: regression; MAE and RMSE.

use crate::baseline::{MetricValue, ReferenceMetrics};

use super::column::Cell;

/// A label or prediction as the metrics need it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observed {
    /// A number.
    Number(f64),
    /// A class name (booleans as `"true"` / `"false"`).
    Class(String),
}

impl Observed {
    pub(crate) fn from_cell(cell: &Cell) -> Option<Observed> {
        match cell {
            Cell::Missing => None,
            Cell::Number { value, .. } => Some(Observed::Number(*value)),
            Cell::Text(t) => Some(Observed::Class(t.to_string())),
            Cell::Bool(b) => Some(Observed::Class(b.to_string())),
        }
    }

    fn agrees(&self, other: &Observed) -> bool {
        match (self, other) {
            (Observed::Number(a), Observed::Number(b)) => a == b,
            (Observed::Class(a), Observed::Class(b)) => a == b,
            (Observed::Number(a), Observed::Class(b))
            | (Observed::Class(b), Observed::Number(a)) => b.parse::<f64>().is_ok_and(|b| b == *a),
        }
    }
}

/// Running sums for every candidate metric, and the facts that choose one.
#[derive(Debug, Clone)]
pub(crate) struct MetricsAccumulator {
    n: u64,
    equal: u64,
    thresholded: u64,
    abs: Kahan,
    sq: Kahan,
    labels_numeric: bool,
    labels_binary: bool,
    labels_whole: bool,
    predictions_numeric: bool,
    predictions_unit: bool,
    predictions_whole: bool,
}

impl Default for MetricsAccumulator {
    fn default() -> Self {
        MetricsAccumulator {
            n: 0,
            equal: 0,
            thresholded: 0,
            abs: Kahan::default(),
            sq: Kahan::default(),
            labels_numeric: true,
            labels_binary: true,
            labels_whole: true,
            predictions_numeric: true,
            predictions_unit: true,
            predictions_whole: true,
        }
    }
}

impl MetricsAccumulator {
    /// One row with both a prediction and a label.
    pub(crate) fn observe(&mut self, prediction: &Observed, label: &Observed) {
        self.n += 1;
        self.equal += u64::from(prediction.agrees(label));
        match label {
            Observed::Number(y) => {
                self.labels_binary &= *y == 0.0 || *y == 1.0;
                self.labels_whole &= y.fract() == 0.0;
            }
            Observed::Class(_) => self.labels_numeric = false,
        }
        match prediction {
            Observed::Number(p) => {
                self.predictions_unit &= (0.0..=1.0).contains(p);
                self.predictions_whole &= p.fract() == 0.0;
            }
            Observed::Class(_) => self.predictions_numeric = false,
        }
        if let (Observed::Number(p), Observed::Number(y)) = (prediction, label) {
            let error = p - y;
            self.abs.add(error.abs());
            self.sq.add(error * error);
            self.thresholded += u64::from((*p > 0.5) == (*y == 1.0));
        }
    }

    /// The metrics and a sentence saying which rule chose them.
    pub(crate) fn finish(self) -> (ReferenceMetrics, Option<String>) {
        let n = self.n;
        if n == 0 {
            return (ReferenceMetrics::default(), None);
        }
        let share = |count: u64| MetricValue {
            value: count as f64 / n as f64,
            n,
        };
        let mut metrics = ReferenceMetrics::default();
        let numeric = self.labels_numeric && self.predictions_numeric;
        let note = if !numeric {
            metrics.accuracy = Some(share(self.equal));
            format!("accuracy over {n} labelled rows (class labels)")
        } else if self.labels_binary && self.predictions_unit && !self.predictions_whole {
            metrics.accuracy = Some(share(self.thresholded));
            format!(
                "accuracy over {n} labelled rows: predictions are scores in [0, 1] and labels \
                 0/1, so a score above 0.5 counts as class 1"
            )
        } else if self.labels_whole && self.predictions_whole {
            metrics.accuracy = Some(share(self.equal));
            format!("accuracy over {n} labelled rows (whole-number classes)")
        } else {
            metrics.mae = Some(MetricValue {
                value: self.abs.sum() / n as f64,
                n,
            });
            metrics.rmse = Some(MetricValue {
                value: (self.sq.sum() / n as f64).sqrt(),
                n,
            });
            format!("MAE and RMSE over {n} labelled rows (regression)")
        };
        (metrics, Some(note))
    }
}

/// Compensated summation: a million squared errors add up without losing
/// the small ones.
#[derive(Debug, Clone, Copy, Default)]
struct Kahan {
    sum: f64,
    compensation: f64,
}

impl Kahan {
    fn add(&mut self, x: f64) {
        let y = x - self.compensation;
        let t = self.sum + y;
        self.compensation = (t - self.sum) - y;
        self.sum = t;
    }

    fn sum(&self) -> f64 {
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rows: &[(Observed, Observed)]) -> (ReferenceMetrics, Option<String>) {
        let mut acc = MetricsAccumulator::default();
        for (p, l) in rows {
            acc.observe(p, l);
        }
        acc.finish()
    }

    use Observed::{Class, Number};

    #[test]
    fn class_labels_give_accuracy() {
        let (m, _) = run(&[
            (Class("a".into()), Class("a".into())),
            (Class("b".into()), Class("a".into())),
        ]);
        assert_eq!(m.accuracy, Some(MetricValue { value: 0.5, n: 2 }));
        assert!(m.mae.is_none());
    }

    #[test]
    fn scores_with_binary_labels_use_one_half() {
        let (m, note) = run(&[
            (Number(0.9), Number(1.0)),
            (Number(0.2), Number(0.0)),
            (Number(0.5), Number(1.0)),
            (Number(0.7), Number(0.0)),
        ]);
        assert_eq!(m.accuracy, Some(MetricValue { value: 0.5, n: 4 }));
        assert!(note.unwrap().contains("0.5"));
    }

    #[test]
    fn whole_numbers_are_classes_and_reals_regression() {
        let (m, _) = run(&[(Number(2.0), Number(2.0)), (Number(3.0), Number(1.0))]);
        assert_eq!(m.accuracy, Some(MetricValue { value: 0.5, n: 2 }));
        let (m, _) = run(&[(Number(2.5), Number(2.0)), (Number(3.0), Number(1.0))]);
        assert_eq!(m.mae, Some(MetricValue { value: 1.25, n: 2 }));
        let rmse = ((0.25 + 4.0) / 2.0f64).sqrt();
        assert_eq!(m.rmse, Some(MetricValue { value: rmse, n: 2 }));
    }
}
