"""Report section: where a cell's best-of-N gain comes from, headroom x reward-model efficiency.

A cell's realised gain is its oracle gap (pass@N - pass@1: what a perfect verifier would gain) times the
reward model's efficiency (the share of that gap it realises). The section shows per reward model the
efficiency and within-prompt AUC over the cells (``fit_rm_summary``), how alike the reward models and the
headroom rank the cells (``fit_rm_agreement``), a figure of oracle gap against realised gain, and the
per-cell values with their bootstrap intervals (the gains tables). Definitions: docs/features.md and
docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from bongain.report.figures import FIG_HEADROOM, cell_finals
from bongain.report.format import CELL_KEYS, MISSING, cell_label, fmt, fmt_ci, markdown_table
from bongain.schemas import ALL, GAINS


def _label(name: str) -> str:
    return "oracle gap" if name == "oracle" else f"RM {name}"


def summary_rows(summary: pl.DataFrame) -> list[list[object]]:
    return [
        [
            f"RM {r['rm']}",
            r["n_cells"],
            r["gain_oracle_mean"],
            r["gain_mean"],
            fmt_ci(r["pooled_efficiency"], r["pooled_efficiency_lo"], r["pooled_efficiency_hi"]),
            f"{fmt(r['efficiency_median'])} ({r['n_efficiency']} cells)",
            fmt_ci(r["auc_mean"], r["auc_mean_lo"], r["auc_mean_hi"]),
            f"{fmt(r['auc_median'])} ({r['n_auc']} cells)",
        ]
        for r in summary.iter_rows(named=True)
    ]


def per_cell_rows(rm_gains: Mapping[str, pl.DataFrame]) -> tuple[list[str], list[list[object]]]:
    """Header and rows of the per-cell table: oracle gap, then gain, efficiency and AUC per reward model."""
    finals = {rm: cell_finals(g) for rm, g in rm_gains.items()}
    first = next(iter(finals.values()))
    pass1 = (
        next(iter(rm_gains.values()))
        .sort([*CELL_KEYS, "k"])
        .group_by(CELL_KEYS, maintain_order=True)
        .first()
        .sort(CELL_KEYS)["pass_at_k"]
    )
    header = ["cell", "pass@1", "oracle gap"]
    for rm in finals:
        header += [f"gain ({rm})", f"efficiency ({rm})", f"AUC ({rm})"]
    rows = []
    for i, r in enumerate(first.iter_rows(named=True)):
        row: list[object] = [
            cell_label(r["model"], r["method"], r["task"]),
            pass1[i],
            fmt_ci(r["gain_oracle"], r["gain_oracle_lo"], r["gain_oracle_hi"]),
        ]
        for f in finals.values():
            g = f.row(i, named=True)
            if tuple(g[k] for k in CELL_KEYS) != tuple(r[k] for k in CELL_KEYS):
                raise ValueError("headroom section: the reward models' gains tables hold different cells")
            row += [
                fmt_ci(g["gain"], g["gain_lo"], g["gain_hi"]),
                fmt_ci(g["efficiency"], g["efficiency_lo"], g["efficiency_hi"])
                if g["efficiency"] is not None
                else MISSING,
                fmt_ci(g["auc"], g["auc_lo"], g["auc_hi"]) if g["auc"] is not None else MISSING,
            ]
        rows.append(row)
    return header, rows


def headroom_section(
    rm_gains: Mapping[str, pl.DataFrame],
    summary: pl.DataFrame | None = None,
    agreement: pl.DataFrame | None = None,
) -> list[str]:
    """The section (its figure is drawn by the caller, :func:`bongain.report.figures.plot_headroom`)."""
    if not rm_gains:
        return []
    first = cell_finals(next(iter(rm_gains.values())))
    floor = first["gap_floor"][0] if first.height else None
    lines = [
        "## Where the gain comes from: headroom x reward-model efficiency",
        "",
        "A cell's best-of-N gain (bon@N - pass@1) is its **oracle gap** (pass@N - pass@1: what best-of-N "
        "would gain if the reward model always picked a correct sample when there is one) times the reward "
        "model's **efficiency** (realised gain / oracle gap, at most 1; 0: no better than one random sample; "
        "negative: worse). The **within-prompt AUC** is the probability that the reward model scores a "
        "correct sample above an incorrect one of the same prompt (ties 1/2; prompts with both kinds), "
        "0.5 for a reward model that cannot tell them apart. All on the test split; definitions in "
        f"docs/features.md. Efficiency is left out (n/a) for cells whose oracle gap is below {fmt(floor)} "
        "(statistics.efficiency_gap_floor): a ratio to a near-zero gap says nothing.",
        "",
    ]
    if summary is not None and summary.height:
        lines += [
            "### Reward models over the cells",
            "",
            f"Source: `{ALL['fit_rm_summary'].path}`. pooled efficiency: mean gain / mean oracle gap over "
            "all cells; brackets: percentile interval over the comparison's cluster bootstrap of cells "
            f"({summary['ci_kind'][0]}, per-cell values held fixed).",
            "",
            *markdown_table(
                [
                    "reward model",
                    "cells",
                    "mean oracle gap",
                    "mean gain",
                    "pooled efficiency",
                    "median efficiency",
                    "mean AUC",
                    "median AUC",
                ],
                summary_rows(summary),
            ),
            "",
        ]
    if agreement is not None and agreement.height:
        rows = [
            [
                _label(r["a"]),
                _label(r["b"]),
                r["n_cells"],
                fmt_ci(r["spearman"], r["spearman_lo"], r["spearman_hi"]),
            ]
            for r in agreement.iter_rows(named=True)
        ]
        lines += [
            "### Do the reward models rank the cells alike?",
            "",
            f"Source: `{ALL['fit_rm_agreement'].path}`. Spearman over cells of the two gains (oracle gap, "
            "or a reward model's best-of-N gain), with a percentile interval over the cluster bootstrap of "
            "cells. A low agreement between reward models means that a cell's best-of-N gain says more "
            "about the reward model than about the cell.",
            "",
            *markdown_table(["gain", "vs gain", "cells", "Spearman"], rows),
            "",
        ]
    header, rows = per_cell_rows(rm_gains)
    lines += [
        f"![oracle gap vs realised gain per cell]({FIG_HEADROOM})",
        "",
        f"Figure source: the k = N rows of `{GAINS.path}`, one file per cell and reward model; bars: the "
        "bootstrap CIs over test prompts.",
        "",
        "### Per cell",
        "",
        f"Source: columns `gain_oracle`, `gain`, `efficiency`, `auc` (with their bootstrap CIs over test "
        f"prompts) of `{GAINS.path}`; pass@1 of the test split (the first k row).",
        "",
        *markdown_table(header, rows),
        "",
    ]
    return lines
