"""Sample-size advice from measured variance (issue 9): closed-form truth and the subsampling check."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from bongain.fit import sample_size as ss
from bongain.io import conform
from test_features import make_tables


def _cell(seed: int, P: int, N: int, a: float = 2.0, b: float = 3.0) -> tuple[ss.CellData, np.ndarray]:
    """Prompt difficulty p_i ~ Beta(a, b); each sample correct with probability p_i."""
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, size=P)
    correct = rng.random((P, N)) < p[:, None]
    answers = [["1" if c else "2" for c in row] for row in correct]
    s, g = make_tables(answers, correct.tolist())
    return ss.cell_data(("m", "me", f"t{seed}"), s, g), p


def _ols(coefs: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame({"feature": ["(intercept)", *coefs], "coef": [0.1, *coefs.values()]})


def test_variance_parts_of_pass1_match_the_closed_form() -> None:
    # y_hat = pass1 = mean_i c_i / N: Var = Var(p) / n + E[p (1 - p)] / (n N) exactly, so
    # s_b^2 = Var(p) = ab / ((a+b)^2 (a+b+1)) and s_w^2 = E[p(1-p)] = ab / ((a+b)(a+b+1)).
    a, b = 2.0, 3.0
    var_p = a * b / ((a + b) ** 2 * (a + b + 1))
    e_pq = a * b / ((a + b) * (a + b + 1))
    between, within = [], []
    for seed in range(6):
        cell, _ = _cell(seed, P=300, N=8, a=a, b=b)
        parts = ss.variance_parts(cell, ["pass1"], {"pass1": 1.0}, np.random.default_rng(seed), 400, 200)
        between.append(parts.between)
        within.append(parts.within)
    # the within part is estimated precisely (many prompts); the between part from a prompt bootstrap
    assert np.mean(within) == pytest.approx(e_pq, rel=0.08)
    assert np.mean(between) == pytest.approx(var_p, rel=0.25)
    # a wrong scaling (e.g. within part not divided by N) would be off by a factor ~N
    assert np.mean(within) / 8 < var_p


def test_spread_features_use_the_sd_over_prompts() -> None:
    cell, _ = _cell(1, P=40, N=4)
    V = ss.prompt_feature_matrix(cell, ["pass1_spread", "pass1"])
    y = ss.predict_subsets(
        V, np.arange(40)[None], ["pass1_spread", "pass1"], {"pass1_spread": 2.0, "pass1": -1.0}
    )
    rate = cell.df["correct"].to_numpy().reshape(40, 4).mean(axis=1)
    assert y[0] == pytest.approx(2.0 * rate.std() - rate.mean(), abs=1e-12)


def test_sample_size_tables_and_check_agree_with_truth() -> None:
    cells = [_cell(10 + i, P=64, N=8)[0] for i in range(8)]
    size, check, parts = ss.sample_size_tables(
        cells,
        _ols({"pass1": 1.0}),
        [8, 16, 64, 256],
        [4, 8],
        lambda n, N: 1.0 / math.sqrt(n),
        0.05,
        seed=0,
        n_boot=200,
        n_boot_within=60,
        n_splits=40,
    )
    assert conform(size, "fit_sample_size").equals(size)
    assert conform(check, "fit_sample_size_check").equals(check)
    assert size.height == 4 * 2  # one row per (n, N); the cells' own n = 64 and N = 8 are on the grid
    assert size.select("n_prompts", "n_samples").n_unique() == size.height
    r = size.filter((pl.col("n_prompts") == 16) & (pl.col("n_samples") == 4)).row(0, named=True)
    want = math.sqrt(np.mean([p.between / 16 + p.within / 64 for p in parts]))
    assert r["predicted_sd"] == pytest.approx(want, rel=1e-12)
    assert r["predicted_err95"] == pytest.approx(1.959963984540054 * want)
    assert r["bound"] == pytest.approx(0.25)
    # error decreases with n and with N
    s4 = size.filter(pl.col("n_samples") == 4).sort("n_prompts")["predicted_sd"].to_numpy()
    assert np.all(np.diff(s4) < 0)
    assert (
        size.filter((pl.col("n_prompts") == 64) & (pl.col("n_samples") == 8))["predicted_sd"][0]
        < size.filter((pl.col("n_prompts") == 64) & (pl.col("n_samples") == 4))["predicted_sd"][0]
    )
    # closed-form truth at (n, N) for pass1: Var(p)/n + E[p(1-p)]/(n N)
    var_p, e_pq = 6 / (25 * 6), 6 / (5 * 6)
    for row in check.iter_rows(named=True):
        assert row["n_cells"] == 8
        truth = math.sqrt(var_p / row["n_prompts"] + e_pq / (row["n_prompts"] * row["n_samples"]))
        # observed: 8 cells x 40 dependent splits; predicted: estimated parts. Both near the truth.
        assert row["observed_sd"] == pytest.approx(truth, rel=0.3), row
        assert row["predicted_sd"] == pytest.approx(truth, rel=0.3), row
        assert 0.7 < row["ratio"] < 1.4
    assert check["check"].to_list() == ["n/2, N", "n/4, N", "n/2, N/2"]
    assert check.filter(pl.col("check") == "n/2, N/2")["n_samples"][0] == 4


def test_checks_need_two_prompts_per_part() -> None:
    cells = [_cell(3, P=6, N=2)[0]]
    _, check, _ = ss.sample_size_tables(cells, _ols({"pass1": 1.0}), [8], [2], lambda n, N: 1.0, 0.05, seed=0)
    rows = {r["check"]: r for r in check.iter_rows(named=True)}
    assert rows["n/2, N"]["n_cells"] == 1
    assert rows["n/4, N"]["n_cells"] == 0 and math.isnan(rows["n/4, N"]["observed_sd"])
