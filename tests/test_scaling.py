"""Coverage scaling fits: known parameters recovered from simulated data, held-out evaluation, table."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from bongain.cellstats.scaling import (
    beta_binomial_fit,
    beta_binomial_predict,
    power_law_fit,
    power_law_predict,
    scaling_table,
)
from bongain.io import conform


@pytest.mark.parametrize(("a", "b"), [(-1.2, -0.4), (-0.3, -0.9), (-2.5, -0.15)])
def test_power_law_recovers_known_parameters(a, b):
    ks = np.arange(1, 65)
    curve = np.exp(a * ks**b)
    got_a, got_b = power_law_fit(ks, curve)
    assert got_a == pytest.approx(a, rel=1e-9) and got_b == pytest.approx(b, rel=1e-9)
    np.testing.assert_allclose(
        power_law_predict(got_a, got_b, [100, 1000]), np.exp(a * np.array([100, 1000]) ** b)
    )


def test_power_law_ignores_saturated_points_and_is_undefined_with_too_few():
    assert power_law_fit([1, 2, 3], [0.2, 1.0, 1.0]) == pytest.approx((np.nan, np.nan), nan_ok=True)
    a, b = power_law_fit([1, 2, 4, 8], [np.exp(-1.0), np.exp(-0.5), 1.0, 1.0])
    assert (a, b) == pytest.approx((-1.0, -1.0))


def test_beta_binomial_closed_form_against_an_independent_monte_carlo():
    rng = np.random.default_rng(0)
    p = rng.beta(0.7, 2.0, size=400_000)
    for k in (1, 4, 32):
        mc = np.mean(1 - (1 - p) ** k)
        assert beta_binomial_predict(0.7, 2.0, [k])[0] == pytest.approx(mc, abs=3e-3)


def test_beta_binomial_recovers_known_parameters_from_simulated_counts():
    rng = np.random.default_rng(1)
    alpha, beta, n = 0.6, 1.8, 16
    counts = rng.binomial(n, rng.beta(alpha, beta, size=20_000))
    a_hat, b_hat = beta_binomial_fit(counts, n)
    assert a_hat == pytest.approx(alpha, rel=0.06) and b_hat == pytest.approx(beta, rel=0.06)
    assert beta_binomial_fit(np.zeros(5, dtype=int), n) == pytest.approx((np.nan, np.nan), nan_ok=True)


def grades_from(correct: np.ndarray) -> pl.DataFrame:
    p, n = correct.shape
    return pl.DataFrame(
        {
            "prompt_id": [f"q{i:03d}" for i in range(p) for _ in range(n)],
            "sample_idx": pl.Series([j for _ in range(p) for j in range(n)], dtype=pl.Int32),
            "correct": correct.ravel().tolist(),
        }
    )


def test_scaling_table_rows_heldout_and_intervals():
    rng = np.random.default_rng(2)
    p, n = 300, 16
    probs = rng.beta(0.5, 1.5, size=p)
    correct = rng.random((p, n)) < probs[:, None]
    out = scaling_table(grades_from(correct), [32, 64], seed=0, n_boot=200, ci_level=0.9)
    conform(out.with_columns(model=pl.lit("m"), method=pl.lit("x"), task=pl.lit("t")), "scaling")
    assert out["fit"].unique(maintain_order=True).to_list() == ["power_law", "beta_binomial"]
    bb = out.filter(pl.col("fit") == "beta_binomial")
    assert bb["k"].to_list() == [*range(1, n + 1), 32, 64]
    assert bb.filter(pl.col("k") > n)["observed"].is_null().all()
    # the data are beta-binomial: that fit extrapolates to the truth of these prompts within its interval
    truth = 1 - np.mean((1 - probs[:, None]) ** np.array([32, 64]), axis=0)
    far = bb.filter(pl.col("k") > n)
    lo, hi = far["predicted_lo"].to_numpy(), far["predicted_hi"].to_numpy()
    assert np.all((lo <= truth) & (truth <= hi))
    assert (far["predicted_lo"] <= far["predicted"]).all() and (far["predicted"] <= far["predicted_hi"]).all()
    assert np.all(hi - lo < 0.15)  # and the interval is informative
    # held out: fitted on the first 8 samples only, judged at k = 9..16 (sampling error ~0.02 here)
    assert 0 <= bb["heldout_rmse"][0] < 0.04
    assert out.filter(pl.col("fit") == "power_law")["heldout_rmse"][0] >= 0
    # reproducible from the seed
    again = scaling_table(grades_from(correct), [32, 64], seed=0, n_boot=200, ci_level=0.9)
    assert again.equals(out)
