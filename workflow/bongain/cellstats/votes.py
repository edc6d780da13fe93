"""Exact and Monte-Carlo majority vote@k and reward-weighted majority vote@k.

As in :mod:`bongain.cellstats.passk`, the estimators average over a *uniformly random k-subset (without
replacement)* of the M samples drawn for a prompt, and then over prompts.

Majority vote works on integer-coded answers (:func:`encode_answers`): per prompt, code ``-1`` means
"no answer" (the sample abstains) and codes ``0..A-1`` are answer classes; ``class_correct[a]`` says
whether class ``a`` is correct. Matrices over prompts are padded: ``codes[P, M]`` and
``class_correct[P, A_max]`` (padding False). The reward-weighted vote gives each sample a positive
integer weight (:func:`vote_weights`); both votes share one exact / Monte-Carlo policy
(:func:`vote_prompt_values`), whose per-prompt values feed the bootstrap over prompts
(:func:`bongain.cellstats.bootstrap.bootstrap_ci`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bongain.cellstats.passk import BoolArray, FloatArray, IntArray, _check_rewards

#: ``None`` = choose from the cell size (:func:`auto_max_exact_subsets`, :func:`auto_n_mc`).
DEFAULT_MAX_EXACT_SUBSETS: int | None = None
DEFAULT_N_MC: int | None = None
EXACT_WORK = 1 << 20  # auto exactness budget: P * C(M, k) <= EXACT_WORK (but at least C(M, k) = M) ...
MAX_EXACT_SUBSETS = 200_000  # ... and never more than this many subsets per prompt
MC_WORK = 1 << 22  # auto Monte-Carlo draws: n_mc * P * M ~ MC_WORK ...
MIN_N_MC, MAX_N_MC = 8, 2000  # ... within these bounds
_MC_BLOCK_ELEMENTS = 1 << 20  # permutation entries per Monte-Carlo block (cache / memory bound)
_EXACT_BLOCK_ELEMENTS = 1 << 22  # subset x class entries per exact block


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


# --------------------------------------------------------------------------------------------------
# majority vote and reward-weighted majority vote over k-subsets
# --------------------------------------------------------------------------------------------------

WEIGHT_TRANSFORMS = ("softmax", "rank", "uniform")
DEFAULT_WEIGHT = "softmax"
WEIGHT_QUANTUM_BITS = 40  # weights are integers in [1, 2**40]: exact sums, order-free ties


def vote_weights(rewards: ArrayLike, transform: str = DEFAULT_WEIGHT, temperature: float = 1.0) -> IntArray:
    """Per-sample vote weights ``[P, M]`` for the reward-weighted majority vote, as positive integers.

    ``softmax``: ``exp((r - max_j r_j) / temperature)`` within the prompt, i.e. the softmax of the prompt's
    rewards up to the per-prompt constant ``1 / sum_j exp(r_j / T)``, which cannot change any vote; works
    for rewards of any sign (logits). ``rank``: the rank of the reward within the prompt (1 = lowest,
    ties get their average rank); invariant to any increasing transform of the reward. ``uniform``: every
    sample weighs 1 (the plain majority vote).

    The real weights ``w`` in (0, 1] (softmax) are stored as ``max(1, round(w * 2**40))``, so a class
    score (a sum of weights) is an exact integer whatever the order of summation and ties are well
    defined; the relative change of a weight is at most ``2**-40`` (a weight below ``2**-40`` of the
    prompt's largest counts as ``2**-40``). ``rank`` is stored as twice the average rank.
    """
    r = _check_rewards(rewards, 2)
    if transform == "uniform":
        return np.ones(r.shape, dtype=np.int64)
    if transform == "rank":
        order = np.argsort(r, axis=1, kind="stable")
        rs = np.take_along_axis(r, order, axis=1)
        p, m = r.shape
        is_start = np.ones((p, m), dtype=bool)
        is_start[:, 1:] = rs[:, 1:] != rs[:, :-1]
        label = np.cumsum(is_start.ravel()) - 1
        pos = np.tile(np.arange(1, m + 1), p)
        twice_avg = (np.bincount(label, weights=pos) * 2 / np.bincount(label)).astype(np.int64)
        out = np.empty((p, m), dtype=np.int64)
        np.put_along_axis(out, order, twice_avg[label].reshape(p, m), axis=1)
        return out
    if transform == "softmax":
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be positive and finite, got {temperature}")
        w = np.exp((r - r.max(axis=1, keepdims=True)) / temperature)
        return np.maximum(np.rint(w * 2.0**WEIGHT_QUANTUM_BITS), 1).astype(np.int64)
    raise ValueError(f"unknown weight transform {transform!r}; known: {list(WEIGHT_TRANSFORMS)}")


def auto_max_exact_subsets(n_prompts: int, m: int) -> int:
    """Default exactness budget: ``clip(EXACT_WORK // P, M, MAX_EXACT_SUBSETS)``.

    The exact kernel costs about ``P * C(M, k) * (min(k, M - k) + A)`` operations, so the per-prompt budget
    shrinks with the number of prompts; it never drops below M, so k in {1, M-1, M} is always exact.
    """
    return int(min(max(EXACT_WORK // max(n_prompts, 1), m), MAX_EXACT_SUBSETS))


def auto_n_mc(n_prompts: int, m: int) -> int:
    """Default Monte-Carlo draws per prompt: ``clip(MC_WORK // (P * M), MIN_N_MC, MAX_N_MC)``.

    The Monte-Carlo error of the cell mean is ``sqrt(mean_p s_p^2 / (n_mc P))`` against a prompt-sampling
    error of ``sqrt(Var_p(v_p) / P)``: their ratio does not depend on P, so a fixed floor keeps it small
    (``n_mc = 8`` adds at most ``1/8`` of the within-prompt variance), and small cells get more draws.
    """
    return int(min(max(MC_WORK // max(n_prompts * m, 1), MIN_N_MC), MAX_N_MC))


@functools.lru_cache(maxsize=16)
def _subset_index(m: int, r: int) -> IntArray:
    """All r-subsets of range(m) as rows of an int array ``(C(m, r), r)`` (cached, read-only)."""
    n = math.comb(m, r)
    out = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(m), r)), np.int64, n * r)
    out = out.reshape(n, r)
    out.setflags(write=False)
    return out


def _class_index(codes: IntArray, n_cls: int) -> IntArray:
    """Codes with ``-1`` (abstain) replaced by ``n_cls``, as the smallest integer type that fits."""
    dtype = np.int16 if n_cls < np.iinfo(np.int16).max else np.int64
    return np.where(codes < 0, n_cls, codes).astype(dtype)


def _exact_vote(cls: NDArray, w: IntArray, ok: BoolArray, n_cls: int, k: int) -> FloatArray:
    """Exact (weighted) maj@k of each prompt: the average of the vote over all ``C(M, k)`` k-subsets.

    ``cls[P, M]`` class of each sample (``n_cls`` = abstain), ``w[P, M]`` integer weights, ``ok[P, n_cls]``
    class correctness. For ``k <= M - k`` the class scores of a subset are the sums of its members'
    weights; otherwise they are the prompt's totals minus the weights of the ``M - k`` left-out samples.
    Prompts are processed in blocks so that no intermediate exceeds ~2**22 entries.
    """
    p, m = cls.shape
    r = min(k, m - k)
    out = np.empty(p)
    if r == 0:  # k = M: one subset, the whole prompt
        totals = _scatter_scores(cls, w, n_cls)
        return vote_value(totals[:, :n_cls], ok)
    if k == 1:  # one sample: its own class wins whatever its (positive) weight
        answered = cls != n_cls
        own_ok = np.take_along_axis(ok, np.where(answered, cls, 0).astype(np.int64), axis=1) & answered
        return own_ok.mean(axis=1)
    sub = _subset_index(m, r)
    n_sub = sub.shape[0]
    block = max(1, _EXACT_BLOCK_ELEMENTS // (n_sub * (n_cls + 1 + r)))
    for lo in range(0, p, block):
        c = cls[lo : lo + block]
        b = c.shape[0]
        picked_cls = c[:, sub]  # [b, n_sub, r]
        picked_w = w[lo : lo + block][:, sub]
        flat = (np.arange(b * n_sub).reshape(b, n_sub, 1) * (n_cls + 1) + picked_cls).ravel()
        scores = np.bincount(flat, weights=picked_w.ravel(), minlength=b * n_sub * (n_cls + 1))
        scores = scores.reshape(b, n_sub, n_cls + 1)[:, :, :n_cls]
        if k > m - k:
            scores = _scatter_scores(c, w[lo : lo + block], n_cls)[:, None, :n_cls] - scores
        out[lo : lo + block] = vote_value(scores, ok[lo : lo + block, None, :]).mean(axis=1)
    return out


def _scatter_scores(cls: NDArray, w: IntArray, n_cls: int) -> FloatArray:
    """Per-prompt class totals ``[P, n_cls + 1]`` (last column: abstentions) of the weights ``w``."""
    p = cls.shape[0]
    flat = (np.arange(p)[:, None] * (n_cls + 1) + cls).ravel()
    return np.bincount(flat, weights=w.ravel(), minlength=p * (n_cls + 1)).reshape(p, n_cls + 1)


def _mc_block(
    cls: NDArray,
    w: IntArray | None,
    ok: BoolArray,
    n_cls: int,
    k_max: int,
    rng: np.random.Generator,
    n_mc: int,
) -> tuple[FloatArray, FloatArray]:
    """Monte-Carlo (weighted) maj@k, k = 1..k_max, for a block of prompts: means and variances ``[B, k_max]``.

    Each draw is a uniformly random permutation of the prompt's samples; its first k entries are a
    uniformly random k-subset, so one permutation serves every k. With ``s_t`` the running score of the
    class of the t-th drawn sample just after it is added (its count, or its weight sum), the top score
    after t draws is ``T_t = max_{u<=t} s_u``. Scores only grow (weights are positive), so the classes at
    the top after t draws are exactly the draws u <= t with ``s_u = T_t`` (one per class), all of them
    after the last increase of T. Counting them (and the correct ones) is a segmented cumulative sum,
    so the vote at every k is computed without a loop over k. Per-class running scores come from one
    stable sort of each draw's class sequence.
    """
    b, m = cls.shape
    rows = b * n_mc
    idx_type = np.int32 if b * m < 2**31 else np.int64
    perm = rng.permuted(np.tile(np.arange(m, dtype=idx_type), (rows, 1)), axis=1)[:, :k_max]
    row_start = (np.arange(rows, dtype=idx_type) // n_mc * m)[:, None]
    # class and correctness in one code (2 * class + ok): sorting by it groups classes; abstain = 2 * n_cls
    sample_ok = np.zeros(cls.shape, dtype=bool)
    if n_cls:
        sample_ok = np.take_along_axis(ok, np.minimum(cls, n_cls - 1).astype(np.int64), axis=1) & (
            cls != n_cls
        )
    code = (2 * cls.astype(np.int32) + sample_ok).astype(cls.dtype).ravel()
    seq = code[perm + row_start]
    answered = seq < 2 * n_cls
    order = np.argsort(seq, axis=1, kind="stable")
    flat_order = (order + (np.arange(rows, dtype=idx_type) * k_max)[:, None]).ravel()
    sorted_seq = seq.ravel()[flat_order].reshape(rows, k_max)
    first = np.ones(sorted_seq.shape, dtype=bool)
    np.not_equal(sorted_seq[:, 1:], sorted_seq[:, :-1], out=first[:, 1:])
    if w is None:
        pos = np.arange(1, k_max + 1, dtype=np.int32)
        run_sorted = pos - np.maximum.accumulate(np.where(first, pos - 1, 0), axis=1)
    else:
        ws = w.ravel()[(perm + row_start).ravel()[flat_order]].reshape(rows, k_max)
        cum = np.cumsum(ws, axis=1)
        run_sorted = cum - np.maximum.accumulate(np.where(first, cum - ws, 0), axis=1)
    score = np.empty(rows * k_max, dtype=run_sorted.dtype)
    score[flat_order] = run_sorted.ravel()
    score = score.reshape(rows, k_max)
    score *= answered
    top = np.maximum.accumulate(score, axis=1)
    at_top = answered & (score == top)
    ok_top = at_top & (seq & 1).astype(bool)
    raised = np.empty(at_top.shape, dtype=bool)
    raised[:, 0] = answered[:, 0]
    np.greater(top[:, 1:], top[:, :-1], out=raised[:, 1:])
    # both segmented counts at once: (at top) * 2**32 + (at top and correct), cumulated along the draw
    events = (at_top.astype(np.int64) << 32) | ok_top
    packed = np.cumsum(events, axis=1)
    packed -= np.maximum.accumulate(np.where(raised, packed - events, 0), axis=1)
    n_top = np.maximum(packed >> 32, 1)
    n_ok = packed & 0xFFFFFFFF
    draws = (n_ok / n_top).reshape(b, n_mc, k_max)
    total = draws.sum(axis=1)
    mean = total / n_mc
    var = np.maximum((np.einsum("bnk,bnk->bk", draws, draws) - total * mean) / (n_mc - 1), 0.0)
    return mean, var / n_mc


def vote_prompt_values(
    codes: ArrayLike,
    class_correct: ArrayLike,
    ks: Sequence[int],
    rng: np.random.Generator,
    *,
    weights: ArrayLike | None = None,
    max_exact_subsets: int | None = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int | None = DEFAULT_N_MC,
) -> tuple[FloatArray, FloatArray]:
    """Per-prompt (weighted) maj@k for each k in sorted unique ``ks``: values ``[P, K]`` and their variances.

    ``weights[P, M]`` (positive integers, see :func:`vote_weights`) makes each class's score the sum of
    its members' weights in the subset; ``None`` counts votes. Policy, the same for both votes: a k
    with ``C(M, k) <= max_exact_subsets`` is computed exactly for every prompt (variance 0) by averaging
    the vote over all k-subsets (:func:`_exact_vote`); every other k is estimated from ``n_mc`` random
    subsets per prompt (:func:`_mc_block`), with the variance ``s_p^2 / n_mc`` of the estimate. ``None``
    picks :func:`auto_max_exact_subsets` / :func:`auto_n_mc`. Draws come from ``rng`` with prompts in
    row order, in fixed blocks, so the result is deterministic given the generator's state.
    """
    c, cc = _check_votes(codes, class_correct)
    p, m = c.shape
    k_list = sorted({int(k) for k in ks})
    if not k_list or k_list[0] < 1 or k_list[-1] > m:
        raise ValueError(f"ks must be non-empty and lie in [1, {m}], got {list(ks)}")
    budget = auto_max_exact_subsets(p, m) if max_exact_subsets is None else int(max_exact_subsets)
    n_draws = auto_n_mc(p, m) if n_mc is None else int(n_mc)
    if n_draws < 2:
        raise ValueError(f"n_mc must be at least 2, got {n_mc}")
    if weights is None:
        w = None
    else:
        w = np.asarray(weights)
        if w.shape != c.shape or not np.issubdtype(w.dtype, np.integer) or (w.size and w.min() < 1):
            raise ValueError(f"weights must be positive integers of shape {c.shape} (see vote_weights)")
        w = w.astype(np.int64)
    n_cls = cc.shape[1]
    cls = _class_index(c, n_cls)
    values = np.zeros((p, len(k_list)))
    variances = np.zeros((p, len(k_list)))
    if n_cls == 0:  # every sample of every prompt abstains: every vote is wrong
        return values, variances
    exact = [i for i, k in enumerate(k_list) if math.comb(m, k) <= budget]
    mc = [i for i, k in enumerate(k_list) if math.comb(m, k) > budget]
    w_exact = np.ones(c.shape, dtype=np.int64) if w is None else w
    for i in exact:
        values[:, i] = _exact_vote(cls, w_exact, cc, n_cls, k_list[i])
    if mc:
        k_max = k_list[mc[-1]]
        cols = np.array([k_list[i] - 1 for i in mc])
        block = max(1, _MC_BLOCK_ELEMENTS // (n_draws * k_max))
        for lo in range(0, p, block):
            sl = slice(lo, lo + block)
            mean, var = _mc_block(cls[sl], None if w is None else w[sl], cc[sl], n_cls, k_max, rng, n_draws)
            values[sl, mc] = mean[:, cols]
            variances[sl, mc] = var[:, cols]
    return values, variances


def maj_prompt_values(
    codes: ArrayLike,
    class_correct: ArrayLike,
    ks: Sequence[int],
    rng: np.random.Generator,
    *,
    max_exact_subsets: int | None = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int | None = DEFAULT_N_MC,
) -> tuple[FloatArray, FloatArray]:
    """Per-prompt maj@k (unweighted :func:`vote_prompt_values`)."""
    return vote_prompt_values(codes, class_correct, ks, rng, max_exact_subsets=max_exact_subsets, n_mc=n_mc)


def _mean_and_se(values: FloatArray, variances: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean over prompts and its Monte-Carlo SE ``sqrt(sum_p Var_p) / P``."""
    return values.mean(axis=0), np.sqrt(variances.sum(axis=0)) / values.shape[0]


def maj_at_k(
    codes: ArrayLike,
    class_correct: ArrayLike,
    k: int,
    rng: np.random.Generator,
    *,
    max_exact_subsets: int | None = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int | None = DEFAULT_N_MC,
) -> tuple[float, float]:
    """Majority-vote accuracy over random k-subsets, mean over prompts, and its standard error.

    ``SE = sqrt(sum_p Var_p) / P`` where ``Var_p = s_p^2 / n_mc`` for a Monte-Carlo prompt (``s_p`` the
    sample std of its draws) and 0 for an exact one. See :func:`vote_prompt_values`.
    """
    v, var = maj_prompt_values(codes, class_correct, [k], rng, max_exact_subsets=max_exact_subsets, n_mc=n_mc)
    mean, se = _mean_and_se(v, var)
    return float(mean[0]), float(se[0])


def maj_curve(
    codes: ArrayLike,
    class_correct: ArrayLike,
    rng: np.random.Generator,
    *,
    max_exact_subsets: int | None = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int | None = DEFAULT_N_MC,
) -> tuple[FloatArray, FloatArray]:
    """:func:`maj_at_k` for k = 1..M: arrays of values and standard errors (index k-1)."""
    m = np.asarray(codes).shape[-1]
    v, var = maj_prompt_values(
        codes, class_correct, range(1, m + 1), rng, max_exact_subsets=max_exact_subsets, n_mc=n_mc
    )
    return _mean_and_se(v, var)


def wmaj_curve(
    codes: ArrayLike,
    class_correct: ArrayLike,
    rewards: ArrayLike,
    rng: np.random.Generator,
    *,
    weight: str = DEFAULT_WEIGHT,
    temperature: float = 1.0,
    max_exact_subsets: int | None = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int | None = DEFAULT_N_MC,
) -> tuple[FloatArray, FloatArray]:
    """Reward-weighted majority vote for k = 1..M: values and standard errors (index k-1).

    Within a k-subset each answer class scores the sum of :func:`vote_weights` of its members; the
    highest-scoring class wins (exact integer ties broken uniformly); abstentions carry no vote; a
    subset in which every sample abstains is wrong. Same exact/Monte-Carlo policy as :func:`maj_curve`.
    """
    w = vote_weights(rewards, weight, temperature)
    m = w.shape[1]
    v, var = vote_prompt_values(
        codes, class_correct, range(1, m + 1), rng, weights=w, max_exact_subsets=max_exact_subsets, n_mc=n_mc
    )
    return _mean_and_se(v, var)


def wmaj_at_k(
    codes: ArrayLike,
    class_correct: ArrayLike,
    rewards: ArrayLike,
    k: int,
    rng: np.random.Generator,
    *,
    weight: str = DEFAULT_WEIGHT,
    temperature: float = 1.0,
    max_exact_subsets: int | None = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int | None = DEFAULT_N_MC,
) -> tuple[float, float]:
    """Reward-weighted maj@k (see :func:`wmaj_curve`) at one k: mean over prompts and its SE."""
    w = vote_weights(rewards, weight, temperature)
    v, var = vote_prompt_values(
        codes, class_correct, [k], rng, weights=w, max_exact_subsets=max_exact_subsets, n_mc=n_mc
    )
    mean, se = _mean_and_se(v, var)
    return float(mean[0]), float(se[0])
