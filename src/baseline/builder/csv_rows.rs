//! CSV input: a header row names the columns; every row must have as many
//! fields as the header.

use std::io::Read;

use csv::{ReaderBuilder, StringRecord};

use super::column::Cell;
use super::table::{Slot, Table};
use super::{BuildError, BuildOptions, KnownColumns};

/// Reads every row of `reader` into a table.
pub(super) fn read<'o>(
    reader: impl Read,
    input: &str,
    options: &'o BuildOptions,
) -> Result<Table<'o>, BuildError> {
    // Fields are trimmed one by one below: cheaper than the reader's
    // whole-record trim, which rebuilds every record.
    let mut csv = ReaderBuilder::new().has_headers(true).from_reader(reader);
    let names = header(&mut csv, input)?;
    check_requested(&names, input, options)?;
    let mut table = Table::new(options);
    let slots: Vec<Slot> = names.iter().map(|n| table.flat_slot(n)).collect();
    let mut record = StringRecord::new();
    while csv
        .read_record(&mut record)
        .map_err(|e| csv_error(e, input))?
    {
        let line = record.position().map_or(0, csv::Position::line);
        table.begin_row();
        for (field, slot) in record.iter().zip(&slots) {
            if *slot != Slot::Ignored {
                table.cell(*slot, &Cell::from_csv(field.trim()), input, line)?;
            }
        }
        table.end_row();
    }
    Ok(table)
}

/// The column names; an input without a header is empty.
fn header<R: Read>(csv: &mut csv::Reader<R>, input: &str) -> Result<Vec<String>, BuildError> {
    let headers = csv.byte_headers().map_err(|e| csv_error(e, input))?.clone();
    if headers.is_empty() {
        return Err(BuildError::Empty {
            input: input.to_string(),
            what: "the input is empty (expected a header row)".into(),
        });
    }
    let mut names: Vec<String> = Vec::with_capacity(headers.len());
    for (i, field) in headers.iter().enumerate() {
        let name = std::str::from_utf8(field.trim_ascii())
            .map_err(|_| BuildError::Syntax {
                input: input.to_string(),
                line: 1,
                column: None,
                detail: format!("header field {} is not valid UTF-8", i + 1),
            })?
            .to_string();
        if !name.is_empty() && names.contains(&name) {
            return Err(BuildError::Syntax {
                input: input.to_string(),
                line: 1,
                column: None,
                detail: format!("column {name:?} appears twice in the header"),
            });
        }
        names.push(name);
    }
    Ok(names)
}

/// Every column the options name must be in the header; said before any
/// row is read.
fn check_requested(
    names: &[String],
    input: &str,
    options: &BuildOptions,
) -> Result<(), BuildError> {
    let has = |name: &String| names.contains(name);
    let mut requested: Vec<(&'static str, &String)> = Vec::new();
    requested.extend(options.features.iter().flatten().map(|n| ("--features", n)));
    requested.extend(
        options
            .prediction_column
            .iter()
            .map(|n| ("--prediction-column", n)),
    );
    requested.extend(options.label_column.iter().map(|n| ("--label-column", n)));
    requested.extend(options.categorical.iter().map(|n| ("--categorical", n)));
    requested.extend(options.numeric.iter().map(|n| ("--numeric", n)));
    // `prediction` names the prediction's role in the kind flags.
    let is_role =
        |flag: &str, n: &str| matches!(flag, "--categorical" | "--numeric") && n == "prediction";
    match requested
        .into_iter()
        .find(|(flag, n)| !has(n) && !is_role(flag, n))
    {
        Some((flag, column)) => Err(BuildError::UnknownColumn {
            input: input.to_string(),
            flag,
            column: column.clone(),
            known: KnownColumns(names.to_vec()),
        }),
        None => Ok(()),
    }
}

fn csv_error(error: csv::Error, input: &str) -> BuildError {
    let input = input.to_string();
    let line = error.position().map_or(0, csv::Position::line);
    let detail = error.to_string();
    match error.into_kind() {
        csv::ErrorKind::Io(source) => BuildError::Io { input, source },
        csv::ErrorKind::Utf8 { pos, err } => BuildError::Syntax {
            input,
            line: pos.map_or(line, |p| p.line()),
            column: None,
            detail: format!("field {} is not valid UTF-8", err.field() + 1),
        },
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => BuildError::FieldCount {
            input,
            line: pos.map_or(line, |p| p.line()),
            expected: expected_len,
            found: len,
        },
        _ => BuildError::Syntax {
            input,
            line,
            column: None,
            detail,
        },
    }
}
