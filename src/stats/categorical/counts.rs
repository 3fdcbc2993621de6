//! Per-category counts of a sliding window, updated per event.

use serde::{Deserialize, Serialize};

use super::{ProportionsChiSquare, chisquare_against_proportions, psi_categorical};
use crate::stats::StatsError;

/// Which bucket an event falls in. The caller maps category values to
/// indices with the baseline's dictionary; a value the baseline never saw is
/// `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The category with this index in the baseline.
    Known(usize),
    /// A value outside the baseline's categories.
    Unknown,
}

/// Counts per baseline category plus one bucket for unknown values,
/// maintained per event: the window increments on insert and decrements on
/// evict, each O(1).
///
/// Only the counts are stored, not their total, so a deserialized value
/// cannot hold a total that disagrees with its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCounts {
    known: Vec<u64>,
    unknown: u64,
}

impl CategoryCounts {
    /// Empty counts for a baseline with `categories` categories.
    pub fn new(categories: usize) -> Self {
        Self {
            known: vec![0; categories],
            unknown: 0,
        }
    }

    /// Counts one event entering the window.
    pub fn insert(&mut self, category: Category) -> Result<(), StatsError> {
        let slot = self.slot(category)?;
        *slot = slot
            .checked_add(1)
            .ok_or_else(|| StatsError::InvalidArgument {
                name: "category",
                reason: "count overflows u64".into(),
            })?;
        Ok(())
    }

    /// Counts one event leaving the window. Evicting from an empty bucket is
    /// an error: the window and its counts have diverged.
    pub fn evict(&mut self, category: Category) -> Result<(), StatsError> {
        let slot = self.slot(category)?;
        *slot = slot
            .checked_sub(1)
            .ok_or_else(|| StatsError::InvalidArgument {
                name: "category",
                reason: format!("evicting {category:?} whose count is already 0"),
            })?;
        Ok(())
    }

    /// Counts of the baseline's categories, by index.
    pub fn known(&self) -> &[u64] {
        &self.known
    }

    /// Events whose value the baseline never saw.
    pub fn unknown(&self) -> u64 {
        self.unknown
    }

    /// All events in the window. O(categories).
    pub fn total(&self) -> u64 {
        self.known
            .iter()
            .fold(self.unknown, |sum, c| sum.saturating_add(*c))
    }

    /// Share of the window's events with an unknown value; `None` for an
    /// empty window.
    pub fn unknown_rate(&self) -> Option<f64> {
        match self.total() {
            0 => None,
            total => Some(self.unknown as f64 / total as f64),
        }
    }

    /// Chi-square test against the baseline's proportions, one per known
    /// category. Unknown events, like events in categories with baseline
    /// proportion 0, are set aside and counted in `unseen` (see
    /// [`chisquare_against_proportions`]).
    pub fn chi_square_against(
        &self,
        baseline_proportions: &[f64],
    ) -> Result<ProportionsChiSquare, StatsError> {
        let mut result = chisquare_against_proportions(&self.known, baseline_proportions)?;
        result.unseen = result.unseen.saturating_add(self.unknown);
        Ok(result)
    }

    /// PSI of the window against the baseline's counts per known category.
    /// The unknown bucket is one more category with baseline count 0, so
    /// unknown values raise the PSI through Evidently's empty-bin floor, as
    /// unseen categories do in Evidently.
    pub fn psi_against(&self, baseline_counts: &[u64]) -> Result<f64, StatsError> {
        if baseline_counts.len() != self.known.len() {
            return Err(StatsError::InvalidArgument {
                name: "baseline_counts",
                reason: format!(
                    "{} categories, the window counts {}",
                    baseline_counts.len(),
                    self.known.len()
                ),
            });
        }
        let reference: Vec<u64> = baseline_counts.iter().copied().chain([0]).collect();
        let current: Vec<u64> = self.known.iter().copied().chain([self.unknown]).collect();
        psi_categorical(&reference, &current)
    }

    fn slot(&mut self, category: Category) -> Result<&mut u64, StatsError> {
        let categories = self.known.len();
        match category {
            Category::Unknown => Ok(&mut self.unknown),
            Category::Known(index) => {
                self.known
                    .get_mut(index)
                    .ok_or_else(|| StatsError::InvalidArgument {
                        name: "category",
                        reason: format!(
                            "index {index} but the baseline has {categories} categories"
                        ),
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_of(events: &[Category], categories: usize) -> CategoryCounts {
        let mut counts = CategoryCounts::new(categories);
        for e in events {
            counts.insert(*e).unwrap();
        }
        counts
    }

    #[test]
    fn insert_and_evict_track_a_window() {
        use Category::*;
        let mut counts = counts_of(&[Known(0), Known(2), Unknown, Known(2)], 3);
        assert_eq!(
            (counts.known(), counts.unknown(), counts.total()),
            (&[1, 0, 2][..], 1, 4)
        );
        counts.evict(Known(2)).unwrap();
        counts.evict(Unknown).unwrap();
        assert_eq!(
            (counts.known(), counts.unknown(), counts.total()),
            (&[1, 0, 1][..], 0, 2)
        );
        assert_eq!(counts.unknown_rate(), Some(0.0));
    }

    #[test]
    fn bad_updates_are_errors_and_leave_counts_alone() {
        let mut counts = counts_of(&[Category::Known(1)], 2);
        let before = counts.clone();
        for bad in [Category::Known(0), Category::Unknown] {
            assert!(matches!(
                counts.evict(bad),
                Err(StatsError::InvalidArgument {
                    name: "category",
                    ..
                })
            ));
        }
        assert!(counts.insert(Category::Known(2)).is_err());
        assert_eq!(counts, before);
        assert_eq!(CategoryCounts::new(2).unknown_rate(), None);
    }

    #[test]
    fn serde_round_trip() {
        let counts = counts_of(&[Category::Known(1), Category::Unknown], 2);
        let json = serde_json::to_string(&counts).unwrap();
        assert_eq!(json, r#"{"known":[0,1],"unknown":1}"#);
        let back: CategoryCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, counts);
    }

    #[test]
    fn chi_square_sets_unknowns_aside() {
        use Category::*;
        let events = [
            Known(0),
            Known(0),
            Known(1),
            Known(1),
            Unknown,
            Unknown,
            Unknown,
        ];
        let r = counts_of(&events, 2)
            .chi_square_against(&[0.5, 0.5])
            .unwrap();
        assert_eq!(
            (r.tested, r.unseen, r.test.statistic, r.test.pvalue),
            (4, 3, 0.0, 1.0)
        );
    }

    #[test]
    fn psi_counts_unknowns_as_an_unseen_category() {
        let mut counts = counts_of(&[Category::Known(0), Category::Known(1)], 2);
        assert_eq!(counts.psi_against(&[10, 10]).unwrap(), 0.0);
        counts.insert(Category::Unknown).unwrap();
        let expected = psi_categorical(&[10, 10, 0], &[1, 1, 1]).unwrap();
        assert_eq!(counts.psi_against(&[10, 10]).unwrap(), expected);
        assert!(expected > 0.0);
        assert!(counts.psi_against(&[10]).is_err());
    }
}
