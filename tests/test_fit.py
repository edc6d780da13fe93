from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from bongain.fit import compare, curve, ridge, screening, table
from bongain.io import conform
from bongain.schemas import ALL, FEATURES

N_SAMPLES = 4


def complete(df: pl.DataFrame, schema: str) -> pl.DataFrame:
    """Add the schema's optional columns a fixture does not set, then conform.

    ``x_lo`` / ``x_hi`` (bootstrap CI columns) default to ``x``; other floats to NaN (``*_se``: 0),
    integers to 0 (``n_boot``), ``ci_level`` to 0.95.
    """
    add = []
    for col, (dtype, _) in ALL[schema].columns.items():
        if col in df.columns:
            continue
        base = col.rsplit("_", 1)[0]
        if col.endswith(("_lo", "_hi")) and base in df.columns:
            add.append(pl.col(base).cast(pl.Float64).alias(col))
        elif base in df.columns and col.endswith("_se"):
            add.append(pl.lit(0.0).alias(col))
        elif col == "ci_level":
            add.append(pl.lit(0.95).alias(col))
        elif col == "entropy_kind":
            add.append(pl.lit("exact").alias(col))
        elif dtype == pl.Float64:
            src = col.replace("wmaj", "maj")
            add.append(pl.col(src).alias(col) if src in df.columns else pl.lit(float("nan")).alias(col))
        else:
            add.append(pl.lit(0).cast(dtype).alias(col))
    return conform(df.with_columns(add) if add else df, schema)


def make_cells(n_cells: int, seed: int = 0, noise: float = 0.005) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Synthetic cells: gain = 0.3*coverage - 0.2*agreement_mean + noise; pass1 is pure noise."""
    rng = np.random.default_rng(seed)
    cols = {c: rng.uniform(0.0, 1.0, n_cells) for c in table.FEATURE_COLUMNS}
    gain = 0.3 * cols["coverage"] - 0.2 * cols["agreement_mean"] + rng.normal(0.0, noise, n_cells)
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
    return complete(pl.DataFrame(rows), "gains")


def test_feature_columns_are_the_float_feature_columns_in_schema_order() -> None:
    expected = [
        c
        for c, (dtype, _) in FEATURES.columns.items()
        if dtype == pl.Float64 and not c.endswith(("_lo", "_hi")) and c != "ci_level"
    ]
    assert expected == table.FEATURE_COLUMNS


def test_loco_recovers_linear_signal_and_beats_noise_baseline() -> None:
    features, gains = make_cells(20)
    preds, mets, coefs = ridge.run_fit(features, gains)
    m = {r["predictor"]: r for r in mets.iter_rows(named=True)}
    assert m["ridge"]["n_cells"] == 20
    assert m["ridge"]["spearman"] > 0.9
    assert m["ridge"]["spearman"] > m["baseline"]["spearman"]
    assert m["ridge"]["mae"] < m["baseline"]["mae"]
    ridge_coef = {
        r["feature"]: r["coef"] for r in coefs.filter(pl.col("predictor") == "ridge").iter_rows(named=True)
    }
    assert ridge_coef["coverage"] > 0 > ridge_coef["agreement_mean"]
    assert abs(ridge_coef["coverage"]) > abs(ridge_coef["pass1"])
    assert preds["model"].to_list() == sorted(preds["model"].to_list())


def test_fold_isolation_held_out_gain_does_not_change_its_prediction() -> None:
    features, gains = make_cells(10, seed=1)
    before = ridge.leave_one_cell_out(features, gains, table.FEATURE_COLUMNS)
    target = "m03"
    perturbed = gains.with_columns(
        pl.when(pl.col("model") == target).then(pl.col("gain") + 5.0).otherwise(pl.col("gain")).alias("gain")
    )
    after = ridge.leave_one_cell_out(features, perturbed, table.FEATURE_COLUMNS)
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
    # Change the held-out cell's features: its prediction must move (its features are used) and must
    # equal the fit on the other cells, which did not change, applied to the new features; every other
    # cell's prediction changes too, since cell 0 is in their training sets.
    features, gains = make_cells(8, seed=2)
    cells = table.cell_table(features, gains)
    X = cells.select(table.FEATURE_COLUMNS).to_numpy()
    y = cells["gain"].to_numpy()
    before = ridge.leave_one_cell_out(features, gains, table.FEATURE_COLUMNS)["pred_ridge"].to_numpy()
    first = cells.row(0, named=True)
    shifted = {c: first[c] + 3.0 * X[:, j].std() for j, c in enumerate(table.FEATURE_COLUMNS)}
    changed = features.with_columns(
        [
            pl.when(
                (pl.col("model") == first["model"])
                & (pl.col("method") == first["method"])
                & (pl.col("task") == first["task"])
            )
            .then(pl.lit(v))
            .otherwise(pl.col(c))
            .alias(c)
            for c, v in shifted.items()
        ]
    )
    after = ridge.leave_one_cell_out(changed, gains, table.FEATURE_COLUMNS)["pred_ridge"].to_numpy()
    X2 = table.cell_table(changed, gains).select(table.FEATURE_COLUMNS).to_numpy()
    assert np.abs(X2[0] - X[0]).min() > 0  # the held-out cell's features really changed
    model = ridge.fit_ridge(X[1:], y[1:])  # the fit without cell 0, on unchanged cells
    assert after[0] == pytest.approx(model.predict(X2[:1])[0], abs=1e-12)
    assert abs(after[0] - before[0]) > 1e-6
    assert not np.allclose(after[1:], before[1:])


def test_constant_feature_column_is_dropped_not_fatal() -> None:
    features, gains = make_cells(8, seed=3)
    features = features.with_columns(
        pl.lit(0.25).alias("truncation_rate"), pl.lit(0.0).alias("ungradable_rate")
    )
    preds, mets, coefs = ridge.run_fit(features, gains)
    assert np.all(np.isfinite(preds["pred_ridge"].to_numpy()))
    ridge_coefs = coefs.filter(pl.col("predictor") == "ridge")
    dropped = ridge_coefs.filter(pl.col("coef").is_nan())["feature"].to_list()
    assert dropped == ["truncation_rate", "ungradable_rate"]
    assert mets.height == 2


def test_constant_only_in_training_fold_and_all_constant() -> None:
    # A column constant in every training fold but one: never crashes.
    X = np.column_stack([np.r_[np.zeros(5), 1.0], np.arange(6.0)])
    y = np.arange(6.0) * 0.1
    pred = ridge.loco_predict(X, y)
    assert np.all(np.isfinite(pred))
    # No usable column at all: predict the training mean, alpha NaN.
    m = ridge.fit_ridge(np.ones((4, 2)), np.array([0.0, 1.0, 2.0, 3.0]))
    assert math.isnan(m.alpha)
    assert m.predict(np.array([[5.0, 7.0]]))[0] == pytest.approx(1.5)


def test_fit_ridge_standardised_scale_and_intercept() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 2)) * np.array([100.0, 0.01]) + np.array([5.0, -3.0])
    y = 2.0 * (X[:, 0] - X[:, 0].mean()) / X[:, 0].std() + 0.7
    m = ridge.fit_ridge(X, y)
    assert m.intercept == pytest.approx(0.7)
    assert m.alpha in set(ridge.DEFAULT_ALPHAS.tolist())
    assert m.coef[0] == pytest.approx(2.0, rel=0.05)
    assert abs(m.coef[1]) < 0.1
    np.testing.assert_allclose(m.mean, X.mean(axis=0))
    np.testing.assert_allclose(m.scale, X.std(axis=0))


def test_output_schemas_conform() -> None:
    features, gains = make_cells(6, seed=5)
    preds, mets, coefs = ridge.run_fit(features, gains)
    for df, name in ((preds, "fit_predictions"), (mets, "fit_metrics"), (coefs, "fit_coefficients")):
        assert conform(df, name).equals(df)
    assert preds.height == 6
    assert mets["predictor"].to_list() == ["ridge", "baseline"]
    assert coefs.height == len(table.FEATURE_COLUMNS) + 1 + 2
    assert coefs.filter(pl.col("predictor") == "baseline")["feature"].to_list() == ["pass1", "(intercept)"]


def test_deterministic() -> None:
    features, gains = make_cells(7, seed=6)
    a = ridge.run_fit(features, gains)
    b = ridge.run_fit(features.reverse(), gains.reverse())
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
    mets = ridge.metrics(conform(preds, "fit_predictions"))
    assert conform(mets, "fit_metrics").equals(mets)
    ridge_row = mets.filter(pl.col("predictor") == "ridge").row(0, named=True)
    g = np.array(preds["gain"])
    p = np.array(preds["pred_ridge"])
    assert ridge_row["n_cells"] == 5
    assert ridge_row["spearman"] == pytest.approx(stats.spearmanr(p, g).statistic)
    assert ridge_row["kendall"] == pytest.approx(stats.kendalltau(p, g, variant="b").statistic)
    assert ridge_row["mae"] == pytest.approx(np.mean(np.abs(p - g)))
    assert ridge_row["mae"] == pytest.approx((0.02 + 0.05 + 0.05 + 0.05 + 0.10) / 5)
    base = mets.filter(pl.col("predictor") == "baseline").row(0, named=True)
    assert math.isnan(base["spearman"]) and math.isnan(base["kendall"])  # constant predictions
    assert base["mae"] == pytest.approx(np.mean(np.abs(0.2 - g)))


def test_too_few_cells_raises() -> None:
    features, gains = make_cells(2)
    with pytest.raises(ValueError, match="at least 3 cells"):
        ridge.run_fit(features, gains)


def test_cell_without_gains_raises() -> None:
    features, gains = make_cells(4)
    with pytest.raises(ValueError, match="no gains"):
        ridge.run_fit(features, gains.filter(pl.col("model") != "m01"))


def test_target_taken_from_k_equals_n() -> None:
    features, gains = make_cells(4, seed=7)
    cells = table.cell_table(features, gains)
    expected = gains.filter(pl.col("k") == N_SAMPLES).sort("model")["gain"].to_list()
    assert cells["gain"].to_list() == expected


def test_gain_must_be_constant_within_a_cell() -> None:
    features, gains = make_cells(4, seed=8)
    bad = gains.with_columns(
        pl.when((pl.col("model") == "m02") & (pl.col("k") == 1))
        .then(9.0)
        .otherwise(pl.col("gain"))
        .alias("gain")
    )
    with pytest.raises(ValueError, match="differs"):
        ridge.run_fit(features, bad)


# --------------------------------------------------------------------------------------------------
# grouped schemes, nested CV, bootstrap CIs, predictor comparison


def make_grid_cells(
    n_methods: int = 3,
    n_tasks: int = 5,
    seed: int = 10,
    noise: float = 0.01,
    models: tuple[str, ...] = ("m",),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cells on a model x method x task grid; gain = 0.3*coverage - 0.2*agreement_mean + noise."""
    rng = np.random.default_rng(seed)
    keys = [(m, f"me{i}", f"t{j}") for m in models for i in range(n_methods) for j in range(n_tasks)]
    n = len(keys)
    cols = {c: rng.uniform(0.0, 1.0, n) for c in table.FEATURE_COLUMNS}
    gain = 0.3 * cols["coverage"] - 0.2 * cols["agreement_mean"] + rng.normal(0.0, noise, n)
    base = {
        "model": [k[0] for k in keys],
        "method": [k[1] for k in keys],
        "task": [k[2] for k in keys],
    }
    features = complete(
        pl.DataFrame({**base, "n_prompts": [50] * n, "n_samples": [N_SAMPLES] * n, **cols}), "features"
    )
    rows = []
    for (m, me, t), g in zip(keys, gain, strict=True):
        for k in range(1, N_SAMPLES + 1):
            rows.append(
                {
                    "model": m,
                    "method": me,
                    "task": t,
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
    return features, complete(pl.DataFrame(rows), "gains")


@pytest.mark.parametrize("scheme", list(compare.SCHEMES))
def test_scheme_folds_partition_and_never_leak(scheme: str) -> None:
    features, gains = make_grid_cells(models=("a", "b"))
    cells = table.cell_table(features, gains)
    folds = compare.scheme_folds(cells, scheme)
    assert folds is not None
    held = np.concatenate([idx for _, idx in folds])
    assert sorted(held.tolist()) == list(range(cells.height))  # a partition of the cells
    key = compare.SCHEMES[scheme]
    for label, idx in folds:
        train = np.setdiff1d(np.arange(cells.height), idx)
        if key is None:
            assert idx.size == 1
        else:
            assert set(cells[key].gather(idx).to_list()) == {label}
            assert label not in set(cells[key].gather(train).to_list())


def test_leave_one_model_out_needs_two_models() -> None:
    features, gains = make_grid_cells()
    cells = table.cell_table(features, gains)
    assert compare.scheme_folds(cells, "leave_one_model_out") is None
    comp, _ = compare.compare_predictors(features, gains, ["coverage", "agreement_mean"])
    assert "leave_one_model_out" not in set(comp["scheme"].to_list())
    assert set(comp["scheme"].to_list()) == {
        "raw",
        "leave_one_cell_out",
        "leave_one_task_out",
        "leave_one_method_out",
    }


def test_nested_cv_alpha_and_prediction_ignore_the_held_out_group() -> None:
    features, gains = make_grid_cells(seed=11)
    cells = table.cell_table(features, gains)
    X = cells.select(table.FEATURE_COLUMNS).to_numpy()
    y = cells["gain"].to_numpy()
    for scheme in ("leave_one_cell_out", "leave_one_task_out"):
        folds = compare.scheme_folds(cells, scheme)
        assert folds is not None
        pred, alpha = compare.grouped_predict(X, y, folds)
        _, idx = folds[1]
        y2 = y.copy()
        y2[idx] = y2[idx] * -50.0 + 3.0  # wild change of the held-out group's targets
        pred2, alpha2 = compare.grouped_predict(X, y2, folds)
        np.testing.assert_array_equal(pred2[idx], pred[idx])
        np.testing.assert_array_equal(alpha2[idx], alpha[idx])
        # the penalty of that fold is what inner LOO CV picks on the training cells alone
        train = np.setdiff1d(np.arange(y.size), idx)
        assert alpha[idx[0]] == ridge.fit_ridge(X[train], y[train]).alpha
        others = np.setdiff1d(np.arange(y.size), idx)
        assert not np.allclose(pred2[others], pred[others])


def test_batch_metrics_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(12)
    pred = np.round(rng.normal(size=9), 1)
    actual = np.round(pred + rng.normal(0, 0.5, 9), 1)
    idx = compare.bootstrap_indices(9, 40, seed=3)
    rho, tau, mae = compare.batch_metrics(pred[idx], actual[idx])
    for b in range(40):
        r, t, m = ridge.rank_metrics(pred[idx[b]], actual[idx[b]])
        for got, want in ((rho[b], r), (tau[b], t), (mae[b], m)):
            if math.isnan(want):
                assert math.isnan(got)
            else:
                assert got == pytest.approx(want, abs=1e-12)
    # constant resample -> NaN correlations
    rho, tau, _ = compare.batch_metrics(np.ones((1, 5)), np.arange(5.0)[None, :])
    assert math.isnan(rho[0]) and math.isnan(tau[0])


def test_compare_predictors_table_cis_and_determinism() -> None:
    features, gains = make_grid_cells(seed=13)
    settings = compare.ComparisonSettings(n_boot=300, ci_level=0.9, seed=5)
    cols = ["coverage", "agreement_mean", "pass1"]
    comp, held = compare.compare_predictors(features, gains, cols, settings=settings)
    assert conform(comp, "fit_comparison").equals(comp)
    assert conform(held, "fit_heldout").equals(held)
    assert comp.height == 2 + 3 * 6  # two no-fit rows; 3 schemes x 6 predictors
    assert held.height == 3 * 6 * 15
    assert comp.head(2)["scheme"].to_list() == ["raw", "raw"]
    assert comp.head(2)["predictor"].to_list() == ["baseline", "gap"]
    comp_fit = comp.filter(pl.col("scheme") != "raw")
    assert comp_fit["predictor"].unique(maintain_order=True).to_list() == [
        "baseline",
        "ridge",
        "gap",
        "all",
        "core",
        "core_entropy",
    ]
    for r in comp_fit.iter_rows(named=True):
        for m in ("spearman", "kendall", "mae"):
            assert r[f"{m}_lo"] <= r[f"{m}_hi"]
        assert r["n_boot"] == 300 and r["ci_level"] == 0.9
    loco = {
        r["predictor"]: r for r in comp.filter(pl.col("scheme") == "leave_one_cell_out").iter_rows(named=True)
    }
    assert loco["ridge"]["spearman"] > 0.9 and loco["ridge"]["spearman_lo"] > 0.5
    assert loco["ridge"]["mae"] < loco["baseline"]["mae"]
    # LOCO rows of the comparison agree with leave_one_cell_out()
    preds = ridge.leave_one_cell_out(features, gains, cols)
    h = held.filter((pl.col("scheme") == "leave_one_cell_out") & (pl.col("predictor") == "ridge"))
    np.testing.assert_allclose(h["pred"].to_numpy(), preds["pred_ridge"].to_numpy())
    again = compare.compare_predictors(features.reverse(), gains.reverse(), cols, settings=settings)
    assert again[0].equals(comp) and again[1].equals(held)


# --------------------------------------------------------------------------------------------------
# gain curves with jackknife+ intervals, screening


def test_jackknife_plus_coverage_near_nominal_over_repeated_draws() -> None:
    # Mean predictor: mu_{-i} = mean of the other y; exchangeable data -> coverage >= 1 - 2 alpha, ~1 - alpha.
    rng = np.random.default_rng(14)
    level, n, draws = 0.8, 19, 3000
    y = rng.standard_t(df=5, size=(draws, n + 1))
    train, test = y[:, :n], y[:, n]
    loo = (train.sum(axis=1, keepdims=True) - train) / (n - 1)
    resid = np.abs(train - loo)
    lo, hi = curve.jackknife_plus(loo.T, resid.T, level)
    cov = np.mean((lo <= test) & (test <= hi))
    assert 0.76 <= cov <= 0.86
    # too few cells for the level: unbounded interval
    lo, hi = curve.jackknife_plus(np.zeros((3, 1)), np.ones((3, 1)), 0.9)
    assert lo[0] == -np.inf and hi[0] == np.inf


@pytest.mark.slow
def test_predict_curves_held_out_coverage_on_independent_draws() -> None:
    # One held-out cell at k = N per independent dataset: independent Bernoulli draws, so the tolerance
    # is statistical. Nominal 0.8; jackknife+ guarantees >= 0.6 and is close to 0.8 in practice.
    # 150 draws: SE <= 0.033, band = nominal -0.12 / +0.1 (>= 3 SE each side).
    covered = []
    for seed in range(150):
        features, gains = make_grid_cells(n_methods=3, n_tasks=3, seed=1000 + seed, noise=0.05)
        res = curve.predict_curves(features, gains, ["coverage", "agreement_mean"], level=0.8)
        row = res.curve.filter(
            (pl.col("k") == N_SAMPLES) & (pl.col("method") == "me1") & (pl.col("task") == "t1")
        )
        covered.append(bool(row["covered"][0]))
    assert 0.68 <= np.mean(covered) <= 0.9


def test_curve_coverage_rows_count_each_cell_once() -> None:
    features, gains = make_grid_cells(n_methods=3, n_tasks=4, seed=8, noise=0.05)
    res = curve.predict_curves(features, gains, ["coverage", "agreement_mean"], level=0.8)
    ev = res.curve.filter((pl.col("status") == "evaluated") & (pl.col("k") >= 2))
    per_cell = ev.group_by(["method", "task"]).agg(
        pl.col("covered").mean().alias("f"), pl.col("covered").all()
    )
    cov = {r["scope"]: r for r in res.coverage.iter_rows(named=True) if r["scope"] != "k"}
    assert cov["per_cell_k_ge_2"]["n_cells"] == 12 and cov["whole_curve"]["n_cells"] == 12
    assert cov["per_cell_k_ge_2"]["coverage"] == pytest.approx(per_cell["f"].mean(), abs=1e-12)
    assert cov["whole_curve"]["coverage"] == pytest.approx(per_cell["covered"].mean(), abs=1e-12)
    assert cov["whole_curve"]["coverage"] <= cov["per_cell_k_ge_2"]["coverage"]


def test_predict_curves_schema_and_isolation() -> None:
    # schema, k = N matches the scalar LOCO ridge, and a cell's own target never enters its interval
    features, gains = make_grid_cells(n_methods=2, n_tasks=4, seed=7, noise=0.03)
    res = curve.predict_curves(features, gains, ["coverage", "agreement_mean"], level=0.8)
    assert conform(res.curve, "fit_curve").equals(res.curve)
    assert conform(res.coverage, "fit_curve_coverage").equals(res.coverage)
    assert res.coverage["scope"].to_list() == ["k"] * N_SAMPLES + ["per_cell_k_ge_2", "whole_curve"]
    last = res.curve.filter(pl.col("k") == N_SAMPLES)["pred"].to_numpy()
    scalar = ridge.leave_one_cell_out(features, gains, ["coverage", "agreement_mean"])["pred_ridge"]
    np.testing.assert_allclose(last, scalar.to_numpy(), rtol=1e-6, atol=1e-9)
    target = ("m", "me1", "t2")
    bumped = gains.with_columns(
        pl.when((pl.col("method") == target[1]) & (pl.col("task") == target[2]))
        .then(pl.col("bon_at_k") + 0.3 * (pl.col("k") - 1))
        .otherwise(pl.col("bon_at_k"))
        .alias("bon_at_k")
    )
    res2 = curve.predict_curves(features, bumped, ["coverage", "agreement_mean"], level=0.8)
    sel = (pl.col("method") == target[1]) & (pl.col("task") == target[2])
    a = res.curve.filter(sel).select("pred", "pred_lo", "pred_hi")
    b = res2.curve.filter(sel).select("pred", "pred_lo", "pred_hi")
    assert a.equals(b)


def test_screened_cells_ranked_with_intervals_and_cost() -> None:
    features, gains = make_grid_cells(n_methods=3, n_tasks=4, seed=21)
    cols = ["coverage", "agreement_mean"]
    scr = features.head(3).with_columns(
        pl.Series("task", ["s0", "s1", "s2"]),
        pl.Series("coverage", [0.9, 0.1, 0.5]),
        pl.Series("agreement_mean", [0.1, 0.9, 0.5]),
        pl.Series("length_mean", [10.0, 20.0, 4.0]),
    )
    res = curve.predict_curves(features, gains, cols, screened=scr, level=0.8)
    s = res.curve.filter(pl.col("status") == "screened")
    assert s.height == 3 * N_SAMPLES and s["gain_k"].null_count() == s.height
    screen = screening.screening_table(
        scr,
        res.screened_pred[:, -1],
        res.screened_lo[:, -1],
        res.screened_hi[:, -1],
        0.8,
        table.cell_table(features, gains)["gain"].to_numpy(),
        {"test": 16, "verifier_train": 8, "validation": 50, "exemplars": 4},
    )
    assert conform(screen, "fit_screen").equals(screen)
    assert screen["task"].to_list() == ["s0", "s2", "s1"]  # gain rises with coverage, falls with agreement
    assert screen["rank"].to_list() == [1, 2, 3]
    assert (screen["pred_lo"] <= screen["pred"]).all() and (screen["pred"] <= screen["pred_hi"]).all()
    row = screen.filter(pl.col("task") == "s0").row(0, named=True)
    assert row["avoided_prompts"] == 24
    assert row["avoided_verifier_calls"] == 24 * N_SAMPLES
    assert row["avoided_tokens"] == pytest.approx(10.0 * 24 * N_SAMPLES)


def test_split_cells_screen_list(repo) -> None:
    from bongain.config import Cell, ConfigError, load_config

    cfg = load_config(repo / "config" / "config.yaml")
    evaluated, screened = screening.split_cells(cfg)
    assert len(evaluated) >= 12 and isinstance(screened, list)
    cfg = {**cfg, "cells": [{"model": "smollm2-135m", "method": "base", "task": "add2d1d"}]}
    cfg["screen"] = [{"model": "smollm2-135m", "method": "base", "task": "deccmp"}]
    evaluated, screened = screening.split_cells(cfg)
    assert evaluated == [Cell("smollm2-135m", "base", "add2d1d")]
    assert screened == [Cell("smollm2-135m", "base", "deccmp")]
    cfg["screen"] = [{"model": "smollm2-135m", "method": "base", "task": "add2d1d"}]
    with pytest.raises(ConfigError, match=r"screen\.0'"):
        screening.split_cells(cfg)
    cfg["screen"] = [{"model": "smollm2-135m", "method": "nope", "task": "deccmp"}]
    with pytest.raises(ConfigError, match=r"screen\.0\.method"):
        screening.split_cells(cfg)


# --------------------------------------------------------------------------------------------------
# base-model families: the cell table's family column, leave-one-family-out


def test_cell_table_family_column_defaults_to_the_model() -> None:
    features, gains = make_grid_cells(n_methods=1, n_tasks=2, models=("a1", "a2", "b"))
    plain = table.cell_table(features, gains)
    assert plain["family"].to_list() == plain["model"].to_list()
    fam = table.cell_table(features, gains, families={"a1": "A", "a2": "A"})  # b not named: its own family
    assert fam["family"].to_list() == ["A", "A", "A", "A", "b", "b"]
    assert fam.drop("family").equals(plain.drop("family"))
    assert fam.columns[-1] == "family"


def test_two_families_of_three_models_give_two_family_folds_and_three_model_folds() -> None:
    from bongain.config import model_families

    config = {"models": {"a1": {"family": "A"}, "a2": {"family": "A"}, "b": {"family": "B"}}}
    features, gains = make_grid_cells(n_methods=2, n_tasks=2, models=("a1", "a2", "b"))
    cells = table.cell_table(features, gains, families=model_families(config))
    fam = compare.scheme_folds(cells, "leave_one_family_out")
    mod = compare.scheme_folds(cells, "leave_one_model_out")
    assert fam is not None and mod is not None
    assert [g for g, _ in fam] == ["A", "B"] and [g for g, _ in mod] == ["a1", "a2", "b"]
    assert [idx.size for _, idx in fam] == [8, 4]
    for label, idx in fam:  # a family fold holds out exactly that family's models, all their cells
        models = {m for m, f in config["models"].items() if f["family"] == label}
        assert set(cells["model"].gather(idx).to_list()) == models
        assert idx.size == sum(cells["model"].is_in(list(models)))
    assert compare.same_as(cells, "leave_one_family_out") is None


def test_family_folds_equal_to_model_folds_are_marked_and_copied_not_double_counted() -> None:
    features, gains = make_grid_cells(n_methods=2, n_tasks=3, models=("gemma", "smollm"), seed=3)
    families = {"gemma": "gemma-family", "smollm": "smollm-family"}
    cells = table.cell_table(features, gains, families=families)
    assert compare.same_as(cells, "leave_one_family_out") == "leave_one_model_out"
    assert compare.same_as(cells, "leave_one_model_out") is None
    settings = compare.ComparisonSettings(n_boot=40, n_perm=30)
    comp, held = compare.compare_predictors(
        features, gains, ["coverage"], settings=settings, families=families
    )
    fam = comp.filter(pl.col("scheme") == "leave_one_family_out")
    mod = comp.filter(pl.col("scheme") == "leave_one_model_out")
    assert fam.height == mod.height == 6
    assert set(fam["same_as"].to_list()) == {"leave_one_model_out"}
    assert comp.filter(pl.col("scheme") != "leave_one_family_out")["same_as"].null_count() == comp.height - 6
    metrics = ["predictor", "n_folds", "spearman", "kendall", "mae", "perm_p", "null_q95", "spearman_lo"]
    metrics += ["delta_trivial", "delta_trivial_lo"]
    assert fam.select(metrics).equals(mod.select(metrics))
    assert not fam["headline"].any()
    hf = held.filter(pl.col("scheme") == "leave_one_family_out")
    hm = held.filter(pl.col("scheme") == "leave_one_model_out")
    np.testing.assert_array_equal(hf["pred"].to_numpy(), hm["pred"].to_numpy())
    assert set(hf["fold"].to_list()) == set(families.values())
    # the headline ignores the copy: with 3 one-model families it is leave-one-model-out
    features3, gains3 = make_grid_cells(n_methods=1, n_tasks=3, models=("a", "b", "c"), seed=4)
    comp3, _ = compare.compare_predictors(features3, gains3, ["coverage"], settings=settings)
    head = comp3.filter(pl.col("headline"))
    assert head["scheme"].to_list() == ["leave_one_model_out"]


def test_family_scheme_is_fitted_with_its_own_rows_and_is_the_headline_with_three_families() -> None:
    models = ("a1", "a2", "b1", "b2", "c1", "c2")
    families = {m: m[0].upper() for m in models}
    features, gains = make_grid_cells(n_methods=1, n_tasks=2, models=models, seed=6)
    settings = compare.ComparisonSettings(n_boot=40, n_perm=40)
    comp, held = compare.compare_predictors(
        features, gains, ["coverage"], settings=settings, families=families
    )
    fam = comp.filter(pl.col("scheme") == "leave_one_family_out")
    assert fam.height == 6 and fam["same_as"].null_count() == 6
    assert set(fam["n_folds"].to_list()) == {3}
    assert all(np.isfinite(fam["perm_p"].to_numpy())) and all(np.isfinite(fam["null_q95"].to_numpy()))
    assert set(comp["null_kind"].to_list()) == {"grid-family"}
    head = comp.filter(pl.col("headline"))
    assert head.select("scheme", "predictor").rows() == [("leave_one_family_out", "ridge")]
    h = held.filter((pl.col("scheme") == "leave_one_family_out") & (pl.col("predictor") == "ridge"))
    assert h["fold"].to_list() == [families[m] for m in h["model"].to_list()]
    # two families: the scheme still has its rows (p-value, null q95) but is not the headline
    two = {m: ("A" if m[0] == "a" else "B") for m in models}
    comp2, _ = compare.compare_predictors(features, gains, ["coverage"], settings=settings, families=two)
    fam2 = comp2.filter(pl.col("scheme") == "leave_one_family_out")
    assert fam2.height == 6 and set(fam2["n_folds"].to_list()) == {2}
    assert all(np.isfinite(fam2["perm_p"].to_numpy()))
    assert comp2.filter(pl.col("headline"))["scheme"].to_list() == ["leave_one_model_out"]
    assert set(comp2["null_kind"].to_list()) == {"grid-family"}  # 2 + 4 models: within-family only


def test_fit_target_picks_the_strategy_gain_with_its_ci() -> None:
    features, gains = make_cells(20)
    rng = np.random.default_rng(3)
    other = rng.normal(0.1, 0.05, size=20)
    by_model = dict(zip(sorted(features["model"].unique()), other, strict=True))
    gains = gains.with_columns(
        gain_maj=pl.col("model").replace_strict(by_model, return_dtype=pl.Float64),
    ).with_columns(gain_maj_lo=pl.col("gain_maj") - 0.01, gain_maj_hi=pl.col("gain_maj") + 0.02)
    bon = table.cell_table(features, gains)
    maj = table.cell_table(features, gains, "maj")
    assert bon["gain"].equals(table.cell_table(features, gains, "bon")["gain"])
    np.testing.assert_allclose(maj["gain"], [by_model[m] for m in maj["model"]])
    np.testing.assert_allclose(maj["gain_hi"] - maj["gain_lo"], 0.03)
    preds, _, _ = ridge.run_fit(features, gains, target="maj")
    np.testing.assert_allclose(preds.sort("model")["gain"], maj.sort("model")["gain"])
    with pytest.raises(ValueError, match=r"fit\.target: unknown strategy .best."):
        table.cell_table(features, gains, "best")
    # a target a cell has no value for (selfcert without recorded self-certainty) is refused, naming it
    with pytest.raises(ValueError, match=r"gain_selfcert.*fit.target: selfcert"):
        table.cell_table(
            features, gains.with_columns(gain_selfcert=pl.lit(None, dtype=pl.Float64)), "selfcert"
        )
