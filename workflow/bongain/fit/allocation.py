"""Compute-optimal allocation of samples across cells from predicted gain curves (Snell et al. 2024).

Given a budget of ``B`` samples per prompt on average over a set of cells (each cell with ``P_c`` test
prompts), choose a number of samples ``N_c in 1..K`` per cell so that the expected accuracy of best-of-N_c
is highest: ``maximise sum_c P_c * gain_c(N_c)`` subject to ``sum_c P_c * N_c <= B * sum_c P_c``
(pass@1 does not depend on N, so maximising the gain maximises accuracy). ``gain_c(k)`` is the fit
stage's predicted gain curve (``results/fit/curve.parquet``: leave-one-cell-out predictions, so a cell's
plan never uses its own test gains). The problem is a multiple-choice knapsack, solved exactly by
dynamic programming over the sample budget.

Evaluation on the test split: the plan's accuracy ``sum_c P_c bon_c(N_c) / sum_c P_c`` with the measured
best-of-k accuracy, against uniform N = B for every cell at the same budget, and against the oracle plan
(the same optimisation on the measured curves: an in-sample upper bound, not a method). The interval of
the difference plan - uniform is a bootstrap over test prompts within each cell (per-prompt exact
best-of-k values), so it reflects prompt sampling, not the uncertainty of the predicted curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray

from bongain.constants import CELL_KEYS

Cell = tuple[str, ...]


def plan(curves: NDArray[np.float64], prompts: Sequence[int], budget: float) -> NDArray[np.int64]:
    """N per cell (1..K) maximising ``sum_c P_c curves[c, N_c - 1]`` within ``budget`` samples per prompt.

    ``curves [C, K]``: value of k = 1..K samples for each cell (gain or accuracy); ``prompts``: P_c.
    Exact (dynamic programming over the total sample count); among equal optima the one with the
    fewest samples, then the lexicographically smallest N, is returned. Raises when the budget is below
    one sample per prompt.
    """
    values = np.asarray(curves, dtype=np.float64)
    weights = np.asarray(prompts, dtype=np.int64)
    n_cells, k_max = values.shape
    if weights.shape != (n_cells,) or np.any(weights < 1):
        raise ValueError("prompts must give a positive count for every cell")
    capacity = int(np.floor(budget * weights.sum() + 1e-9))
    if capacity < weights.sum():
        raise ValueError(f"allocation budget {budget} is below one sample per prompt")
    neg = -np.inf
    best = np.full(capacity + 1, neg)
    best[0] = 0.0
    choice = np.zeros((n_cells, capacity + 1), dtype=np.int16)
    for c in range(n_cells):
        new = np.full(capacity + 1, neg)
        for k in range(1, k_max + 1):
            cost = int(weights[c]) * k
            if cost > capacity:
                break
            cand = np.full(capacity + 1, neg)
            cand[cost:] = best[: capacity + 1 - cost] + weights[c] * values[c, k - 1]
            finite = np.isfinite(new)
            tol = 1e-12 * np.maximum(1.0, np.abs(np.where(finite, new, 0.0)))
            better = np.where(finite, cand > new + tol, np.isfinite(cand))
            new = np.where(better, cand, new)
            choice[c] = np.where(better, k, choice[c])
        best = new
    # the smallest total that reaches the optimum
    top = best.max()
    used = int(np.flatnonzero(best >= top - 1e-12 * max(1.0, abs(top)))[0])
    out = np.zeros(n_cells, dtype=np.int64)
    for c in range(n_cells - 1, -1, -1):
        k = int(choice[c, used])
        out[c] = k
        used -= int(weights[c]) * k
    return out


def _curve_matrix(curve: pl.DataFrame, cells: Sequence[Cell], column: str, k_max: int) -> NDArray:
    wide = curve.filter(pl.col("k") <= k_max).sort([*CELL_KEYS, "k"])
    out = np.empty((len(cells), k_max))
    for i, cell in enumerate(cells):
        rows = wide.filter(
            pl.all_horizontal(pl.col(key) == v for key, v in zip(CELL_KEYS, cell, strict=True))
        )
        if rows.height != k_max:
            raise ValueError(f"curve: cell {'/'.join(cell)} has {rows.height} of k = 1..{k_max}")
        out[i] = rows[column].to_numpy()
    return out


def allocation_tables(
    curve: pl.DataFrame,
    bon_values: Mapping[Cell, NDArray[np.float64]],
    budgets: Sequence[int],
    *,
    n_boot: int,
    ci_level: float,
    seed: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per budget and cell: the plan; per budget: plan vs uniform vs oracle on the test split).

    ``curve``: the fit stage's curve table (evaluated cells are planned from ``pred``);
    ``bon_values``: per evaluated cell, the exact per-prompt best-of-k accuracy ``[P_c, N_c]`` on the
    test split. Budgets are whole samples per prompt, 1 <= B <= K (K = the smallest measured N).
    """
    cells = sorted(bon_values)
    k_max = min(v.shape[1] for v in bon_values.values())
    evaluated = curve.filter(pl.col("status") == "evaluated")
    k_max = min(k_max, int(evaluated["k"].max()))
    pred = _curve_matrix(evaluated, cells, "pred", k_max)
    measured = np.stack([bon_values[c][:, :k_max].mean(axis=0) for c in cells])
    prompts = np.array([bon_values[c].shape[0] for c in cells])
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, p, size=(n_boot, p)) for p in prompts]
    alpha = (1 - ci_level) / 2
    rows, summary = [], []
    for budget in budgets:
        if not 1 <= budget <= k_max:
            raise ValueError(f"allocation budget {budget} must lie in 1..{k_max} (the measured N)")
        chosen = plan(pred, prompts, budget)
        oracle = plan(measured, prompts, budget)

        def accuracy(ns: NDArray[np.int64], boot: int | None = None) -> float:
            total = 0.0
            for i, c in enumerate(cells):
                v = bon_values[c][:, ns[i] - 1]
                total += (v[boots[i][boot]] if boot is not None else v).sum()
            return total / prompts.sum()

        uniform = np.full(len(cells), budget)
        diffs = np.array([accuracy(chosen, b) - accuracy(uniform, b) for b in range(n_boot)])
        lo, hi = np.quantile(diffs, [alpha, 1 - alpha]) if n_boot else (np.nan, np.nan)
        for i, c in enumerate(cells):
            rows.append(
                {
                    **dict(zip(CELL_KEYS, c, strict=True)),
                    "budget": int(budget),
                    "n_prompts": int(prompts[i]),
                    "n_planned": int(chosen[i]),
                    "pred_gain": float(pred[i, chosen[i] - 1]),
                    "bon_planned": float(measured[i, chosen[i] - 1]),
                    "bon_uniform": float(measured[i, budget - 1]),
                    "n_oracle": int(oracle[i]),
                }
            )
        summary.append(
            {
                "budget": int(budget),
                "n_cells": len(cells),
                "acc_planned": accuracy(chosen),
                "acc_uniform": accuracy(uniform),
                "acc_oracle": accuracy(oracle),
                "diff": accuracy(chosen) - accuracy(uniform),
                "diff_lo": float(lo),
                "diff_hi": float(hi),
                "samples_planned": float((chosen * prompts).sum() / prompts.sum()),
                "n_boot": int(n_boot),
                "ci_level": float(ci_level),
            }
        )
    return pl.DataFrame(rows), pl.DataFrame(summary)


def bon_prompt_matrix(grades: pl.DataFrame, scores: pl.DataFrame) -> NDArray[np.float64]:
    """Exact per-prompt best-of-k accuracy ``[P, N]`` of one cell's test split (grades + scores)."""
    from bongain.cellstats.features import join_per_sample, prompt_matrix
    from bongain.cellstats.passk import bon_prompt_values

    df, n = join_per_sample(grades, scores, ("grades", "scores"), (("correct",), ("reward",)))
    return bon_prompt_values(prompt_matrix(df, "reward", n), prompt_matrix(df, "correct", n).astype(bool))


def allocate_from_files(
    curve_path: str,
    grades_paths: Sequence[str],
    scores_paths: Sequence[str],
    budgets: Sequence[int],
    *,
    n_boot: int,
    ci_level: float,
    seed: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`allocation_tables` from the artifact files (the rule script and ``bongain allocate``)."""
    from bongain.io import read_parquet

    bon = {}
    for gp, sp in zip(grades_paths, scores_paths, strict=True):
        grades = read_parquet(gp, "grades")
        cell = tuple(str(grades[key][0]) for key in CELL_KEYS)
        bon[cell] = bon_prompt_matrix(grades, read_parquet(sp, "scores"))
    curve = read_parquet(curve_path, "fit_curve")
    return allocation_tables(curve, bon, budgets, n_boot=n_boot, ci_level=ci_level, seed=seed)


def plan_table(curve: pl.DataFrame, budget: float, status: str = "all") -> pl.DataFrame:
    """The plan for the cells of a curve table (``status``: evaluated, screened or all), each cell
    weighted equally: N per cell with its predicted gain and interval at that N (``bongain allocate``)."""
    rows = curve if status == "all" else curve.filter(pl.col("status") == status)
    if rows.is_empty():
        raise ValueError(f"curve: no {status} cells to plan for")
    k_max = int(rows.group_by(CELL_KEYS).agg(pl.col("k").max())["k"].min())
    cells = sorted(rows.select(CELL_KEYS).unique().iter_rows())
    chosen = plan(_curve_matrix(rows, cells, "pred", k_max), [1] * len(cells), budget)
    at = pl.DataFrame(
        [{**dict(zip(CELL_KEYS, c, strict=True)), "k": int(n)} for c, n in zip(cells, chosen, strict=True)]
    )
    return at.join(rows, on=[*CELL_KEYS, "k"]).select(
        *CELL_KEYS, "status", pl.col("k").alias("n_planned"), "pred", "pred_lo", "pred_hi"
    )
