"""Estimators against brute-force enumeration of every k-subset (small M), plus edge cases."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from bongain import estimators as est

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
            assert est.pass_at_k(n, c, k) == pytest.approx(brute_pass(correct, k), abs=TOL)


def test_pass_at_k_closed_forms() -> None:
    assert est.pass_at_k(10, 0, 3) == 0.0
    assert est.pass_at_k(10, 10, 1) == 1.0
    assert est.pass_at_k(10, 8, 3) == 1.0  # n - c < k
    assert est.pass_at_k(10, 3, 1) == pytest.approx(0.3, abs=TOL)
    assert est.pass_at_k(1000, 1, 1000) == 1.0
    assert est.pass_at_k(1000, 1, 10) == pytest.approx(0.01, abs=TOL)


@pytest.mark.parametrize(("n", "c", "k"), [(5, -1, 1), (5, 6, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_bad_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        est.pass_at_k(n, c, k)


@pytest.mark.parametrize("seed", range(10))
def test_pass_at_k_curve_matches_scalar(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    counts = rng.integers(0, n + 1, size=int(rng.integers(1, 20)))
    curve = est.pass_at_k_curve(counts, n)
    expected = [np.mean([est.pass_at_k(n, int(c), k) for c in counts]) for k in range(1, n + 1)]
    np.testing.assert_allclose(curve, expected, rtol=0, atol=TOL)
    assert curve[0] == pytest.approx(counts.mean() / n, abs=TOL)
    assert curve[-1] == pytest.approx(np.mean(counts > 0), abs=TOL)
    assert np.all(np.diff(curve) >= -TOL)


def test_pass_at_k_curve_large_n_is_finite() -> None:
    counts = np.array([0, 1, 2, 512, 1023, 1024])
    curve = est.pass_at_k_curve(counts, 1024)
    assert np.all(np.isfinite(curve)) and np.all((curve >= -TOL) & (curve <= 1 + TOL))
    assert curve[9] == pytest.approx(np.mean([est.pass_at_k(1024, int(c), 10) for c in counts]), abs=1e-12)


def test_pass_at_k_curve_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        est.pass_at_k_curve(np.array([3]), 2)
    with pytest.raises(ValueError):
        est.pass_at_k_curve(np.array([], dtype=int), 2)


def test_subset_cdf_table_is_binomial_ratio() -> None:
    m = 12
    table = est.subset_cdf_table(m)
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
        w = est.bon_selection_weights(rewards, k)
        np.testing.assert_allclose(w, brute_bon_weights(rewards, k), rtol=0, atol=TOL)
        assert w.sum() == pytest.approx(1.0, abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_bon_at_k_and_curve_match_bruteforce(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    p, m = int(rng.integers(1, 4)), int(rng.integers(1, 9))
    rewards = np.stack([random_rewards(rng, m) for _ in range(p)])
    correct = rng.random((p, m)) < rng.random()
    curve = est.bon_curve(rewards, correct)
    assert curve.shape == (m,)
    for k in range(1, m + 1):
        brute = [brute_bon(rewards[i], correct[i], k) for i in range(p)]
        for i in range(p):
            assert est.bon_at_k(rewards[i], correct[i], k) == pytest.approx(brute[i], abs=TOL)
        assert curve[k - 1] == pytest.approx(np.mean(brute), abs=TOL)


@pytest.mark.parametrize("m", [1, 2, 5, 8, 64])
def test_bon_with_equal_rewards_is_pass_at_1(m: int) -> None:
    rng = np.random.default_rng(m)
    correct = rng.random((3, m)) < 0.5
    curve = est.bon_curve(np.full((3, m), 0.7), correct)
    np.testing.assert_allclose(curve, correct.mean(), rtol=0, atol=TOL)


def test_bon_edge_cases_k1_and_kM() -> None:
    rewards = np.array([[0.1, 0.9, 0.9, 0.3, 0.9], [2.0, 1.0, 0.0, -1.0, 2.0]])
    correct = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 1, 1]], dtype=bool)
    curve = est.bon_curve(rewards, correct)
    assert curve[0] == pytest.approx(correct.mean(), abs=TOL)  # k = 1: mean correctness
    # k = M: correctness of the argmax, averaged over the tied argmax set
    assert curve[-1] == pytest.approx((1 / 3 + 1 / 2) / 2, abs=TOL)
    assert est.bon_at_k(rewards[0], correct[0], 5) == pytest.approx(1 / 3, abs=TOL)


def test_bon_all_or_nothing_correct() -> None:
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(4, 7))
    np.testing.assert_allclose(est.bon_curve(rewards, np.zeros((4, 7))), 0.0, atol=TOL)
    np.testing.assert_allclose(est.bon_curve(rewards, np.ones((4, 7))), 1.0, atol=TOL)


def test_bon_perfect_verifier_equals_pass_at_k() -> None:
    rng = np.random.default_rng(3)
    correct = rng.random((6, 8)) < 0.3
    curve = est.bon_curve(correct.astype(float), correct)  # reward = label, ties within each class
    np.testing.assert_allclose(curve, est.pass_at_k_curve(correct.sum(axis=1), 8), atol=TOL)


def test_bon_invariant_to_sample_order() -> None:
    rng = np.random.default_rng(5)
    rewards = rng.integers(0, 4, size=(5, 8)).astype(float)
    correct = rng.random((5, 8)) < 0.5
    perm = rng.permutation(8)
    np.testing.assert_allclose(
        est.bon_curve(rewards, correct), est.bon_curve(rewards[:, perm], correct[:, perm]), atol=TOL
    )


@pytest.mark.parametrize("ties", [False, True])
def test_bon_large_m_is_stable(ties: bool) -> None:
    rng = np.random.default_rng(11)
    m = 1024
    rewards = rng.integers(0, 20, size=(3, m)).astype(float) if ties else rng.normal(size=(3, m))
    correct = rng.random((3, m)) < 0.2
    for k in (1, 2, 10, 100, 512, 1000, 1023, 1024):
        w = est.bon_selection_weights(rewards[0], k)
        assert np.all(np.isfinite(w)) and np.all(w >= 0)
        assert w.sum() == pytest.approx(1.0, abs=1e-10)
    curve = est.bon_curve(rewards, correct)
    assert np.all(np.isfinite(curve)) and np.all((curve >= -1e-10) & (curve <= 1 + 1e-10))
    assert curve[0] == pytest.approx(correct.mean(), abs=1e-10)
    for k in (1, 7, 300, 1024):
        per_prompt = [est.bon_at_k(rewards[i], correct[i], k) for i in range(3)]
        assert curve[k - 1] == pytest.approx(np.mean(per_prompt), abs=1e-10)
    top = [correct[i][rewards[i] == rewards[i].max()].mean() for i in range(3)]
    assert curve[-1] == pytest.approx(np.mean(top), abs=1e-10)


def test_bon_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        est.bon_selection_weights(np.array([1.0, np.nan]), 1)
    with pytest.raises(ValueError):
        est.bon_selection_weights(np.array([1.0, 2.0]), 3)
    with pytest.raises(ValueError):
        est.bon_curve(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError):
        est.bon_at_k(np.zeros(3), np.zeros(2), 1)


# ------------------------------------------------------------------------------------ majority vote


def test_encode_answers_and_classes() -> None:
    codes = est.encode_answers(["7", None, "3", "7", None, "x"])
    np.testing.assert_array_equal(codes, [0, -1, 1, 0, -1, 2])
    codes, cc = est.answer_classes(["7", None, "3", "7"], [False, False, True, True])
    np.testing.assert_array_equal(codes, [0, -1, 1, 0])
    np.testing.assert_array_equal(cc, [True, True])  # class correct if any member is marked correct
    codes, cc = est.answer_classes([None, None], [True, False])
    assert cc.size == 0 and est.maj_at_n_exact(codes[None], cc[None]) == 0.0
    codes, cc = est.encode_answer_matrix([["a", "b"], [None, "c"], [None, None]], np.zeros((3, 2)))
    assert codes.shape == (3, 2) and cc.shape == (3, 2)


def test_vote_value() -> None:
    cc = np.array([True, False, False])
    assert est.vote_value(np.array([2, 1, 0]), cc) == 1.0
    assert est.vote_value(np.array([2, 2, 0]), cc) == 0.5
    assert est.vote_value(np.array([1, 1, 1]), cc) == pytest.approx(1 / 3)
    assert est.vote_value(np.array([0, 0, 0]), cc) == 0.0
    assert est.vote_value(np.array([0, 3, 0]), cc) == 0.0


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
    values, ses = est.maj_curve(codes, class_correct, np.random.default_rng(0))
    np.testing.assert_array_equal(ses, 0.0)
    for k in range(1, m + 1):
        brute = np.mean([brute_maj(codes[i], class_correct[i], k) for i in range(p)])
        assert values[k - 1] == pytest.approx(brute, abs=TOL)
        value, se = est.maj_at_k(codes, class_correct, k, np.random.default_rng(0))
        assert (value, se) == (pytest.approx(brute, abs=TOL), 0.0)
    full = np.mean([brute_vote(list(codes[i]), class_correct[i]) for i in range(p)])
    assert est.maj_at_n_exact(codes, class_correct) == pytest.approx(full, abs=TOL)
    assert values[-1] == pytest.approx(full, abs=TOL)


def test_maj_k1_is_answered_correct_rate() -> None:
    codes = np.array([[0, 0, 1, -1, 2], [-1, -1, 0, 0, 0]])
    cc = np.array([[True, False, True], [False, False, False]])
    values, _ = est.maj_curve(codes, cc, np.random.default_rng(0))
    assert values[0] == pytest.approx((3 / 5 + 0) / 2, abs=TOL)
    assert values[-1] == pytest.approx(0.5, abs=TOL)


def test_maj_all_abstain_is_wrong() -> None:
    codes = np.full((2, 4), -1)
    values, ses = est.maj_curve(codes, np.zeros((2, 0), dtype=bool), np.random.default_rng(0))
    np.testing.assert_array_equal(values, 0.0)
    np.testing.assert_array_equal(ses, 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_maj_monte_carlo_within_4_se_of_exact(seed: int) -> None:
    rng = np.random.default_rng(3000 + seed)
    m = 8
    codes = np.stack([rng.integers(-1, 4, size=m) for _ in range(3)])
    cc = rng.random((3, 4)) < 0.5
    cc[:, 0] = True
    exact, exact_se = est.maj_curve(codes, cc, np.random.default_rng(0))
    assert np.all(exact_se == 0)
    mc, mc_se = est.maj_curve(codes, cc, np.random.default_rng(seed), max_exact_subsets=0, n_mc=2000)
    for k in range(1, m + 1):
        if mc_se[k - 1] == 0:  # deterministic vote for every subset: MC must equal it
            assert mc[k - 1] == pytest.approx(exact[k - 1], abs=TOL)
        else:
            assert abs(mc[k - 1] - exact[k - 1]) <= 4 * mc_se[k - 1]
    value, se = est.maj_at_k(codes, cc, 4, np.random.default_rng(seed), max_exact_subsets=0, n_mc=2000)
    assert se > 0 and abs(value - exact[3]) <= 4 * se


def test_maj_monte_carlo_is_seeded() -> None:
    rng = np.random.default_rng(9)
    codes = rng.integers(-1, 5, size=(4, 12))
    cc = rng.random((4, 5)) < 0.5
    a = est.maj_curve(codes, cc, np.random.default_rng(1), max_exact_subsets=10, n_mc=50)
    b = est.maj_curve(codes, cc, np.random.default_rng(1), max_exact_subsets=10, n_mc=50)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert np.any(a[1] > 0)


def test_maj_exact_whenever_subsets_fit_budget() -> None:
    rng = np.random.default_rng(4)
    m, budget = 14, 400
    codes = np.arange(m)[None, :]  # all answers distinct: configurations == subsets
    cc = (rng.random(m) < 0.5)[None, :]
    _, ses = est.maj_curve(codes, cc, np.random.default_rng(0), max_exact_subsets=budget, n_mc=100)
    for k in range(1, m + 1):
        assert (ses[k - 1] == 0) == (math.comb(m, k) <= budget)


def test_maj_larger_m_mixes_exact_and_mc() -> None:
    rng = np.random.default_rng(8)
    m = 64
    codes = rng.choice([-1, 0, 1, 2, 3, 4, 5], p=[0.1, 0.4, 0.2, 0.1, 0.1, 0.05, 0.05], size=(3, m))
    cc = np.zeros((3, 6), dtype=bool)
    cc[:, 0] = True
    values, ses = est.maj_curve(codes, cc, np.random.default_rng(0), max_exact_subsets=20_000, n_mc=400)
    assert np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1))
    assert ses[0] == 0 and ses[-1] == 0
    assert values[-1] == pytest.approx(est.maj_at_n_exact(codes, cc), abs=TOL)
    shares = [np.mean(np.where(codes[i] >= 0, cc[i][codes[i]], False)) for i in range(3)]
    assert values[0] == pytest.approx(np.mean(shares), abs=TOL)


def test_count_configs_helpers_match_bruteforce() -> None:
    sizes = [3, 1, 2, 0, 2]
    grid = np.array(list(itertools.product(*(range(s + 1) for s in sizes))))
    counts = np.bincount(grid.sum(axis=1), minlength=sum(sizes) + 1)
    np.testing.assert_array_equal(est._n_count_configs(sizes, 10**9), counts)
    np.testing.assert_array_equal(est._n_count_configs(sizes, 5), np.minimum(counts, 5))
    for lo, hi in [(0, 8), (2, 2), (3, 5)]:
        got = est._enumerate_configs(sizes, lo, hi)
        want = grid[(grid.sum(axis=1) >= lo) & (grid.sum(axis=1) <= hi)]
        assert sorted(map(tuple, got)) == sorted(map(tuple, want))


def test_maj_rejects_bad_input() -> None:
    cc = np.ones((1, 2), dtype=bool)
    with pytest.raises(ValueError):
        est.maj_curve(np.array([[0, 2]]), cc, np.random.default_rng(0))  # code out of range
    with pytest.raises(ValueError):
        est.maj_curve(np.array([[0.0, 1.0]]), cc, np.random.default_rng(0))  # not integer
    with pytest.raises(ValueError):
        est.maj_at_k(np.array([[0, 1]]), cc, 3, np.random.default_rng(0))
    with pytest.raises(ValueError):
        est.maj_at_k(np.array([[0, 1]]), cc, 1, np.random.default_rng(0), n_mc=1)
