"""The report's PNG figures: predicted vs real gain, best-of-k curves, stability, concentration, gain curves.

Drawn with matplotlib's default style on the Agg canvas at a fixed size and dpi, without software/time
metadata, so the files are byte-reproducible.
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

from bongain.report.format import CELL_KEYS, PREDICTOR_LABELS, cell_label

FIG_PRED_VS_ACTUAL = "predicted_vs_actual.png"
FIG_BON_CURVES = "bon_curves.png"
FIG_STABILITY = "stability.png"
FIG_CONCENTRATION = "concentration.png"
FIG_GAIN_CURVES = "gain_curves.png"
FIG_HEADROOM = "headroom.png"

_RM_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

_DPI = 100
_PNG_METADATA: dict[str, str | None] = {"Software": None}


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
    targets: Sequence[float] = (),
) -> Path:
    """Predicted 95% error (measured variance, solid) and worst-case bound (dotted) of the compact
    prediction vs prompts n (one colour per N), beside the in-sample linear-approximation residual (RMSE,
    max) and the target errors."""
    grid = sample_size
    with mpl_style.context("default"):
        fig = Figure(figsize=(6.4, 4.8), dpi=_DPI)
        ax = fig.add_subplot()
        for i, N in enumerate(sorted(grid["n_samples"].unique().to_list())):
            t = grid.filter(pl.col("n_samples") == N).sort("n_prompts")
            b = t["bound"].to_numpy().astype(np.float64)
            e = t["predicted_err95"].to_numpy().astype(np.float64)
            x = t["n_prompts"].to_numpy()
            if np.any(np.isfinite(e) & (e > 0)):
                ax.plot(x, e, "o-", markersize=3, color=f"C{i}", label=f"predicted 95% error, N={N}")
            if np.any(np.isfinite(b)):
                ax.plot(x, b, ":", linewidth=1.0, color=f"C{i}", label=f"worst-case bound, N={N}")
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
        for t in targets:
            ax.axhline(float(t), color="C3", linestyle="--", linewidth=0.8)
        for n in sorted(set(features["n_prompts"].to_list())):
            ax.axvline(float(n), color="0.5", linestyle="-.", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("validation prompts n (dash-dot: this run)")
        ax.set_ylabel("prediction error (gain units)")
        ax.set_title("Concentration of the compact predictor (red dashed: targets)", fontsize=9)
        ax.legend(loc="upper right", fontsize=6)
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


def cell_finals(gains: pl.DataFrame) -> pl.DataFrame:
    """One row per cell: the gains table's k = N row, sorted by cell."""
    return gains.sort([*CELL_KEYS, "k"]).group_by(CELL_KEYS, maintain_order=True).last().sort(CELL_KEYS)


def plot_headroom(rm_gains: Mapping[str, pl.DataFrame], path: Path) -> Path:
    """Per cell: oracle gap (x, test pass@N - pass@1) against each reward model's realised best-of-N gain
    (y), one marker per reward model, with both CIs as bars; y = x (the whole gap realised, efficiency 1)
    and y = 0 (no better than one sample) as reference lines."""
    with mpl_style.context("default"):
        fig = Figure(figsize=(6.4, 5.6), dpi=_DPI)
        ax = fig.add_subplot()
        values: list[np.ndarray] = []
        for i, (rm, g) in enumerate(rm_gains.items()):
            f = cell_finals(g)
            x = f["gain_oracle"].cast(pl.Float64).to_numpy()
            y = f["gain"].cast(pl.Float64).to_numpy()
            xiv = (
                f["gain_oracle_lo"].cast(pl.Float64).to_numpy(),
                f["gain_oracle_hi"].cast(pl.Float64).to_numpy(),
            )
            yiv = (f["gain_lo"].cast(pl.Float64).to_numpy(), f["gain_hi"].cast(pl.Float64).to_numpy())
            color = f"C{i % 10}"
            ax.errorbar(
                x,
                y,
                xerr=_err(x, xiv),
                yerr=_err(y, yiv),
                fmt="none",
                ecolor=color,
                elinewidth=0.6,
                alpha=0.35,
                capsize=1.5,
                zorder=2,
            )
            ax.scatter(  # hollow markers, growing per reward model, so that coinciding points stay visible
                x,
                y,
                marker=_RM_MARKERS[i % len(_RM_MARKERS)],
                facecolors="none",
                edgecolors=color,
                linewidths=1.2,
                label=f"RM {rm}",
                s=28 + 22 * i,
                zorder=3,
            )
            values += [x, y, *xiv, *yiv]
        allv = np.concatenate(values) if values else np.array([0.0, 1.0])
        allv = allv[np.isfinite(allv)]
        lo, hi = (min(0.0, float(allv.min())), max(0.05, float(allv.max()))) if allv.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo)
        lim = (lo - pad, hi + pad)
        ax.plot(lim, lim, color="0.6", linestyle="--", linewidth=1.0, label="gain = oracle gap")
        ax.axhline(0.0, color="0.8", linewidth=0.8)
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
        ax.set_xlabel("oracle gap per cell (pass@N - pass@1, test)")
        ax.set_ylabel("realised best-of-N gain (bon@N - pass@1, test)")
        ax.set_title("Headroom vs realised gain, one marker per reward model")
        ax.grid(True, linewidth=0.3)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        _save(fig, path)
    return path
