"""Permutation nulls of the held-out metrics and the noise ceiling of the measured gains.

**Null.** H0: the features carry no information about the gain. Under H0 the held-out Spearman of a
predictor is compared with its distribution when the gains are re-assigned to the cells by a
permutation that H0 leaves the joint law unchanged under. The cells form a grid (model x method x
task); gains of cells that share a task or method are dependent, so re-assigning single cells at
random would destroy that dependence and make the null too narrow. When the cells form a complete grid
of the factors that vary, we permute the *levels* of each factor independently (cell (m, me, t)
receives the gain of cell (pi(m), sigma(me), tau(t))): this keeps every task's and every method's block
of gains together and is valid when tasks are exchangeable among themselves and methods among
themselves (a separately exchangeable array). It also maps every held-out group of every scheme onto a
held-out group, so the same permutations serve all schemes. When the cells are not a complete grid,
the gains are permuted across cells (exchangeable cells), and the table says so (``null_kind``).

*Families.* Models are nested in base-model families (the table's ``family`` column; a model of its
own family when absent). Models of one family share a base and are not exchangeable with models of
another, and the leave-one-family-out scheme holds out whole families, so when some family has several
models the model factor is permuted **within the family blocks** only (``kind = "grid-family"``): the
models of each family are permuted among themselves, and families are permuted among the families
with the same number of models (model j of family f -> model rho_f(j) of family pi(f)). With
equal-sized families this is the full nested group (families permuted, and models within families:
F! x (k!)^F elements for F families of k models); with unequal sizes families only trade places with
families of their size (hierarchical exchangeability). Every permutation then maps each family group
of cells onto a family group (and still each model / method / task group onto one of its kind), so the
same permutations serve the family scheme too. When every family has one model (family = model, the
default) or all models share one family, the block-preserving group is the plain group of model
permutations and nothing changes (``kind = "grid"``).

When the group has at most ``n_perm + 1`` elements (3 methods x 5 tasks: 3! x 5! = 720), every
non-identity permutation is used once (an exact test); otherwise ``n_perm`` are drawn from a seeded
generator. Either way p = (1 + #{null >= observed}) / (B + 1) with B the number of null statistics.

**Noise ceiling.** The Spearman a perfect predictor of the true gains would reach against the measured
gains. Each cell's measured gain carries bootstrap noise with standard error
``se = (gain_hi - gain_lo) / (2 z)``. The spread of the measured gains is the truth's spread plus that
noise, so the "true" gains are taken as the measured ones shrunk towards their mean by
``sqrt(max(0, var(g) - mean(se^2)) / var(g))``; the ceiling is the average over seeded draws of the
Spearman (and Kendall tau-b, and the MAE floor) between those true gains and true + N(0, se^2). When
the measured spread is no larger than the noise (reliability 0) the ceiling is 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

GRID_FACTORS: tuple[str, ...] = ("model", "method", "task")

#: Draws of the noise ceiling.
CEILING_DRAWS = 2000


@dataclass(frozen=True)
class Permutations:
    """Null permutations: ``index[b]`` re-assigns the gains, ``y[index[b]]``."""

    index: np.ndarray  # (B, n) int
    kind: str  # "grid" | "grid-family" (levels permuted, models within family blocks) | "cells"
    exact: bool  # every non-identity element of the group used once
    group_size: int  # distinct permutations the null can take (capped at 10**18)


def level_codes(table: pl.DataFrame, factors: list[str]) -> tuple[list[np.ndarray], list[int]]:
    """Each cell's level code (levels in sorted order) for every factor, and each factor's level count."""
    codes = []
    sizes = []
    for f in factors:
        levels = sorted(set(table[f].to_list()))
        lookup = {v: i for i, v in enumerate(levels)}
        codes.append(np.array([lookup[v] for v in table[f].to_list()], dtype=np.int64))
        sizes.append(len(levels))
    return codes, sizes


def _grid_levels(table: pl.DataFrame) -> tuple[list[str], list[np.ndarray], list[int]] | None:
    """Factors with >= 2 levels, each cell's level codes, level counts; None if not a complete grid."""
    factors = [f for f in GRID_FACTORS if table[f].n_unique() >= 2]
    if not factors:
        return None
    codes, sizes = level_codes(table, factors)
    if math.prod(sizes) != table.height:
        return None
    keys = set(zip(*[c.tolist() for c in codes], strict=True))
    if len(keys) != table.height:
        return None
    return factors, codes, sizes


def _cell_of_levels(codes: list[np.ndarray], sizes: list[int]) -> np.ndarray:
    """Flat grid position -> row index."""
    flat = np.ravel_multi_index(tuple(codes), tuple(sizes))
    where = np.empty(math.prod(sizes), dtype=np.int64)
    where[flat] = np.arange(flat.size)
    return where


def family_blocks(table: pl.DataFrame) -> list[list[int]] | None:
    """The model level codes (sorted model order) of each family, families in sorted order.

    None when the block structure does not restrict model permutations: no ``family`` column, one
    family, or one model per family. Raises ValueError when a model has cells in two families.
    """
    if "family" not in table.columns:
        return None
    pairs = table.select("model", "family").unique()
    if pairs["model"].n_unique() != pairs.height:
        raise ValueError("family: a model has cells in more than one family")
    models = sorted(pairs["model"].to_list())
    code = {m: i for i, m in enumerate(models)}
    fam_of = dict(zip(pairs["model"].to_list(), pairs["family"].to_list(), strict=True))
    blocks = [sorted(code[m] for m in models if fam_of[m] == f) for f in sorted(set(fam_of.values()))]
    if len(blocks) < 2 or all(len(b) == 1 for b in blocks):
        return None
    return blocks


class _LevelGroup:
    """A group of permutations of one factor's levels: all of S_k, or the family-block-preserving one."""

    def __init__(self, size: int, blocks: list[list[int]] | None = None) -> None:
        self.size = size
        self.blocks = blocks
        if blocks is None:
            self.order = math.factorial(size)
        else:
            by_len: dict[int, int] = {}
            for b in blocks:
                by_len[len(b)] = by_len.get(len(b), 0) + 1
            self.order = math.prod(math.factorial(c) * math.factorial(k) ** c for k, c in by_len.items())

    def _compose(self, fam_perm: list[int], inner: list[tuple[int, ...]]) -> np.ndarray:
        # model j of block f -> model inner[f][j] of block fam_perm[f]
        assert self.blocks is not None
        out = np.empty(self.size, dtype=np.int64)
        for f, block in enumerate(self.blocks):
            target = self.blocks[fam_perm[f]]
            for j, level in enumerate(block):
                out[level] = target[inner[f][j]]
        return out

    def _family_perms(self) -> list[list[int]]:
        """Permutations of the blocks that send each block to one of the same length."""
        assert self.blocks is not None
        classes: dict[int, list[int]] = {}
        for f, b in enumerate(self.blocks):
            classes.setdefault(len(b), []).append(f)
        out = []
        for combo in itertools.product(*[itertools.permutations(c) for c in classes.values()]):
            perm = list(range(len(self.blocks)))
            for members, image in zip(classes.values(), combo, strict=True):
                for f, g in zip(members, image, strict=True):
                    perm[f] = g
            out.append(perm)
        return out

    def enumerate(self) -> list[np.ndarray]:
        if self.blocks is None:
            return [np.asarray(p) for p in itertools.permutations(range(self.size))]
        inners = itertools.product(*[list(itertools.permutations(range(len(b)))) for b in self.blocks])
        inner_list = list(inners)
        return [self._compose(fp, list(inner)) for fp in self._family_perms() for inner in inner_list]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if self.blocks is None:
            return rng.permutation(self.size)
        classes: dict[int, list[int]] = {}
        for f, b in enumerate(self.blocks):
            classes.setdefault(len(b), []).append(f)
        fam_perm = list(range(len(self.blocks)))
        for members in classes.values():
            for f, g in zip(members, rng.permutation(members).tolist(), strict=True):
                fam_perm[f] = g
        inner = [tuple(rng.permutation(len(b)).tolist()) for b in self.blocks]
        return self._compose(fam_perm, inner)


def null_permutations(table: pl.DataFrame, n_perm: int, seed: int) -> Permutations:
    """The permutations of the null for the cells of ``table`` (see the module docstring)."""
    if n_perm < 1:
        raise ValueError(f"fit.n_perm must be >= 1, got {n_perm}")
    n = table.height
    rng = np.random.default_rng(seed)
    grid = _grid_levels(table)
    if grid is None:
        total = math.factorial(n) if n <= 20 else 10**18
        if total <= n_perm + 1:
            perms = [p for p in itertools.permutations(range(n)) if list(p) != list(range(n))]
            return Permutations(np.array(perms, dtype=np.int64).reshape(-1, n), "cells", True, total)
        index = np.argsort(rng.random((n_perm, n)), axis=1)
        return Permutations(index, "cells", False, min(total, 10**18))
    factors, codes, sizes = grid
    blocks = family_blocks(table) if "model" in factors else None
    groups = [_LevelGroup(s, blocks if f == "model" else None) for f, s in zip(factors, sizes, strict=True)]
    kind = "grid" if blocks is None else "grid-family"
    where = _cell_of_levels(codes, sizes)
    total = math.prod(g.order for g in groups)

    def apply(level_perms: list[np.ndarray]) -> np.ndarray:
        mapped = [lp[c] for lp, c in zip(level_perms, codes, strict=True)]
        return where[np.ravel_multi_index(tuple(mapped), tuple(sizes))]

    if total <= n_perm + 1:
        rows = []
        for combo in itertools.product(*[g.enumerate() for g in groups]):
            idx = apply(list(combo))
            if not np.array_equal(idx, np.arange(n)):
                rows.append(idx)
        return Permutations(np.array(rows, dtype=np.int64).reshape(-1, n), kind, True, total)
    index = np.empty((n_perm, n), dtype=np.int64)
    for b in range(n_perm):
        index[b] = apply([g.sample(rng) for g in groups])
    return Permutations(index, kind, False, total)


def perm_pvalue(null: np.ndarray, observed: float, alternative: str = "greater") -> float:
    """(1 + #{null >= observed}) / (B + 1); ``two-sided`` compares absolute values.

    NaN null statistics (constant predictions) count as not exceeding; a NaN observation gives NaN.
    """
    null = np.asarray(null, dtype=np.float64)
    if not np.isfinite(observed):
        return float("nan")
    if alternative == "greater":
        hits = np.sum(null >= observed - 1e-12)
    elif alternative == "two-sided":
        hits = np.sum(np.abs(null) >= abs(observed) - 1e-12)
    else:
        raise ValueError(f"unknown alternative {alternative!r}")
    return float((1 + hits) / (null.size + 1))


def null_quantile(null: np.ndarray, q: float = 0.95) -> float:
    """The q quantile of the finite null statistics (NaN when none is finite)."""
    v = np.asarray(null, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.quantile(v, q)) if v.size else float("nan")


@dataclass(frozen=True)
class NoiseCeiling:
    spearman: float
    kendall: float
    mae_floor: float
    reliability: float  # (var(g) - mean se^2) / var(g), clipped to [0, 1]


def gain_se(lo: np.ndarray, hi: np.ndarray, level: float) -> np.ndarray:
    """Standard errors from percentile-CI half-widths at ``level`` (normal approximation)."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    return (np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64)) / (2.0 * z)


def noise_ceiling(gain: np.ndarray, se: np.ndarray, seed: int, n_draws: int = CEILING_DRAWS) -> NoiseCeiling:
    """Expected Spearman / Kendall tau-b / MAE of the true gains against their noisy measurement."""
    g = np.asarray(gain, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    if g.shape != se.shape or not np.all(np.isfinite(se)) or np.any(se < 0):
        raise ValueError("noise_ceiling: se must be finite, non-negative and match gain")
    var = float(g.var())
    rel = 0.0 if var <= 0 else float(np.clip((var - np.mean(se**2)) / var, 0.0, 1.0))
    truth = g.mean() + math.sqrt(rel) * (g - g.mean())
    rng = np.random.default_rng(seed)
    measured = truth[None, :] + rng.standard_normal((n_draws, g.size)) * se[None, :]
    from bongain.fit.compare import batch_metrics  # compare imports this module

    rho, tau, mae = batch_metrics(np.broadcast_to(truth, measured.shape), measured)
    if rel == 0.0:  # the spread of the measured gains is all noise: no ranking to recover
        return NoiseCeiling(spearman=0.0, kendall=0.0, mae_floor=float(np.mean(mae)), reliability=rel)
    return NoiseCeiling(
        spearman=float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan"),
        kendall=float(np.nanmean(tau)) if np.isfinite(tau).any() else float("nan"),
        mae_floor=float(np.mean(mae)),
        reliability=rel,
    )
