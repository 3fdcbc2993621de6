//! Chi-square test of independence on a two-way contingency table, as
//! `scipy.stats.chi2_contingency` computes it.

use super::check_frequencies;
use super::chisquare::{chi2_sf, pearson};
use crate::stats::StatsError;

/// The result of [`chi2_contingency`].
#[derive(Debug, Clone, PartialEq)]
pub struct ContingencyResult {
    /// Pearson's statistic, after Yates' correction when it applied.
    pub statistic: f64,
    /// P(χ²_dof ≥ statistic); 1 when dof is 0.
    pub pvalue: f64,
    /// (rows − 1)·(columns − 1).
    pub dof: usize,
    /// Expected frequencies under independence, row_i·column_j / total.
    pub expected: Vec<Vec<f64>>,
}

/// Chi-square test of independence of rows and columns, as
/// `scipy.stats.chi2_contingency(table, correction)`.
///
/// `table` is a list of rows of equal length; non-finite or negative cells
/// are rejected, with the row-major index of the cell in the error. A row or
/// column summing to 0 makes an expected frequency 0, which is an error as
/// in scipy. A table with a single row or column has dof 0: statistic 0 and
/// p-value 1, as scipy returns.
///
/// With `correction` and dof 1 (a 2×2 table), Yates' continuity correction
/// moves each observed cell towards its expected value by 0.5, or by the
/// whole difference when that is smaller (scipy's rule since gh-13875).
pub fn chi2_contingency(
    table: &[Vec<f64>],
    correction: bool,
) -> Result<ContingencyResult, StatsError> {
    let (cells, columns) = flatten(table)?;
    let expected = expected_frequencies(&cells, table.len(), columns)?;
    let dof = (table.len() - 1) * (columns - 1);
    let nested: Vec<Vec<f64>> = expected.chunks(columns).map(<[f64]>::to_vec).collect();
    if dof == 0 {
        // Observed equals expected when only one dimension is non-trivial.
        return Ok(ContingencyResult {
            statistic: 0.0,
            pvalue: 1.0,
            dof,
            expected: nested,
        });
    }

    let observed = if correction && dof == 1 {
        yates(&cells, &expected)
    } else {
        cells
    };
    let statistic = pearson(&observed, &expected)?;
    let pvalue = chi2_sf(dof, statistic)?;
    Ok(ContingencyResult {
        statistic,
        pvalue,
        dof,
        expected: nested,
    })
}

/// The table's cells in row-major order, and its number of columns.
fn flatten(table: &[Vec<f64>]) -> Result<(Vec<f64>, usize), StatsError> {
    let columns = table.first().map_or(0, Vec::len);
    if let Some(row) = table.iter().position(|r| r.len() != columns) {
        return Err(StatsError::InvalidArgument {
            name: "table",
            reason: format!(
                "row {row} has {} columns, row 0 has {columns}",
                table[row].len()
            ),
        });
    }
    let cells: Vec<f64> = table.iter().flatten().copied().collect();
    check_frequencies("table", &cells)?;
    Ok((cells, columns))
}

fn expected_frequencies(
    cells: &[f64],
    rows: usize,
    columns: usize,
) -> Result<Vec<f64>, StatsError> {
    let row_sums: Vec<f64> = cells.chunks(columns).map(|row| row.iter().sum()).collect();
    let column_sums: Vec<f64> = (0..columns)
        .map(|j| (0..rows).map(|i| cells[i * columns + j]).sum())
        .collect();
    let total: f64 = cells.iter().sum();

    let mut expected = Vec::with_capacity(cells.len());
    for (i, row_sum) in row_sums.iter().enumerate() {
        for (j, column_sum) in column_sums.iter().enumerate() {
            let e = row_sum * column_sum / total;
            if e == 0.0 {
                return Err(StatsError::InvalidArgument {
                    name: "table",
                    reason: format!(
                        "the expected frequency at ({i}, {j}) is 0: its row or column sums to 0"
                    ),
                });
            }
            expected.push(e);
        }
    }
    Ok(expected)
}

fn yates(observed: &[f64], expected: &[f64]) -> Vec<f64> {
    observed
        .iter()
        .zip(expected)
        .map(|(&o, &e)| {
            let diff = e - o;
            o + diff.abs().min(0.5) * sign(diff)
        })
        .collect()
}

/// numpy's sign: 0 for 0, unlike `f64::signum`.
fn sign(x: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x.signum() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yates_never_overshoots() {
        // Expected 10.25 vs observed 10: the correction is 0.25, not 0.5.
        assert_eq!(
            yates(&[10.0, 3.0, 7.0], &[10.25, 3.0, 6.0]),
            vec![10.25, 3.0, 6.5]
        );
    }

    #[test]
    fn single_row_has_no_degrees_of_freedom() {
        let r = chi2_contingency(&[vec![3.0, 4.0, 5.0]], true).unwrap();
        assert_eq!((r.statistic, r.pvalue, r.dof), (0.0, 1.0, 0));
        assert_eq!(r.expected, vec![vec![3.0, 4.0, 5.0]]);
    }

    #[test]
    fn rejects_bad_tables() {
        let bad = |t: &[Vec<f64>]| chi2_contingency(t, false).unwrap_err();
        assert_eq!(bad(&[]), StatsError::EmptySample { sample: "table" });
        assert_eq!(bad(&[vec![]]), StatsError::EmptySample { sample: "table" });
        assert!(matches!(
            bad(&[vec![1.0, 2.0], vec![3.0]]),
            StatsError::InvalidArgument { name: "table", .. }
        ));
        assert!(matches!(
            bad(&[vec![1.0, 2.0], vec![3.0, f64::NAN]]),
            StatsError::NonFinite {
                sample: "table",
                index: 3,
                ..
            }
        ));
        assert!(matches!(
            bad(&[vec![1.0, -2.0], vec![3.0, 4.0]]),
            StatsError::InvalidArgument { name: "table", .. }
        ));
        // A zero column makes an expected frequency zero.
        assert!(matches!(
            bad(&[vec![1.0, 0.0], vec![3.0, 0.0]]),
            StatsError::InvalidArgument { name: "table", .. }
        ));
    }
}
