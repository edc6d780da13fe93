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
    cfg: Mapping[str, object],
    *,
    seed: int,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The three allocation tables (across cells, its summary, within cells by bins) from the artifact
    files and the complete ``allocation`` config block (the rule script)."""
    from bongain.cellstats.features import join_per_sample, prompt_matrix
    from bongain.io import read_parquet

    bon, raw = {}, {}
    for gp, sp in zip(grades_paths, scores_paths, strict=True):
        grades, scores = read_parquet(gp, "grades"), read_parquet(sp, "scores")
        cell = tuple(str(grades[key][0]) for key in CELL_KEYS)
        bon[cell] = bon_prompt_matrix(grades, scores)
        df, n = join_per_sample(grades, scores, ("grades", "scores"), (("correct",), ("reward",)))
        raw[cell] = (prompt_matrix(df, "reward", n), prompt_matrix(df, "correct", n).astype(bool))
    curve = read_parquet(curve_path, "fit_curve")
    budgets = list(cfg["budgets"])
    across, summary = allocation_tables(
        curve, bon, budgets, n_boot=cfg["n_boot"], ci_level=cfg["ci_level"], seed=seed
    )
    bins = binned_tables(
        raw,
        budgets,
        pilot=cfg["pilot"],
        n_bins=cfg["n_bins"],
        n_orders=cfg["n_orders"],
        n_boot=cfg["n_boot"],
        ci_level=cfg["ci_level"],
        seed=seed,
    )
    return across, summary, bins


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


# --------------------------------------------------------------------------------------------------
# within a cell: samples per difficulty bin of prompts, from a pilot charged to the budget
# --------------------------------------------------------------------------------------------------


def prefix_bon(
    rewards: NDArray[np.float64], correct: NDArray[np.bool_], order: NDArray[np.int64]
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Best-of-n correctness along sample orders: ``[P, R, N]`` for ``order [P, R, N]``.

    Entry (p, r, n-1) is whether the highest-reward sample among the first n of order r of prompt p is
    correct (the first one drawn among equal rewards: along a uniformly random order that is a uniform
    tie-break). Also returns the rewards in that order.
    """
    rows = np.arange(rewards.shape[0])[:, None, None]
    r = rewards[rows, order]
    c = correct[rows, order]
    out = np.empty(r.shape, dtype=bool)
    best = r[..., 0].copy()
    hit = c[..., 0].copy()
    out[..., 0] = hit
    for n in range(1, r.shape[-1]):
        better = r[..., n] > best
        best = np.where(better, r[..., n], best)
        hit = np.where(better, c[..., n], hit)
        out[..., n] = hit
    return out, r


def binned_allocation(
    rewards: NDArray[np.float64],
    correct: NDArray[np.bool_],
    budget: int,
    *,
    pilot: int,
    n_bins: int,
    n_orders: int,
    rng: np.random.Generator,
) -> dict[str, object]:
    """Samples per difficulty bin of one cell's prompts, cross-fitted on two halves of the prompts.

    For every prompt, ``n_orders`` uniformly random sample orders are drawn. The first ``pilot`` samples
    of an order are the pilot: its mean reward is the prompt's difficulty score (label-free; the reward
    model scores the pilot at deployment), and the pilot counts against the budget. On one half of the
    prompts, bin edges are the quantiles of the score and each bin gets the total N (pilot included,
    ``pilot..N``) that maximises its mean best-of-N accuracy under an average of ``budget`` samples per
    prompt (exact knapsack over bins); the plan is then applied to the other half (bins from its own
    pilots, the first half's edges) and scored, and the halves swap. Returns the planned N per bin of
    each half, the cross-fitted accuracy of the plan and of uniform N = budget, and the per-prompt
    differences (for an interval). The bins of the scored half need not have the first half's sizes,
    so the samples actually used (``samples_used``) can differ a little from the budget.
    """
    p, n = rewards.shape
    if not 1 <= pilot <= budget <= n:
        raise ValueError(f"need 1 <= allocation.pilot ({pilot}) <= budget ({budget}) <= N ({n})")
    order = np.argsort(rng.random((p, n_orders, n)), axis=-1)
    acc, r = prefix_bon(rewards, correct.astype(bool), order)
    score = r[..., :pilot].mean(axis=-1)  # [P, R]
    half = rng.permutation(p) < p // 2
    planned_acc = np.empty(p)
    planned_n = np.empty(p)
    plans = []
    for fit_on in (half, ~half):
        apply_to = ~fit_on
        if fit_on.sum() == 0 or apply_to.sum() == 0:
            raise ValueError("binned allocation needs at least 2 prompts")
        edges = np.quantile(score[fit_on], np.linspace(0, 1, n_bins + 1)[1:-1])
        bins_fit = np.searchsorted(edges, score[fit_on], side="right")  # [P_fit, R]
        acc_fit = acc[fit_on]  # [P_fit, R, N]
        curves = np.zeros((n_bins, n - pilot + 1))
        counts = np.zeros(n_bins, dtype=np.int64)
        for b in range(n_bins):
            sel = bins_fit == b
            counts[b] = sel.sum()
            if counts[b]:
                curves[b] = acc_fit[sel][:, pilot - 1 :].mean(axis=0)
        used = counts > 0
        choice = np.full(n_bins, budget)
        choice[used] = plan(curves[used], counts[used], budget - pilot + 1) + pilot - 1
        plans.append(choice)
        bins_apply = np.searchsorted(edges, score[apply_to], side="right")
        n_at = choice[bins_apply]  # [P_apply, R]
        got = np.take_along_axis(acc[apply_to], (n_at - 1)[..., None], axis=-1)[..., 0]
        planned_acc[apply_to] = got.mean(axis=1)
        planned_n[apply_to] = n_at.mean(axis=1)
    uniform_acc = acc[..., budget - 1].mean(axis=1)
    return {
        "plans": plans,
        "acc_planned": float(planned_acc.mean()),
        "acc_uniform": float(uniform_acc.mean()),
        "samples_used": float(planned_n.mean()),
        "prompt_diff": planned_acc - uniform_acc,
    }


def binned_tables(
    bon_inputs: Mapping[Cell, tuple[NDArray[np.float64], NDArray[np.bool_]]],
    budgets: Sequence[int],
    *,
    pilot: int,
    n_bins: int,
    n_orders: int,
    n_boot: int,
    ci_level: float,
    seed: int,
) -> pl.DataFrame:
    """Per (cell, budget): the cross-fitted binned allocation vs uniform N (one row each)."""
    rows = []
    alpha = (1 - ci_level) / 2
    for i, cell in enumerate(sorted(bon_inputs)):
        rewards, correct = bon_inputs[cell]
        for budget in budgets:
            if not pilot <= budget <= rewards.shape[1]:
                continue  # budget below the pilot or above the measured N: no plan
            rng = np.random.default_rng([seed, i, budget])
            res = binned_allocation(
                rewards, correct, budget, pilot=pilot, n_bins=n_bins, n_orders=n_orders, rng=rng
            )
            d = res["prompt_diff"]
            means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
            lo, hi = np.quantile(means, [alpha, 1 - alpha])
            rows.append(
                {
                    **dict(zip(CELL_KEYS, cell, strict=True)),
                    "budget": int(budget),
                    "pilot": int(pilot),
                    "n_bins": int(n_bins),
                    "n_prompts": int(rewards.shape[0]),
                    "plan_half_a": "/".join(map(str, res["plans"][0])),
                    "plan_half_b": "/".join(map(str, res["plans"][1])),
                    "acc_planned": res["acc_planned"],
                    "acc_uniform": res["acc_uniform"],
                    "diff": res["acc_planned"] - res["acc_uniform"],
                    "diff_lo": float(lo),
                    "diff_hi": float(hi),
                    "samples_used": res["samples_used"],
                    "n_orders": int(n_orders),
                }
            )
    return pl.DataFrame(rows, schema=_BINNED_SCHEMA)


_BINNED_SCHEMA = {
    **dict.fromkeys(CELL_KEYS, pl.String),
    "budget": pl.Int64,
    "pilot": pl.Int64,
    "n_bins": pl.Int64,
    "n_prompts": pl.Int64,
    "plan_half_a": pl.String,
    "plan_half_b": pl.String,
    "acc_planned": pl.Float64,
    "acc_uniform": pl.Float64,
    "diff": pl.Float64,
    "diff_lo": pl.Float64,
    "diff_hi": pl.Float64,
    "samples_used": pl.Float64,
    "n_orders": pl.Int64,
}
