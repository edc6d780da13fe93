"""Snakemake adapter: cross-cell ridge fit, predictor comparison, gain-curve intervals, screening."""

import polars as pl

from bongain.fit.curve import DEFAULT_INTERVAL_LEVEL, predict_curves
from bongain.fit.ridge import FEATURE_COLUMNS, ComparisonSettings, cell_table, compare_predictors, run_fit
from bongain.fit.screening import screening_table
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "fit")
cfg = sm.params.fit or {}
features = pl.concat([read_parquet(p, "features") for p in sm.input.features])
gains = pl.concat([read_parquet(p, "gains") for p in sm.input.gains])
screened = [read_parquet(p, "features") for p in sm.input.screen_features]
cols = list(sm.params.features or FEATURE_COLUMNS)
level = float(cfg.get("interval_level", DEFAULT_INTERVAL_LEVEL))

predictions, metrics, coefficients = run_fit(features, gains, feature_cols=cols)
settings = ComparisonSettings(
    n_boot=int(cfg.get("n_boot", ComparisonSettings.n_boot)),
    ci_level=float(cfg.get("ci_level", ComparisonSettings.ci_level)),
    seed=int(cfg.get("seed", ComparisonSettings.seed)),
)
comparison, heldout = compare_predictors(features, gains, cols, settings=settings)
screen_df = pl.concat(screened) if screened else None
curves = predict_curves(features, gains, cols, screened=screen_df, level=level)
if screen_df is None:
    screen_df = features.clear()
screen = screening_table(
    screen_df,
    curves.screened_pred[:, -1],
    curves.screened_lo[:, -1],
    curves.screened_hi[:, -1],
    level,
    cell_table(features, gains)["gain"].to_numpy(),
    sm.params.sizes,
)
for df, name in (
    (predictions, "predictions"),
    (metrics, "metrics"),
    (coefficients, "coefficients"),
    (comparison, "comparison"),
    (heldout, "heldout"),
    (curves.curve, "curve"),
    (curves.coverage, "curve_coverage"),
    (screen, "screen"),
):
    write_parquet_atomic(df, sm.output[name], f"fit_{name}")
log.info("fit metrics:\n%s", metrics)
log.info("comparison:\n%s", comparison)
log.info("curve coverage:\n%s", curves.coverage)
log.info("screened cells:\n%s", screen)
