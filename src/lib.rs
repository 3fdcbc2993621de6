//! driftwarden watches machine-learning models in production: it consumes
//! their prediction events, keeps a sliding window per feature, tests each
//! window against a baseline snapshot, and raises alerts and retraining
//! triggers when a model drifts.
//!
//! # Crate map
//!
//! | module | concept |
//! |---|---|
//! | [`stats`] | the statistics core: KS (exact, as scipy), sliding-window KS, chi-square, PSI, proportions, calibration |
//!
//! The statistics core is pure: no I/O, no clock, no async.

pub mod stats;
