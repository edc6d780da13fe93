"""Estimators against brute-force enumeration of every k-subset (small M), plus edge cases."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from bongain.cellstats import bootstrap, passk, votes

TOL = 1e-12
SEEDS = range(40)


# -------------------------------------------------------------------------------------- brute force


def subsets(m: int, k: int) -> list[tuple[int, ...]]:
    return list(itertools.combinations(range(m), k))


def brute_pass(correct: np.ndarray, k: int) -> float:
    return float(np.mean([any(correct[list(s)]) for s in subsets(correct.size, k)]))


def brute_bon_weights(rewards: np.ndarray, k: int) -> np.ndarray:
    w = np.zeros(rewards.size)
    combos = subsets(rewards.size, k)
    for s in combos:
        top = max(rewards[j] for j in s)
        tied = [j for j in s if rewards[j] == top]
        for j in tied:
            w[j] += 1.0 / len(tied)
    return w / len(combos)


def brute_bon(rewards: np.ndarray, correct: np.ndarray, k: int) -> float:
    vals = []
    for s in subsets(rewards.size, k):
        top = max(rewards[j] for j in s)
        vals.append(np.mean([correct[j] for j in s if rewards[j] == top]))
    return float(np.mean(vals))


def brute_vote(codes: list[int], class_correct: np.ndarray) -> float:
    counts = Counter(c for c in codes if c >= 0)
    if not counts:
        return 0.0
    top = max(counts.values())
    winners = [a for a, n in counts.items() if n == top]
    return float(np.mean([class_correct[a] for a in winners]))


def brute_maj(codes: np.ndarray, class_correct: np.ndarray, k: int) -> float:
    return float(np.mean([brute_vote([codes[j] for j in s], class_correct) for s in subsets(codes.size, k)]))


def random_rewards(rng: np.random.Generator, m: int) -> np.ndarray:
    """Rewards with many ties: a few distinct levels, sometimes a continuous draw."""
    if rng.random() < 0.2:
        return rng.normal(size=m)
    return rng.integers(0, rng.integers(1, 4), size=m).astype(float) * 0.5 - 0.25


def random_votes(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
    n_cls = int(rng.integers(1, 5))
    codes = rng.integers(-1, n_cls, size=m)
    class_correct = rng.random(n_cls) < 0.4
    return codes, class_correct


# ------------------------------------------------------------------------------------------- pass@k


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_bruteforce(n: int) -> None:
    for c in range(n + 1):
        correct = np.zeros(n, dtype=bool)
        correct[:c] = True
        for k in range(1, n + 1):
            assert passk.pass_at_k(n, c, k) == pytest.approx(brute_pass(correct, k), abs=TOL)


def test_pass_at_k_closed_forms() -> None:
    assert passk.pass_at_k(10, 0, 3) == 0.0
    assert passk.pass_at_k(10, 10, 1) == 1.0
    assert passk.pass_at_k(10, 8, 3) == 1.0  # n - c < k
    assert passk.pass_at_k(10, 3, 1) == pytest.approx(0.3, abs=TOL)
    assert passk.pass_at_k(1000, 1, 1000) == 1.0
    assert passk.pass_at_k(1000, 1, 10) == pytest.approx(0.01, abs=TOL)


@pytest.mark.parametrize(("n", "c", "k"), [(5, -1, 1), (5, 6, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_bad_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        passk.pass_at_k(n, c, k)


@pytest.mark.parametrize("seed", range(10))
def test_pass_at_k_curve_matches_scalar(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    counts = rng.integers(0, n + 1, size=int(rng.integers(1, 20)))
    curve = passk.pass_at_k_curve(counts, n)
    expected = [np.mean([passk.pass_at_k(n, int(c), k) for c in counts]) for k in range(1, n + 1)]
    np.testing.assert_allclose(curve, expected, rtol=0, atol=TOL)
    assert curve[0] == pytest.approx(counts.mean() / n, abs=TOL)
    assert curve[-1] == pytest.approx(np.mean(counts > 0), abs=TOL)
    assert np.all(np.diff(curve) >= -TOL)


def test_pass_at_k_curve_large_n_is_finite() -> None:
    counts = np.array([0, 1, 2, 512, 1023, 1024])
    curve = passk.pass_at_k_curve(counts, 1024)
    assert np.all(np.isfinite(curve)) and np.all((curve >= -TOL) & (curve <= 1 + TOL))
    assert curve[9] == pytest.approx(np.mean([passk.pass_at_k(1024, int(c), 10) for c in counts]), abs=1e-12)


def test_pass_at_k_curve_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        passk.pass_at_k_curve(np.array([3]), 2)
    with pytest.raises(ValueError):
        passk.pass_at_k_curve(np.array([], dtype=int), 2)


def test_subset_cdf_table_is_binomial_ratio() -> None:
    m = 12
    table = passk.subset_cdf_table(m)
    for k in range(1, m + 1):
        for j in range(m + 1):
            assert table[k - 1, j] == pytest.approx(math.comb(j, k) / math.comb(m, k), abs=TOL, rel=1e-13)
    assert not table.flags.writeable


# ------------------------------------------------------------------------------------------ best-of-k


@pytest.mark.parametrize("seed", SEEDS)
def test_bon_weights_match_bruteforce(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 9))
    rewards = random_rewards(rng, m)
    for k in range(1, m + 1):
        w = passk.bon_selection_weights(rewards, k)
        np.testing.assert_allclose(w, brute_bon_weights(rewards, k), rtol=0, atol=TOL)
        assert w.sum() == pytest.approx(1.0, abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_bon_at_k_and_curve_match_bruteforce(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    p, m = int(rng.integers(1, 4)), int(rng.integers(1, 9))
    rewards = np.stack([random_rewards(rng, m) for _ in range(p)])
    correct = rng.random((p, m)) < rng.random()
    curve = passk.bon_curve(rewards, correct)
    assert curve.shape == (m,)
    for k in range(1, m + 1):
        brute = [brute_bon(rewards[i], correct[i], k) for i in range(p)]
        for i in range(p):
            assert passk.bon_at_k(rewards[i], correct[i], k) == pytest.approx(brute[i], abs=TOL)
        assert curve[k - 1] == pytest.approx(np.mean(brute), abs=TOL)


@pytest.mark.parametrize("m", [1, 2, 5, 8, 64])
def test_bon_with_equal_rewards_is_pass_at_1(m: int) -> None:
    rng = np.random.default_rng(m)
    correct = rng.random((3, m)) < 0.5
    curve = passk.bon_curve(np.full((3, m), 0.7), correct)
    np.testing.assert_allclose(curve, correct.mean(), rtol=0, atol=TOL)


def test_bon_edge_cases_k1_and_kM() -> None:
    rewards = np.array([[0.1, 0.9, 0.9, 0.3, 0.9], [2.0, 1.0, 0.0, -1.0, 2.0]])
    correct = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 1, 1]], dtype=bool)
    curve = passk.bon_curve(rewards, correct)
    assert curve[0] == pytest.approx(correct.mean(), abs=TOL)  # k = 1: mean correctness
    # k = M: correctness of the argmax, averaged over the tied argmax set
    assert curve[-1] == pytest.approx((1 / 3 + 1 / 2) / 2, abs=TOL)
    assert passk.bon_at_k(rewards[0], correct[0], 5) == pytest.approx(1 / 3, abs=TOL)


def test_bon_all_or_nothing_correct() -> None:
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(4, 7))
    np.testing.assert_allclose(passk.bon_curve(rewards, np.zeros((4, 7))), 0.0, atol=TOL)
    np.testing.assert_allclose(passk.bon_curve(rewards, np.ones((4, 7))), 1.0, atol=TOL)


def test_bon_perfect_verifier_equals_pass_at_k() -> None:
    rng = np.random.default_rng(3)
    correct = rng.random((6, 8)) < 0.3
    curve = passk.bon_curve(correct.astype(float), correct)  # reward = label, ties within each class
    np.testing.assert_allclose(curve, passk.pass_at_k_curve(correct.sum(axis=1), 8), atol=TOL)


def test_bon_invariant_to_sample_order() -> None:
    rng = np.random.default_rng(5)
    rewards = rng.integers(0, 4, size=(5, 8)).astype(float)
    correct = rng.random((5, 8)) < 0.5
    perm = rng.permutation(8)
    np.testing.assert_allclose(
        passk.bon_curve(rewards, correct), passk.bon_curve(rewards[:, perm], correct[:, perm]), atol=TOL
    )


@pytest.mark.parametrize("ties", [False, True])
def test_bon_large_m_is_stable(ties: bool) -> None:
    rng = np.random.default_rng(11)
    m = 1024
    rewards = rng.integers(0, 20, size=(3, m)).astype(float) if ties else rng.normal(size=(3, m))
    correct = rng.random((3, m)) < 0.2
    for k in (1, 2, 10, 100, 512, 1000, 1023, 1024):
        w = passk.bon_selection_weights(rewards[0], k)
        assert np.all(np.isfinite(w)) and np.all(w >= 0)
        assert w.sum() == pytest.approx(1.0, abs=1e-10)
    curve = passk.bon_curve(rewards, correct)
    assert np.all(np.isfinite(curve)) and np.all((curve >= -1e-10) & (curve <= 1 + 1e-10))
    assert curve[0] == pytest.approx(correct.mean(), abs=1e-10)
    for k in (1, 7, 300, 1024):
        per_prompt = [passk.bon_at_k(rewards[i], correct[i], k) for i in range(3)]
        assert curve[k - 1] == pytest.approx(np.mean(per_prompt), abs=1e-10)
    top = [correct[i][rewards[i] == rewards[i].max()].mean() for i in range(3)]
    assert curve[-1] == pytest.approx(np.mean(top), abs=1e-10)


def test_bon_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        passk.bon_selection_weights(np.array([1.0, np.nan]), 1)
    with pytest.raises(ValueError):
        passk.bon_selection_weights(np.array([1.0, 2.0]), 3)
    with pytest.raises(ValueError):
        passk.bon_curve(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError):
        passk.bon_at_k(np.zeros(3), np.zeros(2), 1)


# ------------------------------------------------------------------------------------ majority vote


def test_encode_answers_and_classes() -> None:
    codes = votes.encode_answers(["7", None, "3", "7", None, "x"])
    np.testing.assert_array_equal(codes, [0, -1, 1, 0, -1, 2])
    codes, cc = votes.answer_classes(["7", None, "3", "7"], [False, False, True, True])
    np.testing.assert_array_equal(codes, [0, -1, 1, 0])
    np.testing.assert_array_equal(cc, [True, True])  # class correct if any member is marked correct
    codes, cc = votes.answer_classes([None, None], [True, False])
    assert cc.size == 0 and votes.maj_at_n_exact(codes[None], cc[None]) == 0.0
    codes, cc = votes.encode_answer_matrix([["a", "b"], [None, "c"], [None, None]], np.zeros((3, 2)))
    assert codes.shape == (3, 2) and cc.shape == (3, 2)


def test_vote_value() -> None:
    cc = np.array([True, False, False])
    assert votes.vote_value(np.array([2, 1, 0]), cc) == 1.0
    assert votes.vote_value(np.array([2, 2, 0]), cc) == 0.5
    assert votes.vote_value(np.array([1, 1, 1]), cc) == pytest.approx(1 / 3)
    assert votes.vote_value(np.array([0, 0, 0]), cc) == 0.0
    assert votes.vote_value(np.array([0, 3, 0]), cc) == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_maj_exact_matches_bruteforce(seed: int) -> None:
    rng = np.random.default_rng(2000 + seed)
    p, m = int(rng.integers(1, 4)), int(rng.integers(1, 9))
    rows = [random_votes(rng, m) for _ in range(p)]
    codes = np.stack([c for c, _ in rows])
    n_cls = max(cc.size for _, cc in rows)
    class_correct = np.zeros((p, n_cls), dtype=bool)
    for i, (_, cc) in enumerate(rows):
        class_correct[i, : cc.size] = cc
    values, ses = votes.maj_curve(codes, class_correct, np.random.default_rng(0))
    np.testing.assert_array_equal(ses, 0.0)
    for k in range(1, m + 1):
        brute = np.mean([brute_maj(codes[i], class_correct[i], k) for i in range(p)])
        assert values[k - 1] == pytest.approx(brute, abs=TOL)
        value, se = votes.maj_at_k(codes, class_correct, k, np.random.default_rng(0))
        assert (value, se) == (pytest.approx(brute, abs=TOL), 0.0)
    full = np.mean([brute_vote(list(codes[i]), class_correct[i]) for i in range(p)])
    assert votes.maj_at_n_exact(codes, class_correct) == pytest.approx(full, abs=TOL)
    assert values[-1] == pytest.approx(full, abs=TOL)


def test_maj_k1_is_answered_correct_rate() -> None:
    codes = np.array([[0, 0, 1, -1, 2], [-1, -1, 0, 0, 0]])
    cc = np.array([[True, False, True], [False, False, False]])
    values, _ = votes.maj_curve(codes, cc, np.random.default_rng(0))
    assert values[0] == pytest.approx((3 / 5 + 0) / 2, abs=TOL)
    assert values[-1] == pytest.approx(0.5, abs=TOL)


def test_maj_all_abstain_is_wrong() -> None:
    codes = np.full((2, 4), -1)
    values, ses = votes.maj_curve(codes, np.zeros((2, 0), dtype=bool), np.random.default_rng(0))
    np.testing.assert_array_equal(values, 0.0)
    np.testing.assert_array_equal(ses, 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_maj_monte_carlo_within_4_se_of_exact(seed: int) -> None:
    rng = np.random.default_rng(3000 + seed)
    m = 8
    codes = np.stack([rng.integers(-1, 4, size=m) for _ in range(3)])
    cc = rng.random((3, 4)) < 0.5
    cc[:, 0] = True
    exact, exact_se = votes.maj_curve(codes, cc, np.random.default_rng(0))
    assert np.all(exact_se == 0)
    mc, mc_se = votes.maj_curve(codes, cc, np.random.default_rng(seed), max_exact_subsets=0, n_mc=2000)
    for k in range(1, m + 1):
        if mc_se[k - 1] == 0:  # deterministic vote for every subset: MC must equal it
            assert mc[k - 1] == pytest.approx(exact[k - 1], abs=TOL)
        else:
            assert abs(mc[k - 1] - exact[k - 1]) <= 4 * mc_se[k - 1]
    value, se = votes.maj_at_k(codes, cc, 4, np.random.default_rng(seed), max_exact_subsets=0, n_mc=2000)
    assert se > 0 and abs(value - exact[3]) <= 4 * se


def test_maj_monte_carlo_is_seeded() -> None:
    rng = np.random.default_rng(9)
    codes = rng.integers(-1, 5, size=(4, 12))
    cc = rng.random((4, 5)) < 0.5
    a = votes.maj_curve(codes, cc, np.random.default_rng(1), max_exact_subsets=10, n_mc=50)
    b = votes.maj_curve(codes, cc, np.random.default_rng(1), max_exact_subsets=10, n_mc=50)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert np.any(a[1] > 0)


def test_maj_exact_whenever_subsets_fit_budget() -> None:
    rng = np.random.default_rng(4)
    m, budget = 14, 400
    codes = np.arange(m)[None, :]  # all answers distinct: configurations == subsets
    cc = (rng.random(m) < 0.5)[None, :]
    _, ses = votes.maj_curve(codes, cc, np.random.default_rng(0), max_exact_subsets=budget, n_mc=100)
    for k in range(1, m + 1):
        assert (ses[k - 1] == 0) == (math.comb(m, k) <= budget)


def test_maj_larger_m_mixes_exact_and_mc() -> None:
    rng = np.random.default_rng(8)
    m = 64
    codes = rng.choice([-1, 0, 1, 2, 3, 4, 5], p=[0.1, 0.4, 0.2, 0.1, 0.1, 0.05, 0.05], size=(3, m))
    cc = np.zeros((3, 6), dtype=bool)
    cc[:, 0] = True
    values, ses = votes.maj_curve(codes, cc, np.random.default_rng(0), max_exact_subsets=20_000, n_mc=400)
    assert np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1))
    assert ses[0] == 0 and ses[-1] == 0
    assert values[-1] == pytest.approx(votes.maj_at_n_exact(codes, cc), abs=TOL)
    shares = [np.mean(np.where(codes[i] >= 0, cc[i][codes[i]], False)) for i in range(3)]
    assert values[0] == pytest.approx(np.mean(shares), abs=TOL)


def test_maj_rejects_bad_input() -> None:
    cc = np.ones((1, 2), dtype=bool)
    with pytest.raises(ValueError):
        votes.maj_curve(np.array([[0, 2]]), cc, np.random.default_rng(0))  # code out of range
    with pytest.raises(ValueError):
        votes.maj_curve(np.array([[0.0, 1.0]]), cc, np.random.default_rng(0))  # not integer
    with pytest.raises(ValueError):
        votes.maj_at_k(np.array([[0, 1]]), cc, 3, np.random.default_rng(0))
    with pytest.raises(ValueError):
        votes.maj_at_k(np.array([[0, 1]]), cc, 1, np.random.default_rng(0), n_mc=1)


# --------------------------------------------------------------------------- reward-weighted majority


def reference_weights(rewards: np.ndarray, transform: str) -> np.ndarray:
    """Real-valued vote weights written from their definition (docs/features.md), not from votes.py:
    softmax of the prompt's rewards (any positive per-prompt factor cannot change a vote), the average
    rank of the reward within the prompt, or 1."""
    if transform == "softmax":
        return np.exp(rewards - rewards.max(axis=1, keepdims=True))
    if transform == "rank":
        return np.stack([stats.rankdata(r, method="average") for r in rewards])
    if transform == "uniform":
        return np.ones_like(rewards)
    raise AssertionError(transform)


def brute_wvote_real(codes: list[int], weights: list[float], class_correct: np.ndarray) -> float:
    """Weighted vote with real weights; class scores equal up to 1e-12 (relative) tie."""
    scores: dict[int, float] = {}
    for c, w in zip(codes, weights, strict=True):
        if c >= 0:
            scores[c] = scores.get(c, 0.0) + float(w)
    if not scores:
        return 0.0
    top = max(scores.values())
    return float(np.mean([class_correct[a] for a, s in scores.items() if s >= top * (1 - 1e-12)]))


def random_weighted_cell(rng: np.random.Generator, p: int, m: int) -> tuple[np.ndarray, ...]:
    rows = [random_votes(rng, m) for _ in range(p)]
    codes = np.stack([c for c, _ in rows])
    class_correct = np.zeros((p, max(cc.size for _, cc in rows)), dtype=bool)
    for i, (_, cc) in enumerate(rows):
        class_correct[i, : cc.size] = cc
    rewards = np.stack([random_rewards(rng, m) for _ in range(p)]) * 3.0  # negative logits included
    return codes, class_correct, rewards


@pytest.mark.parametrize("weight", votes.WEIGHT_TRANSFORMS)
@pytest.mark.parametrize("seed", range(15))
def test_wmaj_exact_matches_bruteforce(seed: int, weight: str) -> None:
    rng = np.random.default_rng(4000 + seed)
    p, m = int(rng.integers(1, 4)), int(rng.integers(1, 9))
    codes, cc, rewards = random_weighted_cell(rng, p, m)
    w = reference_weights(rewards, weight)  # independent of votes.vote_weights
    values, ses = votes.wmaj_curve(codes, cc, rewards, np.random.default_rng(0), weight=weight)
    np.testing.assert_array_equal(ses, 0.0)
    for k in range(1, m + 1):
        brute = np.mean(
            [
                np.mean(
                    [
                        brute_wvote_real([codes[i][j] for j in s], [w[i][j] for j in s], cc[i])
                        for s in subsets(m, k)
                    ]
                )
                for i in range(p)
            ]
        )
        assert values[k - 1] == pytest.approx(brute, abs=TOL)
        value, se = votes.wmaj_at_k(codes, cc, rewards, k, np.random.default_rng(0), weight=weight)
        assert (value, se) == (pytest.approx(brute, abs=TOL), 0.0)


def test_wmaj_uniform_weights_is_maj() -> None:
    rng = np.random.default_rng(12)
    codes, cc, rewards = random_weighted_cell(rng, 5, 10)
    for kwargs in ({}, {"max_exact_subsets": 0, "n_mc": 50}):
        maj = votes.maj_curve(codes, cc, np.random.default_rng(3), **kwargs)
        wmaj = votes.wmaj_curve(codes, cc, rewards, np.random.default_rng(3), weight="uniform", **kwargs)
        np.testing.assert_array_equal(maj[0], wmaj[0])
        np.testing.assert_array_equal(maj[1], wmaj[1])


def test_wmaj_weight_outvotes_count() -> None:
    # two wrong votes with low reward against one correct vote with high reward
    codes = np.array([[0, 0, 1]])
    cc = np.array([[False, True]])
    rewards = np.array([[-3.0, -3.0, 2.0]])
    assert votes.wmaj_at_k(codes, cc, rewards, 3, np.random.default_rng(0))[0] == 1.0
    assert votes.wmaj_at_k(codes, cc, rewards, 3, np.random.default_rng(0), temperature=100.0)[0] == 0.0
    assert votes.maj_at_k(codes, cc, 3, np.random.default_rng(0))[0] == 0.0
    # rank weights: 1 + 2 (ties share 1.5 + 1.5) vs 3 -> tie between the classes
    assert votes.wmaj_at_k(codes, cc, rewards, 3, np.random.default_rng(0), weight="rank")[0] == 0.5


def test_vote_weights_properties() -> None:
    rng = np.random.default_rng(2)
    r = rng.normal(size=(4, 9)) * 5
    r[0, :3] = r[0, 3]  # ties
    for weight in votes.WEIGHT_TRANSFORMS:
        w = votes.vote_weights(r, weight)
        assert w.dtype == np.int64 and w.min() >= 1
        np.testing.assert_array_equal(w, votes.vote_weights(r + 7.5, weight))  # shift-invariant
    np.testing.assert_array_equal(votes.vote_weights(r, "rank"), votes.vote_weights(np.exp(r), "rank"))
    np.testing.assert_array_equal(votes.vote_weights(r, "uniform"), 1)
    w = votes.vote_weights(r, "softmax")
    assert np.all(w.max(axis=1) == 2**votes.WEIGHT_QUANTUM_BITS)
    np.testing.assert_allclose(
        w / w.max(axis=1, keepdims=True), np.exp(r - r.max(axis=1, keepdims=True)), atol=1e-12
    )
    ranks = votes.vote_weights(np.array([[0.3, 0.1, 0.3, 0.9]]), "rank")
    np.testing.assert_array_equal(ranks, [[5, 2, 5, 8]])  # twice (2.5, 1, 2.5, 4)
    with pytest.raises(ValueError):
        votes.vote_weights(r, "shift")
    with pytest.raises(ValueError):
        votes.vote_weights(r, "softmax", temperature=0.0)
    with pytest.raises(ValueError):
        votes.vote_weights(np.array([[np.nan]]), "softmax")


@pytest.mark.parametrize("seed", range(4))
def test_wmaj_monte_carlo_within_4_se_of_exact(seed: int) -> None:
    rng = np.random.default_rng(5000 + seed)
    codes, cc, rewards = random_weighted_cell(rng, 3, 9)
    exact, _ = votes.wmaj_curve(codes, cc, rewards, np.random.default_rng(0))
    mc, mc_se = votes.wmaj_curve(
        codes, cc, rewards, np.random.default_rng(seed), max_exact_subsets=0, n_mc=2000
    )
    for k in range(1, 10):
        assert abs(mc[k - 1] - exact[k - 1]) <= 4 * mc_se[k - 1] + TOL


def test_wmaj_exact_whenever_subsets_fit_budget() -> None:
    rng = np.random.default_rng(6)
    m, budget = 12, 300
    codes = rng.integers(0, 4, size=(2, m))
    cc = np.array([[True, False, False, True], [False, True, False, False]])
    _, ses = votes.wmaj_curve(codes, cc, rng.normal(size=(2, m)), rng, max_exact_subsets=budget, n_mc=100)
    for k in range(1, m + 1):
        if math.comb(m, k) <= budget:
            assert ses[k - 1] == 0
    assert np.any(ses > 0)


def test_auto_policy() -> None:
    assert votes.auto_n_mc(15_625, 64) == votes.MIN_N_MC
    assert votes.auto_n_mc(2, 8) == votes.MAX_N_MC
    assert votes.auto_max_exact_subsets(10**6, 64) == 64  # k in {1, M-1, M} always exact
    assert votes.auto_max_exact_subsets(1, 8) == votes.MAX_EXACT_SUBSETS
    rng = np.random.default_rng(1)
    codes = rng.integers(-1, 3, size=(3, 40))
    cc = np.ones((3, 3), dtype=bool)
    _, ses = votes.maj_curve(codes, cc, rng)  # auto: P=3 -> 200 000 subsets per prompt
    for k in range(1, 41):
        assert (ses[k - 1] == 0) or math.comb(40, k) > votes.MAX_EXACT_SUBSETS


def test_vote_handles_all_abstaining_cell_and_large_m() -> None:
    v, var = votes.vote_prompt_values(
        np.full((2, 3), -1), np.zeros((2, 0), bool), [1, 2, 3], np.random.default_rng(0)
    )
    assert np.all(v == 0) and np.all(var == 0)
    rng = np.random.default_rng(0)
    m = 1000
    codes = rng.choice([-1, 0, 1, 2], p=[0.1, 0.5, 0.3, 0.1], size=(2, m))
    cc = np.array([[True, False, False], [False, True, False]])
    values, ses = votes.wmaj_curve(codes, cc, rng.normal(size=(2, m)), rng)
    assert np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1))
    assert ses[0] == 0 and ses[-2] == 0 and ses[-1] == 0
    maj, _ = votes.maj_curve(codes, cc, rng)
    assert maj[-1] == pytest.approx(votes.maj_at_n_exact(codes, cc), abs=TOL)


# ------------------------------------------------------------------------- per-prompt values, bootstrap


def test_prompt_values_average_to_curves() -> None:
    rng = np.random.default_rng(7)
    correct = rng.random((6, 9)) < 0.4
    rewards = rng.integers(0, 3, size=(6, 9)).astype(float)
    pv = passk.pass_prompt_values(correct.sum(axis=1), 9)
    bv = passk.bon_prompt_values(rewards, correct)
    assert pv.shape == bv.shape == (6, 9)
    np.testing.assert_allclose(pv.mean(axis=0), passk.pass_at_k_curve(correct.sum(axis=1), 9), atol=TOL)
    np.testing.assert_allclose(bv.mean(axis=0), passk.bon_curve(rewards, correct), atol=TOL)
    for i in range(6):
        for k in (1, 4, 9):
            assert bv[i, k - 1] == pytest.approx(passk.bon_at_k(rewards[i], correct[i], k), abs=TOL)


def test_bootstrap_matches_explicit_resampling() -> None:
    rng = np.random.default_rng(8)
    p = 13
    means = rng.random((p, 3))
    stds = rng.random((p, 2))
    reps = bootstrap.bootstrap_replicates(means, np.random.default_rng(5), 40, stds=stds)
    draws = np.random.default_rng(5).integers(0, p, size=(40, p), dtype=np.int32)
    for b in range(40):
        np.testing.assert_allclose(reps[b, :3], means[draws[b]].mean(axis=0), atol=TOL)
        np.testing.assert_allclose(reps[b, 3:], stds[draws[b]].std(axis=0), atol=1e-10)
    lo, hi = bootstrap.bootstrap_ci(means, np.random.default_rng(5), 40, 0.9, stds=stds)
    np.testing.assert_allclose(lo, np.quantile(reps, 0.05, axis=0), atol=TOL)
    np.testing.assert_allclose(hi, np.quantile(reps, 0.95, axis=0), atol=TOL)
    w = bootstrap.bootstrap_weights(p, 40, np.random.default_rng(5))
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=TOL)


def test_bootstrap_edge_cases() -> None:
    lo, hi = bootstrap.bootstrap_ci(
        np.array([[0.3, 0.7]]), np.random.default_rng(0), 50, stds=np.array([[2.0]])
    )
    np.testing.assert_allclose(lo, [0.3, 0.7, 0.0], atol=TOL)
    np.testing.assert_allclose(hi, [0.3, 0.7, 0.0], atol=TOL)
    with pytest.raises(ValueError):
        bootstrap.percentile_ci(np.zeros((3, 1)), 1.0)
    with pytest.raises(ValueError):
        bootstrap.bootstrap_replicates(np.zeros((3, 1)), np.random.default_rng(0), 0)
