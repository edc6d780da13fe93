"""Grouped evaluation schemes, the comparison of predictor sets, and bootstrap CIs of the metrics.

Beyond LOCO, :func:`compare_predictors` evaluates every predictor set (baseline, fit.features, all,
strict core, core + entropy) under grouped schemes (leave-one-cell/task/method/model-out) with nested CV
and percentile-bootstrap CIs of the metrics; see docs/statistics.md. Each predictor is the ridge of
:mod:`bongain.fit.ridge` on the cell table of :mod:`bongain.fit.table`.

Cells are processed in (model, method, task) order; the only randomness (bootstrap CIs of the metrics)
comes from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from bongain.constants import CELL_KEYS
from bongain.fit.ridge import DEFAULT_ALPHAS, fit_ridge, rank_metrics
from bongain.fit.table import BASELINE_COLUMNS, FEATURE_COLUMNS, cell_table, design_matrix
from bongain.io import conform
from bongain.schemas import FIT_COMPARISON

#: The paper's strict core and core + entropy.
STRICT_CORE: list[str] = ["agreement_spread", "first_correct_pos", "length_var"]
CORE_ENTROPY: list[str] = [*STRICT_CORE, "entropy_mean"]

#: Evaluation scheme -> the cell key whose levels are held out together (None: every cell alone).
SCHEMES: dict[str, str | None] = {
    "leave_one_cell_out": None,
    "leave_one_task_out": "task",
    "leave_one_method_out": "method",
    "leave_one_model_out": "model",
}

DEFAULT_N_BOOT = 1000
DEFAULT_CI_LEVEL = 0.95
DEFAULT_SEED = 0


def predictor_sets(configured: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Predictor name -> its feature columns, in report order.

    ``ridge`` is the configured feature list (``fit.features``; all features when unset), ``all`` every
    feature column, ``core`` the strict core, ``core_entropy`` the core plus ``entropy_mean``.
    """
    return {
        "baseline": list(BASELINE_COLUMNS),
        "ridge": list(FEATURE_COLUMNS if configured is None else configured),
        "all": list(FEATURE_COLUMNS),
        "core": list(STRICT_CORE),
        "core_entropy": list(CORE_ENTROPY),
    }


def scheme_folds(table: pl.DataFrame, scheme: str) -> list[tuple[str, np.ndarray]] | None:
    """The held-out folds of ``scheme`` as (group label, row indices), in sorted label order.

    None when the scheme is not applicable: fewer than 2 groups (e.g. leave-one-model-out with one
    model) or a fold that would leave fewer than 2 training cells.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown evaluation scheme {scheme!r}; known: {list(SCHEMES)}")
    key = SCHEMES[scheme]
    n = table.height
    if key is None:
        labels = [
            f"{m}/{me}/{t}" for m, me, t in zip(table["model"], table["method"], table["task"], strict=True)
        ]
    else:
        labels = table[key].cast(pl.String).to_list()
    levels = sorted(set(labels))
    if len(levels) < 2:
        return None
    arr = np.asarray(labels, dtype=object)
    folds = [(g, np.flatnonzero(arr == g)) for g in levels]
    if any(n - idx.size < 2 for _, idx in folds):
        return None
    return folds


def grouped_predict(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[str, np.ndarray]],
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions and the penalty used for each row.

    Each fold's rows are predicted by :func:`fit_ridge` on the other rows only: standardisation,
    dropped columns and the penalty (inner LOO CV = the nested CV) never see the held-out group.
    """
    n = y.shape[0]
    pred = np.full(n, np.nan)
    alpha = np.full(n, np.nan)
    for _, idx in folds:
        train = np.ones(n, dtype=bool)
        train[idx] = False
        model = fit_ridge(X[train], y[train], alphas)
        pred[idx] = model.predict(X[idx])
        alpha[idx] = model.alpha
    return pred, alpha


def _ranks(a: np.ndarray) -> np.ndarray:
    return stats.rankdata(a, axis=-1, method="average")


def _rowwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    num = (a * b).sum(axis=-1)
    scale = np.maximum(np.abs(a).max(axis=-1), 1e-300) * np.maximum(np.abs(b).max(axis=-1), 1e-300)
    ok = den > 1e-12 * scale
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def batch_metrics(pred: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spearman, Kendall tau-b and MAE of each row of ``pred`` (B x n) against the same row of ``actual``.

    Vectorised equivalents of :func:`rank_metrics` (NaN correlation for a constant row).
    """
    pred = np.atleast_2d(np.asarray(pred, dtype=np.float64))
    actual = np.atleast_2d(np.asarray(actual, dtype=np.float64))
    mae = np.mean(np.abs(pred - actual), axis=-1)
    rho = _rowwise_corr(_ranks(pred), _ranks(actual))
    sp = np.sign(pred[:, :, None] - pred[:, None, :])
    sa = np.sign(actual[:, :, None] - actual[:, None, :])
    n = pred.shape[1]
    n0 = n * (n - 1) / 2.0
    concord = (sp * sa).sum(axis=(1, 2)) / 2.0
    ties_p = ((sp == 0).sum(axis=(1, 2)) - n) / 2.0
    ties_a = ((sa == 0).sum(axis=(1, 2)) - n) / 2.0
    den = np.sqrt((n0 - ties_p) * (n0 - ties_a))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(den > 0, concord / np.where(den > 0, den, 1.0), np.nan)
    return rho, tau, mae


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` resamples (with replacement) of ``n`` cells: a (n_boot x n) index matrix."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite ``values`` (NaN, NaN when none is finite)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    q = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(v, [q, 100.0 - q])
    return float(lo), float(hi)


def bootstrap_metric_cis(
    pred: np.ndarray, actual: np.ndarray, idx: np.ndarray, level: float
) -> dict[str, tuple[float, float]]:
    """Percentile CIs of Spearman / Kendall / MAE over the cell resamples ``idx`` (B x n).

    The held-out predictions are fixed; only which cells are scored is resampled.
    """
    rho, tau, mae = batch_metrics(np.asarray(pred)[idx], np.asarray(actual)[idx])
    return {
        "spearman": percentile_ci(rho, level),
        "kendall": percentile_ci(tau, level),
        "mae": percentile_ci(mae, level),
    }


@dataclass(frozen=True)
class ComparisonSettings:
    n_boot: int = DEFAULT_N_BOOT
    ci_level: float = DEFAULT_CI_LEVEL
    seed: int = DEFAULT_SEED


def compare_predictors(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    configured: Sequence[str] | None = None,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
    settings: ComparisonSettings = ComparisonSettings(),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fit_comparison, fit_heldout): every predictor set under every applicable evaluation scheme.

    One bootstrap index matrix (seeded) is shared by every scheme and predictor, so their CIs are
    paired.
    """
    table = cell_table(features, gains)
    y = table["gain"].to_numpy().astype(np.float64)
    idx = bootstrap_indices(table.height, settings.n_boot, settings.seed)
    comp_rows: list[dict[str, object]] = []
    held: list[pl.DataFrame] = []
    for scheme in SCHEMES:
        folds = scheme_folds(table, scheme)
        if folds is None:
            continue
        fold_of = np.empty(table.height, dtype=object)
        for label, rows in folds:
            fold_of[rows] = label
        for name, cols in predictor_sets(configured).items():
            pred, alpha = grouped_predict(design_matrix(table, cols), y, folds, alphas)
            rho, tau, mae = rank_metrics(pred, y)
            ci = bootstrap_metric_cis(pred, y, idx, settings.ci_level)
            fin = alpha[np.isfinite(alpha)]
            comp_rows.append(
                {
                    "scheme": scheme,
                    "predictor": name,
                    "features": ",".join(cols),
                    "n_cells": table.height,
                    "n_folds": len(folds),
                    "spearman": rho,
                    "spearman_lo": ci["spearman"][0],
                    "spearman_hi": ci["spearman"][1],
                    "kendall": tau,
                    "kendall_lo": ci["kendall"][0],
                    "kendall_hi": ci["kendall"][1],
                    "mae": mae,
                    "mae_lo": ci["mae"][0],
                    "mae_hi": ci["mae"][1],
                    "alpha_median": float(np.median(fin)) if fin.size else float("nan"),
                    "n_boot": settings.n_boot,
                    "ci_level": settings.ci_level,
                }
            )
            held.append(
                table.select(CELL_KEYS).with_columns(
                    pl.lit(scheme).alias("scheme"),
                    pl.lit(name).alias("predictor"),
                    pl.Series("fold", fold_of.tolist(), dtype=pl.String),
                    pl.Series("gain", y),
                    pl.Series("pred", pred),
                    pl.Series("alpha", alpha),
                )
            )
    comparison = conform(pl.DataFrame(comp_rows, schema=_comparison_schema()), "fit_comparison")
    heldout = conform(pl.concat(held), "fit_heldout")
    return comparison, heldout


def _comparison_schema() -> dict[str, pl.DataType | type[pl.DataType]]:
    return FIT_COMPARISON.polars_schema
