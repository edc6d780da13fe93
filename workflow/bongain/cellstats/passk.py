"""Exact pass@k and best-of-k over random k-subsets of a prompt's samples.

All estimators average over a *uniformly random k-subset (without replacement)* of the M samples
drawn for a prompt, and then over prompts. Notation, for one prompt: M samples, c of them correct,
``C(a, b)`` the binomial coefficient (0 when b > a).

The central object is the order-statistic kernel

    H[k, j] = C(j, k) / C(M, k) = prod_{i=j+1}^{M} (1 - k/i)^+ ,   j = 0..M,

the probability that a random k-subset lies entirely inside a fixed set of j samples. It is built as a
cumulative product of factors in [0, 1] (no binomial is ever formed, so nothing overflows for M in the
thousands) and is shared by pass@k (``1 - H[k, M - c]``) and best-of-k (a tie group with ``a`` samples
strictly below it and ``t`` members is the top group of the subset with probability
``H[k, a + t] - H[k, a]``).

Every statistic here is a mean over prompts of a per-prompt value (``*_prompt_values``), which is what
makes the bootstrap over prompts one matrix product per block of resamples
(:func:`bongain.cellstats.bootstrap.bootstrap_ci`). The majority votes are in
:mod:`bongain.cellstats.votes`.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


# --------------------------------------------------------------------------------------------------
# The kernel H[k, j] = C(j, k) / C(M, k)
# --------------------------------------------------------------------------------------------------


def _subset_cdf_row(m: int, k: int) -> FloatArray:
    """``h[j] = C(j, k) / C(m, k)`` for j = 0..m, as ``prod_{i=j+1}^{m} max(i - k, 0) / i``."""
    i = np.arange(1, m + 1, dtype=np.float64)
    factors = np.maximum(i - k, 0.0) / i
    h = np.ones(m + 1)
    h[:m] = np.cumprod(factors[::-1])[::-1]
    return h


@functools.lru_cache(maxsize=8)
def subset_cdf_table(m: int) -> FloatArray:
    """Return ``H`` of shape (m, m+1) with ``H[k-1, j] = C(j, k) / C(m, k)`` for k = 1..m, j = 0..m.

    Built as a reversed cumulative product of ``max(i - k, 0) / i`` (each factor in [0, 1]), so it is
    exact to a relative ``~m * eps`` and never overflows. The result is cached and read-only.
    """
    if m < 1:
        raise ValueError(f"need at least one sample, got m={m}")
    k = np.arange(1, m + 1, dtype=np.float64)[:, None]
    i = np.arange(1, m + 1, dtype=np.float64)[None, :]
    factors = np.maximum(i - k, 0.0) / i
    table = np.ones((m, m + 1))
    table[:, :m] = np.cumprod(factors[:, ::-1], axis=1)[:, ::-1]
    table.setflags(write=False)
    return table


# --------------------------------------------------------------------------------------------------
# pass@k
# --------------------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021) for one prompt.

    ``pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k / i)``, and 1 when
    ``n - c < k`` (every k-subset contains a correct sample).
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    return float(1.0 - np.prod(1.0 - k / i))


def pass_at_k_curve(correct_counts: ArrayLike, n: int) -> FloatArray:
    """Mean over prompts of pass@k for k = 1..n (index k-1).

    ``curve[k-1] = 1 - mean_p H[k, n - c_p]`` with ``H`` from :func:`subset_cdf_table`.
    """
    counts = np.asarray(correct_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError("correct_counts must be a non-empty 1-d array")
    if not np.issubdtype(counts.dtype, np.integer):
        if not np.all(counts == np.round(counts)):
            raise ValueError("correct_counts must be integers")
        counts = counts.astype(np.int64)
    if counts.min() < 0 or counts.max() > n:
        raise ValueError(f"correct_counts must lie in [0, {n}]")
    hist = np.bincount(n - counts, minlength=n + 1).astype(np.float64)
    return 1.0 - subset_cdf_table(n) @ hist / counts.size


# --------------------------------------------------------------------------------------------------
# best-of-k under a reward
# --------------------------------------------------------------------------------------------------


def _check_rewards(rewards: ArrayLike, ndim: int) -> FloatArray:
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != ndim or r.shape[-1] == 0 or r.size == 0:
        raise ValueError(f"rewards must be a non-empty {ndim}-d array, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards must be finite (no NaN or inf)")
    return r


def bon_selection_weights(rewards: ArrayLike, k: int) -> FloatArray:
    """Probability that each sample is the one returned by best-of-k on one prompt.

    A uniformly random k-subset of the M samples is drawn, the highest-reward sample in it is returned,
    ties broken uniformly among the tied members of the subset. Sorting by reward, a tie group (exact
    float equality) with ``a`` samples strictly below it and ``t`` members holds the subset maximum with
    probability ``[C(a+t, k) - C(a, k)] / C(M, k) = H[k, a+t] - H[k, a]``; by symmetry each member gets
    ``1/t`` of it. The weights sum to 1.
    """
    r = _check_rewards(rewards, 1)
    m = r.size
    if not 1 <= k <= m:
        raise ValueError(f"need 1 <= k <= M, got M={m}, k={k}")
    h = _subset_cdf_row(m, k)
    order = np.argsort(r, kind="stable")
    rs = r[order]
    starts = np.flatnonzero(np.r_[True, rs[1:] != rs[:-1]])
    ends = np.r_[starts[1:], m]
    group_weight = (h[ends] - h[starts]) / (ends - starts)
    weights = np.empty(m)
    weights[order] = np.repeat(group_weight, ends - starts)
    return weights


def bon_at_k(rewards: ArrayLike, correct: ArrayLike, k: int) -> float:
    """Best-of-k accuracy of one prompt: ``sum_j w_j(k) * correct_j`` (see :func:`bon_selection_weights`)."""
    corr = np.asarray(correct, dtype=np.float64)
    w = bon_selection_weights(rewards, k)
    if corr.shape != w.shape:
        raise ValueError(f"rewards and correct differ in shape: {w.shape} vs {corr.shape}")
    return float(w @ corr)


def _tie_groups(
    rewards: ArrayLike, correct: ArrayLike
) -> tuple[int, int, IntArray, IntArray, IntArray, FloatArray]:
    """Tie groups of every prompt's rewards, for the best-of-k kernels.

    Sorts each row of ``rewards [P, M]`` and splits it into groups of equal reward. Returns
    ``(P, M, row, a, size, cbar)``, one entry per group: its prompt, the number of samples strictly below
    it (``a``), its size and its mean correctness.
    """
    r = _check_rewards(rewards, 2)
    corr = np.asarray(correct, dtype=np.float64)
    if corr.shape != r.shape:
        raise ValueError(f"rewards and correct differ in shape: {r.shape} vs {corr.shape}")
    p, m = r.shape
    order = np.argsort(r, axis=1, kind="stable")
    rs = np.take_along_axis(r, order, axis=1)
    cs = np.take_along_axis(corr, order, axis=1)
    is_start = np.ones((p, m), dtype=bool)
    is_start[:, 1:] = rs[:, 1:] != rs[:, :-1]
    label = np.cumsum(is_start.ravel()) - 1  # every row starts a group, so groups never span rows
    size = np.bincount(label)
    cbar = np.bincount(label, weights=cs.ravel()) / size
    start = np.flatnonzero(is_start.ravel())
    return p, m, start // m, start % m, size, cbar


def bon_curve(rewards: ArrayLike, correct: ArrayLike) -> FloatArray:
    """Mean over prompts of best-of-k accuracy for k = 1..M (index k-1).

    For prompt p with tie groups g = [a_g, b_g) in ascending reward order and mean group correctness
    ``cbar_g``: ``bon_p(k) = sum_g cbar_g (H[k, b_g] - H[k, a_g])``. Collecting the coefficients of each
    column of H over all prompts into ``D[j] = sum_{p,g: b_g=j} cbar_g - sum_{p,g: a_g=j} cbar_g`` gives
    ``curve = H @ D / P``: O(P M log M) for the sorts plus one O(M^2) product for all k at once.
    """
    p, m, _row, a, size, cbar = _tie_groups(rewards, correct)
    b = a + size
    d = np.bincount(b, weights=cbar, minlength=m + 1) - np.bincount(a, weights=cbar, minlength=m + 1)
    return subset_cdf_table(m) @ d / p


# --------------------------------------------------------------------------------------------------
# per-prompt values (the rows the curves average; input of the bootstrap over prompts)
# --------------------------------------------------------------------------------------------------


def pass_prompt_values(correct_counts: ArrayLike, n: int) -> FloatArray:
    """Per-prompt pass@k ``[P, n]``: ``1 - H[k, n - c_p]`` (the rows :func:`pass_at_k_curve` averages)."""
    counts = np.asarray(correct_counts, dtype=np.int64)
    return 1.0 - subset_cdf_table(n)[:, n - counts].T


def bon_prompt_values(rewards: ArrayLike, correct: ArrayLike) -> FloatArray:
    """Per-prompt best-of-k ``[P, M]`` (the rows :func:`bon_curve` averages): ``D_p @ H.T``, with
    ``D_p[j] = sum_{g: b_g = j} cbar_g - sum_{g: a_g = j} cbar_g`` over the prompt's tie groups."""
    p, m, row, a, size, cbar = _tie_groups(rewards, correct)
    d = np.bincount(row * (m + 1) + a + size, weights=cbar, minlength=p * (m + 1))
    d -= np.bincount(row * (m + 1) + a, weights=cbar, minlength=p * (m + 1))
    return d.reshape(p, m + 1) @ subset_cdf_table(m).T
