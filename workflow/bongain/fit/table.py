"""The cell table and design matrix of the cross-cell fit.

One row of ``features`` (schema ``features``) per cell is the predictor input; the target is the cell's
``gain`` from ``gains`` (schema ``gains``; the same value in each of the cell's k rows).
:func:`cell_table` joins the two, one row per cell sorted by (model, method, task) so that every fit
processes cells in the same order, with each model's base-model ``family`` (the unit of the
leave-one-family-out scheme); :func:`design_matrix` turns chosen feature columns of it into a float
matrix; :func:`usable_columns` marks the columns a fit can use (finite everywhere and not constant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from bongain.cellstats import features
from bongain.cellstats.gains import TARGETS
from bongain.constants import CELL_KEYS

#: Default predictor features: every Float64 column of the ``features`` schema (n_prompts / n_samples
#: are bookkeeping, not statistics), in schema order.
FEATURE_COLUMNS: list[str] = [c for c in features.FEATURE_COLUMNS if c not in ("n_prompts", "n_samples")]

BASELINE_COLUMNS: list[str] = ["pass1"]

#: A training column whose standard deviation is at most this (relative to max(1, |mean|)) is constant.
_CONSTANT_RTOL = 1e-12

MIN_CELLS = 3


def usable_columns(X: np.ndarray) -> np.ndarray:
    """Mask of columns that are finite everywhere and not constant."""
    X = np.asarray(X, dtype=np.float64)
    finite = np.all(np.isfinite(X), axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(finite, X.mean(axis=0), 0.0)
        std = np.where(finite, X.std(axis=0), 0.0)
    return finite & (std > _CONSTANT_RTOL * np.maximum(1.0, np.abs(mean)))


def target_columns(target: str) -> tuple[str, str, str]:
    """The gains columns (value, lower, upper CI end) of a ``fit.target``: ``bon`` -> ``gain``, others
    -> ``gain_<target>`` (``<target>_at_k(N) - pass_at_k(1)``). Unknown targets raise naming the key."""
    if target not in TARGETS:
        raise ValueError(f"fit.target: unknown strategy {target!r}; known: {sorted(TARGETS)}")
    name = "gain" if target == "bon" else f"gain_{target}"
    return name, f"{name}_lo", f"{name}_hi"


def cell_table(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    target: str = "bon",
    families: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Join each cell's feature row with its target gain, sorted by (model, method, task).

    ``family`` (last column) is the model's base-model family from ``families`` (model slug -> family,
    :func:`bongain.config.model_families`); a model it does not name, or every model when it is None,
    is a family of its own (family = model slug).

    The target (column ``gain`` of the result) is the gain of strategy ``target`` (``fit.target``:
    :func:`target_columns`), taken from the cell's row with the largest k (k = N), with its bootstrap CI
    as ``gain_lo`` / ``gain_hi`` / ``gain_ci_level`` (null when the gains table has no CI columns).
    Raises ValueError on duplicated feature rows, on cells without gains or with a null target (e.g.
    ``selfcert`` where the sampler recorded no self-certainty), or on too few cells.
    """
    value, lower, upper = target_columns(target)
    if value not in gains.columns:
        raise ValueError(f"fit.target: {target}: the gains table has no column {value!r}")
    dup = features.group_by(CELL_KEYS).len().filter(pl.col("len") > 1)
    if dup.height:
        raise ValueError(f"features: duplicated cell rows: {dup.select(CELL_KEYS).rows()}")
    per_cell = (
        gains.sort([*CELL_KEYS, "k"])
        .group_by(CELL_KEYS, maintain_order=True)
        .agg(
            pl.col(value).last().alias("gain"),
            *[
                (pl.col(src).last() if src in gains.columns else pl.lit(None, dtype=pl.Float64)).alias(dst)
                for src, dst in (
                    (lower, "gain_lo"),
                    (upper, "gain_hi"),
                    ("ci_level", "gain_ci_level"),
                )
            ],
            (pl.col(value).max() - pl.col(value).min()).alias("_range"),
        )
    )
    uneven = per_cell.filter(pl.col("_range") > 1e-12)
    if uneven.height:
        raise ValueError(
            f"gains: `{value}` differs between the k rows of cell(s) {uneven.select(CELL_KEYS).rows()}"
        )
    per_cell = per_cell.drop("_range")
    missing = features.join(per_cell, on=CELL_KEYS, how="anti")
    if missing.height:
        raise ValueError(f"no gains for cell(s) {missing.select(CELL_KEYS).rows()}")
    table = features.join(per_cell, on=CELL_KEYS, how="inner").sort(CELL_KEYS)
    if table.height < MIN_CELLS:
        raise ValueError(
            f"the cross-cell fit needs at least {MIN_CELLS} cells (with features and gains), "
            f"got {table.height}"
        )
    if table["gain"].is_null().any() or not np.all(np.isfinite(table["gain"].to_numpy())):
        bad = table.filter(pl.col("gain").is_null() | pl.col("gain").is_nan()).select(CELL_KEYS).rows()
        raise ValueError(f"non-finite or null `{value}` (fit.target: {target}) for cell(s) {bad}")
    fam = dict(families or {})
    return table.with_columns(
        pl.Series("family", [fam.get(m, m) for m in table["model"].to_list()], dtype=pl.String)
    )


def check_entropy_kinds(features: pl.DataFrame, allow_mixed: bool) -> None:
    """Refuse feature rows whose ``entropy_kind`` differs (``entropy_mean`` would not be comparable).

    Raises ValueError naming the kinds and their cells unless ``allow_mixed`` (config
    ``fit.allow_mixed_entropy``).
    """
    if "entropy_kind" not in features.columns or allow_mixed:
        return
    kinds = features.group_by("entropy_kind", maintain_order=True).agg(
        pl.concat_str(CELL_KEYS, separator="/").sort().alias("cells")
    )
    if kinds.height > 1:
        detail = "; ".join(
            f"{r['entropy_kind']}: {', '.join(r['cells'][:3])}{' ...' if len(r['cells']) > 3 else ''}"
            for r in kinds.sort("entropy_kind").iter_rows(named=True)
        )
        raise ValueError(
            "features: cells mix entropy kinds, so entropy_mean is not comparable across them "
            f"({detail}). Use one entropy mode for every model (vllm.entropy: hf_rescore is exact), or "
            "set fit.allow_mixed_entropy: true to fit anyway."
        )


def design_matrix(table: pl.DataFrame, feature_cols: Sequence[str]) -> np.ndarray:
    """The ``feature_cols`` of ``table`` as a float64 matrix (one row per cell, columns in that order).

    Raises ValueError on an unknown or empty column list.
    """
    missing = [c for c in feature_cols if c not in table.columns]
    if missing:
        raise ValueError(f"unknown feature column(s) {missing}")
    if not feature_cols:
        raise ValueError("feature_cols is empty")
    return table.select([pl.col(c).cast(pl.Float64) for c in feature_cols]).to_numpy().astype(np.float64)
