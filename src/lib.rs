//! driftwarden watches machine-learning models in production: it consumes
//! their prediction events from Kafka, keeps a sliding window per feature,
//! tests each window against a baseline snapshot (Kolmogorov–Smirnov for
//! numeric features, chi-square and PSI for categorical ones), and when a
//! model drifts it alerts people (webhook, Slack, email) and publishes a
//! retraining trigger.
//!
//! # Crate map
//!
//! | module | concept |
//! |---|---|
//! | [`stats`] | the statistics core: KS exactly as scipy, sliding-window KS, chi-square, PSI, proportions, calibration |
//! | [`baseline`] | baseline snapshots: the reference distributions of one model, content-addressed; building and inspecting them |
//! | [`event`] | prediction events: decoding straight into a model's feature layout, validation errors by reason |
//! | [`monitor`] | the deterministic core: per-model checks, thresholds, label join and performance, alert lifecycle, notifications, retraining triggers |
//! | [`alert`] | notifications and their delivery: webhook (Alertmanager shape), Slack, email; queues and retries |
//! | [`config`] | layered configuration (defaults, file, environment, flags) validated into a typed `Config` |
//! | [`service`] | the shell: Kafka consumer and producer, the ingestion loop, ordered shutdown |
//! | [`state`] | what survives a restart: the checkpoint file (monitor state and offsets) and the durable outbox |
//! | [`api`] | the HTTP API and the dashboard: health, readiness, Prometheus metrics, latency stats, drift episodes, model status, history, ECDFs |
//! | [`telemetry`] | logging and span set-up, OpenTelemetry metrics, their Prometheus exposition and OTLP export, latency quantiles |
//! | [`replay`] | backtesting: the monitor run over a file of historical events in event-time order; alert timeline and per-check verdicts |
//! | [`demo`] | `driftwarden demo`: an in-process broker, a drifting sample model, local receivers |
//! | [`workload`] | the benchmark workload: a seeded stream of 22 features with a mean shift half-way, and its baseline |
//!
//! `stats` and `monitor` are pure: no I/O, no clock, no async; time comes
//! from event timestamps. (The monitor opens a `tracing` span for a check
//! run that changes a verdict; what a subscriber does with it is the
//! shell's business.) Everything else is the shell that feeds them and
//! carries out what they decide.

pub mod alert;
pub mod api;
pub mod baseline;
pub mod config;
pub mod demo;
pub mod event;
pub mod monitor;
pub mod replay;
pub mod service;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod workload;
