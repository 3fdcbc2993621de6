//! The benchmark workload: a seeded synthetic stream for one model with 20
//! numeric and 2 categorical features, its baseline, and a mean shift of
//! half a standard deviation in three numeric features half-way through.
//!
//! The same spec always gives the same bytes, so the throughput benches,
//! the broker bench and the side-by-side comparison with other tools
//! (`benches/compare/`) all read one stream. Numbers are written with
//! three decimals, as a logging pipeline usually rounds them, which leaves
//! the baselines with a few ties, as real data has.

use std::collections::BTreeMap;
use std::io::{self, Write};

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::baseline::{
    Baseline, BaselineError, Distribution, FeatureBaseline, ReferenceMetrics, SourceFacts,
};

/// The workload's model id.
pub const MODEL: &str = "bench";

/// First event time (ms since the epoch), 2026-12-03T00:00:00Z.
const START_MS: i64 = 1_796_256_000_000;

/// Event time between consecutive events (ms).
const STEP_MS: i64 = 10;

/// Category names of the categorical features; feature `c{i}` uses the
/// first `CATEGORY_COUNTS[i]`.
const CATEGORY_NAMES: [&str; 8] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
];

/// How many categories each categorical feature has.
const CATEGORY_COUNTS: [usize; 2] = [5, 8];

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// Seed of every random draw.
    pub seed: u64,
    /// Events in the stream.
    pub events: usize,
    /// Baseline values per feature.
    pub baseline_rows: usize,
    /// Numeric features (`f00`, `f01`, …).
    pub numeric: usize,
    /// Categorical features (`c0`, `c1`); at most two.
    pub categorical: usize,
    /// Index of the first drifted event (0-based): the change point.
    pub change_at: usize,
    /// Mean shift after the change point, in standard deviations.
    pub shift_sd: f64,
    /// Indices of the numeric features that shift.
    pub drifted: Vec<usize>,
}

impl Default for WorkloadSpec {
    /// The workload of the performance figures: 200,000 events, the change
    /// at 100,000, three of twenty numeric features shifted by +0.5σ.
    fn default() -> Self {
        WorkloadSpec::with_events(200_000)
    }
}

impl WorkloadSpec {
    /// The reference workload with `events` events, the change half-way.
    pub fn with_events(events: usize) -> WorkloadSpec {
        WorkloadSpec {
            seed: 20_261_203,
            events,
            baseline_rows: 5_000,
            numeric: 20,
            categorical: 2,
            change_at: events / 2,
            shift_sd: 0.5,
            drifted: vec![0, 7, 13],
        }
    }

    /// Name of numeric feature `i`.
    pub fn numeric_name(i: usize) -> String {
        format!("f{i:02}")
    }

    /// Name of categorical feature `i`.
    pub fn categorical_name(i: usize) -> String {
        format!("c{i}")
    }

    /// Mean and standard deviation of numeric feature `i` before the
    /// change: spread over scales so that values have different widths.
    fn moments(i: usize) -> (f64, f64) {
        let scale = [1.0, 10.0, 250.0, 0.05][i % 4];
        (scale * (i as f64 - 5.0), scale)
    }

    /// Category weights of categorical feature `i` (unnormalised).
    fn weights(i: usize) -> Vec<f64> {
        (0..CATEGORY_COUNTS[i % 2])
            .map(|c| 1.0 / (c as f64 + 1.0))
            .collect()
    }
}

/// A seeded generator of the workload.
pub struct Workload {
    spec: WorkloadSpec,
}

/// Draws of the workload's distributions.
struct Draws(Xoshiro256PlusPlus);

impl Draws {
    fn new(seed: u64) -> Draws {
        Draws(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// Uniform in [0, 1), 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box–Muller; 1 − u keeps the logarithm finite).
    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// A normal value rounded to three decimals.
    fn value(&mut self, mean: f64, sd: f64) -> f64 {
        ((mean + sd * self.normal()) * 1000.0).round() / 1000.0
    }

    fn category(&mut self, weights: &[f64]) -> usize {
        let mut u = self.uniform() * weights.iter().sum::<f64>();
        for (c, w) in weights.iter().enumerate() {
            if u < *w {
                return c;
            }
            u -= w;
        }
        weights.len() - 1
    }
}

impl Workload {
    /// The generator of `spec`.
    pub fn new(spec: WorkloadSpec) -> Workload {
        Workload { spec }
    }

    /// Its spec.
    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }

    /// The model's baseline: `baseline_rows` undrifted values per feature,
    /// drawn from a stream of their own.
    pub fn baseline(&self) -> Result<Baseline, BaselineError> {
        let spec = &self.spec;
        let mut draws = Draws::new(spec.seed ^ 0xBA5E_11FE);
        let mut features = Vec::new();
        for i in 0..spec.numeric {
            let (mean, sd) = WorkloadSpec::moments(i);
            let values = (0..spec.baseline_rows)
                .map(|_| draws.value(mean, sd))
                .collect();
            features.push(FeatureBaseline {
                name: WorkloadSpec::numeric_name(i),
                distribution: Distribution::Numeric {
                    values,
                    population: None,
                },
                missing: 0,
            });
        }
        for i in 0..spec.categorical.min(CATEGORY_COUNTS.len()) {
            let weights = WorkloadSpec::weights(i);
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for _ in 0..spec.baseline_rows {
                let c = draws.category(&weights);
                *counts.entry(CATEGORY_NAMES[c].to_string()).or_default() += 1;
            }
            features.push(FeatureBaseline {
                name: WorkloadSpec::categorical_name(i),
                distribution: Distribution::Categorical { counts },
                missing: 0,
            });
        }
        Baseline::new(Baseline {
            schema_version: crate::baseline::SCHEMA_VERSION,
            id: String::new(),
            model: MODEL.to_string(),
            model_version: None,
            source: SourceFacts {
                input: "benchmark workload".into(),
                rows: spec.baseline_rows as u64,
                content_hash: None,
            },
            features,
            prediction: None,
            metrics: ReferenceMetrics::default(),
        })
    }

    /// The events, one JSON object each (no trailing newline).
    pub fn events(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut draws = Draws::new(self.spec.seed);
        let weights: Vec<Vec<f64>> = (0..self.spec.categorical.min(CATEGORY_COUNTS.len()))
            .map(WorkloadSpec::weights)
            .collect();
        (0..self.spec.events).map(move |index| {
            let mut line = Vec::with_capacity(512);
            self.write_event(index, &mut draws, &weights, &mut line);
            line
        })
    }

    fn write_event(
        &self,
        index: usize,
        draws: &mut Draws,
        weights: &[Vec<f64>],
        out: &mut Vec<u8>,
    ) {
        let spec = &self.spec;
        let at = START_MS + index as i64 * STEP_MS;
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            r#"{{"model":"{MODEL}","id":"e{index}","timestamp":{at},"features":{{"#
        );
        let drifting = index >= spec.change_at;
        for i in 0..spec.numeric {
            let (mean, sd) = WorkloadSpec::moments(i);
            let shift = if drifting && spec.drifted.contains(&i) {
                spec.shift_sd * sd
            } else {
                0.0
            };
            let x = draws.value(mean + shift, sd);
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, r#"{sep}"{}":{x}"#, WorkloadSpec::numeric_name(i));
        }
        for (i, w) in weights.iter().enumerate() {
            let c = CATEGORY_NAMES[draws.category(w)];
            let sep = if i == 0 && spec.numeric == 0 { "" } else { "," };
            let _ = write!(out, r#"{sep}"{}":"{c}""#, WorkloadSpec::categorical_name(i));
        }
        out.extend_from_slice(b"}}");
    }

    /// Writes the events as JSON lines.
    pub fn write_jsonl(&self, out: &mut impl Write) -> io::Result<()> {
        for line in self.events() {
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{FeatureLayout, Value, decode_event};

    fn small() -> Workload {
        Workload::new(WorkloadSpec {
            baseline_rows: 500,
            ..WorkloadSpec::with_events(400)
        })
    }

    #[test]
    fn events_decode_into_the_baselines_layout() {
        let workload = small();
        let baseline = workload.baseline().unwrap();
        let layout = FeatureLayout::from_baseline(&baseline);
        let lookup = |m: &str, _: Option<&str>| (m == MODEL).then_some(&layout);
        for line in workload.events() {
            let event = decode_event(&line, 0, &lookup).unwrap();
            assert_eq!(event.values.len(), 22);
            assert!(
                event.values[..20]
                    .iter()
                    .all(|v| matches!(v, Value::Number(_)))
            );
            assert!(
                event.values[20..]
                    .iter()
                    .all(|v| matches!(v, Value::Category(_)))
            );
        }
    }

    #[test]
    fn same_spec_same_bytes_and_the_shift_is_where_planned() {
        let (a, b) = (small(), small());
        assert!(a.events().eq(b.events()));
        let baseline = a.baseline().unwrap();
        let layout = FeatureLayout::from_baseline(&baseline);
        let lookup = |m: &str, _: Option<&str>| (m == MODEL).then_some(&layout);
        let mean = |range: std::ops::Range<usize>, feature: usize| {
            let values: Vec<f64> = a
                .events()
                .skip(range.start)
                .take(range.len())
                .map(
                    |line| match decode_event(&line, 0, &lookup).unwrap().values[feature] {
                        Value::Number(x) => x,
                        _ => f64::NAN,
                    },
                )
                .collect();
            values.iter().sum::<f64>() / values.len() as f64
        };
        // f00 has mean −5, sd 1: shifted by +0.5 after the change; f01
        // (mean −40, sd 10) stays.
        assert!((mean(200..400, 0) - mean(0..200, 0) - 0.5).abs() < 0.25);
        assert!((mean(200..400, 1) - mean(0..200, 1)).abs() < 2.5);
    }
}
