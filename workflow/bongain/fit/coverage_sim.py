"""Coverage of the grid-respecting bootstrap CIs, measured by simulation.

The cells of a grid share tasks and methods. We simulate a separately exchangeable grid: for methods i
and tasks j, a feature ``x_ij = a_i + b_j + e_ij`` and a gain ``y_ij = c_i + d_j + beta * x_ij + u_ij``
with independent standard-normal method effects (a, c), task effects (b, d) and cell noise (e, u), each
scaled by ``effect_sd`` / ``noise_sd``. The target of the CI is the Spearman of x with y over the whole
population of methods and tasks, approximated on one large grid (``population`` x ``population``). Each
simulated data set is an ``n_methods x n_tasks`` grid; its Spearman gets the percentile interval of
:func:`bongain.fit.compare.cluster_bootstrap` (and, for comparison, of resampling cells), and coverage
is the fraction of data sets whose interval contains the population value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from bongain.fit.compare import batch_metrics, cluster_bootstrap, percentile_ci


@dataclass(frozen=True)
class CoverageResult:
    n_methods: int
    n_tasks: int
    n_sims: int
    level: float
    target: float  # population Spearman
    coverage_cluster: float
    coverage_cells: float
    mean_width_cluster: float
    mean_width_cells: float


def _draw(
    rng: np.random.Generator, n_m: int, n_t: int, beta: float, effect_sd: float, noise_sd: float
) -> tuple[np.ndarray, np.ndarray]:
    a, c = rng.normal(0, effect_sd, (2, n_m, 1))
    b, d = rng.normal(0, effect_sd, (2, 1, n_t))
    e, u = rng.normal(0, noise_sd, (2, n_m, n_t))
    x = a + b + e
    y = c + d + beta * x + u
    return x.ravel(), y.ravel()


def simulate_ci_coverage(
    n_methods: int = 3,
    n_tasks: int = 5,
    n_sims: int = 400,
    n_boot: int = 500,
    level: float = 0.95,
    beta: float = 0.5,
    effect_sd: float = 1.0,
    noise_sd: float = 1.0,
    population: int = 600,
    seed: int = 0,
) -> CoverageResult:
    """Coverage of the cluster-bootstrap and cell-bootstrap percentile CIs of the Spearman (seeded)."""
    rng = np.random.default_rng(seed)
    xp, yp = _draw(rng, population, population, beta, effect_sd, noise_sd)
    target = float(stats.spearmanr(xp, yp).statistic)
    table = pl.DataFrame(
        {
            "model": ["m"] * (n_methods * n_tasks),
            "method": [f"me{i}" for i in range(n_methods) for _ in range(n_tasks)],
            "task": [f"t{j:03d}" for _ in range(n_methods) for j in range(n_tasks)],
        }
    )
    n = n_methods * n_tasks
    hit_cl = []
    hit_ce = []
    w_cl = []
    w_ce = []
    for s in range(n_sims):
        x, y = _draw(rng, n_methods, n_tasks, beta, effect_sd, noise_sd)
        boot = cluster_bootstrap(table, n_boot, seed=seed * 100_003 + s)
        idx = np.asarray(boot.resamples)
        lo, hi = percentile_ci(batch_metrics(x[idx], y[idx])[0], level)
        hit_cl.append(lo <= target <= hi)
        w_cl.append(hi - lo)
        idx2 = rng.integers(0, n, size=(n_boot, n))
        lo2, hi2 = percentile_ci(batch_metrics(x[idx2], y[idx2])[0], level)
        hit_ce.append(lo2 <= target <= hi2)
        w_ce.append(hi2 - lo2)
    return CoverageResult(
        n_methods=n_methods,
        n_tasks=n_tasks,
        n_sims=n_sims,
        level=level,
        target=target,
        coverage_cluster=float(np.mean(hit_cl)),
        coverage_cells=float(np.mean(hit_ce)),
        mean_width_cluster=float(np.nanmean(w_cl)),
        mean_width_cells=float(np.nanmean(w_ce)),
    )
