"""Text formatting of the report: numbers, intervals, Markdown tables, cell labels and display order.

Predictor and scheme labels fix the order of their rows. This module imports none of the other report
modules (they all import it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

CELL_KEYS: list[str] = ["model", "method", "task"]

PREDICTOR_LABELS: dict[str, str] = {
    "ridge": "ridge (fit.features)",
    "baseline": "baseline (pass@1 only)",
    "gap": "trivial (validation gap only)",
    "all": "ridge (all features)",
    "core": "ridge (strict core)",
    "core_entropy": "ridge (core + entropy)",
}

SCHEME_LABELS: dict[str, str] = {
    "leave_one_cell_out": "leave-one-cell-out",
    "leave_one_task_out": "leave-one-task-out",
    "leave_one_method_out": "leave-one-method-out",
    "leave_one_model_out": "leave-one-model-out",
    "leave_one_family_out": "leave-one-family-out",
}

MISSING = "n/a"

#: What a comparison target is, as the report names it (a reward model's name is appended).
TARGET_NAMES: dict[str, str] = {
    "oracle": "headroom: oracle gap (pass@N - pass@1)",
    "bon": "best-of-N gain",
    "maj": "majority-vote gain",
    "wmaj": "weighted-majority gain",
    "bom": "Best-of-Majority gain",
    "mob": "Majority-of-Bests gain",
    "selfcert": "self-certainty gain",
}


def target_label(strategy: str, rm: str | None) -> str:
    """``headroom: oracle gap (...)`` or ``best-of-N gain, RM verifier``."""
    name = TARGET_NAMES.get(strategy, strategy)
    return name if rm is None else f"{name}, RM {rm}"


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


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A GitHub-flavoured Markdown table; numeric columns are right-aligned."""
    numeric = [
        bool(rows)
        and all(isinstance(r[i], int | float | np.number) and not isinstance(r[i], bool) for r in rows)
        for i in range(len(headers))
    ]
    out = ["| " + " | ".join(escape(h) for h in headers) + " |"]
    out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for r in rows:
        if len(r) != len(headers):
            raise ValueError(f"row {r!r} has {len(r)} entries for {len(headers)} headers")
        out.append("| " + " | ".join(escape(fmt(v)) for v in r) + " |")
    return out


def cell_label(model: str, method: str, task: str) -> str:
    return f"{model}/{method}/{task}"


def cell_path(template: str, model: str, method: str, task: str, rm: str | None = None) -> str:
    """A cell's artifact path from its schema template (``{rm}``: the reward model, ``<rm>`` when None)."""
    return template.format(model=model, method=method, task=task, rm=rm or "<rm>")


def fmt_ci(v: object, lo: object, hi: object) -> str:
    return f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]"


def fmt_interval(lo: object, hi: object) -> str:
    def b(x: object) -> str:
        if isinstance(x, float) and math.isinf(x):
            return "-inf" if x < 0 else "+inf"
        return fmt(x)

    return f"[{b(lo)}, {b(hi)}]"


def label_order(df: pl.DataFrame, col: str, labels: Mapping[str, str]) -> pl.DataFrame:
    order = {name: i for i, name in enumerate(labels)}
    return df.with_columns(
        pl.col(col).replace_strict(order, default=len(order), return_dtype=pl.Int64).alias(f"_o_{col}")
    )
