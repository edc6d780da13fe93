"""The cell table and design matrix of the cross-cell fit, and the fit's targets.

One row of ``features`` (schema ``features``) per cell is the predictor input; the target is the cell's
``gain`` from ``gains`` (schema ``gains``, one reward model's tables; the same value in each of the cell's
k rows). :func:`cell_table` joins the two, one row per cell sorted by (model, method, task) so that every
fit processes cells in the same order, with each model's base-model ``family`` (the unit of the
leave-one-family-out scheme) and the trivial baseline ``validation_gap`` (coverage - pass1 on the
validation split); :func:`design_matrix` turns chosen feature columns of it into a float matrix;
:func:`usable_columns` marks the columns a fit can use (finite everywhere and not constant).

A :class:`Target` is a strategy's gain under one reward model (``bon``, ``wmaj``, ``bom``, ``mob``), or a
gain that no reward model enters (``oracle`` = pass@N - pass@1, ``maj``, ``selfcert``; ``rm`` None).
:func:`comparison_targets` and :func:`strategy_targets` list the targets of the cross-cell tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from bongain.cellstats import features
from bongain.cellstats.gains import RM_FREE_TARGETS, TARGETS
from bongain.constants import CELL_KEYS

#: Default predictor features: every Float64 column of the ``features`` schema (n_prompts / n_samples
#: are bookkeeping, not statistics), in schema order.
FEATURE_COLUMNS: list[str] = [c for c in features.FEATURE_COLUMNS if c not in ("n_prompts", "n_samples")]

BASELINE_COLUMNS: list[str] = ["pass1"]
#: The trivial baseline of every target: the validation split's own oracle gap, coverage - pass1.
TRIVIAL_COLUMNS: list[str] = ["validation_gap"]

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


@dataclass(frozen=True)
class Target:
    """A cross-cell target: the gain of ``strategy`` under reward model ``rm`` (None: no reward model
    enters it, e.g. the oracle gap)."""

    strategy: str
    rm: str | None = None

    @property
    def label(self) -> str:
        """``oracle``, ``maj``, ... or ``<strategy>:<rm>`` (e.g. ``bon:verifier``)."""
        return self.strategy if self.rm is None else f"{self.strategy}:{self.rm}"


def make_target(strategy: str, rm: str | None) -> Target:
    """The target of ``strategy`` under ``rm``; a strategy no reward model enters gets ``rm`` None."""
    target_columns(strategy)  # unknown strategies raise
    return Target(strategy, None if strategy in RM_FREE_TARGETS else rm)


def comparison_targets(fit_target: str, rms: Sequence[str]) -> list[Target]:
    """The targets of the predictor comparison: the oracle gap, best-of-N's gain under every reward model,
    and ``fit.target`` (under every reward model when it depends on one) when it is neither."""
    out = [Target("oracle"), *(Target("bon", rm) for rm in rms)]
    if fit_target not in ("oracle", "bon"):
        out += [make_target(fit_target, rm) for rm in (rms if fit_target not in RM_FREE_TARGETS else rms[:1])]
    return out


def strategy_targets(rms: Sequence[str]) -> list[Target]:
    """Every strategy's gain: the oracle gap first, then TARGETS order, a strategy that depends on the
    reward model once per reward model (config order)."""
    out = [Target("oracle")]
    for t in TARGETS:
        if t == "oracle":
            continue
        out += [Target(t)] if t in RM_FREE_TARGETS else [Target(t, rm) for rm in rms]
    return out


def gains_by_rm(
    gains: pl.DataFrame | Mapping[str, pl.DataFrame], rms: Sequence[str] | None = None
) -> dict[str, pl.DataFrame]:
    """Reward model -> its gains tables: a mapping is returned as it is; a frame is split by its ``rm``
    column (in ``rms`` order when given, else first appearance)."""
    if isinstance(gains, Mapping):
        return dict(gains)
    names = list(rms) if rms is not None else list(dict.fromkeys(gains["rm"].to_list()))
    missing = [r for r in names if r not in set(gains["rm"].to_list())]
    if missing:
        raise ValueError(f"gains: no tables of reward model(s) {missing}")
    return {r: gains.filter(pl.col("rm") == r) for r in names}


def target_table(
    features: pl.DataFrame,
    by_rm: Mapping[str, pl.DataFrame],
    target: Target,
    families: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """:func:`cell_table` of one target: its reward model's gains (the first reward model's for a target
    without one: those columns are the same in every reward model's table)."""
    rm = target.rm if target.rm is not None else next(iter(by_rm))
    if rm not in by_rm:
        raise ValueError(f"target {target.label}: no gains of reward model {rm!r} (have {list(by_rm)})")
    return cell_table(features, by_rm[rm], target.strategy, families)


def target_columns(target: str) -> tuple[str, str, str]:
    """The gains columns (value, lower, upper CI end) of a ``fit.target``: ``bon`` -> ``gain``, others
    -> ``gain_<target>`` (``<target>_at_k(N) - pass_at_k(1)``; ``oracle``: pass@N - pass@1). Unknown
    targets raise naming the key."""
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
    is a family of its own (family = model slug). ``validation_gap`` = ``coverage - pass1`` (the trivial
    baseline: the validation split's own oracle gap).

    ``gains`` holds one reward model's tables (an ``rm`` column with several names raises).

    The target (column ``gain`` of the result) is the gain of strategy ``target`` (``fit.target``:
    :func:`target_columns`), taken from the cell's row with the largest k (k = N), with its bootstrap CI
    as ``gain_lo`` / ``gain_hi`` / ``gain_ci_level`` (null when the gains table has no CI columns).
    Raises ValueError on duplicated feature rows, on cells without gains or with a null target (e.g.
    ``selfcert`` where the sampler recorded no self-certainty), or on too few cells.
    """
    value, lower, upper = target_columns(target)
    if value not in gains.columns:
        raise ValueError(f"fit.target: {target}: the gains table has no column {value!r}")
    if "rm" in gains.columns and gains["rm"].n_unique() > 1:
        raise ValueError(
            f"gains: tables of several reward models {sorted(gains['rm'].unique().to_list())}; "
            "pass one reward model's (bongain.fit.table.gains_by_rm)"
        )
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
        (pl.col("coverage").cast(pl.Float64) - pl.col("pass1").cast(pl.Float64)).alias("validation_gap"),
        pl.Series("family", [fam.get(m, m) for m in table["model"].to_list()], dtype=pl.String),
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
