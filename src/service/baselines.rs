//! Baselines in the running service: which file each slot (a model's
//! default, or one of its versions) comes from, loading them at start,
//! reloading a file when it changes, and installing one from the API — an
//! upload or a capture — by writing its file first, so that the file stays
//! the one source of truth and a restart comes back to the same baseline.
//!
//! Slots and their files:
//! - a model's default: its configured `baseline` path;
//! - a version named in `[[models]].versions`: that path;
//! - any other version: `<baselines.dir>/<model>@<version>.json`, found by
//!   scanning the store (at start and on every reload tick) or written by
//!   the API.
//!
//! Files are polled (modification time and size) rather than watched with
//! inotify: polling works the same on every filesystem, including network
//! and container volumes where change notifications are unreliable, and a
//! tick of a few seconds costs one `stat` per file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use anyhow::Context as _;
use serde::Serialize;

use crate::baseline::store::{self, CaptureFacts, Slot};
use crate::baseline::{Baseline, BaselineError};
use crate::config::Config;
use crate::monitor::{ApplyError, Monitor};

/// A file's modification time and size, to notice changes cheaply.
type Stamp = (Option<SystemTime>, u64);

#[derive(Debug, Clone)]
struct FileState {
    path: PathBuf,
    /// Named in the configuration (else found in the store).
    configured: bool,
    /// The stamp when last read.
    stamp: Option<Stamp>,
    /// The id loaded from it, when it loaded.
    id: Option<String>,
    /// Why the last read failed, until a read succeeds.
    error: Option<String>,
}

/// One slot for the API.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    /// The model version, `None` for the default.
    pub version: Option<String>,
    /// The file it comes from.
    pub path: PathBuf,
    /// Whether the configuration names the file (else the store holds it).
    pub configured: bool,
    /// The id loaded from the file.
    pub baseline_id: Option<String>,
    /// Why the file's last read failed (the previous baseline stays).
    pub error: Option<String>,
}

/// What installing a baseline did.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    /// The model.
    pub model: String,
    /// The version slot, `None` for the default.
    pub model_version: Option<String>,
    /// The new baseline's id.
    pub baseline_id: String,
    /// The id it replaced, if the slot had one.
    pub previous_baseline_id: Option<String>,
    /// Where it was written.
    pub path: PathBuf,
}

/// A change noticed by a reload tick.
#[derive(Debug, Clone)]
pub enum Reload {
    /// A file's new content is in use.
    Replaced {
        /// The slot.
        slot: Slot,
        /// The id before.
        previous: Option<String>,
        /// The id now.
        id: String,
    },
    /// A file changed but could not be used; the previous baseline stays.
    Failed {
        /// The slot.
        slot: Slot,
        /// Why.
        error: String,
    },
}

/// Why an install was refused.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The model is not configured.
    #[error("no model {0:?} is monitored")]
    UnknownModel(String),
    /// The baseline does not fit the slot or the name is unusable.
    #[error("{0}")]
    Invalid(String),
    /// Writing the file failed.
    #[error("{0}")]
    Write(BaselineError),
    /// The monitor refused it (e.g. a sample it cannot use).
    #[error("{0}")]
    Monitor(ApplyError),
}

/// The baseline files of every slot.
#[derive(Debug)]
pub struct BaselineFiles {
    dir: PathBuf,
    max_upload_bytes: usize,
    models: BTreeSet<String>,
    slots: Mutex<BTreeMap<Slot, FileState>>,
    captures: Mutex<Vec<CaptureStatus>>,
}

/// A capture of the next N events, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureStatus {
    /// Sequence number of the request.
    pub id: u64,
    /// The model.
    pub model: String,
    /// The version the captured baseline is for.
    pub model_version: String,
    /// Events to wait for.
    pub events: u64,
    /// Events seen so far.
    pub seen: u64,
    /// `pending`, `done` or `failed`.
    pub state: &'static str,
    /// The result, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed: Option<Installed>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BaselineFiles {
    /// Loads every configured baseline (an error stops the start: the
    /// service cannot monitor a model without its default) and every store
    /// file for a configured model (one that fails is reported and retried
    /// when it changes). Returns the files and the loaded baselines,
    /// defaults first.
    pub fn open(config: &Config) -> anyhow::Result<(BaselineFiles, Vec<(Slot, Baseline)>)> {
        let mut slots = BTreeMap::new();
        let mut loaded = Vec::new();
        for model in &config.models {
            let name = model.name.as_str().to_string();
            let mut configured = vec![(None, model.baseline.clone())];
            configured.extend(
                model
                    .versions
                    .iter()
                    .map(|(v, p)| (Some(v.clone()), p.clone())),
            );
            for (version, path) in configured {
                let slot = Slot {
                    model: name.clone(),
                    version,
                };
                let stamp = stamp_of(&path);
                let baseline = read(&slot, &path).with_context(|| format!("baseline of {slot}"))?;
                slots.insert(
                    slot.clone(),
                    FileState {
                        path,
                        configured: true,
                        stamp,
                        id: Some(baseline.id.clone()),
                        error: None,
                    },
                );
                loaded.push((slot, baseline));
            }
        }
        let files = BaselineFiles {
            dir: config.baselines.dir.clone(),
            max_upload_bytes: config.baselines.max_upload_bytes,
            captures: Mutex::new(Vec::new()),
            models: config
                .models
                .iter()
                .map(|m| m.name.as_str().to_string())
                .collect(),
            slots: Mutex::new(slots),
        };
        for (slot, path) in files.new_store_files() {
            let stamp = stamp_of(&path);
            let (id, error) = match read(&slot, &path) {
                Ok(baseline) => {
                    let id = baseline.id.clone();
                    loaded.push((slot.clone(), baseline));
                    (Some(id), None)
                }
                Err(e) => {
                    tracing::error!(%slot, error = %e, "store baseline not loaded");
                    (None, Some(e.to_string()))
                }
            };
            files.lock().insert(
                slot,
                FileState {
                    path,
                    configured: false,
                    stamp,
                    id,
                    error,
                },
            );
        }
        Ok((files, loaded))
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Largest accepted upload.
    pub fn max_upload_bytes(&self) -> usize {
        self.max_upload_bytes
    }

    /// Captures of the next N events of a model, newest last.
    pub fn captures(&self, model: &str) -> Vec<CaptureStatus> {
        lock_list(&self.captures)
            .iter()
            .filter(|c| c.model == model)
            .cloned()
            .collect()
    }

    /// Freezes the windows that events of `version` are compared on now
    /// (the version's own monitor, else the model's default) as the
    /// version's baseline, keeping each window's newest `last` values
    /// (`None`: whole windows), and installs it.
    pub fn capture(
        &self,
        monitor: &Mutex<Monitor>,
        model: &str,
        version: &str,
        last: Option<usize>,
    ) -> Result<(Installed, CaptureFacts), InstallError> {
        if !self.knows_model(model) {
            return Err(InstallError::UnknownModel(model.to_string()));
        }
        let slot = Slot {
            model: model.to_string(),
            version: Some(version.to_string()),
        };
        self.path_for(&slot)?;
        let (active, state) = {
            let monitor = lock_monitor(monitor);
            let selected = monitor
                .monitor_for(model, Some(version))
                .ok_or_else(|| InstallError::UnknownModel(model.to_string()))?;
            (Arc::clone(selected.baseline()), selected.state())
        };
        let input = format!(
            "capture of {model} traffic after {} events (baseline {})",
            state.events, active.id
        );
        let (baseline, facts) = store::capture(&active, &state, version, last, input)
            .map_err(|e| InstallError::Invalid(e.to_string()))?;
        let installed = self.install(monitor, &slot, baseline)?;
        Ok((installed, facts))
    }

    /// Starts a capture of the next `events` events of `version`'s
    /// selected monitor: when they have been applied, their values (the
    /// windows' newest `events` values) become the version's baseline.
    /// `events` must fit in a window.
    pub fn capture_next(
        self: &Arc<Self>,
        monitor: &Arc<Mutex<Monitor>>,
        model: &str,
        version: &str,
        events: u64,
    ) -> Result<CaptureStatus, InstallError> {
        if !self.knows_model(model) {
            return Err(InstallError::UnknownModel(model.to_string()));
        }
        self.path_for(&Slot {
            model: model.to_string(),
            version: Some(version.to_string()),
        })?;
        let (start, capacity) = {
            let monitor = lock_monitor(monitor);
            let selected = monitor
                .monitor_for(model, Some(version))
                .ok_or_else(|| InstallError::UnknownModel(model.to_string()))?;
            let s = selected.settings();
            let capacity = match s.window_duration_ms {
                Some(_) => None,
                None => Some(s.window_size as u64),
            };
            (selected.events(), capacity)
        };
        if events == 0 || capacity.is_some_and(|c| events > c) {
            return Err(InstallError::Invalid(format!(
                "events must be between 1 and the window size ({}), got {events}",
                capacity.map_or("event-time window".to_string(), |c| c.to_string())
            )));
        }
        let status = {
            let mut captures = lock_list(&self.captures);
            // Keep the record bounded: drop the oldest finished captures.
            while captures.len() >= MAX_CAPTURES_KEPT {
                match captures.iter().position(|c| c.state != "pending") {
                    Some(i) => {
                        captures.remove(i);
                    }
                    None => {
                        return Err(InstallError::Invalid(format!(
                            "{MAX_CAPTURES_KEPT} captures are already pending"
                        )));
                    }
                }
            }
            let status = CaptureStatus {
                id: captures.last().map_or(1, |c| c.id + 1),
                model: model.to_string(),
                model_version: version.to_string(),
                events,
                seen: 0,
                state: "pending",
                installed: None,
                error: None,
            };
            captures.push(status.clone());
            status
        };
        let (files, monitor, model, version) = (
            Arc::clone(self),
            Arc::clone(monitor),
            model.to_string(),
            version.to_string(),
        );
        let id = status.id;
        tokio::spawn(async move {
            let mut start = start;
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let now = lock_monitor(&monitor)
                    .monitor_for(&model, Some(&version))
                    .map_or(0, |m| m.events());
                // The selected monitor changed (the version got a baseline
                // of its own meanwhile): count from its start.
                if now < start {
                    start = 0;
                }
                let seen = (now - start).min(events);
                files.update_capture(id, |c| c.seen = seen);
                if seen >= events {
                    break;
                }
            }
            let result = {
                let (files, monitor) = (Arc::clone(&files), Arc::clone(&monitor));
                let (model, version) = (model.clone(), version.clone());
                tokio::task::spawn_blocking(move || {
                    files.capture(&monitor, &model, &version, Some(events as usize))
                })
                .await
            };
            match result {
                Ok(Ok((installed, _))) => {
                    tracing::info!(model = %model, version = %version,
                        baseline_id = %installed.baseline_id, "capture done; baseline in use");
                    files.update_capture(id, |c| {
                        c.state = "done";
                        c.installed = Some(installed);
                    });
                }
                Ok(Err(e)) => {
                    tracing::error!(model = %model, version = %version, error = %e, "capture failed");
                    files.update_capture(id, |c| {
                        c.state = "failed";
                        c.error = Some(e.to_string());
                    });
                }
                Err(e) => files.update_capture(id, |c| {
                    c.state = "failed";
                    c.error = Some(e.to_string());
                }),
            }
        });
        Ok(status)
    }

    fn update_capture(&self, id: u64, f: impl FnOnce(&mut CaptureStatus)) {
        if let Some(c) = lock_list(&self.captures).iter_mut().find(|c| c.id == id) {
            f(c);
        }
    }

    /// Whether a model is configured.
    pub fn knows_model(&self, model: &str) -> bool {
        self.models.contains(model)
    }

    /// The slots of one model, default first.
    pub fn status(&self, model: &str) -> Vec<SlotStatus> {
        self.lock()
            .iter()
            .filter(|(slot, _)| slot.model == model)
            .map(|(slot, file)| SlotStatus {
                version: slot.version.clone(),
                path: file.path.clone(),
                configured: file.configured,
                baseline_id: file.id.clone(),
                error: file.error.clone(),
            })
            .collect()
    }

    /// The file a slot is read from and written to.
    pub fn path_for(&self, slot: &Slot) -> Result<PathBuf, InstallError> {
        if let Some(file) = self.lock().get(slot) {
            return Ok(file.path.clone());
        }
        match &slot.version {
            Some(version) if store::valid_name(version) && store::valid_name(&slot.model) => {
                Ok(store::version_path(&self.dir, &slot.model, version))
            }
            Some(version) => Err(InstallError::Invalid(format!(
                "version {version:?} cannot name a store file: use letters, digits, '.', '_', '-' or ':'"
            ))),
            // Every configured model has a default slot from the start.
            None => Err(InstallError::UnknownModel(slot.model.clone())),
        }
    }

    /// Writes `baseline` to its slot's file, then makes the monitor use it
    /// (window contents carry over when the slot had a baseline).
    pub fn install(
        &self,
        monitor: &Mutex<Monitor>,
        slot: &Slot,
        baseline: Baseline,
    ) -> Result<Installed, InstallError> {
        if !self.knows_model(&slot.model) {
            return Err(InstallError::UnknownModel(slot.model.clone()));
        }
        let path = self.path_for(slot)?;
        store::check_slot(&baseline, slot, &path)
            .map_err(|e| InstallError::Invalid(e.to_string()))?;
        store::save_atomic(&baseline, &path).map_err(InstallError::Write)?;
        let id = baseline.id.clone();
        let previous = lock_monitor(monitor)
            .install(slot.version.as_deref(), Arc::new(baseline))
            .map_err(InstallError::Monitor)?;
        let mut slots = self.lock();
        let configured = slots.get(slot).is_some_and(|f| f.configured);
        slots.insert(
            slot.clone(),
            FileState {
                stamp: stamp_of(&path),
                path: path.clone(),
                configured,
                id: Some(id.clone()),
                error: None,
            },
        );
        Ok(Installed {
            model: slot.model.clone(),
            model_version: slot.version.clone(),
            baseline_id: id,
            previous_baseline_id: previous,
            path,
        })
    }

    /// Reads every file whose stamp changed, and new store files, and
    /// swaps what loads into the monitor. Blocking file I/O: call it off
    /// the async runtime's worker threads.
    pub fn reload_changed(&self, monitor: &Mutex<Monitor>) -> Vec<Reload> {
        let mut candidates: Vec<(Slot, PathBuf, Option<Stamp>)> = self
            .lock()
            .iter()
            .filter_map(|(slot, file)| {
                let stamp = stamp_of(&file.path);
                (stamp != file.stamp).then(|| (slot.clone(), file.path.clone(), stamp))
            })
            .collect();
        candidates.extend(self.new_store_files().into_iter().map(|(slot, path)| {
            let stamp = stamp_of(&path);
            (slot, path, stamp)
        }));
        let mut reloads = Vec::new();
        for (slot, path, stamp) in candidates {
            if stamp.is_none() {
                // Deleted (or mid-replace): keep the baseline in use; a
                // removed file never removes a model's monitoring.
                continue;
            }
            let outcome = read(&slot, &path).and_then(|baseline| {
                let id = baseline.id.clone();
                let unchanged =
                    self.lock().get(&slot).and_then(|f| f.id.clone()) == Some(id.clone());
                if unchanged {
                    return Ok(None);
                }
                lock_monitor(monitor)
                    .install(slot.version.as_deref(), Arc::new(baseline))
                    .map(|previous| Some((previous, id)))
                    .map_err(|e| BaselineError::Invalid {
                        path: path.clone(),
                        reason: e.to_string(),
                    })
            });
            let mut slots = self.lock();
            let file = slots.entry(slot.clone()).or_insert_with(|| FileState {
                path: path.clone(),
                configured: false,
                stamp: None,
                id: None,
                error: None,
            });
            file.stamp = stamp;
            match outcome {
                Ok(None) => {}
                Ok(Some((previous, id))) => {
                    file.id = Some(id.clone());
                    file.error = None;
                    reloads.push(Reload::Replaced { slot, previous, id });
                }
                Err(e) => {
                    file.error = Some(e.to_string());
                    reloads.push(Reload::Failed {
                        slot,
                        error: e.to_string(),
                    });
                }
            }
        }
        reloads
    }

    /// Store files of configured models not yet known as a slot.
    fn new_store_files(&self) -> Vec<(Slot, PathBuf)> {
        let found = match store::scan(&self.dir) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot read the baseline store");
                return Vec::new();
            }
        };
        let slots = self.lock();
        found
            .into_iter()
            .filter(|(slot, _)| self.models.contains(&slot.model) && !slots.contains_key(slot))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Slot, FileState>> {
        // Each update replaces whole entries, so a panic elsewhere cannot
        // leave one half-written.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Captures remembered for the API (pending ones are never dropped).
const MAX_CAPTURES_KEPT: usize = 32;

fn lock_list<T>(list: &Mutex<Vec<T>>) -> MutexGuard<'_, Vec<T>> {
    list.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock_monitor(monitor: &Mutex<Monitor>) -> MutexGuard<'_, Monitor> {
    monitor.lock().unwrap_or_else(|e| e.into_inner())
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

fn read(slot: &Slot, path: &Path) -> Result<Baseline, BaselineError> {
    let baseline = Baseline::load(path)?;
    store::check_slot(&baseline, slot, path)?;
    Ok(baseline)
}

/// Reloads changed files every `every` until `stop`, logging each change.
pub fn spawn_reloader(
    files: Arc<BaselineFiles>,
    monitor: Arc<Mutex<Monitor>>,
    metrics: Arc<crate::telemetry::Metrics>,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let (files, monitor) = (Arc::clone(&files), Arc::clone(&monitor));
            let reloads = tokio::task::spawn_blocking(move || files.reload_changed(&monitor))
                .await
                .unwrap_or_default();
            for reload in reloads {
                match reload {
                    Reload::Replaced { slot, previous, id } => {
                        tracing::info!(%slot, previous = previous.as_deref().unwrap_or("none"),
                            baseline_id = %id, "baseline file changed; now in use");
                        metrics.baseline_reload(&slot.model, "replaced");
                    }
                    Reload::Failed { slot, error } => {
                        tracing::error!(%slot, %error,
                            "baseline file changed but cannot be used; the previous baseline stays");
                        metrics.baseline_reload(&slot.model, "failed");
                    }
                }
            }
        }
    })
}
