//! Reading events for a replay: JSON lines as they are (one event, or an
//! array of events, per line), or CSV rows turned into events.
//!
//! A CSV file has a header row; the columns `model`, `model_version`,
//! `id`, `timestamp`, `prediction` and `label` fill those fields of the
//! event and every other column is a feature. Without a `model` column,
//! every row belongs to the one monitored model. Cells are typed by the
//! model's baseline, the way the builder typed them: a numeric feature's
//! cell becomes a number, a categorical feature's a category; an empty
//! cell or a missing-value token (`NA`, `NaN`, …) is null.

use std::collections::HashMap;
use std::io::{self, BufRead, Read};

use csv::{ByteRecord, ReaderBuilder, Trim};

use crate::baseline::Distribution;
use crate::baseline::builder::is_missing_token;
use crate::monitor::Monitor;

use super::{Record, ReplayError};

/// The non-blank lines of a JSON lines file, numbered. An I/O error ends
/// the iteration and is kept for [`Lines::take_error`].
pub struct Lines<R> {
    reader: R,
    line: u64,
    error: Option<io::Error>,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`.
    pub fn new(reader: R) -> Lines<R> {
        Lines {
            reader,
            line: 0,
            error: None,
        }
    }

    /// The I/O error that ended the iteration early, if any.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Record<Vec<u8>>;

    fn next(&mut self) -> Option<Record<Vec<u8>>> {
        loop {
            let mut bytes = Vec::new();
            match self.reader.read_until(b'\n', &mut bytes) {
                Ok(0) => return None,
                Ok(_) => {
                    self.line += 1;
                    if bytes.trim_ascii().is_empty() {
                        continue;
                    }
                    return Some(Record {
                        line: self.line,
                        bytes,
                    });
                }
                Err(error) => {
                    self.error = Some(error);
                    return None;
                }
            }
        }
    }
}

/// What a CSV column fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Model,
    ModelVersion,
    Id,
    Timestamp,
    Prediction,
    Label,
    Feature,
}

impl Role {
    fn of(name: &str) -> Role {
        match name {
            "model" => Role::Model,
            "model_version" => Role::ModelVersion,
            "id" => Role::Id,
            "timestamp" => Role::Timestamp,
            "prediction" => Role::Prediction,
            "label" => Role::Label,
            _ => Role::Feature,
        }
    }
}

/// Whether a baseline column is numeric, per model: features and the
/// prediction.
struct Kinds {
    features: HashMap<String, bool>,
    prediction: Option<bool>,
}

fn kinds(monitor: &Monitor) -> HashMap<String, Kinds> {
    let numeric = |d: &Distribution| matches!(d, Distribution::Numeric { .. });
    monitor
        .models()
        .map(|m| {
            let b = m.baseline();
            let kinds = Kinds {
                features: b
                    .features
                    .iter()
                    .map(|f| (f.name.clone(), numeric(&f.distribution)))
                    .collect(),
                prediction: b.prediction.as_ref().map(numeric),
            };
            (b.model.clone(), kinds)
        })
        .collect()
}

/// Turns every CSV row into a JSON event for the monitor's models.
pub fn csv_records(
    reader: impl Read,
    input: &str,
    monitor: &Monitor,
) -> Result<Vec<Record<Vec<u8>>>, ReplayError> {
    let mut csv = ReaderBuilder::new()
        .has_headers(true)
        .trim(Trim::All)
        .from_reader(reader);
    let header = csv.byte_headers().map_err(|e| csv_error(e, input))?.clone();
    let names: Vec<String> = header
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let roles: Vec<Role> = names.iter().map(|n| Role::of(n)).collect();
    let kinds = kinds(monitor);
    let default_model = default_model(&roles, &kinds, input)?;
    let mut records = Vec::new();
    let mut row = ByteRecord::new();
    while csv
        .read_byte_record(&mut row)
        .map_err(|e| csv_error(e, input))?
    {
        let line = row.position().map_or(0, csv::Position::line);
        let fields: Vec<&str> = row
            .iter()
            .map(|f| std::str::from_utf8(f).unwrap_or("\u{FFFD}"))
            .collect();
        let event = RowEvent {
            names: &names,
            roles: &roles,
            fields: &fields,
        };
        records.push(Record {
            line,
            bytes: event.to_json(&kinds, default_model.as_deref()),
        });
    }
    Ok(records)
}

/// The model of rows without a `model` column: the only one monitored.
fn default_model(
    roles: &[Role],
    kinds: &HashMap<String, Kinds>,
    input: &str,
) -> Result<Option<String>, ReplayError> {
    if roles.contains(&Role::Model) {
        return Ok(None);
    }
    let mut models = kinds.keys();
    match (models.next(), models.next()) {
        (Some(only), None) => Ok(Some(only.clone())),
        _ => Err(ReplayError::Input {
            input: input.to_string(),
            line: 1,
            detail: format!(
                "no \"model\" column, and {} models are monitored: add a model column",
                kinds.len()
            ),
        }),
    }
}

/// One CSV row on its way to JSON.
struct RowEvent<'a> {
    names: &'a [String],
    roles: &'a [Role],
    fields: &'a [&'a str],
}

impl RowEvent<'_> {
    fn field(&self, role: Role) -> Option<&str> {
        let i = self.roles.iter().position(|r| *r == role)?;
        self.fields.get(i).copied().filter(|f| !is_missing_token(f))
    }

    fn to_json(&self, kinds: &HashMap<String, Kinds>, default_model: Option<&str>) -> Vec<u8> {
        let model = self.field(Role::Model).or(default_model).unwrap_or("");
        let kinds = kinds.get(model);
        let mut out = Vec::with_capacity(64 + 24 * self.fields.len());
        out.extend_from_slice(b"{\"model\":");
        json_str(&mut out, model);
        for (key, role) in [("model_version", Role::ModelVersion), ("id", Role::Id)] {
            if let Some(text) = self.field(role) {
                out.extend_from_slice(format!(",\"{key}\":").as_bytes());
                json_str(&mut out, text);
            }
        }
        if let Some(text) = self.field(Role::Timestamp) {
            out.extend_from_slice(b",\"timestamp\":");
            match text.parse::<i64>() {
                Ok(ms) => out.extend_from_slice(ms.to_string().as_bytes()),
                Err(_) => json_str(&mut out, text),
            }
        }
        if let Some(text) = self.field(Role::Prediction) {
            out.extend_from_slice(b",\"prediction\":");
            json_value(&mut out, text, kinds.and_then(|k| k.prediction));
        }
        if let Some(text) = self.field(Role::Label) {
            out.extend_from_slice(b",\"label\":");
            json_value(&mut out, text, None);
        }
        out.extend_from_slice(b",\"features\":{");
        self.write_features(&mut out, kinds);
        out.extend_from_slice(b"}}");
        out
    }

    /// Features the model's baseline knows; others would be ignored by the
    /// decoder anyway.
    fn write_features(&self, out: &mut Vec<u8>, kinds: Option<&Kinds>) {
        let Some(kinds) = kinds else { return };
        let mut first = true;
        for ((name, role), text) in self.names.iter().zip(self.roles).zip(self.fields) {
            let Some(&numeric) = kinds.features.get(name) else {
                continue;
            };
            if *role != Role::Feature {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            json_str(out, name);
            out.push(b':');
            if is_missing_token(text) {
                out.extend_from_slice(b"null");
            } else {
                json_value(out, text, Some(numeric));
            }
        }
    }
}

/// A cell as JSON: a number for a numeric column (null if not finite; a
/// string, which the decoder will reject, if not a number), a category
/// for a categorical one (booleans lower-cased, as the builder stores
/// them), and a number when it parses as one, else text, if unknown.
fn json_value(out: &mut Vec<u8>, text: &str, numeric: Option<bool>) {
    let number = text.parse::<f64>().ok();
    match (numeric, number) {
        (Some(true) | None, Some(x)) if x.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, &x);
        }
        (Some(true) | None, Some(_)) => out.extend_from_slice(b"null"),
        // The decoder reads a boolean in a numeric feature as 1 or 0.
        (Some(true), None) if text.eq_ignore_ascii_case("true") => out.extend_from_slice(b"true"),
        (Some(true), None) if text.eq_ignore_ascii_case("false") => out.extend_from_slice(b"false"),
        _ if text.eq_ignore_ascii_case("true") => out.extend_from_slice(b"\"true\""),
        _ if text.eq_ignore_ascii_case("false") => out.extend_from_slice(b"\"false\""),
        _ => json_str(out, text),
    }
}

fn json_str(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn csv_error(error: csv::Error, input: &str) -> ReplayError {
    let line = error.position().map_or(0, csv::Position::line);
    let detail = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields like the header, found {len}"),
        _ => error.to_string(),
    };
    match error.into_kind() {
        csv::ErrorKind::Io(source) => ReplayError::Io {
            path: input.into(),
            source,
        },
        _ => ReplayError::Input {
            input: input.to_string(),
            line,
            detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blanks_and_keep_numbers() {
        let text = b"{\"a\":1}\n\n  \n{\"b\":2}\r\n";
        let lines: Vec<_> = Lines::new(&text[..]).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, 1);
        assert_eq!(lines[1].line, 4);
    }

    #[test]
    fn cells_are_typed_by_kind() {
        let json = |text, numeric| {
            let mut out = Vec::new();
            json_value(&mut out, text, numeric);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(json("1.50", Some(true)), "1.5");
        assert_eq!(json("1.50", Some(false)), "\"1.50\"");
        assert_eq!(json("True", Some(false)), "\"true\"");
        assert_eq!(json("forty", Some(true)), "\"forty\"");
        assert_eq!(json("inf", Some(true)), "null");
        assert_eq!(json("3", None), "3.0");
    }
}
