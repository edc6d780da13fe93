"""Snakemake adapter: cross-cell ridge fit, predictor comparison (oracle gap and every reward model's
gain), per-strategy fit, reward-model summary and agreement, gain-curve intervals, screening."""

import polars as pl

from bongain.fit.compare import ComparisonSettings, compare_predictors
from bongain.fit.curve import predict_curves
from bongain.fit.reward_models import rm_agreement, rm_summary
from bongain.fit.ridge import run_fit
from bongain.fit.screening import screening_table
from bongain.fit.strategies import strategy_fit
from bongain.fit.table import (
    FEATURE_COLUMNS,
    cell_table,
    check_entropy_kinds,
    comparison_targets,
    gains_by_rm,
    make_target,
)
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "fit")
cfg = sm.params.fit
features = pl.concat([read_parquet(p, "features") for p in sm.input.features])
by_rm = gains_by_rm(pl.concat([read_parquet(p, "gains") for p in sm.input.gains]), sm.params.rms)
gains = by_rm[sm.params.primary]  # the single-target stages: fit.reward_model (default the first)
screened = [read_parquet(p, "features") for p in sm.input.screen_features]
check_entropy_kinds(pl.concat([features, *screened]), cfg["allow_mixed_entropy"])
cols = list(cfg["features"] or FEATURE_COLUMNS)
level = cfg["interval_level"]
target = cfg["target"]  # which strategy's gain is predicted (default bon)
fit_target = make_target(target, sm.params.primary)
families = dict(sm.params.families)

predictions, metrics, coefficients = run_fit(features, gains, feature_cols=cols, target=target)
settings = ComparisonSettings(
    n_boot=cfg["n_boot"], ci_level=cfg["ci_level"], seed=cfg["seed"], n_perm=cfg["n_perm"]
)
comparison, heldout = compare_predictors(
    features,
    by_rm,
    cols,
    settings=settings,
    families=families,
    targets=comparison_targets(target, sm.params.rms),
    fit_target=fit_target,
)
strategy = strategy_fit(features, by_rm, cols, settings=settings, families=families, fit_target=fit_target)
summary = rm_summary(features, by_rm, settings, families)
agreement = rm_agreement(features, by_rm, settings, families)
screen_df = pl.concat(screened) if screened else None
curves = predict_curves(features, gains, cols, screened=screen_df, level=level, target=target)
if screen_df is None:
    screen_df = features.clear()
screen = screening_table(
    screen_df,
    curves.screened_pred[:, -1],
    curves.screened_lo[:, -1],
    curves.screened_hi[:, -1],
    level,
    cell_table(features, gains, target)["gain"].to_numpy(),
    sm.params.sizes,
)
for df, name in (
    (predictions, "predictions"),
    (metrics, "metrics"),
    (coefficients, "coefficients"),
    (comparison, "comparison"),
    (heldout, "heldout"),
    (strategy, "strategy"),
    (summary, "rm_summary"),
    (agreement, "rm_agreement"),
    (curves.curve, "curve"),
    (curves.coverage, "curve_coverage"),
    (screen, "screen"),
):
    write_parquet_atomic(df, sm.output[name], f"fit_{name}")  # rm_summary -> fit_rm_summary, ...
log.info("fit metrics:\n%s", metrics)
log.info("comparison:\n%s", comparison)
log.info("per-strategy fit:\n%s", strategy)
log.info("reward models:\n%s\nagreement:\n%s", summary, agreement)
log.info("curve coverage:\n%s", curves.coverage)
log.info("screened cells:\n%s", screen)
