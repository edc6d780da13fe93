"""Where a cell's best-of-N gain comes from: the oracle gap (headroom) and the reward model's share of it.

For one prompt with N samples, c of them correct, and rewards r_1..r_N:

* **oracle gap** ``h = 1[c > 0] - c / N``: pass@N - pass@1 of the prompt, what best-of-N would gain with a
  perfect verifier (it picks a correct sample whenever there is one). ``h = 0`` when every sample is
  correct or none is.
* **realised gain** ``g = bon@N - c / N``, bon@N = the share of correct samples among those with the
  highest reward (ties broken uniformly). ``g <= h`` always, and ``g = h = 0`` on a prompt with ``h = 0``.
* **within-prompt AUC**, for a prompt with both correct and incorrect samples: the probability that a
  random correct sample gets a higher reward than a random incorrect one of the same prompt, ties counted
  1/2 (the Mann-Whitney statistic over the prompt's n_correct x n_incorrect pairs).

Cell statistics (means over the P test prompts):

* ``gain_oracle = mean_i h_i`` (pass@N - pass@1 of the cell);
* ``efficiency = mean_i g_i / mean_i h_i = gain / gain_oracle``, a ratio of means: the gap-weighted mean of
  the per-prompt efficiencies g_i / h_i over the prompts with a gap. It is null when ``gain_oracle`` is
  below a floor (``statistics.efficiency_gap_floor``): a ratio to a near-zero gap says nothing. Its range
  is ``[-(N - 1), 1]``; 1 = the reward model realises the whole gap, 0 = no better than one random sample,
  negative = worse than one random sample;
* ``auc`` = the mean of the per-prompt AUCs over the prompts that have both correct and incorrect samples
  (each such prompt weighs the same), null when there is none.

Intervals: the percentile bootstrap over prompts of the gains stage (the same resamples as every other
column, :mod:`bongain.cellstats.bootstrap`). On a resample with weights w, efficiency is
``(w . g) / (w . h)`` and AUC ``(w . e auc) / (w . e)`` (e = the prompt has both kinds of sample), so both
ratio estimators are recomputed on each resample; a resample whose denominator is 0 gives no value and is
left out of the percentiles. The ratio of means is consistent, with a bias of order 1/P.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from bongain.cellstats.passk import BoolArray, FloatArray


def oracle_gap_prompt_values(correct: ArrayLike) -> FloatArray:
    """Per prompt ``1[c > 0] - c / N`` from a ``[P, N]`` boolean matrix of correct samples."""
    c = np.asarray(correct, dtype=bool)
    if c.ndim != 2 or c.shape[1] < 1:
        raise ValueError(f"correct must be a [P, N] matrix with N >= 1, got shape {c.shape}")
    return c.any(axis=1).astype(np.float64) - c.mean(axis=1)


def within_prompt_auc(rewards: ArrayLike, correct: ArrayLike) -> tuple[FloatArray, BoolArray]:
    """Per prompt (AUC, eligible): the Mann-Whitney AUC of the rewards of the correct against the incorrect
    samples of the same prompt (ties 1/2), and whether the prompt has both kinds (AUC NaN otherwise).

    From average ranks within the prompt: ``(R_correct - n_c (n_c + 1) / 2) / (n_c n_w)``.
    """
    r = np.asarray(rewards, dtype=np.float64)
    c = np.asarray(correct, dtype=bool)
    if r.shape != c.shape or r.ndim != 2:
        raise ValueError(f"rewards {r.shape} and correct {c.shape} must be [P, N] matrices of one shape")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards must be finite")
    n_c = c.sum(axis=1).astype(np.float64)
    n_w = c.shape[1] - n_c
    eligible = (n_c > 0) & (n_w > 0)
    ranks = stats.rankdata(r, method="average", axis=1)
    rank_sum = np.where(c, ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_c * (n_c + 1) / 2) / (n_c * n_w)
    return np.where(eligible, auc, np.nan), eligible


def ratio_interval(num: ArrayLike, den: ArrayLike, level: float) -> tuple[float, float]:
    """Percentile interval of the bootstrap replicates ``num / den``; replicates with ``den = 0`` are left
    out (NaN, NaN when none is left)."""
    n = np.asarray(num, dtype=np.float64)
    d = np.asarray(den, dtype=np.float64)
    ok = d > 0
    if not ok.any():
        return float("nan"), float("nan")
    ratio = n[ok] / d[ok]
    lo, hi = np.quantile(ratio, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def efficiency(gain: float, gain_oracle: float, floor: float) -> float:
    """``gain / gain_oracle``, NaN when the oracle gap is below ``floor`` (or 0)."""
    if not np.isfinite(gain_oracle) or gain_oracle <= 0 or gain_oracle < floor:
        return float("nan")
    return float(gain / gain_oracle)
