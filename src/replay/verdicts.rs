//! Per-check verdicts as JSON lines, written by a thread of their own so
//! that serialising millions of lines overlaps with the monitor's work
//! instead of adding to it. Batches go through a bounded channel in
//! order, so the file is the same as a single-threaded write.

use std::io::{self, Write};
use std::sync::mpsc;

use serde::Serialize;

use crate::monitor::CheckRecord;

use super::timeline;

/// Verdicts handed to the writer at once.
pub(super) const BATCH: usize = 16_384;

/// Batches in flight before the monitor waits for the writer: bounds the
/// memory held when the disk is slower than the monitor.
const IN_FLIGHT: usize = 4;

/// One line of the output. The p-value is left out: an exact KS p-value
/// costs milliseconds and a replay makes millions of checks; the timeline
/// gives it for every alert.
#[derive(Serialize)]
struct CheckLine<'a> {
    model: &'a str,
    feature: &'a str,
    event_index: u64,
    timestamp: &'a str,
    n: u64,
    m: u64,
    statistic: f64,
    threshold: f64,
    drifted: bool,
}

/// Runs `work` with a sender of verdict batches whose receiver writes them
/// to `sink`; returns `work`'s result and the lines written (or the write
/// error that stopped the writer).
pub(super) fn with_writer<T>(
    sink: &mut (dyn Write + Send),
    work: impl FnOnce(&mpsc::SyncSender<Vec<CheckRecord>>) -> T,
) -> (T, io::Result<u64>) {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Vec<CheckRecord>>(IN_FLIGHT);
        let writer = scope.spawn(move || write_batches(sink, rx));
        let result = work(&tx);
        drop(tx);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (result, written)
    })
}

fn write_batches(
    sink: &mut (dyn Write + Send),
    batches: mpsc::Receiver<Vec<CheckRecord>>,
) -> io::Result<u64> {
    let mut time: Option<(i64, String)> = None;
    let mut line = Vec::with_capacity(256);
    let mut written = 0;
    for batch in batches {
        for r in &batch {
            // Every check of an event has its time: format it once.
            if time.as_ref().is_none_or(|(ms, _)| *ms != r.timestamp_ms) {
                time = Some((r.timestamp_ms, timeline::rfc3339(r.timestamp_ms)));
            }
            line.clear();
            let record = CheckLine {
                model: &r.model,
                feature: &r.feature,
                event_index: r.event_index,
                timestamp: time.as_ref().map_or("", |(_, t)| t.as_str()),
                n: r.n,
                m: r.m,
                statistic: r.statistic,
                threshold: r.threshold,
                drifted: r.drifted,
            };
            serde_json::to_writer(&mut line, &record)?;
            line.push(b'\n');
            sink.write_all(&line)?;
        }
        written += batch.len() as u64;
    }
    sink.flush()?;
    Ok(written)
}
