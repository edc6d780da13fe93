"""The oracle gap, reward-model efficiency and within-prompt AUC of the gains stage, against brute force:
per-prompt coverage counted directly, best-of-N by looking at the top-reward samples, the AUC by looping
over every (correct, incorrect) pair, and the intervals by a bootstrap loop with its own generator."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from bongain.cellstats.efficiency import oracle_gap_prompt_values, ratio_interval, within_prompt_auc
from bongain.cellstats.gains import compute_gains

TOL = 1e-12


def make_tables(answers, correct, rewards) -> tuple[pl.DataFrame, pl.DataFrame]:
    """grades and scores tables of a cell from [P][N] lists."""
    p, n = len(answers), len(answers[0])
    keys = {
        "prompt_id": [f"q{i:02d}" for i in range(p) for _ in range(n)],
        "sample_idx": pl.Series([j for _ in range(p) for j in range(n)], dtype=pl.Int32),
    }
    grades = pl.DataFrame(
        {
            **keys,
            "answer": pl.Series([a for row in answers for a in row], dtype=pl.String),
            "correct": [c for row in correct for c in row],
        }
    )
    return grades, pl.DataFrame({**keys, "reward": [r for row in rewards for r in row]})


def synthetic_cell(seed: int, p: int, n: int, levels: int = 3, mix: bool = True):
    """A cell with prompts of every kind: all correct, none correct, and mixed; rewards from a few levels
    (many ties). Returns (correct [P, N], rewards [P, N], grades, scores)."""
    rng = np.random.default_rng(seed)
    rate = rng.choice([0.0, 1.0, 0.3, 0.6], size=p) if mix else rng.choice([0.0, 1.0], size=p)
    correct = rng.random((p, n)) < rate[:, None]
    rewards = rng.integers(0, levels, size=(p, n)).astype(float) + 0.5 * correct * rng.integers(0, 2, (p, n))
    answers = [["1" if c else "2" for c in row] for row in correct]
    grades, scores = make_tables(answers, correct.tolist(), rewards.tolist())
    return correct, rewards, grades, scores


def brute_oracle_gap(correct: np.ndarray) -> float:
    covered = [1.0 if any(row) else 0.0 for row in correct.tolist()]
    pass1 = [sum(row) / len(row) for row in correct.tolist()]
    return sum(covered) / len(covered) - sum(pass1) / len(pass1)


def brute_gain(rewards: np.ndarray, correct: np.ndarray) -> float:
    """best-of-N at k = N (uniform tie-breaking among the top rewards) minus pass@1, looping."""
    total = 0.0
    for r, c in zip(rewards.tolist(), correct.tolist(), strict=True):
        top = max(r)
        winners = [ci for ri, ci in zip(r, c, strict=True) if ri == top]
        total += sum(winners) / len(winners) - sum(c) / len(c)
    return total / len(rewards)


def brute_auc(rewards: np.ndarray, correct: np.ndarray) -> tuple[float, int]:
    """Mean over prompts with both kinds of sample of the pair-counting AUC (ties 1/2), and their count."""
    aucs = []
    for r, c in zip(rewards.tolist(), correct.tolist(), strict=True):
        pos = [ri for ri, ci in zip(r, c, strict=True) if ci]
        neg = [ri for ri, ci in zip(r, c, strict=True) if not ci]
        if not pos or not neg:
            continue
        wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
        aucs.append(wins / (len(pos) * len(neg)))
    return (sum(aucs) / len(aucs) if aucs else float("nan")), len(aucs)


def test_hand_built_cell() -> None:
    # q00: the correct sample has the top reward: g = 1 - 1/3, h = 1 - 1/3, AUC 1
    # q01: a correct and a wrong sample tie at the top: bon 1/2, g = 1/2 - 2/3, h = 1 - 2/3;
    #      pairs (correct 0.7 vs wrong 0.7) 1/2, (correct 0.1 vs wrong 0.7) 0 -> AUC 1/4
    grades, scores = make_tables(
        [["1", "2", "2"], [None, "5", "5"]],
        [[True, False, False], [False, True, True]],
        [[0.9, 0.1, 0.2], [0.7, 0.7, 0.1]],
    )
    out = compute_gains(grades, scores, seed=0, efficiency_gap_floor=0.05).row(0, named=True)
    assert out["gain_oracle"] == pytest.approx(0.5, abs=TOL)
    assert out["gain"] == pytest.approx(0.25, abs=TOL)
    assert out["efficiency"] == pytest.approx(0.5, abs=TOL)
    assert out["auc"] == pytest.approx(0.625, abs=TOL) and out["auc_prompts"] == 2
    assert out["gap_floor"] == 0.05


@pytest.mark.parametrize(("seed", "p", "n"), [(0, 12, 4), (1, 30, 8), (2, 7, 1), (3, 25, 5), (4, 9, 2)])
def test_gain_oracle_efficiency_auc_match_brute_force(seed: int, p: int, n: int) -> None:
    correct, rewards, grades, scores = synthetic_cell(seed, p, n)
    out = compute_gains(grades, scores, seed=seed, n_boot=50, efficiency_gap_floor=0.0)
    row = out.row(0, named=True)
    gap = brute_oracle_gap(correct)
    assert row["gain_oracle"] == pytest.approx(gap, abs=TOL)
    assert row["gain_oracle"] == pytest.approx(out["pass_at_k"][-1] - out["pass_at_k"][0], abs=TOL)
    assert (out["gain_oracle"] == row["gain_oracle"]).all()  # the same in every k row
    assert row["gain"] == pytest.approx(brute_gain(rewards, correct), abs=TOL)
    assert row["gain"] <= row["gain_oracle"] + TOL  # a reward model never beats the oracle
    if gap > 0:
        assert row["efficiency"] == pytest.approx(brute_gain(rewards, correct) / gap, abs=1e-9)
        assert row["efficiency"] <= 1 + 1e-12
    else:
        assert row["efficiency"] is None
    auc, eligible = brute_auc(rewards, correct)
    assert row["auc_prompts"] == eligible
    if eligible:
        assert row["auc"] == pytest.approx(auc, abs=TOL)
        assert row["auc_lo"] <= row["auc"] <= row["auc_hi"]
    else:
        assert row["auc"] is None and row["auc_lo"] is None and row["auc_hi"] is None


def test_cells_without_a_gap_have_no_efficiency_and_no_auc() -> None:
    """Every prompt all correct or all wrong (as in Gemma's deterministic cells): gap 0, gain 0, no AUC."""
    correct, _, grades, scores = synthetic_cell(5, 20, 4, mix=False)
    assert brute_oracle_gap(correct) == 0.0
    row = compute_gains(grades, scores, seed=0, n_boot=50).row(0, named=True)
    assert row["gain_oracle"] == 0.0 and row["gain_oracle_lo"] == 0.0 and row["gain_oracle_hi"] == 0.0
    assert row["gain"] == pytest.approx(0.0, abs=TOL)
    assert row["efficiency"] is None and row["efficiency_lo"] is None and row["efficiency_hi"] is None
    assert row["auc"] is None and row["auc_prompts"] == 0


def test_efficiency_is_null_below_the_gap_floor() -> None:
    correct, _, grades, scores = synthetic_cell(1, 30, 8)
    gap = brute_oracle_gap(correct)
    assert 0 < gap < 0.9
    above = compute_gains(grades, scores, seed=0, n_boot=50, efficiency_gap_floor=gap - 1e-9).row(
        0, named=True
    )
    below = compute_gains(grades, scores, seed=0, n_boot=50, efficiency_gap_floor=gap + 1e-9).row(
        0, named=True
    )
    assert above["efficiency"] == pytest.approx(above["gain"] / gap, abs=1e-9)
    assert below["efficiency"] is None and below["efficiency_lo"] is None
    # the floor touches nothing else
    assert {k: v for k, v in above.items() if not k.startswith(("efficiency", "gap_floor"))} == {
        k: v for k, v in below.items() if not k.startswith(("efficiency", "gap_floor"))
    }


def test_per_prompt_helpers_by_hand() -> None:
    correct = np.array([[True, True], [False, False], [True, False]])
    np.testing.assert_allclose(oracle_gap_prompt_values(correct), [0.0, 0.0, 0.5])
    auc, eligible = within_prompt_auc(np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]]), correct)
    assert eligible.tolist() == [False, False, True]
    assert np.isnan(auc[:2]).all() and auc[2] == 0.5  # one tied pair
    # resamples whose denominator is 0 give no ratio: left out, and NaN when none is left
    assert ratio_interval(np.array([1.0, 5.0, 2.0]), np.array([2.0, 0.0, 2.0]), 0.5) == (0.625, 0.875)
    assert all(np.isnan(ratio_interval(np.array([1.0, 2.0]), np.array([0.0, 0.0]), 0.9)))


def test_intervals_match_a_brute_force_bootstrap() -> None:
    """The efficiency and AUC intervals (ratio recomputed on each resample of the prompts) against a plain
    loop over resamples drawn by another generator: the percentiles agree within Monte-Carlo error."""
    correct, rewards, grades, scores = synthetic_cell(11, 40, 6, levels=4)
    b = 4000
    row = compute_gains(grades, scores, seed=3, n_boot=b, ci_level=0.9).row(0, named=True)
    assert row["efficiency"] is not None
    rng = np.random.default_rng(12345)
    effs, aucs, gaps = [], [], []
    for _ in range(b):
        idx = rng.integers(0, correct.shape[0], size=correct.shape[0])
        c, r = correct[idx], rewards[idx]
        gap = brute_oracle_gap(c)
        gaps.append(gap)
        if gap > 0:
            effs.append(brute_gain(r, c) / gap)
        a, k = brute_auc(r, c)
        if k:
            aucs.append(a)
    for name, values in (("efficiency", effs), ("auc", aucs), ("gain_oracle", gaps)):
        lo, hi = np.quantile(values, [0.05, 0.95])
        assert row[f"{name}_lo"] == pytest.approx(lo, abs=0.03), name
        assert row[f"{name}_hi"] == pytest.approx(hi, abs=0.03), name
        assert row[f"{name}_lo"] <= row[name] <= row[f"{name}_hi"], name
