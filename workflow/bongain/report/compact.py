"""Report sections of the compact model: stability selection, its OLS fit, concentration bound and
sample-size advice."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from bongain.report.figures import FIG_CONCENTRATION, FIG_STABILITY
from bongain.report.format import CELL_KEYS, MISSING, cell_label, fmt, fmt_interval, markdown_table
from bongain.schemas import ALL


def stability_section(stab: pl.DataFrame) -> list[str]:
    s = stab.sort(["max_freq", "feature"], descending=[True, False], nulls_last=True)
    rows = [
        [r["feature"], r["max_freq"], r["lambda_at_max"], fmt(r["stable"]), fmt(r["in_compact"])]
        for r in s.iter_rows(named=True)
    ]
    r0 = stab.row(0, named=True) if stab.height else {}
    stable = s.filter(pl.col("stable"))["feature"].to_list()
    vac = bool(r0.get("bound_vacuous", True))
    return [
        "## Stability selection (complementary pairs)",
        "",
        f"Source: `{ALL['fit_stability'].path}` and `{ALL['fit_stability_path'].path}` (frequency per "
        f"penalty). Shah & Samworth (2013): B = {r0.get('n_boot', MISSING)} seeded complementary pairs of "
        f"disjoint halves of {r0.get('half_size', MISSING)} cells (without replacement); on each half the "
        "selector is the union of the Lasso selections over the admissible penalties (from lambda_max down "
        f"while the union selects at most q = {r0.get('max_selected', MISSING)} features on average; "
        f"measured q_hat = {fmt(r0.get('q_hat'))}); stable = selected in at least "
        f"{fmt(r0.get('threshold'))} of the halves. Expected number of falsely stable features <= "
        f"{fmt(r0.get('ev_bound'))}"
        + (
            " — **vacuous**: the bound does not rule out that every stable feature is false; read the "
            "frequencies as a ranking."
            if vac
            else "."
        )
        + (
            f" Halves of {r0.get('half_size')} cells (fewer than 6 cells): every usable column is perfectly "
            "correlated with the gain on a half, so no feature is declared stable."
            if isinstance(r0.get("half_size"), int) and r0["half_size"] < 3
            else ""
        )
        + f" Stable set: {', '.join(stable) if stable else 'empty'}.",
        "",
        *markdown_table(
            ["feature", "union frequency", "smallest admissible lambda", "stable", "in compact model"], rows
        ),
        "",
        f"![stability selection]({FIG_STABILITY})",
        "",
        f"Figure source: `{ALL['fit_stability'].path}`, `{ALL['fit_stability_path'].path}`.",
        "",
    ]


def ols_section(ols: pl.DataFrame) -> list[str]:
    rows = [
        [
            r["feature"],
            r["coef"],
            r["se"],
            r["t"],
            r["p_value"],
            fmt_interval(r["ci_lo"], r["ci_hi"]),
            r["coef_std"],
        ]
        for r in ols.iter_rows(named=True)
    ]
    r0 = ols.row(0, named=True) if ols.height else {}
    return [
        "## Compact model (OLS, for inference)",
        "",
        f"Source: `{ALL['fit_ols'].path}`; full statsmodels summary: "
        "[`results/fit/ols_summary.txt`](../fit/ols_summary.txt). Basis: "
        f"{r0.get('basis', MISSING)} (the stable set when non-empty and small enough for the cells, else "
        f"the strict core). {r0.get('n_cells', MISSING)} cells, residual df {fmt(r0.get('df_resid'))}, "
        f"R^2 {fmt(r0.get('r2'))}, in-sample residual RMSE {fmt(r0.get('resid_rmse'))}, max |residual| "
        f"{fmt(r0.get('resid_max_abs'))}. Coefficients on the raw feature scale; `per SD` = coef x SD.",
        "",
        *markdown_table(["feature", "coef", "SE", "t", "p", "95% CI", "per SD"], rows),
        "",
    ]


def _smallest_n(size: pl.DataFrame, N: int, column: str, target: float) -> int | None:
    ok = size.filter((pl.col("n_samples") == N) & (pl.col(column) <= target)).sort("n_prompts")
    return int(ok["n_prompts"][0]) if ok.height else None


def concentration_section(
    conc: pl.DataFrame,
    terms: pl.DataFrame,
    size: pl.DataFrame,
    ols: pl.DataFrame,
    check: pl.DataFrame | None = None,
    targets: Sequence[float] = (0.02, 0.05),
) -> list[str]:
    c = conc.sort(["status", *CELL_KEYS])
    rows = [
        [
            cell_label(r["model"], r["method"], r["task"]),
            r["status"],
            r["n_prompts"],
            r["n_samples"],
            r["bound"],
            r["boot_halfwidth"],
            r["pred"],
            r["gain"],
            r["abs_residual"],
        ]
        for r in c.iter_rows(named=True)
    ]
    t = (
        terms.group_by(["feature", "kind"], maintain_order=True)
        .agg(
            pl.col("range_lo").min(),
            pl.col("range_hi").max(),
            pl.col("coef").first(),
            pl.col("eps").max(),
            pl.col("contribution").max(),
        )
        .sort("feature")
    )
    term_rows = [
        [
            r["feature"],
            r["kind"],
            fmt_interval(r["range_lo"], r["range_hi"]),
            r["coef"],
            r["eps"],
            r["contribution"],
        ]
        for r in t.iter_rows(named=True)
    ]
    Ns = sorted(size["n_samples"].unique().to_list())
    ns = sorted(size["n_prompts"].unique().to_list())
    lookup = {(r["n_prompts"], r["n_samples"]): r for r in size.iter_rows(named=True)}

    def cell(n: int, N: int) -> str:
        r = lookup.get((n, N))
        return MISSING if r is None else f"{fmt(r['predicted_err95'])} ({fmt(r['bound'])})"

    grid_rows = [[n, *[cell(n, N) for N in Ns]] for n in ns]
    target_rows = []
    for t in targets:
        for N in Ns:
            a_n = _smallest_n(size, N, "predicted_err95", t)
            b_n = _smallest_n(size, N, "bound", t)
            target_rows.append([t, N, MISSING if a_n is None else a_n, MISSING if b_n is None else b_n])
    check_rows = (
        [
            [
                r["check"],
                r["n_cells"],
                r["n_prompts"],
                r["n_samples"],
                r["predicted_sd"],
                r["observed_sd"],
                r["ratio"],
            ]
            for r in check.iter_rows(named=True)
        ]
        if check is not None
        else []
    )
    delta = fmt(float(conc["delta"][0])) if conc.height else MISSING
    r0 = ols.row(0, named=True) if ols.height else {}
    return [
        "## Concentration of the compact predictor and sample-size advice",
        "",
        f"Source: `{ALL['fit_concentration'].path}`. With probability >= 1 - delta (delta = {delta}, union "
        "bound over the compact features), the compact prediction computed from the cell's n prompts x N "
        "samples is within `bound` of its population value (Hoeffding for means of bounded per-prompt "
        "quantities, McDiarmid for spreads; assumptions in docs/statistics.md). The linear-approximation "
        f"error of the compact model is reported beside it: in-sample residual RMSE "
        f"{fmt(r0.get('resid_rmse'))}, max |residual| {fmt(r0.get('resid_max_abs'))} "
        f"(`{ALL['fit_ols'].path}`).",
        "",
        "`bootstrap` is the measured counterpart: sum over compact features of |coef| x half-width of the "
        "feature's bootstrap CI over the cell's prompts (features' `*_lo` / `*_hi` columns).",
        "",
        *markdown_table(
            ["cell", "status", "n", "N", "bound", "bootstrap", "compact pred", "gain", "|residual|"], rows
        ),
        "",
        f"Per-feature terms, worst case over cells (max of eps and |coef| x eps over the rows of "
        f"`{ALL['fit_concentration_terms'].path}`):",
        "",
        *markdown_table(["feature", "kind", "per-prompt range", "coef", "eps", "|coef| x eps"], term_rows),
        "",
        "### Sample-size advice from measured variance",
        "",
        f"Source: `{ALL['fit_sample_size'].path}`. Each evaluated cell's compact-prediction variance is "
        "split into a between-prompt part (shrinks with prompts n) and a within-prompt part (shrinks with "
        "n x N), measured from its validation samples (prompt bootstrap and within-prompt bootstrap; "
        "docs/statistics.md). Entries: predicted 95% error 1.96 x SD (root mean over cells), and in "
        "brackets the worst-case Hoeffding/McDiarmid bound.",
        "",
        *markdown_table(["n prompts", *[f"N={N}" for N in Ns]], grid_rows),
        "",
        f"Smallest n of the grid for a target error (config `fit.concentration.targets`); {MISSING} = not "
        "reached on the grid.",
        "",
        *markdown_table(
            ["target", "N", "smallest n (measured variance)", "smallest n (worst-case bound)"], target_rows
        ),
        "",
        f"Check by subsampling the measured cells (`{ALL['fit_sample_size_check'].path}`): the prediction's "
        "SD between disjoint parts of each cell's prompts (and samples), against what the variance model "
        "predicts for parts of that size.",
        "",
        *markdown_table(
            [
                "check",
                "cells",
                "prompts per part",
                "samples per prompt",
                "predicted SD",
                "observed SD",
                "ratio",
            ],
            check_rows,
        ),
        "",
        f"![concentration bound vs n]({FIG_CONCENTRATION})",
        "",
        f"Figure source: `{ALL['fit_sample_size'].path}`, `{ALL['fit_ols'].path}`.",
        "",
    ]
