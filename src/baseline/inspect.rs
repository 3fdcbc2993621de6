//! A readable summary of a baseline snapshot: `driftwarden baseline
//! inspect`. The same summary serialises to JSON (`--json`) for scripts.

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::{Baseline, BaselineError, Distribution, ReferenceMetrics, SourceFacts};

/// Categories listed per categorical feature.
pub const TOP_CATEGORIES: usize = 5;

/// What a baseline holds, in brief.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Content id.
    pub id: String,
    /// Model.
    pub model: String,
    /// Model version, if any.
    pub model_version: Option<String>,
    /// Snapshot format version.
    pub schema_version: u32,
    /// Where it came from.
    pub source: SourceFacts,
    /// Per feature, in layout order.
    pub features: Vec<FeatureSummary>,
    /// The prediction's distribution, if recorded.
    pub prediction: Option<DistributionSummary>,
    /// Reference metrics.
    pub metrics: ReferenceMetrics,
}

/// One feature in brief.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureSummary {
    /// Name.
    pub name: String,
    /// Its distribution.
    #[serde(flatten)]
    pub distribution: DistributionSummary,
    /// Rows where it was missing.
    pub missing: u64,
    /// `missing / (present + missing)`.
    pub missing_rate: f64,
}

/// A distribution in brief.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DistributionSummary {
    /// Quantiles of the reference sample (linear interpolation, numpy's
    /// default).
    Numeric {
        /// Non-missing values in the source.
        present: u64,
        /// Values in the stored sample (smaller than `present` when it is a
        /// reservoir sample).
        sample: u64,
        /// Smallest value.
        min: f64,
        /// 25th percentile.
        p25: f64,
        /// Median.
        median: f64,
        /// 75th percentile.
        p75: f64,
        /// Largest value.
        max: f64,
    },
    /// The most frequent categories.
    Categorical {
        /// Non-missing values.
        present: u64,
        /// Distinct categories.
        categories: usize,
        /// The most frequent ones (ties by name), at most
        /// [`TOP_CATEGORIES`].
        top: Vec<CategoryShare>,
    },
}

/// One category and its share of the present values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryShare {
    /// Category.
    pub name: String,
    /// Count.
    pub count: u64,
    /// count / present.
    pub share: f64,
}

/// Loads and summarises a snapshot file.
pub fn inspect(path: &Path) -> Result<Summary, BaselineError> {
    Baseline::load(path).map(|b| summarize(&b))
}

/// Summarises a snapshot.
pub fn summarize(baseline: &Baseline) -> Summary {
    Summary {
        id: baseline.id.clone(),
        model: baseline.model.clone(),
        model_version: baseline.model_version.clone(),
        schema_version: baseline.schema_version,
        source: baseline.source.clone(),
        features: baseline
            .features
            .iter()
            .map(|f| FeatureSummary {
                name: f.name.clone(),
                distribution: distribution(&f.distribution),
                missing: f.missing,
                missing_rate: f.missing_rate(),
            })
            .collect(),
        prediction: baseline.prediction.as_ref().map(distribution),
        metrics: baseline.metrics.clone(),
    }
}

fn distribution(distribution: &Distribution) -> DistributionSummary {
    match distribution {
        Distribution::Numeric { values, population } => {
            let sample = values.len() as u64;
            DistributionSummary::Numeric {
                present: population.map_or(sample, |p| p.max(sample)),
                sample,
                min: quantile(values, 0.0),
                p25: quantile(values, 0.25),
                median: quantile(values, 0.5),
                p75: quantile(values, 0.75),
                max: quantile(values, 1.0),
            }
        }
        Distribution::Categorical { counts } => {
            let present: u64 = counts.values().sum();
            let mut top: Vec<(&String, &u64)> = counts.iter().collect();
            // Counts descending; the map's order (by name) breaks ties.
            top.sort_by(|a, b| b.1.cmp(a.1));
            DistributionSummary::Categorical {
                present,
                categories: counts.len(),
                top: top
                    .into_iter()
                    .take(TOP_CATEGORIES)
                    .map(|(name, &count)| CategoryShare {
                        name: name.clone(),
                        count,
                        share: count as f64 / present.max(1) as f64,
                    })
                    .collect(),
            }
        }
    }
}

/// The q-quantile of sorted values, interpolating linearly between order
/// statistics (numpy's and pandas' default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let h = last as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(last);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_header(f)?;
        let width = self
            .features
            .iter()
            .map(|x| x.name.len())
            .chain(["prediction".len()])
            .max()
            .unwrap_or(10);
        writeln!(f, "features ({})", self.features.len())?;
        for feature in &self.features {
            let missing = format!(
                "  missing {} ({:.2}%)",
                group(feature.missing),
                100.0 * feature.missing_rate
            );
            write_distribution(f, &feature.name, width, &feature.distribution, &missing)?;
        }
        match &self.prediction {
            Some(p) => write_distribution(f, "prediction", width, p, "")?,
            None => writeln!(f, "prediction: not recorded")?,
        }
        self.write_metrics(f)
    }
}

impl Summary {
    fn write_header(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "baseline {}", self.id)?;
        writeln!(f, "  model     {}", self.model)?;
        if let Some(version) = &self.model_version {
            writeln!(f, "  version   {version}")?;
        }
        writeln!(f, "  schema    {}", self.schema_version)?;
        write!(
            f,
            "  source    {}, {} rows",
            self.source.input,
            group(self.source.rows)
        )?;
        match &self.source.content_hash {
            Some(hash) => writeln!(f, ", {hash}"),
            None => writeln!(f),
        }
    }

    fn write_metrics(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.metrics;
        let all = [("accuracy", m.accuracy), ("MAE", m.mae), ("RMSE", m.rmse)];
        if all.iter().all(|(_, v)| v.is_none()) {
            return writeln!(f, "metrics: none (no labelled rows)");
        }
        writeln!(f, "metrics")?;
        for (name, value) in all {
            if let Some(v) = value {
                writeln!(f, "  {name:<9} {}  (n {})", num(v.value), group(v.n))?;
            }
        }
        Ok(())
    }
}

fn write_distribution(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    width: usize,
    distribution: &DistributionSummary,
    missing: &str,
) -> fmt::Result {
    let pad = " ".repeat(width + 4);
    match distribution {
        DistributionSummary::Numeric {
            present,
            sample,
            min,
            p25,
            median,
            p75,
            max,
        } => {
            let sampled = if sample < present {
                format!("  sampled {} of {}", group(*sample), group(*present))
            } else {
                String::new()
            };
            writeln!(
                f,
                "  {name:<width$}  numeric      n {}{missing}{sampled}",
                group(*present)
            )?;
            writeln!(
                f,
                "{pad}min {}  p25 {}  median {}  p75 {}  max {}",
                num(*min),
                num(*p25),
                num(*median),
                num(*p75),
                num(*max)
            )
        }
        DistributionSummary::Categorical {
            present,
            categories,
            top,
        } => {
            writeln!(
                f,
                "  {name:<width$}  categorical  n {}{missing}  {categories} categories",
                group(*present)
            )?;
            let shares: Vec<String> = top
                .iter()
                .map(|c| format!("{} {:.1}%", c.name, 100.0 * c.share))
                .collect();
            let more = categories.saturating_sub(top.len());
            let tail = if more > 0 {
                format!("  (+{more} more)")
            } else {
                String::new()
            };
            writeln!(f, "{pad}{}{tail}", shares.join("  "))
        }
    }
}

/// An integer with thousands separators.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with about six significant digits and no trailing zeros.
fn num(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    if !(1e-3..1e9).contains(&a) {
        return format!("{x:.3e}");
    }
    let decimals = (5 - a.log10().floor() as i32).clamp(0, 8) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.25), 1.75);
        assert_eq!(quantile(&v, 0.5), 2.5);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert_eq!(quantile(&[7.0], 0.75), 7.0);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(12), "12");
        assert_eq!(num(70.0), "70");
        assert_eq!(num(0.123456789), "0.123457");
        assert_eq!(num(47.515), "47.515");
        assert_eq!(num(1.5e-7), "1.500e-7");
    }
}
