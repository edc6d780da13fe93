"""Features on hand-built tables, each feature against its definition, validation and order invariance."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from bongain.cellstats import features as ft
from bongain.schemas import CELL_COLUMNS, FEATURES

TOL = 1e-12


def make_tables(
    answers: list[list[str | None]],
    correct: list[list[bool]],
    *,
    n_tokens: list[list[int]] | None = None,
    finish: list[list[str]] | None = None,
    logprob: list[list[float]] | None = None,
    entropy: list[list[float]] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """SAMPLES and GRADES tables for prompts p0, p1, ... (only the columns the features read + keys)."""
    p, n = len(answers), len(answers[0])
    pid = [f"p{i}" for i in range(p) for _ in range(n)]
    idx = [j for _ in range(p) for j in range(n)]

    def flat(x: list[list], default: object) -> list:
        return [v for row in x for v in row] if x is not None else [default] * (p * n)

    samples = pl.DataFrame(
        {
            "model": "m",
            "prompt_id": pid,
            "sample_idx": pl.Series(idx, dtype=pl.Int32),
            "n_tokens": pl.Series(flat(n_tokens, 10), dtype=pl.Int32),
            "finish_reason": flat(finish, "stop"),
            "mean_logprob": pl.Series(flat(logprob, -0.5), dtype=pl.Float64),
            "mean_entropy": pl.Series(flat(entropy, 0.25), dtype=pl.Float64),
        }
    )
    grades = pl.DataFrame(
        {
            "prompt_id": pid,
            "sample_idx": pl.Series(idx, dtype=pl.Int32),
            "answer": pl.Series(flat(answers, None), dtype=pl.String),
            "correct": flat(correct, False),
        }
    )
    return samples, grades


def random_tables(seed: int, p: int = 7, n: int = 6) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    pool = [None, "1", "2", "3", "4"]
    answers = [[pool[int(rng.integers(0, 5))] for _ in range(n)] for _ in range(p)]
    gold = [str(int(rng.integers(1, 5))) for _ in range(p)]
    correct = [[a == g for a in row] for row, g in zip(answers, gold, strict=True)]
    return make_tables(
        answers,
        correct,
        n_tokens=rng.integers(1, 100, size=(p, n)).tolist(),
        finish=rng.choice(["stop", "eos", "length"], size=(p, n)).tolist(),
        logprob=(-rng.random((p, n))).tolist(),
        entropy=rng.random((p, n)).tolist(),
    )


# ------------------------------------------------------------------------------- the whole table


def test_keys_are_the_features_schema() -> None:
    s, g = random_tables(0)
    out = ft.compute_features(s, g)
    # entropy_kind comes from the config (the features rule's param), not from the samples
    expected = [c for c in FEATURES.columns if c not in CELL_COLUMNS and c != "entropy_kind"]
    assert list(FEATURES.columns)[-1] == "entropy_kind"
    assert list(out) == expected == list(ft.TABLE_COLUMNS)
    assert expected[: len(ft.FEATURE_COLUMNS)] == list(ft.FEATURE_COLUMNS)  # the original columns lead
    assert isinstance(out["n_prompts"], int) and isinstance(out["n_samples"], int)
    row = pl.DataFrame([{"model": "m", "method": "x", "task": "t", **out, "entropy_kind": "exact"}])
    from bongain.io import conform

    conform(row, "features")  # casts without error


def test_hand_built_cell() -> None:
    # p0: answers 7,7,3,None  correct 7  -> c=2, modal 2/4, 2 distinct, maj: 7 wins -> 1
    # p1: answers 5,6,None,None correct 6 -> c=1, modal 1/4, 2 distinct, maj: tie 5/6 -> 1/2
    # p2: all None                        -> c=0, modal 0,   0 distinct, maj 0
    answers = [["7", "7", "3", None], ["5", "6", None, None], [None, None, None, None]]
    correct = [[True, True, False, False], [False, True, False, False], [False] * 4]
    s, g = make_tables(
        answers,
        correct,
        n_tokens=[[1, 2, 3, 4], [10, 10, 10, 10], [5, 5, 7, 7]],
        finish=[["stop", "length", "eos", "stop"], ["length"] * 4, ["stop"] * 4],
        logprob=[[-1.0] * 4, [-2.0] * 4, [-3.0] * 4],
        entropy=[[0.5] * 4, [1.0] * 4, [1.5] * 4],
    )
    out = ft.compute_features(s, g)
    shares = np.array([0.5, 0.25, 0.0])
    rates = np.array([0.5, 0.25, 0.0])
    assert out["n_prompts"] == 3 and out["n_samples"] == 4
    assert out["agreement_mean"] == pytest.approx(shares.mean(), abs=TOL)
    assert out["agreement_spread"] == pytest.approx(shares.std(), abs=TOL)
    assert out["first_correct_pos"] == pytest.approx((1 / 3 + 1 / 2 + 1) / 3, abs=TOL)
    var_p0 = np.var([1, 2, 3, 4], ddof=1)
    var_p2 = np.var([5, 5, 7, 7], ddof=1)
    assert out["length_var"] == pytest.approx((var_p0 + 0 + var_p2) / 3, abs=TOL)
    assert out["length_mean"] == pytest.approx((10 + 40 + 24) / 12, abs=TOL)
    assert out["entropy_mean"] == pytest.approx(1.0, abs=TOL)
    assert out["logprob_mean"] == pytest.approx(-2.0, abs=TOL)
    assert out["pass1"] == pytest.approx(rates.mean(), abs=TOL)
    assert out["pass1_spread"] == pytest.approx(rates.std(), abs=TOL)
    assert out["coverage"] == pytest.approx(2 / 3, abs=TOL)
    assert out["answer_diversity"] == pytest.approx((2 / 4 + 2 / 4 + 0) / 3, abs=TOL)
    h0 = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert out["answer_entropy"] == pytest.approx((h0 + math.log(2) + 0) / 3, abs=TOL)
    assert out["maj_at_n"] == pytest.approx((1 + 0.5 + 0) / 3, abs=TOL)
    assert out["truncation_rate"] == pytest.approx(5 / 12, abs=TOL)
    assert out["ungradable_rate"] == pytest.approx(7 / 12, abs=TOL)


@pytest.mark.parametrize("seed", range(5))
def test_invariant_to_row_order(seed: int) -> None:
    s, g = random_tables(seed)
    base = ft.compute_features(s, g)
    shuffled = ft.compute_features(s.sample(fraction=1.0, shuffle=True, seed=seed), g.reverse())
    assert shuffled == base


@pytest.mark.parametrize("seed", range(3))
def test_invariant_to_sample_order_within_prompt(seed: int) -> None:
    """Relabelling sample_idx within each prompt (a different generation order) changes nothing."""
    s, g = random_tables(seed, p=6, n=5)
    base = ft.compute_features(s, g, n_boot=200)
    rng = np.random.default_rng(seed)
    perm = {pid: rng.permutation(5) for pid in s["prompt_id"].unique().to_list()}
    relabel = pl.Series([int(perm[p][i]) for p, i in zip(s["prompt_id"], s["sample_idx"], strict=True)])
    s2 = s.with_columns(sample_idx=relabel.cast(pl.Int32))
    g2 = g.with_columns(sample_idx=relabel.cast(pl.Int32))  # same row order in both tables
    moved = ft.compute_features(s2, g2, n_boot=200)
    assert moved.keys() == base.keys()
    for c, v in base.items():
        assert moved[c] == pytest.approx(v, abs=1e-12), c


def test_single_sample_per_prompt() -> None:
    s, g = make_tables([["1"], [None]], [[True], [False]], n_tokens=[[3], [9]])
    out = ft.compute_features(s, g)
    assert out["n_samples"] == 1 and out["length_var"] == 0.0
    assert out["first_correct_pos"] == pytest.approx((1 / 2 + 1) / 2, abs=TOL)
    assert out["maj_at_n"] == pytest.approx(0.5, abs=TOL)


# ---------------------------------------------------------------------------------- unit features


@pytest.mark.parametrize("n", range(1, 7))
def test_expected_first_correct_matches_all_permutations(n: int) -> None:
    for c in range(n + 1):
        labels = [True] * c + [False] * (n - c)
        positions = [
            next((i + 1 for i, ok in enumerate(perm) if ok), n + 1) for perm in itertools.permutations(labels)
        ]
        assert ft.expected_first_correct(c, n) == pytest.approx(np.mean(positions), abs=TOL)


def test_first_correct_pos_range() -> None:
    correct = np.array([[True, True, True], [False, False, False], [True, False, False]])
    assert ft.first_correct_pos(correct) == pytest.approx((1 / 4 + 1 + 1 / 2) / 3, abs=TOL)
    assert ft.first_correct_pos(np.zeros((2, 5), dtype=bool)) == 1.0


def test_modal_share_and_agreement() -> None:
    codes = np.array([[0, 0, 1, -1], [-1, -1, -1, -1], [0, 1, 2, 3]])
    np.testing.assert_allclose(ft.modal_share(codes), [0.5, 0.0, 0.25])
    mean, spread = ft.agreement(codes)
    assert mean == pytest.approx(0.25) and spread == pytest.approx(np.std([0.5, 0.0, 0.25]))


def test_answer_diversity_and_entropy() -> None:
    codes = np.array([[0, 1, 2, 3], [0, 0, 0, 0], [-1, -1, -1, -1], [0, 0, 1, -1]])
    assert ft.answer_diversity(codes) == pytest.approx((1 + 0.25 + 0 + 0.5) / 4, abs=TOL)
    h_last = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert ft.answer_entropy(codes) == pytest.approx((math.log(4) + 0 + 0 + h_last) / 4, abs=TOL)


def test_length_pass_and_rates() -> None:
    mean, var = ft.length_stats(np.array([[1, 3], [2, 2]]))
    assert (mean, var) == (pytest.approx(2.0), pytest.approx(1.0))
    assert ft.length_stats(np.array([[4], [6]])) == (5.0, 0.0)
    p1, spread, cov = ft.pass1_stats(np.array([[True, False], [False, False]]))
    assert (p1, spread, cov) == (pytest.approx(0.25), pytest.approx(0.25), pytest.approx(0.5))
    assert ft.truncation_rate(np.array([["length", "stop"], ["eos", "length"]])) == 0.5
    assert ft.ungradable_rate(np.array([[-1, 0], [0, 0]])) == 0.25


def test_answer_codes_classes() -> None:
    _, g = make_tables([["b", "a", None, "b"]], [[True, False, False, False]])
    codes, cc = ft.answer_codes(g.sort("prompt_id", "sample_idx"), 4)
    np.testing.assert_array_equal(codes, [[1, 0, -1, 1]])  # classes numbered by sorted answer
    np.testing.assert_array_equal(cc, [[False, True]])  # 'b' correct: one of its copies is


# ------------------------------------------------------------------------------------- validation


def test_rejects_missing_sample_idx() -> None:
    s, g = random_tables(1, p=3, n=4)
    bad = s.filter(~((pl.col("prompt_id") == "p1") & (pl.col("sample_idx") == 2)))
    with pytest.raises(ValueError, match="'p1'"):
        ft.compute_features(bad, g)


def test_rejects_duplicate_sample_idx() -> None:
    s, g = random_tables(1, p=3, n=4)
    dup = g.with_columns(
        sample_idx=pl.when((pl.col("prompt_id") == "p2") & (pl.col("sample_idx") == 3))
        .then(0)
        .otherwise(pl.col("sample_idx"))
        .cast(pl.Int32)
    )
    with pytest.raises(ValueError, match="'p2'"):
        ft.compute_features(s, dup)


def test_rejects_different_n() -> None:
    s, g = random_tables(1, p=3, n=4)
    s = s.filter(~((pl.col("prompt_id") == "p0") & (pl.col("sample_idx") == 3)))
    g = g.filter(~((pl.col("prompt_id") == "p0") & (pl.col("sample_idx") == 3)))
    with pytest.raises(ValueError, match="'p0'"):
        ft.compute_features(s, g)


def test_rejects_sample_without_grade() -> None:
    s, g = random_tables(1, p=3, n=4)
    with pytest.raises(ValueError, match=r"'p1'.*no row in grades"):
        ft.compute_features(s, g.filter(pl.col("prompt_id") != "p1"))
    with pytest.raises(ValueError, match=r"'p1'.*no row in samples"):
        ft.compute_features(s.filter(pl.col("prompt_id") != "p1"), g)


def test_rejects_n_mismatch_between_tables() -> None:
    s, g = random_tables(1, p=2, n=4)
    with pytest.raises(ValueError, match=r"N=4.*N=3"):
        ft.compute_features(s, g.filter(pl.col("sample_idx") < 3))


def test_rejects_empty_and_missing_columns() -> None:
    s, g = random_tables(1, p=2, n=2)
    with pytest.raises(ValueError, match="no rows"):
        ft.compute_features(s.clear(), g)
    with pytest.raises(ValueError, match="mean_entropy"):
        ft.compute_features(s.drop("mean_entropy"), g)
    with pytest.raises(ValueError, match="null correct"):
        ft.compute_features(s, g.with_columns(correct=pl.lit(None, dtype=pl.Boolean)))


# ------------------------------------------------------------------------------- bootstrap intervals


def _reference_prompt_values(s: pl.DataFrame, g: pl.DataFrame) -> dict[str, dict[str, float]]:
    """Per-prompt values written from the definitions in docs/features.md with plain Python (no helper of
    the implementation): prompt_id -> feature -> value."""
    import statistics
    from collections import Counter

    rows = s.join(g, on=["prompt_id", "sample_idx"]).sort(["prompt_id", "sample_idx"])
    out: dict[str, dict[str, float]] = {}
    for pid in sorted(set(rows["prompt_id"].to_list())):
        r = rows.filter(pl.col("prompt_id") == pid)
        n = r.height
        answers = r["answer"].to_list()
        correct = [bool(x) for x in r["correct"].to_list()]
        tokens = [float(x) for x in r["n_tokens"].to_list()]
        counts = Counter(a for a in answers if a is not None)
        c = sum(correct)
        total = sum(counts.values())
        ent = -sum((v / total) * math.log(v / total) for v in counts.values()) if total else 0.0
        correct_cls = {a for a, ok in zip(answers, correct, strict=True) if a is not None and ok}
        if counts:
            top = max(counts.values())
            winners = [a for a, v in counts.items() if v == top]
            maj = sum(a in correct_cls for a in winners) / len(winners)
        else:
            maj = 0.0
        out[pid] = {
            "agreement_mean": (max(counts.values()) if counts else 0) / n,
            "first_correct_pos": 1.0 / (c + 1),
            "length_var": statistics.variance(tokens) if n > 1 else 0.0,
            "length_mean": sum(tokens) / n,
            "entropy_mean": sum(r["mean_entropy"].to_list()) / n,
            "logprob_mean": sum(r["mean_logprob"].to_list()) / n,
            "pass1": c / n,
            "coverage": float(c > 0),
            "answer_diversity": len(counts) / n,
            "answer_entropy": ent,
            "maj_at_n": maj,
            "truncation_rate": sum(f == "length" for f in r["finish_reason"].to_list()) / n,
            "ungradable_rate": sum(a is None for a in answers) / n,
        }
    return out


@pytest.mark.parametrize("seed", range(3))
def test_prompt_values_average_to_features(seed: int) -> None:
    s, g = random_tables(seed, p=9, n=5)
    out = ft.compute_features(s, g, n_boot=10)
    df, n = ft.join_per_sample(s, g, ("samples", "grades"), (ft.SAMPLE_COLUMNS, ft.GRADE_COLUMNS))
    values = ft.prompt_values(df, n, *ft.answer_codes(df, n))
    ref = _reference_prompt_values(s, g)
    pids = sorted(ref)
    assert set(values) == set(next(iter(ref.values())))
    for c, v in values.items():
        want = np.array([ref[p][c] for p in pids])
        np.testing.assert_allclose(v, want, rtol=0, atol=TOL, err_msg=c)  # per prompt, vs plain Python
        assert out[c] == pytest.approx(want.mean(), abs=TOL), c
    for spread, base in ft.SPREAD_OF.items():
        want = np.array([ref[p][base] for p in pids])
        assert out[spread] == pytest.approx(float(np.sqrt(np.mean((want - want.mean()) ** 2))), abs=TOL)


@pytest.mark.parametrize("seed", range(3))
def test_feature_cis(seed: int) -> None:
    s, g = random_tables(seed, p=15, n=6)
    out = ft.compute_features(s, g, seed=seed, n_boot=400, ci_level=0.9)
    assert out["n_boot"] == 400 and out["ci_level"] == 0.9
    for c in ft.CI_FEATURES:
        assert out[f"{c}_lo"] <= out[f"{c}_hi"]
        if c not in ft.SPREAD_OF:  # a mean: inside the range of the per-prompt values and around the point
            assert out[f"{c}_lo"] <= out[c] + 1e-9 <= out[f"{c}_hi"] + 2e-9, c
    again = ft.compute_features(s.reverse(), g, seed=seed, n_boot=400, ci_level=0.9)
    assert again == out
    other = ft.compute_features(s, g, seed=seed + 1, n_boot=400, ci_level=0.9)
    assert other["pass1_lo"] != out["pass1_lo"] or other["length_mean_hi"] != out["length_mean_hi"]


def test_feature_cis_match_resampled_prompts() -> None:
    s, g = random_tables(4, p=8, n=4)
    out = ft.compute_features(s, g, seed=11, n_boot=100)
    df, n = ft.join_per_sample(s, g, ("samples", "grades"), (ft.SAMPLE_COLUMNS, ft.GRADE_COLUMNS))
    codes, _ = ft.answer_codes(df, n)
    correct = ft.prompt_matrix(df, "correct", n).astype(bool)
    draws = np.random.default_rng(11).integers(0, 8, size=(100, 8), dtype=np.int32)
    spread = [ft.agreement(codes[d])[1] for d in draws]
    cov = [ft.pass1_stats(correct[d])[2] for d in draws]
    assert out["agreement_spread_lo"] == pytest.approx(np.quantile(spread, 0.025), abs=1e-12)
    assert out["agreement_spread_hi"] == pytest.approx(np.quantile(spread, 0.975), abs=1e-12)
    assert out["coverage_hi"] == pytest.approx(np.quantile(cov, 0.975), abs=1e-12)


def test_single_prompt_cis_collapse() -> None:
    s, g = make_tables([["1", "2", "2"]], [[True, False, False]])
    out = ft.compute_features(s, g, n_boot=30)
    for c in ft.CI_FEATURES:
        assert out[f"{c}_lo"] == pytest.approx(out[c], abs=TOL) and out[f"{c}_hi"] == pytest.approx(
            out[c], abs=TOL
        )
