//! JSON lines input: one object per line, either in the event schema
//! (`{"model": …, "features": {…}, "prediction": …, "label": …}`) or a flat
//! row (`{"age": 3, "plan": "pro"}`). The first object decides which;
//! blank lines are skipped. Python's `json.dumps` writes a float NaN as a
//! bare `NaN`, which is not JSON: such tokens outside strings are read as
//! null (missing) rather than failing the whole build.

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::column::Cell;
use super::table::{Slot, Table};
use super::{BuildError, BuildOptions};

/// A parsed JSON value; strings borrowed from the line where possible.
#[derive(Debug)]
pub(crate) enum JsonValue<'a> {
    Null,
    Number(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    Object(Vec<(Cow<'a, str>, JsonValue<'a>)>),
    Array,
}

impl JsonValue<'_> {
    fn kind(&self) -> &'static str {
        match self {
            JsonValue::Null => "null",
            JsonValue::Number(_) => "a number",
            JsonValue::Str(_) => "a string",
            JsonValue::Bool(_) => "a boolean",
            JsonValue::Object(_) => "an object",
            JsonValue::Array => "an array",
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = JsonValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(JsonValue::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(JsonValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(JsonValue::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(JsonValue::Number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(JsonValue::Number(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JsonValue::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonValue::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<JsonValue<'de>>()? {
            let JsonValue::Str(key) = key else {
                // JSON keys are always strings.
                continue;
            };
            entries.push((key, map.next_value::<JsonValue<'de>>()?));
        }
        Ok(JsonValue::Object(entries))
    }
}

impl<'de> Deserialize<'de> for JsonValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Which shape the lines have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Event,
    Flat,
}

/// Where we are, for errors.
#[derive(Clone, Copy)]
struct At<'a> {
    input: &'a str,
    line: u64,
}

/// Reads every line of `reader` into a table.
pub(super) fn read<'o>(
    mut reader: impl BufRead,
    input: &str,
    options: &'o BuildOptions,
) -> Result<Table<'o>, BuildError> {
    let mut table = Table::new(options);
    let mut buf = Vec::new();
    let mut at = At { input, line: 0 };
    let mut shape = None;
    let mut other_models = 0u64;
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| BuildError::Io {
                input: input.to_string(),
                source,
            })?;
        if read == 0 {
            break;
        }
        at.line += 1;
        let text = trim_line(&buf, at.line);
        if text.is_empty() {
            continue;
        }
        let sanitized;
        let entries = match parse_object(text, at) {
            Ok(entries) => entries,
            Err(error) => match without_bare_nan(text) {
                Some(fixed) => {
                    sanitized = fixed;
                    parse_object(&sanitized, at).map_err(|_| error)?
                }
                None => return Err(error),
            },
        };
        let shape = match shape {
            Some(shape) => shape,
            None => *shape.insert(first_shape(&entries, options, input)?),
        };
        if shape == Shape::Event && !is_model(&entries, &options.model) {
            other_models += 1;
            continue;
        }
        table.begin_row();
        match shape {
            Shape::Event => event_row(&mut table, entries, at)?,
            Shape::Flat => flat_row(&mut table, entries, at)?,
        }
        table.end_row();
    }
    if other_models > 0 {
        table.note(format!(
            "skipped {other_models} events of other models than {:?}",
            options.model
        ));
    }
    Ok(table)
}

/// The line without a UTF-8 byte-order mark (first line), line ending or
/// surrounding whitespace.
fn trim_line(buf: &[u8], line: u64) -> &[u8] {
    let mut text = buf;
    if line == 1 {
        text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    }
    text.trim_ascii()
}

fn parse_object<'a>(
    text: &'a [u8],
    at: At,
) -> Result<Vec<(Cow<'a, str>, JsonValue<'a>)>, BuildError> {
    match serde_json::from_slice::<JsonValue>(text) {
        Ok(JsonValue::Object(entries)) => Ok(entries),
        Ok(other) => Err(BuildError::Syntax {
            input: at.input.to_string(),
            line: at.line,
            column: Some(1),
            detail: format!("expected a JSON object, found {}", other.kind()),
        }),
        Err(e) => {
            let message = e.to_string();
            // serde_json appends " at line L column C"; the line is ours.
            let detail = match message.rsplit_once(" at line ") {
                Some((head, _)) => head.to_string(),
                None => message,
            };
            Err(BuildError::Syntax {
                input: at.input.to_string(),
                line: at.line,
                column: Some(e.column() as u64),
                detail: format!("invalid JSON: {detail}"),
            })
        }
    }
}

/// The line with `NaN`, `Infinity` and `-Infinity` outside strings
/// replaced by `null`; `None` if it has none.
fn without_bare_nan(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if in_string {
            in_string = escaped || b != b'"';
            escaped = !escaped && b == b'\\';
        } else if b == b'"' {
            in_string = true;
        } else if let Some(len) = [&b"NaN"[..], b"Infinity", b"-Infinity"]
            .iter()
            .find(|t| text[i..].starts_with(t))
            .map(|t| t.len())
        {
            out.extend_from_slice(b"null");
            i += len;
            changed = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

/// Event schema when the first object has a `features` object.
fn detect(entries: &[(Cow<str>, JsonValue)]) -> Shape {
    let is_features =
        |(k, v): &(Cow<str>, JsonValue)| k == "features" && matches!(v, JsonValue::Object(_));
    if entries.iter().any(is_features) {
        Shape::Event
    } else {
        Shape::Flat
    }
}

/// The shape of the first object, checked against the options.
fn first_shape(
    entries: &[(Cow<str>, JsonValue)],
    options: &BuildOptions,
    input: &str,
) -> Result<Shape, BuildError> {
    let shape = detect(entries);
    if shape == Shape::Event {
        check_event_options(options, input)?;
    }
    Ok(shape)
}

/// Events carry their prediction and label in fixed fields.
fn check_event_options(options: &BuildOptions, input: &str) -> Result<(), BuildError> {
    for (flag, given, field) in [
        (
            "--prediction-column",
            &options.prediction_column,
            "prediction",
        ),
        ("--label-column", &options.label_column, "label"),
    ] {
        if let Some(name) = given.as_deref().filter(|n| *n != field) {
            return Err(BuildError::Options(format!(
                "{input}: {flag} {name} applies to CSV and flat rows; \
                 events carry it in their {field:?} field"
            )));
        }
    }
    Ok(())
}

/// Whether an event belongs to the model being built (an event without a
/// model is taken to).
fn is_model(entries: &[(Cow<str>, JsonValue)], model: &str) -> bool {
    entries.iter().all(|(k, v)| match (k.as_ref(), v) {
        ("model", JsonValue::Str(m)) => m == model,
        _ => true,
    })
}

fn event_row(
    table: &mut Table,
    entries: Vec<(Cow<str>, JsonValue)>,
    at: At,
) -> Result<(), BuildError> {
    for (key, value) in entries {
        match key.as_ref() {
            "features" => match value {
                JsonValue::Object(features) => {
                    for (name, value) in features {
                        let slot = table.event_feature_slot(&name);
                        put(table, slot, &name, value, at)?;
                    }
                }
                JsonValue::Null => {}
                other => return Err(wrong(at, "features", "an object", other.kind())),
            },
            "prediction" => {
                let slot = table.prediction_slot();
                put(table, slot, "prediction", value, at)?;
            }
            "label" => {
                let slot = table.label_slot();
                put(table, slot, "label", value, at)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn flat_row(
    table: &mut Table,
    entries: Vec<(Cow<str>, JsonValue)>,
    at: At,
) -> Result<(), BuildError> {
    for (key, value) in entries {
        let slot = table.flat_slot(&key);
        put(table, slot, &key, value, at)?;
    }
    Ok(())
}

fn put(
    table: &mut Table,
    slot: Slot,
    name: &str,
    value: JsonValue,
    at: At,
) -> Result<(), BuildError> {
    if slot == Slot::Ignored {
        return Ok(());
    }
    let cell = match value {
        JsonValue::Null => Cell::Missing,
        JsonValue::Number(value) if value.is_finite() => Cell::Number { value, text: None },
        JsonValue::Number(_) => Cell::Missing,
        JsonValue::Str(s) => Cell::Text(s),
        JsonValue::Bool(b) => Cell::Bool(b),
        other => {
            return Err(wrong(
                at,
                name,
                "a number, string, boolean or null",
                other.kind(),
            ));
        }
    };
    table.cell(slot, &cell, at.input, at.line)
}

fn wrong(at: At, column: &str, expected: &str, found: &str) -> BuildError {
    BuildError::Value {
        input: at.input.to_string(),
        line: at.line,
        column: column.to_string(),
        detail: format!("expected {expected}, found {found}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_nan_outside_strings_becomes_null() {
        let fixed = without_bare_nan(br#"{"a": NaN, "b": "NaN \" NaN", "c": -Infinity}"#);
        assert_eq!(
            fixed.as_deref(),
            Some(&br#"{"a": null, "b": "NaN \" NaN", "c": null}"#[..])
        );
        assert_eq!(without_bare_nan(br#"{"a": 1}"#), None);
    }
}
