#!/usr/bin/env python3
"""Reference vectors for driftwarden's two-sample KS code, computed by scipy.

Writes tests/vectors/ks.json with:

* ks_2samp: cases of two samples, each run through scipy.stats.ks_2samp for
  every alternative (two-sided, less, greater) and method (auto, exact,
  asymp), recording the statistic, p-value, location, sign and the method
  scipy actually used (a "Switching to" RuntimeWarning means it fell back to
  asymp), plus n*m*D+ and n*m*D- computed with Python integers;
* kstwo: scipy.stats.kstwo.sf/cdf(d, n) across every branch of _kolmogn;
* smirnov: scipy.special.smirnov(n, d);
* binom: scipy.special.binom(n, k) as used by the exact one-sided path.

Every sample value is an integer divided by a power of two, so the exact
double scipy was given can be rebuilt from the JSON. Small samples are stored
as those integers; large ones as a recipe (a splitmix64 stream, see
`splitmix_values`) that the Rust test regenerates bit for bit. Floats are
stored as Python repr strings (shortest round-trip form, "nan"/"inf"), since
JSON numbers cannot carry NaN and some JSON parsers round inexactly.

Deterministic: numpy's default_rng with fixed seeds and fixed recipes.
Run with the oracle venv from the repository root:

    target/oracle-venv/bin/python tools/oracle/ks_vectors.py
"""

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import scipy
from scipy import special, stats

OUT = Path(__file__).resolve().parents[2] / "tests" / "vectors" / "ks.json"
SEED = 20261203
ALTERNATIVES = ["two-sided", "less", "greater"]
METHODS = ["auto", "exact", "asymp"]
MASK64 = (1 << 64) - 1


def f(v):
    """Shortest round-trip text of a double."""
    return repr(float(v))


# --- samples ---------------------------------------------------------------


def splitmix_values(seed, size, modulus, terms, offset, scale):
    """value_i = (offset + sum of `terms` draws % modulus) / scale.

    splitmix64 with state starting at `seed`; each draw advances the state by
    the golden gamma. Mirrored in tests/scipy_ks.rs.
    """
    state = seed & MASK64
    out = []
    for _ in range(size):
        total = offset
        for _ in range(terms):
            state = (state + 0x9E3779B97F4A7C15) & MASK64
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            z ^= z >> 31
            total += z % modulus
        out.append(total)
    return np.array(out, dtype=np.int64), scale


def stored(ints, scale):
    return {"scale": scale, "values": [int(v) for v in ints]}


def decode(spec):
    """The float64 array scipy is given, from a stored or recipe spec."""
    if "values" in spec:
        ints, scale = np.array(spec["values"], dtype=np.int64), spec["scale"]
    else:
        r = spec["recipe"]
        ints, scale = splitmix_values(r["seed"], r["size"], r["modulus"], r["terms"], r["offset"], r["scale"])
    return ints.astype(np.float64) / scale, ints, scale


def normal_ints(rng, size, loc, sd, scale=1024):
    return np.rint(rng.normal(loc, sd, size) * scale).astype(np.int64)


# --- ks_2samp --------------------------------------------------------------


def exact_extremes(x_ints, y_ints):
    """n*m*D+ and n*m*D- with Python integers (values compared as integers,
    which preserves order since both samples share one scale)."""
    xs, ys = np.sort(x_ints), np.sort(y_ints)
    n1, n2 = len(xs), len(ys)
    allv = np.concatenate([xs, ys])
    c1 = np.searchsorted(xs, allv, side="right").astype(object)
    c2 = np.searchsorted(ys, allv, side="right").astype(object)
    scaled = [int(a) * n2 - int(b) * n1 for a, b in zip(c1, c2)]
    return max(max(scaled), 0), max(max(-s for s in scaled), 0)


def run_scipy(x, y, alternative, method):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = stats.ks_2samp(x, y, alternative=alternative, method=method)
    switched = any("Switching to" in str(w.message) for w in caught)
    n1, n2 = len(x), len(y)
    if method == "asymp" or switched or (method == "auto" and max(n1, n2) > 10000):
        used = "asymp"
    else:
        used = "exact"
    return {
        "alternative": alternative,
        "method": method,
        "statistic": f(res.statistic),
        "pvalue": f(res.pvalue),
        "statistic_location": f(res.statistic_location),
        "statistic_sign": int(res.statistic_sign),
        "method_used": used,
    }


def ks_case(name, xspec, yspec):
    x, xi, xscale = decode(xspec)
    y, yi, yscale = decode(yspec)
    assert xscale == yscale, name
    d_plus, d_minus = exact_extremes(xi, yi)
    results = [run_scipy(x, y, a, m) for a in ALTERNATIVES for m in METHODS]
    # Cross-check the integer extremes against scipy's statistic h/lcm
    # wherever scipy attempted the exact path.
    g = math.gcd(len(x), len(y))
    lcm = len(x) // g * len(y)
    for r in results:
        if r["method_used"] == "exact":
            chosen = {"less": d_minus, "greater": d_plus}.get(r["alternative"], max(d_plus, d_minus))
            assert float(r["statistic"]) == (chosen // g) * 1.0 / lcm, (name, r)
    return {
        "name": name,
        "n1": len(x),
        "n2": len(y),
        "x": xspec,
        "y": yspec,
        "d_plus_scaled": d_plus,
        "d_minus_scaled": d_minus,
        "results": results,
    }


def random_pair_cases(rng, count):
    """Log-uniform sizes 1..3000, continuous, tied and integer data."""
    cases = []
    for i in range(count):
        n1, n2 = (int(round(math.exp(rng.uniform(0, math.log(3000))))) for _ in range(2))
        kind = ["normal", "normal", "ties", "integer"][i % 4]
        if kind == "normal":
            shift = [0.0, 0.1, 0.3, 1.0][(i // 4) % 4]
            xs, ys = normal_ints(rng, n1, 0, 1), normal_ints(rng, n2, shift, 1.2)
            scale = 1024
        elif kind == "ties":
            k = [2, 3, 5][(i // 4) % 3]
            xs, ys = rng.integers(0, k, n1), rng.integers(0, k + (i % 2), n2)
            scale = 1
        else:
            xs, ys = rng.integers(0, 100, n1), rng.integers(10 * (i % 3), 100, n2)
            scale = 1
        cases.append(ks_case(f"random-{i}-{kind}-{n1}x{n2}", stored(xs, scale), stored(ys, scale)))
    return cases


def structured_cases(rng):
    """Identical, disjoint and constant samples; equal, coprime and multiple
    sizes; the tiny sizes where scipy has corner cases."""
    cases = []
    for n in [1, 2, 3, 7, 50, 333]:
        xs = normal_ints(rng, n, 0, 1)
        cases.append(ks_case(f"identical-{n}", stored(xs, 1024), stored(xs, 1024)))
    for n1, n2 in [(1, 1), (1, 2), (3, 1), (5, 8), (40, 60), (200, 150), (1000, 999)]:
        xs = rng.integers(0, 1000, n1)
        cases.append(ks_case(f"disjoint-{n1}x{n2}", stored(xs, 1), stored(rng.integers(2000, 3000, n2), 1)))
        cases.append(ks_case(f"disjoint-rev-{n1}x{n2}", stored(rng.integers(2000, 3000, n2), 1), stored(xs, 1)))
    for n1, n2 in [(1, 1), (4, 4), (10, 3), (100, 250)]:
        cases.append(ks_case(f"constant-same-{n1}x{n2}", stored([7] * n1, 1), stored([7] * n2, 1)))
        cases.append(ks_case(f"constant-diff-{n1}x{n2}", stored([7] * n1, 1), stored([8] * n2, 1)))
        cases.append(ks_case(f"constant-vs-spread-{n1}x{n2}", stored([5] * n1, 1), stored(rng.integers(0, 10, n2), 1)))
    sizes = [(n, n) for n in [1, 2, 5, 16, 100, 512, 1500, 4000]]
    sizes += [(n, n + 1) for n in [1, 4, 31, 256, 1000, 2999]]
    sizes += [(n, 2 * n) for n in [1, 3, 64, 700]] + [(n, 3 * n) for n in [2, 10, 333]]
    sizes += [(7, 11), (13, 17), (97, 101), (1009, 1013), (600, 450)]
    for i, (n1, n2) in enumerate(sizes):
        shift = [0.0, 0.2, 0.5][i % 3]
        xs, ys = normal_ints(rng, n1, 0, 1), normal_ints(rng, n2, shift, 1)
        cases.append(ks_case(f"sizes-{n1}x{n2}-shift{shift}", stored(xs, 1024), stored(ys, 1024)))
    return cases


def one_sided_boundary_cases(rng):
    """Around where scipy's one-sided exact path starts to overflow
    (C(n1+n2, n1) > 1.8e308) and falls back to asymp; skewed sizes where it
    still succeeds for large samples."""
    cases = []
    sizes = [(500, 520), (510, 519), (514, 515), (515, 516), (520, 530), (600, 700), (700, 420)]
    sizes += [(10, 5000), (30, 8000), (3, 10000), (60, 9000), (150, 2500), (250, 900), (2, 9999)]
    for i, (n1, n2) in enumerate(sizes):
        shift = [0.0, 0.15, 0.4][i % 3]
        xs, ys = normal_ints(rng, n1, 0, 1), normal_ints(rng, n2, shift, 1)
        cases.append(ks_case(f"onesided-{n1}x{n2}-shift{shift}", stored(xs, 1024), stored(ys, 1024)))
    return cases


def recipe(seed, size, modulus, terms, offset, scale=1024):
    return {"recipe": {"seed": seed, "size": size, "modulus": modulus, "terms": terms,
                       "offset": offset, "scale": scale}}


def large_cases():
    """Both sides of the 10 000 switch, up to 20 000 (and one beyond, where
    lcm(n, m) is too large for scipy's exact path), by recipe."""
    specs = [
        (9999, 10000, 0), (10000, 10000, 0), (10000, 10000, 40), (10000, 10001, 0),
        (10001, 9000, 30), (9000, 7001, 0), (12345, 678, 60), (20000, 15000, 0),
        (20000, 20000, 20), (5000, 20000, 0), (20000, 19999, 0), (10000, 9999, 300),
        (3000, 2999, 700), (50000, 49999, 0), (20000, 3, 0),
    ]
    cases = []
    for i, (n1, n2, shift) in enumerate(specs):
        # Irwin-Hall of 3 draws in 0..1023: bell-shaped with some ties.
        x = recipe(1000 + i, n1, 1024, 3, 0)
        y = recipe(5000 + i, n2, 1024, 3, shift)
        cases.append(ks_case(f"large-{n1}x{n2}-shift{shift}", x, y))
    return cases


# --- one-sample distributions ----------------------------------------------


def kolmogn_branch(n, x, cdf):
    """The branch scipy's _kolmogn takes, for labelling."""
    if x <= 0.5 / n:
        return "support-low"
    if x >= 1.0:
        return "support-high"
    t = n * x
    if t <= 1.0:
        return "ruben-gambino-low"
    if t >= n - 1:
        return "ruben-gambino-high"
    if x >= 0.5:
        return "smirnov-x-ge-half"
    nx2 = t * x
    if n <= 140:
        return "dmtw" if nx2 <= 0.754693 else "pomeranz" if nx2 <= 4 else "smirnov-small-n"
    if not cdf and nx2 >= 370:
        return "zero"
    if not cdf and nx2 >= 2.2:
        return "smirnov"
    if nx2 >= 18:
        return "cdf-one"
    return "dmtw" if n <= 100000 and n * x ** 1.5 <= 1.4 else "pelz-good"


def kstwo_cases():
    cases = []
    ns = [1, 2, 3, 5, 10, 37, 100, 140, 141, 200, 1000, 2345, 5000, 10000, 20000]
    targets = [0.1, 0.3, 0.6, 0.754, 0.76, 1.0, 2.0, 3.9, 4.1, 8.0, 1.5, 2.19, 2.21, 5.0, 30.0, 200.0, 400.0]
    for n in ns:
        ds = {0.4 / n, 0.75 / n, 1.0 / n, 1.3 / n, 0.5, 0.7, 1.0 - 1.5 / n, 1.0 - 0.5 / n}
        ds |= {math.sqrt(t / n) for t in targets}
        ds |= {(1.4 / n) ** (2 / 3) * c for c in (0.9, 1.1)}
        for d in sorted(v for v in ds if 0 < v <= 1.0):
            cases.append({
                "n": n,
                "d": f(d),
                "branch": kolmogn_branch(n, d, cdf=False),
                "sf": f(stats.kstwo.sf(d, n)),
                "cdf": f(stats.kstwo.cdf(d, n)),
            })
    return cases


def smirnov_cases():
    cases = []
    for n in [1, 2, 5, 10, 11, 50, 100, 1000, 10000, 20000, 2_000_000]:
        ds = {0.0, 1e-4, 0.5 / n, 1.0 / n, 1.5 / n, 2.5 / n, 0.01, 0.015, 0.025, 0.1, 0.3, 0.5, 0.9, 1.0 - 1.0 / n, 1.0}
        ds |= {0.4 / math.sqrt(n), 1.2 / math.sqrt(n), 3.0 / math.sqrt(n)}
        for d in sorted(v for v in ds if 0 <= v <= 1):
            cases.append({"n": n, "d": f(d), "sf": f(special.smirnov(n, d))})
    return cases


def binom_cases():
    pairs = [(n, k) for n in range(0, 41) for k in range(0, n + 1)]
    for n in [100, 169, 170, 171, 172, 200, 500, 1000, 1029, 1030, 1100, 5000, 20000, 40000]:
        for k in [0, 1, 5, 19, 20, 21, 50, n // 3, n // 2, n - 20, n - 19, n]:
            if 0 <= k <= n:
                pairs.append((n, k))
    return [{"n": n, "k": k, "value": f(special.binom(n, k))} for n, k in sorted(set(pairs))]


def main():
    rng = np.random.default_rng(SEED)
    cases = random_pair_cases(rng, 230)
    cases += structured_cases(rng)
    cases += one_sided_boundary_cases(rng)
    cases += large_cases()
    doc = {
        "header": {
            "generator": "tools/oracle/ks_vectors.py",
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
            "seed": SEED,
            "sample_encoding": "value = integer / scale; recipe = splitmix64 stream (see generator)",
            "float_encoding": "Python repr strings",
        },
        "ks_2samp": cases,
        "kstwo": kstwo_cases(),
        "smirnov": smirnov_cases(),
        "binom": binom_cases(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}: {len(cases)} ks_2samp cases x 9, {len(doc['kstwo'])} kstwo, "
          f"{len(doc['smirnov'])} smirnov, {len(doc['binom'])} binom")


if __name__ == "__main__":
    main()
