#!/usr/bin/env python3
"""Reference p-values for weir's judge, computed once with scipy and kept as data
(tests/data/judge_scipy.json), so the tests need no scipy.

    pip install scipy && python3 tests/data/make_judge_scipy.py

Mann-Whitney: scipy.stats.mannwhitneyu(canary, baseline, alternative="two-sided",
method="asymptotic", use_continuity=True) on Kayenta's vectors and on seeded samples
(continuous, heavily tied, shifted, small and large). Fisher: scipy.stats.fisher_exact on
2x2 tables [[canary successes, canary failures], [baseline successes, baseline
failures]] for each alternative, with counts from units to millions.
"""
import json
import os

import numpy as np
import scipy
from scipy.stats import fisher_exact, mannwhitneyu

here = os.path.dirname(os.path.abspath(__file__))
vectors = json.load(open(os.path.join(here, "kayenta_vectors.json")))
rng = np.random.default_rng(20261202)

mw = []


def add_mw(name, canary, baseline):
    canary = [float(v) for v in canary]
    baseline = [float(v) for v in baseline]
    p = mannwhitneyu(canary, baseline, alternative="two-sided", method="asymptotic", use_continuity=True).pvalue
    mw.append({"name": name, "canary": canary, "baseline": baseline, "p_value": float(p)})


for case in vectors["mann_whitney"] + vectors["classifier"]:
    c = case.get("canary", case.get("x"))
    b = case.get("baseline", case.get("y"))
    if c and b and len(set(c + b)) > 1:
        add_mw("kayenta: " + case["name"], c, b)

for n, m in [(5, 7), (20, 20), (50, 60), (200, 180), (1000, 1000)]:
    add_mw(f"normal same {n}x{m}", rng.normal(10, 2, n), rng.normal(10, 2, m))
    add_mw(f"normal shifted {n}x{m}", rng.normal(10.5, 2, n), rng.normal(10, 2, m))
    add_mw(f"lognormal {n}x{m}", rng.lognormal(1, 0.5, n), rng.lognormal(1.05, 0.5, m))
    add_mw(f"ties {n}x{m}", rng.integers(0, 5, n), rng.integers(0, 6, m))
add_mw("far apart 300x300 (tiny p)", rng.normal(20, 1, 300), rng.normal(10, 1, 300))
add_mw("sparse errors 100x100", rng.poisson(0.05, 100), rng.poisson(0.01, 100))

fisher = []
tables = [
    (3, 1, 1, 3), (0, 10, 5, 5), (10, 0, 0, 10), (1, 9, 11, 3), (7, 12, 0, 5),
    (9890, 110, 9950, 50), (9950, 50, 9950, 50), (9990, 10, 9999, 1), (4990, 10, 4995, 5),
    (980, 20, 995, 5), (100, 900, 130, 870), (50, 50, 50, 50), (1, 0, 0, 1),
    (999000, 1000, 999500, 500), (2999900, 100, 2999950, 50), (1000000, 3000, 1000000, 2900),
    (5_000_000, 5_200, 5_000_000, 5_000), (123456, 654, 234567, 1234), (20, 3000000, 40, 3000000),
    (1500000, 1500000, 1501000, 1499000), (9990000, 10000, 9991000, 9000),
]
for (a, b, c, d) in tables:
    for alt in ["less", "greater", "two-sided"]:
        p = fisher_exact([[a, b], [c, d]], alternative=alt).pvalue
        fisher.append({"table": [a, b, c, d], "alternative": alt, "p_value": float(p)})

out = {
    "generated_by": "tests/data/make_judge_scipy.py with scipy " + scipy.__version__ + ", numpy " + np.__version__,
    "mann_whitney": mw,
    "fisher": fisher,
}
with open(os.path.join(here, "judge_scipy.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"{len(mw)} Mann-Whitney p-values, {len(fisher)} Fisher p-values")
