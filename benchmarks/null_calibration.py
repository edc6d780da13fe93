"""Calibration of the held-out permutation p-values at the default grid size, by simulation.

    python benchmarks/null_calibration.py
    python benchmarks/null_calibration.py --quick    # 10 data sets per case: a smoke run

200 seeded data sets of 15 cells (3 methods x 5 tasks), 3 features; gains uninformative (independent
noise) or informative (gain = x_1 + 0.5 noise). For leave-one-cell-out and leave-one-method-out, the
ridge's nested-CV held-out Spearman is tested against the exact grid null (all 719 non-identity
permutations of methods and tasks; bongain.fit.compare.heldout_permutation_test). Prints the median
held-out Spearman, the fraction of p-values <= 0.05 and the Kolmogorov-Smirnov p-value against uniform.
"""

from __future__ import annotations

import argparse

import numpy as np
import polars as pl
from scipy import stats

from bongain.fit import compare, null


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 data sets per case (numbers too noisy to read)")
    sets = 10 if ap.parse_args(argv).quick else 200
    keys = [(f"me{i}", f"t{j}") for i in range(3) for j in range(5)]
    table = pl.DataFrame({"model": ["m"] * 15, "method": [k[0] for k in keys], "task": [k[1] for k in keys]})
    perms = null.null_permutations(table, n_perm=999, seed=0)
    methods = table["method"].to_numpy()
    schemes = {
        "leave_one_cell_out": [(str(i), np.array([i])) for i in range(15)],
        "leave_one_method_out": [(m, np.flatnonzero(methods == m)) for m in np.unique(methods)],
    }
    print(
        f"grid 3 x 5, {perms.index.shape[0]} permutations ({perms.kind}, exact={perms.exact}), seed 2024, "
        f"{sets} data sets per case"
    )
    for scheme, folds in schemes.items():
        for informative in (False, True):
            rng = np.random.default_rng(2024)
            ps, rhos = [], []
            for _ in range(sets):
                X = rng.normal(size=(15, 3))
                noise = rng.normal(size=15)
                y = X[:, 0] + 0.5 * noise if informative else noise
                res = compare.heldout_permutation_test(X, y, folds, perms.index)
                ps.append(res.p_value)
                rhos.append(res.spearman)
            ps_a = np.array(ps)
            print(
                f"{scheme}, {'informative' if informative else 'uninformative'}: median held-out Spearman "
                f"{np.median(rhos):.3f}; P(p <= 0.05) = {np.mean(ps_a <= 0.05):.3f}; "
                f"KS p vs uniform = {stats.kstest(ps_a, 'uniform').pvalue:.3f}"
            )


if __name__ == "__main__":
    main()
