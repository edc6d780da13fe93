"""Simulations with a known truth: the estimators are unbiased and the bootstrap CIs cover.

Data-generating process (one "cell"): prompts are iid with success probability ``p ~ Beta(A, B)``; each
of a prompt's N samples is independently correct with probability p. A correct sample answers class 0
with reward ~ N(MU1, 1); a wrong one abstains with probability ABSTAIN, else answers wrong class j with
probability WRONG[j], with reward ~ N(MU0, 1). The population values (k iid samples of a random prompt)
are computed without simulation:

- pass@k = E[1 - (1 - p)^k] = 1 - B(A, B + k) / B(A, B);
- bon@k = E_p ∫ k p φ(r - MU1) F_p(r)^(k-1) dr with F_p = p Φ(· - MU1) + (1 - p) Φ(· - MU0)
  (the top-reward sample is correct), by quadrature over p and r;
- maj@k = E_p sum over count vectors x of Multinomial(x; k, π_p) · vote(x), by enumeration;
- gain = bon@N - pass@1.

The cell estimators average over k-subsets of N iid samples (U-statistics), so their expectation is the
population value; the bootstrap over prompts targets the same quantity because prompts are iid.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import special, stats

from bongain.cellstats import bootstrap, passk, votes

A, B = 1.2, 1.8
MU0, MU1 = 0.0, 1.0
ABSTAIN = 0.1
WRONG = np.array([0.5, 0.3, 0.2])
N = 16


# ------------------------------------------------------------------------------------------- truth


def _p_quadrature(n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E_p[f(p)] for p ~ Beta(A, B) (Gauss-Jacobi on [0, 1])."""
    x, w = special.roots_jacobi(n, B - 1, A - 1)  # weight (1 - x)^(B-1) (1 + x)^(A-1) on [-1, 1]
    p = (x + 1) / 2
    return p, w / w.sum()


def true_pass(k: np.ndarray) -> np.ndarray:
    return 1 - np.exp(special.betaln(A, B + k) - special.betaln(A, B))


def true_bon(ks: np.ndarray) -> np.ndarray:
    p, wp = _p_quadrature()
    r = np.linspace(MU0 - 9, MU1 + 9, 6001)
    f1 = stats.norm.pdf(r - MU1)
    cdf = p[:, None] * stats.norm.cdf(r - MU1) + (1 - p[:, None]) * stats.norm.cdf(r - MU0)
    out = []
    for k in ks:
        integrand = k * p[:, None] * f1 * cdf ** (k - 1)
        out.append(wp @ np.trapezoid(integrand, r, axis=1))
    return np.array(out)


def _vote(counts: np.ndarray) -> np.ndarray:
    """Vote value of count vectors [..., classes] (class 0 correct, last column = abstain), written from
    the definition (not votes.py): the modal classes share the win uniformly; no answer at all -> 0."""
    answered = counts[..., :-1]
    top = answered.max(axis=-1)
    n_top = (answered == top[..., None]).sum(axis=-1)
    return np.where(top > 0, (answered[..., 0] == top) / n_top, 0.0)


def true_maj(ks: np.ndarray) -> np.ndarray:
    p, wp = _p_quadrature()
    probs = np.column_stack([p, np.outer(1 - p, (1 - ABSTAIN) * WRONG), (1 - p) * ABSTAIN])  # [nodes, 5]
    out = []
    for k in ks:
        x = np.array([c for c in itertools.product(range(k + 1), repeat=4) if sum(c) <= k])
        x = np.column_stack([x, k - x.sum(axis=1)])
        logcoef = special.gammaln(k + 1) - special.gammaln(x + 1).sum(axis=1)
        with np.errstate(divide="ignore"):
            logp = x @ np.log(probs).T  # [configs, nodes]
        pmf = np.exp(logcoef[:, None] + logp)
        out.append(wp @ (_vote(x) @ pmf))
    return np.array(out)


KS = np.arange(1, N + 1)
TRUTH = {"pass_at_k": true_pass(KS), "bon_at_k": true_bon(KS), "maj_at_k": true_maj(KS)}
TRUE_GAIN = TRUTH["bon_at_k"][-1] - A / (A + B)


def test_truth_is_consistent() -> None:
    # k = 1: every statistic is the probability that one sample is correct, E[p]
    for name in TRUTH:
        assert TRUTH[name][0] == pytest.approx(A / (A + B), abs=1e-6), name
    assert np.all(np.diff(TRUTH["pass_at_k"]) > 0) and np.all(TRUTH["bon_at_k"] <= TRUTH["pass_at_k"] + 1e-9)


# -------------------------------------------------------------------------------------- simulation


def simulate(
    rng: np.random.Generator, n_prompts: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(correct, rewards, codes, class_correct) of ``n_prompts`` iid prompts with N samples each."""
    p = rng.beta(A, B, size=n_prompts)
    correct = rng.random((n_prompts, N)) < p[:, None]
    rewards = rng.normal(size=(n_prompts, N)) + np.where(correct, MU1, MU0)
    u = rng.random((n_prompts, N))
    wrong = 1 + np.searchsorted(np.cumsum(WRONG * (1 - ABSTAIN)), u, side="right")  # 1..3, or 4 = abstain
    codes = np.where(correct, 0, np.where(wrong > 3, -1, wrong))
    class_correct = np.zeros((n_prompts, 4), dtype=bool)
    class_correct[:, 0] = True
    return correct, rewards, codes, class_correct


def prompt_values(rng: np.random.Generator, n_prompts: int, **policy: int) -> dict[str, np.ndarray]:
    correct, rewards, codes, class_correct = simulate(rng, n_prompts)
    maj, _ = votes.vote_prompt_values(codes, class_correct, KS, rng, **policy)
    out = {
        "pass_at_k": passk.pass_prompt_values(correct.sum(axis=1), N),
        "bon_at_k": passk.bon_prompt_values(rewards, correct),
        "maj_at_k": maj,
    }
    out["gain"] = (out["bon_at_k"][:, -1] - out["pass_at_k"][:, 0])[:, None]
    return out


def test_estimators_are_unbiased() -> None:
    """Mean over 40 000 simulated prompts (N = 16) within 4 SE of the population value at every k.

    The prompts are iid, so the SE of the mean is the std of the per-prompt values / sqrt(P) (the
    Monte-Carlo part of maj is inside the per-prompt values). 49 comparisons at |z| <= 4 fail by chance
    with probability < 0.4% (and the seed is fixed).
    """
    values = prompt_values(np.random.default_rng(20261123), 40_000, max_exact_subsets=200, n_mc=32)
    truth = {**TRUTH, "gain": np.array([TRUE_GAIN])}
    for name, v in values.items():
        mean = v.mean(axis=0)
        se = v.std(axis=0, ddof=1) / np.sqrt(v.shape[0])
        z = (mean - truth[name]) / se
        assert np.all(np.abs(z) <= 4), (name, z.round(2))
        assert np.all(np.abs(mean - truth[name]) < 0.01), name


def test_bootstrap_ci_coverage() -> None:
    """95% percentile CIs over prompts cover the population value at close to the nominal rate.

    200 independent cells of 60 prompts; for each checked statistic, the fraction of cells whose CI
    (B = 1000) contains the truth. With 200 replicates the binomial SE of a coverage of 0.95 is
    sqrt(0.95 * 0.05 / 200) = 0.015; the percentile bootstrap of a mean of 60 iid values under-covers
    slightly (about 1 point for these skewed per-prompt values), so we accept [0.90, 0.99]: more than
    3 SE below nominal fails, as does over-coverage of 0.99+. The average coverage over all checks
    (positively correlated, so not a tighter test) must lie in [0.92, 0.97].
    """
    reps, n_prompts = 200, 60
    rng = np.random.default_rng(7)
    values = prompt_values(rng, reps * n_prompts, max_exact_subsets=N, n_mc=64)
    truth = {**TRUTH, "gain": np.array([TRUE_GAIN])}
    checks = {"pass_at_k": [1, 4, 16], "bon_at_k": [1, 4, 16], "maj_at_k": [1, 5, 15], "gain": [1]}
    cols = [(name, k) for name, ks in checks.items() for k in ks]
    stacked = np.column_stack([values[name][:, k - 1] for name, k in cols]).reshape(reps, n_prompts, -1)
    target = np.array([truth[name][k - 1] for name, k in cols])
    boot_rng = np.random.default_rng(8)
    covered = np.zeros(len(cols))
    for r in range(reps):
        lo, hi = bootstrap.bootstrap_ci(stacked[r], boot_rng, 1000, 0.95)
        covered += (lo <= target) & (target <= hi)
    coverage = covered / reps
    for (name, k), c in zip(cols, coverage, strict=True):
        assert 0.90 <= c <= 0.99, (name, k, c)
    assert 0.92 <= coverage.mean() <= 0.97, coverage
