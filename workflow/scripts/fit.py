"""Snakemake adapter: leave-one-cell-out ridge predictor of the gain across all cells."""

import polars as pl

from bongain.fit import run_fit
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "fit")
features = pl.concat([read_parquet(p, "features") for p in sm.input.features])
gains = pl.concat([read_parquet(p, "gains") for p in sm.input.gains])
predictions, metrics, coefficients = run_fit(features, gains, feature_cols=sm.params.features)
write_parquet_atomic(predictions, sm.output.predictions, "fit_predictions")
write_parquet_atomic(metrics, sm.output.metrics, "fit_metrics")
write_parquet_atomic(coefficients, sm.output.coefficients, "fit_coefficients")
log.info("fit metrics:\n%s", metrics)
