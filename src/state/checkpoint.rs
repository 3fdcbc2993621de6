//! The checkpoint file: the monitor's state and the Kafka offsets it
//! reflects, written together and atomically.
//!
//! # Format
//!
//! ```text
//! driftwarden-checkpoint 1 <body length> sha256:<hex of the body>\n
//! <body: JSON>
//! ```
//!
//! The header names the format version and carries a checksum of the body,
//! so a torn or altered file and a file from a newer release are each
//! reported for what they are. A checkpoint is never silently discarded: a
//! file that cannot be read stops the start, with the path and the reason,
//! and the operator decides (move it aside to start fresh).
//!
//! # Atomicity
//!
//! [`save`] writes a temporary file in the same directory, fsyncs it,
//! renames it over `checkpoint.json` and fsyncs the directory, so after a
//! crash at any moment the file is either the previous checkpoint or the
//! new one, never a mixture.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::monitor::ModelState;
use crate::stats::calibration::Calibration;

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The checkpoint's file name inside the checkpoint directory.
pub const FILE_NAME: &str = "checkpoint.json";

const MAGIC: &str = "driftwarden-checkpoint";

/// Everything a restart needs to continue where the checkpoint was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Wall-clock time the checkpoint was taken (ms since the epoch).
    pub written_at_ms: i64,
    /// Every model's (and version's) monitor state.
    pub models: Vec<ModelState>,
    /// The next offset to read of every partition the state reflects: the
    /// state holds every event before it and none after.
    pub offsets: Vec<PartitionOffset>,
    /// The threshold calibrations the monitor had computed: restored so
    /// that a restart does not spend seconds simulating them again.
    /// (Absent in checkpoints written before they were kept: those
    /// calibrate afresh, with the same result.)
    #[serde(default)]
    pub calibrations: Vec<Calibration>,
}

/// The next offset to consume of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset of the first message not reflected in the state.
    pub next_offset: i64,
}

impl Checkpoint {
    /// The offsets as a map keyed by (topic, partition).
    pub fn offset_map(&self) -> BTreeMap<(String, i32), i64> {
        self.offsets
            .iter()
            .map(|o| ((o.topic.clone(), o.partition), o.next_offset))
            .collect()
    }
}

/// Why a checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The header is missing or malformed, the length or checksum does not
    /// match, or the body is not a checkpoint.
    #[error(
        "checkpoint {path} is corrupt ({reason}); move it aside to start with empty windows, \
         or restore a backup"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by a newer release, in a format this one does not know.
    #[error(
        "checkpoint {path} has format version {found}; this release reads version {FORMAT_VERSION} \
         (run the release that wrote it, or move the file aside)"
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
}

/// The checkpoint file in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Encodes a checkpoint: header line, then the JSON body.
pub fn encode(checkpoint: &Checkpoint) -> Result<Vec<u8>, serde_json::Error> {
    let body = serde_json::to_vec(checkpoint)?;
    let digest = hex::encode(Sha256::digest(&body));
    let mut out = format!("{MAGIC} {FORMAT_VERSION} {} sha256:{digest}\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes what [`encode`] wrote; `path` names the file in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoint, LoadError> {
    let corrupt = |reason: String| LoadError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no header line".into()))?;
    let header = std::str::from_utf8(&bytes[..newline])
        .map_err(|_| corrupt("header is not UTF-8".into()))?;
    let body = &bytes[newline + 1..];
    let fields: Vec<&str> = header.split(' ').collect();
    let [magic, version, length, checksum] = fields.as_slice() else {
        return Err(corrupt(format!("malformed header {header:?}")));
    };
    if *magic != MAGIC {
        return Err(corrupt(format!("not a checkpoint (header {header:?})")));
    }
    let version: u32 = version
        .parse()
        .map_err(|_| corrupt(format!("malformed format version {version:?}")))?;
    if version > FORMAT_VERSION {
        return Err(LoadError::Newer {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if version != FORMAT_VERSION {
        return Err(corrupt(format!("unknown format version {version}")));
    }
    let length: usize = length
        .parse()
        .map_err(|_| corrupt(format!("malformed length {length:?}")))?;
    if length != body.len() {
        return Err(corrupt(format!(
            "body is {} bytes, header says {length} (torn write?)",
            body.len()
        )));
    }
    let expected = checksum
        .strip_prefix("sha256:")
        .ok_or_else(|| corrupt(format!("malformed checksum {checksum:?}")))?;
    let actual = hex::encode(Sha256::digest(body));
    if actual != expected {
        return Err(corrupt(format!(
            "checksum mismatch: header {expected}, body {actual}"
        )));
    }
    serde_json::from_slice(body).map_err(|e| corrupt(format!("body: {e}")))
}

/// Reads the checkpoint in `dir`: `Ok(None)` when there is none yet.
pub fn load(dir: &Path) -> Result<Option<Checkpoint>, LoadError> {
    let path = path_in(dir);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes, &path).map(Some),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LoadError::Io { path, source }),
    }
}

/// Writes `bytes` (an encoded checkpoint) to `dir` atomically: temporary
/// file, fsync, rename, fsync of the directory. Creates `dir` if needed.
pub fn save(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically(dir, FILE_NAME, bytes)
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old
/// file or the new one: temporary file, fsync, rename, fsync of the
/// directory.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{name}.tmp"));
    {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, dir.join(name))?;
    sync_dir(dir)
}

/// Fsyncs a directory so that a rename in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened for syncing here; the rename is as
        // durable as the platform makes it.
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            written_at_ms: 1_700_000_000_000,
            models: Vec::new(),
            offsets: vec![PartitionOffset {
                topic: "predictions".into(),
                partition: 3,
                next_offset: 42,
            }],
            calibrations: Vec::new(),
        }
    }

    #[test]
    fn a_saved_checkpoint_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &encode(&sample()).unwrap()).unwrap();

        let loaded = load(dir.path()).unwrap().unwrap();

        assert_eq!(loaded, sample());
        assert_eq!(loaded.offset_map()[&("predictions".into(), 3)], 42);
        assert!(!dir.path().join(".checkpoint.json.tmp").exists());
    }

    #[test]
    fn no_file_is_no_checkpoint() {
        let dir = tempfile::tempdir().unwrap();

        assert!(load(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_changed_byte_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode(&sample()).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x01;
        fs::write(path_in(dir.path()), &bytes).unwrap();

        let error = load(dir.path()).unwrap_err();

        assert!(matches!(error, LoadError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
    }

    #[test]
    fn a_torn_file_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode(&sample()).unwrap();
        fs::write(path_in(dir.path()), &bytes[..bytes.len() / 2]).unwrap();

        let error = load(dir.path()).unwrap_err();

        assert!(error.to_string().contains("torn write"), "{error}");
    }

    #[test]
    fn a_newer_format_is_reported_as_newer() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode(&sample()).unwrap();
        let text = String::from_utf8(bytes).unwrap().replacen(
            &format!("{MAGIC} {FORMAT_VERSION} "),
            &format!("{MAGIC} {} ", FORMAT_VERSION + 1),
            1,
        );
        fs::write(path_in(dir.path()), text).unwrap();

        let error = load(dir.path()).unwrap_err();

        assert!(
            matches!(error, LoadError::Newer { found, .. } if found == FORMAT_VERSION + 1),
            "{error}"
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use proptest::prelude::*;
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..512))| {
            let _ = decode(&bytes, Path::new("x"));
        });
    }
}
