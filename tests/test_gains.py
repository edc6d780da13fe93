"""compute_gains on hand-built tables with known answers, validation and determinism."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from bongain.cellstats import passk, votes
from bongain.cellstats.gains import GAINS_COLUMNS, compute_gains
from bongain.io import conform
from bongain.schemas import CELL_COLUMNS, GAINS, RM_COLUMN

TOL = 1e-12


def make_tables(
    answers: list[list[str | None]], correct: list[list[bool]], rewards: list[list[float]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    p, n = len(answers), len(answers[0])
    pid = [f"q{i:02d}" for i in range(p) for _ in range(n)]
    idx = pl.Series([j for _ in range(p) for j in range(n)], dtype=pl.Int32)
    grades = pl.DataFrame(
        {
            "prompt_id": pid,
            "sample_idx": idx,
            "answer": pl.Series([a for row in answers for a in row], dtype=pl.String),
            "correct": [c for row in correct for c in row],
        }
    )
    scores = pl.DataFrame(
        {"prompt_id": pid, "sample_idx": idx, "reward": [r for row in rewards for r in row]}
    )
    return grades, scores


def random_tables(seed: int, p: int = 6, n: int = 8) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    pool = [None, "1", "2", "3"]
    answers = [[pool[int(rng.integers(0, 4))] for _ in range(n)] for _ in range(p)]
    correct = [[a == "1" for a in row] for row in answers]
    rewards = rng.integers(0, 4, size=(p, n)).astype(float).tolist()
    return make_tables(answers, correct, rewards)


def test_hand_built_cell() -> None:
    # q00: rewards put the correct sample on top -> bon@3 = 1; answers 1,2,2 (1 correct) -> maj@3 = 0
    # q01: the correct sample ties with a wrong one at the top -> bon@3 = 1/2; maj: None,5,5 -> 5 correct
    grades, scores = make_tables(
        [["1", "2", "2"], [None, "5", "5"]],
        [[True, False, False], [False, True, True]],
        [[0.9, 0.1, 0.2], [0.7, 0.7, 0.1]],
    )
    out = compute_gains(grades, scores, seed=0)
    assert out.columns == list(GAINS_COLUMNS)
    assert out["k"].to_list() == [1, 2, 3]
    assert out["n_prompts"].to_list() == [2] * 3 and out["n_samples"].to_list() == [3] * 3
    # pass@k: c = (1, 2) of N = 3
    expected_pass = [(1 / 3 + 2 / 3) / 2, (2 / 3 + 1) / 2, 1.0]
    np.testing.assert_allclose(out["pass_at_k"], expected_pass, atol=TOL)
    # bon@1 = mean correctness; bon@2 q00: pairs {0,1},{0,2} pick 0 (correct), {1,2} picks 2 -> 2/3
    # q01: {0,1} tie -> 1/2 correct, {0,2} -> 0 (wrong), {1,2} -> 1 (correct) -> 1/2
    np.testing.assert_allclose(out["bon_at_k"], [0.5, (2 / 3 + 1 / 2) / 2, (1 + 0.5) / 2], atol=TOL)
    # maj@1 = answered-correct share: q00 1/3, q01 2/3; maj@2 q00: {1,2} tie -> 1/2, {1,2'} 1/2,
    # {2,2'} -> 0  => 1/3; q01: {None,5} 1, {None,5'} 1, {5,5'} 1 => 1
    np.testing.assert_allclose(out["maj_at_k"], [0.5, (1 / 3 + 1) / 2, (0 + 1) / 2], atol=TOL)
    np.testing.assert_array_equal(out["maj_at_k_se"], 0.0)
    assert out["gain"].to_list() == pytest.approx([0.75 - 0.5] * 3, abs=TOL)


def test_conforms_to_gains_schema() -> None:
    grades, scores = random_tables(0)
    out = compute_gains(grades, scores, seed=1)
    assert [c for c in GAINS.columns if c not in {**CELL_COLUMNS, **RM_COLUMN}] == out.columns
    conform(
        out.with_columns(model=pl.lit("m"), method=pl.lit("x"), task=pl.lit("t"), rm=pl.lit("r")), "gains"
    )


@pytest.mark.parametrize("seed", range(3))
def test_matches_estimators_on_random_cell(seed: int) -> None:
    grades, scores = random_tables(seed)
    out = compute_gains(grades, scores, seed=seed)
    g = grades.sort("prompt_id", "sample_idx")
    s = scores.sort("prompt_id", "sample_idx")
    correct = g["correct"].to_numpy().reshape(-1, 8)
    rewards = s["reward"].to_numpy().reshape(-1, 8)
    np.testing.assert_allclose(out["bon_at_k"], passk.bon_curve(rewards, correct), atol=TOL)
    np.testing.assert_allclose(out["pass_at_k"], passk.pass_at_k_curve(correct.sum(1), 8), atol=TOL)
    answers = g["answer"].to_list()
    codes, cc = votes.encode_answer_matrix([answers[i : i + 8] for i in range(0, len(answers), 8)], correct)
    maj, _ = votes.maj_curve(codes, cc, np.random.default_rng(0))
    np.testing.assert_allclose(out["maj_at_k"], maj, atol=TOL)
    assert out["gain"][0] == pytest.approx(out["bon_at_k"][-1] - out["pass_at_k"][0], abs=TOL)


def test_deterministic_and_row_order_invariant_with_monte_carlo() -> None:
    grades, scores = random_tables(4, p=5, n=10)
    kwargs = {"seed": 7, "max_exact_subsets": 20, "n_mc": 300, "n_boot": 100}
    a = compute_gains(grades, scores, **kwargs)
    b = compute_gains(grades.reverse(), scores.sample(fraction=1.0, shuffle=True, seed=3), **kwargs)
    assert a.equals(b)
    assert (a["maj_at_k_se"] > 0).any() and (a["wmaj_at_k_se"] > 0).any()
    c = compute_gains(grades, scores, seed=8, max_exact_subsets=20, n_mc=300, n_boot=100)
    assert not a["maj_at_k"].equals(c["maj_at_k"])
    assert not a["bon_at_k_lo"].equals(c["bon_at_k_lo"])
    exact = compute_gains(grades, scores, seed=0)
    for col in ("maj_at_k", "wmaj_at_k"):
        diff = (a[col] - exact[col]).abs().to_numpy()
        assert np.all(diff <= 4 * a[f"{col}_se"].to_numpy() + TOL)


def test_rejects_missing_score_or_grade() -> None:
    grades, scores = random_tables(1, p=3, n=4)
    drop = ~((pl.col("prompt_id") == "q01") & (pl.col("sample_idx") == 2))
    with pytest.raises(ValueError, match="'q01'"):
        compute_gains(grades, scores.filter(drop), seed=0)
    with pytest.raises(ValueError, match="'q01'"):
        compute_gains(grades.filter(drop), scores, seed=0)
    with pytest.raises(ValueError, match=r"'q02'.*no row in scores"):
        compute_gains(grades, scores.filter(pl.col("prompt_id") != "q02"), seed=0)


def test_rejects_n_mismatch() -> None:
    grades, scores = random_tables(1, p=3, n=4)
    with pytest.raises(ValueError, match="N="):
        compute_gains(grades, scores.filter(pl.col("sample_idx") < 3), seed=0)


def test_rejects_bad_rewards() -> None:
    grades, scores = random_tables(1, p=2, n=3)
    with pytest.raises(ValueError, match="finite"):
        compute_gains(grades, scores.with_columns(reward=pl.lit(float("nan"))), seed=0)
    with pytest.raises(ValueError, match="null reward"):
        compute_gains(grades, scores.with_columns(reward=pl.lit(None, dtype=pl.Float64)), seed=0)


# ------------------------------------------------------------------- weighted vote and bootstrap CIs


def test_new_columns_hand_built() -> None:
    # q00: answers 1,2,2 with the lone correct "1" far ahead in reward -> wmaj@3 = 1 while maj@3 = 0
    grades, scores = make_tables(
        [["1", "2", "2"], [None, "5", "5"]],
        [[True, False, False], [False, True, True]],
        [[4.0, -2.0, -2.0], [0.7, 0.7, 0.1]],
    )
    out = compute_gains(grades, scores, seed=0)
    np.testing.assert_allclose(out["wmaj_at_k"][0], out["maj_at_k"][0], atol=TOL)  # k = 1: no weighing
    assert out["wmaj_at_k"][-1] == pytest.approx((1 + 1) / 2, abs=TOL)
    np.testing.assert_array_equal(out["wmaj_at_k_se"], 0.0)
    uniform = compute_gains(grades, scores, seed=0, weight="uniform")
    np.testing.assert_allclose(uniform["wmaj_at_k"], uniform["maj_at_k"], atol=TOL)
    assert out["n_boot"].to_list() == [1000] * 3 and out["ci_level"].to_list() == [0.95] * 3


@pytest.mark.parametrize("seed", range(3))
def test_ci_columns(seed: int) -> None:
    grades, scores = random_tables(seed, p=12, n=6)
    out = compute_gains(grades, scores, seed=seed, n_boot=300, ci_level=0.9)
    for c in ("pass_at_k", "bon_at_k", "maj_at_k", "wmaj_at_k", "gain"):
        lo, hi, point = out[f"{c}_lo"].to_numpy(), out[f"{c}_hi"].to_numpy(), out[c].to_numpy()
        assert np.all(lo <= hi + TOL)
        assert np.all((lo <= point + 1e-9) & (point <= hi + 1e-9))  # the means sit inside their CIs here
    assert out["gain_lo"].n_unique() == 1 and out["gain_hi"].n_unique() == 1
    assert out["pass_at_k_lo"][-1] <= out["pass_at_k"][-1] <= out["pass_at_k_hi"][-1]
    assert out["ci_level"][0] == 0.9 and out["n_boot"][0] == 300
    wider = compute_gains(grades, scores, seed=seed, n_boot=300, ci_level=0.99)
    assert np.all(
        wider["bon_at_k_hi"].to_numpy() - wider["bon_at_k_lo"].to_numpy()
        >= out["bon_at_k_hi"].to_numpy() - out["bon_at_k_lo"].to_numpy() - TOL
    )


def test_ci_matches_resampled_prompts() -> None:
    grades, scores = random_tables(5, p=7, n=5)
    out = compute_gains(grades, scores, seed=3, n_boot=200)
    g = grades.sort("prompt_id", "sample_idx")
    s = scores.sort("prompt_id", "sample_idx")
    correct = g["correct"].to_numpy().reshape(-1, 5)
    rewards = s["reward"].to_numpy().reshape(-1, 5)
    boot_rng = np.random.default_rng(np.random.SeedSequence(3).spawn(3)[2])
    draws = boot_rng.integers(0, 7, size=(200, 7), dtype=np.int32)
    reps = np.array([passk.bon_curve(rewards[d], correct[d]) for d in draws])
    np.testing.assert_allclose(out["bon_at_k_lo"], np.quantile(reps, 0.025, axis=0), atol=1e-12)
    np.testing.assert_allclose(out["bon_at_k_hi"], np.quantile(reps, 0.975, axis=0), atol=1e-12)
    gains = np.array([passk.bon_curve(rewards[d], correct[d])[-1] - correct[d].mean() for d in draws])
    assert out["gain_lo"][0] == pytest.approx(np.quantile(gains, 0.025), abs=1e-12)


def test_single_prompt_ci_collapses() -> None:
    grades, scores = random_tables(2, p=1, n=6)
    out = compute_gains(grades, scores, seed=0, n_boot=50)
    for c in ("pass_at_k", "bon_at_k", "maj_at_k", "wmaj_at_k", "gain"):
        np.testing.assert_allclose(out[f"{c}_lo"], out[c], atol=TOL)
        np.testing.assert_allclose(out[f"{c}_hi"], out[c], atol=TOL)


def test_every_strategy_equals_pass_at_1_at_k_1_and_the_new_strategies_match_their_kernels() -> None:
    from bongain.cellstats.selection import bom_selector, mob_selector, selection_prompt_values

    grades, scores = random_tables(11)
    out = compute_gains(grades, scores, seed=3, bom_threshold=0.5, mob_subsample_fraction=0.5)
    first = out.row(0, named=True)
    for col in ("bon_at_k", "maj_at_k", "wmaj_at_k", "bom_at_k", "mob_at_k"):
        assert first[col] == pytest.approx(first["pass_at_k"], abs=TOL), col
    # the columns are the prompt means of the selection kernels (exact here: N = 8, 6 prompts)
    rewards = scores["reward"].to_numpy().reshape(6, 8)
    answers = grades["answer"].to_list()
    codes, cc = votes.encode_answer_matrix(
        [answers[i : i + 8] for i in range(0, 48, 8)], grades["correct"].to_numpy().reshape(6, 8)
    )
    for col, select in (("bom_at_k", bom_selector(0.5)), ("mob_at_k", mob_selector(0.5))):
        vals, var = selection_prompt_values(select, rewards, codes, cc, range(1, 9), np.random.default_rng(0))
        np.testing.assert_allclose(out[col], vals.mean(axis=0), atol=TOL)
        assert not var.any() and (out[f"{col}_se"] == 0).all()
        assert (out[f"{col}_lo"] <= out[col] + TOL).all() and (out[col] <= out[f"{col}_hi"] + TOL).all()


def samples_with_certainty(grades: pl.DataFrame, certainty: list[list[float | None]]) -> pl.DataFrame:
    """A SAMPLES-like frame (keys + self_certainty) holding ``certainty[prompt][sample]``, rows shuffled."""
    flat = [c for row in certainty for c in row]
    df = grades.select("prompt_id", "sample_idx").with_columns(
        self_certainty=pl.Series(flat, dtype=pl.Float64)
    )
    return df.sample(fraction=1.0, shuffle=True, seed=1)


def brute_force_selfcert(certainty: np.ndarray, correct: np.ndarray, k: int) -> float:
    """Enumerate every k-subset of every prompt: the subset's highest self-certainty wins, exact ties split
    the win evenly among the tied members; mean over subsets, then over prompts."""
    from itertools import combinations

    per_prompt = []
    for cert, ok in zip(certainty, correct, strict=True):
        vals = []
        for subset in combinations(range(len(cert)), k):
            top = max(cert[i] for i in subset)
            winners = [i for i in subset if cert[i] == top]
            vals.append(sum(bool(ok[i]) for i in winners) / len(winners))
        per_prompt.append(sum(vals) / len(vals))
    return sum(per_prompt) / len(per_prompt)


@pytest.mark.parametrize("ties", [True, False])
def test_selfcert_at_k_equals_brute_force_enumeration(ties: bool) -> None:
    grades, scores = random_tables(5, p=5, n=7)
    rng = np.random.default_rng(9)
    cert = rng.integers(0, 3, size=(5, 7)).astype(float) if ties else rng.gamma(2.0, 0.5, size=(5, 7))
    out = compute_gains(grades, scores, seed=0, n_boot=200, samples=samples_with_certainty(grades, cert))
    correct = grades["correct"].to_numpy().reshape(5, 7)
    want = [brute_force_selfcert(cert, correct, k) for k in range(1, 8)]
    np.testing.assert_allclose(out["selfcert_at_k"], want, atol=TOL)
    assert out["selfcert_at_k"][0] == pytest.approx(out["pass_at_k"][0], abs=TOL)  # k = 1: pass@1
    lo, hi = out["selfcert_at_k_lo"], out["selfcert_at_k_hi"]
    assert (lo <= out["selfcert_at_k"] + TOL).all() and (out["selfcert_at_k"] <= hi + TOL).all()
    assert (
        conform(
            out.with_columns(model=pl.lit("m"), method=pl.lit("x"), task=pl.lit("t"), rm=pl.lit("r")), GAINS
        ).height
        == 7
    )
    # the other columns do not depend on whether self-certainty is there
    without = compute_gains(grades, scores, seed=0, n_boot=200)
    sc = pl.selectors.starts_with("selfcert", "gain_selfcert")
    assert out.drop(sc).equals(without.drop(sc))
    assert without["gain_selfcert"].null_count() == 7
    assert out["gain_selfcert"][0] == pytest.approx(want[-1] - out["pass_at_k"][0], abs=TOL)


def test_selfcert_at_k_is_null_without_self_certainty() -> None:
    grades, scores = random_tables(3, p=3, n=4)
    cert = [[1.0, 2.0, 3.0, 4.0]] * 3
    for samples in (None, samples_with_certainty(grades, [[1.0, None, 3.0, 4.0], *cert[1:]])):
        out = compute_gains(grades, scores, seed=0, n_boot=20, samples=samples)
        for col in ("selfcert_at_k", "selfcert_at_k_lo", "selfcert_at_k_hi"):
            assert out[col].null_count() == 4, col
        assert out["bon_at_k"].null_count() == 0
    # a samples table that does not hold the graded samples is refused, naming the prompt
    with pytest.raises(ValueError, match="q02"):
        compute_gains(
            grades,
            scores,
            seed=0,
            samples=samples_with_certainty(grades, cert).filter(pl.col("prompt_id") != "q02"),
        )


def test_per_strategy_gains_are_the_strategy_at_n_minus_pass_at_1() -> None:
    grades, scores = random_tables(7, p=6, n=5)
    cert = np.random.default_rng(2).gamma(2.0, 0.5, size=(6, 5))
    out = compute_gains(grades, scores, seed=4, n_boot=300, samples=samples_with_certainty(grades, cert))
    last, first = out.row(-1, named=True), out.row(0, named=True)
    for t in ("maj", "wmaj", "bom", "mob", "selfcert"):
        g = out[f"gain_{t}"]
        assert g.n_unique() == 1 and g[0] == pytest.approx(last[f"{t}_at_k"] - first["pass_at_k"], abs=TOL)
        assert out[f"gain_{t}_lo"][0] <= g[0] + TOL <= out[f"gain_{t}_hi"][0] + 2 * TOL, t
    assert out["gain_lo"][0] <= out["gain"][0] <= out["gain_hi"][0]
