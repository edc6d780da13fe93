"""Selection strategies beyond best-of-k and the votes: Best-of-Majority and Majority-of-the-Bests.

Each strategy picks one of k samples of a prompt; its accuracy at k is the mean over the k-subsets of the
prompt's N samples (every subset exactly when there are few enough, otherwise Monte Carlo over uniformly
random k-subsets with its standard error), then the mean over prompts. At k = 1 both equal pass@1.

* **Best-of-Majority** (BoM; Di et al. 2025): keep the samples whose answer is given by at least
  ``threshold * k`` of the k samples (a sample without an answer is never kept), and return the one with
  the highest reward among them, ties broken uniformly. When no sample passes the threshold, BoM returns
  plain best-of-k over all k samples (documented fallback).
* **Majority-of-the-Bests** (MoB; Rakhsha et al. 2025): the distribution of the best-of-m winner over
  subsamples of size m drawn from the k samples (without replacement), and the answer that is its mode.
  Here the distribution is exact, not bootstrapped: sample i wins a uniformly random m-subset with
  probability ``[C(a+t, m) - C(a, m)] / (t C(k, m))`` (``a`` samples strictly below its reward, ``t`` tied
  with it), the limit of infinitely many bootstrap subsamples. Samples without an answer form one class
  (the "no answer" output), which can be the mode and is never correct; ties between modal classes are
  broken uniformly. ``m = max(1, round(fraction * k))``.

Both are functions of (rewards, answer codes, class correctness) only, like the votes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
from numpy.typing import NDArray

from bongain.cellstats.passk import FloatArray, IntArray, _subset_cdf_row
from bongain.cellstats.votes import _subset_index, auto_max_exact_subsets, auto_n_mc

#: default of ``statistics.bom_threshold``: an answer must come from at least this share of the k samples
DEFAULT_BOM_THRESHOLD = 0.25
#: default of ``statistics.mob_subsample_fraction``: MoB's subsample size m as a share of k
DEFAULT_MOB_FRACTION = 0.5
_BLOCK_ELEMENTS = 1 << 21  # prompt x subset x k x k entries per block

# A selector maps the k samples of many subsets to the accuracy of its pick in each:
# (rewards [..., k], codes [..., k], correct [..., k]) -> [...]
Selector = Callable[[FloatArray, IntArray, NDArray[np.bool_]], FloatArray]


def _same_class(codes: IntArray) -> NDArray[np.bool_]:
    """``[..., k, k]``: samples i and j give the same answer (no-answer samples form one class)."""
    return codes[..., :, None] == codes[..., None, :]


def bom_selector(threshold: float) -> Selector:
    """Best-of-Majority on each k-subset (see the module docstring)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"statistics.bom_threshold must be in (0, 1], got {threshold}")

    def select(r: FloatArray, codes: IntArray, ok: NDArray[np.bool_]) -> FloatArray:
        k = r.shape[-1]
        count = _same_class(codes).sum(axis=-1)
        eligible = (codes >= 0) & (count >= threshold * k - 1e-9)
        pool = np.where(eligible.any(axis=-1, keepdims=True), eligible, True)
        best = np.where(pool, r, -np.inf).max(axis=-1, keepdims=True)
        winners = pool & (r == best)
        return (winners & ok).sum(axis=-1) / winners.sum(axis=-1)

    return select


def mob_subsample_size(k: int, fraction: float) -> int:
    """MoB's subsample size m for k samples: ``max(1, round(fraction * k))`` (at most k)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"statistics.mob_subsample_fraction must be in (0, 1], got {fraction}")
    return min(k, max(1, round(fraction * k)))


def mob_selector(fraction: float) -> Selector:
    """Majority-of-the-Bests on each k-subset, with the exact best-of-m winner distribution."""
    mob_subsample_size(1, fraction)  # checks fraction

    def select(r: FloatArray, codes: IntArray, ok: NDArray[np.bool_]) -> FloatArray:
        k = r.shape[-1]
        m = mob_subsample_size(k, fraction)
        h = _subset_cdf_row(k, m)  # h[x] = C(x, m) / C(k, m)
        below = (r[..., None, :] < r[..., :, None]).sum(axis=-1)
        tied = (r[..., None, :] == r[..., :, None]).sum(axis=-1)
        win = (h[below + tied] - h[below]) / tied  # P(sample i is the best-of-m winner)
        same = _same_class(codes)
        score = (same * win[..., None, :]).sum(axis=-1)  # winning probability of i's answer
        top = score >= score.max(axis=-1, keepdims=True) * (1 - 1e-12)
        # count each modal class once: its first sample (lowest index) among the top ones
        earlier = np.tril(np.ones((k, k), dtype=bool), -1)
        first = top & ~(same & top[..., None, :] & earlier).any(axis=-1)
        return (first & ok).sum(axis=-1) / first.sum(axis=-1)

    return select


def selection_prompt_values(
    select: Selector,
    rewards: FloatArray,
    codes: IntArray,
    class_correct: NDArray[np.bool_],
    ks: Iterable[int],
    rng: np.random.Generator,
    *,
    max_exact_subsets: int | None = None,
    n_mc: int | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Per-prompt accuracy of a selector at each k ``[P, len(ks)]`` and its Monte-Carlo variance.

    At a k with ``C(N, k) <= max_exact_subsets`` every k-subset is evaluated (variance 0); otherwise
    ``n_mc`` uniformly random k-subsets per prompt (independent, drawn from ``rng``), whose per-prompt
    variance of the mean is returned. ``None`` chooses both from the cell size, as for the votes.
    """
    r = np.asarray(rewards, dtype=np.float64)
    c = np.asarray(codes, dtype=np.int64)
    p, n = r.shape
    if c.shape != r.shape:
        raise ValueError(f"rewards and codes differ in shape: {r.shape} vs {c.shape}")
    ok = np.zeros(c.shape, dtype=bool)
    has = c >= 0
    ok[has] = np.asarray(class_correct, dtype=bool)[np.nonzero(has)[0], c[has]]
    exact_limit = auto_max_exact_subsets(p, n) if max_exact_subsets is None else max_exact_subsets
    draws = auto_n_mc(p, n) if n_mc is None else n_mc
    ks = list(ks)
    values = np.empty((p, len(ks)))
    variances = np.zeros((p, len(ks)))
    for col, k in enumerate(ks):
        if not 1 <= k <= n:
            raise ValueError(f"need 1 <= k <= N, got N={n}, k={k}")
        if math.comb(n, k) <= exact_limit:
            idx = np.broadcast_to(_subset_index(n, k), (p, math.comb(n, k), k))
        else:
            idx = np.argsort(rng.random((p, draws, n)), axis=-1)[..., :k]
        per_subset = _apply(select, r, c, ok, idx)
        values[:, col] = per_subset.mean(axis=1)
        if math.comb(n, k) > exact_limit:
            variances[:, col] = per_subset.var(axis=1, ddof=1) / per_subset.shape[1] if draws > 1 else 0.0
    return values, variances


def _apply(select: Selector, r: FloatArray, c: IntArray, ok: NDArray[np.bool_], idx: IntArray) -> FloatArray:
    """The selector on every subset ``idx [P, S, k]`` of every prompt, in blocks of subsets."""
    p, s, k = idx.shape
    out = np.empty((p, s))
    step = max(1, _BLOCK_ELEMENTS // max(p * k * k, 1))
    rows = np.arange(p)[:, None, None]
    for start in range(0, s, step):
        sl = idx[:, start : start + step]
        out[:, start : start + step] = select(r[rows, sl], c[rows, sl], ok[rows, sl])
    return out
