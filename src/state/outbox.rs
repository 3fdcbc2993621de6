//! The durable outbox: every notification (per channel) and retraining
//! trigger is written here, and fsynced, before it is handed to delivery,
//! and marked settled once delivered (or given up on). After a crash the
//! entries still pending are sent again, with the idempotency key they had.
//!
//! # File
//!
//! `outbox.jsonl` in the checkpoint directory, one JSON object per line:
//!
//! ```text
//! {"op":"pending","channel":"ops","key":"3f…","item":{"notification":{…}}}
//! {"op":"settled","channel":"ops","key":"3f…","outcome":"delivered"}
//! ```
//!
//! Lines are appended; [`Outbox::compact`] (run after each checkpoint)
//! rewrites the file atomically with only the pending entries and the most
//! recent settled keys. A crash in the middle of an append leaves a torn
//! last line, which is ignored on open; any other line that cannot be read
//! is reported and skipped.
//!
//! # Deduplication
//!
//! A restart re-reads from Kafka the events after the last checkpoint, and
//! the deterministic monitor decides the same notifications again, with the
//! same keys. [`Outbox::admit`] refuses a (channel, key) that is pending
//! (it was re-queued from the file already) or was settled recently (it was
//! delivered before the crash), so a receiver sees a repeat only when the
//! crash fell between its acknowledgement and the settled line, and then
//! with the same idempotency key. The last [`SETTLED_KEPT`] settled keys
//! are remembered: many more than a checkpoint interval decides.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::alert::Notification;
use crate::monitor::RetrainTrigger;

use super::checkpoint::write_atomically;

/// The outbox file's name inside the checkpoint directory.
pub const FILE_NAME: &str = "outbox.jsonl";

/// The channel name retraining triggers are kept under (channel names in
/// the configuration cannot start with `@`).
pub const RETRAIN_CHANNEL: &str = "@retrain";

/// How many settled (channel, key) pairs are remembered for deduplication.
pub const SETTLED_KEPT: usize = 10_000;

/// What waits for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Item {
    /// A notification for one channel.
    Notification(Notification),
    /// A retraining trigger for the retrain topic.
    Retrain(RetrainTrigger),
}

/// One pending delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Channel name, or [`RETRAIN_CHANNEL`].
    pub channel: String,
    /// Idempotency key.
    pub key: String,
    /// The notification or trigger.
    pub item: Item,
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// The receiver acknowledged it.
    Delivered,
    /// Every attempt failed (dead-lettered by delivery).
    Failed,
    /// The channel's queue was full (see the dispatcher's overflow policy).
    Dropped,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Line {
    Pending {
        channel: String,
        key: String,
        item: Item,
    },
    Settled {
        channel: String,
        key: String,
        outcome: Settlement,
    },
}

impl Line {
    fn pending(entry: &Entry) -> Line {
        Line::Pending {
            channel: entry.channel.clone(),
            key: entry.key.clone(),
            item: entry.item.clone(),
        }
    }

    fn settled((channel, key): &Slot, outcome: Settlement) -> Line {
        Line::Settled {
            channel: channel.clone(),
            key: key.clone(),
            outcome,
        }
    }

    /// Appends the line's JSON and its newline to `text`.
    fn write_to(&self, text: &mut Vec<u8>) -> io::Result<()> {
        serde_json::to_writer(&mut *text, self).map_err(io::Error::other)?;
        text.push(b'\n');
        Ok(())
    }
}

type Slot = (String, String);

struct Inner {
    file: File,
    next: u64,
    pending: BTreeMap<u64, Entry>,
    index: HashMap<Slot, u64>,
    settled: HashSet<Slot>,
    settled_order: VecDeque<(Slot, Settlement)>,
}

impl Inner {
    fn remember_settled(&mut self, slot: Slot, outcome: Settlement) {
        if self.settled.insert(slot.clone()) {
            self.settled_order.push_back((slot, outcome));
        }
        while self.settled_order.len() > SETTLED_KEPT {
            if let Some((old, _)) = self.settled_order.pop_front() {
                self.settled.remove(&old);
            }
        }
    }

    fn settle(&mut self, slot: Slot, outcome: Settlement) -> bool {
        let was_pending = match self.index.remove(&slot) {
            Some(id) => self.pending.remove(&id).is_some(),
            None => false,
        };
        self.remember_settled(slot, outcome);
        was_pending
    }
}

/// The outbox of one service instance.
pub struct Outbox {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

/// Why the outbox could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the outbox {path}: {source}")]
pub struct OpenError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: io::Error,
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir` and returns it with the
    /// entries still pending, oldest first, to be delivered again.
    pub fn open(dir: &Path) -> Result<(Outbox, Vec<Entry>), OpenError> {
        let path = dir.join(FILE_NAME);
        let failed = |source| OpenError {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(failed)?;
        let mut inner = Inner {
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(failed)?,
            next: 0,
            pending: BTreeMap::new(),
            index: HashMap::new(),
            settled: HashSet::new(),
            settled_order: VecDeque::new(),
        };
        let reader = BufReader::new(File::open(&path).map_err(failed)?);
        let lines: Vec<String> = reader.lines().collect::<Result<_, _>>().map_err(failed)?;
        let count = lines.len();
        for (number, text) in lines.iter().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(text) {
                Ok(Line::Pending { channel, key, item }) => {
                    let slot = (channel.clone(), key.clone());
                    if inner.index.contains_key(&slot) || inner.settled.contains(&slot) {
                        continue;
                    }
                    let id = inner.next;
                    inner.next += 1;
                    inner.index.insert(slot, id);
                    inner.pending.insert(id, Entry { channel, key, item });
                }
                Ok(Line::Settled {
                    channel,
                    key,
                    outcome,
                }) => {
                    inner.settle((channel, key), outcome);
                }
                // A crash during an append tears only the last line.
                Err(_) if number + 1 == count => {
                    tracing::warn!(path = %path.display(), "outbox: ignoring a torn last line");
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), line = number + 1, %error,
                        "outbox: unreadable line skipped");
                }
            }
        }
        let pending = inner.pending.values().cloned().collect();
        let outbox = Outbox {
            dir: dir.to_path_buf(),
            inner: Mutex::new(inner),
        };
        // Start from a clean file: no torn line for the next append to
        // join.
        outbox.compact().map_err(failed)?;
        Ok((outbox, pending))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `entries` as pending, durably (one fsync for all), and
    /// returns for each whether it is new. An entry already pending or
    /// recently settled is not new: its caller must not deliver it again.
    ///
    /// On a write error the entries are still admitted in memory (delivery
    /// goes ahead) and the error is returned for the caller to report: an
    /// alert is never held back because the disk failed.
    pub fn admit(&self, entries: Vec<Entry>) -> (Vec<bool>, io::Result<()>) {
        let mut inner = self.lock();
        let mut admitted = Vec::with_capacity(entries.len());
        let mut text = Vec::new();
        for entry in entries {
            let slot = (entry.channel.clone(), entry.key.clone());
            if inner.index.contains_key(&slot) || inner.settled.contains(&slot) {
                admitted.push(false);
                continue;
            }
            if let Err(error) = Line::pending(&entry).write_to(&mut text) {
                tracing::error!(%error, "outbox: cannot encode an entry");
            }
            let id = inner.next;
            inner.next += 1;
            inner.index.insert(slot, id);
            inner.pending.insert(id, entry);
            admitted.push(true);
        }
        let written = if text.is_empty() {
            Ok(())
        } else {
            inner
                .file
                .write_all(&text)
                .and_then(|()| inner.file.sync_data())
        };
        (admitted, written)
    }

    /// Marks a delivery as ended. Not fsynced: a settled line lost in a
    /// crash means one repeated delivery, with the same key.
    pub fn settle(&self, channel: &str, key: &str, outcome: Settlement) -> io::Result<()> {
        let mut inner = self.lock();
        let slot = (channel.to_string(), key.to_string());
        let mut text = Vec::new();
        Line::settled(&slot, outcome).write_to(&mut text)?;
        if !inner.settle(slot, outcome) {
            return Ok(());
        }
        inner.file.write_all(&text)
    }

    /// Entries waiting for delivery.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Entries waiting for delivery, per channel.
    pub fn pending_by_channel(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for entry in self.lock().pending.values() {
            *counts.entry(entry.channel.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Rewrites the file with the pending entries and the remembered
    /// settled keys only, atomically.
    pub fn compact(&self) -> io::Result<()> {
        let mut inner = self.lock();
        let mut text = Vec::new();
        for (slot, outcome) in &inner.settled_order {
            Line::settled(slot, *outcome).write_to(&mut text)?;
        }
        for entry in inner.pending.values() {
            Line::pending(entry).write_to(&mut text)?;
        }
        write_atomically(&self.dir, FILE_NAME, &text)?;
        inner.file = OpenOptions::new()
            .append(true)
            .open(self.dir.join(FILE_NAME))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::notification::empty_firing as notification;

    fn entry(channel: &str, sequence: u64) -> Entry {
        let notification = notification(sequence);
        Entry {
            channel: channel.into(),
            key: notification.idempotency_key(),
            item: Item::Notification(notification),
        }
    }

    #[test]
    fn pending_entries_survive_a_reopen_in_order_and_settled_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, pending) = Outbox::open(dir.path()).unwrap();
        assert!(pending.is_empty());
        let (admitted, written) = outbox.admit(vec![entry("ops", 1), entry("ops", 2)]);
        written.unwrap();
        assert_eq!(admitted, [true, true]);
        outbox.admit(vec![entry("mail", 1)]).1.unwrap();
        outbox
            .settle("ops", &entry("ops", 1).key, Settlement::Delivered)
            .unwrap();
        drop(outbox);

        let (outbox, pending) = Outbox::open(dir.path()).unwrap();

        assert_eq!(pending, vec![entry("ops", 2), entry("mail", 1)]);
        assert_eq!(outbox.pending(), 2);
    }

    #[test]
    fn a_decision_repeated_after_a_crash_is_not_admitted_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, _) = Outbox::open(dir.path()).unwrap();
        outbox
            .admit(vec![entry("ops", 1), entry("ops", 2)])
            .1
            .unwrap();
        outbox
            .settle("ops", &entry("ops", 1).key, Settlement::Delivered)
            .unwrap();
        drop(outbox);
        let (outbox, _) = Outbox::open(dir.path()).unwrap();

        // Replayed events decide the same notifications again.
        let (admitted, _) = outbox.admit(vec![entry("ops", 1), entry("ops", 2), entry("ops", 3)]);

        assert_eq!(admitted, [false, false, true]);
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, _) = Outbox::open(dir.path()).unwrap();
        outbox.admit(vec![entry("ops", 1)]).1.unwrap();
        drop(outbox);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap();
        file.write_all(br#"{"op":"pending","channel":"ops","ke"#)
            .unwrap();

        let (_, pending) = Outbox::open(dir.path()).unwrap();

        assert_eq!(pending, vec![entry("ops", 1)]);
    }

    #[test]
    fn compaction_keeps_what_matters_and_bounds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, _) = Outbox::open(dir.path()).unwrap();
        for sequence in 0..50 {
            outbox.admit(vec![entry("ops", sequence)]).1.unwrap();
            if sequence % 2 == 0 {
                outbox
                    .settle("ops", &entry("ops", sequence).key, Settlement::Delivered)
                    .unwrap();
            }
        }
        let before = fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();

        outbox.compact().unwrap();
        drop(outbox);

        let after = fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        assert!(after < before, "{after} < {before}");
        let (outbox, pending) = Outbox::open(dir.path()).unwrap();
        assert_eq!(pending.len(), 25);
        assert_eq!(outbox.admit(vec![entry("ops", 0)]).0, [false]);
    }
}
