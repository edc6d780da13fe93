"""Report sections on how to spend N samples: selection strategies compared per cell, coverage scaling."""

from __future__ import annotations

import polars as pl

from bongain.report.format import (
    CELL_KEYS,
    MISSING,
    SCHEME_LABELS,
    cell_label,
    escape,
    fmt,
    fmt_ci,
    markdown_table,
)
from bongain.schemas import (
    FIT_ALLOCATION,
    FIT_ALLOCATION_BINS,
    FIT_ALLOCATION_SUMMARY,
    FIT_STRATEGY,
    GAINS,
    SCALING,
)

#: strategy -> its column in the gains table and its label
STRATEGIES: dict[str, str] = {
    "bon_at_k": "best-of-N",
    "maj_at_k": "majority",
    "wmaj_at_k": "weighted maj.",
    "bom_at_k": "Best-of-Majority",
    "mob_at_k": "Majority-of-Bests",
    "selfcert_at_k": "self-certainty",
}


def strategy_summary(gains: pl.DataFrame) -> pl.DataFrame:
    """Per cell: gain at k = N of every strategy present (``<strategy>@N - pass@1``) with its CI ends
    shifted by pass@1 (the CI is of the accuracy; pass@1 is shared), and the best strategy among those
    the cell has a value for (``selfcert_at_k`` is null where the sampler recorded no self-certainty)."""
    present = [c for c in STRATEGIES if c in gains.columns]
    last = gains.sort([*CELL_KEYS, "k"]).group_by(CELL_KEYS, maintain_order=True)
    first = last.agg(pl.col("pass_at_k").first().alias("pass_at_1"))
    tail = last.agg(
        pl.col("n_samples").last().alias("N"),
        *[pl.col(f"{c}{end}").last() for c in present for end in ("", "_lo", "_hi")],
    )
    df = first.join(tail, on=CELL_KEYS).sort(CELL_KEYS)
    best = pl.concat_list([pl.col(c).fill_null(float("-inf")) for c in present]).list.arg_max()
    return df.with_columns(best=best.map_elements(lambda i: present[i], return_dtype=pl.String))


def strategies_section(gains: pl.DataFrame) -> list[str]:
    summary = strategy_summary(gains)
    present = [c for c in STRATEGIES if c in summary.columns]
    rows = []
    for r in summary.iter_rows(named=True):
        p1 = r["pass_at_1"]
        cells = [
            fmt_ci(r[c] - p1, r[f"{c}_lo"] - p1, r[f"{c}_hi"] - p1) if r[c] is not None else fmt(None)
            for c in present
        ]
        rows.append(
            [cell_label(r["model"], r["method"], r["task"]), r["N"], p1, *cells, STRATEGIES[r["best"]]]
        )
    wins = summary["best"].value_counts().sort(["count", "best"], descending=[True, False])
    win_text = ", ".join(f"{STRATEGIES[b]} {n}" for b, n in wins.iter_rows())
    return [
        "## Selection strategies",
        "",
        "Gain over one sample at k = N of each way to pick one of the N test samples (accuracy at N minus "
        "pass@1; bracket: the bootstrap CI over test prompts of the accuracy, shifted by pass@1). "
        "Self-certainty picks the sample the model itself is most certain of (no reward model; n/a where "
        "the sampler recorded no self-certainty, e.g. vLLM top-k entropy). "
        "Definitions, sources and tie rules: `docs/features.md`. Source: columns `<strategy>_at_k` of "
        f"`{GAINS.path}`.",
        "",
        *markdown_table(["cell", "N", "pass@1", *(STRATEGIES[c] for c in present), "best"], rows),
        "",
        f"Best strategy per cell (highest accuracy at N): {win_text}.",
        "",
    ]


#: fit.target value -> the label of its strategy
TARGET_LABELS: dict[str, str] = {
    "oracle": "oracle gap",
    **{c.removesuffix("_at_k"): label for c, label in STRATEGIES.items()},
}


def strategy_fit_section(fit: pl.DataFrame) -> list[str]:
    """Which strategy's gain the configured ridge ranks best (``fit_strategy``, one row per target: the
    oracle gap, then each strategy, per reward model where it uses the rewards; the reward model is named
    when there are several)."""
    several = fit["rm"].drop_nulls().n_unique() > 1

    def name_of(r: dict[str, object]) -> str:
        name = TARGET_LABELS.get(str(r["strategy"]), str(r["strategy"]))
        return f"{name}, RM {r['rm']}" if several and r["rm"] is not None else name

    rows = []
    for r in fit.iter_rows(named=True):
        name = name_of(r)
        marks = [m for m, on in (("fit.target", r["fit_target"]), ("best", r["best"])) if on]
        label = f"{name} ({', '.join(marks)})" if marks else name
        if r["skipped"] is not None:
            rows.append([label, *([MISSING] * 6), escape(f"skipped: {r['skipped']}")])
            continue
        rows.append(
            [
                label,
                r["n_cells"],
                r["gain_mean"],
                r["spearman"],
                r["perm_p"],
                r["null_q95"],
                r["noise_ceiling"],
                "",
            ]
        )
    first = fit.row(0, named=True) if fit.height else None
    scheme = SCHEME_LABELS.get(first["scheme"], first["scheme"]) if first else MISSING
    n_perm = first["n_perm"] if first else MISSING
    null_kind = first["null_kind"] if first else MISSING
    feats = first["features"] if first else MISSING
    best = fit.filter(pl.col("best"))
    best_text = name_of(best.row(0, named=True)) if best.height else MISSING
    return [
        "## Which strategy's gain the predictor ranks best",
        "",
        f"Source: `{FIT_STRATEGY.path}`. The configured ridge ({escape(feats)}) evaluated under the headline "
        f"scheme ({scheme}, nested CV) with the oracle gap (pass@N - pass@1) and each selection "
        "strategy's gain (accuracy at k = N minus pass@1; per reward model for the strategies that use "
        f"the rewards) as the target. p: one-sided permutation p-value of the held-out Spearman ({n_perm} "
        f"permutations of the gains, {null_kind}; the comparison's permutations), not corrected for "
        "the number of strategies; null 95%: the null's 95% quantile; ceiling: the Spearman a perfect "
        "predictor of that strategy's true gains would reach. All strategies select from the same samples "
        "of the same cells, so their rows are not independent results.",
        "",
        *markdown_table(
            ["strategy", "cells", "mean gain", "Spearman", "p", "null 95%", "ceiling", "note"], rows
        ),
        "",
        f"Ranked best (highest held-out Spearman): {best_text}.",
        "",
    ]


def scaling_section(scaling: pl.DataFrame) -> list[str]:
    """Per cell and fit: parameters, held-out RMSE and the extrapolated coverage at the largest k."""
    kmax = scaling.group_by(CELL_KEYS).agg(pl.col("k").max().alias("kmax"))
    far = scaling.join(kmax, on=CELL_KEYS).filter(pl.col("k") == pl.col("kmax")).sort([*CELL_KEYS, "fit"])
    rows = [
        [
            cell_label(r["model"], r["method"], r["task"]),
            r["fit"],
            r["param_1"],
            r["param_2"],
            r["heldout_rmse"],
            r["k"],
            fmt_ci(r["predicted"], r["predicted_lo"], r["predicted_hi"]),
        ]
        for r in far.iter_rows(named=True)
    ]
    per_cell = scaling.group_by([*CELL_KEYS, "fit"]).agg(pl.col("heldout_rmse").first().fill_nan(None))
    mean_rmse = (
        per_cell.group_by("fit").agg(pl.col("heldout_rmse").mean(), pl.col("heldout_rmse").count().alias("n"))
    ).sort("fit")
    rmse_text = "; ".join(
        f"{fit} {fmt(rmse)} ({n} of {per_cell.filter(pl.col('fit') == fit).height} cells defined)"
        for fit, rmse, n in mean_rmse.iter_rows()
    )
    return [
        "## Coverage scaling",
        "",
        "pass@k fitted per cell by the power law `exp(a k^b)` (param 1 = a, param 2 = b) and by a "
        "beta-binomial over prompts (alpha, beta), then extrapolated beyond N (bracket: bootstrap interval "
        "over test prompts). Held-out RMSE: each fit on the first N/2 samples of every prompt, judged at "
        f"k = N/2 + 1 .. N. Mean held-out RMSE over cells: {rmse_text}. Very large alpha and beta mean "
        "no overdispersion (the binomial limit). Source: "
        f"`{SCALING.path}`.",
        "",
        *markdown_table(["cell", "fit", "param 1", "param 2", "held-out RMSE", "k", "coverage at k"], rows),
        "",
    ]


def allocation_section(allocation: pl.DataFrame, summary: pl.DataFrame) -> list[str]:
    """Per budget: planned vs uniform vs oracle accuracy on the test split; per cell: the planned N."""
    rows = [
        [
            r["budget"],
            r["n_cells"],
            r["samples_planned"],
            r["acc_uniform"],
            r["acc_planned"],
            fmt_ci(r["diff"], r["diff_lo"], r["diff_hi"]),
            r["acc_oracle"],
        ]
        for r in summary.sort("budget").iter_rows(named=True)
    ]
    budgets = summary["budget"].sort().to_list()
    wide = allocation.sort([*CELL_KEYS, "budget"]).group_by(CELL_KEYS, maintain_order=True)
    plans = wide.agg(pl.col("n_planned"), pl.col("n_oracle"))
    plan_rows = [
        [
            cell_label(r["model"], r["method"], r["task"]),
            *(f"{n} (oracle {o})" for n, o in zip(r["n_planned"], r["n_oracle"], strict=True)),
        ]
        for r in plans.iter_rows(named=True)
    ]
    return [
        "## Allocating samples across cells",
        "",
        "Given an average budget of B samples per prompt, the plan gives each evaluated cell the N that "
        "maximises the total predicted gain (the leave-one-cell-out gain curves of the fit, so no cell's "
        "own test gains enter its plan; an exact knapsack). It is then scored on the test split against "
        "uniform N = B, with a bootstrap interval over test prompts of the difference; the oracle makes "
        "the same optimisation on the measured curves (an in-sample upper bound, not a method). "
        f"Source: `{FIT_ALLOCATION_SUMMARY.path}`, `{FIT_ALLOCATION.path}`.",
        "",
        *markdown_table(
            [
                "budget B",
                "cells",
                "samples used",
                "uniform acc.",
                "planned acc.",
                "planned - uniform",
                "oracle acc.",
            ],
            rows,
        ),
        "",
        "Planned N per cell:",
        "",
        *markdown_table(["cell", *(f"B = {b}" for b in budgets)], plan_rows),
        "",
    ]


def binned_section(bins: pl.DataFrame) -> list[str]:
    """Within-cell allocation by difficulty bins: per cell and budget, plan vs uniform, cross-fitted."""
    if bins.is_empty():
        return []
    rows = [
        [
            cell_label(r["model"], r["method"], r["task"]),
            r["budget"],
            f"{r['plan_half_a']} | {r['plan_half_b']}",
            r["samples_used"],
            r["acc_uniform"],
            r["acc_planned"],
            fmt_ci(r["diff"], r["diff_lo"], r["diff_hi"]),
        ]
        for r in bins.sort([*CELL_KEYS, "budget"]).iter_rows(named=True)
    ]
    weighted = bins.group_by("budget").agg(
        ((pl.col("diff") * pl.col("n_prompts")).sum() / pl.col("n_prompts").sum()).alias("mean_diff"),
        (pl.col("diff_lo") > 0).sum().alias("wins"),
        (pl.col("diff_hi") < 0).sum().alias("losses"),
        pl.len().alias("cells"),
    )
    overall = "; ".join(
        f"B = {b}: mean difference {fmt(d)}, interval above 0 in {w} and below 0 in {lo} of {c} cells"
        for b, d, w, lo, c in weighted.sort("budget").iter_rows()
    )
    first = bins.row(0, named=True)
    return [
        "## Allocating samples within a cell by difficulty",
        "",
        f"A pilot of {first['pilot']} samples per prompt (charged to the budget) is scored by the reward "
        f"model; its mean reward puts the prompt into one of {first['n_bins']} difficulty bins (lowest "
        "score first), and each bin gets the total N (pilot included) that maximises its best-of-N "
        "accuracy under an average budget of B samples per prompt. The plan is made on one half of the "
        "test prompts and scored on the other, then the halves swap (plans: half a | half b); Monte "
        f"Carlo over {first['n_orders']} random sample orders per prompt. Against uniform N = B on the "
        f"same orders, with a bootstrap interval over prompts. Prompt-weighted over cells: {overall}. "
        f"Source: `{FIT_ALLOCATION_BINS.path}`.",
        "",
        *markdown_table(
            ["cell", "B", "N per bin", "samples used", "uniform acc.", "binned acc.", "binned - uniform"],
            rows,
        ),
        "",
    ]
