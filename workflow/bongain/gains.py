"""The real best-of-k curve of one cell (the GAINS table), from its grades and verifier scores."""

from __future__ import annotations

import numpy as np
import polars as pl

from bongain.estimators import (
    DEFAULT_MAX_EXACT_SUBSETS,
    DEFAULT_N_MC,
    bon_curve,
    maj_curve,
    pass_at_k_curve,
)
from bongain.features import answer_codes, join_per_sample, prompt_matrix

GAINS_COLUMNS = ("n_prompts", "n_samples", "k", "pass_at_k", "bon_at_k", "maj_at_k", "maj_at_k_se", "gain")


def compute_gains(
    grades: pl.DataFrame,
    scores: pl.DataFrame,
    *,
    seed: int,
    max_exact_subsets: int = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int = DEFAULT_N_MC,
) -> pl.DataFrame:
    """One row per k = 1..N: pass@k, best-of-k under the reward, maj@k with its Monte-Carlo SE, and
    ``gain = bon_at_k(N) - pass_at_k(1)`` (the same in every row). The caller adds model/method/task.

    Grades and scores are joined on (prompt_id, sample_idx); a sample lacking either, or prompts with
    different N, raise ``ValueError`` naming the prompt_id. Prompts are processed in sorted prompt_id
    order and the Monte-Carlo draws come from ``np.random.default_rng(seed)``, so the result depends
    only on the table contents and ``seed``.
    """
    df, n = join_per_sample(grades, scores, ("grades", "scores"), (("answer", "correct"), ("reward",)))
    correct = prompt_matrix(df, "correct", n).astype(bool)
    rewards = prompt_matrix(df, "reward", n).astype(np.float64)
    codes, class_correct = answer_codes(df, n)
    pass_k = pass_at_k_curve(correct.sum(axis=1), n)
    bon_k = bon_curve(rewards, correct)
    maj_k, maj_se = maj_curve(
        codes, class_correct, np.random.default_rng(seed), max_exact_subsets=max_exact_subsets, n_mc=n_mc
    )
    p = correct.shape[0]
    return pl.DataFrame(
        {
            "n_prompts": np.full(n, p, dtype=np.int64),
            "n_samples": np.full(n, n, dtype=np.int64),
            "k": np.arange(1, n + 1, dtype=np.int64),
            "pass_at_k": pass_k,
            "bon_at_k": bon_k,
            "maj_at_k": maj_k,
            "maj_at_k_se": maj_se,
            "gain": np.full(n, bon_k[-1] - pass_k[0]),
        }
    )
