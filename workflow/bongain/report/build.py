"""The human-readable report: one Markdown file plus PNG figures, rebuilt from the Parquet artifacts.

Every table names the Parquet file(s) its numbers come from. Output is byte-reproducible: tables are
sorted deterministically, floats are printed with 3 decimals, figures are drawn with matplotlib's
default style on the Agg canvas at a fixed size and dpi, and the PNGs carry no software/time metadata.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.style as mpl_style
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bongain.constants import GRADE_STATUSES
from bongain.schemas import ALL, FEATURES, FIT_COEFFICIENTS, FIT_METRICS, FIT_PREDICTIONS, GAINS, GRADES

CELL_KEYS: list[str] = ["model", "method", "task"]

#: The feature columns shown in the features table, in schema order (bootstrap CI columns
#: ``*_lo`` / ``*_hi`` and ``ci_level`` stay in the Parquet file).
FEATURE_TABLE_COLUMNS: list[str] = [
    c
    for c, (dtype, _) in FEATURES.columns.items()
    if dtype == pl.Float64 and c not in CELL_KEYS and not c.endswith(("_lo", "_hi")) and c != "ci_level"
]

PREDICTOR_LABELS: dict[str, str] = {
    "ridge": "ridge (fit.features)",
    "baseline": "baseline (pass@1 only)",
    "all": "ridge (all features)",
    "core": "ridge (strict core)",
    "core_entropy": "ridge (core + entropy)",
}

SCHEME_LABELS: dict[str, str] = {
    "leave_one_cell_out": "leave-one-cell-out",
    "leave_one_task_out": "leave-one-task-out",
    "leave_one_method_out": "leave-one-method-out",
    "leave_one_model_out": "leave-one-model-out",
}

FIG_PRED_VS_ACTUAL = "predicted_vs_actual.png"
FIG_BON_CURVES = "bon_curves.png"
FIG_STABILITY = "stability.png"
FIG_CONCENTRATION = "concentration.png"
FIG_GAIN_CURVES = "gain_curves.png"

#: Tables of the statistics stages that render_report accepts in ``stats`` (by schema name).
STATS_TABLES: tuple[str, ...] = (
    "fit_comparison",
    "fit_curve",
    "fit_curve_coverage",
    "fit_screen",
    "fit_stability",
    "fit_stability_path",
    "fit_ols",
    "fit_concentration",
    "fit_concentration_terms",
    "fit_sample_size",
)
_DPI = 100
_PNG_METADATA: dict[str, str | None] = {"Software": None}

MISSING = "n/a"


# --------------------------------------------------------------------------------------------------
# formatting


def fmt(value: object) -> str:
    """A table entry: floats with 3 decimals (NaN/inf/None -> 'n/a', -0.000 -> 0.000), others str()."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return MISSING
        s = f"{v:.3f}"
        return "0.000" if s == "-0.000" else s
    return str(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A GitHub-flavoured Markdown table; numeric columns are right-aligned."""
    numeric = [
        bool(rows)
        and all(isinstance(r[i], int | float | np.number) and not isinstance(r[i], bool) for r in rows)
        for i in range(len(headers))
    ]
    out = ["| " + " | ".join(_escape(h) for h in headers) + " |"]
    out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for r in rows:
        if len(r) != len(headers):
            raise ValueError(f"row {r!r} has {len(r)} entries for {len(headers)} headers")
        out.append("| " + " | ".join(_escape(fmt(v)) for v in r) + " |")
    return out


def cell_label(model: str, method: str, task: str) -> str:
    return f"{model}/{method}/{task}"


def cell_path(template: str, model: str, method: str, task: str) -> str:
    return template.format(model=model, method=method, task=task)


def _summary_value(value: object) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_summary_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_summary_value(v) for v in value)
    return fmt(value)


def _distinct(values: Sequence[object]) -> str:
    uniq = sorted({v for v in values if v is not None})
    return ", ".join(str(v) for v in uniq) if uniq else MISSING


# --------------------------------------------------------------------------------------------------
# tables


def gains_summary(gains: pl.DataFrame) -> pl.DataFrame:
    """Per cell: pass@1, bon@N, maj@N, pass@N and gain, sorted by gain (desc) then cell."""
    g = gains.sort([*CELL_KEYS, "k"])
    return (
        g.group_by(CELL_KEYS, maintain_order=True)
        .agg(
            pl.col("n_samples").last().alias("N"),
            pl.col("pass_at_k").filter(pl.col("k") == 1).first().alias("pass_at_1"),
            pl.col("bon_at_k").last().alias("bon_at_n"),
            pl.col("maj_at_k").last().alias("maj_at_n"),
            pl.col("pass_at_k").last().alias("pass_at_n"),
            pl.col("gain").last().alias("gain"),
            *[pl.col(c).last().alias(c) for c in ("gain_lo", "gain_hi") if c in g.columns],
        )
        .sort(["gain", *CELL_KEYS], descending=[True, False, False, False], nulls_last=True)
    )


def _gains_section(gains: pl.DataFrame) -> list[str]:
    summary = gains_summary(gains)
    has_ci = {"gain_lo", "gain_hi"} <= set(summary.columns)
    rows = [
        [
            cell_label(r["model"], r["method"], r["task"]),
            r["N"],
            r["pass_at_1"],
            r["bon_at_n"],
            r["maj_at_n"],
            r["pass_at_n"],
            r["gain"],
            *([_interval(r["gain_lo"], r["gain_hi"])] if has_ci else []),
            f"`{cell_path(GAINS.path, r['model'], r['method'], r['task'])}`",
        ]
        for r in summary.iter_rows(named=True)
    ]
    ci = (
        " gain CI: columns `gain_lo` / `gain_hi` (bootstrap over test prompts) of the row with k = N."
        if has_ci
        else ""
    )
    headers = ["cell", "N", "pass@1", "bon@N", "maj@N", "pass@N", "gain", *(["gain CI"] if has_ci else [])]
    return [
        "## Real best-of-N gains (test split)",
        "",
        f"Source: one `{GAINS.path}` per cell (column `source`); bon@N, maj@N and pass@N are the rows "
        "with k = N, pass@1 the row with k = 1. gain = bon@N - pass@1. Sorted by gain, largest first." + ci,
        "",
        *markdown_table([*headers, "source"], rows),
        "",
    ]


def _features_section(features: pl.DataFrame) -> list[str]:
    f = features.sort(CELL_KEYS)
    cols = [c for c in FEATURE_TABLE_COLUMNS if c in f.columns]
    rows = [
        [
            cell_label(r["model"], r["method"], r["task"]),
            *[r[c] for c in cols],
            f"`{cell_path(FEATURES.path, r['model'], r['method'], r['task'])}`",
        ]
        for r in f.iter_rows(named=True)
    ]
    return [
        "## Validation-set features",
        "",
        f"Source: one `{FEATURES.path}` per cell (column `source`). Definitions in docs/features.md.",
        "",
        *markdown_table(["cell", *cols, "source"], rows),
        "",
    ]


def _metrics_section(metrics: pl.DataFrame) -> list[str]:
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


def _predictions_section(predictions: pl.DataFrame) -> list[str]:
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


def _coefficients_section(coefficients: pl.DataFrame) -> list[str]:
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


def _summary_section(
    features: pl.DataFrame, gains: pl.DataFrame, config_summary: Mapping[str, object]
) -> list[str]:
    cells = features.select(CELL_KEYS).unique().height
    n_samples = features["n_samples"].to_list() + gains["n_samples"].to_list()
    lines = [
        "## Summary",
        "",
        f"- **cells** (model x method x task): {cells}",
        f"- **models**: {_distinct(features['model'].to_list())}",
        f"- **methods**: {_distinct(features['method'].to_list())}",
        f"- **tasks**: {_distinct(features['task'].to_list())}",
        f"- **N** (samples per prompt): {_distinct(n_samples)}",
        f"- **validation prompts per cell** (features): {_distinct(features['n_prompts'].to_list())}",
        f"- **test prompts per cell** (gains): {_distinct(gains['n_prompts'].to_list())}",
    ]
    if config_summary:
        lines += ["", "Configuration:", ""]
        lines += [f"- **{_escape(str(k))}**: {_escape(_summary_value(v))}" for k, v in config_summary.items()]
    return [*lines, ""]


# --------------------------------------------------------------------------------------------------
# figures


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png", dpi=_DPI, metadata=_PNG_METADATA)


def _pred_intervals(curve: pl.DataFrame | None, p: pl.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Jackknife+ interval of each evaluated cell's gain (the fit_curve row with the largest k)."""
    if curve is None or curve.is_empty():
        return None
    c = curve.filter(pl.col("status") == "evaluated")
    c = c.filter(pl.col("k") == c["k"].max()).select([*CELL_KEYS, "pred_lo", "pred_hi"])
    j = p.select(CELL_KEYS).join(c, on=CELL_KEYS, how="left", maintain_order="left")
    return j["pred_lo"].to_numpy().astype(np.float64), j["pred_hi"].to_numpy().astype(np.float64)


def gain_intervals(gains: pl.DataFrame | None, p: pl.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-cell (gain_lo, gain_hi) from the gains table (row with k = N) when it has those columns."""
    if gains is None or not {"gain_lo", "gain_hi"} <= set(gains.columns):
        return None
    g = (
        gains.sort([*CELL_KEYS, "k"])
        .group_by(CELL_KEYS, maintain_order=True)
        .agg(pl.col("gain_lo").last(), pl.col("gain_hi").last())
    )
    j = p.select(CELL_KEYS).join(g, on=CELL_KEYS, how="left", maintain_order="left")
    return (
        j["gain_lo"].cast(pl.Float64).to_numpy().astype(np.float64),
        j["gain_hi"].cast(pl.Float64).to_numpy().astype(np.float64),
    )


def _err(center: np.ndarray, iv: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray | None:
    """matplotlib asymmetric error bars from an interval; non-finite bounds draw no bar."""
    if iv is None:
        return None
    lo, hi = iv
    down = np.where(np.isfinite(lo), center - lo, 0.0)
    up = np.where(np.isfinite(hi), hi - center, 0.0)
    return np.vstack([np.clip(np.nan_to_num(down), 0, None), np.clip(np.nan_to_num(up), 0, None)])


def plot_predicted_vs_actual(
    predictions: pl.DataFrame,
    path: Path,
    curve: pl.DataFrame | None = None,
    gains: pl.DataFrame | None = None,
) -> Path:
    """LOCO ridge (circles) and baseline (crosses) prediction vs real gain, with the y = x line.

    Vertical bars: the ridge prediction's jackknife+ interval (``fit_curve`` at k = N) when given;
    horizontal bars: the real gain's CI when the gains table has ``gain_lo`` / ``gain_hi``.
    """
    p = predictions.sort(CELL_KEYS)
    gain = p["gain"].to_numpy().astype(np.float64)
    ridge = p["pred_ridge"].to_numpy().astype(np.float64)
    base = p["pred_baseline"].to_numpy().astype(np.float64)
    piv = _pred_intervals(curve, p)
    giv = gain_intervals(gains, p)
    with mpl_style.context("default"):
        fig = Figure(figsize=(6.4, 6.0), dpi=_DPI)
        ax = fig.add_subplot()
        parts = [gain, ridge, base]
        for iv in (piv, giv):
            if iv is not None:
                parts += [iv[0], iv[1]]
        allv = np.concatenate(parts)
        allv = allv[np.isfinite(allv)]
        lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo) if hi > lo else 0.05
        lim = (lo - pad, hi + pad)
        ax.plot(lim, lim, color="0.6", linestyle="--", linewidth=1.0, label="y = x")
        if piv is not None or giv is not None:
            ax.errorbar(
                gain,
                ridge,
                yerr=_err(ridge, piv),
                xerr=_err(gain, giv),
                fmt="none",
                ecolor="C0",
                elinewidth=0.8,
                alpha=0.5,
                capsize=2,
                zorder=2,
            )
        ax.scatter(gain, ridge, marker="o", color="C0", label=PREDICTOR_LABELS["ridge"], zorder=3)
        ax.scatter(gain, base, marker="x", color="C1", label=PREDICTOR_LABELS["baseline"], zorder=3)
        for r, x, y in zip(p.iter_rows(named=True), gain, ridge, strict=True):
            if np.isfinite(x) and np.isfinite(y):
                ax.annotate(
                    cell_label(r["model"], r["method"], r["task"]),
                    (x, y),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=6,
                )
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
        ax.set_xlabel("real gain (bon@N - pass@1, test)")
        ax.set_ylabel("leave-one-cell-out predicted gain")
        ax.set_title("Predicted vs real best-of-N gain")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        _save(fig, path)
    return path


def plot_bon_curves(gains: pl.DataFrame, path: Path, ncols_max: int = 4) -> Path:
    """bon@k, pass@k and maj@k vs k, one panel per cell, shared axes."""
    g = gains.sort([*CELL_KEYS, "k"])
    cells = g.select(CELL_KEYS).unique(maintain_order=True).rows()
    n = max(len(cells), 1)
    ncols = min(ncols_max, n)
    nrows = math.ceil(n / ncols)
    with mpl_style.context("default"):
        fig = Figure(figsize=(3.0 * ncols, 2.4 * nrows + 0.5), dpi=_DPI)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i >= len(cells):
                ax.set_visible(False)
                continue
            model, method, task = cells[i]
            c = g.filter((pl.col("model") == model) & (pl.col("method") == method) & (pl.col("task") == task))
            k = c["k"].to_numpy()
            ax.plot(k, c["bon_at_k"].to_numpy(), "o-", color="C0", markersize=3, label="bon@k")
            ax.plot(k, c["pass_at_k"].to_numpy(), "s--", color="C2", markersize=3, label="pass@k")
            ax.plot(k, c["maj_at_k"].to_numpy(), "^:", color="C3", markersize=3, label="maj@k")
            ax.set_title(cell_label(model, method, task), fontsize=7)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, linewidth=0.3)
            if i % ncols == 0:
                ax.set_ylabel("accuracy", fontsize=7)
            if i // ncols == nrows - 1 or i + ncols >= len(cells):
                ax.set_xlabel("k", fontsize=7)
                ax.tick_params(labelbottom=True)
        if cells:
            handles, labels = axes.flat[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="upper center", ncols=3, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.45 / fig.get_figheight()))
        _save(fig, path)
    return path


def plot_stability(stability: pl.DataFrame, path_table: pl.DataFrame, path: Path) -> Path:
    """Left: max selection frequency per feature (bars, threshold line). Right: frequency vs penalty."""
    st = stability.sort(["max_freq", "feature"], descending=[False, False], nulls_last=False)
    thr = float(stability["threshold"][0]) if stability.height else float("nan")
    with mpl_style.context("default"):
        fig = Figure(figsize=(10.0, 4.8), dpi=_DPI)
        ax1, ax2 = fig.subplots(1, 2)
        y = np.arange(st.height)
        freq = np.nan_to_num(st["max_freq"].to_numpy().astype(np.float64))
        colors = ["C2" if s else "0.6" for s in st["stable"].to_list()]
        ax1.barh(y, freq, color=colors)
        ax1.set_yticks(y, st["feature"].to_list(), fontsize=7)
        if math.isfinite(thr):
            ax1.axvline(thr, color="C3", linestyle="--", linewidth=1.0, label=f"threshold {thr:.2f}")
            ax1.legend(loc="lower right", fontsize=7)
        ax1.set_xlim(0.0, 1.02)
        ax1.set_xlabel("max selection frequency (admissible penalties)")
        ax1.set_title("Stability selection", fontsize=9)
        feats = sorted(path_table["feature"].unique().to_list())
        stable = set(stability.filter(pl.col("stable"))["feature"].to_list())
        for i, f in enumerate(feats):
            t = path_table.filter(pl.col("feature") == f).sort("lambda_rel")
            ax2.plot(
                t["lambda_rel"].to_numpy(),
                t["freq"].to_numpy(),
                color=f"C{i % 10}" if f in stable else "0.7",
                linewidth=1.5 if f in stable else 0.8,
                label=f if f in stable else None,
            )
        adm = path_table.filter(pl.col("admissible"))["lambda_rel"]
        if adm.len():
            ax2.axvspan(float(adm.min()), float(adm.max()), color="C2", alpha=0.08, label="admissible")
        ax2.set_xscale("log")
        ax2.set_ylim(-0.02, 1.02)
        ax2.set_xlabel("lambda / lambda_max")
        ax2.set_ylabel("selection frequency")
        ax2.set_title("Selection frequency path (grey: not stable)", fontsize=9)
        ax2.legend(loc="lower left", fontsize=7)
        fig.tight_layout()
        _save(fig, path)
    return path


def plot_concentration(
    sample_size: pl.DataFrame,
    ols: pl.DataFrame,
    features: pl.DataFrame,
    path: Path,
    concentration: pl.DataFrame | None = None,
) -> Path:
    """Bound on the compact prediction's estimation error vs prompts n (one line per N), beside the
    in-sample linear-approximation residual (RMSE, max) and the target errors."""
    grid = sample_size.filter(pl.col("kind") == "grid")
    with mpl_style.context("default"):
        fig = Figure(figsize=(6.4, 4.8), dpi=_DPI)
        ax = fig.add_subplot()
        for i, N in enumerate(sorted(grid["n_samples"].unique().to_list())):
            t = grid.filter(pl.col("n_samples") == N).sort("n_prompts")
            b = t["bound"].to_numpy().astype(np.float64)
            if np.any(np.isfinite(b)):
                ax.plot(
                    t["n_prompts"].to_numpy(), b, "o-", markersize=3, color=f"C{i}", label=f"bound, N={N}"
                )
        if ols.height:
            rmse, mx = float(ols["resid_rmse"][0]), float(ols["resid_max_abs"][0])
            ax.axhline(rmse, color="k", linestyle="-", linewidth=1.0, label=f"residual RMSE {rmse:.3f}")
            ax.axhline(mx, color="k", linestyle=":", linewidth=1.0, label=f"max |residual| {mx:.3f}")
        if concentration is not None and "boot_halfwidth" in concentration.columns:
            hw = concentration.filter(pl.col("boot_halfwidth").is_finite())
            if hw.height:
                ax.scatter(
                    hw["n_prompts"].to_numpy(),
                    hw["boot_halfwidth"].to_numpy(),
                    marker="x",
                    color="C4",
                    zorder=3,
                    label="measured: bootstrap half-width per cell",
                )
        for t in sorted(sample_size.filter(pl.col("kind") == "target")["target"].unique().to_list()):
            ax.axhline(float(t), color="C3", linestyle="--", linewidth=0.8)
        for n in sorted(set(features["n_prompts"].to_list())):
            ax.axvline(float(n), color="0.5", linestyle="-.", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("validation prompts n (dash-dot: this run)")
        ax.set_ylabel("|prediction error| bound (gain units)")
        ax.set_title("Concentration of the compact predictor (red dashed: targets)", fontsize=9)
        ax.legend(loc="upper right", fontsize=7)
        ax.grid(True, which="major", linewidth=0.3)
        fig.tight_layout()
        _save(fig, path)
    return path


def plot_gain_curves(curve: pl.DataFrame, path: Path, ncols_max: int = 4) -> Path:
    """Predicted gain@k with its jackknife+ band per cell; real gain@k (dots) for evaluated cells."""
    c = curve.sort(["status", *CELL_KEYS, "k"])
    cells = c.select(["status", *CELL_KEYS]).unique(maintain_order=True).rows()
    n = max(len(cells), 1)
    ncols = min(ncols_max, n)
    nrows = math.ceil(n / ncols)
    with mpl_style.context("default"):
        fig = Figure(figsize=(3.0 * ncols, 2.4 * nrows + 0.5), dpi=_DPI)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i >= len(cells):
                ax.set_visible(False)
                continue
            status, model, method, task = cells[i]
            t = c.filter(
                (pl.col("status") == status)
                & (pl.col("model") == model)
                & (pl.col("method") == method)
                & (pl.col("task") == task)
            )
            k = t["k"].to_numpy()
            lo = t["pred_lo"].to_numpy().astype(np.float64)
            hi = t["pred_hi"].to_numpy().astype(np.float64)
            ok = np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(k, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), color="C0", alpha=0.2)
            ax.plot(k, t["pred"].to_numpy(), "-", color="C0", label="predicted")
            if status == "evaluated":
                ax.plot(k, t["gain_k"].to_numpy(), "o", color="k", markersize=3, label="real")
            ax.set_title(f"{cell_label(model, method, task)} ({status})", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, linewidth=0.3)
            if i % ncols == 0:
                ax.set_ylabel("gain@k", fontsize=7)
            if i // ncols == nrows - 1 or i + ncols >= len(cells):
                ax.set_xlabel("k", fontsize=7)
                ax.tick_params(labelbottom=True)
        if cells:
            handles, labels = axes.flat[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="upper center", ncols=2, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.45 / fig.get_figheight()))
        _save(fig, path)
    return path


# --------------------------------------------------------------------------------------------------
# statistics sections


def _ci(v: object, lo: object, hi: object) -> str:
    return f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]"


def _interval(lo: object, hi: object) -> str:
    def b(x: object) -> str:
        if isinstance(x, float) and math.isinf(x):
            return "-inf" if x < 0 else "+inf"
        return fmt(x)

    return f"[{b(lo)}, {b(hi)}]"


def _order(df: pl.DataFrame, col: str, labels: Mapping[str, str]) -> pl.DataFrame:
    order = {name: i for i, name in enumerate(labels)}
    return df.with_columns(
        pl.col(col).replace_strict(order, default=len(order), return_dtype=pl.Int64).alias(f"_o_{col}")
    )


def _comparison_section(comp: pl.DataFrame) -> list[str]:
    c = _order(_order(comp, "scheme", SCHEME_LABELS), "predictor", PREDICTOR_LABELS)
    c = c.sort(["_o_scheme", "scheme", "_o_predictor", "predictor"])
    rows = [
        [
            SCHEME_LABELS.get(r["scheme"], r["scheme"]),
            PREDICTOR_LABELS.get(r["predictor"], r["predictor"]),
            r["n_cells"],
            r["n_folds"],
            _ci(r["spearman"], r["spearman_lo"], r["spearman_hi"]),
            _ci(r["kendall"], r["kendall_lo"], r["kendall_hi"]),
            _ci(r["mae"], r["mae_lo"], r["mae_hi"]),
            r["alpha_median"],
        ]
        for r in c.iter_rows(named=True)
    ]
    level = fmt(float(comp["ci_level"][0])) if comp.height else MISSING
    n_boot = comp["n_boot"][0] if comp.height else MISSING
    feats = {r["predictor"]: r["features"] for r in comp.iter_rows(named=True)}
    return [
        "## Predictor comparison across evaluation schemes",
        "",
        f"Source: `{ALL['fit_comparison'].path}` (per-cell held-out predictions: "
        f"`{ALL['fit_heldout'].path}`). Each group of cells (one cell, task, method or model) is predicted "
        "by a ridge fitted on the other cells only; its penalty is chosen by LOO CV inside those cells "
        f"(nested CV). Brackets: {level} percentile bootstrap CI over {n_boot} resamples of the cells "
        "(seeded). Schemes with fewer than 2 groups are omitted.",
        "",
        *markdown_table(
            ["scheme", "predictor", "cells", "folds", "Spearman", "Kendall", "MAE", "median alpha"], rows
        ),
        "",
        "Feature sets: " + "; ".join(f"{PREDICTOR_LABELS.get(k, k)} = {v}" for k, v in feats.items()) + ".",
        "",
        LOO_NOTE,
        "",
    ]


LOO_NOTE = (
    "Reading the ranks: when the inner CV picks a very large penalty, a held-out prediction is close to the "
    "mean gain of the *other* cells, which is lower exactly when the held-out gain is higher; such a "
    "predictor gets a strongly *negative* Spearman/Kendall by construction (the leave-one-out "
    "anti-correlation artifact), not because its feature predicts the gain backwards. Compare such rows "
    "by MAE, and see the median alpha column."
)


def _curve_section(curve: pl.DataFrame, coverage: pl.DataFrame) -> list[str]:
    cov = coverage.with_columns(pl.col("k").fill_null(10**9).alias("_k")).sort(["_k"])
    rows = [
        [
            "pooled k >= 2" if r["scope"] != "k" else str(r["k"]),
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
        "(jackknife+ needs ceil(level x (n + 1)) <= n), so the intervals are infinite and cover trivially.",
        "",
        *markdown_table(["k", "held-out cells", "nominal", "empirical coverage", "mean width"], rows),
        "",
        f"![predicted gain curves]({FIG_GAIN_CURVES})",
        "",
        f"Figure source: `{ALL['fit_curve'].path}`.",
        "",
    ]


def _screen_section(screen: pl.DataFrame) -> list[str]:
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
            _interval(r["pred_lo"], r["pred_hi"]),
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


def _stability_section(stab: pl.DataFrame) -> list[str]:
    s = stab.sort(["max_freq", "feature"], descending=[True, False], nulls_last=True)
    rows = [
        [r["feature"], r["max_freq"], r["lambda_at_max"], fmt(r["stable"]), fmt(r["in_compact"])]
        for r in s.iter_rows(named=True)
    ]
    r0 = stab.row(0, named=True) if stab.height else {}
    stable = s.filter(pl.col("stable"))["feature"].to_list()
    return [
        "## Stability selection (bootstrap Lasso)",
        "",
        f"Source: `{ALL['fit_stability'].path}` and `{ALL['fit_stability_path'].path}` (frequency per "
        f"penalty). B = {r0.get('n_boot', MISSING)} seeded resamples of the cells; a penalty is admissible "
        f"when it selects at most q = {r0.get('max_selected', MISSING)} features on average; stable = "
        f"max frequency over admissible penalties >= {fmt(r0.get('threshold'))}. Expected number of "
        f"falsely stable features <= {fmt(r0.get('ev_bound'))} (Meinshausen-Buehlmann). Stable set: "
        f"{', '.join(stable) if stable else 'empty'}.",
        "",
        *markdown_table(["feature", "max frequency", "lambda at max", "stable", "in compact model"], rows),
        "",
        f"![stability selection]({FIG_STABILITY})",
        "",
        f"Figure source: `{ALL['fit_stability'].path}`, `{ALL['fit_stability_path'].path}`.",
        "",
    ]


def _ols_section(ols: pl.DataFrame) -> list[str]:
    rows = [
        [
            r["feature"],
            r["coef"],
            r["se"],
            r["t"],
            r["p_value"],
            _interval(r["ci_lo"], r["ci_hi"]),
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


def _concentration_section(
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
            _interval(r["range_lo"], r["range_hi"]),
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


def statistics_sections(stats: Mapping[str, pl.DataFrame], features: pl.DataFrame, out: Path) -> list[str]:
    """The report sections (and figures) of the statistics tables present in ``stats``."""
    lines: list[str] = []
    if "fit_comparison" in stats:
        lines += _comparison_section(stats["fit_comparison"])
    if "fit_curve" in stats and "fit_curve_coverage" in stats:
        plot_gain_curves(stats["fit_curve"], out / FIG_GAIN_CURVES)
        lines += _curve_section(stats["fit_curve"], stats["fit_curve_coverage"])
    if "fit_screen" in stats:
        lines += _screen_section(stats["fit_screen"])
    if "fit_stability" in stats and "fit_stability_path" in stats:
        plot_stability(stats["fit_stability"], stats["fit_stability_path"], out / FIG_STABILITY)
        lines += _stability_section(stats["fit_stability"])
    if "fit_ols" in stats:
        lines += _ols_section(stats["fit_ols"])
    if {"fit_concentration", "fit_concentration_terms", "fit_sample_size", "fit_ols"} <= set(stats):
        plot_concentration(
            stats["fit_sample_size"],
            stats["fit_ols"],
            features,
            out / FIG_CONCENTRATION,
            stats["fit_concentration"],
        )
        lines += _concentration_section(
            stats["fit_concentration"],
            stats["fit_concentration_terms"],
            stats["fit_sample_size"],
            stats["fit_ols"],
        )
    return lines


# --------------------------------------------------------------------------------------------------
# the report


def grading_counts(grades: pl.DataFrame) -> pl.DataFrame:
    """Samples per grading status for each cell and split (a column per status, zeros filled)."""
    keys = ["model", "method", "task", "split"]
    counts = grades.group_by([*keys, "status"]).len()
    rows = []
    for key, group in counts.group_by(keys, maintain_order=False):
        by_status = dict(zip(group["status"].to_list(), group["len"].to_list(), strict=True))
        unknown = sorted(set(by_status) - set(GRADE_STATUSES))
        if unknown:
            raise ValueError(f"grades: unknown status value(s) {unknown}")
        rows.append(
            {**dict(zip(keys, key, strict=True)), **{st: by_status.get(st, 0) for st in GRADE_STATUSES}}
        )
    schema = {**dict.fromkeys(keys, pl.String), **dict.fromkeys(GRADE_STATUSES, pl.Int64)}
    return pl.DataFrame(rows, schema=schema).sort(keys)


def _grading_section(grades: pl.DataFrame) -> list[str]:
    counts = grading_counts(grades)
    total = {st: int(counts[st].sum()) for st in GRADE_STATUSES}
    ungradable = total["no_answer"] + total["timeout"] + total["error"]
    rows = [
        [cell_label(r["model"], r["method"], r["task"]), r["split"], *(r[st] for st in GRADE_STATUSES)]
        for r in counts.iter_rows(named=True)
        if any(r[st] for st in GRADE_STATUSES[1:])
    ]
    return [
        "## Grading",
        "",
        f"Source: one `{GRADES.path}` per cell and split. Every sample gets a status: `ok` (graded), "
        "`no_answer` (nothing extractable), `timeout` (the equivalence check ran past "
        "`grading.timeout_s`) or `error` (extraction or comparison raised); only `ok` samples can be "
        "correct. "
        f"All splits: {sum(total.values())} samples, {ungradable} ungradable "
        f"({total['no_answer']} no answer, {total['timeout']} timeout, {total['error']} error).",
        "",
        *(
            markdown_table(["cell", "split", *GRADE_STATUSES], rows)
            if rows
            else ["Every sample of every cell and split was graded (`ok`)."]
        ),
        "",
    ]


def render_report(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    predictions: pl.DataFrame,
    metrics: pl.DataFrame,
    coefficients: pl.DataFrame,
    out_dir: Path,
    *,
    title: str,
    config_summary: Mapping[str, object],
    stats: Mapping[str, pl.DataFrame] | None = None,
    grades: pl.DataFrame | None = None,
) -> Path:
    """Write ``out_dir/report.md`` and its figures; return the path of the Markdown file.

    ``grades`` (all cells' GRADES rows, any splits) adds the grading-status section when given.

    ``stats`` maps schema names of the statistics stages (:data:`STATS_TABLES`) to their tables; each
    section (and figure) is rendered when its tables are present.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = dict(stats or {})
    unknown = sorted(set(stats) - set(STATS_TABLES))
    if unknown:
        raise ValueError(f"render_report: unknown statistics table(s) {unknown}")
    plot_predicted_vs_actual(predictions, out / FIG_PRED_VS_ACTUAL, stats.get("fit_curve"), gains)
    plot_bon_curves(gains, out / FIG_BON_CURVES)
    lines = [
        f"# {title}",
        "",
        *_summary_section(features, gains, config_summary),
        *_gains_section(gains),
        "### Best-of-k curves",
        "",
        f"![bon@k, pass@k and maj@k per cell]({FIG_BON_CURVES})",
        "",
        f"Figure source: one `{GAINS.path}` per cell.",
        "",
        *_features_section(features),
        *(_grading_section(grades) if grades is not None else []),
        *_metrics_section(metrics),
        *_predictions_section(predictions),
        *_coefficients_section(coefficients),
        *statistics_sections(stats, features, out),
    ]
    while lines and lines[-1] == "":
        lines.pop()
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
