//! Building a baseline from training data: `driftwarden baseline build`.
//!
//! One streaming pass over CSV (with a header row) or JSON lines (event
//! schema or flat rows), in bounded memory:
//!
//! - **Kinds.** A column is numeric when every non-missing value is a finite
//!   number, else categorical; booleans are the categories `"true"` and
//!   `"false"`. `--numeric` / `--categorical` settle a column's kind. In
//!   JSON the value's own type decides (`"42"` is text), as it does when
//!   the live monitor decodes events.
//! - **Missing values** are counted per feature: an absent key, `null`, an
//!   empty CSV cell, the texts pandas reads as missing by default (`NA`,
//!   `NaN`, `null`, `None`, `N/A`, …), and a non-finite number (`NaN`,
//!   `inf`, Python's bare `NaN` in JSON) — so one NaN never poisons a
//!   numeric sample nor turns the column categorical.
//! - **Samples.** A numeric feature keeps every value up to `max_sample`,
//!   then a uniform reservoir sample (Algorithm R, seeded per column), and
//!   records the full count as `population`. A categorical feature keeps
//!   its counts.
//! - **Metrics.** With a label and a prediction: accuracy for classes, or
//!   MAE and RMSE for regression (`builder/metrics.rs` states the rule).
//!
//! Structural problems are errors naming the input, the line and the
//! column: a CSV row with the wrong number of fields, invalid JSON, an
//! empty input, a requested column that does not exist, a value that is not
//! a number in a `--numeric` column.

mod column;
mod csv_rows;
mod json_rows;
mod metrics;
pub mod progress;
mod table;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::{Baseline, BaselineError};

pub use column::ColumnKind;

/// Default of `--max-sample`: values kept per numeric feature.
pub const DEFAULT_MAX_SAMPLE: usize = 100_000;

/// How many distinct numbers a column that still looks numeric keeps
/// counts of. Past it the counts are dropped to bound memory, and a
/// non-number that follows is reported as an error instead of turning a
/// high-cardinality numeric column into useless categories.
pub const NUMERIC_CATEGORY_LIMIT: usize = 10_000;

/// Metadata columns of the event schema, left out of the features unless
/// named in `--features`.
pub const METADATA_COLUMNS: [&str; 4] = ["model", "model_version", "id", "timestamp"];

/// The texts read as a missing value: pandas' default `na_values`.
const MISSING_TOKENS: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// Whether a text cell stands for a missing value (see the module docs).
pub fn is_missing_token(text: &str) -> bool {
    // Most cells are numbers or words longer than any token; those that
    // start with a digit can only be the two `1.#…` spellings.
    match text.as_bytes().first() {
        None => true,
        Some(b) if b.is_ascii_digit() && *b != b'1' => false,
        _ => text.len() <= 8 && MISSING_TOKENS.contains(&text),
    }
}

/// The shape of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line: an event, or a flat row.
    JsonLines,
}

impl InputFormat {
    /// The format a file name implies: `.csv`, or `.jsonl` / `.ndjson` /
    /// `.json`.
    pub fn from_path(path: &Path) -> Option<InputFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(InputFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(InputFormat::JsonLines),
            _ => None,
        }
    }

    /// Guesses from the first bytes: JSON lines start with `{`.
    pub fn sniff(head: &[u8]) -> InputFormat {
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        match head.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => InputFormat::JsonLines,
            _ => InputFormat::Csv,
        }
    }
}

impl FromStr for InputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(InputFormat::Csv),
            "jsonl" | "ndjson" | "json" => Ok(InputFormat::JsonLines),
            other => Err(format!("unknown format {other:?}: expected csv or jsonl")),
        }
    }
}

/// What to build, from the command line's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    /// The model the baseline describes.
    pub model: String,
    /// Its version, if baselines differ by version.
    pub model_version: Option<String>,
    /// The features, in this order; `None` takes every column except the
    /// label, the prediction and the metadata columns.
    pub features: Option<Vec<String>>,
    /// Columns forced categorical.
    pub categorical: Vec<String>,
    /// Columns forced numeric.
    pub numeric: Vec<String>,
    /// The label column; `None` uses a column named `label` if there is one.
    pub label_column: Option<String>,
    /// The prediction column; `None` uses a column named `prediction` if
    /// there is one.
    pub prediction_column: Option<String>,
    /// Values kept per numeric feature before reservoir sampling.
    pub max_sample: usize,
    /// Seed of the reservoir samples.
    pub seed: u64,
}

impl BuildOptions {
    /// Options with the defaults for everything but the model.
    pub fn new(model: impl Into<String>) -> BuildOptions {
        BuildOptions {
            model: model.into(),
            model_version: None,
            features: None,
            categorical: Vec::new(),
            numeric: Vec::new(),
            label_column: None,
            prediction_column: None,
            max_sample: DEFAULT_MAX_SAMPLE,
            seed: 0,
        }
    }
}

/// Why a baseline could not be built. Every variant that concerns the
/// input names it, and the line where that applies.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The input could not be read.
    #[error("{input}: {source}")]
    Io {
        /// Input name.
        input: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The input holds no data rows.
    #[error("{input}: {what}")]
    Empty {
        /// Input name.
        input: String,
        /// What was found instead.
        what: String,
    },
    /// A CSV row has the wrong number of fields.
    #[error("{input}:{line}: expected {expected} fields like the header, found {found}")]
    FieldCount {
        /// Input name.
        input: String,
        /// Line of the row.
        line: u64,
        /// Fields in the header.
        expected: u64,
        /// Fields in the row.
        found: u64,
    },
    /// Malformed CSV or JSON.
    #[error("{input}:{line}{}: {detail}", .column.map(|c| format!(":{c}")).unwrap_or_default())]
    Syntax {
        /// Input name.
        input: String,
        /// Line.
        line: u64,
        /// Character column, when known.
        column: Option<u64>,
        /// What is wrong.
        detail: String,
    },
    /// A value does not fit its column.
    #[error("{input}:{line}: column {column:?}: {detail}")]
    Value {
        /// Input name.
        input: String,
        /// Line.
        line: u64,
        /// Column name.
        column: String,
        /// Expected and found.
        detail: String,
    },
    /// A column named in the options is not in the input.
    #[error("{input}: {flag} names column {column:?}, which {}", .known.describe())]
    UnknownColumn {
        /// Input name.
        input: String,
        /// The flag that named it.
        flag: &'static str,
        /// The column.
        column: String,
        /// The columns that do exist.
        known: KnownColumns,
    },
    /// The options contradict each other or the input.
    #[error("{0}")]
    Options(String),
    /// The snapshot could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The result is not a valid baseline.
    #[error(transparent)]
    Baseline(#[from] BaselineError),
}

/// The columns an input has, for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownColumns(pub Vec<String>);

impl KnownColumns {
    fn describe(&self) -> String {
        if self.0.is_empty() {
            return "is not in the input (it has no columns)".into();
        }
        let shown: Vec<&str> = self.0.iter().take(20).map(String::as_str).collect();
        let more = self.0.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("is not in the input (it has: {}{tail})", shown.join(", "))
    }
}

/// A built baseline and what the user should know about how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The snapshot (id computed).
    pub baseline: Baseline,
    /// Decisions taken on the user's behalf, one sentence each.
    pub notes: Vec<String>,
}

impl fmt::Display for Built {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.baseline;
        writeln!(
            f,
            "baseline {} for model {}: {} features from {} rows of {}",
            b.id,
            b.model,
            b.features.len(),
            b.source.rows,
            b.source.input
        )?;
        for note in &self.notes {
            writeln!(f, "  {note}")?;
        }
        Ok(())
    }
}

/// Builds a baseline from `reader`, named `input` in errors; the
/// snapshot's source facts record its file name (without directories), the
/// rows read and the SHA-256 of every byte.
pub fn build(
    reader: impl Read,
    input: &str,
    format: InputFormat,
    options: &BuildOptions,
) -> Result<Built, BuildError> {
    check_options(options)?;
    let mut hashing = HashingReader::new(reader);
    let table = match format {
        InputFormat::Csv => csv_rows::read(&mut hashing, input, options)?,
        InputFormat::JsonLines => json_rows::read(BufReader::new(&mut hashing), input, options)?,
    };
    let hash = hashing.finish();
    table.finish(input, hash)
}

fn check_options(options: &BuildOptions) -> Result<(), BuildError> {
    if options.model.trim().is_empty() {
        return Err(BuildError::Options("--model must not be empty".into()));
    }
    if options.max_sample == 0 {
        return Err(BuildError::Options(
            "--max-sample must be at least 1".into(),
        ));
    }
    for (flag, role) in [
        ("--prediction-column", &options.prediction_column),
        ("--label-column", &options.label_column),
    ] {
        if let Some(name) = role
            && options.features.iter().flatten().any(|f| f == name)
        {
            return Err(BuildError::Options(format!(
                "column {name:?} is given as both {flag} and in --features"
            )));
        }
    }
    if let Some(both) = options
        .categorical
        .iter()
        .find(|c| options.numeric.contains(c))
    {
        return Err(BuildError::Options(format!(
            "column {both:?} is given as both --categorical and --numeric"
        )));
    }
    Ok(())
}

/// Where `baseline build` reads from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A file.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl Input {
    /// `-` is standard input, anything else a path.
    pub fn parse(arg: &Path) -> Input {
        if arg == Path::new("-") {
            Input::Stdin
        } else {
            Input::Path(arg.to_path_buf())
        }
    }

    /// The name used in errors and in the snapshot.
    pub fn name(&self) -> String {
        match self {
            Input::Path(path) => path.display().to_string(),
            Input::Stdin => "<stdin>".into(),
        }
    }
}

/// `driftwarden baseline build`: reads `input` (format from `format`, else
/// the extension, else the first byte), builds, and writes the snapshot to
/// `output` (`-` for standard output), with a progress bar on large files
/// when stderr is a terminal.
pub fn build_command(
    input: &Input,
    format: Option<InputFormat>,
    options: &BuildOptions,
    output: &Path,
) -> Result<Built, BuildError> {
    let name = input.name();
    let io_err = |source| BuildError::Io {
        input: name.clone(),
        source,
    };
    let (reader, size): (Box<dyn Read>, Option<u64>) = match input {
        Input::Path(path) => {
            let file = File::open(path).map_err(io_err)?;
            let size = file.metadata().ok().map(|m| m.len());
            (Box::new(file), size)
        }
        Input::Stdin => (Box::new(io::stdin().lock()), None),
    };
    let bar = progress::bytes_bar(size, "reading");
    let mut reader = BufReader::with_capacity(1 << 16, bar.wrap_read(reader));
    let format = match format.or_else(|| match input {
        Input::Path(path) => InputFormat::from_path(path),
        Input::Stdin => None,
    }) {
        Some(format) => format,
        None => InputFormat::sniff(reader.fill_buf().map_err(io_err)?),
    };
    let built = build(reader, &name, format, options);
    bar.finish_and_clear();
    let built = built?;
    write_output(&built.baseline, output)?;
    Ok(built)
}

/// Writes the snapshot; to a file through a temporary file and a rename,
/// so a running service that reloads it never reads half a file.
fn write_output(baseline: &Baseline, output: &Path) -> Result<(), BuildError> {
    let write_error = |source| BuildError::Write {
        path: output.to_path_buf(),
        source,
    };
    // Serialising plain data cannot fail.
    let text = serde_json::to_vec_pretty(baseline).unwrap_or_default();
    if output == Path::new("-") {
        let mut stdout = io::stdout().lock();
        return stdout
            .write_all(&text)
            .and_then(|()| stdout.write_all(b"\n"))
            .map_err(write_error);
    }
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, output))
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            write_error(source)
        })
}

/// Hashes every byte read through it, for the snapshot's source facts.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Reads what the parser left unread (so the hash covers the whole
    /// input), then returns `sha256:<hex>`.
    fn finish(mut self) -> String {
        let _ = io::copy(&mut self, &mut io::sink());
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
