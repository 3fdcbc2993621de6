//! One column being accumulated: its kind (inferred or forced), its
//! reservoir sample while it may be numeric, its category counts while it
//! may be categorical, and its missing count.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

use crate::baseline::Distribution;

use super::NUMERIC_CATEGORY_LIMIT;

/// The kind of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// Tested with KS against a sample of values.
    Numeric,
    /// Tested with chi-square against category counts.
    Categorical,
}

/// One value as read from the input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    /// Absent, null, empty, a missing-value token or a non-finite number.
    Missing,
    /// A finite number; `text` is how a CSV wrote it (used as its category
    /// name if the column turns out categorical), `None` for JSON numbers,
    /// whose category name is Rust's shortest form, as the event decoder
    /// makes it.
    Number {
        /// The value.
        value: f64,
        /// The text as written.
        text: Option<&'a str>,
    },
    /// Anything else but a boolean.
    Text(Cow<'a, str>),
    /// A boolean: the category `"true"` or `"false"`.
    Bool(bool),
}

impl<'a> Cell<'a> {
    /// A CSV cell: missing tokens, numbers and booleans recognised.
    pub(crate) fn from_csv(text: &'a str) -> Cell<'a> {
        if super::is_missing_token(text) {
            return Cell::Missing;
        }
        if text.eq_ignore_ascii_case("true") {
            return Cell::Bool(true);
        }
        if text.eq_ignore_ascii_case("false") {
            return Cell::Bool(false);
        }
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Cell::Number {
                value,
                text: Some(text),
            },
            // "inf", "infinity": a number, but not one a sample can hold.
            Ok(_) => Cell::Missing,
            Err(_) => Cell::Text(Cow::Borrowed(text)),
        }
    }

    /// The category name of a present value (`scratch` holds formatted
    /// numbers).
    pub(crate) fn category<'s>(&'s self, scratch: &'s mut String) -> &'s str {
        match self {
            Cell::Number { text: Some(t), .. } => t,
            Cell::Number { value, text: None } => {
                scratch.clear();
                let _ = write!(scratch, "{value}");
                scratch
            }
            Cell::Text(t) => t,
            Cell::Bool(true) => "true",
            Cell::Bool(false) => "false",
            Cell::Missing => "",
        }
    }
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// Not a number in a column forced numeric.
    NotANumber(String),
    /// Not a number after more distinct numbers than are counted.
    TooLateForCategories {
        /// The value.
        found: String,
        /// Numbers seen before it.
        numbers_before: u64,
    },
}

/// A seeded uniform reservoir sample (Algorithm R).
#[derive(Debug, Clone)]
pub(crate) struct Reservoir {
    values: Vec<f64>,
    seen: u64,
    capacity: usize,
    rng: Xoshiro256PlusPlus,
}

impl Reservoir {
    /// An empty sample of at most `capacity` values; each column gets its
    /// own stream (seeded from `seed` and its name) so adding a column to
    /// the input does not change the samples of the others.
    pub(crate) fn new(capacity: usize, seed: u64, name: &str) -> Reservoir {
        Reservoir {
            values: Vec::new(),
            seen: 0,
            capacity,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed ^ fnv1a(name.as_bytes())),
        }
    }

    /// Offers one value: the i-th value (1-based) replaces a random slot
    /// with probability capacity / i, so every value is kept with equal
    /// probability.
    pub(crate) fn push(&mut self, value: f64) {
        self.seen += 1;
        if self.values.len() < self.capacity {
            self.values.push(value);
            return;
        }
        let j = uniform_below(&mut self.rng, self.seen);
        if let Some(slot) = self.values.get_mut(j as usize) {
            *slot = value;
        }
    }

    /// Values offered so far.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }

    /// The sample.
    pub(crate) fn into_values(self) -> Vec<f64> {
        self.values
    }
}

/// A uniform integer in [0, bound) without modulo bias (Lemire's method).
fn uniform_below(rng: &mut Xoshiro256PlusPlus, bound: u64) -> u64 {
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if (product as u64) >= threshold {
            return (product >> 64) as u64;
        }
    }
}

/// FNV-1a: a stable (platform- and release-independent) hash of a name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a as the hasher of category counts: category names are short and
/// come from the user's own file, so SipHash's flooding resistance buys
/// nothing and costs a tenth of the build.
#[derive(Default, Clone, Copy)]
struct FnvBuild;

struct Fnv(u64);

impl BuildHasher for FnvBuild {
    type Hasher = Fnv;

    fn build_hasher(&self) -> Fnv {
        Fnv(FNV_OFFSET)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Counts = HashMap<String, u64, FnvBuild>;

/// One column's accumulator.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    forced: Option<ColumnKind>,
    /// `Some` while every present value has been a number.
    sample: Option<Reservoir>,
    /// `Some` while the column may be categorical and counts are kept.
    counts: Option<Counts>,
    pub(crate) present: u64,
    pub(crate) missing: u64,
    /// Whether the input has the column at all (even if only nulls).
    pub(crate) appeared: bool,
    /// Row of the last value seen, to count absent keys as missing.
    pub(crate) last_row: u64,
    scratch: String,
}

impl Column {
    /// A column first seen after `rows_before` rows (which lacked it).
    pub(crate) fn new(
        name: &str,
        forced: Option<ColumnKind>,
        capacity: usize,
        seed: u64,
        rows_before: u64,
    ) -> Column {
        let numeric_possible = forced != Some(ColumnKind::Categorical);
        let counts_possible = forced != Some(ColumnKind::Numeric);
        Column {
            name: name.to_string(),
            forced,
            sample: numeric_possible.then(|| Reservoir::new(capacity, seed, name)),
            counts: counts_possible.then(Counts::default),
            present: 0,
            missing: rows_before,
            appeared: false,
            last_row: rows_before,
            scratch: String::new(),
        }
    }

    /// Adds one value of row `row`.
    pub(crate) fn push(&mut self, cell: &Cell, row: u64) -> Result<(), Refusal> {
        self.last_row = row;
        self.appeared = true;
        match cell {
            Cell::Missing => {
                self.missing += 1;
                return Ok(());
            }
            Cell::Number { value, .. } => self.push_number(*value),
            Cell::Bool(b) if self.forced == Some(ColumnKind::Numeric) => {
                // The event decoder reads a boolean in a numeric feature as
                // 1 or 0; the baseline agrees.
                self.push_number(if *b { 1.0 } else { 0.0 });
            }
            Cell::Text(_) | Cell::Bool(_) => self.rule_out_numeric(cell)?,
        }
        self.present += 1;
        self.count(cell);
        Ok(())
    }

    fn push_number(&mut self, value: f64) {
        if let Some(sample) = self.sample.as_mut() {
            sample.push(value);
        }
    }

    /// A non-number arrived: the column is categorical from now on, if it
    /// still can be.
    fn rule_out_numeric(&mut self, cell: &Cell) -> Result<(), Refusal> {
        let found = || cell.category(&mut String::new()).to_string();
        if self.forced == Some(ColumnKind::Numeric) {
            return Err(Refusal::NotANumber(found()));
        }
        if let Some(sample) = self.sample.take()
            && self.counts.is_none()
        {
            return Err(Refusal::TooLateForCategories {
                found: found(),
                numbers_before: sample.seen(),
            });
        }
        Ok(())
    }

    fn count(&mut self, cell: &Cell) {
        let Some(counts) = self.counts.as_mut() else {
            return;
        };
        let key = cell.category(&mut self.scratch);
        match counts.get_mut(key) {
            Some(c) => *c += 1,
            None => {
                counts.insert(key.to_string(), 1);
            }
        }
        // Still possibly numeric with too many distinct values: a numeric
        // column, in all likelihood; stop paying for its counts.
        if self.sample.is_some() && self.forced.is_none() && counts.len() > NUMERIC_CATEGORY_LIMIT {
            self.counts = None;
        }
    }

    /// The column's kind, `None` when it held no value at all.
    pub(crate) fn kind(&self) -> Option<ColumnKind> {
        if self.present == 0 {
            return None;
        }
        Some(if self.sample.is_some() {
            ColumnKind::Numeric
        } else {
            ColumnKind::Categorical
        })
    }

    /// The distribution, `None` when the column held no value. The
    /// population is always written, so the file says whether the values
    /// are all of them or a sample.
    pub(crate) fn into_distribution(self) -> Option<Distribution> {
        match self.kind()? {
            ColumnKind::Numeric => {
                let sample = self.sample?;
                let population = Some(sample.seen());
                Some(Distribution::Numeric {
                    values: sample.into_values(),
                    population,
                })
            }
            ColumnKind::Categorical => Some(Distribution::Categorical {
                counts: self.counts?.into_iter().collect::<BTreeMap<_, _>>(),
            }),
        }
    }

    /// Whether the numeric sample holds fewer values than were seen.
    pub(crate) fn sampled(&self) -> Option<(usize, u64)> {
        let sample = self.sample.as_ref()?;
        (sample.seen() > sample.capacity as u64).then_some((sample.capacity, sample.seen()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_classified() {
        assert_eq!(Cell::from_csv(""), Cell::Missing);
        assert_eq!(Cell::from_csv("NaN"), Cell::Missing);
        assert_eq!(Cell::from_csv("inf"), Cell::Missing);
        assert_eq!(Cell::from_csv("True"), Cell::Bool(true));
        assert_eq!(
            Cell::from_csv("1.50"),
            Cell::Number {
                value: 1.5,
                text: Some("1.50")
            }
        );
        assert_eq!(Cell::from_csv("pro"), Cell::Text(Cow::Borrowed("pro")));
    }

    #[test]
    fn reservoir_is_uniform_enough_and_seeded() {
        let mut a = Reservoir::new(100, 7, "x");
        let mut b = Reservoir::new(100, 7, "x");
        for i in 0..10_000 {
            a.push(f64::from(i));
            b.push(f64::from(i));
        }
        assert_eq!(a.seen(), 10_000);
        let values = a.into_values();
        assert_eq!(values, b.into_values());
        // A uniform sample of 0..10000 has mean ≈ 5000 (sd of the mean ≈ 290).
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((mean - 5000.0).abs() < 1200.0, "{mean}");
    }

    #[test]
    fn uniform_below_stays_below() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for bound in [1, 2, 3, 7, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(uniform_below(&mut rng, bound) < bound);
            }
        }
    }

    #[test]
    fn a_text_turns_a_numeric_column_categorical() {
        let mut c = Column::new("zip", None, 10, 0, 0);
        let n = Cell::Number {
            value: 1.0,
            text: Some("01"),
        };
        c.push(&n, 1).unwrap();
        c.push(&Cell::Text("A1".into()), 2).unwrap();
        c.push(&Cell::Missing, 3).unwrap();
        assert_eq!(c.kind(), Some(ColumnKind::Categorical));
        let Some(Distribution::Categorical { counts }) = c.into_distribution() else {
            panic!("categorical expected");
        };
        assert_eq!(counts, [("01".into(), 1), ("A1".into(), 1)].into());
    }

    #[test]
    fn forced_numeric_refuses_text() {
        let mut c = Column::new("age", Some(ColumnKind::Numeric), 10, 0, 0);
        let err = c.push(&Cell::Text("forty".into()), 1).unwrap_err();
        assert_eq!(err, Refusal::NotANumber("forty".into()));
    }
}
