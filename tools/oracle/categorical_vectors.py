"""Reference vectors for driftwarden's categorical, proportion and
multiple-testing statistics, computed with scipy and numpy.

Run with the oracle environment:

    target/oracle-venv/bin/python tools/oracle/categorical_vectors.py

It writes tests/vectors/categorical.json, which tests/scipy_categorical.rs
checks the Rust implementations against. Every random draw comes from a
seeded generator, so the output is the same on every run with the same
scipy and numpy.

JSON cannot hold inf or NaN, so non-finite numbers are written as the
strings "inf", "-inf" and "nan". A case with `"error": true` is one where
scipy raises (or returns NaN) and driftwarden returns an error instead.
"""

import json
import math
from decimal import Decimal, getcontext
from fractions import Fraction
import pathlib
import platform

import numpy as np
import scipy
from scipy import stats

SEED = 20240611
OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "vectors" / "categorical.json"


def num(x):
    """A float for JSON, with non-finite values spelled out."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def floats(xs):
    return [num(x) for x in xs]


# ---------------------------------------------------------------- chi-square


def gof_case(name, observed, expected=None, ddof=0):
    case = {
        "name": name,
        "observed": floats(observed),
        "expected": None if expected is None else floats(expected),
        "ddof": ddof,
    }
    try:
        with np.errstate(all="ignore"):
            res = stats.chisquare(observed, expected, ddof=ddof)
    except ValueError:
        case["error"] = True
        return case
    if math.isnan(res.statistic) or math.isnan(res.pvalue):
        # scipy's NaN (a 0/0 cell, or no degrees of freedom and statistic 0)
        # is an error for us.
        case["error"] = True
        return case
    if len(observed) - 1 - ddof < 1:
        # With no degrees of freedom scipy uses the point mass at 0 and
        # reports p = 0 for any positive statistic; a test that can measure
        # nothing is an error for us. scipy's answer is kept for the record.
        case.update(error=True, scipy_statistic=num(res.statistic), scipy_pvalue=num(res.pvalue))
        return case
    case.update(
        error=False,
        statistic=num(res.statistic),
        pvalue=num(res.pvalue),
        dof=len(observed) - 1 - ddof,
    )
    return case


def gof_cases(rng):
    cases = []
    for i in range(30):
        k = int(rng.integers(2, 31))
        n = int(rng.choice([20, 100, 1000, 10**5]))
        p = rng.dirichlet(np.ones(k))
        observed = rng.multinomial(n, p)
        ddof = int(rng.integers(0, max(1, k - 2)))
        cases.append(gof_case(f"uniform-{i}", observed, ddof=ddof))
    for i in range(30):
        k = int(rng.integers(2, 31))
        n = int(rng.choice([30, 500, 10**4, 10**6]))
        p = rng.dirichlet(np.full(k, 2.0))
        # Observed from a slightly different distribution, so p spans
        # values from ~1 to far below 1e-3.
        q = rng.dirichlet(np.full(k, 50.0)) * 0.1 + p * 0.9
        observed = rng.multinomial(n, q)
        cases.append(gof_case(f"expected-{i}", observed, n * p, ddof=int(i % 2)))
    for i in range(8):
        k = int(rng.integers(3, 12))
        observed = rng.uniform(0, 40, k).round(3)
        expected = rng.dirichlet(np.ones(k)) * observed.sum()
        cases.append(gof_case(f"fractional-{i}", observed, expected))
    return cases + gof_edge_cases()


def gof_edge_cases():
    obs = np.array([16.0, 18, 16, 14, 12, 12])
    exp = np.array([16.0, 16, 16, 16, 16, 8])
    return [
        gof_case("scipy-doc", obs),
        gof_case("scipy-doc-ddof-2", obs, ddof=2),
        gof_case("perfect-fit", [5, 5, 5, 5]),
        # Totals differ by 1e-9 relative: inside scipy's sqrt(eps) tolerance,
        # and `expected` is used as given.
        gof_case("sum-within-rtol", obs, exp * (1 + 1e-9)),
        # ... and by 1e-7: scipy raises.
        gof_case("sum-outside-rtol", obs, exp * (1 + 1e-7)),
        # Zero expected with an observed count: statistic inf, p-value 0.
        gof_case("zero-expected-observed", [3, 2, 5], [5, 5, 0]),
        # Zero expected and zero observed: scipy's NaN, our error.
        gof_case("zero-expected-zero-observed", [5, 5, 0], [5, 5, 0]),
        # No degrees of freedom left: scipy's NaN, our error.
        gof_case("no-dof", [3, 4, 5], ddof=2),
        gof_case("single-category", [7]),
        gof_case("tiny-p", [1000, 10, 10, 10], ddof=0),
        gof_case("zero-cells", [0, 0, 12, 3, 0, 9]),
    ]


def proportions_case(name, counts, proportions):
    counts = np.asarray(counts)
    proportions = np.asarray(proportions)
    seen = proportions > 0
    tested = int(counts[seen].sum())
    # driftwarden's monitor form: categories with baseline proportion 0 are
    # set aside and the test runs over the rest with n = their total.
    expected = tested * proportions[seen] / proportions[seen].sum()
    res = stats.chisquare(counts[seen], expected)
    return {
        "name": name,
        "counts": [int(c) for c in counts],
        "proportions": floats(proportions),
        "statistic": num(res.statistic),
        "pvalue": num(res.pvalue),
        "dof": int(seen.sum()) - 1,
        "tested": tested,
        "unseen": int(counts[~seen].sum()),
    }


def proportions_cases(rng):
    cases = []
    for i in range(15):
        k = int(rng.integers(3, 15))
        p = rng.dirichlet(np.ones(k))
        if i % 3 != 0:
            p[rng.integers(0, k)] = 0.0  # a category the baseline never saw
        if i % 5 == 0:
            p[-1] = 0.0
        p = (p / p.sum()).round(12)
        n = int(rng.choice([50, 1000, 10**5]))
        q = 0.8 * p + 0.2 * rng.dirichlet(np.ones(k))
        cases.append(proportions_case(f"proportions-{i}", rng.multinomial(n, q), p))
    return cases


def contingency_case(name, table, correction):
    case = {"name": name, "table": [floats(row) for row in table], "correction": correction}
    try:
        res = stats.chi2_contingency(np.asarray(table, dtype=float), correction=correction)
    except ValueError:
        case["error"] = True
        return case
    case.update(
        error=False,
        statistic=num(res.statistic),
        pvalue=num(res.pvalue),
        dof=int(res.dof),
        expected=[floats(row) for row in np.atleast_2d(res.expected_freq)],
    )
    return case


def contingency_cases(rng):
    cases = []
    for i in range(12):
        table = rng.integers(0, 40, (2, 2)) + rng.integers(0, 3)
        table[table.sum(axis=1) == 0, 0] = 1
        table[:, table.sum(axis=0) == 0] = 1
        for correction in (True, False):
            cases.append(contingency_case(f"2x2-{i}-yates-{correction}", table, correction))
    # Cells within 0.5 of their expected value: Yates moves them by the
    # difference only (scipy gh-13875).
    for i, table in enumerate([[[10, 10], [10, 11]], [[5, 6], [6, 5]], [[100, 101], [99, 100]]]):
        cases.append(contingency_case(f"2x2-near-expected-{i}", table, True))
    for i in range(16):
        r, c = int(rng.integers(2, 7)), int(rng.integers(2, 9))
        scale = float(rng.choice([3, 30, 3000]))
        table = rng.poisson(scale * rng.uniform(0.2, 1.5, (r, c)))
        table[:, table.sum(axis=0) == 0] += 1
        table[table.sum(axis=1) == 0, :] += 1
        cases.append(contingency_case(f"rxc-{i}", table, bool(i % 2)))
    for i in range(6):
        # Small counts with zero cells (but no zero margin).
        table = rng.integers(0, 4, (3, 3))
        np.fill_diagonal(table, np.maximum(np.diag(table), 1))
        cases.append(contingency_case(f"small-{i}", table, True))
    cases += [
        contingency_case("2x1-dof-0", [[3], [7]], True),
        contingency_case("1x4-dof-0", [[3, 4, 5, 6]], False),
        contingency_case("zero-row", [[0, 0], [3, 4]], True),
        contingency_case("zero-column", [[0, 5], [0, 4]], False),
        contingency_case("fractional", [[1.5, 2.25], [3.5, 0.75]], True),
        contingency_case("large", [[120000, 98000], [118500, 101000]], True),
        contingency_case("tiny-p", [[900, 100], [100, 900]], False),
    ]
    return cases


# ---------------------------------------------------------------------- PSI


def evidently_proportions(reference, current, numeric):
    """Mirrors Evidently's `get_binned_data` (calculations/stattests/utils.py)
    with numpy: numeric data whose reference has more than 20 distinct
    values are binned with numpy.histogram_bin_edges(reference ++ current,
    bins="sturges") and counted with numpy.histogram(x, edges); otherwise one
    bin per distinct value of either sample. Each sample's empty bins then
    get min_nonzero / 1e6 if min_nonzero <= 1e-4, else 1e-4."""
    if numeric and len(np.unique(reference)) > 20:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        r = np.histogram(reference, edges)[0] / len(reference)
        c = np.histogram(current, edges)[0] / len(current)
    else:
        keys = np.union1d(reference, current)
        r = np.array([np.sum(reference == k) for k in keys]) / len(reference)
        c = np.array([np.sum(current == k) for k in keys]) / len(current)
    for p in (r, c):
        m = p[p != 0].min()
        np.place(p, p == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return r, c


def psi(r, c):
    # Evidently's _psi in calculations/stattests/psi.py.
    return float(np.sum((r - c) * np.log(r / c)))


def psi_numeric_cases(rng):
    cases = []
    # Inputs are rounded to 6 decimals so the JSON text parses back to the
    # same doubles everywhere; a value one ulp off could change bins.
    for i in range(14):
        n_ref = int(rng.choice([30, 64, 100, 500, 1000]))
        n_cur = int(rng.choice([30, 64, 200, 1024]))
        ref = rng.normal(0, 1, n_ref).round(6)
        shift, spread = rng.uniform(-0.5, 1.5), rng.uniform(0.5, 2.0)
        cur = rng.normal(shift, spread, n_cur).round(6)
        if i % 4 == 3:
            # A gap in the data leaves histogram bins empty in both samples.
            cur = np.concatenate([cur, [cur.max() + 40.0]]).round(6)
        cases.append(psi_numeric_case(f"numeric-continuous-{i}", ref, cur))
    for i in range(8):
        # At most 20 distinct reference values: one bin per value, and the
        # current sample may hold values the reference never had.
        ref = rng.integers(0, int(rng.integers(2, 21)), 300).astype(float)
        cur = rng.integers(0, 25, int(rng.choice([40, 400]))).astype(float) * 0.5
        cases.append(psi_numeric_case(f"numeric-discrete-{i}", ref, cur))
    cases.append(psi_numeric_case("numeric-21-distinct", np.arange(21.0), np.arange(5.0, 30.0)))
    cases.append(psi_numeric_case("numeric-identical", np.arange(40.0) / 8, np.arange(40.0) / 8))
    return cases


def psi_numeric_case(name, ref, cur):
    r, c = evidently_proportions(ref, cur, numeric=True)
    return {"name": name, "reference": floats(ref), "current": floats(cur), "psi": psi(r, c)}


def psi_categorical_cases(rng):
    cases = []
    for i in range(12):
        k = int(rng.integers(2, 12))
        ref = rng.multinomial(int(rng.choice([100, 10**4, 10**6])), rng.dirichlet(np.ones(k)))
        cur = rng.multinomial(int(rng.choice([50, 5000])), rng.dirichlet(np.ones(k)))
        if i % 3 == 0:
            ref[0] = 0  # a category only the current sample has
        if i % 4 == 1:
            cur[-1] = 0
        if i % 6 == 2:
            ref[-1] = cur[-1] = 0  # absent from both: not a bin
        ref[ref.sum() == 0] = 1
        cases.append(psi_categorical_case(f"categorical-{i}", ref, cur))
    # Tiny reference proportions trigger the min_nonzero / 1e6 floor.
    cases.append(psi_categorical_case("categorical-tiny-floor", [10**6, 3, 0, 50], [500, 0, 4, 20]))
    return cases


def psi_categorical_case(name, ref, cur):
    ref, cur = np.asarray(ref), np.asarray(cur)
    present = (ref > 0) | (cur > 0)
    # Evidently's keys are the values present in either sample; expanding
    # counts to values and back would give the same proportions.
    r, c = evidently_proportions_counts(ref[present], cur[present])
    return {
        "name": name,
        "reference_counts": [int(x) for x in ref],
        "current_counts": [int(x) for x in cur],
        "psi": psi(r, c),
    }


def evidently_proportions_counts(ref_counts, cur_counts):
    r = ref_counts / ref_counts.sum()
    c = cur_counts / cur_counts.sum()
    for p in (r, c):
        m = p[p != 0].min()
        np.place(p, p == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return r, c


# -------------------------------------------------------------- proportions


def binom_cases(rng):
    cases = []
    fixed = [
        (0, 10**6, 1e-7), (1, 10**6, 1e-7), (3, 10**6, 1e-6),
        (499_000, 10**6, 0.5), (499_999, 10**6, 0.5), (500_000, 10**6, 0.5),
        (500_500, 10**6, 0.5), (948_500, 10**6, 0.95), (949_800, 10**6, 0.95),
        (950_000, 10**6, 0.95), (999_990, 10**6, 0.99999), (10, 10**6, 1e-4),
        (0, 5, 0.3), (40, 50, 0.95), (45, 50, 0.95), (7, 20, 0.5),
        (1, 3, 0.999999), (0, 1, 1e-12), (999, 1000, 0.999), (12, 2000, 0.01),
        (0, 10**6, 1e-12), (497_000, 10**6, 0.5), (498_500, 10**6, 0.5),
        (9_000, 10**6, 0.01), (0, 10**6, 5e-6), (2, 10**6, 1e-5),
    ]
    for k, n, p in fixed:
        cases.append(binom_case(k, n, p))
    for _ in range(25):
        n = int(rng.choice([10, 100, 1000, 10**4, 10**5, 10**6]))
        p = float(rng.choice([rng.uniform(0.01, 0.99), 10 ** rng.uniform(-9, -1), 1 - 10 ** rng.uniform(-6, -1)]))
        sd = math.sqrt(n * p * (1 - p))
        k = int(np.clip(round(n * p + rng.uniform(-6, 3) * sd), 0, n))
        cases.append(binom_case(k, n, p))
    return cases


def binom_case(k, n, p):
    case = {"k": k, "n": n, "p": num(p), "pvalue": num(stats.binomtest(k, n, p, alternative="less").pvalue)}
    if min(k, n - k) <= 60:
        case["exact"] = exact_binom_cdf(k, n, p)
    return case


def exact_binom_cdf(k, n, p):
    """P(X <= k) summed term by term in 80-digit decimal arithmetic, from
    the double p exactly; scipy's own error (up to ~5e-11 relative at
    n = 10^6) would otherwise hide ours. Only for short sums."""
    getcontext().prec = 80
    f = Fraction(p)
    p = Decimal(f.numerator) / Decimal(f.denominator)
    q = 1 - p

    def term(j):
        return Decimal(math.comb(n, j)) * p**j * q ** (n - j)

    if k <= n - k:
        return float(sum(term(j) for j in range(k + 1)))
    return float(1 - sum(term(j) for j in range(k + 1, n + 1)))


def ztest(k, n, k0, n0):
    """statsmodels' proportions_ztest([k, k0], [n, n0], alternative='smaller'),
    written out with scipy.stats.norm (same order of operations)."""
    diff = k / n - k0 / n0
    pooled = (k + k0) / (n + n0)
    var = pooled * (1 - pooled) * (1 / n + 1 / n0)
    z = diff / math.sqrt(var)
    return z, float(stats.norm.cdf(z))


def ztest_cases(rng):
    cases = []
    for i in range(20):
        n = int(rng.choice([100, 1000, 10**4, 10**6]))
        n0 = int(rng.choice([1000, 10**5, 10**6]))
        p0 = float(rng.uniform(0.6, 0.99))
        p = p0 - float(rng.uniform(-0.01, 0.05))
        k, k0 = int(rng.binomial(n, p)), int(rng.binomial(n0, p0))
        z, pv = ztest(k, n, k0, n0)
        cases.append({"k": k, "n": n, "k0": k0, "n0": n0, "statistic": z, "pvalue": pv})
    # Deep lower tails (z from about −4 to −30) and one upper value.
    for k, n, k0, n0 in [(900, 1000, 9500, 10_000), (80_000, 100_000, 950_000, 10**6),
                         (600, 1000, 99_000, 100_000), (5000, 10_000, 990_000, 10**6),
                         (990, 1000, 9000, 10_000)]:
        z, pv = ztest(k, n, k0, n0)
        cases.append({"k": k, "n": n, "k0": k0, "n0": n0, "statistic": z, "pvalue": pv})
    return cases


def accuracy_cases(rng):
    """accuracy_drop_test: exact binomial when the reference is known or
    min(n·p0, n·(1 − p0)) < 10, else the pooled z-test with k0 = p0·n0."""
    cases = []
    settings = [
        (40, 50, 0.95, 10_000), (48, 50, 0.95, 10_000), (9300, 10_000, 0.95, 100_000),
        (950, 1000, 0.95, None), (800, 1000, 0.82, 5000), (85, 100, 0.9, None),
        (197, 200, 0.995, 10**6), (60_000, 100_000, 0.601, 20_000),
    ]
    for k, n, p0, n0 in settings:
        cases.append(accuracy_case(k, n, p0, n0, 0.05))
    for _ in range(6):
        n = int(rng.choice([30, 300, 3000]))
        p0 = float(rng.uniform(0.7, 0.99))
        k = int(rng.binomial(n, p0 - 0.03))
        cases.append(accuracy_case(k, n, p0, int(rng.choice([2000, 50_000])), 0.01))
    return cases


def accuracy_case(k, n, p0, n0, alpha):
    if n0 is None or min(n * p0, n * (1 - p0)) < 10:
        method, statistic = "exact_binomial", k / n
        pvalue = float(stats.binomtest(k, n, p0, alternative="less").pvalue)
    else:
        method = "pooled_z"
        statistic, pvalue = ztest(k, n, p0 * n0, n0)
    return {
        "k": k, "n": n, "reference_accuracy": p0, "reference_n": n0, "alpha": alpha,
        "method": method, "statistic": statistic, "pvalue": pvalue, "rejects": pvalue < alpha,
    }


# ------------------------------------------------------- multiple testing


def multiple_cases(rng):
    cases = []
    for i in range(22):
        m = int(rng.choice([1, 2, 5, 10, 30, 60]))
        ps = rng.uniform(0, 1, m) ** float(rng.choice([1, 3, 8]))
        if i % 4 == 1 and m > 2:
            ps[1] = ps[0]  # ties
        if i % 5 == 2:
            ps[0] = 0.0
            ps[-1] = 1.0
        ps = ps.round(12)
        alpha = float(rng.choice([0.01, 0.05, 0.1]))
        bh = stats.false_discovery_control(ps, method="bh")
        bonf = np.minimum(1.0, ps * m)
        cases.append({
            "pvalues": floats(ps), "alpha": alpha,
            "bh": floats(np.atleast_1d(bh)), "bh_rejected": [bool(x < alpha) for x in np.atleast_1d(bh)],
            "bonferroni": floats(bonf), "bonferroni_rejected": [bool(x < alpha) for x in bonf],
        })
    return cases


def main():
    rng = np.random.default_rng(SEED)
    vectors = {
        "header": {
            "generator": "tools/oracle/categorical_vectors.py",
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "seed": SEED,
        },
        "chisquare": gof_cases(rng),
        "chisquare_proportions": proportions_cases(rng),
        "contingency": contingency_cases(rng),
        "psi_numeric": psi_numeric_cases(rng),
        "psi_categorical": psi_categorical_cases(rng),
        "binomial_less": binom_cases(rng),
        "ztest_less": ztest_cases(rng),
        "accuracy_drop": accuracy_cases(rng),
        "multiple": multiple_cases(rng),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(vectors, indent=1, allow_nan=False) + "\n")
    counts = {key: len(value) for key, value in vectors.items() if key != "header"}
    print(f"wrote {OUT}: {counts}")


if __name__ == "__main__":
    main()
