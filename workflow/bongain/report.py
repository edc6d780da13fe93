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

from bongain.schemas import FEATURES, FIT_COEFFICIENTS, FIT_METRICS, FIT_PREDICTIONS, GAINS

CELL_KEYS: list[str] = ["model", "method", "task"]

#: The feature columns shown in the features table, in schema order.
FEATURE_TABLE_COLUMNS: list[str] = [
    c for c, (dtype, _) in FEATURES.columns.items() if dtype == pl.Float64 and c not in CELL_KEYS
]

PREDICTOR_LABELS: dict[str, str] = {
    "ridge": "ridge (all features)",
    "baseline": "baseline (pass@1 only)",
}

FIG_PRED_VS_ACTUAL = "predicted_vs_actual.png"
FIG_BON_CURVES = "bon_curves.png"
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
        )
        .sort(["gain", *CELL_KEYS], descending=[True, False, False, False], nulls_last=True)
    )


def _gains_section(gains: pl.DataFrame) -> list[str]:
    summary = gains_summary(gains)
    rows = [
        [
            cell_label(r["model"], r["method"], r["task"]),
            r["N"],
            r["pass_at_1"],
            r["bon_at_n"],
            r["maj_at_n"],
            r["pass_at_n"],
            r["gain"],
            f"`{cell_path(GAINS.path, r['model'], r['method'], r['task'])}`",
        ]
        for r in summary.iter_rows(named=True)
    ]
    return [
        "## Real best-of-N gains (test split)",
        "",
        f"Source: one `{GAINS.path}` per cell (column `source`); bon@N, maj@N and pass@N are the rows "
        "with k = N, pass@1 the row with k = 1. gain = bon@N - pass@1. Sorted by gain, largest first.",
        "",
        *markdown_table(["cell", "N", "pass@1", "bon@N", "maj@N", "pass@N", "gain", "source"], rows),
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
        f"![LOCO prediction vs real gain]({FIG_PRED_VS_ACTUAL})",
        "",
        f"Figure source: `{FIT_PREDICTIONS.path}`.",
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


def plot_predicted_vs_actual(predictions: pl.DataFrame, path: Path) -> Path:
    """LOCO ridge (circles) and baseline (crosses) prediction vs real gain, with the y = x line."""
    p = predictions.sort(CELL_KEYS)
    gain = p["gain"].to_numpy().astype(np.float64)
    ridge = p["pred_ridge"].to_numpy().astype(np.float64)
    base = p["pred_baseline"].to_numpy().astype(np.float64)
    with mpl_style.context("default"):
        fig = Figure(figsize=(6.4, 6.0), dpi=_DPI)
        ax = fig.add_subplot()
        allv = np.concatenate([gain, ridge, base])
        allv = allv[np.isfinite(allv)]
        lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo) if hi > lo else 0.05
        lim = (lo - pad, hi + pad)
        ax.plot(lim, lim, color="0.6", linestyle="--", linewidth=1.0, label="y = x")
        ax.scatter(gain, ridge, marker="o", color="C0", label="ridge (all features)", zorder=3)
        ax.scatter(gain, base, marker="x", color="C1", label="baseline (pass@1 only)", zorder=3)
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


# --------------------------------------------------------------------------------------------------
# the report


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
) -> Path:
    """Write ``out_dir/report.md`` and its figures; return the path of the Markdown file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_predicted_vs_actual(predictions, out / FIG_PRED_VS_ACTUAL)
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
        *_metrics_section(metrics),
        *_predictions_section(predictions),
        *_coefficients_section(coefficients),
    ]
    while lines and lines[-1] == "":
        lines.pop()
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
