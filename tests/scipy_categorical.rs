//! Checks the categorical, proportion and multiple-testing statistics
//! against reference vectors computed with scipy 1.17 and numpy
//! (`tools/oracle/categorical_vectors.py` → `tests/vectors/categorical.json`).
//!
//! Every number must agree within 1e-10 relative error, or within 1e-13
//! absolute error where the reference value is below 1e-3 (deep tails,
//! where relative error says little). Each test prints its worst errors;
//! run with `--nocapture` to see them.

use std::fmt::Write as _;

use driftwarden::stats::categorical::{
    CategoryCounts, chi2_contingency, chisquare, chisquare_against_proportions, psi_categorical,
    psi_numeric,
};
use driftwarden::stats::multiple::{Correction, correct};
use driftwarden::stats::proportion::{
    AccuracyTestMethod, accuracy_drop_test, binomial_test_less, two_proportion_ztest_less,
};
use serde::Deserialize;

const REL_TOL: f64 = 1e-10;
const ABS_TOL: f64 = 1e-13;
const SMALL: f64 = 1e-3;

/// A number as the oracle writes it: non-finite values are strings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Num {
    Finite(f64),
    Named(NonFinite),
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum NonFinite {
    #[serde(rename = "inf")]
    Inf,
    #[serde(rename = "-inf")]
    NegInf,
    #[serde(rename = "nan")]
    NaN,
}

impl Num {
    fn get(self) -> f64 {
        match self {
            Num::Finite(x) => x,
            Num::Named(NonFinite::Inf) => f64::INFINITY,
            Num::Named(NonFinite::NegInf) => f64::NEG_INFINITY,
            Num::Named(NonFinite::NaN) => f64::NAN,
        }
    }
}

fn nums(values: &[Num]) -> Vec<f64> {
    values.iter().map(|v| v.get()).collect()
}

#[derive(Deserialize)]
struct Vectors {
    header: Header,
    chisquare: Vec<GoodnessOfFit>,
    chisquare_proportions: Vec<AgainstProportions>,
    contingency: Vec<Contingency>,
    psi_numeric: Vec<PsiNumeric>,
    psi_categorical: Vec<PsiCategorical>,
    binomial_less: Vec<Binomial>,
    ztest_less: Vec<ZTestCase>,
    accuracy_drop: Vec<AccuracyCase>,
    multiple: Vec<Multiple>,
}

#[derive(Deserialize)]
struct Header {
    scipy: String,
    numpy: String,
}

#[derive(Deserialize)]
struct GoodnessOfFit {
    name: String,
    observed: Vec<Num>,
    expected: Option<Vec<Num>>,
    ddof: usize,
    error: bool,
    statistic: Option<Num>,
    pvalue: Option<Num>,
    dof: Option<usize>,
}

#[derive(Deserialize)]
struct AgainstProportions {
    name: String,
    counts: Vec<u64>,
    proportions: Vec<f64>,
    statistic: f64,
    pvalue: f64,
    dof: usize,
    tested: u64,
    unseen: u64,
}

#[derive(Deserialize)]
struct Contingency {
    name: String,
    table: Vec<Vec<f64>>,
    correction: bool,
    error: bool,
    statistic: Option<f64>,
    pvalue: Option<f64>,
    dof: Option<usize>,
    expected: Option<Vec<Vec<f64>>>,
}

#[derive(Deserialize)]
struct PsiNumeric {
    name: String,
    reference: Vec<f64>,
    current: Vec<f64>,
    psi: f64,
}

#[derive(Deserialize)]
struct PsiCategorical {
    name: String,
    reference_counts: Vec<u64>,
    current_counts: Vec<u64>,
    psi: f64,
}

#[derive(Deserialize)]
struct Binomial {
    k: u64,
    n: u64,
    p: f64,
    pvalue: f64,
    /// The tail in 80-digit arithmetic, where the sum is short.
    exact: Option<f64>,
}

#[derive(Deserialize)]
struct ZTestCase {
    k: u64,
    n: u64,
    k0: u64,
    n0: u64,
    statistic: f64,
    pvalue: f64,
}

#[derive(Deserialize)]
struct AccuracyCase {
    k: u64,
    n: u64,
    reference_accuracy: f64,
    reference_n: Option<u64>,
    alpha: f64,
    method: String,
    statistic: f64,
    pvalue: f64,
    rejects: bool,
}

#[derive(Deserialize)]
struct Multiple {
    pvalues: Vec<f64>,
    alpha: f64,
    bh: Vec<f64>,
    bh_rejected: Vec<bool>,
    bonferroni: Vec<f64>,
    bonferroni_rejected: Vec<bool>,
}

fn vectors() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/categorical.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/vectors/categorical.json is readable");
    let vectors: Vectors = serde_json::from_str(&text).expect("the vectors parse");
    assert!(
        vectors.header.scipy.starts_with("1.17"),
        "scipy {}",
        vectors.header.scipy
    );
    assert!(!vectors.header.numpy.is_empty());
    vectors
}

/// Collects comparisons, remembers the worst, and fails at the end with
/// every mismatch listed.
#[derive(Default)]
struct Report {
    worst_relative: (f64, String),
    worst_small_absolute: (f64, String),
    failures: Vec<String>,
    compared: usize,
}

impl Report {
    fn compare(&mut self, what: &str, got: f64, want: f64) {
        self.compare_within(what, got, want, REL_TOL);
    }

    fn compare_within(&mut self, what: &str, got: f64, want: f64, rel_tol: f64) {
        self.compared += 1;
        if want.is_infinite() || got.is_infinite() {
            if got != want {
                self.failures
                    .push(format!("{what}: got {got}, want {want}"));
            }
            return;
        }
        let absolute = (got - want).abs();
        let relative = if want == 0.0 {
            absolute
        } else {
            absolute / want.abs()
        };
        let small = want.abs() < SMALL;
        if small && absolute > self.worst_small_absolute.0 {
            self.worst_small_absolute = (absolute, what.to_string());
        }
        if !small && relative > self.worst_relative.0 {
            self.worst_relative = (relative, what.to_string());
        }
        // The negation keeps NaN a failure.
        if !(relative <= rel_tol || (small && absolute <= ABS_TOL)) {
            self.failures.push(format!(
                "{what}: got {got:e}, want {want:e} (rel {relative:e})"
            ));
        }
    }

    fn require(&mut self, what: &str, ok: bool) {
        self.compared += 1;
        if !ok {
            self.failures.push(what.to_string());
        }
    }

    fn finish(self, section: &str) {
        let mut summary = String::new();
        let _ = write!(
            summary,
            "{section}: {} comparisons; worst relative error {:e} ({}); worst absolute error below {SMALL}: {:e} ({})",
            self.compared,
            self.worst_relative.0,
            self.worst_relative.1,
            self.worst_small_absolute.0,
            self.worst_small_absolute.1,
        );
        println!("{summary}");
        assert!(
            self.failures.is_empty(),
            "{section}:\n{}",
            self.failures.join("\n")
        );
    }
}

#[test]
fn chisquare_goodness_of_fit_matches_scipy() {
    let mut report = Report::default();
    for case in vectors().chisquare {
        let observed = nums(&case.observed);
        let expected = case.expected.as_deref().map(nums);
        let result = chisquare(&observed, expected.as_deref(), case.ddof);
        let name = &case.name;
        match (case.error, result) {
            (true, result) => report.require(
                &format!("{name}: expected an error, got {result:?}"),
                result.is_err(),
            ),
            (false, Err(e)) => report.require(&format!("{name}: unexpected error {e}"), false),
            (false, Ok(r)) => {
                report.compare(
                    &format!("{name} statistic"),
                    r.statistic,
                    field(case.statistic),
                );
                report.compare(&format!("{name} pvalue"), r.pvalue, field(case.pvalue));
                report.require(&format!("{name} dof"), Some(r.dof) == case.dof);
            }
        }
    }
    report.finish("chisquare");
}

fn field(value: Option<Num>) -> f64 {
    value.map_or(f64::NAN, Num::get)
}

#[test]
fn chisquare_against_proportions_matches_scipy() {
    let mut report = Report::default();
    for case in vectors().chisquare_proportions {
        let name = &case.name;
        match chisquare_against_proportions(&case.counts, &case.proportions) {
            Err(e) => report.require(&format!("{name}: unexpected error {e}"), false),
            Ok(r) => {
                report.compare(
                    &format!("{name} statistic"),
                    r.test.statistic,
                    case.statistic,
                );
                report.compare(&format!("{name} pvalue"), r.test.pvalue, case.pvalue);
                report.require(&format!("{name} dof"), r.test.dof == case.dof);
                report.require(
                    &format!("{name} tested/unseen"),
                    (r.tested, r.unseen) == (case.tested, case.unseen),
                );
            }
        }
    }
    report.finish("chisquare_against_proportions");
}

#[test]
fn category_counts_agree_with_the_free_functions() {
    let mut report = Report::default();
    for case in vectors().chisquare_proportions {
        let mut counts = CategoryCounts::new(case.counts.len());
        for (index, &count) in case.counts.iter().enumerate() {
            for _ in 0..count {
                counts
                    .insert(driftwarden::stats::categorical::Category::Known(index))
                    .unwrap();
            }
        }
        let r = counts.chi_square_against(&case.proportions).unwrap();
        report.compare(
            &format!("{} via CategoryCounts", case.name),
            r.test.pvalue,
            case.pvalue,
        );
    }
    report.finish("CategoryCounts");
}

#[test]
fn chi2_contingency_matches_scipy() {
    let mut report = Report::default();
    for case in vectors().contingency {
        let name = &case.name;
        match (case.error, chi2_contingency(&case.table, case.correction)) {
            (true, result) => report.require(
                &format!("{name}: expected an error, got {result:?}"),
                result.is_err(),
            ),
            (false, Err(e)) => report.require(&format!("{name}: unexpected error {e}"), false),
            (false, Ok(r)) => {
                report.compare(
                    &format!("{name} statistic"),
                    r.statistic,
                    case.statistic.unwrap_or(f64::NAN),
                );
                report.compare(
                    &format!("{name} pvalue"),
                    r.pvalue,
                    case.pvalue.unwrap_or(f64::NAN),
                );
                report.require(&format!("{name} dof"), Some(r.dof) == case.dof);
                let want = case.expected.unwrap_or_default();
                report.require(
                    &format!("{name} expected shape"),
                    r.expected.len() == want.len(),
                );
                for (got_row, want_row) in r.expected.iter().zip(&want) {
                    for (got, want) in got_row.iter().zip(want_row) {
                        report.compare(&format!("{name} expected"), *got, *want);
                    }
                }
            }
        }
    }
    report.finish("chi2_contingency");
}

#[test]
fn psi_matches_evidentlys_definition() {
    let vectors = vectors();
    let mut report = Report::default();
    for case in &vectors.psi_numeric {
        match psi_numeric(&case.reference, &case.current) {
            Ok(psi) => report.compare(&case.name, psi, case.psi),
            Err(e) => report.require(&format!("{}: unexpected error {e}", case.name), false),
        }
    }
    for case in &vectors.psi_categorical {
        match psi_categorical(&case.reference_counts, &case.current_counts) {
            Ok(psi) => report.compare(&case.name, psi, case.psi),
            Err(e) => report.require(&format!("{}: unexpected error {e}", case.name), false),
        }
    }
    report.finish("psi");
}

#[test]
fn binomial_lower_tail_matches_scipy() {
    let mut report = Report::default();
    for case in vectors().binomial_less {
        let what = format!("binomtest(k={}, n={}, p={:e})", case.k, case.n, case.p);
        match binomial_test_less(case.k, case.n, case.p) {
            Ok(p) => report.compare(&what, p, case.pvalue),
            Err(e) => report.require(&format!("{what}: unexpected error {e}"), false),
        }
    }
    report.finish("binomial_less");
}

#[test]
fn binomial_lower_tail_is_close_to_exact() {
    let mut report = Report::default();
    for case in vectors().binomial_less {
        let Some(exact) = case.exact else { continue };
        let what = format!("exact P(X <= {} | n={}, p={:e})", case.k, case.n, case.p);
        match binomial_test_less(case.k, case.n, case.p) {
            Ok(p) => report.compare_within(&what, p, exact, 1e-13),
            Err(e) => report.require(&format!("{what}: unexpected error {e}"), false),
        }
    }
    report.finish("binomial_less vs exact");
}

#[test]
fn pooled_ztest_matches_statsmodels_formula() {
    let mut report = Report::default();
    for case in vectors().ztest_less {
        let what = format!("ztest({}/{} vs {}/{})", case.k, case.n, case.k0, case.n0);
        match two_proportion_ztest_less(case.k, case.n, case.k0, case.n0) {
            Ok(z) => {
                report.compare(&format!("{what} statistic"), z.statistic, case.statistic);
                report.compare(&format!("{what} pvalue"), z.pvalue, case.pvalue);
            }
            Err(e) => report.require(&format!("{what}: unexpected error {e}"), false),
        }
    }
    report.finish("ztest_less");
}

#[test]
fn accuracy_drop_test_matches_its_rule() {
    let mut report = Report::default();
    for case in vectors().accuracy_drop {
        let what = format!(
            "accuracy_drop({}/{} vs {})",
            case.k, case.n, case.reference_accuracy
        );
        let result = accuracy_drop_test(
            case.k,
            case.n,
            case.reference_accuracy,
            case.reference_n,
            case.alpha,
        );
        let Ok(r) = result else {
            report.require(&format!("{what}: unexpected {result:?}"), false);
            continue;
        };
        let method = match r.method {
            AccuracyTestMethod::ExactBinomial => "exact_binomial",
            AccuracyTestMethod::PooledZ => "pooled_z",
        };
        report.require(&format!("{what} method {method}"), method == case.method);
        report.compare(&format!("{what} statistic"), r.statistic, case.statistic);
        report.compare(&format!("{what} pvalue"), r.pvalue, case.pvalue);
        report.require(&format!("{what} rejects"), r.rejects == case.rejects);
    }
    report.finish("accuracy_drop");
}

#[test]
fn corrections_match_scipy() {
    let mut report = Report::default();
    for (i, case) in vectors().multiple.iter().enumerate() {
        let methods = [
            (Correction::BenjaminiHochberg, &case.bh, &case.bh_rejected),
            (
                Correction::Bonferroni,
                &case.bonferroni,
                &case.bonferroni_rejected,
            ),
        ];
        for (method, adjusted, rejected) in methods {
            let what = format!("case {i} {method:?}");
            let Ok(r) = correct(method, &case.pvalues, case.alpha) else {
                report.require(&format!("{what}: unexpected error"), false);
                continue;
            };
            for (got, want) in r.adjusted.iter().zip(adjusted) {
                report.compare(&what, *got, *want);
            }
            report.require(
                &format!("{what} length"),
                r.adjusted.len() == adjusted.len(),
            );
            report.require(&format!("{what} rejected"), &r.rejected == rejected);
        }
    }
    report.finish("multiple");
}
