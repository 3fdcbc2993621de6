//! Alert lifecycle: pending → firing → resolved, per (model, check, feature),
//! with `for` persistence and resolve hysteresis — decided on event time
//! and event counts only, so replay and live runs agree.

use serde::{Deserialize, Serialize};

/// Persistence rules, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Persistence {
    /// Consecutive drifted checks needed before firing.
    pub for_checks: u32,
    /// Event time the condition must have held before firing (ms).
    pub for_duration_ms: i64,
    /// Consecutive clean checks needed before a firing alert resolves.
    pub resolve_after_checks: u32,
}

/// Where one alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Phase {
    /// Condition not holding.
    #[default]
    Inactive,
    /// Condition holding, not yet for long enough.
    Pending {
        /// Event time the condition started holding.
        since_ms: i64,
        /// Consecutive drifted checks so far.
        checks: u32,
    },
    /// Alert is firing.
    Firing {
        /// Event time it started firing.
        since_ms: i64,
        /// Consecutive clean checks so far (towards resolving).
        clean_checks: u32,
    },
}

/// A change worth telling people about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Started firing at this event time.
    Fired {
        /// Event time.
        at_ms: i64,
    },
    /// Stopped firing: it had fired at `since_ms`, resolved at `at_ms`.
    Resolved {
        /// When it had started firing.
        since_ms: i64,
        /// Event time of resolution.
        at_ms: i64,
    },
}

impl Phase {
    /// Advances the phase by one check outcome at event time `now_ms`.
    pub fn step(&mut self, drifted: bool, now_ms: i64, rules: &Persistence) -> Option<Transition> {
        let (next, transition) = match (*self, drifted) {
            (Phase::Inactive, false) => (Phase::Inactive, None),
            (Phase::Inactive, true) => (
                Phase::Pending {
                    since_ms: now_ms,
                    checks: 1,
                },
                None,
            ),
            (Phase::Pending { .. }, false) => (Phase::Inactive, None),
            (Phase::Pending { since_ms, checks }, true) => {
                let checks = checks.saturating_add(1);
                Self::pending_or_fire(since_ms, checks, now_ms, rules)
            }
            (Phase::Firing { since_ms, .. }, true) => (
                Phase::Firing {
                    since_ms,
                    clean_checks: 0,
                },
                None,
            ),
            (
                Phase::Firing {
                    since_ms,
                    clean_checks,
                },
                false,
            ) => {
                let clean = clean_checks.saturating_add(1);
                if clean >= rules.resolve_after_checks {
                    (
                        Phase::Inactive,
                        Some(Transition::Resolved {
                            since_ms,
                            at_ms: now_ms,
                        }),
                    )
                } else {
                    (
                        Phase::Firing {
                            since_ms,
                            clean_checks: clean,
                        },
                        None,
                    )
                }
            }
        };
        // A single drifted check fires at once when no persistence is asked.
        let (next, transition) = match (next, transition) {
            (Phase::Pending { since_ms, checks }, None) => {
                Self::pending_or_fire(since_ms, checks, now_ms, rules)
            }
            other => other,
        };
        *self = next;
        transition
    }

    fn pending_or_fire(
        since_ms: i64,
        checks: u32,
        now_ms: i64,
        rules: &Persistence,
    ) -> (Phase, Option<Transition>) {
        if checks >= rules.for_checks && now_ms - since_ms >= rules.for_duration_ms {
            (
                Phase::Firing {
                    since_ms: now_ms,
                    clean_checks: 0,
                },
                Some(Transition::Fired { at_ms: now_ms }),
            )
        } else {
            (Phase::Pending { since_ms, checks }, None)
        }
    }

    /// True while firing.
    pub fn is_firing(&self) -> bool {
        matches!(self, Phase::Firing { .. })
    }

    /// A short name for the API.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Inactive => "ok",
            Phase::Pending { .. } => "pending",
            Phase::Firing { .. } => "firing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Persistence = Persistence {
        for_checks: 3,
        for_duration_ms: 0,
        resolve_after_checks: 2,
    };

    fn run(outcomes: &[bool]) -> Vec<Option<Transition>> {
        let mut phase = Phase::default();
        outcomes
            .iter()
            .enumerate()
            .map(|(t, &d)| phase.step(d, t as i64, &RULES))
            .collect()
    }

    #[test]
    fn fires_after_for_checks_and_resolves_after_hysteresis() {
        let out = run(&[true, true, true, true, false, true, false, false, false]);
        assert_eq!(out[2], Some(Transition::Fired { at_ms: 2 }));
        assert!(out[..2].iter().all(Option::is_none));
        assert_eq!(out[4], None, "one clean check is not enough");
        assert_eq!(
            out[7],
            Some(Transition::Resolved {
                since_ms: 2,
                at_ms: 7
            })
        );
        assert_eq!(out.iter().flatten().count(), 2);
    }

    #[test]
    fn a_break_while_pending_starts_over() {
        let out = run(&[true, true, false, true, true, true]);
        assert_eq!(out[5], Some(Transition::Fired { at_ms: 5 }));
        assert_eq!(out.iter().flatten().count(), 1);
    }

    #[test]
    fn duration_must_also_hold() {
        let rules = Persistence {
            for_checks: 1,
            for_duration_ms: 10,
            resolve_after_checks: 1,
        };
        let mut phase = Phase::default();
        assert_eq!(phase.step(true, 0, &rules), None);
        assert_eq!(phase.step(true, 5, &rules), None);
        assert_eq!(
            phase.step(true, 10, &rules),
            Some(Transition::Fired { at_ms: 10 })
        );
    }

    #[test]
    fn no_persistence_fires_at_once() {
        let rules = Persistence {
            for_checks: 1,
            for_duration_ms: 0,
            resolve_after_checks: 1,
        };
        let mut phase = Phase::default();
        assert_eq!(
            phase.step(true, 4, &rules),
            Some(Transition::Fired { at_ms: 4 })
        );
    }
}
