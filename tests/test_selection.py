"""Best-of-Majority and Majority-of-the-Bests against an independent brute force.

The reference enumerates, in plain Python, every k-subset of a prompt's samples and, for MoB, every
m-subset of that k-subset (the winner distribution by counting, ties split evenly) — no code of the
package is used except to build the inputs.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from bongain.cellstats.selection import (
    bom_selector,
    mob_selector,
    mob_subsample_size,
    selection_prompt_values,
)


def _argmax_all(values):
    best = max(values)
    return [i for i, v in enumerate(values) if v == best]


def bom_brute(rewards, answers, correct, k, threshold):
    """Mean over k-subsets of P(BoM picks a correct sample)."""
    total = Fraction(0)
    subsets = list(itertools.combinations(range(len(rewards)), k))
    for sub in subsets:
        counts = {}
        for i in sub:
            if answers[i] is not None:
                counts[answers[i]] = counts.get(answers[i], 0) + 1
        keep = [i for i in sub if answers[i] is not None and counts[answers[i]] >= threshold * k - 1e-9]
        pool = keep or list(sub)
        winners = [pool[j] for j in _argmax_all([rewards[i] for i in pool])]
        total += Fraction(sum(correct[i] for i in winners), len(winners))
    return float(total / len(subsets))


def mob_brute(rewards, answers, correct_answer, k, m):
    """Mean over k-subsets of P(the modal answer of the best-of-m winner distribution is correct)."""
    total = Fraction(0)
    subsets = list(itertools.combinations(range(len(rewards)), k))
    for sub in subsets:
        win = {}
        msubs = list(itertools.combinations(sub, m))
        for ms in msubs:
            winners = [ms[j] for j in _argmax_all([rewards[i] for i in ms])]
            for i in winners:
                win[answers[i]] = win.get(answers[i], Fraction(0)) + Fraction(1, len(winners) * len(msubs))
        best = max(win.values())
        modes = [a for a, v in win.items() if v == best]
        total += Fraction(sum(a is not None and a == correct_answer for a in modes), len(modes))
    return float(total / len(subsets))


def random_prompts(seed, n_prompts=6, n=6, n_answers=3):
    rng = np.random.default_rng(seed)
    rewards = rng.integers(0, 4, size=(n_prompts, n)).astype(float)  # many reward ties on purpose
    raw = rng.integers(-1, n_answers, size=(n_prompts, n))  # -1: no answer
    gold = rng.integers(0, n_answers, size=n_prompts)
    answers = [[None if a < 0 else str(a) for a in row] for row in raw]
    return rewards, answers, [str(g) for g in gold]


def encode(answers, gold):
    """Codes per prompt by sorted answer string (-1 none) and class correctness, built independently."""
    codes, cc = [], []
    n_cls = max(len({a for a in row if a is not None}) for row in answers) or 1
    for row, g in zip(answers, gold, strict=True):
        labels = sorted({a for a in row if a is not None})
        codes.append([-1 if a is None else labels.index(a) for a in row])
        cc.append([lab == g for lab in labels] + [False] * (n_cls - len(labels)))
    return np.array(codes), np.array(cc, dtype=bool)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.25, 0.5, 1.0])
def test_bom_exact_matches_bruteforce(seed, threshold):
    rewards, answers, gold = random_prompts(seed)
    codes, cc = encode(answers, gold)
    n = rewards.shape[1]
    got, var = selection_prompt_values(
        bom_selector(threshold),
        rewards,
        codes,
        cc,
        range(1, n + 1),
        np.random.default_rng(0),
        max_exact_subsets=10**6,
    )
    assert not var.any()
    for p in range(rewards.shape[0]):
        correct = [a is not None and a == gold[p] for a in answers[p]]
        want = [bom_brute(rewards[p], answers[p], correct, k, threshold) for k in range(1, n + 1)]
        np.testing.assert_allclose(got[p], want, atol=1e-12)
        assert got[p, 0] == pytest.approx(np.mean(correct))  # k = 1: pass@1


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fraction", [0.3, 0.5, 1.0])
def test_mob_exact_matches_bruteforce(seed, fraction):
    rewards, answers, gold = random_prompts(seed + 10)
    codes, cc = encode(answers, gold)
    n = rewards.shape[1]
    got, _ = selection_prompt_values(
        mob_selector(fraction),
        rewards,
        codes,
        cc,
        range(1, n + 1),
        np.random.default_rng(0),
        max_exact_subsets=10**6,
    )
    for p in range(rewards.shape[0]):
        correct = [a is not None and a == gold[p] for a in answers[p]]
        want = [
            mob_brute(rewards[p], answers[p], gold[p], k, mob_subsample_size(k, fraction))
            for k in range(1, n + 1)
        ]
        np.testing.assert_allclose(got[p], want, atol=1e-12)
        assert got[p, 0] == pytest.approx(np.mean(correct))


def test_mob_with_m_equal_k_is_the_mode_of_bon_winners_and_m_one_is_majority():
    # m = k: the winner is the reward argmax, so MoB = best-of-k with answer-level ties
    rewards = np.array([[0.0, 5.0, 1.0, 2.0]])
    codes = np.array([[0, 1, 0, 0]])
    cc = np.array([[True, False]])
    full, _ = selection_prompt_values(mob_selector(1.0), rewards, codes, cc, [4], np.random.default_rng(0))
    assert full[0, 0] == 0.0  # the top-reward sample (answer 1) is wrong
    # m = 1 at k = 4 (fraction 0.25): every sample wins with 1/4, the mode is the majority answer
    maj, _ = selection_prompt_values(mob_selector(0.25), rewards, codes, cc, [4], np.random.default_rng(0))
    assert maj[0, 0] == 1.0


def test_bom_falls_back_to_best_of_k_when_nothing_passes():
    rewards = np.array([[3.0, 1.0, 2.0]])
    codes = np.array([[0, 1, 2]])  # all different: at threshold 0.5 none passes
    cc = np.array([[True, False, False]])
    got, _ = selection_prompt_values(bom_selector(0.5), rewards, codes, cc, [3], np.random.default_rng(0))
    assert got[0, 0] == 1.0  # plain best-of-3 picks reward 3.0, which is correct


def test_monte_carlo_agrees_with_exact_within_its_standard_error():
    rng = np.random.default_rng(5)
    p, n = 40, 12
    rewards = rng.normal(size=(p, n))
    codes = rng.integers(-1, 3, size=(p, n))
    cc = rng.random((p, 3)) < 0.4
    for select in (bom_selector(0.25), mob_selector(0.5)):
        exact, _ = selection_prompt_values(select, rewards, codes, cc, [6], rng, max_exact_subsets=10**6)
        mc, var = selection_prompt_values(select, rewards, codes, cc, [6], rng, max_exact_subsets=1, n_mc=64)
        se = np.sqrt(var.sum()) / p
        assert se > 0
        assert abs(mc.mean() - exact.mean()) < 4 * se


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="bom_threshold"):
        bom_selector(0.0)
    with pytest.raises(ValueError, match="mob_subsample_fraction"):
        mob_selector(1.5)


def test_defaults_are_the_config_schema_defaults():
    from bongain.cellstats.selection import DEFAULT_BOM_THRESHOLD, DEFAULT_MOB_FRACTION
    from bongain.config import complete_block

    stats = complete_block("statistics")
    assert stats["bom_threshold"] == DEFAULT_BOM_THRESHOLD
    assert stats["mob_subsample_fraction"] == DEFAULT_MOB_FRACTION
