//! Backtesting: the live monitor run over a file of historical events
//! (`driftwarden replay`), to see what would have fired and when.
//!
//! Events are decoded with the monitor's own layouts
//! ([`decode_event`](crate::event::decode_event)), put in event-time order
//! (a stable sort, so events with equal times keep their file order; an
//! event without a timestamp takes the time of the event before it in the
//! file, so it stays beside it), then applied one by one to a
//! [`Monitor`] exactly as the service applies them. The monitor is
//! deterministic, so the same events and settings give byte-identical
//! verdicts. Malformed lines are counted by reason, never fatal. A line
//! with an id and a label but neither features nor a prediction is a label
//! event, handed to the monitor's label join as a label topic's would be.
//!
//! | module | owns |
//! |---|---|
//! | [`input`] | reading events: JSON lines, or CSV rows turned into events |
//! | `decode` | decoding on every core, then event-time order |
//! | [`setup`] | the monitor from a configuration and baseline files |
//! | `verdicts` | per-check verdicts as JSON lines, on a writer thread |
//! | [`timeline`] | the alert timeline: what fired and resolved, where |
//! | [`command`] | `driftwarden replay`: files in, timeline and summary out |

pub mod command;
mod decode;
pub mod input;
pub mod setup;
pub mod timeline;
mod verdicts;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::sync::mpsc::SyncSender;

use serde::Serialize;
use thiserror::Error;

use crate::alert::Notification;
use crate::baseline::BaselineError;
use crate::baseline::builder::progress;
use crate::config::ConfigErrors;
use crate::monitor::{CheckRecord, Monitor, Outputs, Position, RetrainTrigger};

use decode::{Decoded, Item};
use timeline::{Timeline, TimelineEntry};

/// How errors name the verdict sink, which the library knows only as a
/// writer.
pub const VERDICT_SINK: &str = "<verdict output>";

/// Why a replay could not run. Bad events are not errors: they are counted
/// in [`ReplaySummary::rejected`].
#[derive(Debug, Error)]
pub enum ReplayError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file (`<stdin>` for standard input).
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The configuration is invalid.
    #[error("invalid configuration:\n{0}")]
    Config(ConfigErrors),
    /// A baseline could not be loaded.
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    /// The models could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The events file is structurally broken (a CSV row with the wrong
    /// number of fields, a header without the columns it needs).
    #[error("{input}:{line}: {detail}")]
    Input {
        /// Input name.
        input: String,
        /// Line.
        line: u64,
        /// What is wrong.
        detail: String,
    },
}

/// One event as it comes from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<B> {
    /// Its line in the file (1-based; for CSV, the row's line).
    pub line: u64,
    /// One JSON event (or a JSON array of events, as a Kafka message may
    /// hold).
    pub bytes: B,
}

/// How to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// Events larger than this are rejected as `too_large`, as the service
    /// rejects messages over `kafka.max_message_bytes`.
    pub max_event_bytes: usize,
    /// Show a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            max_event_bytes: 1 << 20,
            progress: false,
        }
    }
}

/// Events set aside for one reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// How many.
    pub count: u64,
    /// Line of the first.
    pub first_line: u64,
    /// What was wrong with the first.
    pub example: String,
}

/// What a replay did and found.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    /// Events read (array elements counted one by one).
    pub events: u64,
    /// Prediction events applied to the monitor.
    pub applied: u64,
    /// Label events (`{"model", "id", "label"}` without features or
    /// prediction) handed to the monitor's label join.
    pub labels: u64,
    /// Events set aside, by reason (`invalid_json`, `unknown_model`, …).
    pub rejected: BTreeMap<String, Rejected>,
    /// Events that came earlier in the file than an event with a later
    /// time, and so were moved by the sort.
    pub reordered: u64,
    /// Per-check verdicts written; `None` when they were not recorded.
    pub checks: Option<u64>,
    /// Every notification the monitor decided, in order.
    pub notifications: Vec<Notification>,
    /// Every retraining trigger, in order.
    pub retrains: Vec<RetrainTrigger>,
    /// What fired and resolved, where.
    pub timeline: Vec<TimelineEntry>,
    /// Time spent reading and decoding.
    pub decode_time: Duration,
    /// Time spent applying events (and writing verdicts).
    pub apply_time: Duration,
}

impl ReplaySummary {
    /// Events rejected, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().map(|r| r.count).sum()
    }

    /// Alerts that fired.
    pub fn fired(&self) -> usize {
        self.timeline
            .iter()
            .filter(|e| e.is_fired())
            .map(|e| e.alerts.len())
            .sum()
    }

    /// Alerts that resolved.
    pub fn resolved(&self) -> usize {
        self.timeline
            .iter()
            .filter(|e| e.is_resolved())
            .map(|e| e.alerts.len())
            .sum()
    }

    /// Events per second, reading and applying together.
    pub fn events_per_second(&self) -> f64 {
        let secs = (self.decode_time + self.apply_time).as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }

    pub(crate) fn reject(&mut self, reason: &str, line: u64, example: impl fmt::Display) {
        self.rejected
            .entry(reason.to_string())
            .and_modify(|r| r.count += 1)
            .or_insert_with(|| Rejected {
                count: 1,
                first_line: line,
                example: example.to_string(),
            });
    }
}

/// Replays `records` (in file order) through `monitor`: decodes them,
/// orders them by event time, applies them, and writes one JSON line per
/// check verdict to `checks` when given.
pub fn run<B: AsRef<[u8]> + Send>(
    records: impl IntoIterator<Item = Record<B>>,
    monitor: &mut Monitor,
    options: &ReplayOptions,
    checks: Option<&mut (dyn Write + Send)>,
) -> Result<ReplaySummary, ReplayError> {
    let mut summary = ReplaySummary::default();
    let started = Instant::now();
    let mut events = decode::decode_all(records, monitor, options.max_event_bytes, &mut summary);
    summary.reordered = decode::order_by_time(&mut events);
    summary.decode_time = started.elapsed();
    let started = Instant::now();
    let bar = if options.progress {
        progress::count_bar(events.len() as u64, "replaying")
    } else {
        indicatif::ProgressBar::hidden()
    };
    match checks {
        None => apply_all(&events, monitor, None, &bar, &mut summary),
        Some(sink) => {
            let ((), written) = verdicts::with_writer(sink, |tx| {
                apply_all(&events, monitor, Some(tx), &bar, &mut summary)
            });
            summary.checks = Some(written.map_err(|source| ReplayError::Io {
                path: PathBuf::from(VERDICT_SINK),
                source,
            })?);
        }
    }
    bar.finish_and_clear();
    summary.apply_time = started.elapsed();
    Ok(summary)
}

/// Applies the ordered events as the service does, one by one; verdicts
/// go to `checks` in batches, notifications to the timeline.
fn apply_all(
    events: &[Decoded],
    monitor: &mut Monitor,
    checks: Option<&SyncSender<Vec<CheckRecord>>>,
    bar: &indicatif::ProgressBar,
    summary: &mut ReplaySummary,
) {
    let mut out = Outputs {
        record_checks: checks.is_some(),
        ..Outputs::default()
    };
    let mut timeline = Timeline::default();
    for (i, d) in events.iter().enumerate() {
        let position = Position {
            partition: 0,
            offset: d.line as i64,
        };
        let applied = match &d.item {
            Item::Prediction(event) => monitor.apply(event, position, &mut out),
            Item::Label(label) => monitor.apply_label(label, &mut out),
        };
        match (applied, &d.item) {
            (Ok(()), Item::Prediction(_)) => summary.applied += 1,
            (Ok(()), Item::Label(_)) => summary.labels += 1,
            (Err(error), _) => summary.reject("monitor_error", d.line, error),
        }
        if let Some(tx) = checks
            && (out.checks.len() >= verdicts::BATCH || i + 1 == events.len())
        {
            // A writer that stopped on an error reports it when joined.
            let _ = tx.send(std::mem::take(&mut out.checks));
        }
        if !out.notifications.is_empty() || !out.retrains.is_empty() {
            let index = monitor.model_mut(d.item.model()).map_or(0, |m| m.events());
            timeline.note(index, d.line, &out.notifications, &out.retrains);
            summary.notifications.append(&mut out.notifications);
            summary.retrains.append(&mut out.retrains);
        }
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
    }
    summary.timeline = timeline.into_entries();
}

impl fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = (self.decode_time + self.apply_time).as_secs_f64();
        writeln!(
            f,
            "replayed {} events in {secs:.2} s ({:.0} events/s; decode {:.2} s, monitor {:.2} s)",
            self.events,
            self.events_per_second(),
            self.decode_time.as_secs_f64(),
            self.apply_time.as_secs_f64()
        )?;
        writeln!(f, "  applied    {}", self.applied)?;
        if self.labels > 0 {
            writeln!(f, "  labels     {} joined by id", self.labels)?;
        }
        if self.reordered > 0 {
            writeln!(
                f,
                "  reordered  {} events put back in event-time order",
                self.reordered
            )?;
        }
        writeln!(f, "  rejected   {}", self.rejected_total())?;
        for (reason, r) in &self.rejected {
            writeln!(
                f,
                "    {reason:<14} {:>8}  first at line {}: {}",
                r.count, r.first_line, r.example
            )?;
        }
        if let Some(checks) = self.checks {
            writeln!(f, "  checks     {checks}")?;
        }
        writeln!(
            f,
            "  alerts     {} fired, {} resolved, in {} notifications; {} retraining triggers",
            self.fired(),
            self.resolved(),
            self.notifications.len(),
            self.retrains.len()
        )
    }
}
