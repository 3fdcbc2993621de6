//! The label join store: predictions waiting for their labels and labels
//! waiting for their predictions, matched by request id within one model.
//!
//! Pure and bounded: time is the events' own timestamps, and whatever
//! arrives, the store holds at most `max_entries` waiting entries (both
//! sides together) plus at most `max_entries` remembered settled ids.
//! Entries older than `max_age_ms` behind the newest event time seen are
//! evicted as well.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::event::{Label, Value};

/// Bounds of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinBounds {
    /// Waiting entries (predictions and labels together).
    pub max_entries: usize,
    /// Event time an entry may wait behind the newest event time (ms).
    pub max_age_ms: i64,
}

/// Join outcomes since the monitor started (or its checkpoint was made).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JoinCounters {
    /// Labels joined to their prediction.
    pub matched: u64,
    /// Labels that arrived after their prediction had been evicted.
    pub late: u64,
    /// Predictions evicted before any label arrived.
    pub never_matched: u64,
    /// Entries evicted, either side, by age or by the entry bound.
    pub evicted: u64,
    /// Labels for an id already labelled (matched or waiting).
    pub duplicate_labels: u64,
    /// Labels evicted without a prediction ever arriving for their id.
    pub unknown_ids: u64,
}

/// A matched pair, ready to score.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The prediction.
    pub prediction: Value,
    /// The label.
    pub label: Label,
    /// Label time minus prediction time (ms); negative when the label's
    /// event time is earlier.
    pub delay_ms: i64,
}

/// What became of an id once it left the waiting maps; remembered so a
/// later label can be told duplicate or late rather than unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Settled {
    Matched,
    Evicted,
}

/// Event time, then arrival sequence.
type Key = (i64, u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Side {
    Prediction,
    Label,
}

/// The store. Waiting entries are ordered by (event time, arrival
/// sequence), so eviction by age is exact whatever the disorder, and the
/// entry bound evicts the oldest in event time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(into = "Snapshot", from = "Snapshot")]
pub struct JoinStore {
    predictions: HashMap<String, (Key, Value)>,
    labels: HashMap<String, (Key, Label)>,
    /// Waiting entries by (event time, sequence): side and id.
    order: BTreeMap<Key, (Side, String)>,
    settled: HashMap<String, (u64, Settled)>,
    /// Settled ids by sequence, oldest first, for forgetting them.
    settled_order: BTreeMap<u64, String>,
    next_seq: u64,
    newest_ms: Option<i64>,
    counters: JoinCounters,
}

/// The store as plain lists (checkpoints are JSON, whose map keys are
/// strings; the order maps are rebuilt from the entries' keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapshot {
    predictions: Vec<(String, Key, Value)>,
    labels: Vec<(String, Key, Label)>,
    settled: Vec<(String, u64, Settled)>,
    next_seq: u64,
    newest_ms: Option<i64>,
    counters: JoinCounters,
}

impl From<JoinStore> for Snapshot {
    fn from(store: JoinStore) -> Snapshot {
        Snapshot {
            predictions: store
                .predictions
                .into_iter()
                .map(|(id, (k, v))| (id, k, v))
                .collect(),
            labels: store
                .labels
                .into_iter()
                .map(|(id, (k, l))| (id, k, l))
                .collect(),
            settled: store
                .settled
                .into_iter()
                .map(|(id, (seq, how))| (id, seq, how))
                .collect(),
            next_seq: store.next_seq,
            newest_ms: store.newest_ms,
            counters: store.counters,
        }
    }
}

impl From<Snapshot> for JoinStore {
    fn from(snapshot: Snapshot) -> JoinStore {
        let mut store = JoinStore {
            next_seq: snapshot.next_seq,
            newest_ms: snapshot.newest_ms,
            counters: snapshot.counters,
            ..JoinStore::default()
        };
        for (id, key, value) in snapshot.predictions {
            store.order.insert(key, (Side::Prediction, id.clone()));
            store.predictions.insert(id, (key, value));
        }
        for (id, key, label) in snapshot.labels {
            store.order.insert(key, (Side::Label, id.clone()));
            store.labels.insert(id, (key, label));
        }
        for (id, seq, how) in snapshot.settled {
            store.settled_order.insert(seq, id.clone());
            store.settled.insert(id, (seq, how));
        }
        store
    }
}

impl JoinStore {
    /// Counters so far.
    pub fn counters(&self) -> JoinCounters {
        self.counters
    }

    /// Entries waiting (predictions, labels).
    pub fn waiting(&self) -> (usize, usize) {
        (self.predictions.len(), self.labels.len())
    }

    /// Whether a prediction with this id is waiting or was settled here.
    pub fn knows_prediction(&self, id: &str) -> bool {
        self.predictions.contains_key(id) || self.settled.contains_key(id)
    }

    /// Settled ids remembered.
    pub fn remembered(&self) -> usize {
        self.settled.len()
    }

    /// A prediction with an id: joined at once if its label is waiting,
    /// else kept until its label comes or it is evicted.
    pub fn add_prediction(
        &mut self,
        id: &str,
        prediction: Value,
        at_ms: i64,
        bounds: JoinBounds,
    ) -> Option<Joined> {
        self.advance(at_ms, bounds);
        if let Some((key, label)) = self.labels.remove(id) {
            self.order.remove(&key);
            let label_ms = key.0;
            self.settle(id, Settled::Matched, bounds);
            self.counters.matched += 1;
            return Some(Joined {
                prediction,
                label,
                delay_ms: label_ms.saturating_sub(at_ms),
            });
        }
        if let Some((old, _)) = self.predictions.remove(id) {
            // A repeated request id: the newer prediction replaces it.
            self.order.remove(&old);
        }
        let key = (at_ms, self.sequence());
        self.predictions.insert(id.to_string(), (key, prediction));
        self.order.insert(key, (Side::Prediction, id.to_string()));
        self.enforce_entries(bounds);
        None
    }

    /// A label: joined at once if its prediction is waiting; counted as
    /// duplicate or late if the id was settled; else kept waiting.
    pub fn add_label(
        &mut self,
        id: &str,
        label: Label,
        at_ms: i64,
        bounds: JoinBounds,
    ) -> Option<Joined> {
        self.advance(at_ms, bounds);
        if let Some((key, prediction)) = self.predictions.remove(id) {
            self.order.remove(&key);
            let predicted_ms = key.0;
            self.settle(id, Settled::Matched, bounds);
            self.counters.matched += 1;
            return Some(Joined {
                prediction,
                label,
                delay_ms: at_ms.saturating_sub(predicted_ms),
            });
        }
        match self.settled.get(id).map(|s| s.1) {
            Some(Settled::Matched) => self.counters.duplicate_labels += 1,
            Some(Settled::Evicted) => self.counters.late += 1,
            None if self.labels.contains_key(id) => self.counters.duplicate_labels += 1,
            None => {
                let key = (at_ms, self.sequence());
                self.labels.insert(id.to_string(), (key, label));
                self.order.insert(key, (Side::Label, id.to_string()));
                self.enforce_entries(bounds);
            }
        }
        None
    }

    fn sequence(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Moves the event-time clock and evicts entries past the age bound.
    fn advance(&mut self, at_ms: i64, bounds: JoinBounds) {
        let newest = self.newest_ms.map_or(at_ms, |n| n.max(at_ms));
        self.newest_ms = Some(newest);
        let cutoff = newest.saturating_sub(bounds.max_age_ms);
        while self
            .order
            .first_key_value()
            .is_some_and(|((t, _), _)| *t < cutoff)
        {
            self.evict_oldest(bounds);
        }
    }

    fn enforce_entries(&mut self, bounds: JoinBounds) {
        while self.order.len() > bounds.max_entries.max(1) {
            self.evict_oldest(bounds);
        }
    }

    fn evict_oldest(&mut self, bounds: JoinBounds) {
        let Some((_, (side, id))) = self.order.pop_first() else {
            return;
        };
        self.counters.evicted += 1;
        match side {
            Side::Prediction => {
                self.predictions.remove(&id);
                self.counters.never_matched += 1;
                self.settle(&id, Settled::Evicted, bounds);
            }
            Side::Label => {
                self.labels.remove(&id);
                self.counters.unknown_ids += 1;
            }
        }
    }

    /// Remembers what became of an id, forgetting the oldest beyond the
    /// entry bound (so memory stays bounded; a label for a forgotten id
    /// waits, and if nothing claims it, counts as unknown).
    fn settle(&mut self, id: &str, how: Settled, bounds: JoinBounds) {
        let seq = self.sequence();
        if let Some((old, _)) = self.settled.insert(id.to_string(), (seq, how)) {
            self.settled_order.remove(&old);
        }
        self.settled_order.insert(seq, id.to_string());
        while self.settled_order.len() > bounds.max_entries.max(1) {
            if let Some((_, old)) = self.settled_order.pop_first() {
                self.settled.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: JoinBounds = JoinBounds {
        max_entries: 3,
        max_age_ms: 1_000,
    };

    fn class(s: &str) -> Label {
        Label::Class(s.into())
    }

    #[test]
    fn joins_either_order_and_measures_delay() {
        let mut store = JoinStore::default();
        assert!(
            store
                .add_prediction("a", Value::Number(1.0), 100, BOUNDS)
                .is_none()
        );
        let joined = store.add_label("a", class("x"), 150, BOUNDS).unwrap();
        assert_eq!(
            (joined.prediction, joined.delay_ms),
            (Value::Number(1.0), 50)
        );

        assert!(store.add_label("b", class("y"), 200, BOUNDS).is_none());
        let joined = store
            .add_prediction("b", Value::Category(2), 180, BOUNDS)
            .unwrap();
        assert_eq!((joined.label, joined.delay_ms), (class("y"), 20));
        assert_eq!(store.counters().matched, 2);
        assert_eq!(store.waiting(), (0, 0));
    }

    #[test]
    fn entry_bound_evicts_oldest_and_late_labels_are_counted() {
        let mut store = JoinStore::default();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            store.add_prediction(id, Value::Number(0.0), i as i64, BOUNDS);
        }
        assert_eq!(store.waiting(), (3, 0));
        let c = store.counters();
        assert_eq!((c.evicted, c.never_matched), (1, 1));
        assert!(store.add_label("a", class("x"), 5, BOUNDS).is_none());
        assert_eq!(store.counters().late, 1);
        assert!(store.add_label("d", class("x"), 5, BOUNDS).is_some());
    }

    #[test]
    fn age_bound_evicts_by_event_time() {
        let mut store = JoinStore::default();
        store.add_prediction("old", Value::Number(0.0), 0, BOUNDS);
        store.add_label("orphan", class("x"), 10, BOUNDS);
        store.add_prediction("new", Value::Number(0.0), 1_500, BOUNDS);
        assert_eq!(store.waiting(), (1, 0));
        let c = store.counters();
        assert_eq!((c.never_matched, c.unknown_ids, c.evicted), (1, 1, 2));
    }

    #[test]
    fn survives_a_json_round_trip() {
        let mut store = JoinStore::default();
        store.add_prediction("a", Value::Category(1), 10, BOUNDS);
        store.add_label("b", class("x"), 20, BOUNDS);
        store.add_prediction("c", Value::Number(0.5), 30, BOUNDS);
        store.add_label("c", class("y"), 40, BOUNDS);
        let json = serde_json::to_string(&store).unwrap();
        let back: JoinStore = serde_json::from_str(&json).unwrap();
        assert_eq!(back, store);
    }

    #[test]
    fn duplicate_labels_are_counted_not_rejoined() {
        let mut store = JoinStore::default();
        store.add_prediction("a", Value::Number(0.0), 0, BOUNDS);
        assert!(store.add_label("a", class("x"), 1, BOUNDS).is_some());
        assert!(store.add_label("a", class("x"), 2, BOUNDS).is_none());
        store.add_label("b", class("x"), 3, BOUNDS);
        store.add_label("b", class("y"), 4, BOUNDS);
        let c = store.counters();
        assert_eq!((c.matched, c.duplicate_labels), (1, 2));
    }

    #[test]
    fn a_flood_of_unknown_labels_stays_within_the_bound() {
        let bounds = JoinBounds {
            max_entries: 100,
            max_age_ms: i64::MAX,
        };
        let mut store = JoinStore::default();
        for i in 0..10_000 {
            store.add_label(&format!("id-{i}"), class("x"), i, bounds);
            store.add_prediction(&format!("p-{i}"), Value::Number(0.0), i, bounds);
        }
        let (predictions, labels) = store.waiting();
        assert!(predictions + labels <= 100);
        assert!(store.remembered() <= 100);
        assert_eq!(store.order.len(), predictions + labels);
        assert_eq!(store.counters().unknown_ids + labels as u64, 10_000);
    }
}
