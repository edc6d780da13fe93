"""Exact and Monte-Carlo estimators of pass@k, best-of-k and majority-vote@k.

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

Majority vote works on integer-coded answers (:func:`encode_answers`): per prompt, code ``-1`` means
"no answer" (the sample abstains) and codes ``0..A-1`` are answer classes; ``class_correct[a]`` says
whether class ``a`` is correct. Matrices over prompts are padded: ``codes[P, M]`` and
``class_correct[P, A_max]`` (padding False).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

DEFAULT_MAX_EXACT_SUBSETS = 200_000
DEFAULT_N_MC = 2000
_MC_BLOCK_ELEMENTS = 1 << 22  # permutation entries per Monte-Carlo block (memory bound)


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


def bon_curve(rewards: ArrayLike, correct: ArrayLike) -> FloatArray:
    """Mean over prompts of best-of-k accuracy for k = 1..M (index k-1).

    For prompt p with tie groups g = [a_g, b_g) in ascending reward order and mean group correctness
    ``cbar_g``: ``bon_p(k) = sum_g cbar_g (H[k, b_g] - H[k, a_g])``. Collecting the coefficients of each
    column of H over all prompts into ``D[j] = sum_{p,g: b_g=j} cbar_g - sum_{p,g: a_g=j} cbar_g`` gives
    ``curve = H @ D / P``: O(P M log M) for the sorts plus one O(M^2) product for all k at once.
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
    a = np.flatnonzero(is_start.ravel()) % m
    b = a + size
    d = np.bincount(b, weights=cbar, minlength=m + 1) - np.bincount(a, weights=cbar, minlength=m + 1)
    return subset_cdf_table(m) @ d / p


# --------------------------------------------------------------------------------------------------
# majority vote
# --------------------------------------------------------------------------------------------------


def encode_answers(answers: Sequence[str | None]) -> IntArray:
    """Code one prompt's answers as integers: classes 0, 1, ... in order of first appearance, -1 for None."""
    table: dict[str, int] = {}
    return np.array([-1 if a is None else table.setdefault(a, len(table)) for a in answers], dtype=np.int64)


def answer_classes(answers: Sequence[str | None], correct: ArrayLike) -> tuple[IntArray, BoolArray]:
    """Codes (:func:`encode_answers`) and per-class correctness of one prompt.

    A class is correct if any of its samples is marked correct (equivalence to the gold answer is a
    property of the normalised answer string, so a grading failure on one copy does not change it).
    Samples without an answer abstain whatever their ``correct`` flag.
    """
    codes = encode_answers(answers)
    corr = np.asarray(correct, dtype=bool)
    if corr.shape != codes.shape:
        raise ValueError(f"answers and correct differ in length: {codes.shape} vs {corr.shape}")
    class_correct = np.zeros(int(codes.max(initial=-1)) + 1, dtype=bool)
    has = codes >= 0
    np.logical_or.at(class_correct, codes[has], corr[has])
    return codes, class_correct


def encode_answer_matrix(
    answers: Sequence[Sequence[str | None]], correct: ArrayLike
) -> tuple[IntArray, BoolArray]:
    """Stack :func:`answer_classes` over prompts: ``codes[P, M]`` and ``class_correct[P, A_max]``."""
    corr = np.asarray(correct, dtype=bool)
    if corr.ndim != 2 or corr.shape[0] != len(answers):
        raise ValueError(f"correct must have shape (P, M) with P={len(answers)}, got {corr.shape}")
    rows = [answer_classes(a, c) for a, c in zip(answers, corr, strict=True)]
    n_cls = max(1, *(cc.size for _, cc in rows)) if rows else 1
    class_correct = np.zeros((len(rows), n_cls), dtype=bool)
    for i, (_, cc) in enumerate(rows):
        class_correct[i, : cc.size] = cc
    codes = np.stack([c for c, _ in rows]) if rows else np.zeros((0, corr.shape[1]), dtype=np.int64)
    return codes, class_correct


def _check_votes(codes: ArrayLike, class_correct: ArrayLike) -> tuple[IntArray, BoolArray]:
    c = np.asarray(codes)
    cc = np.asarray(class_correct, dtype=bool)
    if c.ndim != 2 or c.size == 0:
        raise ValueError(f"codes must be a non-empty (P, M) array, got shape {c.shape}")
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError("codes must be integers (-1 = no answer)")
    if cc.ndim != 2 or cc.shape[0] != c.shape[0]:
        raise ValueError(f"class_correct must have shape (P, A) with P={c.shape[0]}, got {cc.shape}")
    if c.min() < -1 or c.max() >= cc.shape[1]:
        raise ValueError(f"codes must lie in [-1, {cc.shape[1] - 1}]")
    return c.astype(np.int64), cc


def vote_value(counts: ArrayLike, class_correct: ArrayLike) -> FloatArray:
    """Expected correctness of the majority vote given answer-class counts (last axis = classes).

    ``m = max_a counts[a]``; winners ``W = {a: counts[a] = m}``; value ``|W ∩ correct| / |W|`` (the
    uniform tie-break in expectation), 0 when ``m = 0`` (everyone abstained).
    """
    n = np.asarray(counts)
    cc = np.asarray(class_correct, dtype=bool)
    if n.shape[-1] == 0:
        return np.zeros(n.shape[:-1])
    top = n.max(axis=-1, keepdims=True)
    winners = (n == top) & (top > 0)
    n_win = winners.sum(axis=-1)
    n_ok = (winners & cc).sum(axis=-1)
    return np.where(n_win > 0, n_ok / np.maximum(n_win, 1), 0.0)


def class_counts(codes: ArrayLike, n_cls: int) -> IntArray:
    """``counts[p, a]`` = number of samples of prompt p in class a, for ``codes[P, M]`` (-1 dropped)."""
    codes = np.asarray(codes, dtype=np.int64)
    p = codes.shape[0]
    flat = (np.arange(p)[:, None] * (n_cls + 1) + np.where(codes < 0, n_cls, codes)).ravel()
    return np.bincount(flat, minlength=p * (n_cls + 1)).reshape(p, n_cls + 1)[:, :n_cls]


def maj_at_n_exact(codes: ArrayLike, class_correct: ArrayLike) -> float:
    """Majority vote over all M samples of each prompt (ties in expectation), mean over prompts."""
    c, cc = _check_votes(codes, class_correct)
    return float(vote_value(class_counts(c, cc.shape[1]), cc).mean())


def _n_count_configs(sizes: Sequence[int], cap: int) -> FloatArray:
    """``out[k]`` = number of count vectors ``x`` with ``0 <= x_j <= sizes[j]`` and ``sum x = k``, capped.

    Coefficients of ``prod_j (1 + z + ... + z^{sizes_j})``; values above ``cap`` are clipped to ``cap``.
    """
    total = int(sum(sizes))
    coef = np.zeros(total + 1)
    coef[0] = 1.0
    for s in sizes:
        cs = np.cumsum(coef)
        shifted = np.zeros_like(cs)
        shifted[s + 1 :] = cs[: total - s]
        coef = np.minimum(cs - shifted, cap)
    return coef


def _enumerate_configs(sizes: Sequence[int], k_lo: int, k_hi: int) -> IntArray:
    """All count vectors ``x`` (0 <= x_j <= sizes_j) with ``k_lo <= sum x <= k_hi``, shape (S, len(sizes)).

    Built class by class, keeping only partial vectors that can still reach the range, so no
    intermediate array is larger than the result.
    """
    remaining = [*np.cumsum(list(sizes[::-1]))[::-1].tolist(), 0]
    rows = np.zeros((1, 0), dtype=np.int64)
    sums = np.zeros(1, dtype=np.int64)
    for j, s in enumerate(sizes):
        xs = np.arange(min(s, k_hi) + 1, dtype=np.int64)
        new_sums = (sums[:, None] + xs[None, :]).ravel()
        keep = (new_sums <= k_hi) & (new_sums + remaining[j + 1] >= k_lo)
        src = np.repeat(np.arange(rows.shape[0]), xs.size)[keep]
        rows = np.column_stack([rows[src], np.tile(xs, sums.size)[keep]])
        sums = new_sums[keep]
    return rows


@functools.lru_cache(maxsize=4)
def _log_factorial(n: int) -> FloatArray:
    out = gammaln(np.arange(n + 1, dtype=np.float64) + 1.0)
    out.setflags(write=False)
    return out


def _exact_prompt(sizes: IntArray, correct: BoolArray, n_abstain: int, ks: list[int]) -> FloatArray:
    """Exact maj@k of one prompt for consecutive ``ks``, by enumerating answer-count vectors.

    A k-subset with counts ``x_a`` per class and ``x_0`` abstentions occurs in
    ``prod_a C(n_a, x_a) * C(n_0, x_0)`` of the ``C(M, k)`` subsets; the vote depends only on ``x``.
    So ``maj@k = sum_x P(x) vote_value(x)``, which equals the average over all ``C(M, k)`` subsets but
    costs one term per distinct count vector. Weights are formed in log space and normalised per k.
    """
    all_sizes = [*sizes.tolist(), n_abstain]
    x = _enumerate_configs(all_sizes, ks[0], ks[-1])
    lf = _log_factorial(int(sum(all_sizes)))
    n = np.asarray(all_sizes)
    logw = (lf[n] - lf[x] - lf[n - x]).sum(axis=1)
    k_of = x.sum(axis=1) - ks[0]
    lmax = np.full(len(ks), -np.inf)
    np.maximum.at(lmax, k_of, logw)
    w = np.exp(logw - lmax[k_of])
    v = vote_value(x[:, :-1], correct)
    return np.bincount(k_of, weights=w * v, minlength=len(ks)) / np.bincount(
        k_of, weights=w, minlength=len(ks)
    )


def _mc_block(
    codes: IntArray, class_correct: BoolArray, ks: list[int], rng: np.random.Generator, n_mc: int
) -> tuple[FloatArray, FloatArray]:
    """Monte-Carlo maj@k for a block of prompts: per-prompt means ``[B, len(ks)]`` and their variances.

    Each draw is a uniformly random permutation of a prompt's samples; its first k entries are a
    uniformly random k-subset, so one permutation serves every k. The vote is tracked incrementally
    (running class counts, the current maximum count, how many classes and how many correct classes
    sit at it), O(1) per step and draw, vectorised over all ``B * n_mc`` draws.
    """
    b, m = codes.shape
    n_cls = class_correct.shape[1]
    owner = np.repeat(np.arange(b), n_mc)
    perm = rng.permuted(np.tile(np.arange(m), (b * n_mc, 1)), axis=1)[:, : max(ks)]
    seq = np.where(codes < 0, n_cls, codes)[owner[:, None], perm]
    seq_ok = np.pad(class_correct, ((0, 0), (0, 1)))[owner[:, None], seq]
    rows = np.arange(b * n_mc)
    counts = np.zeros((b * n_mc, n_cls + 1), dtype=np.int64)
    top = np.zeros(b * n_mc, dtype=np.int64)
    n_top = np.zeros(b * n_mc, dtype=np.int64)
    n_ok = np.zeros(b * n_mc, dtype=np.int64)
    want = {k: i for i, k in enumerate(ks)}
    draws = np.empty((b * n_mc, len(ks)))
    for t in range(max(ks)):
        j = seq[:, t]
        c = counts[rows, j] + 1
        counts[rows, j] = c
        answered = j != n_cls
        ok = seq_ok[:, t]
        up = answered & (c > top)
        tie = answered & (c == top)
        top = np.where(up, c, top)
        n_top = np.where(up, 1, n_top + tie)
        n_ok = np.where(up, ok, n_ok + (tie & ok))
        if t + 1 in want:
            draws[:, want[t + 1]] = np.where(n_top > 0, n_ok / np.maximum(n_top, 1), 0.0)
    draws = draws.reshape(b, n_mc, len(ks))
    return draws.mean(axis=1), draws.var(axis=1, ddof=1) / n_mc


def _runs(ks: list[int], sizes: FloatArray, budget: int) -> list[list[int]]:
    """Split sorted ``ks`` into runs of consecutive k whose total configuration count fits ``budget``."""
    runs: list[list[int]] = []
    for k in ks:
        if runs and runs[-1][-1] == k - 1 and sum(sizes[j] for j in runs[-1]) + sizes[k] <= budget:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


def maj_prompt_values(
    codes: ArrayLike,
    class_correct: ArrayLike,
    ks: Sequence[int],
    rng: np.random.Generator,
    *,
    max_exact_subsets: int = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int = DEFAULT_N_MC,
) -> tuple[FloatArray, FloatArray]:
    """Per-prompt maj@k for each k in ``ks``: values ``[P, len(ks)]`` and the variances of the values.

    A k with ``C(M, k) <= max_exact_subsets`` is computed exactly (variance 0) for every prompt, by
    :func:`_exact_prompt` (same value as averaging all ``C(M, k)`` subsets). Every other k is estimated
    from ``n_mc`` random subsets per prompt drawn from ``rng`` (prompts in row order, in fixed blocks,
    so the result is deterministic given the generator's state).
    """
    c, cc = _check_votes(codes, class_correct)
    p, m = c.shape
    k_list = sorted({int(k) for k in ks})
    if not k_list or k_list[0] < 1 or k_list[-1] > m:
        raise ValueError(f"ks must be non-empty and lie in [1, {m}], got {list(ks)}")
    if n_mc < 2:
        raise ValueError(f"n_mc must be at least 2, got {n_mc}")
    exact = [k for k in k_list if math.comb(m, k) <= max_exact_subsets]
    mc = [k for k in k_list if math.comb(m, k) > max_exact_subsets]
    values = np.zeros((p, len(k_list)))
    variances = np.zeros((p, len(k_list)))
    if exact:
        idx = {k: i for i, k in enumerate(k_list)}
        counts = class_counts(c, cc.shape[1])
        budget = max(max_exact_subsets, 1)
        for i in range(p):
            present = counts[i] > 0
            sizes = counts[i][present]
            n_abstain = int((c[i] < 0).sum())
            n_cfg = _n_count_configs([*sizes.tolist(), n_abstain], budget + 1)
            for run in _runs(exact, n_cfg, budget):
                values[i, [idx[k] for k in run]] = _exact_prompt(sizes, cc[i][present], n_abstain, run)
    if mc:
        cols = [k_list.index(k) for k in mc]
        block = max(1, _MC_BLOCK_ELEMENTS // (n_mc * m))
        for lo in range(0, p, block):
            mean, var = _mc_block(c[lo : lo + block], cc[lo : lo + block], mc, rng, n_mc)
            values[lo : lo + block, cols] = mean
            variances[lo : lo + block, cols] = var
    return values, variances


def maj_at_k(
    codes: ArrayLike,
    class_correct: ArrayLike,
    k: int,
    rng: np.random.Generator,
    *,
    max_exact_subsets: int = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int = DEFAULT_N_MC,
) -> tuple[float, float]:
    """Majority-vote accuracy over random k-subsets, mean over prompts, and its standard error.

    ``SE = sqrt(sum_p Var_p) / P`` where ``Var_p = s_p^2 / n_mc`` for a Monte-Carlo prompt (``s_p`` the
    sample std of its draws) and 0 for an exact one. See :func:`maj_prompt_values`.
    """
    v, var = maj_prompt_values(codes, class_correct, [k], rng, max_exact_subsets=max_exact_subsets, n_mc=n_mc)
    return float(v.mean()), float(math.sqrt(var.sum()) / v.shape[0])


def maj_curve(
    codes: ArrayLike,
    class_correct: ArrayLike,
    rng: np.random.Generator,
    *,
    max_exact_subsets: int = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int = DEFAULT_N_MC,
) -> tuple[FloatArray, FloatArray]:
    """:func:`maj_at_k` for k = 1..M: arrays of values and standard errors (index k-1)."""
    m = np.asarray(codes).shape[-1]
    v, var = maj_prompt_values(
        codes, class_correct, range(1, m + 1), rng, max_exact_subsets=max_exact_subsets, n_mc=n_mc
    )
    return v.mean(axis=0), np.sqrt(var.sum(axis=0)) / v.shape[0]
