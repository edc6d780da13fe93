"""Screening: cells that only get the validation sampling pass, ranked by predicted gain.

Config shape: a top-level ``screen:`` list of ``{model, method, task}`` next to ``cells:`` (which stays
"grid" or an explicit list). ``cells`` are the *evaluated* cells (all stages; :func:`bongain.config.cells`
is unchanged and returns exactly them), ``screen`` the *screened* cells: only the validation split is
sampled and graded and only ``features.parquet`` is computed (no verifier_train/test sampling, no
verifier, no scores, no gains). A cell may not be both evaluated and screened.

The fit stage trains on evaluated cells and writes ``fit_screen``: screened cells ranked by predicted
gain with a jackknife+ interval and the generation/verification cost the full evaluation would have
added (estimated from the screened cell's own validation statistics).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from bongain import config as bconf
from bongain.config import Cell, ConfigError
from bongain.constants import CELL_KEYS
from bongain.io import conform


def screened_cells(config: Mapping[str, Any]) -> list[Cell]:
    """The screened cells of a validated config (``screen:``), in config order; checked against it."""
    spec = config.get("screen") or []
    evaluated = set(bconf.cells(config))
    out: list[Cell] = []
    errors: list[str] = []
    for i, c in enumerate(spec):
        for kind in ("model", "method", "task"):
            if c.get(kind) not in config.get(f"{kind}s", {}):
                errors.append(
                    f"config key 'screen.{i}.{kind}': {c.get(kind)!r} is not defined under '{kind}s' "
                    f"(defined: {sorted(config.get(f'{kind}s', {}))})"
                )
        cell = Cell(c.get("model"), c.get("method"), c.get("task"))
        if cell in evaluated:
            errors.append(f"config key 'screen.{i}': {cell.slug} is also an evaluated cell (under 'cells')")
        if cell in out:
            errors.append(f"config key 'screen.{i}': duplicate screened cell {cell.slug}")
        out.append(cell)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    return out


def split_cells(config: Mapping[str, Any]) -> tuple[list[Cell], list[Cell]]:
    """(evaluated cells, screened cells)."""
    return bconf.cells(config), screened_cells(config)


def screening_table(
    screened: pl.DataFrame,
    pred: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    level: float,
    evaluated_gains: np.ndarray,
    sizes: Mapping[str, int],
) -> pl.DataFrame:
    """``fit_screen`` rows for the screened cells' feature rows (``screened``, sorted by cell).

    ``pred``/``lo``/``hi`` are the predicted gain and interval of each row (k = N). The avoided cost is
    what the full evaluation would add on top of the validation pass: sampling the verifier_train and
    test splits (``sizes``) with N samples each, at the cell's validation mean tokens per sample, and one
    verifier call per such sample (scoring the test samples, training on the verifier_train ones).
    """
    scr = screened.sort(CELL_KEYS)
    ev = np.sort(np.asarray(evaluated_gains, dtype=np.float64))
    avoided_prompts = int(sizes["test"]) + int(sizes["verifier_train"])
    n_samples = scr["n_samples"].to_numpy().astype(np.int64)
    tokens = scr["length_mean"].cast(pl.Float64).to_numpy()
    pred = np.asarray(pred, dtype=np.float64)
    below = np.searchsorted(ev, pred, side="left") / ev.size if ev.size else np.full(pred.shape, np.nan)
    order = np.lexsort((np.arange(scr.height), -np.nan_to_num(pred, nan=-np.inf)))
    rank = np.empty(scr.height, dtype=np.int64)
    rank[order] = np.arange(1, scr.height + 1)
    out = scr.select(CELL_KEYS).with_columns(
        pl.Series("rank", rank),
        pl.Series("pred", pred),
        pl.Series("pred_lo", np.asarray(lo, dtype=np.float64)),
        pl.Series("pred_hi", np.asarray(hi, dtype=np.float64)),
        pl.lit(level, dtype=pl.Float64).alias("level"),
        pl.Series("frac_evaluated_below", np.asarray(below, dtype=np.float64)),
        scr["n_prompts"].cast(pl.Int64),
        pl.Series("n_samples", n_samples),
        pl.Series("tokens_per_sample", tokens),
        pl.lit(avoided_prompts, dtype=pl.Int64).alias("avoided_prompts"),
        pl.Series("avoided_tokens", tokens * avoided_prompts * n_samples),
        pl.Series("avoided_verifier_calls", avoided_prompts * n_samples),
    )
    return conform(out.sort(["rank", *CELL_KEYS]), "fit_screen")
