//! A seeded traffic generator for a sample churn model whose inputs can
//! drift part-way through: the demo's traffic and the tests' streams.

use std::collections::BTreeMap;

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::{Value, json};

use crate::baseline::{
    Baseline, BaselineError, Distribution, FeatureBaseline, ReferenceMetrics, SourceFacts,
};

/// The sample model's id.
pub const MODEL: &str = "churn";

/// Numeric features of the sample model.
pub const NUMERIC: [&str; 5] = [
    "age",
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "session_minutes",
];
/// Categorical features of the sample model.
pub const CATEGORICAL: [&str; 3] = ["plan", "region", "device"];

const PLANS: [&str; 3] = ["basic", "pro", "enterprise"];
const REGIONS: [&str; 3] = ["eu", "us", "apac"];
const DEVICES: [&str; 3] = ["ios", "android", "web"];

/// What changes once drift starts.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftPlan {
    /// Mean shift of `monthly_charges`, in its standard deviations.
    pub monthly_charges_shift_sd: f64,
    /// Plan proportions after the change (basic, pro, enterprise).
    pub plan_mix: [f64; 3],
    /// Whether the prediction reacts to the inputs (the real model would);
    /// off in tests that count exactly which features drift.
    pub prediction_follows_inputs: bool,
}

impl Default for DriftPlan {
    fn default() -> Self {
        DriftPlan {
            monthly_charges_shift_sd: 1.0,
            plan_mix: [0.3, 0.45, 0.25],
            prediction_follows_inputs: true,
        }
    }
}

/// A deterministic stream of sample events.
pub struct Generator {
    rng: Xoshiro256PlusPlus,
    /// Event time of the next event (ms).
    pub next_ms: i64,
    /// Milliseconds between events.
    pub step_ms: i64,
    counter: u64,
    plan: DriftPlan,
}

impl Generator {
    /// A generator with `seed`, starting at `start_ms`.
    pub fn new(seed: u64, start_ms: i64, plan: DriftPlan) -> Generator {
        Generator {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            next_ms: start_ms,
            step_ms: 10,
            counter: 0,
            plan,
        }
    }

    fn uniform(&mut self) -> f64 {
        // 53 random bits, in [0, 1).
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn normal(&mut self) -> f64 {
        // Box–Muller; 1 - u keeps the logarithm finite.
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn pick<'a>(&mut self, names: &[&'a str], weights: &[f64]) -> &'a str {
        let mut u = self.uniform() * weights.iter().sum::<f64>();
        for (name, w) in names.iter().zip(weights) {
            if u < *w {
                return name;
            }
            u -= w;
        }
        names[names.len() - 1]
    }

    /// One row of feature values and its prediction score.
    pub fn row(&mut self, drifted: bool) -> (BTreeMap<&'static str, Value>, f64) {
        let shift = if drifted {
            self.plan.monthly_charges_shift_sd
        } else {
            0.0
        };
        let age = (40.0 + 12.0 * self.normal()).clamp(18.0, 90.0).round();
        let tenure = (-24.0 * (1.0 - self.uniform()).ln() * 10.0).round() / 10.0;
        let charges = ((70.0 + 20.0 * (self.normal() + shift)) * 100.0).round() / 100.0;
        let calls = (self.uniform() * self.uniform() * 8.0).floor();
        let session = ((3.0 + 0.5 * self.normal()).exp() * 10.0).round() / 10.0;
        let plan_mix = if drifted {
            self.plan.plan_mix
        } else {
            [0.6, 0.3, 0.1]
        };
        let plan = self.pick(&PLANS, &plan_mix);
        let region = self.pick(&REGIONS, &[0.4, 0.4, 0.2]);
        let device = self.pick(&DEVICES, &[0.35, 0.45, 0.2]);
        let logit = if self.plan.prediction_follows_inputs {
            -2.0 + 0.03 * (charges - 70.0) + 0.3 * calls - 0.02 * tenure
        } else {
            -2.0 + 0.3 * calls - 0.02 * tenure
        };
        let score = ((1.0 / (1.0 + (-logit).exp())) * 1e4).round() / 1e4;
        let mut features = BTreeMap::new();
        features.insert("age", json!(age));
        features.insert("tenure_months", json!(tenure));
        features.insert("monthly_charges", json!(charges));
        features.insert("support_calls", json!(calls));
        features.insert("session_minutes", json!(session));
        features.insert("plan", json!(plan));
        features.insert("region", json!(region));
        features.insert("device", json!(device));
        (features, score)
    }

    /// The next event as JSON, drifted or not.
    pub fn event(&mut self, drifted: bool) -> Value {
        let (features, score) = self.row(drifted);
        self.counter += 1;
        let timestamp = self.next_ms;
        self.next_ms += self.step_ms;
        json!({
            "model": MODEL,
            "model_version": "2026-11-30",
            "id": format!("req-{}", self.counter),
            "timestamp": timestamp,
            "features": features,
            "prediction": score,
        })
    }

    /// A baseline of `rows` undrifted rows.
    pub fn baseline(&mut self, rows: usize) -> Result<Baseline, BaselineError> {
        let mut numeric: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut categorical: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
        let mut scores = Vec::with_capacity(rows);
        for _ in 0..rows {
            let (features, score) = self.row(false);
            for (name, value) in features {
                match value {
                    Value::Number(x) => numeric
                        .entry(name)
                        .or_default()
                        .push(x.as_f64().unwrap_or(0.0)),
                    Value::String(s) => {
                        *categorical.entry(name).or_default().entry(s).or_default() += 1
                    }
                    _ => {}
                }
            }
            scores.push(score);
        }
        let mut features = Vec::new();
        for name in NUMERIC {
            let values = numeric.remove(name).unwrap_or_default();
            features.push(FeatureBaseline {
                name: name.to_string(),
                distribution: Distribution::Numeric {
                    values,
                    population: None,
                },
                missing: 0,
            });
        }
        for name in CATEGORICAL {
            let counts = categorical.remove(name).unwrap_or_default();
            features.push(FeatureBaseline {
                name: name.to_string(),
                distribution: Distribution::Categorical { counts },
                missing: 0,
            });
        }
        Baseline::new(Baseline {
            schema_version: crate::baseline::SCHEMA_VERSION,
            id: String::new(),
            model: MODEL.to_string(),
            model_version: Some("2026-11-30".to_string()),
            source: SourceFacts {
                input: "built-in sample generator".into(),
                rows: rows as u64,
                content_hash: None,
            },
            features,
            prediction: Some(Distribution::Numeric {
                values: scores,
                population: None,
            }),
            metrics: ReferenceMetrics::default(),
        })
    }
}
