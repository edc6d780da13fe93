from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from bongain.config import complete_block
from bongain.fit import concentration as conc
from bongain.fit import stability, table
from bongain.io import conform
from test_fit import make_grid_cells

N = 8


def _first_correct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Per-prompt 1/(c+1): prompt difficulty p ~ Beta(0.5, 0.5), c ~ Binomial(N, p)."""
    p = rng.beta(0.5, 0.5, size=shape)
    return 1.0 / (rng.binomial(N, p) + 1.0)


def _modal_share(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Per-prompt modal-answer share of N samples from a prompt-specific 3-answer distribution."""
    probs = rng.dirichlet([0.7, 0.7, 0.7], size=shape)
    u = rng.random(size=(*shape, N))
    cum = np.cumsum(probs, axis=-1)
    ans = (u[..., None] > cum[..., None, :]).sum(axis=-1)
    counts = np.stack([(ans == a).sum(axis=-1) for a in range(3)], axis=-1)
    return counts.max(axis=-1) / N


@pytest.mark.parametrize("n_prompts", [12, 40])
def test_bound_holds_at_stated_confidence_in_repeated_simulation(n_prompts: int) -> None:
    rng = np.random.default_rng(0)
    delta, reps = 0.1, 4000
    L = math.log(2.0 / delta) / (2.0 * n_prompts)
    # the formulas, written out independently of the implementation
    assert float(conc.deviation_bound("mean", 1.0, n_prompts, delta)) == pytest.approx(
        math.sqrt(L), rel=1e-12
    )
    assert float(conc.deviation_bound("spread", 2.0, n_prompts, delta)) == pytest.approx(
        2.0 * L**0.25 + 2.0 / (2 * n_prompts), rel=1e-12
    )
    # Hoeffding's worst case: per-prompt values in {0, 1} with p = 1/2. The bound must hold at the stated
    # confidence, and must not be loose by a factor 3 (then a third of it would also hold): a bound that
    # is wrong by a constant factor fails one of the two.
    x = rng.random((reps, n_prompts)) < 0.5
    dev = np.abs(x.mean(axis=1) - 0.5)
    eps = float(conc.deviation_bound("mean", 1.0, n_prompts, delta))
    assert np.mean(dev > eps) <= delta
    assert np.mean(dev > eps / 3.0) > delta
    # a realistic mean feature (1 / (c + 1) of a Beta-Binomial) and a spread: the bounds hold
    fc_pop = _first_correct(rng, (200_000,)).mean()
    m_big = _modal_share(rng, (100_000,))
    spread_pop = m_big.std()
    fc = _first_correct(rng, (reps // 4, n_prompts))
    m = _modal_share(rng, (reps // 4, n_prompts))
    lo_fc, hi_fc = conc.feature_range("first_correct_pos", N)
    assert (lo_fc, hi_fc) == (1.0 / (N + 1), 1.0)
    eps_fc = conc.deviation_bound("mean", hi_fc - lo_fc, n_prompts, delta)
    eps_sp = conc.deviation_bound("spread", 1.0, n_prompts, delta)
    assert np.mean(np.abs(fc.mean(axis=1) - fc_pop) > eps_fc) <= delta
    assert np.mean(np.abs(m.std(axis=1) - spread_pop) > eps_sp) <= delta
    # the propagated bound: union over the features at delta / 2 each, written out by hand
    coefs = {"(intercept)": 0.4, "first_correct_pos": -0.7, "agreement_spread": 1.3}
    bound = float(conc.prediction_bound(coefs, n_prompts, N, delta))
    L2 = math.log(2.0 / (delta / 2)) / (2.0 * n_prompts)
    by_hand = 0.7 * (1.0 - 1.0 / (N + 1)) * math.sqrt(L2) + 1.3 * (L2**0.25 + 1.0 / (2 * n_prompts))
    assert bound == pytest.approx(by_hand, rel=1e-12)
    dev_pred = np.abs(-0.7 * (fc.mean(axis=1) - fc_pop) + 1.3 * (m.std(axis=1) - spread_pop))
    assert np.mean(dev_pred > bound) <= delta


def test_feature_ranges() -> None:
    assert conc.feature_range("first_correct_pos", 8) == (pytest.approx(1 / 9), 1.0)
    assert conc.feature_range("agreement_mean", 8) == (0.0, 1.0)
    assert conc.feature_range("answer_entropy", 8) == (0.0, pytest.approx(math.log(8)))
    assert conc.feature_range("length_var", 4, max_tokens=10) == (0.0, pytest.approx(100 / 4 * 4 / 3))
    assert conc.feature_range("length_mean", 4, max_tokens=10) == (0.0, 10.0)
    assert conc.feature_range("length_var", 4) is None
    assert conc.feature_range("entropy_mean", 4) is None
    assert conc.feature_range("entropy_mean", 4, overrides={"entropy_mean": (0.0, 10.8)}) == (0.0, 10.8)
    # sample variance (ddof = 1) of N values in [0, T] never exceeds the stated upper end
    rng = np.random.default_rng(1)
    x = rng.choice([0.0, 10.0], size=(5000, 4))
    assert x.var(axis=1, ddof=1).max() <= conc.feature_range("length_var", 4, max_tokens=10)[1] + 1e-9


def test_bound_monotone_and_min_prompts() -> None:
    coefs = {"(intercept)": 0.0, "first_correct_pos": 0.5, "agreement_spread": -0.2}
    ns = np.array([4, 16, 64, 256, 1024])
    b = conc.prediction_bound(coefs, ns, N, 0.05)
    assert np.all(np.diff(b) < 0)
    for target in (0.02, 0.05, 0.3):
        n = conc.min_prompts(target, coefs, N, 0.05)
        assert n is not None
        assert float(conc.prediction_bound(coefs, n, N, 0.05)) <= target
        if n > 1:
            assert float(conc.prediction_bound(coefs, n - 1, N, 0.05)) > target
    # a feature without a stated range: no bound, no advice
    assert math.isnan(float(conc.prediction_bound({"entropy_mean": 0.1}, 100, N, 0.05)))
    assert conc.min_prompts(0.05, {"entropy_mean": 0.1}, N, 0.05) is None


def test_concentration_tables() -> None:
    features, gains = make_grid_cells(n_methods=2, n_tasks=4, seed=3)
    cells = table.cell_table(features, gains)
    ols, _ = stability.fit_ols(features, gains, ["first_correct_pos", "length_var"], "strict_core")
    screened = features.head(1).with_columns(pl.lit("s").alias("task"), pl.lit(100).alias("n_prompts"))
    settings = conc.ConcentrationSettings.from_config(
        complete_block(
            "fit",
            {
                "concentration": {
                    "delta": 0.1,
                    "targets": [0.05],
                    "n_prompts_grid": [10, 100],
                    "n_samples_grid": [4],
                }
            },
        )
    )
    c, terms = conc.concentration_tables(
        features,
        cells.select(["model", "method", "task", "gain"]),
        ols,
        {"me0": 8, "me1": 16},
        settings,
        screened=screened,
    )
    for df, name in ((c, "fit_concentration"), (terms, "fit_concentration_terms")):
        assert conform(df, name).equals(df)
    assert c.height == features.height + 1 and terms.height == 2 * c.height
    assert c.filter(pl.col("status") == "screened")["gain"].null_count() == 1
    per_cell = terms.group_by(["model", "method", "task"]).agg(pl.col("contribution").sum())
    j = c.join(per_cell, on=["model", "method", "task"])
    np.testing.assert_allclose(j["bound"].to_numpy(), j["contribution"].to_numpy())
    # one cell by hand (Hoeffding at delta / 2 per feature; ranges 1 - 1/(N+1) and T^2/4 N/(N-1), T = 16)
    beta0 = dict(zip(ols["feature"], ols["coef"], strict=True))
    row = c.filter((pl.col("status") == "evaluated") & (pl.col("method") == "me1")).row(0, named=True)
    L = math.log(2.0 / (0.1 / 2)) / (2.0 * row["n_prompts"])
    by_hand = abs(beta0["first_correct_pos"]) * (1 - 1 / (N_S + 1)) * math.sqrt(L) + abs(
        beta0["length_var"]
    ) * (16.0**2 / 4 * N_S / (N_S - 1)) * math.sqrt(L)
    assert row["bound"] == pytest.approx(by_hand, rel=1e-12)
    # length_var range depends on the method's max_new_tokens
    lv = terms.filter(pl.col("feature") == "length_var")
    assert set(lv.filter(pl.col("method") == "me1")["range_hi"].to_list()) == {16.0**2 / 4 * N_S / (N_S - 1)}
    # evaluated residuals are |gain - compact prediction|
    ev = c.filter(pl.col("status") == "evaluated")
    np.testing.assert_allclose(ev["abs_residual"].to_numpy(), np.abs(ev["gain"] - ev["pred"]).to_numpy())
    assert ev["abs_residual"].max() == pytest.approx(ols["resid_max_abs"][0])
    # screened cell with more prompts has a smaller bound than the same features at n = 50
    assert c.filter(pl.col("status") == "screened")["bound"][0] < ev["bound"][0]
    # the worst case over evaluated cells uses the largest max_new_tokens (16, method me1)
    worst = conc.worst_case_bound(features, ols, {"me0": 8, "me1": 16}, settings)
    beta = dict(zip(ols["feature"], ols["coef"], strict=True))
    assert worst(50, N_S) == pytest.approx(float(conc.prediction_bound(beta, 50, N_S, 0.1, 16.0))) and worst(
        50, N_S
    ) > float(conc.prediction_bound(beta, 50, N_S, 0.1, 8.0))
    # measured counterpart from the features' bootstrap CI columns
    assert np.allclose(c["boot_halfwidth"].to_numpy(), 0.0)  # fixture: lo = hi = value
    wide = features.with_columns(
        (pl.col("first_correct_pos") - 0.1).alias("first_correct_pos_lo"),
        (pl.col("first_correct_pos") + 0.1).alias("first_correct_pos_hi"),
        (pl.col("length_var") + 0.5).alias("length_var_hi"),
    )
    c2, _ = conc.concentration_tables(
        wide, cells.select(["model", "method", "task", "gain"]), ols, {"me0": 8, "me1": 16}, settings
    )
    beta = dict(zip(ols["feature"], ols["coef"], strict=True))
    expected = abs(beta["first_correct_pos"]) * 0.1 + abs(beta["length_var"]) * 0.25
    np.testing.assert_allclose(c2["boot_halfwidth"].to_numpy(), expected)


N_S = 4  # N of make_grid_cells
