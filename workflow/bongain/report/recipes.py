"""Report section on post-training recipes: what each recipe does to pass@1, answer diversity, agreement
and best-of-N gain, per base model, with CIs (definitions in ``docs/statistics.md``, "Post-training
recipes").

Per (model, method) every statistic is the **mean over the tasks** of the cell values. Its CI propagates
the cells' bootstrap intervals: each cell's standard error is read off its percentile interval as
``se = (hi - lo) / (2 z)`` with ``z`` the normal quantile of the cell's ``ci_level``; the cells of
different tasks and methods use disjoint samples, so they are treated as independent and the SE of the
mean over T tasks is ``sqrt(sum se_t^2) / T``; the interval is ``mean +- z se`` (normal). The change vs the
as-shipped method is the mean over the tasks both methods have of the per-task differences, with
``se = sqrt(sum se_method^2 + sum se_ref^2) / T``. The methods share their prompts, whose difficulty
correlates the two cells positively, so that difference interval errs on the wide side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import polars as pl

from bongain.report.format import CELL_KEYS, fmt_ci, markdown_table
from bongain.schemas import FEATURES, GAINS

AS_SHIPPED = "as shipped"

#: statistic -> (source table, column, label); pass@1 and gain from the test split (GAINS), the two
#: answer statistics from the validation split (FEATURES).
STATISTICS: dict[str, tuple[str, str, str]] = {
    "pass1": ("gains", "pass_at_k", "pass@1"),
    "diversity": ("features", "answer_diversity", "answer diversity"),
    "agreement": ("features", "agreement_mean", "agreement"),
    "gain": ("gains", "gain", "BoN gain"),
}

#: The level of the section's intervals when the cells' ``ci_level`` values differ.
DEFAULT_LEVEL = 0.95


def z_of(level: float) -> float:
    """The two-sided normal quantile of a ``level`` interval (1.960 for 0.95)."""
    return NormalDist().inv_cdf(0.5 + level / 2)


def chain_label(chain: Sequence[Sequence[str]]) -> str:
    """``[["sft", "sft"], ["sft-dpo", "dpo"]]`` -> ``sft -> sft-dpo (dpo)``: recipe names innermost first,
    each with its kind where the name is not the kind; ``as shipped`` for the empty chain."""
    if not chain:
        return AS_SHIPPED
    return " -> ".join(name if name == kind else f"{name} ({kind})" for name, kind in chain)


def _float(v: object) -> float:
    return math.nan if v is None else float(v)  # type: ignore[arg-type]


def cell_values(features: pl.DataFrame, gains: pl.DataFrame) -> pl.DataFrame:
    """One row per cell present in both tables: for each statistic ``s`` of :data:`STATISTICS` its value
    ``s`` and standard error ``s_se`` (from the cell's interval), and the cells' ``ci_level`` values."""
    g = gains.sort([*CELL_KEYS, "k"])
    first = g.group_by(CELL_KEYS, maintain_order=True).first()
    cols: dict[str, pl.DataFrame] = {"gains": first, "features": features}
    out = None
    for stat, (table, col, _) in STATISTICS.items():
        df = cols[table]
        z = pl.col("ci_level").map_elements(z_of, return_dtype=pl.Float64)
        part = df.select(
            *CELL_KEYS,
            pl.col(col).cast(pl.Float64).alias(stat),
            ((pl.col(f"{col}_hi") - pl.col(f"{col}_lo")) / (2 * z)).alias(f"{stat}_se"),
            pl.col("ci_level").alias(f"{stat}_level"),
        )
        out = part if out is None else out.join(part, on=CELL_KEYS, how="inner")
    assert out is not None
    return out.sort(CELL_KEYS)


def _mean_se(values: Sequence[float], ses: Sequence[float]) -> tuple[float, float]:
    t = len(values)
    mean = sum(values) / t
    se = math.sqrt(sum(s * s for s in ses)) / t
    return mean, se


def recipe_summary(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    chains: Mapping[str, Sequence[Sequence[str]]],
) -> tuple[pl.DataFrame, float]:
    """Per (model, method): the mean over tasks of each statistic with its CI (``s``, ``s_lo``, ``s_hi``)
    and the change vs the model's reference as-shipped method over the shared tasks (``d_s``, ``d_s_lo``,
    ``d_s_hi``; null for the reference itself or without one); also ``recipe``, ``chain``, ``depth``,
    ``reference``, ``n_tasks``. Returns the table and the level of its intervals.

    Methods missing from ``chains`` count as shipped. The reference of a model is its first as-shipped
    method in ``chains`` order (then by name). Rows: per model, the reference first, then by chain depth,
    then in ``chains`` order."""
    cells = cell_values(features, gains)
    levels = {lv for stat in STATISTICS for lv in cells[f"{stat}_level"].drop_nulls().unique().to_list()}
    level = levels.pop() if len(levels) == 1 else DEFAULT_LEVEL
    z = z_of(level)
    order = {m: i for i, m in enumerate(chains)}
    # (model, method) -> task -> statistic -> (cell value, cell SE)
    per: dict[tuple[str, str], dict[str, dict[str, tuple[float, float]]]] = {}
    for (model, method), df in cells.group_by(["model", "method"], maintain_order=True):
        per[(str(model), str(method))] = {
            r["task"]: {s: (_float(r[s]), _float(r[f"{s}_se"])) for s in STATISTICS}
            for r in df.iter_rows(named=True)
        }
    rows = []
    for model in sorted({m for m, _ in per}):
        methods = sorted(
            (me for m, me in per if m == model),
            key=lambda me: (len(chains.get(me, [])), order.get(me, len(order)), me),
        )
        shipped = [me for me in methods if not chains.get(me)]
        ref = shipped[0] if shipped else None
        methods = ([ref] if ref else []) + [me for me in methods if me != ref]
        for method in methods:
            tasks = per[(model, method)]
            chain = chains.get(method, [])
            row: dict[str, object] = {
                "model": model,
                "method": method,
                "recipe": chain[-1][0] if chain else AS_SHIPPED,
                "chain": chain_label(chain),
                "depth": len(chain),
                "reference": ref,
                "n_tasks": len(tasks),
            }
            shared = sorted(set(tasks) & set(per[(model, ref)])) if ref is not None and method != ref else []
            for s in STATISTICS:
                mean, se = _mean_se([tasks[t][s][0] for t in tasks], [tasks[t][s][1] for t in tasks])
                row.update({s: mean, f"{s}_lo": mean - z * se, f"{s}_hi": mean + z * se})
                if shared:
                    ref_tasks = per[(model, str(ref))]
                    d = [tasks[t][s][0] - ref_tasks[t][s][0] for t in shared]
                    d_se = [math.hypot(tasks[t][s][1], ref_tasks[t][s][1]) for t in shared]
                    dm, dse = _mean_se(d, d_se)
                    row.update({f"d_{s}": dm, f"d_{s}_lo": dm - z * dse, f"d_{s}_hi": dm + z * dse})
                else:
                    row.update({f"d_{s}": None, f"d_{s}_lo": None, f"d_{s}_hi": None})
            row["n_shared"] = len(shared)
            rows.append(row)
    schema = {
        "model": pl.String,
        "method": pl.String,
        "recipe": pl.String,
        "chain": pl.String,
        "depth": pl.Int64,
        "reference": pl.String,
        "n_tasks": pl.Int64,
        **{f"{p}{s}{e}": pl.Float64 for s in STATISTICS for p in ("", "d_") for e in ("", "_lo", "_hi")},
        "n_shared": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema), level


def has_recipes(methods: Sequence[str], chains: Mapping[str, Sequence[Sequence[str]]] | None) -> bool:
    """Whether any of ``methods`` (those with cells) went through a recipe."""
    return bool(chains) and any(chains.get(m) for m in methods)  # type: ignore[union-attr]


def recipes_section(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    chains: Mapping[str, Sequence[Sequence[str]]] | None,
) -> list[str]:
    """The "Post-training recipes" section; empty when no method with cells has a recipe."""
    if not chains or not has_recipes(gains["method"].unique().to_list(), chains):
        return []
    summary, level = recipe_summary(features, gains, chains)
    lvl = f"{level:g}"
    labels = [label for _, _, label in STATISTICS.values()]
    headers = ["method", "recipe", "chain", "tasks"]
    for label in labels:
        headers += [label, f"Δ {label}"]
    lines = [
        "## Post-training recipes",
        "",
        "What each post-training recipe does, per base model. Each entry is the **mean over the model's "
        "tasks** of the cell values: pass@1 and BoN gain (`gain` = bon@N - pass@1) on the test split "
        f"(`{GAINS.path}`), answer diversity (`answer_diversity`, distinct answers / N) and agreement "
        f"(`agreement_mean`, modal-answer share) on the validation split (`{FEATURES.path}`). Δ: the mean "
        "over the shared tasks of the difference to the model's as-shipped reference method. Brackets: "
        f"{lvl} normal intervals whose SE propagates each cell's bootstrap interval (SE = width / 2z) "
        "under independence between cells (disjoint samples): SE of a mean over T tasks = "
        "sqrt(sum SE_t^2) / T. The methods share their prompts, so the Δ intervals err on the wide side. "
        "Definitions: `docs/statistics.md` (Post-training recipes).",
        "",
    ]
    for (model,), df in summary.group_by(["model"], maintain_order=True):
        ref = df["reference"][0]
        lines += [
            f"### {model}",
            "",
            f"Reference (Δ): `{ref}`." if ref else "No as-shipped method: no Δ.",
            "",
        ]
        rows = []
        for r in df.iter_rows(named=True):
            row: list[object] = [r["method"], r["recipe"], r["chain"], r["n_tasks"]]
            for s in STATISTICS:
                row.append(fmt_ci(r[s], r[f"{s}_lo"], r[f"{s}_hi"]))
                d = r[f"d_{s}"]
                row.append("—" if d is None else fmt_ci(d, r[f"d_{s}_lo"], r[f"d_{s}_hi"]))
            rows.append(row)
        lines += [*markdown_table(headers, rows), ""]
    lines += _per_task_table(gains, summary)
    return lines


def _per_task_table(gains: pl.DataFrame, summary: pl.DataFrame) -> list[str]:
    """Model x task rows, one column per method (summary row order): the cell's gain [lo, hi]."""
    first = gains.sort([*CELL_KEYS, "k"]).group_by(CELL_KEYS, maintain_order=True).first()
    methods: list[str] = []
    for m in summary["method"].to_list():
        if m not in methods:
            methods.append(m)
    val = {
        (r["model"], r["method"], r["task"]): fmt_ci(r["gain"], r["gain_lo"], r["gain_hi"])
        for r in first.iter_rows(named=True)
    }
    keys = first.select("model", "task").unique().sort(["model", "task"])
    rows = [[f"{m}/{t}", *(val.get((m, me, t), "—") for me in methods)] for m, t in keys.iter_rows()]
    return [
        "Per task: BoN gain [bootstrap CI over test prompts] of each cell (— : no such cell). "
        f"Source: `{GAINS.path}`.",
        "",
        *markdown_table(["model/task", *methods], rows),
        "",
    ]
