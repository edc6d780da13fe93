from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from bongain.config import complete_block
from bongain.fit import compare, stability, table
from bongain.io import conform, write_text_atomic
from test_fit import complete, gains_for

N_SAMPLES = 4


def make_cells(
    n_cells: int, seed: int, coefs: dict[str, float], noise: float = 0.01
) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    cols = {c: rng.uniform(0.0, 1.0, n_cells) for c in table.FEATURE_COLUMNS}
    gain = sum(b * cols[c] for c, b in coefs.items()) + rng.normal(0.0, noise, n_cells)
    models = [f"m{i:02d}" for i in range(n_cells)]
    features = complete(
        pl.DataFrame(
            {
                "model": models,
                "method": ["base"] * n_cells,
                "task": ["gsm8k"] * n_cells,
                "n_prompts": [50] * n_cells,
                "n_samples": [N_SAMPLES] * n_cells,
                **cols,
            }
        ),
        "features",
    )
    return features, gains_for(models, np.asarray(gain))


TRUTH = {"coverage": 0.3, "agreement_spread": -0.25}


def test_stability_selection_finds_the_true_features() -> None:
    features, gains = make_cells(40, seed=2, coefs=TRUTH, noise=0.02)
    settings = stability.StabilitySettings(n_boot=100, seed=3)
    res = stability.stability_selection(features, gains, table.FEATURE_COLUMNS, settings)
    assert conform(res.stability, "fit_stability").equals(res.stability)
    assert conform(res.path, "fit_stability_path").equals(res.path)
    freq = dict(zip(res.stability["feature"], res.stability["max_freq"], strict=True))
    for f in TRUTH:
        assert freq[f] >= 0.95
    noise = [v for f, v in freq.items() if f not in TRUTH]
    assert np.mean(noise) < 0.3 and max(noise) < settings.threshold
    assert sorted(res.stability.filter(pl.col("stable"))["feature"].to_list()) == sorted(TRUTH)
    assert res.basis == "stable_set" and sorted(res.compact) == sorted(TRUTH)
    assert res.path.height == len(table.FEATURE_COLUMNS) * settings.n_lambdas
    assert res.path.filter(pl.col("admissible"))["mean_selected"].max() <= settings.max_selected
    # the frequency curve starts at (almost) nothing selected at lambda_max
    top = res.path.filter(pl.col("lambda_rel") == 1.0)
    assert top["freq"].max() <= 0.6
    # OLS on the compact set recovers the coefficients, with CIs covering them
    ols, summary = stability.fit_ols(features, gains, res.compact, res.basis)
    assert conform(ols, "fit_ols").equals(ols)
    for r in ols.filter(pl.col("feature") != "(intercept)").iter_rows(named=True):
        assert r["ci_lo"] <= TRUTH[r["feature"]] <= r["ci_hi"]
        assert r["p_value"] < 1e-6
    assert "OLS Regression Results" in summary and "Date:" in summary
    assert not any(ch.isdigit() for ch in summary.split("Date:")[1].split("Prob")[0])
    assert not any(ch.isdigit() for ch in summary.split("Time:")[1].split("Log-Likelihood")[0])


def test_deterministic_given_seed() -> None:
    features, gains = make_cells(20, seed=2, coefs=TRUTH)
    settings = stability.StabilitySettings(n_boot=30, seed=9)
    a = stability.stability_selection(features, gains, table.FEATURE_COLUMNS, settings)
    b = stability.stability_selection(features.reverse(), gains.reverse(), table.FEATURE_COLUMNS, settings)
    assert a.stability.equals(b.stability) and a.path.equals(b.path)
    c = stability.stability_selection(
        features, gains, table.FEATURE_COLUMNS, stability.StabilitySettings(n_boot=30, seed=10)
    )
    assert not c.path.equals(a.path)


def test_pure_noise_falls_back_to_strict_core_and_small_n_truncates() -> None:
    features, gains = make_cells(15, seed=4, coefs={}, noise=0.1)
    res = stability.stability_selection(
        features, gains, table.FEATURE_COLUMNS, stability.StabilitySettings(n_boot=50, threshold=0.95)
    )
    assert res.basis == "strict_core"
    assert res.compact == compare.STRICT_CORE  # 15 cells: (15 - 1) // 4 = 3 features allowed
    assert res.stability.filter(pl.col("in_compact"))["feature"].to_list() == [
        c for c in table.FEATURE_COLUMNS if c in compare.STRICT_CORE
    ]
    # 5 cells allow 1 feature: the most stable core member
    small_f, small_g = make_cells(5, seed=5, coefs={}, noise=0.1)
    res = stability.stability_selection(
        small_f, small_g, table.FEATURE_COLUMNS, stability.StabilitySettings(n_boot=20, threshold=0.99)
    )
    assert res.basis == "strict_core" and len(res.compact) == 1 and res.compact[0] in compare.STRICT_CORE
    ols, _ = stability.fit_ols(small_f, small_g, res.compact, res.basis)
    assert ols.height == 2 and ols["df_resid"][0] == 3.0


def test_constant_feature_never_selected() -> None:
    features, gains = make_cells(20, seed=6, coefs=TRUTH)
    features = features.with_columns(pl.lit(0.5).alias("truncation_rate"))
    res = stability.stability_selection(
        features, gains, table.FEATURE_COLUMNS, stability.StabilitySettings(n_boot=20)
    )
    assert res.stability.filter(pl.col("feature") == "truncation_rate")["max_freq"][0] == 0.0


def test_settings_from_config() -> None:
    cfg = complete_block("fit", {"seed": 4, "stability": {"n_boot": 7, "threshold": 0.7}})
    s = stability.StabilitySettings.from_config(cfg)
    assert (s.n_boot, s.threshold, s.seed) == (7, 0.7, 4)
    # the dataclass defaults (for library callers) are the config schema's defaults
    assert stability.StabilitySettings.from_config(complete_block("fit")) == stability.StabilitySettings()
    with pytest.raises(ValueError, match="threshold"):
        features, gains = make_cells(6, seed=1, coefs=TRUTH)
        stability.stability_selection(features, gains, settings=stability.StabilitySettings(threshold=0.0))


def test_write_text_atomic(tmp_path) -> None:
    p = write_text_atomic("hello\n", tmp_path / "sub" / "x.txt")
    assert p.read_text() == "hello\n"
    assert [q.name for q in p.parent.iterdir()] == ["x.txt"]


def test_complementary_halves_are_disjoint_without_replacement() -> None:
    halves = stability.complementary_halves(11, n_pairs=40, seed=1)
    assert halves.shape == (80, 5)
    for b in range(40):
        a, c = halves[2 * b], halves[2 * b + 1]
        assert len(set(a.tolist())) == 5 and len(set(c.tolist())) == 5  # no repeats
        assert not set(a.tolist()) & set(c.tolist())  # complementary
    assert len({tuple(h) for h in halves.tolist()}) > 60
    # every cell is left out of a pair about 1/11 of the time (n odd)
    out = [set(range(11)) - set(halves[2 * b]) - set(halves[2 * b + 1]) for b in range(40)]
    assert all(len(o) == 1 for o in out)


def test_union_frequencies_match_an_independent_lasso_per_penalty() -> None:
    from sklearn.linear_model import Lasso

    features, gains = make_cells(12, seed=6, coefs=TRUTH, noise=0.05)
    cols = ["coverage", "agreement_spread", "length_var", "pass1", "answer_entropy"]
    settings = stability.StabilitySettings(n_boot=6, seed=2, n_lambdas=8, max_selected=2)
    res = stability.stability_selection(features, gains, cols, settings)
    cells = table.cell_table(features, gains)
    X = cells.select(cols).to_numpy()
    y = cells["gain"].to_numpy()
    lambdas = res.path.filter(pl.col("feature") == cols[0])["lambda"].to_numpy()
    halves = stability.complementary_halves(12, 6, 2)
    sel = np.zeros((halves.shape[0], len(cols), lambdas.size), dtype=bool)
    for h, idx in enumerate(halves):
        Xb = X[idx]
        Zb = (Xb - Xb.mean(axis=0)) / Xb.std(axis=0)
        yb = y[idx] - y[idx].mean()
        for li, lam in enumerate(lambdas):
            m = Lasso(alpha=lam, fit_intercept=False, max_iter=100_000, tol=1e-10).fit(Zb, yb)
            sel[h, :, li] = np.abs(m.coef_) > 1e-8
    union = np.logical_or.accumulate(sel, axis=2)
    mean_union = union.sum(axis=1).mean(axis=0)
    adm = np.cumprod(mean_union <= 2 + 1e-12).astype(bool)
    last = int(np.flatnonzero(adm)[-1])
    want = union[:, :, last].mean(axis=0)
    got = res.stability["max_freq"].to_numpy()
    np.testing.assert_allclose(got, want, atol=1.0 / halves.shape[0] + 1e-12)  # one boundary flip at most
    assert res.stability["q_hat"][0] == pytest.approx(mean_union[last], abs=0.2)
    assert res.stability["half_size"][0] == 6
    p = len(cols)
    assert res.stability["ev_bound"][0] == pytest.approx(res.stability["q_hat"][0] ** 2 / ((2 * 0.6 - 1) * p))


def test_bound_vacuous_flag() -> None:
    assert stability.vacuous(1.2, 0) and stability.vacuous(2.0, 2) and stability.vacuous(float("nan"), 3)
    assert not stability.vacuous(0.4, 0) and not stability.vacuous(1.5, 2)
    features, gains = make_cells(15, seed=4, coefs={}, noise=0.1)
    res = stability.stability_selection(features, gains, table.FEATURE_COLUMNS)
    r = res.stability.row(0, named=True)
    assert r["bound_vacuous"] == stability.vacuous(r["ev_bound"], int(res.stability["stable"].sum()))


def test_fewer_than_six_cells_declare_nothing_stable() -> None:
    features, gains = make_cells(5, seed=5, coefs=TRUTH, noise=0.01)
    res = stability.stability_selection(features, gains, table.FEATURE_COLUMNS)
    assert not res.stability["stable"].any() and res.basis == "strict_core"
