"""Sample-size advice for the compact predictor from measured variance, checked by subsampling.

Model. The compact prediction ``y_hat = b0 + sum_j beta_j f_j`` of a cell is computed from n validation
prompts x N samples. Its sampling variance is decomposed as

    Var(y_hat(n, N)) = s_b^2 / n + s_w^2 / (n N)

a between-prompt part (prompts differ; shrinks with n) and a within-prompt part (the N samples of a
prompt are a random draw; shrinks with n x N). Both are measured per cell from its validation samples
and grades, with the OLS coefficients held fixed:

* ``V_tot``: variance of y_hat over ``n_boot`` resamples of the prompts (with replacement) at the
  measured (n0, N0), so ``n0 V_tot = s_b^2 + s_w^2 / N0``;
* ``V_w``: variance of y_hat over ``n_boot_within`` resamples of the samples *within* each prompt (with
  replacement; prompts fixed), times N0 / (N0 - 1) (the bootstrap's variance of a mean of N0 draws is
  (N0 - 1) / N0 of the sampling variance), so ``s_w^2 = n0 N0 V_w``;
* ``s_b^2 = max(0, n0 V_tot - s_w^2 / N0)``.

The predicted error at (n, N) is the root mean over evaluated cells of that variance (``predicted_sd``)
and 1.96 times it (``predicted_err95``, a normal 95% half-width). Features are mean-type (mean over
prompts of a per-prompt value) or spreads (population SD over prompts); both are recomputed from the
per-prompt values of :func:`bongain.cellstats.features.prompt_values`. Per-prompt values of non-linear
features (modal share, 1 / (c + 1)) do not scale exactly as 1 / N, and the feature's population value
itself depends on N; the check below measures how far that matters.

Check by subsampling (independent of the bootstrap above: disjoint splits, no resampling). For each
evaluated cell and ``n_splits`` seeded random splits: (n/2, N) two disjoint halves of the prompts,
observed variance = (y_A - y_B)^2 / 2; (n/4, N) four disjoint quarters, their sample variance (ddof 1);
(n/2, N/2) two disjoint halves of the prompts, each scored on a different random half of every
prompt's samples, (y_A - y_B)^2 / 2. Each is unbiased for Var(y_hat) at that size under i.i.d. prompts.
Observed and predicted variances are averaged over cells (root of the mean). A check needs at least
2 prompts per part (and N >= 2 for N/2); otherwise its row is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from bongain.cellstats.features import (
    GRADE_COLUMNS,
    SAMPLE_COLUMNS,
    SPREAD_OF,
    answer_codes,
    join_per_sample,
    prompt_values,
)
from bongain.io import conform
from bongain.schemas import FIT_SAMPLE_SIZE, FIT_SAMPLE_SIZE_CHECK

Z95 = 1.959963984540054

#: (label, prompt fraction denominator, sample fraction denominator)
CHECKS: tuple[tuple[str, int, int], ...] = (("n/2, N", 2, 1), ("n/4, N", 4, 1), ("n/2, N/2", 2, 2))


@dataclass(frozen=True)
class CellData:
    """One cell's validation samples joined with their grades, sorted by (prompt_id, sample_idx)."""

    key: tuple[str, str, str]
    df: pl.DataFrame
    n_samples: int

    @property
    def n_prompts(self) -> int:
        return self.df.height // self.n_samples


def cell_data(key: tuple[str, str, str], samples: pl.DataFrame, grades: pl.DataFrame) -> CellData:
    """Validate and join one cell's validation SAMPLES and GRADES tables."""
    df, n = join_per_sample(samples, grades, ("samples", "grades"), (SAMPLE_COLUMNS, GRADE_COLUMNS))
    return CellData(key, df, n)


def prompt_feature_matrix(
    cell: CellData, features: Sequence[str], rows: np.ndarray | None = None
) -> np.ndarray:
    """Per-prompt values [P, |features|] behind ``features`` (a spread's underlying per-prompt value).

    ``rows`` (P x m row indices into the cell's frame, each row within its own prompt) selects or
    resamples m samples per prompt; None uses all N.
    """
    if rows is None:
        df, m = cell.df, cell.n_samples
    else:
        df, m = cell.df[rows.ravel()], rows.shape[1]
    codes, cc = answer_codes(df, m)
    vals = prompt_values(df, m, codes, cc)
    unknown = [f for f in features if SPREAD_OF.get(f, f) not in vals]
    if unknown:
        raise ValueError(f"no per-prompt values for compact feature(s) {unknown}")
    return np.column_stack([vals[SPREAD_OF.get(f, f)] for f in features]).astype(np.float64)


def predict_subsets(
    V: np.ndarray, idx: np.ndarray, features: Sequence[str], coefs: Mapping[str, float]
) -> np.ndarray:
    """The compact prediction (without intercept) on each prompt subset ``idx`` (R x m) of ``V``."""
    sub = V[idx]  # (R, m, S)
    out = np.zeros(idx.shape[0])
    for j, f in enumerate(features):
        g = sub[:, :, j].std(axis=1) if f in SPREAD_OF else sub[:, :, j].mean(axis=1)
        out = out + coefs[f] * g
    return out


@dataclass(frozen=True)
class VarianceParts:
    between: float  # s_b^2
    within: float  # s_w^2
    n_prompts: int
    n_samples: int

    def variance(self, n: float | np.ndarray, N: float | np.ndarray) -> np.ndarray:
        n = np.asarray(n, dtype=np.float64)
        N = np.asarray(N, dtype=np.float64)
        return self.between / n + self.within / (n * N)


def variance_parts(
    cell: CellData,
    features: Sequence[str],
    coefs: Mapping[str, float],
    rng: np.random.Generator,
    n_boot: int = 200,
    n_boot_within: int = 50,
) -> VarianceParts:
    """Measured between- and within-prompt variance of the compact prediction of one cell."""
    P, N = cell.n_prompts, cell.n_samples
    V = prompt_feature_matrix(cell, features)
    boot = predict_subsets(V, rng.integers(0, P, size=(n_boot, P)), features, coefs)
    v_tot = float(boot.var(ddof=1)) if n_boot > 1 else 0.0
    if N > 1:
        base = (np.arange(P) * N)[:, None]
        within = []
        all_prompts = np.arange(P)[None, :]
        for _ in range(n_boot_within):
            rows = base + rng.integers(0, N, size=(P, N))
            within.append(
                predict_subsets(prompt_feature_matrix(cell, features, rows), all_prompts, features, coefs)[0]
            )
        v_w = float(np.var(within, ddof=1)) * N / (N - 1)
    else:
        v_w = 0.0
    s_w = v_w * P * N
    s_b = max(0.0, P * v_tot - s_w / N)
    return VarianceParts(between=s_b, within=s_w, n_prompts=P, n_samples=N)


def observed_check(
    cell: CellData,
    features: Sequence[str],
    coefs: Mapping[str, float],
    n_parts: int,
    sample_div: int,
    rng: np.random.Generator,
    n_splits: int,
) -> tuple[float, int, int] | None:
    """(mean observed variance, prompts per part, samples per prompt) of one check; None if too small."""
    P, N = cell.n_prompts, cell.n_samples
    m = P // n_parts
    k = N // sample_div
    if m < 2 or k < 1 or (sample_div > 1 and N < 2):
        return None
    V = prompt_feature_matrix(cell, features) if sample_div == 1 else None
    obs = []
    for _ in range(n_splits):
        perm = rng.permutation(P)[: m * n_parts].reshape(n_parts, m)
        if sample_div == 1:
            assert V is not None
            y = predict_subsets(V, perm, features, coefs)
        else:
            order = np.argsort(rng.random((P, N)), axis=1)
            base = (np.arange(P) * N)[:, None]
            y = np.array(
                [
                    predict_subsets(
                        prompt_feature_matrix(
                            cell, features, base + np.sort(order[:, h * k : (h + 1) * k], axis=1)
                        ),
                        perm[h : h + 1],
                        features,
                        coefs,
                    )[0]
                    for h in range(n_parts)
                ]
            )
        obs.append(float(np.var(y, ddof=1)))
    return float(np.mean(obs)), m, k


def sample_size_tables(
    cells: Sequence[CellData],
    ols: pl.DataFrame,
    n_prompts_grid: Sequence[int],
    n_samples_grid: Sequence[int],
    bound_fn,  # (n, N) -> Hoeffding/McDiarmid worst-case bound
    delta: float,
    seed: int,
    n_boot: int = 200,
    n_boot_within: int = 50,
    n_splits: int = 50,
) -> tuple[pl.DataFrame, pl.DataFrame, list[VarianceParts]]:
    """(fit_sample_size, fit_sample_size_check, per-cell variance parts in ``cells`` order)."""
    coefs = {f: float(c) for f, c in zip(ols["feature"].to_list(), ols["coef"].to_list(), strict=True)}
    feats = [f for f in coefs if f != "(intercept)"]
    cells = sorted(cells, key=lambda c: c.key)
    rng = np.random.default_rng(seed)
    parts = [
        variance_parts(c, feats, coefs, rng, n_boot, n_boot_within)
        if feats
        else VarianceParts(0.0, 0.0, c.n_prompts, c.n_samples)
        for c in cells
    ]
    n_grid = sorted(set(n_prompts_grid) | {c.n_prompts for c in cells})
    N_grid = sorted(set(n_samples_grid) | {c.n_samples for c in cells})
    rows = []
    for N in N_grid:
        for n in n_grid:
            var = np.array([float(p.variance(n, N)) for p in parts]) if parts else np.array([np.nan])
            between = np.array([p.between / n for p in parts]) if parts else np.array([np.nan])
            sd = math.sqrt(float(np.mean(var)))
            rows.append(
                {
                    "n_prompts": n,
                    "n_samples": N,
                    "predicted_sd": sd,
                    "predicted_err95": Z95 * sd,
                    "between_share": float(np.sum(between) / np.sum(var))
                    if np.sum(var) > 0
                    else float("nan"),
                    "delta": delta,
                    "bound": float(bound_fn(n, N)),
                    "n_cells": len(parts),
                }
            )
    size = conform(pl.DataFrame(rows, schema=FIT_SAMPLE_SIZE.polars_schema), "fit_sample_size")
    check_rows = []
    for label, n_parts, sample_div in CHECKS:
        obs, pred, ms, ks = [], [], [], []
        for c, p in zip(cells, parts, strict=True):
            r = observed_check(c, feats, coefs, n_parts, sample_div, rng, n_splits) if feats else None
            if r is None:
                continue
            obs.append(r[0])
            pred.append(float(p.variance(r[1], r[2])))
            ms.append(r[1])
            ks.append(r[2])
        o = math.sqrt(float(np.mean(obs))) if obs else float("nan")
        q = math.sqrt(float(np.mean(pred))) if pred else float("nan")
        check_rows.append(
            {
                "check": label,
                "n_cells": len(obs),
                "n_prompts": int(np.median(ms)) if ms else None,
                "n_samples": int(np.median(ks)) if ks else None,
                "n_splits": n_splits,
                "predicted_sd": q,
                "observed_sd": o,
                "ratio": q / o if obs and o > 0 else float("nan"),
            }
        )
    check = conform(
        pl.DataFrame(check_rows, schema=FIT_SAMPLE_SIZE_CHECK.polars_schema), "fit_sample_size_check"
    )
    return size, check, parts
