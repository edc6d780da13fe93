"""Predict the whole gain curve gain@k = bon_at_k(k) - pass_at_k(1), k = 1..K, with jackknife+ intervals.

One ridge per k: a multi-output :class:`sklearn.linear_model.RidgeCV` with ``alpha_per_target=True``
(each k gets its own penalty from the efficient leave-one-out CV on the training cells), on features
standardised with the training cells' statistics (same column handling as
:func:`bongain.fit.ridge.fit_ridge`).
At k = N the target is the scalar ``gain`` of the cross-cell fit.

Prediction intervals are jackknife+ (Barber, Candes, Ramdas & Tibshirani 2021) over cells: with the
leave-one-out fits mu_{-i} and residuals R_i = |y_i - mu_{-i}(x_i)| of the n training cells, the interval
for a new cell x is [q-_alpha{mu_{-i}(x) - R_i}, q+_{1-alpha}{mu_{-i}(x) + R_i}] where q+ is the
ceil((1-alpha)(n+1))-th smallest value and q- the floor(alpha(n+1))-th smallest (+-inf when the rank is
out of 1..n). Guaranteed coverage is 1 - 2 alpha; in practice it is close to 1 - alpha.

* Screened cells: point prediction from the fit on all evaluated cells, interval from the n LOCO fits.
* Evaluated cells: point prediction from the fit without the cell (LOCO) and an interval built from
  the other n - 1 cells only (leave-two-out fits), so its empirical coverage on held-out cells is an
  honest check: it is written per k to ``fit_curve_coverage``, and per cell (each cell counts once:
  the mean over its k >= 2 of being covered, and whether its whole curve is covered).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.linear_model import RidgeCV

from bongain.cellstats.gains import TARGETS
from bongain.constants import CELL_KEYS
from bongain.fit.ridge import DEFAULT_ALPHAS
from bongain.fit.table import cell_table, design_matrix, usable_columns
from bongain.io import conform
from bongain.schemas import FIT_CURVE, FIT_CURVE_COVERAGE

DEFAULT_INTERVAL_LEVEL = 0.9


@dataclass(frozen=True)
class MultiRidge:
    """Ridge with one penalty per target column, on standardised features."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (p, K); rows of dropped columns are NaN
    intercept: np.ndarray  # (K,)
    alpha: np.ndarray  # (K,); NaN when no column was usable

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        kept = np.all(np.isfinite(self.coef), axis=1)
        z = (X[:, kept] - self.mean[kept]) / self.scale[kept]
        z = np.where(np.isfinite(z), z, 0.0)
        return self.intercept[None, :] + z @ self.coef[kept]


def fit_multi(
    X: np.ndarray, Y: np.ndarray, alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS
) -> MultiRidge:
    """Standardise ``X`` with its own statistics and fit one LOO-CV ridge per column of ``Y``."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    n, p = X.shape
    K = Y.shape[1]
    if n < 2:
        raise ValueError(f"fit_multi needs at least 2 training rows, got {n}")
    kept = usable_columns(X)
    mean = np.full(p, np.nan)
    scale = np.full(p, np.nan)
    coef = np.full((p, K), np.nan)
    if not kept.any():
        return MultiRidge(mean, scale, coef, Y.mean(axis=0), np.full(K, np.nan))
    Xk = X[:, kept]
    mean[kept] = Xk.mean(axis=0)
    scale[kept] = Xk.std(axis=0)
    Z = (Xk - mean[kept]) / scale[kept]
    model = RidgeCV(alphas=np.asarray(alphas, dtype=np.float64), fit_intercept=True, alpha_per_target=True)
    model.fit(Z, Y)
    coef[kept] = np.asarray(model.coef_).reshape(K, -1).T
    alpha = np.broadcast_to(np.asarray(model.alpha_, dtype=np.float64), (K,)).copy()
    return MultiRidge(mean, scale, coef, np.asarray(model.intercept_, dtype=np.float64).reshape(K), alpha)


def _order_stat(values: np.ndarray, rank: int, axis: int = 0) -> np.ndarray:
    """The ``rank``-th smallest (1-based) along ``axis``; -inf for rank < 1, +inf for rank > n."""
    n = values.shape[axis]
    shape = np.delete(np.array(values.shape), axis)
    if rank < 1:
        return np.full(shape, -np.inf)
    if rank > n:
        return np.full(shape, np.inf)
    return np.sort(values, axis=axis).take(rank - 1, axis=axis)


def jackknife_plus(
    loo_at_x: np.ndarray, residuals: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Jackknife+ interval(s): ``loo_at_x`` (n, ...) = mu_{-i}(x), ``residuals`` (n, ...) = R_i."""
    loo_at_x = np.asarray(loo_at_x, dtype=np.float64)
    residuals = np.asarray(residuals, dtype=np.float64)
    n = loo_at_x.shape[0]
    alpha = 1.0 - level
    hi_rank = math.ceil(level * (n + 1) - 1e-9)
    lo_rank = math.floor(alpha * (n + 1) + 1e-9)
    lo = _order_stat(loo_at_x - residuals, lo_rank)
    hi = _order_stat(loo_at_x + residuals, hi_rank)
    return lo, hi


def curve_targets(
    features: pl.DataFrame, gains: pl.DataFrame, target: str = "bon"
) -> tuple[pl.DataFrame, np.ndarray]:
    """(cell table sorted by cell, Y) with Y[c, k-1] = <target>_at_k(k) - pass_at_k(1), k = 1..K
    (``target``: ``fit.target``, default ``bon``: bon_at_k).

    K is the smallest N over the cells (all cells share N in a normal run).
    """
    table = cell_table(features, gains, target)
    column = TARGETS[target]
    g = gains.join(table.select(CELL_KEYS), on=CELL_KEYS, how="semi").sort([*CELL_KEYS, "k"])
    p1 = g.filter(pl.col("k") == 1).select([*CELL_KEYS, pl.col("pass_at_k").alias("_p1")])
    g = g.join(p1, on=CELL_KEYS, how="left").with_columns((pl.col(column) - pl.col("_p1")).alias("_gk"))
    K = int(g.group_by(CELL_KEYS).agg(pl.col("k").max())["k"].min())
    wide = (
        g.filter(pl.col("k") <= K).group_by(CELL_KEYS, maintain_order=True).agg(pl.col("_gk")).sort(CELL_KEYS)
    )
    Y = np.array(wide["_gk"].to_list(), dtype=np.float64)
    if Y.shape != (table.height, K) or not np.all(np.isfinite(Y)):
        raise ValueError(f"gains: every cell needs finite {column} / pass_at_k rows for k = 1..K")
    return table, Y


@dataclass(frozen=True)
class CurveResult:
    curve: pl.DataFrame  # fit_curve
    coverage: pl.DataFrame  # fit_curve_coverage
    screened_pred: np.ndarray  # (n_screened, K)
    screened_lo: np.ndarray
    screened_hi: np.ndarray


def predict_curves(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    feature_cols: Sequence[str],
    screened: pl.DataFrame | None = None,
    level: float = DEFAULT_INTERVAL_LEVEL,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
    *,
    target: str = "bon",
) -> CurveResult:
    """Held-out gain-curve predictions with jackknife+ intervals for evaluated and screened cells."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    table, Y = curve_targets(features, gains, target)
    X = design_matrix(table, feature_cols)
    n, K = Y.shape
    ks = np.arange(1, K + 1)
    # LOCO and leave-two-out fits on evaluated cells.
    loco_pred = np.empty((n, K))
    loco_models: list[MultiRidge] = []
    for j in range(n):
        train = np.arange(n) != j
        m = fit_multi(X[train], Y[train], alphas)
        loco_models.append(m)
        loco_pred[j] = m.predict(X[j : j + 1])[0]
    lo = np.full((n, K), np.nan)
    hi = np.full((n, K), np.nan)
    if n >= 3:
        for j in range(n):
            others = [i for i in range(n) if i != j]
            at_x = np.empty((n - 1, K))
            resid = np.empty((n - 1, K))
            for r, i in enumerate(others):
                train = np.ones(n, dtype=bool)
                train[[i, j]] = False
                m = fit_multi(X[train], Y[train], alphas)
                both = m.predict(X[[i, j]])
                resid[r] = np.abs(Y[i] - both[0])
                at_x[r] = both[1]
            lo[j], hi[j] = jackknife_plus(at_x, resid, level)
    covered = (lo <= Y + 1e-12) & (Y <= hi + 1e-12)
    rows = []
    for j, (model, method, task) in enumerate(table.select(CELL_KEYS).rows()):
        for kk in range(K):
            rows.append(
                {
                    "model": model,
                    "method": method,
                    "task": task,
                    "status": "evaluated",
                    "k": int(ks[kk]),
                    "gain_k": float(Y[j, kk]),
                    "pred": float(loco_pred[j, kk]),
                    "pred_lo": float(lo[j, kk]),
                    "pred_hi": float(hi[j, kk]),
                    "level": level,
                    "covered": bool(covered[j, kk]) if n >= 3 else None,
                }
            )
    # Screened cells.
    n_s = 0 if screened is None else screened.height
    s_pred = np.empty((n_s, K))
    s_lo = np.empty((n_s, K))
    s_hi = np.empty((n_s, K))
    if n_s:
        assert screened is not None
        scr = screened.sort(CELL_KEYS)
        Xs = design_matrix(scr, feature_cols)
        full = fit_multi(X, Y, alphas)
        s_pred = full.predict(Xs)
        resid_loo = np.abs(Y - loco_pred)  # (n, K)
        at_x = np.stack([m.predict(Xs) for m in loco_models])  # (n, n_s, K)
        s_lo, s_hi = jackknife_plus(at_x, resid_loo[:, None, :], level)
        for j, (model, method, task) in enumerate(scr.select(CELL_KEYS).rows()):
            for kk in range(K):
                rows.append(
                    {
                        "model": model,
                        "method": method,
                        "task": task,
                        "status": "screened",
                        "k": int(ks[kk]),
                        "gain_k": None,
                        "pred": float(s_pred[j, kk]),
                        "pred_lo": float(s_lo[j, kk]),
                        "pred_hi": float(s_hi[j, kk]),
                        "level": level,
                        "covered": None,
                    }
                )
    curve = conform(pl.DataFrame(rows, schema=FIT_CURVE.polars_schema), "fit_curve")
    cov_rows = []
    width = hi - lo
    for kk in range(K):
        cov_rows.append(_coverage_row("k", int(ks[kk]), covered[:, kk], width[:, kk], level, n >= 3))
    sel = ks >= 2
    # Per cell, not per (cell, k) pair: the k values of one cell share its features and its test prompts,
    # so its pairs are strongly dependent. Each cell counts once: the fraction of its k >= 2 covered,
    # and (whole_curve) whether every k >= 2 is covered.
    per_cell = covered[:, sel].mean(axis=1) if sel.any() else np.zeros(n)
    cell_width = width[:, sel].mean(axis=1) if sel.any() else np.zeros(n)
    cov_rows.append(_coverage_row("per_cell_k_ge_2", None, per_cell, cell_width, level, n >= 3 and sel.any()))
    whole = covered[:, sel].all(axis=1) if sel.any() else np.zeros(n, dtype=bool)
    cov_rows.append(_coverage_row("whole_curve", None, whole, cell_width, level, n >= 3 and sel.any()))
    coverage = conform(pl.DataFrame(cov_rows, schema=FIT_CURVE_COVERAGE.polars_schema), "fit_curve_coverage")
    return CurveResult(curve, coverage, s_pred, s_lo, s_hi)


def _coverage_row(
    scope: str, k: int | None, covered: np.ndarray, width: np.ndarray, level: float, ok: bool
) -> dict[str, object]:
    return {
        "scope": scope,
        "k": k,
        "n_cells": int(covered.size),
        "level": level,
        "coverage": float(np.mean(covered)) if ok and covered.size else float("nan"),
        "mean_width": float(np.mean(width)) if ok and width.size else float("nan"),
    }
