"""Reward-free output statistics of one cell (the FEATURES table), computed from samples + grades.

Every feature is a small pure function of per-prompt arrays of shape ``[P, N]`` (P prompts, N samples
each, rows sorted by ``prompt_id`` then ``sample_idx``). Definitions and edge cases: docs/features.md.
The table plumbing (:func:`check_layout`, :func:`join_per_sample`, :func:`prompt_matrix`,
:func:`answer_codes`) is shared with :mod:`bongain.cellstats.gains`.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numpy.typing import NDArray

from bongain.cellstats.bootstrap import DEFAULT_CI_LEVEL, DEFAULT_N_BOOT, bootstrap_ci
from bongain.cellstats.votes import class_counts, maj_at_n_exact, vote_value
from bongain.schemas import FEATURE_STATISTICS

KEY = ("prompt_id", "sample_idx")

FEATURE_COLUMNS = ("n_prompts", "n_samples", *FEATURE_STATISTICS)

SAMPLE_COLUMNS = ("n_tokens", "finish_reason", "mean_logprob", "mean_entropy")
GRADE_COLUMNS = ("answer", "correct")


# --------------------------------------------------------------------------------------------------
# table plumbing
# --------------------------------------------------------------------------------------------------


def _check_nulls(df: pl.DataFrame, table: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in (*KEY, *columns) if c not in df.columns]
    if missing:
        raise ValueError(f"{table}: missing column(s) {missing}")
    if df.height == 0:
        raise ValueError(f"{table}: no rows")
    for col in (*KEY, *(c for c in columns if c != "answer")):
        if df[col].null_count():
            nulls = df.filter(pl.col(col).is_null()).sort("prompt_id")
            raise ValueError(f"{table}: null {col} (prompt_id {nulls['prompt_id'][0]!r})")


def _sorted_layout(df: pl.DataFrame) -> int | None:
    """N if ``df`` (sorted by prompt_id, sample_idx) is P blocks of sample_idx 0..N-1, else None."""
    pid = df["prompt_id"]
    starts = (pid != pid.shift(1)).fill_null(True).arg_true().to_numpy()
    sizes = np.diff(np.r_[starts, df.height])
    n = int(sizes[0])
    if not np.all(sizes == n):
        return None
    idx = df["sample_idx"].to_numpy()
    return n if np.array_equal(idx.reshape(-1, n), np.broadcast_to(np.arange(n), (sizes.size, n))) else None


def check_layout(df: pl.DataFrame, table: str, columns: tuple[str, ...] = ()) -> int:
    """Check that every prompt has ``sample_idx`` 0..N-1 exactly once, with the same N; return N.

    N is the most common number of rows per prompt. Raises ``ValueError`` naming the table and the first
    offending ``prompt_id`` (in sorted order), or the missing columns / null values.
    """
    _check_nulls(df, table, columns)
    return _layout_by_group(df, table)


def _layout_by_group(df: pl.DataFrame, table: str) -> int:
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


def _sorted_table(df: pl.DataFrame, table: str, columns: tuple[str, ...]) -> tuple[pl.DataFrame, int]:
    """Validate one table and return its key + ``columns`` sorted by (prompt_id, sample_idx), and N.

    The fast path checks the sorted frame directly (P blocks of sample_idx 0..N-1); only a table that
    fails it goes through the group-by that names the first offending prompt.
    """
    _check_nulls(df, table, columns)
    key = [pl.col("prompt_id").cast(pl.String), pl.col("sample_idx").cast(pl.Int64)]
    out = df.select(*key, *columns).sort(list(KEY))
    n = _sorted_layout(out)
    return out, (n if n is not None else _layout_by_group(out, table))


def join_per_sample(
    left: pl.DataFrame,
    right: pl.DataFrame,
    names: tuple[str, str],
    columns: tuple[tuple[str, ...], tuple[str, ...]],
) -> tuple[pl.DataFrame, int]:
    """Validate both tables, join them on (prompt_id, sample_idx) and sort; return the frame and N.

    Raises ``ValueError`` naming the prompt_id of a sample present in one table but not the other, or
    when the two tables disagree on N. Once both tables are known to hold sample_idx 0..N-1 for each of
    their prompts, they hold the same samples iff they hold the same prompts, and then the sorted
    frames line up row by row, so no hash join is needed.
    """
    a, n_left = _sorted_table(left, names[0], columns[0])
    b, n_right = _sorted_table(right, names[1], columns[1])
    if n_left != n_right:
        raise ValueError(f"{names[0]} has N={n_left} samples per prompt but {names[1]} has N={n_right}")
    pa, pb = a["prompt_id"].gather_every(n_left), b["prompt_id"].gather_every(n_left)
    if not pa.equals(pb):
        for x, y, nx, ny in ((pa, pb, *names), (pb, pa, *reversed(names))):
            orphan = x.filter(~x.is_in(y.implode()))
            if orphan.len():
                raise ValueError(f"prompt_id {orphan[0]!r}: sample_idx 0 is in {nx} but has no row in {ny}")
    return pl.concat([a, b.drop(list(KEY))], how="horizontal"), n_left


def prompt_matrix(df: pl.DataFrame, column: str, n: int) -> NDArray:
    """Column of a frame sorted by (prompt_id, sample_idx) as a ``[P, N]`` array."""
    return df[column].to_numpy().reshape(-1, n)


def answer_codes(df: pl.DataFrame, n: int) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Integer answer codes ``[P, N]`` (-1 = no answer) and per-class correctness ``[P, A]``.

    Within a prompt, classes are numbered by the sorted answer string (so the coding does not depend on
    row order). A class is correct if any of its samples is marked correct.
    """
    answer = df["answer"]
    distinct = answer.drop_nulls().unique().sort()
    n_distinct = distinct.len()
    glob = (
        answer.replace_strict(distinct, np.arange(n_distinct), default=n_distinct, return_dtype=pl.Int64)
        .fill_null(n_distinct)
        .to_numpy()
        .reshape(-1, n)
    )
    order = np.argsort(glob, axis=1, kind="stable")
    ordered = np.take_along_axis(glob, order, axis=1)
    rank = np.zeros(ordered.shape, dtype=np.int64)
    np.cumsum(ordered[:, 1:] != ordered[:, :-1], axis=1, out=rank[:, 1:])
    codes = np.empty_like(rank)
    np.put_along_axis(codes, order, np.where(ordered == n_distinct, -1, rank), axis=1)
    n_cls = max(int(codes.max()) + 1, 1)
    correct = prompt_matrix(df, "correct", n).astype(bool)
    rows = np.broadcast_to(np.arange(codes.shape[0])[:, None], codes.shape)
    has = codes >= 0
    hits = np.bincount(
        (rows[has] * n_cls + codes[has]), weights=correct[has], minlength=codes.shape[0] * n_cls
    )
    return codes, (hits > 0).reshape(-1, n_cls)


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


#: features that are a population std over prompts of a per-prompt value (the rest are means over prompts)
SPREAD_OF = {"agreement_spread": "agreement_mean", "pass1_spread": "pass1"}
#: the statistics that get a bootstrap interval: every Float64 feature
CI_FEATURES = tuple(c for c in FEATURE_COLUMNS if c not in ("n_prompts", "n_samples"))
CI_COLUMNS = (*(f"{c}_{end}" for c in CI_FEATURES for end in ("lo", "hi")), "n_boot", "ci_level")
TABLE_COLUMNS = (*FEATURE_COLUMNS, *CI_COLUMNS)


def prompt_values(
    df: pl.DataFrame, n: int, codes: NDArray[np.int64], class_correct: NDArray[np.bool_]
) -> dict[str, NDArray[np.float64]]:
    """Per-prompt values ``[P]`` of every mean-type feature (the feature is their mean over prompts) and of
    the two spread features' underlying quantities (the spread is their population std over prompts).

    Keys are the feature names of :data:`CI_FEATURES` except the spreads (see :data:`SPREAD_OF`);
    ``codes`` / ``class_correct`` come from :func:`answer_codes` of the same frame.
    """
    correct = prompt_matrix(df, "correct", n).astype(bool)
    counts = _counts(codes).astype(np.float64)
    n_tokens = prompt_matrix(df, "n_tokens", n).astype(np.float64)
    total = counts.sum(axis=1, keepdims=True)
    q = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    plogq = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    return {
        "agreement_mean": modal_share(codes),
        "first_correct_pos": 1.0 / (correct.sum(axis=1) + 1.0),
        "length_var": n_tokens.var(axis=1, ddof=1) if n > 1 else np.zeros(codes.shape[0]),
        "length_mean": n_tokens.mean(axis=1),
        "entropy_mean": prompt_matrix(df, "mean_entropy", n).astype(np.float64).mean(axis=1),
        "logprob_mean": prompt_matrix(df, "mean_logprob", n).astype(np.float64).mean(axis=1),
        "pass1": correct.mean(axis=1),
        "coverage": correct.any(axis=1).astype(np.float64),
        "answer_diversity": (counts > 0).sum(axis=1) / n,
        "answer_entropy": -plogq.sum(axis=1),
        "maj_at_n": vote_value(class_counts(codes, class_correct.shape[1]), class_correct),
        "truncation_rate": (prompt_matrix(df, "finish_reason", n) == "length").mean(axis=1),
        "ungradable_rate": (codes < 0).mean(axis=1),
    }


def compute_features(
    samples: pl.DataFrame,
    grades: pl.DataFrame,
    *,
    seed: int = 0,
    n_boot: int = DEFAULT_N_BOOT,
    ci_level: float = DEFAULT_CI_LEVEL,
) -> dict[str, float | int]:
    """All FEATURES columns except model/method/task, from one cell's SAMPLES and GRADES tables.

    Joined on (prompt_id, sample_idx); no reward is used. Invariant to the row order of both inputs.
    Each Float64 feature ``f`` also gets ``f_lo`` / ``f_hi``: the percentile bootstrap interval at
    ``ci_level`` from ``n_boot`` resamples of the prompts (with replacement), drawn from
    ``np.random.default_rng(seed)``; a spread is recomputed on each resample as the std of the resampled
    per-prompt values, every other feature as their mean.
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
    values = prompt_values(df, n, codes, class_correct)
    mean_names = [c for c in CI_FEATURES if c not in SPREAD_OF]
    lo, hi = bootstrap_ci(
        np.column_stack([values[c] for c in mean_names]),
        np.random.default_rng(seed),
        n_boot,
        ci_level,
        stds=np.column_stack([values[SPREAD_OF[c]] for c in SPREAD_OF]),
    )
    bounds = dict(zip([*mean_names, *SPREAD_OF], zip(lo.tolist(), hi.tolist(), strict=True), strict=True))
    for c in CI_FEATURES:
        out[f"{c}_lo"], out[f"{c}_hi"] = bounds[c]
    out["n_boot"] = int(n_boot)
    out["ci_level"] = float(ci_level)
    assert tuple(out) == TABLE_COLUMNS
    return out
