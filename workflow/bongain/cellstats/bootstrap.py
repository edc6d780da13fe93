"""Percentile bootstrap over prompts.

Every cell statistic is a mean over prompts of a per-prompt value (the ``*_prompt_values`` of
:mod:`bongain.cellstats.passk` and :mod:`bongain.cellstats.votes`), or a population std over prompts
of one, so on a resample of the prompts it is a weighted mean ``W[b] @ v``: the bootstrap is one matrix
product per block of resamples (:func:`bootstrap_ci`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from bongain.cellstats.passk import FloatArray

DEFAULT_N_BOOT = 1000
DEFAULT_CI_LEVEL = 0.95
_BOOT_BLOCK_ELEMENTS = 1 << 22  # resamples x prompts per block of the weight matrix


def bootstrap_weights(n_prompts: int, n_boot: int, rng: np.random.Generator) -> FloatArray:
    """``[B, P]`` resampling weights: row b = counts of the P prompts in P draws with replacement, / P.

    A statistic that is a mean over prompts of per-prompt values ``v[P, ...]`` is, on resample b,
    ``W[b] @ v``; a population std over prompts is ``sqrt(W @ v^2 - (W @ v)^2)``. The draws are
    ``rng.integers(0, P, (B, P))``; counts are formed row by row (a cache-friendly ``bincount``).
    """
    if n_prompts < 1 or n_boot < 1:
        raise ValueError(f"need at least one prompt and one resample, got P={n_prompts}, B={n_boot}")
    dtype = np.int32 if n_prompts < 2**31 else np.int64
    draws = rng.integers(0, n_prompts, size=(n_boot, n_prompts), dtype=dtype)
    out = np.empty((n_boot, n_prompts))
    for b in range(n_boot):
        out[b] = np.bincount(draws[b], minlength=n_prompts)
    out /= n_prompts
    return out


def percentile_ci(replicates: ArrayLike, level: float) -> tuple[FloatArray, FloatArray]:
    """Percentile interval ``(q_{(1-level)/2}, q_{(1+level)/2})`` over axis 0 of bootstrap replicates."""
    if not 0 < level < 1:
        raise ValueError(f"ci level must lie in (0, 1), got {level}")
    x = np.asarray(replicates, dtype=np.float64)
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi


def bootstrap_replicates(
    means: ArrayLike,
    rng: np.random.Generator,
    n_boot: int = DEFAULT_N_BOOT,
    *,
    stds: ArrayLike | None = None,
) -> FloatArray:
    """Bootstrap-over-prompts replicates ``[B, K + J]`` of K means and J population stds over prompts.

    ``means[P, K]``: per-prompt values whose mean over prompts is a statistic; ``stds[P, J]``: per-prompt
    values whose population std (ddof 0) over prompts is one. Each resample draws P prompts with
    replacement (:func:`bootstrap_weights`, drawn block by block from ``rng``); the statistics are
    recomputed on it as weighted means ``W @ v``, one matrix product per block of resamples.
    """
    v = np.asarray(means, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    p = v.shape[0]
    sd = np.zeros((p, 0)) if stds is None else np.asarray(stds, dtype=np.float64).reshape(p, -1)
    stacked = np.concatenate([v, sd, sd**2], axis=1)
    if n_boot < 1:
        raise ValueError(f"need at least one resample, got B={n_boot}")
    out = np.empty((n_boot, v.shape[1] + sd.shape[1]))
    block = max(1, _BOOT_BLOCK_ELEMENTS // p)  # depends on P only: the draws are fixed by the seed
    k, j = v.shape[1], sd.shape[1]
    for lo in range(0, n_boot, block):
        m = bootstrap_weights(p, min(block, n_boot - lo), rng) @ stacked
        out[lo : lo + block, :k] = m[:, :k]
        out[lo : lo + block, k:] = np.sqrt(np.maximum(m[:, k + j :] - m[:, k : k + j] ** 2, 0.0))
    return out


def bootstrap_ci(
    means: ArrayLike,
    rng: np.random.Generator,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_CI_LEVEL,
    *,
    stds: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Percentile bootstrap CIs (over prompts) of the statistics of :func:`bootstrap_replicates`."""
    return percentile_ci(bootstrap_replicates(means, rng, n_boot, stds=stds), level)
