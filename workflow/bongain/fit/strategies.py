"""Which selection strategy's gain the configured predictor ranks best.

For the oracle gap and every strategy of :data:`bongain.fit.table.TARGETS` (best-of-N, majority, weighted
majority, Best-of-Majority, Majority-of-Bests, self-certainty), a strategy that uses the rewards once per
reward model (:func:`bongain.fit.table.strategy_targets`), whose gain exists for every cell,
:func:`strategy_fit` evaluates the configured ridge (``fit.features``) under the headline held-out scheme
of :func:`bongain.fit.compare.compare_predictors` with that strategy's gain as the target: the held-out
Spearman (nested CV, closed form), its permutation p-value and null 95% quantile (the same permutations
as the comparison: they depend on the cells only, not on the target) and the noise ceiling of that
strategy's measured gains. ``best`` marks the strategy with the highest held-out Spearman (ties: the
first in TARGETS order). The p-values are not corrected for testing six strategies, and the strategies
are scored on the same samples, so their rows are dependent (docs/statistics.md).

The design matrix, folds and permutations are shared by all strategies (the cells are the same), so
the fold smoothers are built once and every strategy costs one batched nested-CV prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from bongain.fit.compare import (
    SCHEMES,
    ComparisonSettings,
    _ceiling,
    batch_metrics,
    headline_scheme,
    same_as,
    scheme_folds,
)
from bongain.fit.null import null_permutations, null_quantile, perm_pvalue
from bongain.fit.ridge import DEFAULT_ALPHAS, fold_smoother, nested_predict_batch, rank_metrics
from bongain.fit.table import (
    FEATURE_COLUMNS,
    Target,
    design_matrix,
    gains_by_rm,
    make_target,
    strategy_targets,
    target_columns,
    target_table,
)
from bongain.io import conform
from bongain.schemas import FIT_STRATEGY


def headline_of(table: pl.DataFrame) -> str:
    """The headline scheme of :func:`~bongain.fit.compare.compare_predictors` on ``table``."""
    aliases = {s for s in SCHEMES if same_as(table, s) is not None}
    n_groups = {s: len(f) for s in SCHEMES if s not in aliases and (f := scheme_folds(table, s)) is not None}
    return headline_scheme(n_groups)


def skip_reason(gains: pl.DataFrame, target: str) -> str | None:
    """Why ``target``'s gain cannot be fitted (no such column, or null / NaN in some cell), else None."""
    value = target_columns(target)[0]
    if value not in gains.columns:
        return f"the gains table has no column {value}"
    col = gains[value]
    bad = gains.filter(col.is_null() | col.is_nan()).select("model", "method", "task").unique().height
    if bad:
        n = gains.select("model", "method", "task").unique().height
        why = " (no self-certainty recorded)" if target == "selfcert" else ""
        return f"{value} is null or NaN in {bad} of {n} cells{why}"
    return None


def strategy_fit(
    features: pl.DataFrame,
    gains: pl.DataFrame | Mapping[str, pl.DataFrame],
    configured: Sequence[str] | None = None,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
    settings: ComparisonSettings | None = None,
    families: Mapping[str, str] | None = None,
    *,
    target: str = "bon",
    fit_target: Target | None = None,
) -> pl.DataFrame:
    """The ``fit_strategy`` table: one row per target of :func:`bongain.fit.table.strategy_targets`
    (the oracle gap, then every strategy, per reward model where it uses the rewards), in that order.

    ``gains``: one reward model's gains tables, or reward model -> its tables; ``configured`` are the
    ridge's features (``fit.features``; all when None); ``fit_target`` (default: ``target``'s gain under
    the first reward model; ``fit.target`` under ``fit.reward_model``) only marks its row
    (``fit_target``); ``settings`` (n_perm, seed) as for the comparison. A target without a gain for
    every cell gets a row with ``skipped`` set and null metrics. Raises ValueError when no target can be
    fitted.
    """
    settings = settings or ComparisonSettings()
    by_rm = (
        gains_by_rm(gains) if not isinstance(gains, pl.DataFrame) or "rm" in gains.columns else {"": gains}
    )
    rms = list(by_rm)
    fit_target = fit_target or make_target(target, rms[0])
    cols = list(FEATURE_COLUMNS if configured is None else configured)
    alphas = np.asarray(alphas, dtype=np.float64)
    targets = strategy_targets(rms)
    reasons = {t: skip_reason(by_rm[t.rm if t.rm is not None else rms[0]], t.strategy) for t in targets}
    usable = [t for t in targets if reasons[t] is None]
    if not usable:
        raise ValueError(f"strategy_fit: no strategy has a gain for every cell: {reasons}")
    tables = {t: target_table(features, by_rm, t, families) for t in usable}
    first = tables[usable[0]]
    scheme = headline_of(first)
    folds = scheme_folds(first, scheme)
    assert folds is not None  # the headline is applicable (LOCO always is with >= 3 cells)
    perms = null_permutations(first, settings.n_perm, settings.seed)
    X = design_matrix(first, cols)
    n = first.height
    smoothers = [fold_smoother(X, np.setdiff1d(np.arange(n), rows), rows, alphas) for _, rows in folds]
    common = {
        "scheme": scheme,
        "predictor": "ridge",
        "features": ",".join(cols),
        "n_folds": len(folds),
        "n_perm": int(perms.index.shape[0]),
        "null_kind": perms.kind + (" (exact)" if perms.exact else ""),
    }
    rows: list[dict[str, object]] = []
    for t in targets:
        row: dict[str, object] = {
            "strategy": t.strategy,
            "rm": t.rm,
            **common,
            "fit_target": t == fit_target,
            "best": False,
        }
        if t not in tables:
            rows.append({**row, "n_cells": None, "skipped": reasons[t]})
            continue
        tab = tables[t]
        if not tab.select("model", "method", "task").equals(first.select("model", "method", "task")):
            raise ValueError(f"strategy_fit: {t.label}: the cells differ from {usable[0].label}'s")
        y = tab["gain"].to_numpy().astype(np.float64)
        pred = nested_predict_batch(smoothers, y[None])[0][0]
        rho = rank_metrics(pred, y)[0]
        Yperm = y[perms.index]
        null_rho = batch_metrics(nested_predict_batch(smoothers, Yperm)[0], Yperm)[0]
        rows.append(
            {
                **row,
                "n_cells": n,
                "gain_mean": float(np.mean(y)),
                "spearman": rho,
                "perm_p": perm_pvalue(null_rho, rho, "greater"),
                "null_q95": null_quantile(null_rho),
                "noise_ceiling": _ceiling(tab, settings.seed).spearman,
                "skipped": None,
            }
        )
    rhos = [r.get("spearman") for r in rows]
    finite = [i for i, v in enumerate(rhos) if v is not None and np.isfinite(v)]
    if finite:
        top = max(finite, key=lambda i: (rhos[i], -i))  # highest; ties: first in this table's order
        rows[top]["best"] = True
    return conform(pl.DataFrame(rows, schema=FIT_STRATEGY.polars_schema), "fit_strategy")
