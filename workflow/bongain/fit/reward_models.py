"""How the reward models compare across cells: efficiency, AUC and agreement of their per-cell gains.

:func:`rm_summary` gives one row per reward model: its mean gain, the mean oracle gap, the pooled
efficiency ``mean gain / mean oracle gap`` over all cells, the median of the per-cell efficiencies (cells
whose oracle gap reaches ``statistics.efficiency_gap_floor``), and the mean and median per-cell
within-prompt AUC. :func:`rm_agreement` gives one row per pair of ``oracle`` and the reward models: the
Spearman correlation over cells of their gains (the oracle gap for ``oracle``; best-of-N's gain for a
reward model).

Intervals are percentile intervals over the grid-respecting cluster bootstrap of the comparison
(:func:`bongain.fit.compare.cluster_bootstrap`, the same seed, so the same resamples of cells): they
describe how much the statistic depends on which tasks, methods and models the grid happens to hold,
and, like the comparison's, are conservative (docs/statistics.md). The per-cell values are taken as
measured; their own sampling noise (the cells' bootstrap CIs) is not propagated.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np
import polars as pl
from scipy import stats

from bongain.constants import CELL_KEYS
from bongain.fit.compare import ComparisonSettings, cluster_bootstrap, percentile_ci
from bongain.fit.table import Target, gains_by_rm, target_table
from bongain.io import conform
from bongain.schemas import FIT_RM_AGREEMENT, FIT_RM_SUMMARY

ORACLE = "oracle"


def _last_rows(gains: pl.DataFrame) -> pl.DataFrame:
    """One row per cell (the k = N row), sorted by cell."""
    return gains.sort([*CELL_KEYS, "k"]).group_by(CELL_KEYS, maintain_order=True).last().sort(CELL_KEYS)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def _cells(features: pl.DataFrame, by_rm: Mapping[str, pl.DataFrame], families: Mapping[str, str] | None):
    """The oracle target's cell table (the cells every row uses) and each reward model's per-cell row."""
    table = target_table(features, by_rm, Target(ORACLE), families)
    keys = table.select(CELL_KEYS)
    rows = {}
    for rm, g in by_rm.items():
        last = keys.join(_last_rows(g), on=CELL_KEYS, how="left", maintain_order="left")
        if last["gain"].null_count():
            raise ValueError(f"reward model {rm}: no gains for some cell of the fit")
        rows[rm] = last
    return table, rows


def rm_summary(
    features: pl.DataFrame,
    gains: pl.DataFrame | Mapping[str, pl.DataFrame],
    settings: ComparisonSettings | None = None,
    families: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The ``fit_rm_summary`` table: one row per reward model (in the order of ``gains``)."""
    settings = settings or ComparisonSettings()
    by_rm = gains_by_rm(gains)
    table, rows = _cells(features, by_rm, families)
    boot = cluster_bootstrap(table, settings.n_boot, settings.seed)
    gap = table["gain"].to_numpy().astype(np.float64)
    out = []
    for rm, r in rows.items():
        gain = r["gain"].to_numpy().astype(np.float64)
        eff = r["efficiency"].drop_nulls().drop_nans().to_numpy()
        auc = r["auc"].cast(pl.Float64).to_numpy()
        has_auc = np.isfinite(auc)
        pooled = float(gain.sum() / gap.sum()) if gap.sum() > 0 else float("nan")
        pooled_reps = np.array(
            [gain[i].sum() / gap[i].sum() if gap[i].sum() > 0 else np.nan for i in boot.resamples]
        )
        auc_reps = np.array(
            [auc[i][has_auc[i]].mean() if has_auc[i].any() else np.nan for i in boot.resamples]
        )
        pooled_ci = percentile_ci(pooled_reps, settings.ci_level) if np.isfinite(pooled) else (np.nan, np.nan)
        auc_ci = percentile_ci(auc_reps, settings.ci_level) if has_auc.any() else (np.nan, np.nan)
        out.append(
            {
                "rm": rm,
                "n_cells": table.height,
                "gain_mean": float(gain.mean()),
                "gain_oracle_mean": float(gap.mean()),
                "pooled_efficiency": pooled,
                "pooled_efficiency_lo": pooled_ci[0],
                "pooled_efficiency_hi": pooled_ci[1],
                "efficiency_median": float(np.median(eff)) if eff.size else float("nan"),
                "n_efficiency": int(eff.size),
                "gap_floor": float(r["gap_floor"][0]),
                "auc_mean": float(auc[has_auc].mean()) if has_auc.any() else float("nan"),
                "auc_mean_lo": auc_ci[0],
                "auc_mean_hi": auc_ci[1],
                "auc_median": float(np.median(auc[has_auc])) if has_auc.any() else float("nan"),
                "n_auc": int(has_auc.sum()),
                "n_boot": settings.n_boot,
                "ci_level": settings.ci_level,
                "ci_kind": boot.kind,
            }
        )
    return conform(pl.DataFrame(out, schema=FIT_RM_SUMMARY.polars_schema), "fit_rm_summary")


def rm_agreement(
    features: pl.DataFrame,
    gains: pl.DataFrame | Mapping[str, pl.DataFrame],
    settings: ComparisonSettings | None = None,
    families: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The ``fit_rm_agreement`` table: one row per pair of ``oracle`` and the reward models (oracle first,
    then the reward models in the order of ``gains``)."""
    settings = settings or ComparisonSettings()
    by_rm = gains_by_rm(gains)
    table, rows = _cells(features, by_rm, families)
    boot = cluster_bootstrap(table, settings.n_boot, settings.seed)
    vectors: dict[str, np.ndarray] = {ORACLE: table["gain"].to_numpy().astype(np.float64)}
    vectors.update({rm: r["gain"].to_numpy().astype(np.float64) for rm, r in rows.items()})
    out = []
    for a, b in combinations(list(vectors), 2):
        x, y = vectors[a], vectors[b]
        reps = np.array([_spearman(x[i], y[i]) for i in boot.resamples])
        lo, hi = percentile_ci(reps, settings.ci_level)
        out.append(
            {
                "a": a,
                "b": b,
                "n_cells": table.height,
                "spearman": _spearman(x, y),
                "spearman_lo": lo,
                "spearman_hi": hi,
                "n_boot": settings.n_boot,
                "ci_level": settings.ci_level,
                "ci_kind": boot.kind,
            }
        )
    return conform(pl.DataFrame(out, schema=FIT_RM_AGREEMENT.polars_schema), "fit_rm_agreement")
