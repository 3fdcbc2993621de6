//! The columns of one build: which input column plays which role (feature,
//! prediction, label, ignored), the per-row bookkeeping, and the final
//! snapshot.

use std::collections::{BTreeSet, HashMap};

use crate::baseline::{Baseline, FeatureBaseline, SCHEMA_VERSION, SourceFacts};

use super::column::{Cell, Column, ColumnKind, Refusal};
use super::metrics::{MetricsAccumulator, Observed};
use super::{BuildError, BuildOptions, Built, KnownColumns, METADATA_COLUMNS};

/// What an input column is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Feature number i.
    Feature(usize),
    /// The prediction.
    Prediction,
    /// The label.
    Label,
    /// Not used.
    Ignored,
}

/// The accumulating baseline.
pub(crate) struct Table<'o> {
    options: &'o BuildOptions,
    slots: HashMap<String, Slot>,
    features: Vec<Column>,
    prediction: Option<Column>,
    label_seen: bool,
    metrics: MetricsAccumulator,
    row_prediction: Option<Observed>,
    row_label: Option<Observed>,
    /// Data rows read so far (the current row included once begun).
    rows: u64,
    ignored: BTreeSet<String>,
    notes: Vec<String>,
}

impl<'o> Table<'o> {
    pub(crate) fn new(options: &'o BuildOptions) -> Table<'o> {
        let mut table = Table {
            options,
            slots: HashMap::new(),
            features: Vec::new(),
            prediction: None,
            label_seen: false,
            metrics: MetricsAccumulator::default(),
            row_prediction: None,
            row_label: None,
            rows: 0,
            ignored: BTreeSet::new(),
            notes: Vec::new(),
        };
        // Requested features come first, in the order given, whether or
        // not the input lists them first.
        for name in options.features.iter().flatten() {
            table.add_feature(name);
        }
        table
    }

    /// Adds a note for the user.
    pub(crate) fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// The slot of a flat column (CSV header, flat JSON key).
    pub(crate) fn flat_slot(&mut self, name: &str) -> Slot {
        if let Some(&slot) = self.slots.get(name) {
            return slot;
        }
        let slot = self.resolve_flat(name);
        self.slots.insert(name.to_string(), slot);
        slot
    }

    fn resolve_flat(&mut self, name: &str) -> Slot {
        let o = self.options;
        let explicit = |opt: &Option<String>| opt.as_deref() == Some(name);
        if explicit(&o.prediction_column) {
            return self.prediction_slot();
        }
        if explicit(&o.label_column) {
            self.label_seen = true;
            return Slot::Label;
        }
        if o.prediction_column.is_none() && name == "prediction" {
            return self.prediction_slot();
        }
        if o.label_column.is_none() && name == "label" {
            self.label_seen = true;
            return Slot::Label;
        }
        self.feature_slot(name, true)
    }

    /// The slot of a key inside an event's `features` object.
    pub(crate) fn event_feature_slot(&mut self, name: &str) -> Slot {
        if let Some(&slot) = self.slots.get(name) {
            return slot;
        }
        let slot = self.feature_slot(name, false);
        self.slots.insert(name.to_string(), slot);
        slot
    }

    /// The slot of an event's `prediction` field.
    pub(crate) fn prediction_slot(&mut self) -> Slot {
        if self.prediction.is_none() {
            let forced = self.forced_kind("prediction", self.prediction_name());
            self.prediction = Some(Column::new(
                self.prediction_name(),
                forced,
                self.options.max_sample,
                self.options.seed,
                self.rows.saturating_sub(1),
            ));
        }
        Slot::Prediction
    }

    /// The slot of an event's `label` field.
    pub(crate) fn label_slot(&mut self) -> Slot {
        self.label_seen = true;
        Slot::Label
    }

    fn prediction_name(&self) -> &str {
        self.options
            .prediction_column
            .as_deref()
            .unwrap_or("prediction")
    }

    fn feature_slot(&mut self, name: &str, skip_metadata: bool) -> Slot {
        // Requested features were added up front (and so are found before
        // this is called); with a list, every other column is left out.
        if self.options.features.is_some()
            || name.is_empty()
            || (skip_metadata && METADATA_COLUMNS.contains(&name))
        {
            self.ignored.insert(name.to_string());
            return Slot::Ignored;
        }
        self.add_feature(name)
    }

    fn add_feature(&mut self, name: &str) -> Slot {
        let slot = Slot::Feature(self.features.len());
        let forced = self.forced_kind(name, name);
        self.features.push(Column::new(
            name,
            forced,
            self.options.max_sample,
            self.options.seed,
            self.rows.saturating_sub(1),
        ));
        self.slots.insert(name.to_string(), slot);
        slot
    }

    /// `--numeric` / `--categorical` for a column; the prediction may be
    /// named by its role or by its column.
    fn forced_kind(&self, role: &str, name: &str) -> Option<ColumnKind> {
        let o = self.options;
        let named = |list: &[String]| list.iter().any(|c| c == role || c == name);
        if named(&o.numeric) {
            Some(ColumnKind::Numeric)
        } else if named(&o.categorical) {
            Some(ColumnKind::Categorical)
        } else {
            None
        }
    }

    /// Starts a data row.
    pub(crate) fn begin_row(&mut self) {
        self.rows += 1;
        self.row_prediction = None;
        self.row_label = None;
    }

    /// One value of the current row.
    pub(crate) fn cell(
        &mut self,
        slot: Slot,
        cell: &Cell,
        input: &str,
        line: u64,
    ) -> Result<(), BuildError> {
        let row = self.rows;
        let column = match slot {
            Slot::Feature(i) => &mut self.features[i],
            Slot::Prediction => {
                self.row_prediction = Observed::from_cell(cell);
                match self.prediction.as_mut() {
                    Some(column) => column,
                    None => return Ok(()),
                }
            }
            Slot::Label => {
                self.row_label = Observed::from_cell(cell);
                return Ok(());
            }
            Slot::Ignored => return Ok(()),
        };
        column
            .push(cell, row)
            .map_err(|refusal| refused(refusal, input, line, &column.name))
    }

    /// Ends the current row: absent features count as missing, the
    /// prediction and label feed the metrics.
    pub(crate) fn end_row(&mut self) {
        let row = self.rows;
        for column in self.features.iter_mut().chain(self.prediction.as_mut()) {
            if column.last_row != row {
                column.missing += 1;
                column.last_row = row;
            }
        }
        if let (Some(p), Some(l)) = (self.row_prediction.take(), self.row_label.take()) {
            self.metrics.observe(&p, &l);
        }
    }

    /// Checks that every column the options name exists.
    pub(crate) fn check_requested(&self, input: &str) -> Result<(), BuildError> {
        let o = self.options;
        let known = || {
            let mut names: Vec<String> = self.slots.keys().cloned().collect();
            names.sort();
            KnownColumns(names)
        };
        let unknown = |flag, column: &str| BuildError::UnknownColumn {
            input: input.to_string(),
            flag,
            column: column.to_string(),
            known: known(),
        };
        for (flag, name) in requested_names(o) {
            let found = match flag {
                "--prediction-column" => self.prediction.is_some(),
                "--label-column" => self.label_seen,
                "--features" => self.features.iter().any(|c| c.name == name && c.appeared),
                _ => {
                    self.slots.contains_key(name)
                        || (name == "prediction" && self.prediction.is_some())
                }
            };
            if !found {
                return Err(unknown(flag, name));
            }
        }
        Ok(())
    }

    /// The snapshot.
    pub(crate) fn finish(mut self, input: &str, content_hash: String) -> Result<Built, BuildError> {
        if self.rows == 0 {
            return Err(BuildError::Empty {
                input: input.to_string(),
                what: "no data rows".into(),
            });
        }
        self.check_requested(input)?;
        let features = self.feature_baselines(input)?;
        let prediction = self.prediction_distribution();
        self.note_ignored();
        let (metrics, metric_note) = self.metrics.finish();
        self.notes.extend(metric_note);
        let baseline = Baseline::new(Baseline {
            schema_version: SCHEMA_VERSION,
            id: String::new(),
            model: self.options.model.clone(),
            model_version: self.options.model_version.clone(),
            source: source_facts(input, self.rows, content_hash),
            features,
            prediction,
            metrics,
        })?;
        Ok(Built {
            baseline,
            notes: self.notes,
        })
    }

    /// Says which columns were left out, unless the user chose the
    /// features.
    fn note_ignored(&mut self) {
        if self.ignored.is_empty() || self.options.features.is_some() {
            return;
        }
        let names: Vec<&str> = self
            .ignored
            .iter()
            .map(|n| if n.is_empty() { "(unnamed)" } else { n })
            .collect();
        self.notes.push(format!(
            "left out columns: {} (name them in --features to keep them)",
            names.join(", ")
        ));
    }

    fn feature_baselines(&mut self, input: &str) -> Result<Vec<FeatureBaseline>, BuildError> {
        let columns = std::mem::take(&mut self.features);
        let explicit = self.options.features.is_some();
        let mut out = Vec::with_capacity(columns.len());
        for column in columns {
            if let Some((kept, of)) = column.sampled() {
                self.notes.push(format!(
                    "{}: sampled {kept} of {of} values (seed {})",
                    column.name, self.options.seed
                ));
            }
            let (name, missing) = (column.name.clone(), column.missing);
            match column.into_distribution() {
                Some(distribution) => out.push(FeatureBaseline {
                    name,
                    distribution,
                    missing,
                }),
                None if explicit => {
                    return Err(BuildError::Options(format!(
                        "{input}: feature {name:?} is missing in all {} rows",
                        self.rows
                    )));
                }
                None => self.notes.push(format!(
                    "{name}: missing in all {} rows; left out of the baseline",
                    self.rows
                )),
            }
        }
        if out.is_empty() {
            return Err(BuildError::Empty {
                input: input.to_string(),
                what: "no feature column with a value".into(),
            });
        }
        Ok(out)
    }

    fn prediction_distribution(&mut self) -> Option<crate::baseline::Distribution> {
        let column = self.prediction.take()?;
        let distribution = column.into_distribution();
        if distribution.is_none() {
            self.notes
                .push("prediction: no row has one; the baseline has no prediction".into());
        }
        distribution
    }
}

/// The input's file name without its directory (so the same data built
/// from another working directory gets the same id), rows and hash.
fn source_facts(input: &str, rows: u64, content_hash: String) -> SourceFacts {
    SourceFacts {
        input: std::path::Path::new(input)
            .file_name()
            .map_or_else(|| input.to_string(), |n| n.to_string_lossy().into_owned()),
        rows,
        content_hash: Some(content_hash),
    }
}

/// Every (flag, column) the options name.
fn requested_names(o: &BuildOptions) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    for name in o.features.iter().flatten() {
        out.push(("--features", name.as_str()));
    }
    for name in &o.categorical {
        out.push(("--categorical", name.as_str()));
    }
    for name in &o.numeric {
        out.push(("--numeric", name.as_str()));
    }
    if let Some(p) = &o.prediction_column {
        out.push(("--prediction-column", p.as_str()));
    }
    if let Some(l) = &o.label_column {
        out.push(("--label-column", l.as_str()));
    }
    out
}

fn refused(refusal: Refusal, input: &str, line: u64, column: &str) -> BuildError {
    let detail = match refusal {
        Refusal::NotANumber(found) => {
            format!("expected a number (the column is --numeric), found {found:?}")
        }
        Refusal::TooLateForCategories {
            found,
            numbers_before,
        } => format!(
            "expected a number like the {numbers_before} values before, found {found:?} \
             (a column of more than {} distinct numbers is not taken as categories: fix \
             the value, or pass --categorical {column})",
            super::NUMERIC_CATEGORY_LIMIT
        ),
    };
    BuildError::Value {
        input: input.to_string(),
        line,
        column: column.to_string(),
        detail,
    }
}
