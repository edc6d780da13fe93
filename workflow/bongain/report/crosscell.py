"""Report sections of the cross-cell gain predictor (ridge fit and statistics stages).

Leave-one-cell-out metrics, held-out predictions and coefficients, the comparison across evaluation
schemes, the predicted gain curves and the screened cells.
"""

from __future__ import annotations

import math

import polars as pl

from bongain.report.figures import FIG_GAIN_CURVES, FIG_PRED_VS_ACTUAL
from bongain.report.format import (
    CELL_KEYS,
    MISSING,
    PREDICTOR_LABELS,
    SCHEME_LABELS,
    cell_label,
    fmt,
    fmt_ci,
    fmt_interval,
    label_order,
    markdown_table,
    target_label,
)
from bongain.schemas import ALL, FIT_COEFFICIENTS, FIT_METRICS, FIT_PREDICTIONS, GAINS


def metrics_section(metrics: pl.DataFrame) -> list[str]:
    order = {name: i for i, name in enumerate(PREDICTOR_LABELS)}
    m = metrics.with_columns(
        pl.col("predictor").replace_strict(order, default=len(order), return_dtype=pl.Int64).alias("_o")
    ).sort(["_o", "predictor"])
    rows = [
        [
            PREDICTOR_LABELS.get(r["predictor"], r["predictor"]),
            r["n_cells"],
            r["spearman"],
            r["kendall"],
            r["mae"],
        ]
        for r in m.iter_rows(named=True)
    ]
    return [
        "## Cross-cell fit: leave-one-cell-out metrics",
        "",
        f"Source: `{FIT_METRICS.path}`. Each cell's gain is predicted by a ridge fitted on all other cells "
        "(standardised features, penalty by inner leave-one-out CV). Kendall is tau-b; "
        f"{MISSING} = undefined (constant predictions).",
        "",
        *markdown_table(["predictor", "cells", "Spearman", "Kendall", "MAE"], rows),
        "",
        LOO_NOTE,
        "",
        f"![LOCO prediction vs real gain]({FIG_PRED_VS_ACTUAL})",
        "",
        f"Figure source: `{FIT_PREDICTIONS.path}`; vertical bars (when drawn): the ridge prediction's "
        f"jackknife+ interval, `{ALL['fit_curve'].path}` at k = N; horizontal bars (when the gains table "
        f"has `gain_lo`/`gain_hi`): the real gain's CI from `{GAINS.path}`.",
        "",
    ]


def predictions_section(predictions: pl.DataFrame) -> list[str]:
    p = predictions.sort(["gain", *CELL_KEYS], descending=[True, False, False, False], nulls_last=True)
    rows = [
        [cell_label(r["model"], r["method"], r["task"]), r["gain"], r["pred_ridge"], r["pred_baseline"]]
        for r in p.iter_rows(named=True)
    ]
    return [
        "### Held-out predictions",
        "",
        f"Source: `{FIT_PREDICTIONS.path}`. Sorted by real gain, largest first.",
        "",
        *markdown_table(["cell", "gain", "ridge", "baseline"], rows),
        "",
    ]


def coefficients_section(coefficients: pl.DataFrame) -> list[str]:
    features: list[str] = []
    for f in coefficients["feature"].to_list():
        if f not in features and f != "(intercept)":
            features.append(f)
    features.append("(intercept)")
    lookup = {(r["predictor"], r["feature"]): r for r in coefficients.iter_rows(named=True)}
    preds = [p for p in PREDICTOR_LABELS if p in set(coefficients["predictor"].to_list())]
    preds += sorted(set(coefficients["predictor"].to_list()) - set(preds))

    def coef(p: str, f: str) -> float | None:
        r = lookup.get((p, f))
        return None if r is None else r["coef"]

    def alpha(p: str) -> float | None:
        vals = coefficients.filter(pl.col("predictor") == p)["alpha"].to_list()
        return vals[0] if vals else None

    rows: list[list[object]] = [[f, *[coef(p, f) for p in preds]] for f in features]
    rows.append(["alpha (ridge penalty)", *[alpha(p) for p in preds]])
    return [
        "## Predictor coefficients (refitted on all cells)",
        "",
        f"Source: `{FIT_COEFFICIENTS.path}`. Coefficients are in gain units per standard deviation of the "
        f"feature; {MISSING} = feature not used (not in the predictor, or constant / non-finite across "
        "cells).",
        "",
        *markdown_table(["feature", *[PREDICTOR_LABELS.get(p, p) for p in preds]], rows),
        "",
    ]


def _target_rows(comp: pl.DataFrame, target: str, rm: str | None) -> pl.DataFrame:
    same_rm = pl.col("rm").is_null() if rm is None else pl.col("rm") == rm
    return comp.filter((pl.col("target") == target) & same_rm)


def _one(rows: pl.DataFrame, scheme: str, predictor: str) -> dict[str, object] | None:
    r = rows.filter((pl.col("scheme") == scheme) & (pl.col("predictor") == predictor))
    return r.row(0, named=True) if r.height else None


def trivial_verdict(row: dict[str, object]) -> str:
    """What a held-out row's ``delta_trivial`` CI says: whether the predictor adds to the validation gap."""
    d, lo, hi = row["delta_trivial"], row["delta_trivial_lo"], row["delta_trivial_hi"]
    if d is None or not all(isinstance(v, float) and math.isfinite(v) for v in (d, lo, hi)):
        return "has no comparison with the validation gap"
    text = f"{fmt(d)} {fmt_interval(lo, hi)}"
    if lo > 0:  # type: ignore[operator]
        return f"ranks better than the validation gap alone (difference {text})"
    if hi < 0:  # type: ignore[operator]
        return f"ranks worse than the validation gap alone (difference {text})"
    return f"shows no clear difference from the validation gap alone (difference {text})"


def headline_section(comp: pl.DataFrame) -> list[str]:
    """The report's headline: the ridge under the hardest held-out scheme the grid supports, for every
    target side by side (the oracle gap, each reward model's gain), next to the trivial baseline."""
    src = ALL["fit_comparison"].path
    heads = comp.filter(pl.col("headline"))
    if heads.is_empty():
        return []
    fit_rows = heads.filter(pl.col("fit_target"))
    h = (fit_rows if fit_rows.height else heads).row(0, named=True)
    scheme = SCHEME_LABELS.get(h["scheme"], h["scheme"])
    table_rows = []
    verdicts = []
    for r in heads.iter_rows(named=True):
        rows = _target_rows(comp, r["target"], r["rm"])
        gap = _one(rows, r["scheme"], "gap")
        base = _one(rows, r["scheme"], "baseline")
        raw_gap = _one(rows, "raw", "gap")
        label = target_label(r["target"], r["rm"]) + (" (fit.target)" if r["fit_target"] else "")
        table_rows.append(
            [
                label,
                fmt_ci(r["spearman"], r["spearman_lo"], r["spearman_hi"]),
                r["perm_p"],
                r["null_q95"],
                r["noise_ceiling"],
                f"{fmt(gap['spearman'])} (p = {fmt(gap['perm_p'])})" if gap else MISSING,
                fmt_ci(r["delta_trivial"], r["delta_trivial_lo"], r["delta_trivial_hi"]),
                f"{fmt(base['spearman'])} (p = {fmt(base['perm_p'])})" if base else MISSING,
                f"{fmt(raw_gap['spearman'])} (p = {fmt(raw_gap['perm_p'])})" if raw_gap else MISSING,
            ]
        )
        chance = "better than chance" if r["perm_p"] <= 0.05 else "not better than chance"
        verdicts.append(
            f"- **{target_label(r['target'], r['rm'])}**: the ridge ranks the held-out cells {chance} "
            f"(p = {fmt(r['perm_p'])}); it {trivial_verdict(r)}."
        )
    lines = [
        "## Headline: how well validation statistics rank cells by headroom and by each reward model's gain",
        "",
        f"Source: `{src}` (rows with `headline = true`, one per target). Scheme: **{scheme}** "
        f"({h['n_folds']} held-out groups, {h['n_cells']} cells), the hardest held-out scheme this grid "
        "supports (leave one base-model family / model / method / task out with at least 3 groups; "
        "leave-one-cell-out when none has 3). Targets: the **oracle gap** (test pass@N - pass@1, what a "
        "perfect verifier would gain: the headroom) and each reward model's realised **best-of-N gain** "
        "(bon@N - pass@1). Ridge: the configured features, nested CV; p: one-sided permutation p-value "
        f"({h['n_perm']} permutations, {h['null_kind']}); ceiling: the Spearman a perfect predictor of the "
        "true gains would reach against the measured ones. **Trivial baseline**: the validation split's "
        "own oracle gap (coverage - pass@1) as the only feature, through the same procedure and null; "
        "ridge - trivial: the difference of the held-out Spearmans with a paired "
        f"{fmt(h['ci_level'])} {h['ci_kind']} bootstrap CI. No fit: the Spearman of the validation gap "
        "itself with the target (two-sided p).",
        "",
        *markdown_table(
            [
                "target",
                "ridge Spearman",
                "p",
                "null 95%",
                "ceiling",
                "trivial (validation gap)",
                "ridge - trivial",
                "pass@1 (same procedure)",
                "validation gap, no fit",
            ],
            table_rows,
        ),
        "",
        *verdicts,
        "",
        f"Configured target (fit.target): **{target_label(h['target'], h['rm'])}**.",
        "",
        f"- **{PREDICTOR_LABELS['ridge']}**: held-out Spearman **{fmt(h['spearman'])}**, permutation "
        f"p = **{fmt(h['perm_p'])}** ({h['n_perm']} permutations, {h['null_kind']}; the null's 95% quantile "
        f"is {fmt(h['null_q95'])}); {fmt(h['ci_level'])} {h['ci_kind']} bootstrap CI "
        f"{fmt_interval(h['spearman_lo'], h['spearman_hi'])}.",
        f"- **noise ceiling**: a perfect predictor of the true gains would reach Spearman "
        f"{fmt(h['noise_ceiling'])} against the measured gains (MAE floor {fmt(h['mae_floor'])}), given "
        "each cell's bootstrap CI of its gain.",
    ]
    rows = _target_rows(comp, h["target"], h["rm"])
    base = _one(rows, h["scheme"], "baseline")
    if base:
        lines.append(
            f"- **{PREDICTOR_LABELS['baseline']}, same procedure**: Spearman {fmt(base['spearman'])}, "
            f"p = {fmt(base['perm_p'])}."
        )
    raw = _one(rows, "raw", "baseline")
    if raw:
        lines.append(
            f"- **pass@1 itself** (no fitting, no leave-one-out artifact): Spearman of pass@1 with the gain "
            f"{fmt(raw['spearman'])}, two-sided p = {fmt(raw['perm_p'])}."
        )
    lines += [
        "",
        "The permutation p-value is the inference to read: with few tasks and methods the grouped "
        "bootstrap CIs are very wide and their coverage depends on the grid (measured by simulation in "
        "docs/statistics.md), and the raw held-out Spearman carries the leave-one-out anti-correlation, "
        "which the permutation null reproduces. The targets are not independent (the same cells, and "
        "best-of-N's gain is bounded by the oracle gap), and their p-values are not corrected for "
        "their number.",
        "",
    ]
    return lines


RAW_LABELS: dict[str, str] = {
    "baseline": "pass@1 vs gain (no fit)",
    "gap": "validation gap vs gain (no fit)",
}


def comparison_section(comp: pl.DataFrame) -> list[str]:
    labels = {"raw": "no fit", **SCHEME_LABELS}
    targets = comp.select("target", "rm").unique(maintain_order=True).rows()
    body: list[str] = []
    for target, rm in targets:
        if len(targets) > 1:
            mark = " (fit.target)" if _target_rows(comp, target, rm)["fit_target"].any() else ""
            body += [f"### Target: {target_label(target, rm)}{mark}", ""]
        body += [*_comparison_table(_target_rows(comp, target, rm), labels), ""]
    first = comp.row(0, named=True) if comp.height else None
    level = fmt(float(first["ci_level"])) if first else MISSING
    n_boot = first["n_boot"] if first else MISSING
    ci_kind = first["ci_kind"] if first else MISSING
    n_perm = first["n_perm"] if first else MISSING
    null_kind = first["null_kind"] if first else MISSING
    feats = {r["predictor"]: r["features"] for r in comp.iter_rows(named=True) if r["scheme"] != "raw"}
    return [
        "## Predictor comparison across evaluation schemes",
        "",
        f"Source: `{ALL['fit_comparison'].path}` (per-cell held-out predictions: "
        f"`{ALL['fit_heldout'].path}`). Each group of cells (one cell, task, method, model or base-model "
        "family) is predicted "
        "by a ridge fitted on the other cells only; its penalty is chosen by LOO CV inside those cells "
        f"(nested CV). Brackets: {level} percentile bootstrap CI over {n_boot} resamples of {ci_kind} "
        f"(seeded). p: permutation p-value of the Spearman, the whole nested CV rerun on {n_perm} "
        f"permutations of the gains ({null_kind}); one-sided (greater) for held-out rows, two-sided for "
        "the no-fit rows. null 95%: the null's 95% quantile (of |rho| for the two-sided rows). "
        "ceiling: the Spearman a perfect predictor of the true gains would reach against the measured "
        "ones. vs trivial: the row's Spearman minus the trivial predictor's (validation gap) under the "
        "same scheme. Schemes with fewer than 2 groups are omitted. A scheme marked '= ...' has the "
        "same folds as the scheme named (every family has one model): its numbers repeat that scheme's, "
        "not a second result."
        + (" One table per target (the oracle gap, each reward model's gain)." if len(targets) > 1 else ""),
        "",
        *body,
        "Feature sets: " + "; ".join(f"{PREDICTOR_LABELS.get(k, k)} = {v}" for k, v in feats.items()) + ".",
        "",
        LOO_NOTE,
        "",
    ]


def _comparison_table(comp: pl.DataFrame, labels: dict[str, str]) -> list[str]:
    c = label_order(label_order(comp, "scheme", labels), "predictor", PREDICTOR_LABELS)
    c = c.sort(["_o_scheme", "scheme", "_o_predictor", "predictor"])
    rows = [
        [
            RAW_LABELS.get(r["predictor"], "no fit") if r["scheme"] == "raw" else scheme_label(r, labels),
            PREDICTOR_LABELS.get(r["predictor"], r["predictor"]),
            r["n_cells"],
            r["n_folds"],
            fmt_ci(r["spearman"], r["spearman_lo"], r["spearman_hi"]),
            fmt_ci(r["kendall"], r["kendall_lo"], r["kendall_hi"]),
            fmt_ci(r["mae"], r["mae_lo"], r["mae_hi"]),
            r["perm_p"],
            r["null_q95"],
            r["noise_ceiling"],
            fmt_ci(r["delta_trivial"], r["delta_trivial_lo"], r["delta_trivial_hi"])
            if r["delta_trivial"] is not None
            else MISSING,
            r["alpha_median"],
        ]
        for r in c.iter_rows(named=True)
    ]
    return markdown_table(
        [
            "scheme",
            "predictor",
            "cells",
            "folds",
            "Spearman",
            "Kendall",
            "MAE",
            "p",
            "null 95%",
            "ceiling",
            "vs trivial",
            "median alpha",
        ],
        rows,
    )


def scheme_label(row: dict[str, object], labels: dict[str, str]) -> str:
    """A comparison row's scheme label; a scheme repeating another's folds says so."""
    label = labels.get(str(row["scheme"]), str(row["scheme"]))
    alias = row.get("same_as")
    if alias:
        label += f" (= {labels.get(str(alias), str(alias))}: one model per family)"
    return label


LOO_NOTE = (
    "Reading the ranks: when the inner CV picks a very large penalty, a held-out prediction is close to the "
    "mean gain of the *other* cells, which is lower exactly when the held-out gain is higher; such a "
    "predictor gets a strongly *negative* Spearman/Kendall by construction (the leave-one-out "
    "anti-correlation artifact), not because its feature predicts the gain backwards. The permutation "
    "p-value corrects for it: the null reruns the same procedure, so it has the same artifact."
)


def curve_section(curve: pl.DataFrame, coverage: pl.DataFrame) -> list[str]:
    cov = coverage.with_columns(pl.col("k").fill_null(10**9).alias("_k")).sort(["_k"])
    rows = [
        [
            {"per_cell_k_ge_2": "per cell, k >= 2", "whole_curve": "whole curve (every k >= 2)"}.get(
                r["scope"], str(r["k"])
            ),
            r["n_cells"],
            r["level"],
            r["coverage"],
            "unbounded" if r["mean_width"] == math.inf else fmt(r["mean_width"]),
        ]
        for r in cov.iter_rows(named=True)
    ]
    return [
        "## Predicted gain curves with prediction intervals",
        "",
        f"Source: `{ALL['fit_curve'].path}` (per cell and k) and `{ALL['fit_curve_coverage'].path}`. "
        "gain@k = bon@k - pass@1, one ridge per k on the fit.features, with jackknife+ intervals over "
        "cells. Evaluated cells: leave-one-cell-out prediction, interval built from the other cells only "
        "(leave-two-out), so the coverage below is measured on held-out cells. Screened cells: fit on all "
        "evaluated cells. gain@1 is 0 by definition. `unbounded`: too few cells for the nominal level "
        "(jackknife+ needs ceil(level x (n + 1)) <= n), so the intervals are infinite and cover trivially. "
        "The last two rows count each cell once (its k values are not independent): the mean over cells of "
        "the fraction of its k >= 2 covered, and the fraction of cells whose whole curve is covered.",
        "",
        *markdown_table(["k", "held-out cells", "nominal", "empirical coverage", "mean width"], rows),
        "",
        f"![predicted gain curves]({FIG_GAIN_CURVES})",
        "",
        f"Figure source: `{ALL['fit_curve'].path}`.",
        "",
    ]


def screen_section(screen: pl.DataFrame) -> list[str]:
    src = ALL["fit_screen"].path
    if screen.is_empty():
        return [
            "## Screened cells",
            "",
            f"Source: `{src}`. No screened cells in this configuration (config key `screen`).",
            "",
        ]
    s = screen.sort(["rank", *CELL_KEYS])
    rows = [
        [
            r["rank"],
            cell_label(r["model"], r["method"], r["task"]),
            r["pred"],
            fmt_interval(r["pred_lo"], r["pred_hi"]),
            r["frac_evaluated_below"],
            r["tokens_per_sample"],
            r["avoided_tokens"],
            r["avoided_verifier_calls"],
        ]
        for r in s.iter_rows(named=True)
    ]
    return [
        "## Screened cells (validation pass only)",
        "",
        f"Source: `{src}`. Ranked by predicted gain (ridge on fit.features trained on the evaluated "
        f"cells); interval: jackknife+ at level {fmt(float(s['level'][0]))}. Avoided cost = what the full "
        "evaluation would have added: (test + verifier_train prompts) x N samples at the cell's "
        "validation tokens per sample, and one verifier call per such sample. Totals: "
        f"{fmt(float(s['avoided_tokens'].sum()))} tokens and {int(s['avoided_verifier_calls'].sum())} "
        "verifier calls (column sums).",
        "",
        *markdown_table(
            [
                "rank",
                "cell",
                "predicted gain",
                "interval",
                "evaluated cells below",
                "tokens/sample",
                "avoided tokens",
                "avoided verifier calls",
            ],
            rows,
        ),
        "",
    ]
