"""The real best-of-k curve of one cell under one reward model (the GAINS table), from its grades, the
reward model's scores and (for self-certainty best-of-k) its samples; with the cell's oracle gap and the
reward model's efficiency and within-prompt AUC (:mod:`bongain.cellstats.efficiency`)."""

from __future__ import annotations

import numpy as np
import polars as pl

from bongain.cellstats.bootstrap import DEFAULT_CI_LEVEL, DEFAULT_N_BOOT, bootstrap_replicates, percentile_ci
from bongain.cellstats.efficiency import (
    efficiency,
    oracle_gap_prompt_values,
    ratio_interval,
    within_prompt_auc,
)
from bongain.cellstats.features import answer_codes, join_per_sample, prompt_matrix
from bongain.cellstats.passk import bon_prompt_values, pass_prompt_values
from bongain.cellstats.selection import (
    DEFAULT_BOM_THRESHOLD,
    DEFAULT_MOB_FRACTION,
    bom_selector,
    mob_selector,
    selection_prompt_values,
)
from bongain.cellstats.votes import (
    DEFAULT_MAX_EXACT_SUBSETS,
    DEFAULT_N_MC,
    DEFAULT_WEIGHT,
    vote_prompt_values,
    vote_weights,
)

#: the curves that get a bootstrap interval, in column order
CURVES = ("pass_at_k", "bon_at_k", "maj_at_k", "wmaj_at_k", "bom_at_k", "mob_at_k", "selfcert_at_k")
#: The targets whose gain does not depend on the reward model (the same in every reward model's file).
RM_FREE_TARGETS = ("oracle", "maj", "selfcert")
#: Default of ``statistics.efficiency_gap_floor``: efficiency is null below this oracle gap.
DEFAULT_GAP_FLOOR = 0.05
#: strategy -> its curve; ``gain_<strategy>`` = that curve at k = N minus pass@1 (bon: the column ``gain``;
#: oracle: pass@N - pass@1, what a perfect verifier would gain)
TARGETS = {
    "oracle": "pass_at_k",
    "bon": "bon_at_k",
    "maj": "maj_at_k",
    "wmaj": "wmaj_at_k",
    "bom": "bom_at_k",
    "mob": "mob_at_k",
    "selfcert": "selfcert_at_k",
}
GAINS_COLUMNS = (
    "n_prompts",
    "n_samples",
    "k",
    "pass_at_k",
    "bon_at_k",
    "maj_at_k",
    "maj_at_k_se",
    "gain",
    "wmaj_at_k",
    "wmaj_at_k_se",
    "bom_at_k",
    "bom_at_k_se",
    "mob_at_k",
    "mob_at_k_se",
    "selfcert_at_k",
    *(f"{c}_{end}" for c in CURVES for end in ("lo", "hi")),
    "gain_lo",
    "gain_hi",
    *(f"gain_{t}{end}" for t in TARGETS if t not in ("bon", "oracle") for end in ("", "_lo", "_hi")),
    "gain_oracle",
    "gain_oracle_lo",
    "gain_oracle_hi",
    "efficiency",
    "efficiency_lo",
    "efficiency_hi",
    "gap_floor",
    "auc",
    "auc_lo",
    "auc_hi",
    "auc_prompts",
    "n_boot",
    "ci_level",
)


def compute_gains(
    grades: pl.DataFrame,
    scores: pl.DataFrame,
    *,
    seed: int,
    max_exact_subsets: int | None = DEFAULT_MAX_EXACT_SUBSETS,
    n_mc: int | None = DEFAULT_N_MC,
    weight: str = DEFAULT_WEIGHT,
    temperature: float = 1.0,
    bom_threshold: float = DEFAULT_BOM_THRESHOLD,
    mob_subsample_fraction: float = DEFAULT_MOB_FRACTION,
    efficiency_gap_floor: float = DEFAULT_GAP_FLOOR,
    n_boot: int = DEFAULT_N_BOOT,
    ci_level: float = DEFAULT_CI_LEVEL,
    samples: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per k = 1..N: pass@k, best-of-k under the reward, maj@k, reward-weighted maj@k,
    Best-of-Majority and Majority-of-the-Bests (:mod:`bongain.cellstats.selection`) with their Monte-Carlo
    SEs, self-certainty best-of-k, ``gain = bon_at_k(N) - pass_at_k(1)`` (the same in every row), and
    percentile bootstrap intervals (over prompts) of all of them. The caller adds model/method/task.
    ``gain_<strategy>`` (maj, wmaj, bom, mob, selfcert) is ``<strategy>_at_k(N) - pass_at_k(1)`` with its
    own interval (of the per-prompt difference, on the same resamples), the target ``fit.target`` picks.

    ``gain_oracle`` = pass@N - pass@1 (what a perfect verifier would gain; independent of the rewards),
    ``efficiency`` = gain / gain_oracle (null when gain_oracle < ``efficiency_gap_floor``) and ``auc``, the
    mean within-prompt AUC of the rewards over the prompts with both correct and incorrect samples
    (``auc_prompts`` of them; null when none), each with its interval on the same resamples
    (:mod:`bongain.cellstats.efficiency`).

    ``selfcert_at_k`` (Kang et al. 2025) is best-of-k with the sample's ``self_certainty`` (SAMPLES
    column) as the score: the exact best-of-k kernel of ``bon_at_k``, ties (exact float equality) broken
    uniformly. It and its interval are null when ``samples`` is None or any sample's self-certainty is
    null or not finite (the vLLM backend's top-k entropy modes do not compute it): see
    :func:`selfcert_scores`.

    Every statistic is a mean over prompts of a per-prompt value, so one resample of the prompts is one
    weighted mean of the per-prompt values (the Monte-Carlo estimates for maj/wmaj at the k where they
    are not exact, so the interval includes the Monte-Carlo noise). ``weight`` / ``temperature`` choose
    the vote weight (:func:`bongain.cellstats.votes.vote_weights`); ``max_exact_subsets`` / ``n_mc`` the
    exact/Monte-Carlo policy shared by both votes (``None``: chosen from the cell size).

    Grades and scores are joined on (prompt_id, sample_idx); a sample lacking either, or prompts with
    different N, raise ``ValueError`` naming the prompt_id. Prompts are processed in sorted prompt_id
    order; the maj, wmaj, BoM and MoB Monte-Carlo draws and the bootstrap draws come from independent
    streams spawned from ``np.random.SeedSequence(seed)`` (the first three as before, so adding strategies
    left the existing columns unchanged), so the result depends only on the table contents and
    the arguments.
    """
    df, n = join_per_sample(grades, scores, ("grades", "scores"), (("answer", "correct"), ("reward",)))
    correct = prompt_matrix(df, "correct", n).astype(bool)
    certainty = selfcert_scores(grades, samples)
    rewards = prompt_matrix(df, "reward", n).astype(np.float64)
    codes, class_correct = answer_codes(df, n)
    streams = np.random.SeedSequence(seed).spawn(5)
    maj_rng, wmaj_rng, boot_rng, bom_rng, mob_rng = (np.random.default_rng(s) for s in streams)
    ks = range(1, n + 1)
    policy = {"max_exact_subsets": max_exact_subsets, "n_mc": n_mc}
    per_prompt = {
        "pass_at_k": pass_prompt_values(correct.sum(axis=1), n),
        "bon_at_k": bon_prompt_values(rewards, correct),
    }
    per_prompt["maj_at_k"], maj_var = vote_prompt_values(codes, class_correct, ks, maj_rng, **policy)
    per_prompt["wmaj_at_k"], wmaj_var = vote_prompt_values(
        codes, class_correct, ks, wmaj_rng, weights=vote_weights(rewards, weight, temperature), **policy
    )
    per_prompt["bom_at_k"], bom_var = selection_prompt_values(
        bom_selector(bom_threshold), rewards, codes, class_correct, ks, bom_rng, **policy
    )
    per_prompt["mob_at_k"], mob_var = selection_prompt_values(
        mob_selector(mob_subsample_fraction), rewards, codes, class_correct, ks, mob_rng, **policy
    )
    if certainty is not None:
        per_prompt["selfcert_at_k"] = bon_prompt_values(certainty, correct)
    curves = [c for c in CURVES if c in per_prompt]  # every curve but selfcert_at_k when it is missing
    gain = per_prompt["bon_at_k"][:, -1] - per_prompt["pass_at_k"][:, 0]
    others = [t for t in TARGETS if t not in ("bon", "oracle") and TARGETS[t] in per_prompt]
    other_gains = [per_prompt[TARGETS[t]][:, -1] - per_prompt["pass_at_k"][:, 0] for t in others]
    gap = oracle_gap_prompt_values(correct)
    auc_i, eligible = within_prompt_auc(rewards, correct)
    both = eligible.astype(np.float64)
    p = correct.shape[0]
    # the draws depend on P only, so the columns after `gain` leave the earlier intervals unchanged
    reps = bootstrap_replicates(
        np.column_stack(
            [
                *(per_prompt[c] for c in curves),
                gain,
                *other_gains,
                gap,
                np.where(eligible, auc_i, 0.0),
                both,
            ]
        ),
        boot_rng,
        n_boot,
    )
    head = len(curves) * n + 1
    lo, hi = percentile_ci(reps[:, : head + len(others) + 1], ci_level)
    gap_lo, gap_hi = lo[-1], hi[-1]
    tail_lo, tail_hi = lo[head:-1], hi[head:-1]
    lo, hi = lo[:head], hi[:head]
    gain_oracle = float(gap.mean())
    eff = efficiency(float(gain.mean()), gain_oracle, efficiency_gap_floor)
    g_col = len(curves) * n
    eff_lo, eff_hi = (
        ratio_interval(reps[:, g_col], reps[:, -3], ci_level) if np.isfinite(eff) else (np.nan, np.nan)
    )
    auc, auc_lo, auc_hi = float("nan"), float("nan"), float("nan")
    if eligible.any():
        auc = float(auc_i[eligible].mean())
        auc_lo, auc_hi = ratio_interval(reps[:, -2], reps[:, -1], ci_level)
    curve = {c: v.mean(axis=0) for c, v in per_prompt.items()}
    missing = np.full(n, np.nan)
    out = {
        "n_prompts": np.full(n, p, dtype=np.int64),
        "n_samples": np.full(n, n, dtype=np.int64),
        "k": np.arange(1, n + 1, dtype=np.int64),
        "pass_at_k": curve["pass_at_k"],
        "bon_at_k": curve["bon_at_k"],
        "maj_at_k": curve["maj_at_k"],
        "maj_at_k_se": np.sqrt(maj_var.sum(axis=0)) / p,
        "gain": np.full(n, curve["bon_at_k"][-1] - curve["pass_at_k"][0]),
        "wmaj_at_k": curve["wmaj_at_k"],
        "wmaj_at_k_se": np.sqrt(wmaj_var.sum(axis=0)) / p,
        "bom_at_k": curve["bom_at_k"],
        "bom_at_k_se": np.sqrt(bom_var.sum(axis=0)) / p,
        "mob_at_k": curve["mob_at_k"],
        "mob_at_k_se": np.sqrt(mob_var.sum(axis=0)) / p,
        "selfcert_at_k": curve.get("selfcert_at_k", missing),
    }
    for c in CURVES:
        out[f"{c}_lo"], out[f"{c}_hi"] = missing, missing
    for i, c in enumerate(curves):
        out[f"{c}_lo"], out[f"{c}_hi"] = lo[i * n : (i + 1) * n], hi[i * n : (i + 1) * n]
    out["gain_lo"], out["gain_hi"] = np.full(n, lo[-1]), np.full(n, hi[-1])
    for t in TARGETS:
        if t not in ("bon", "oracle"):
            out[f"gain_{t}"] = out[f"gain_{t}_lo"] = out[f"gain_{t}_hi"] = missing
    for i, t in enumerate(others):
        out[f"gain_{t}"] = np.full(n, curve[TARGETS[t]][-1] - curve["pass_at_k"][0])
        out[f"gain_{t}_lo"], out[f"gain_{t}_hi"] = np.full(n, tail_lo[i]), np.full(n, tail_hi[i])
    out["gain_oracle"] = np.full(n, gain_oracle)
    out["gain_oracle_lo"], out["gain_oracle_hi"] = np.full(n, gap_lo), np.full(n, gap_hi)
    out["efficiency"] = np.full(n, eff)
    out["efficiency_lo"], out["efficiency_hi"] = np.full(n, eff_lo), np.full(n, eff_hi)
    out["gap_floor"] = np.full(n, float(efficiency_gap_floor))
    out["auc"] = np.full(n, auc)
    out["auc_lo"], out["auc_hi"] = np.full(n, auc_lo), np.full(n, auc_hi)
    out["auc_prompts"] = np.full(n, int(eligible.sum()), dtype=np.int64)
    out["n_boot"] = np.full(n, n_boot, dtype=np.int64)
    out["ci_level"] = np.full(n, float(ci_level))
    assert tuple(out) == GAINS_COLUMNS
    return pl.DataFrame(out).with_columns(
        pl.col(r"^(selfcert_at_k|gain_selfcert|efficiency|auc)(_lo|_hi)?$").fill_nan(None)
    )


def selfcert_scores(grades: pl.DataFrame, samples: pl.DataFrame | None) -> np.ndarray | None:
    """Per-sample self-certainty ``[P, N]`` in the (prompt_id, sample_idx) order of ``grades``, or None
    when it cannot be used: no samples table, or a sample whose ``self_certainty`` is null (not computed:
    the vLLM backend's top-k entropy modes, docs/backends.md) or not finite. The samples table must hold
    the same samples as ``grades`` (``ValueError`` naming a prompt_id otherwise)."""
    if samples is None or "self_certainty" not in samples.columns:
        return None
    cert = samples["self_certainty"].cast(pl.Float64)
    if cert.null_count() or not np.isfinite(cert.to_numpy()).all():
        return None
    df, n = join_per_sample(grades, samples, ("grades", "samples"), (("correct",), ("self_certainty",)))
    return prompt_matrix(df, "self_certainty", n).astype(np.float64)
