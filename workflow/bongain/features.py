"""Reward-free output statistics of one cell (the FEATURES table), computed from samples + grades.

Every feature is a small pure function of per-prompt arrays of shape ``[P, N]`` (P prompts, N samples
each, rows sorted by ``prompt_id`` then ``sample_idx``). Definitions and edge cases: docs/features.md.
The table plumbing (:func:`check_layout`, :func:`join_per_sample`, :func:`prompt_matrix`,
:func:`answer_codes`) is shared with :mod:`bongain.gains`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from bongain.estimators import class_counts, maj_at_n_exact

KEY = ("prompt_id", "sample_idx")

FEATURE_COLUMNS = (
    "n_prompts",
    "n_samples",
    "agreement_spread",
    "agreement_mean",
    "first_correct_pos",
    "length_var",
    "length_mean",
    "entropy_mean",
    "logprob_mean",
    "pass1",
    "pass1_spread",
    "coverage",
    "answer_diversity",
    "answer_entropy",
    "maj_at_n",
    "truncation_rate",
    "ungradable_rate",
)

SAMPLE_COLUMNS = ("n_tokens", "finish_reason", "mean_logprob", "mean_entropy")
GRADE_COLUMNS = ("answer", "correct")


# --------------------------------------------------------------------------------------------------
# table plumbing
# --------------------------------------------------------------------------------------------------


def check_layout(df: pl.DataFrame, table: str, columns: tuple[str, ...] = ()) -> int:
    """Check that every prompt has ``sample_idx`` 0..N-1 exactly once, with the same N; return N.

    N is the most common number of rows per prompt. Raises ``ValueError`` naming the table and the first
    offending ``prompt_id`` (in sorted order), or the missing columns / null values.
    """
    missing = [c for c in (*KEY, *columns) if c not in df.columns]
    if missing:
        raise ValueError(f"{table}: missing column(s) {missing}")
    if df.height == 0:
        raise ValueError(f"{table}: no rows")
    for col in (*KEY, *(c for c in columns if c != "answer")):
        nulls = df.filter(pl.col(col).is_null())
        if nulls.height:
            raise ValueError(f"{table}: null {col} (prompt_id {nulls['prompt_id'][0]!r})")
    per_prompt = (
        df.group_by("prompt_id")
        .agg(
            n=pl.len(),
            n_unique=pl.col("sample_idx").n_unique(),
            lo=pl.col("sample_idx").min(),
            hi=pl.col("sample_idx").max(),
        )
        .sort("prompt_id")
    )
    sizes = per_prompt["n"].to_numpy()
    values, freq = np.unique(sizes, return_counts=True)
    n = int(values[freq == freq.max()].max())
    bad = per_prompt.filter(
        (pl.col("n") != n)
        | (pl.col("n_unique") != pl.col("n"))
        | (pl.col("lo") != 0)
        | (pl.col("hi") != n - 1)
    )
    if bad.height:
        row = bad.row(0, named=True)
        raise ValueError(
            f"{table}: prompt_id {row['prompt_id']!r} has {row['n']} rows with {row['n_unique']} distinct "
            f"sample_idx in [{row['lo']}, {row['hi']}]; every prompt needs sample_idx 0..{n - 1} exactly once"
        )
    return n


def join_per_sample(
    left: pl.DataFrame,
    right: pl.DataFrame,
    names: tuple[str, str],
    columns: tuple[tuple[str, ...], tuple[str, ...]],
) -> tuple[pl.DataFrame, int]:
    """Validate both tables, join them on (prompt_id, sample_idx) and sort; return the frame and N.

    Raises ``ValueError`` naming the prompt_id of a sample present in one table but not the other, or
    when the two tables disagree on N.
    """
    n_left = check_layout(left, names[0], columns[0])
    n_right = check_layout(right, names[1], columns[1])
    if n_left != n_right:
        raise ValueError(f"{names[0]} has N={n_left} samples per prompt but {names[1]} has N={n_right}")
    key = [pl.col("prompt_id").cast(pl.String), pl.col("sample_idx").cast(pl.Int64)]
    a = left.select(*key, *columns[0])
    b = right.select(*key, *columns[1])
    for x, y, nx, ny in ((a, b, *names), (b, a, *reversed(names))):
        orphan = x.join(y, on=list(KEY), how="anti").sort(list(KEY))
        if orphan.height:
            pid, idx = orphan.row(0)[:2]
            raise ValueError(f"prompt_id {pid!r}: sample_idx {idx} is in {nx} but has no row in {ny}")
    return a.join(b, on=list(KEY), how="inner").sort(list(KEY)), n_left


def prompt_matrix(df: pl.DataFrame, column: str, n: int) -> NDArray:
    """Column of a frame sorted by (prompt_id, sample_idx) as a ``[P, N]`` array."""
    return df[column].to_numpy().reshape(-1, n)


def answer_codes(df: pl.DataFrame, n: int) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Integer answer codes ``[P, N]`` (-1 = no answer) and per-class correctness ``[P, A]``.

    Within a prompt, classes are numbered by the sorted answer string (so the coding does not depend on
    row order). A class is correct if any of its samples is marked correct.
    """
    coded = df.with_columns(
        code=(pl.col("answer").rank("dense").over("prompt_id") - 1).fill_null(-1).cast(pl.Int64),
        row=(pl.int_range(pl.len()) // n).cast(pl.Int64),
    )
    codes = prompt_matrix(coded, "code", n)
    n_cls = max(int(codes.max()) + 1, 1)
    classes = coded.filter(pl.col("code") >= 0).group_by("row", "code").agg(pl.col("correct").any())
    class_correct = np.zeros((codes.shape[0], n_cls), dtype=bool)
    class_correct[classes["row"].to_numpy(), classes["code"].to_numpy()] = classes["correct"].to_numpy()
    return codes, class_correct


# --------------------------------------------------------------------------------------------------
# features: pure functions of [P, N] arrays
# --------------------------------------------------------------------------------------------------


def _counts(codes: NDArray[np.int64]) -> NDArray[np.int64]:
    return class_counts(codes, max(int(codes.max()) + 1, 1))


def modal_share(codes: NDArray[np.int64]) -> NDArray[np.float64]:
    """``m_i = max_a count_i(a) / N`` over non-null answers (0 when every answer is null)."""
    return _counts(codes).max(axis=1) / codes.shape[1]


def agreement(codes: NDArray[np.int64]) -> tuple[float, float]:
    """(agreement_mean, agreement_spread) = (mean, population std) of :func:`modal_share` over prompts."""
    m = modal_share(codes)
    return float(m.mean()), float(m.std())


def expected_first_correct(c: NDArray[np.int64] | int, n: int) -> NDArray[np.float64]:
    """``E[F] = (N + 1) / (c + 1)``: expected 1-based position of the first correct sample in a uniformly
    random order of N samples with c correct (N + 1 when c = 0)."""
    return (n + 1) / (np.asarray(c, dtype=np.float64) + 1)


def first_correct_pos(correct: NDArray[np.bool_]) -> float:
    """``mean_i E[F_i] / (N + 1) = mean_i 1 / (c_i + 1)``, in (0, 1]."""
    n = correct.shape[1]
    return float(np.mean(expected_first_correct(correct.sum(axis=1), n) / (n + 1)))


def length_stats(n_tokens: NDArray) -> tuple[float, float]:
    """(length_mean, length_var): mean n_tokens; mean over prompts of the within-prompt variance
    (ddof=1, 0 when N = 1)."""
    x = n_tokens.astype(np.float64)
    var = x.var(axis=1, ddof=1).mean() if x.shape[1] > 1 else 0.0
    return float(x.mean()), float(var)


def pass1_stats(correct: NDArray[np.bool_]) -> tuple[float, float, float]:
    """(pass1, pass1_spread, coverage): mean and population std of c_i/N, and mean 1[c_i > 0]."""
    rate = correct.mean(axis=1)
    return float(rate.mean()), float(rate.std()), float(np.mean(correct.any(axis=1)))


def answer_diversity(codes: NDArray[np.int64]) -> float:
    """Mean over prompts of (distinct non-null answers) / N."""
    return float(np.mean((_counts(codes) > 0).sum(axis=1) / codes.shape[1]))


def answer_entropy(codes: NDArray[np.int64]) -> float:
    """Mean over prompts of ``-sum_a q_a log q_a`` (nats), q the empirical distribution of the non-null
    answers of the prompt; 0 for a prompt with no answer."""
    counts = _counts(codes).astype(np.float64)
    total = counts.sum(axis=1, keepdims=True)
    q = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    plogq = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    return float(np.mean(-plogq.sum(axis=1)))


def truncation_rate(finish_reason: NDArray) -> float:
    """Fraction of samples with ``finish_reason == 'length'``."""
    return float(np.mean(finish_reason == "length"))


def ungradable_rate(codes: NDArray[np.int64]) -> float:
    """Fraction of samples with no extracted answer (code -1)."""
    return float(np.mean(codes < 0))


# --------------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------------


def compute_features(samples: pl.DataFrame, grades: pl.DataFrame) -> dict[str, float | int]:
    """All FEATURES columns except model/method/task, from one cell's SAMPLES and GRADES tables.

    Joined on (prompt_id, sample_idx); no reward is used. Invariant to the row order of both inputs.
    """
    df, n = join_per_sample(samples, grades, ("samples", "grades"), (SAMPLE_COLUMNS, GRADE_COLUMNS))
    codes, class_correct = answer_codes(df, n)
    correct = prompt_matrix(df, "correct", n).astype(bool)
    length_mean, length_var = length_stats(prompt_matrix(df, "n_tokens", n))
    agreement_mean, agreement_spread = agreement(codes)
    pass1, pass1_spread, coverage = pass1_stats(correct)
    out: dict[str, float | int] = {
        "n_prompts": int(codes.shape[0]),
        "n_samples": int(n),
        "agreement_spread": agreement_spread,
        "agreement_mean": agreement_mean,
        "first_correct_pos": first_correct_pos(correct),
        "length_var": length_var,
        "length_mean": length_mean,
        "entropy_mean": float(df["mean_entropy"].cast(pl.Float64).mean()),
        "logprob_mean": float(df["mean_logprob"].cast(pl.Float64).mean()),
        "pass1": pass1,
        "pass1_spread": pass1_spread,
        "coverage": coverage,
        "answer_diversity": answer_diversity(codes),
        "answer_entropy": answer_entropy(codes),
        "maj_at_n": maj_at_n_exact(codes, class_correct),
        "truncation_rate": truncation_rate(prompt_matrix(df, "finish_reason", n)),
        "ungradable_rate": ungradable_rate(codes),
    }
    assert tuple(out) == FEATURE_COLUMNS
    return out
