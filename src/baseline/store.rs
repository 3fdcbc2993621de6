//! The baseline store: a directory with one file per model version that
//! has a baseline of its own, named `<model>@<version>.json`, plus the two
//! things that write there — atomic saves and captures from live windows.
//!
//! Selection lives in [`crate::monitor::Monitor`] (an event's
//! `model_version` picks the version's baseline, else the model's default);
//! watching files for changes lives in the service.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::alert::CheckKind;
use crate::monitor::state::{ModelState, WindowState};

use super::{Baseline, BaselineError, Distribution, FeatureBaseline, SourceFacts};

/// Which baseline of a model: its default (`version: None`) or a version's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The model.
    pub model: String,
    /// The model version, or `None` for the default.
    pub version: Option<String>,
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.model),
            None => write!(f, "{}", self.model),
        }
    }
}

/// Whether a model or version name can name a store file: letters, digits,
/// `.`, `_`, `-` and `:`, not starting with `.` — so a name can never walk
/// out of the store or hide a file.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

/// The store file of a model version.
pub fn version_path(dir: &Path, model: &str, version: &str) -> PathBuf {
    dir.join(format!("{model}@{version}.json"))
}

/// Every `<model>@<version>.json` file in the store, as (slot, path); other
/// files are ignored. A missing directory is an empty store.
pub fn scan(dir: &Path) -> std::io::Result<Vec<(Slot, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let Some((model, version)) = stem.split_once('@') else {
            continue;
        };
        if valid_name(model) && valid_name(version) {
            let slot = Slot {
                model: model.to_string(),
                version: Some(version.to_string()),
            };
            found.push((slot, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Checks that a baseline belongs in a slot: same model, and for a version
/// slot the same `model_version` when the file names one.
pub fn check_slot(baseline: &Baseline, slot: &Slot, path: &Path) -> Result<(), BaselineError> {
    let invalid = |reason: String| BaselineError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    if baseline.model != slot.model {
        return Err(invalid(format!(
            "describes model {:?}, but is used for model {:?}",
            baseline.model, slot.model
        )));
    }
    if let (Some(want), Some(have)) = (&slot.version, &baseline.model_version)
        && want != have
    {
        return Err(invalid(format!(
            "describes model_version {have:?}, but is used for version {want:?}"
        )));
    }
    Ok(())
}

/// Writes a baseline so that readers see the old file or the new one,
/// never a part: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. Creates the directory if needed.
pub fn save_atomic(baseline: &Baseline, path: &Path) -> Result<(), BaselineError> {
    let io = |source| BaselineError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let bytes = serde_json::to_vec_pretty(baseline).map_err(|source| BaselineError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "baseline".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// What a capture kept and set aside.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CaptureFacts {
    /// Values kept per feature (and `prediction`).
    pub values: BTreeMap<String, u64>,
    /// Categorical values the active baseline did not know. A window keeps
    /// those only as "unknown", without their name, so a capture cannot
    /// count them under a category and leaves them out.
    pub unknown_categories_left_out: u64,
}

/// A baseline for `version` from a monitor's windows: per numeric feature
/// the window's values, per categorical feature its category counts, and
/// the prediction the same way. `last` keeps only each window's newest
/// values (the "next N events" capture); `None` keeps whole windows. The
/// active baseline's reference metrics are not carried over: they were
/// measured on other data.
pub fn capture(
    active: &Baseline,
    state: &ModelState,
    version: &str,
    last: Option<usize>,
    input: String,
) -> Result<(Baseline, CaptureFacts), BaselineError> {
    let mut facts = CaptureFacts::default();
    let mut features = Vec::new();
    let mut prediction = None;
    let mut rows = 0u64;
    for check in &state.checks {
        let (distribution, kept) = window_distribution(&check.window, last, &mut facts);
        facts.values.insert(check.name.clone(), kept);
        rows = rows.max(kept);
        if check.kind == CheckKind::PredictionDrift {
            prediction = Some(distribution);
        } else {
            features.push(FeatureBaseline {
                name: check.name.clone(),
                distribution,
                missing: 0,
            });
        }
    }
    // Keep the active baseline's feature order (the layout), and carry the
    // missing counts of the windows' missing-rate trackers.
    let order: Vec<&str> = active.features.iter().map(|f| f.name.as_str()).collect();
    features.sort_by_key(|f| order.iter().position(|n| *n == f.name));
    for feature in &mut features {
        if let Some(quality) = state.quality.iter().find(|q| q.name == feature.name) {
            let ring = match last {
                Some(n) => &quality.missing[quality.missing.len().saturating_sub(n)..],
                None => &quality.missing[..],
            };
            feature.missing = ring.iter().filter(|&&m| m).count() as u64;
        }
    }
    let empty: Vec<&str> = features
        .iter()
        .filter(|f| f.present() == 0)
        .map(|f| f.name.as_str())
        .collect();
    if !empty.is_empty() {
        return Err(BaselineError::Invalid {
            path: PathBuf::from("<capture>"),
            reason: format!(
                "the window of {} holds no values yet; capture after traffic arrives",
                empty.join(", ")
            ),
        });
    }
    let baseline = Baseline::new(Baseline {
        schema_version: super::SCHEMA_VERSION,
        id: String::new(),
        model: active.model.clone(),
        model_version: Some(version.to_string()),
        source: SourceFacts {
            input,
            rows,
            content_hash: None,
        },
        features,
        prediction,
        metrics: Default::default(),
    })?;
    Ok((baseline, facts))
}

fn window_distribution(
    window: &WindowState,
    last: Option<usize>,
    facts: &mut CaptureFacts,
) -> (Distribution, u64) {
    let tail = |len: usize| last.map_or(0, |n| len.saturating_sub(n));
    match window {
        WindowState::Numeric { values } => {
            let kept = values[tail(values.len())..].to_vec();
            let n = kept.len() as u64;
            (
                Distribution::Numeric {
                    values: kept,
                    population: None,
                },
                n,
            )
        }
        WindowState::Categorical { values } => {
            let mut counts = BTreeMap::new();
            let mut n = 0;
            for value in &values[tail(values.len())..] {
                match value {
                    Some(name) => {
                        *counts.entry(name.clone()).or_insert(0) += 1;
                        n += 1;
                    }
                    None => facts.unknown_categories_left_out += 1,
                }
            }
            (Distribution::Categorical { counts }, n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_store_are_refused() {
        assert!(valid_name("churn"));
        assert!(valid_name("2026-11-30"));
        assert!(valid_name("v1.2_rc:3"));
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "a b", "a@b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn scan_finds_version_files_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["churn@v2.json", "churn.json", "notes.txt", "a@b@c.json"] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        let found = scan(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.to_string(), "churn@v2");
        assert!(scan(&dir.path().join("missing")).unwrap().is_empty());
    }
}
