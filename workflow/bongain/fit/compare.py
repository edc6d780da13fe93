"""Grouped evaluation schemes, the comparison of predictor sets, and bootstrap CIs of the metrics.

Beyond LOCO, :func:`compare_predictors` evaluates every predictor set (baseline, fit.features, the
trivial validation gap, all, strict core, core + entropy) under grouped schemes
(leave-one-cell/task/method/model/family-out) with nested CV and percentile-bootstrap CIs of the metrics,
for every target (the oracle gap and each reward model's gain, :func:`bongain.fit.table.comparison_targets`);
see docs/statistics.md. Each predictor is the ridge of :mod:`bongain.fit.ridge` on the cell table of
:mod:`bongain.fit.table`.

Cells are processed in (model, method, task) order; the only randomness (bootstrap CIs of the metrics)
comes from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from bongain.constants import CELL_KEYS
from bongain.fit.null import (
    NoiseCeiling,
    gain_se,
    level_codes,
    noise_ceiling,
    null_permutations,
    null_quantile,
    perm_pvalue,
)
from bongain.fit.ridge import DEFAULT_ALPHAS, fit_ridge, fold_smoother, nested_predict_batch, rank_metrics
from bongain.fit.table import (
    BASELINE_COLUMNS,
    FEATURE_COLUMNS,
    TRIVIAL_COLUMNS,
    Target,
    design_matrix,
    gains_by_rm,
    make_target,
    target_table,
)
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
    "leave_one_family_out": "family",
}

#: A scheme -> the scheme whose folds it repeats when the two partitions of the cells are identical
#: (every family has one model in the table, the default): its rows are then copies, marked ``same_as``.
SAME_AS: dict[str, str] = {"leave_one_family_out": "leave_one_model_out"}

DEFAULT_N_BOOT = 1000
DEFAULT_CI_LEVEL = 0.95
DEFAULT_SEED = 0
DEFAULT_N_PERM = 999


def predictor_sets(configured: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Predictor name -> its feature columns, in report order.

    ``ridge`` is the configured feature list (``fit.features``; all features when unset), ``gap`` the
    trivial baseline (the validation split's oracle gap, coverage - pass1), ``all`` every feature column,
    ``core`` the strict core, ``core_entropy`` the core plus ``entropy_mean``.
    """
    return {
        "baseline": list(BASELINE_COLUMNS),
        "ridge": list(FEATURE_COLUMNS if configured is None else configured),
        "gap": list(TRIVIAL_COLUMNS),
        "all": list(FEATURE_COLUMNS),
        "core": list(STRICT_CORE),
        "core_entropy": list(CORE_ENTROPY),
    }


def scheme_folds(table: pl.DataFrame, scheme: str) -> list[tuple[str, np.ndarray]] | None:
    """The held-out folds of ``scheme`` as (group label, row indices), in sorted label order.

    None when the scheme is not applicable: fewer than 2 groups (e.g. leave-one-model-out with one
    model) or a fold that would leave fewer than 2 training cells. A table without a ``family`` column
    (built by hand) has one family per model.
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
        col = "model" if key == "family" and "family" not in table.columns else key
        labels = table[col].cast(pl.String).to_list()
    levels = sorted(set(labels))
    if len(levels) < 2:
        return None
    arr = np.asarray(labels, dtype=object)
    folds = [(g, np.flatnonzero(arr == g)) for g in levels]
    if any(n - idx.size < 2 for _, idx in folds):
        return None
    return folds


def same_as(table: pl.DataFrame, scheme: str) -> str | None:
    """The scheme of :data:`SAME_AS` whose folds ``scheme`` repeats on ``table``, else None.

    Set when both schemes are applicable and their folds are the same sets of cells (e.g. the family
    folds when every family has exactly one model in the table).
    """
    other = SAME_AS.get(scheme)
    if other is None:
        return None
    mine, theirs = scheme_folds(table, scheme), scheme_folds(table, other)
    if mine is None or theirs is None:
        return None
    parts = {frozenset(idx.tolist()) for _, idx in mine}
    return other if parts == {frozenset(idx.tolist()) for _, idx in theirs} else None


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


@dataclass(frozen=True)
class ClusterBootstrap:
    """Resamples of the cells that respect the grid: each is an index array (cells repeated by weight)."""

    resamples: list[np.ndarray]
    factors: list[str]  # the grid factors resampled (empty: cells resampled independently)

    @property
    def kind(self) -> str:
        return "cells" if not self.factors else "clusters(" + ",".join(self.factors) + ")"


def cluster_bootstrap(table: pl.DataFrame, n_boot: int, seed: int) -> ClusterBootstrap:
    """Multi-way cluster ("pigeonhole") bootstrap of the cells of ``table``.

    Every grid factor (model, method, task) with at least 2 levels is resampled: its levels are drawn
    with replacement, independently per factor, and a cell enters the resample as many times as the
    product of its levels' draw counts (a two-way cluster bootstrap when methods and tasks both vary,
    Owen 2007). With a single cell per group of every factor (no factor varies) the cells themselves
    are resampled. On a complete grid every resample has as many cells as the table; otherwise sizes
    vary (an empty resample is redrawn).
    """
    rng = np.random.default_rng(seed)
    factors = [f for f in ("model", "method", "task") if table[f].n_unique() >= 2]
    n = table.height
    if not factors:
        return ClusterBootstrap([rng.integers(0, n, size=n) for _ in range(n_boot)], [])
    codes, sizes = level_codes(table, factors)
    out: list[np.ndarray] = []
    while len(out) < n_boot:
        weight = np.ones(n, dtype=np.int64)
        for c, k in zip(codes, sizes, strict=True):
            counts = np.bincount(rng.integers(0, k, size=k), minlength=k)
            weight *= counts[c]
        if weight.sum() == 0:
            continue
        out.append(np.repeat(np.arange(n), weight))
    return ClusterBootstrap(out, factors)


def percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite ``values`` (NaN, NaN when none is finite)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    q = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(v, [q, 100.0 - q])
    return float(lo), float(hi)


def resampled_metrics(
    pred: np.ndarray, actual: np.ndarray, resamples: Sequence[np.ndarray] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spearman, Kendall tau-b, MAE of ``pred`` vs ``actual`` on each resample of cell indices."""
    pred = np.asarray(pred, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    sizes = {len(r) for r in resamples}
    if len(sizes) == 1:
        idx = np.asarray(resamples)
        return batch_metrics(pred[idx], actual[idx])
    parts = [batch_metrics(pred[r][None], actual[r][None]) for r in resamples]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def bootstrap_metric_cis(
    pred: np.ndarray, actual: np.ndarray, idx: Sequence[np.ndarray] | np.ndarray, level: float
) -> dict[str, tuple[float, float]]:
    """Percentile CIs of Spearman / Kendall / MAE over the cell resamples ``idx``.

    The held-out predictions are fixed; only which cells are scored is resampled.
    """
    rho, tau, mae = resampled_metrics(pred, actual, idx)
    return {
        "spearman": percentile_ci(rho, level),
        "kendall": percentile_ci(tau, level),
        "mae": percentile_ci(mae, level),
    }


#: Grouped schemes from hardest to easiest; the headline is the first one with enough groups.
HEADLINE_ORDER: tuple[str, ...] = (
    "leave_one_family_out",
    "leave_one_model_out",
    "leave_one_method_out",
    "leave_one_task_out",
)
MIN_HEADLINE_GROUPS = 3
HEADLINE_PREDICTOR = "ridge"
#: The trivial predictor every row is compared with (``delta_trivial``).
TRIVIAL_PREDICTOR = "gap"


def headline_scheme(n_groups: dict[str, int]) -> str:
    """The hardest grouped scheme with at least :data:`MIN_HEADLINE_GROUPS` groups, else LOCO.

    A scheme that repeats another's folds (:func:`same_as`) should be left out of ``n_groups``.
    """
    for scheme in HEADLINE_ORDER:
        if n_groups.get(scheme, 0) >= MIN_HEADLINE_GROUPS:
            return scheme
    return "leave_one_cell_out"


@dataclass(frozen=True)
class ComparisonSettings:
    n_boot: int = DEFAULT_N_BOOT
    ci_level: float = DEFAULT_CI_LEVEL
    seed: int = DEFAULT_SEED
    n_perm: int = DEFAULT_N_PERM


def _ceiling(table: pl.DataFrame, seed: int) -> NoiseCeiling:
    lo = table["gain_lo"].cast(pl.Float64).to_numpy()
    hi = table["gain_hi"].cast(pl.Float64).to_numpy()
    level = table["gain_ci_level"].cast(pl.Float64).to_numpy()
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(np.isfinite(level))):
        nan = float("nan")
        return NoiseCeiling(nan, nan, nan, nan)
    se = np.concatenate([gain_se(lo[i : i + 1], hi[i : i + 1], float(level[i])) for i in range(lo.size)])
    return noise_ceiling(table["gain"].to_numpy().astype(np.float64), se, seed)


@dataclass(frozen=True)
class HeldoutTest:
    pred: np.ndarray  # out-of-fold predictions of y
    alpha: np.ndarray  # penalty used for each row (NaN: no usable column, mean prediction)
    spearman: float  # held-out Spearman of pred with y
    null_spearman: np.ndarray  # the same statistic with y permuted by each row of perm_index
    p_value: float  # one-sided (greater)


def heldout_permutation_test(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[str, np.ndarray]],
    perm_index: np.ndarray,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
) -> HeldoutTest:
    """The nested-CV held-out Spearman of ridge on ``X`` and its permutation null.

    Every permutation reruns the whole procedure (standardisation, inner LOO choice of the penalty,
    outer prediction) on ``y[perm]``, through the closed-form smoothers of :func:`fold_smoother`.
    """
    return heldout_permutation_tests(X, np.asarray(y)[None], folds, perm_index, alphas)[0]


def heldout_permutation_tests(
    X: np.ndarray,
    Y: np.ndarray,
    folds: Sequence[tuple[str, np.ndarray]],
    perm_index: np.ndarray,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
) -> list[HeldoutTest]:
    """:func:`heldout_permutation_test` for every row of ``Y`` (one target vector per row), building the
    fold smoothers of ``X`` once; each target gets the same permutations."""
    alphas = np.asarray(alphas, dtype=np.float64)
    n = Y.shape[1]
    smoothers = [fold_smoother(X, np.setdiff1d(np.arange(n), rows), rows, alphas) for _, rows in folds]
    pred_b, pick_b = nested_predict_batch(smoothers, Y)
    out = []
    for t, y in enumerate(Y):
        pred = pred_b[t]
        alpha = np.where(pick_b[t] >= 0, alphas[np.maximum(pick_b[t], 0)], np.nan)
        rho = rank_metrics(pred, y)[0]
        Yperm = y[perm_index]
        null_pred, _ = nested_predict_batch(smoothers, Yperm)
        null_rho = batch_metrics(null_pred, Yperm)[0]
        out.append(HeldoutTest(pred, alpha, rho, null_rho, perm_pvalue(null_rho, rho, "greater")))
    return out


def compare_predictors(
    features: pl.DataFrame,
    gains: pl.DataFrame | Mapping[str, pl.DataFrame],
    configured: Sequence[str] | None = None,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
    settings: ComparisonSettings = ComparisonSettings(),
    families: Mapping[str, str] | None = None,
    *,
    target: str = "bon",
    targets: Sequence[Target] | None = None,
    fit_target: Target | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fit_comparison, fit_heldout): every predictor set under every applicable evaluation scheme, for
    every target.

    ``gains``: one reward model's gains tables, or reward model -> its tables
    (:func:`bongain.fit.table.gains_by_rm`). ``targets`` (default: ``target``'s gain under the first
    reward model) are the gains predicted (:func:`bongain.fit.table.comparison_targets`: the oracle gap
    and every reward model's gain); ``fit_target`` (default the first target) is marked ``fit_target``.
    The cells, folds, permutations and bootstrap resamples depend on the cells only, so they are shared by
    every target and row (paired), and each predictor's fold smoothers are built once for all targets.

    Each row carries the permutation p-value of its held-out Spearman and the null's 95% quantile
    (:mod:`bongain.fit.null`), the noise ceiling of its target's measured gains, grid-respecting bootstrap
    CIs (:func:`cluster_bootstrap`) and ``delta_trivial``: its Spearman minus that of the trivial predictor
    (the validation gap, ``gap``) under the same scheme and target, with a paired bootstrap CI. Two first
    rows per target (scheme ``raw``) are the Spearman of ``pass1`` and of the validation gap with the
    gain itself, without fitting, with a two-sided p-value.

    ``families`` (model slug -> family, :func:`bongain.config.model_families`; default: every model its
    own family) defines the leave-one-family-out folds. When they are the leave-one-model-out folds
    (:func:`same_as`), the family rows repeat the model rows' numbers with ``same_as`` naming that
    scheme, and the family scheme cannot be the headline.
    """
    by_rm = (
        gains_by_rm(gains) if not isinstance(gains, pl.DataFrame) or "rm" in gains.columns else {"": gains}
    )
    first_rm = next(iter(by_rm))
    targets = list(targets or [make_target(target, first_rm)])
    fit_target = fit_target or targets[0]
    tables = [target_table(features, by_rm, t, families) for t in targets]
    table = tables[0]
    for t, tab in zip(targets, tables, strict=True):
        if not tab.select(CELL_KEYS).equals(table.select(CELL_KEYS)):
            raise ValueError(
                f"compare_predictors: target {t.label}: the cells differ from {targets[0].label}'s"
            )
    Y = np.stack([tab["gain"].to_numpy().astype(np.float64) for tab in tables])
    boot = cluster_bootstrap(table, settings.n_boot, settings.seed)
    perms = null_permutations(table, settings.n_perm, settings.seed)
    aliases = {s: a for s in SCHEMES if (a := same_as(table, s)) is not None}
    n_groups = {s: len(f) for s in SCHEMES if s not in aliases and (f := scheme_folds(table, s)) is not None}
    headline = headline_scheme(n_groups)
    common = {
        "n_cells": table.height,
        "n_boot": settings.n_boot,
        "ci_level": settings.ci_level,
        "ci_kind": boot.kind,
        "n_perm": int(perms.index.shape[0]),
        "null_kind": perms.kind + (" (exact)" if perms.exact else ""),
    }
    sets = predictor_sets(configured)
    # every (scheme, predictor): one HeldoutTest per target, the fold smoothers built once
    folds_of: dict[str, list[tuple[str, np.ndarray]]] = {}
    tests: dict[tuple[str, str], list[HeldoutTest]] = {}
    for scheme in SCHEMES:
        folds = scheme_folds(table, scheme)
        if folds is None:
            continue
        folds_of[scheme] = folds
        for name, cols in sets.items():
            alias = aliases.get(scheme)
            tests[(scheme, name)] = (
                tests[(alias, name)]  # the same partition of the cells: the same predictions, not refitted
                if alias is not None
                else heldout_permutation_tests(design_matrix(table, cols), Y, folds, perms.index, alphas)
            )
    comp_rows: list[dict[str, object]] = []
    held: list[pl.DataFrame] = []
    for ti, (tgt, tab) in enumerate(zip(targets, tables, strict=True)):
        y = Y[ti]
        Yperm = y[perms.index]
        ceiling = _ceiling(tab, settings.seed)
        head = {
            **common,
            "target": tgt.strategy,
            "rm": tgt.rm,
            "fit_target": tgt == fit_target,
            "noise_ceiling": ceiling.spearman,
            "noise_ceiling_kendall": ceiling.kendall,
            "mae_floor": ceiling.mae_floor,
        }
        for name in ("baseline", TRIVIAL_PREDICTOR):
            x = design_matrix(tab, sets[name])[:, 0]
            rho, tau, _ = rank_metrics(x, y)
            ci = bootstrap_metric_cis(x, y, boot.resamples, settings.ci_level)
            null_raw = batch_metrics(np.broadcast_to(x, Yperm.shape), Yperm)[0]
            comp_rows.append(
                {
                    **head,
                    "scheme": "raw",
                    "predictor": name,
                    "features": ",".join(sets[name]),
                    "n_folds": 0,
                    **_metric_columns(rho, tau, float("nan"), ci),
                    "alpha_median": float("nan"),
                    "perm_p": perm_pvalue(null_raw, rho, "two-sided"),
                    "null_q95": null_quantile(np.abs(null_raw)),
                    "alternative": "two-sided",
                    "delta_trivial": None,
                    "delta_trivial_lo": None,
                    "delta_trivial_hi": None,
                    "headline": False,
                    "same_as": None,
                }
            )
        for scheme, folds in folds_of.items():
            fold_of = np.empty(table.height, dtype=object)
            for label, rows in folds:
                fold_of[rows] = label
            trivial = tests[(scheme, TRIVIAL_PREDICTOR)][ti].pred
            trivial_rho = resampled_metrics(trivial, y, boot.resamples)[0]
            for name, cols in sets.items():
                test = tests[(scheme, name)][ti]
                pred, alpha, null_rho = test.pred, test.alpha, test.null_spearman
                rho, tau, mae = rank_metrics(pred, y)
                ci = bootstrap_metric_cis(pred, y, boot.resamples, settings.ci_level)
                fin = alpha[np.isfinite(alpha)]
                delta: tuple[object, object, object] = (None, None, None)
                if name != TRIVIAL_PREDICTOR:
                    d = resampled_metrics(pred, y, boot.resamples)[0] - trivial_rho
                    delta = (rho - rank_metrics(trivial, y)[0], *percentile_ci(d, settings.ci_level))
                comp_rows.append(
                    {
                        **head,
                        "scheme": scheme,
                        "predictor": name,
                        "features": ",".join(cols),
                        "n_folds": len(folds),
                        **_metric_columns(rho, tau, mae, ci),
                        "alpha_median": float(np.median(fin)) if fin.size else float("nan"),
                        "perm_p": perm_pvalue(null_rho, rho, "greater"),
                        "null_q95": null_quantile(null_rho),
                        "alternative": "greater",
                        "delta_trivial": delta[0],
                        "delta_trivial_lo": delta[1],
                        "delta_trivial_hi": delta[2],
                        "headline": scheme == headline and name == HEADLINE_PREDICTOR,
                        "same_as": aliases.get(scheme),
                    }
                )
                held.append(
                    table.select(CELL_KEYS).with_columns(
                        pl.lit(tgt.strategy).alias("target"),
                        pl.lit(tgt.rm, dtype=pl.String).alias("rm"),
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


def _metric_columns(
    rho: float, tau: float, mae: float, ci: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    """The metric columns of a comparison row (MAE's CI NaN when the MAE is)."""
    mae_ci = ci["mae"] if np.isfinite(mae) else (float("nan"), float("nan"))
    return {
        "spearman": rho,
        "spearman_lo": ci["spearman"][0],
        "spearman_hi": ci["spearman"][1],
        "kendall": tau,
        "kendall_lo": ci["kendall"][0],
        "kendall_hi": ci["kendall"][1],
        "mae": mae,
        "mae_lo": mae_ci[0],
        "mae_hi": mae_ci[1],
    }


def _comparison_schema() -> dict[str, pl.DataType | type[pl.DataType]]:
    return FIT_COMPARISON.polars_schema
