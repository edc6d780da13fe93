"""Per-cell report sections: real best-of-N gains, validation-set features and grading statuses."""

from __future__ import annotations

import polars as pl

from bongain.constants import GRADE_STATUSES
from bongain.report.format import CELL_KEYS, cell_label, cell_path, fmt_interval, markdown_table
from bongain.schemas import FEATURES, GAINS, GRADES

#: The feature columns shown in the features table, in schema order (bootstrap CI columns
#: ``*_lo`` / ``*_hi`` and ``ci_level`` stay in the Parquet file).
FEATURE_TABLE_COLUMNS: list[str] = [
    c
    for c, (dtype, _) in FEATURES.columns.items()
    if dtype == pl.Float64 and c not in CELL_KEYS and not c.endswith(("_lo", "_hi")) and c != "ci_level"
]


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


def gains_section(gains: pl.DataFrame) -> list[str]:
    """The cells' best-of-N gains under one reward model (``gains`` holds one reward model's tables)."""
    summary = gains_summary(gains)
    rm = str(gains["rm"][0]) if "rm" in gains.columns and gains.height else None
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
            *([fmt_interval(r["gain_lo"], r["gain_hi"])] if has_ci else []),
            f"`{cell_path(GAINS.path, r['model'], r['method'], r['task'], rm)}`",
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
        (f"Reward model: **{rm}** (fit.reward_model). " if rm else "")
        + f"Source: one `{GAINS.path}` per cell and reward model (column `source`); bon@N, maj@N and "
        "pass@N are the rows with k = N, pass@1 the row with k = 1. gain = bon@N - pass@1. Sorted by gain, "
        "largest first." + ci,
        "",
        *markdown_table([*headers, "source"], rows),
        "",
    ]


def features_section(features: pl.DataFrame) -> list[str]:
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


def grading_section(grades: pl.DataFrame) -> list[str]:
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
