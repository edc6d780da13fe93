from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from bongain import fit
from bongain.io import conform
from bongain.schemas import FEATURES

N_SAMPLES = 4


def make_cells(n_cells: int, seed: int = 0, noise: float = 0.005) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Synthetic cells: gain = 0.3*coverage - 0.2*agreement_mean + noise; pass1 is pure noise."""
    rng = np.random.default_rng(seed)
    cols = {c: rng.uniform(0.0, 1.0, n_cells) for c in fit.FEATURE_COLUMNS}
    gain = 0.3 * cols["coverage"] - 0.2 * cols["agreement_mean"] + rng.normal(0.0, noise, n_cells)
    models = [f"m{i:02d}" for i in range(n_cells)]
    features = conform(
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
    return features, gains_for(models, gain)


def gains_for(models: list[str], gain: np.ndarray) -> pl.DataFrame:
    rows = []
    for m, g in zip(models, gain, strict=True):
        for k in range(1, N_SAMPLES + 1):
            rows.append(
                {
                    "model": m,
                    "method": "base",
                    "task": "gsm8k",
                    "n_prompts": 60,
                    "n_samples": N_SAMPLES,
                    "k": k,
                    "pass_at_k": 0.5,
                    "bon_at_k": 0.5 + float(g) * (k - 1) / (N_SAMPLES - 1),
                    "maj_at_k": 0.5,
                    "maj_at_k_se": 0.0,
                    "gain": float(g),
                }
            )
    return conform(pl.DataFrame(rows), "gains")


def test_feature_columns_are_the_float_feature_columns_in_schema_order() -> None:
    expected = [
        c
        for c, (dtype, _) in FEATURES.columns.items()
        if dtype == pl.Float64 and c not in {"n_prompts", "n_samples"}
    ]
    assert expected == fit.FEATURE_COLUMNS


def test_loco_recovers_linear_signal_and_beats_noise_baseline() -> None:
    features, gains = make_cells(20)
    preds, mets, coefs = fit.run_fit(features, gains)
    m = {r["predictor"]: r for r in mets.iter_rows(named=True)}
    assert m["ridge"]["n_cells"] == 20
    assert m["ridge"]["spearman"] > 0.9
    assert m["ridge"]["spearman"] > m["baseline"]["spearman"]
    assert m["ridge"]["mae"] < m["baseline"]["mae"]
    ridge = {
        r["feature"]: r["coef"] for r in coefs.filter(pl.col("predictor") == "ridge").iter_rows(named=True)
    }
    assert ridge["coverage"] > 0 > ridge["agreement_mean"]
    assert abs(ridge["coverage"]) > abs(ridge["pass1"])
    assert preds["model"].to_list() == sorted(preds["model"].to_list())


def test_fold_isolation_held_out_gain_does_not_change_its_prediction() -> None:
    features, gains = make_cells(10, seed=1)
    before = fit.leave_one_cell_out(features, gains, fit.FEATURE_COLUMNS)
    target = "m03"
    perturbed = gains.with_columns(
        pl.when(pl.col("model") == target).then(pl.col("gain") + 5.0).otherwise(pl.col("gain")).alias("gain")
    )
    after = fit.leave_one_cell_out(features, perturbed, fit.FEATURE_COLUMNS)
    b = before.filter(pl.col("model") == target).row(0, named=True)
    a = after.filter(pl.col("model") == target).row(0, named=True)
    assert a["gain"] == pytest.approx(b["gain"] + 5.0)
    assert a["pred_ridge"] == b["pred_ridge"]
    assert a["pred_baseline"] == b["pred_baseline"]
    # ... while the other cells' predictions do see the perturbed training target.
    others_b = before.filter(pl.col("model") != target)["pred_ridge"].to_numpy()
    others_a = after.filter(pl.col("model") != target)["pred_ridge"].to_numpy()
    assert not np.allclose(others_a, others_b)


def test_fold_isolation_held_out_features_only_enter_through_prediction() -> None:
    # Changing the held-out cell's features must not change the fitted model it is predicted with:
    # the prediction must equal the fit on the other cells applied to the new features.
    features, gains = make_cells(8, seed=2)
    table = fit.cell_table(features, gains)
    X = table.select(fit.FEATURE_COLUMNS).to_numpy()
    y = table["gain"].to_numpy()
    model = fit.fit_ridge(X[1:], y[1:])
    preds = fit.leave_one_cell_out(features, gains, fit.FEATURE_COLUMNS)
    assert preds["pred_ridge"][0] == pytest.approx(model.predict(X[:1])[0])


def test_constant_feature_column_is_dropped_not_fatal() -> None:
    features, gains = make_cells(8, seed=3)
    features = features.with_columns(
        pl.lit(0.25).alias("truncation_rate"), pl.lit(0.0).alias("ungradable_rate")
    )
    preds, mets, coefs = fit.run_fit(features, gains)
    assert np.all(np.isfinite(preds["pred_ridge"].to_numpy()))
    ridge = coefs.filter(pl.col("predictor") == "ridge")
    dropped = ridge.filter(pl.col("coef").is_nan())["feature"].to_list()
    assert dropped == ["truncation_rate", "ungradable_rate"]
    assert mets.height == 2


def test_constant_only_in_training_fold_and_all_constant() -> None:
    # A column constant in every training fold but one: never crashes.
    X = np.column_stack([np.r_[np.zeros(5), 1.0], np.arange(6.0)])
    y = np.arange(6.0) * 0.1
    pred = fit.loco_predict(X, y)
    assert np.all(np.isfinite(pred))
    # No usable column at all: predict the training mean, alpha NaN.
    m = fit.fit_ridge(np.ones((4, 2)), np.array([0.0, 1.0, 2.0, 3.0]))
    assert math.isnan(m.alpha)
    assert m.predict(np.array([[5.0, 7.0]]))[0] == pytest.approx(1.5)


def test_fit_ridge_standardised_scale_and_intercept() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 2)) * np.array([100.0, 0.01]) + np.array([5.0, -3.0])
    y = 2.0 * (X[:, 0] - X[:, 0].mean()) / X[:, 0].std() + 0.7
    m = fit.fit_ridge(X, y)
    assert m.intercept == pytest.approx(0.7)
    assert m.alpha in set(fit.DEFAULT_ALPHAS.tolist())
    assert m.coef[0] == pytest.approx(2.0, rel=0.05)
    assert abs(m.coef[1]) < 0.1
    np.testing.assert_allclose(m.mean, X.mean(axis=0))
    np.testing.assert_allclose(m.scale, X.std(axis=0))


def test_output_schemas_conform() -> None:
    features, gains = make_cells(6, seed=5)
    preds, mets, coefs = fit.run_fit(features, gains)
    for df, name in ((preds, "fit_predictions"), (mets, "fit_metrics"), (coefs, "fit_coefficients")):
        assert conform(df, name).equals(df)
    assert preds.height == 6
    assert mets["predictor"].to_list() == ["ridge", "baseline"]
    assert coefs.height == len(fit.FEATURE_COLUMNS) + 1 + 2
    assert coefs.filter(pl.col("predictor") == "baseline")["feature"].to_list() == ["pass1", "(intercept)"]


def test_deterministic() -> None:
    features, gains = make_cells(7, seed=6)
    a = fit.run_fit(features, gains)
    b = fit.run_fit(features.reverse(), gains.reverse())
    for x, y in zip(a, b, strict=True):
        assert x.equals(y)


def test_metrics_against_scipy_on_hand_made_table() -> None:
    preds = pl.DataFrame(
        {
            "model": ["a", "b", "c", "d", "e"],
            "method": ["x"] * 5,
            "task": ["t"] * 5,
            "gain": [0.10, 0.30, 0.20, 0.05, 0.40],
            "pred_ridge": [0.12, 0.25, 0.25, 0.00, 0.50],
            "pred_baseline": [0.2, 0.2, 0.2, 0.2, 0.2],
        }
    )
    mets = fit.metrics(conform(preds, "fit_predictions"))
    assert conform(mets, "fit_metrics").equals(mets)
    ridge = mets.filter(pl.col("predictor") == "ridge").row(0, named=True)
    g = np.array(preds["gain"])
    p = np.array(preds["pred_ridge"])
    assert ridge["n_cells"] == 5
    assert ridge["spearman"] == pytest.approx(stats.spearmanr(p, g).statistic)
    assert ridge["kendall"] == pytest.approx(stats.kendalltau(p, g, variant="b").statistic)
    assert ridge["mae"] == pytest.approx(np.mean(np.abs(p - g)))
    assert ridge["mae"] == pytest.approx((0.02 + 0.05 + 0.05 + 0.05 + 0.10) / 5)
    base = mets.filter(pl.col("predictor") == "baseline").row(0, named=True)
    assert math.isnan(base["spearman"]) and math.isnan(base["kendall"])  # constant predictions
    assert base["mae"] == pytest.approx(np.mean(np.abs(0.2 - g)))


def test_too_few_cells_raises() -> None:
    features, gains = make_cells(2)
    with pytest.raises(ValueError, match="at least 3 cells"):
        fit.run_fit(features, gains)


def test_cell_without_gains_raises() -> None:
    features, gains = make_cells(4)
    with pytest.raises(ValueError, match="no gains"):
        fit.run_fit(features, gains.filter(pl.col("model") != "m01"))


def test_target_taken_from_k_equals_n() -> None:
    features, gains = make_cells(4, seed=7)
    table = fit.cell_table(features, gains)
    expected = gains.filter(pl.col("k") == N_SAMPLES).sort("model")["gain"].to_list()
    assert table["gain"].to_list() == expected


def test_gain_must_be_constant_within_a_cell() -> None:
    features, gains = make_cells(4, seed=8)
    bad = gains.with_columns(
        pl.when((pl.col("model") == "m02") & (pl.col("k") == 1))
        .then(9.0)
        .otherwise(pl.col("gain"))
        .alias("gain")
    )
    with pytest.raises(ValueError, match="differs"):
        fit.run_fit(features, bad)
