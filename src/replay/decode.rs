//! Decoding a replay's events on every core, then putting them in
//! event-time order.
//!
//! Decoding is independent per line, so batches of lines go to worker
//! threads and come back numbered; the events are reassembled in file
//! order before anything depends on order, so the result is the same for
//! any number of threads.

use std::collections::HashMap;
use std::sync::{Mutex, mpsc};

use serde_json::value::RawValue;

use crate::event::{DecodeError, Event, FeatureLayout, LabelEvent, Value, decode_event};
use crate::monitor::Monitor;

use super::{Record, ReplaySummary};

/// Stands for "no timestamp" while decoding; no real timestamp can take it
/// (the decoder accepts |ms| < 10^16 only).
const NO_TIME: i64 = i64::MIN;

/// Lines per batch handed to a worker: large enough that the hand-over
/// costs nothing, small enough to keep every worker busy.
const BATCH: usize = 4096;

/// At most this many decoding threads; past it reading the file is the
/// bottleneck.
const MAX_WORKERS: usize = 8;

/// What a line holds.
pub(super) enum Item {
    /// A prediction event.
    Prediction(Event),
    /// A label for an earlier (or later) prediction, as a label topic
    /// carries it: `{"model", "id", "label"}` with neither features nor a
    /// prediction.
    Label(LabelEvent),
}

impl Item {
    /// An event that has an id and a label but no feature value and no
    /// prediction is a label event; the monitor joins it by id.
    fn classify(event: Event) -> Item {
        let bare =
            event.values.iter().all(|v| *v == Value::Missing) && event.prediction == Value::Missing;
        match (bare, event.id, event.label) {
            (true, Some(id), Some(label)) => Item::Label(LabelEvent {
                model: event.model,
                model_version: event.model_version,
                id,
                label,
                timestamp_ms: event.timestamp_ms,
            }),
            (_, id, label) => Item::Prediction(Event { id, label, ..event }),
        }
    }

    fn time(&self) -> i64 {
        match self {
            Item::Prediction(e) => e.timestamp_ms,
            Item::Label(l) => l.timestamp_ms,
        }
    }

    fn set_time(&mut self, ms: i64) {
        match self {
            Item::Prediction(e) => e.timestamp_ms = ms,
            Item::Label(l) => l.timestamp_ms = ms,
        }
    }

    /// The model it belongs to.
    pub(super) fn model(&self) -> &str {
        match self {
            Item::Prediction(e) => &e.model,
            Item::Label(l) => &l.model,
        }
    }
}

/// A decoded line and where it came from.
pub(super) struct Decoded {
    /// Line in the file.
    pub(super) line: u64,
    /// The event or label, with its (possibly inherited) time.
    pub(super) item: Item,
    has_time: bool,
}

type Outcome = (u64, Result<Event, DecodeError>);

/// Per model: the default layout and those of versions with their own
/// baseline (the monitor's selection, see [`Monitor::layout`]).
type Layouts = HashMap<String, (Option<FeatureLayout>, HashMap<String, FeatureLayout>)>;

/// Decodes every record against the monitor's layouts; rejects are
/// counted in `summary` in file order.
pub(super) fn decode_all<B: AsRef<[u8]> + Send>(
    records: impl IntoIterator<Item = Record<B>>,
    monitor: &Monitor,
    max_bytes: usize,
    summary: &mut ReplaySummary,
) -> Vec<Decoded> {
    let mut layouts = Layouts::new();
    for m in monitor.monitors() {
        let layout = m.layout().clone();
        let model = m.baseline().model.clone();
        match m.version() {
            Some(v) => {
                layouts
                    .entry(model)
                    .or_default()
                    .1
                    .insert(v.to_string(), layout);
            }
            None => layouts.entry(model).or_default().0 = Some(layout),
        }
    }
    let mut events = Vec::new();
    for (line, result) in decode_parallel(records, &layouts, max_bytes) {
        summary.events += 1;
        match result {
            Ok(event) => events.push(Decoded {
                line,
                has_time: event.timestamp_ms != NO_TIME,
                item: Item::classify(event),
            }),
            Err(error) => summary.reject(error.reason(), line, &error),
        }
    }
    events
}

/// The outcomes of every record, in file order.
fn decode_parallel<B: AsRef<[u8]> + Send>(
    records: impl IntoIterator<Item = Record<B>>,
    layouts: &Layouts,
    max_bytes: usize,
) -> Vec<Outcome> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS));
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Vec<Record<B>>)>(2 * workers);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel();
    let mut batches = std::thread::scope(|scope| {
        for _ in 0..workers {
            let (work_rx, done_tx) = (&work_rx, done_tx.clone());
            scope.spawn(move || {
                // A poisoned lock means another worker panicked; the scope
                // re-raises that panic, so this one just stops.
                while let Some((index, batch)) = work_rx.lock().ok().and_then(|rx| rx.recv().ok()) {
                    let outcomes = decode_batch(batch, layouts, max_bytes);
                    if done_tx.send((index, outcomes)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        send_batches(records, &work_tx);
        drop(work_tx);
        done_rx.iter().collect::<Vec<_>>()
    });
    batches.sort_unstable_by_key(|(index, _)| *index);
    batches.into_iter().flat_map(|(_, b)| b).collect()
}

fn send_batches<B>(
    records: impl IntoIterator<Item = Record<B>>,
    work: &mpsc::SyncSender<(usize, Vec<Record<B>>)>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut index = 0;
    for record in records {
        batch.push(record);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if work.send((index, full)).is_err() {
                return;
            }
            index += 1;
        }
    }
    if !batch.is_empty() {
        let _ = work.send((index, batch));
    }
}

fn decode_batch<B: AsRef<[u8]>>(
    batch: Vec<Record<B>>,
    layouts: &Layouts,
    max_bytes: usize,
) -> Vec<Outcome> {
    let lookup = |model: &str, version: Option<&str>| {
        let (default, versions) = layouts.get(model)?;
        version.and_then(|v| versions.get(v)).or(default.as_ref())
    };
    let mut out = Vec::with_capacity(batch.len());
    for record in batch {
        for result in decode_record(record.bytes.as_ref(), max_bytes, &lookup) {
            out.push((record.line, result));
        }
    }
    out
}

/// One line: an event, or an array of events (one bad element does not
/// spoil the others, as in the service).
fn decode_record<'l>(
    bytes: &[u8],
    max_bytes: usize,
    lookup: &dyn Fn(&str, Option<&str>) -> Option<&'l FeatureLayout>,
) -> Vec<Result<Event, DecodeError>> {
    if bytes.len() > max_bytes {
        return vec![Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        })];
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return vec![decode_event(bytes, NO_TIME, lookup)];
    }
    match serde_json::from_slice::<Vec<&RawValue>>(bytes) {
        Ok(items) => items
            .into_iter()
            .map(|raw| decode_event(raw.get().as_bytes(), NO_TIME, lookup))
            .collect(),
        Err(e) => vec![Err(DecodeError::InvalidJson {
            detail: e.to_string(),
        })],
    }
}

/// Gives untimed events the time of the event before them in the file
/// (the first timed one for those at the start; 0 if none has a time),
/// then sorts stably by time. Returns how many events came after a later
/// one in the file (0 for a file already in order).
pub(super) fn order_by_time(events: &mut [Decoded]) -> u64 {
    let first = events
        .iter()
        .find(|d| d.has_time)
        .map_or(0, |d| d.item.time());
    let (mut last, mut latest, mut reordered) = (first, i64::MIN, 0);
    for d in events.iter_mut() {
        if d.has_time {
            last = d.item.time();
        } else {
            d.item.set_time(last);
        }
        reordered += u64::from(d.item.time() < latest);
        latest = latest.max(d.item.time());
    }
    if reordered > 0 {
        events.sort_by_key(|d| d.item.time());
    }
    reordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Label;

    fn decoded(line: u64, time: Option<i64>) -> Decoded {
        Decoded {
            line,
            has_time: time.is_some(),
            item: Item::Prediction(Event {
                model: "m".into(),
                model_version: None,
                id: None,
                timestamp_ms: time.unwrap_or(NO_TIME),
                values: vec![Value::Missing],
                prediction: Value::Missing,
                label: None,
            }),
        }
    }

    fn lines(events: &[Decoded]) -> Vec<u64> {
        events.iter().map(|d| d.line).collect()
    }

    #[test]
    fn sorts_stably_and_untimed_events_follow_their_predecessor() {
        let mut events = vec![
            decoded(1, None),
            decoded(2, Some(30)),
            decoded(3, None),
            decoded(4, Some(10)),
            decoded(5, Some(30)),
            decoded(6, Some(20)),
        ];
        assert_eq!(order_by_time(&mut events), 2);
        // 1 takes 30 (the first time), 3 takes 30 from line 2; ties keep
        // file order.
        assert_eq!(lines(&events), [4, 6, 1, 2, 3, 5]);
        assert_eq!(events[2].item.time(), 30);
    }

    #[test]
    fn a_file_without_times_keeps_its_order() {
        let mut events = vec![decoded(1, None), decoded(2, None)];
        assert_eq!(order_by_time(&mut events), 0);
        assert_eq!(lines(&events), [1, 2]);
        assert_eq!(events[0].item.time(), 0);
    }

    #[test]
    fn a_bare_event_with_id_and_label_is_a_label() {
        let event = |values, label: Option<Label>| Event {
            model: "m".into(),
            model_version: None,
            id: Some("r1".into()),
            timestamp_ms: 5,
            values,
            prediction: Value::Missing,
            label,
        };
        let item = Item::classify(event(vec![Value::Missing], Some(Label::Number(1.0))));
        assert!(
            matches!(item, Item::Label(LabelEvent { ref id, timestamp_ms: 5, .. }) if id == "r1")
        );
        let item = Item::classify(event(vec![Value::Number(2.0)], Some(Label::Number(1.0))));
        assert!(matches!(item, Item::Prediction(_)));
        let item = Item::classify(event(vec![Value::Missing], None));
        assert!(matches!(item, Item::Prediction(_)));
    }

    #[test]
    fn parallel_decoding_keeps_file_order() {
        let layouts = HashMap::new();
        let records = (1..=3 * BATCH as u64 + 5).map(|line| Record {
            line,
            bytes: format!("{{\"model\":\"m{line}\"}}"),
        });
        let out = decode_parallel(records, &layouts, 1 << 20);
        assert_eq!(out.len(), 3 * BATCH + 5);
        assert!(out.iter().enumerate().all(|(i, (line, r))| {
            *line == i as u64 + 1
                && matches!(r, Err(DecodeError::UnknownModel { model }) if *model == format!("m{line}"))
        }));
    }
}
