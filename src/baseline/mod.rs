//! Baseline snapshots: what "normal" looks like for one model (version).
//!
//! A snapshot holds, per numeric feature, a sorted sample of reference
//! values; per categorical feature, the category counts; the distribution of
//! predictions; and reference metrics with their sample sizes. It is
//! immutable and its id is the hash of its content, so an alert that names a
//! baseline id names exactly one set of numbers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod builder;
pub mod inspect;
pub mod store;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The snapshot format this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a baseline could not be loaded.
#[derive(Debug, Error)]
pub enum BaselineError {
    /// The file could not be read.
    #[error("cannot read baseline {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid snapshot.
    #[error("baseline {path} is not valid JSON for schema {SCHEMA_VERSION}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// The content is inconsistent.
    #[error("baseline {path}: {reason}")]
    Invalid {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The distribution of one feature (or of the prediction) in the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Distribution {
    /// Reference values of a numeric feature, sorted ascending.
    Numeric {
        /// The sample (sorted, finite).
        values: Vec<f64>,
        /// How many non-missing values the source had; larger than
        /// `values.len()` when the sample is a reservoir sample.
        #[serde(default)]
        population: Option<u64>,
    },
    /// Category counts of a categorical feature (strings; booleans are
    /// `"true"` / `"false"`).
    Categorical {
        /// Count per category.
        counts: BTreeMap<String, u64>,
    },
}

/// One feature of the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBaseline {
    /// The feature's name as it appears in events.
    pub name: String,
    /// Its distribution.
    #[serde(flatten)]
    pub distribution: Distribution,
    /// How many source rows had this feature missing (null or absent).
    #[serde(default)]
    pub missing: u64,
}

impl FeatureBaseline {
    /// Number of non-missing values in the source: the population when the
    /// numeric sample is a reservoir sample (so that the missing rate
    /// compares like with like), else the sample's size.
    pub fn present(&self) -> u64 {
        match &self.distribution {
            Distribution::Numeric { values, population } => {
                population.map_or(values.len() as u64, |p| p.max(values.len() as u64))
            }
            Distribution::Categorical { counts } => counts.values().sum(),
        }
    }

    /// Fraction of source rows where the feature was missing.
    pub fn missing_rate(&self) -> f64 {
        let total = self.present() + self.missing;
        if total == 0 {
            0.0
        } else {
            self.missing as f64 / total as f64
        }
    }
}

/// Reference metrics measured where labels were known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ReferenceMetrics {
    /// Classification accuracy and the number of labelled rows behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<MetricValue>,
    /// Regression mean absolute error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<MetricValue>,
    /// Regression root mean squared error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<MetricValue>,
}

/// A metric value and its sample size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// The value.
    pub value: f64,
    /// How many labelled rows it was measured on.
    pub n: u64,
}

/// Where a baseline came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SourceFacts {
    /// Input file name, or a description such as `"built-in demo"`.
    pub input: String,
    /// Rows read.
    pub rows: u64,
    /// SHA-256 of the input bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

/// A baseline snapshot. Build it with [`Baseline::new`] (which computes the
/// id) or load it with [`Baseline::load`] (which checks it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version; see [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Content hash (see [`Baseline::content_id`]).
    #[serde(default)]
    pub id: String,
    /// The model this describes.
    pub model: String,
    /// The model version, when baselines differ by version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Where it came from.
    #[serde(default)]
    pub source: SourceFacts,
    /// The input features, in a fixed order that defines the model's
    /// feature layout.
    pub features: Vec<FeatureBaseline>,
    /// The distribution of the model's predictions, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Distribution>,
    /// Reference metrics.
    #[serde(default)]
    pub metrics: ReferenceMetrics,
}

impl Baseline {
    /// Makes a snapshot: sorts numeric samples, validates, computes the id.
    pub fn new(mut baseline: Baseline) -> Result<Baseline, BaselineError> {
        baseline.schema_version = SCHEMA_VERSION;
        for feature in &mut baseline.features {
            sort_values(&mut feature.distribution);
        }
        if let Some(prediction) = baseline.prediction.as_mut() {
            sort_values(prediction);
        }
        baseline.validate(Path::new("<memory>"))?;
        baseline.id = baseline.content_id();
        Ok(baseline)
    }

    /// Reads a snapshot file, validates it and checks (or fills in) its id.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let bytes = std::fs::read(path).map_err(|source| BaselineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_slice(&bytes, path)
    }

    /// Parses a snapshot from bytes; `origin` names it in errors.
    pub fn from_slice(bytes: &[u8], origin: &Path) -> Result<Baseline, BaselineError> {
        let mut baseline: Baseline =
            serde_json::from_slice(bytes).map_err(|source| BaselineError::Parse {
                path: origin.to_path_buf(),
                source,
            })?;
        baseline.validate(origin)?;
        let id = baseline.content_id();
        if !baseline.id.is_empty() && baseline.id != id {
            return Err(invalid(
                origin,
                format!("id {} does not match content {id}", baseline.id),
            ));
        }
        baseline.id = id;
        Ok(baseline)
    }

    /// Writes the snapshot as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), BaselineError> {
        let io = |source| BaselineError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|source| BaselineError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        std::fs::write(path, text).map_err(io)
    }

    /// SHA-256 over the canonical JSON of everything but the id, shortened
    /// to 16 hex digits: stable for the same content, different otherwise.
    pub fn content_id(&self) -> String {
        let mut copy = self.clone();
        copy.id = String::new();
        // Serialising plain data to a Vec cannot fail; an empty digest input
        // would still give a stable (if useless) id.
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        format!("sha256:{}", hex::encode(&digest[..8]))
    }

    /// The feature with this name, and its index in the layout.
    pub fn feature(&self, name: &str) -> Option<(usize, &FeatureBaseline)> {
        self.features
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == name)
    }

    fn validate(&self, origin: &Path) -> Result<(), BaselineError> {
        if self.schema_version > SCHEMA_VERSION {
            return Err(invalid(
                origin,
                format!(
                    "schema_version {} is newer than this build's {SCHEMA_VERSION}",
                    self.schema_version
                ),
            ));
        }
        if self.model.is_empty() {
            return Err(invalid(origin, "model is empty".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for feature in &self.features {
            if !seen.insert(feature.name.as_str()) {
                return Err(invalid(
                    origin,
                    format!("feature {:?} appears twice", feature.name),
                ));
            }
            check_distribution(&feature.distribution).map_err(|reason| {
                invalid(origin, format!("feature {:?}: {reason}", feature.name))
            })?;
        }
        if let Some(prediction) = &self.prediction {
            check_distribution(prediction)
                .map_err(|reason| invalid(origin, format!("prediction: {reason}")))?;
        }
        Ok(())
    }
}

fn sort_values(distribution: &mut Distribution) {
    if let Distribution::Numeric { values, .. } = distribution {
        values.sort_by(f64::total_cmp);
    }
}

fn check_distribution(distribution: &Distribution) -> Result<(), String> {
    match distribution {
        Distribution::Numeric { values, .. } => {
            if values.is_empty() {
                return Err("no reference values".into());
            }
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(format!("value {} at index {i} is not finite", values[i]));
            }
            if values.windows(2).any(|w| w[0] > w[1]) {
                return Err("values are not sorted ascending".into());
            }
            Ok(())
        }
        Distribution::Categorical { counts } => {
            if counts.values().all(|&c| c == 0) {
                Err("no category has a count".into())
            } else {
                Ok(())
            }
        }
    }
}

fn invalid(origin: &Path, reason: String) -> BaselineError {
    BaselineError::Invalid {
        path: origin.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Baseline {
        Baseline {
            schema_version: SCHEMA_VERSION,
            id: String::new(),
            model: "churn".into(),
            model_version: None,
            source: SourceFacts::default(),
            features: vec![
                FeatureBaseline {
                    name: "age".into(),
                    distribution: Distribution::Numeric {
                        values: vec![3.0, 1.0, 2.0],
                        population: None,
                    },
                    missing: 1,
                },
                FeatureBaseline {
                    name: "plan".into(),
                    distribution: Distribution::Categorical {
                        counts: [("basic".to_string(), 2), ("pro".to_string(), 1)].into(),
                    },
                    missing: 0,
                },
            ],
            prediction: None,
            metrics: ReferenceMetrics::default(),
        }
    }

    #[test]
    fn new_sorts_and_ids_by_content() {
        let a = Baseline::new(sample()).unwrap();
        let b = Baseline::new(sample()).unwrap();
        assert_eq!(a.id, b.id);
        assert!(matches!(&a.features[0].distribution,
            Distribution::Numeric { values, .. } if values == &[1.0, 2.0, 3.0]));
        let mut other = sample();
        other.features[0].missing = 2;
        assert_ne!(Baseline::new(other).unwrap().id, a.id);
        assert!((a.features[0].missing_rate() - 0.25).abs() < 1e-15);
    }

    #[test]
    fn round_trip_checks_id() {
        let a = Baseline::new(sample()).unwrap();
        let text = serde_json::to_vec(&a).unwrap();
        let b = Baseline::from_slice(&text, Path::new("x.json")).unwrap();
        assert_eq!(a, b);
        let tampered = String::from_utf8(text)
            .unwrap()
            .replace("\"missing\":1", "\"missing\":7");
        let err = Baseline::from_slice(tampered.as_bytes(), Path::new("x.json")).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn rejects_unsorted_or_empty() {
        let mut s = Baseline::new(sample()).unwrap();
        s.features[0].distribution = Distribution::Numeric {
            values: vec![],
            population: None,
        };
        let text = serde_json::to_vec(&s).unwrap();
        let err = Baseline::from_slice(&text, Path::new("b.json")).unwrap_err();
        assert!(err.to_string().contains("age"), "{err}");
    }
}
