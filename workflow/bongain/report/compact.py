"""Report sections of the compact model: stability selection, its OLS fit, concentration bound and
sample-size advice."""

from __future__ import annotations

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


def concentration_section(
    conc: pl.DataFrame, terms: pl.DataFrame, size: pl.DataFrame, ols: pl.DataFrame
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
    grid = size.filter(pl.col("kind") == "grid")
    Ns = sorted(grid["n_samples"].unique().to_list())
    ns = sorted(grid["n_prompts"].unique().to_list())
    lookup = {(r["n_prompts"], r["n_samples"]): r["bound"] for r in grid.iter_rows(named=True)}
    grid_rows = [[n, *[lookup.get((n, N)) for N in Ns]] for n in ns]
    tg = size.filter(pl.col("kind") == "target").sort(["target", "n_samples"])
    target_rows = [
        [r["target"], r["n_samples"], MISSING if r["n_prompts"] is None else r["n_prompts"], r["bound"]]
        for r in tg.iter_rows(named=True)
    ]
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
        f"Bound by (n prompts, N samples), worst case over the evaluated cells' ranges. Source: "
        f"`{ALL['fit_sample_size'].path}` (kind = grid).",
        "",
        *markdown_table(["n prompts", *[f"N={N}" for N in Ns]], grid_rows),
        "",
        f"Smallest n for a target error. Source: `{ALL['fit_sample_size'].path}` (kind = target); "
        f"{MISSING} = not reachable (a feature without a stated range).",
        "",
        *markdown_table(["target", "N", "smallest n", "bound at n"], target_rows),
        "",
        f"![concentration bound vs n]({FIG_CONCENTRATION})",
        "",
        f"Figure source: `{ALL['fit_sample_size'].path}`, `{ALL['fit_ols'].path}`.",
        "",
    ]
