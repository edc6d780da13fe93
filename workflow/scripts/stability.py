"""Snakemake adapter: complementary-pairs stability selection and the compact OLS model."""

import polars as pl

from bongain.fit.stability import StabilitySettings, fit_ols, stability_selection
from bongain.fit.table import FEATURE_COLUMNS, check_entropy_kinds
from bongain.io import read_parquet, write_parquet_atomic, write_text_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "stability")
features = pl.concat([read_parquet(p, "features") for p in sm.input.features])
gains = pl.concat([read_parquet(p, "gains") for p in sm.input.gains])
check_entropy_kinds(features, sm.params.fit["allow_mixed_entropy"])
settings = StabilitySettings.from_config(sm.params.fit)
target = sm.params.fit["target"]
result = stability_selection(features, gains, FEATURE_COLUMNS, settings, target=target)
ols, summary = fit_ols(features, gains, result.compact, result.basis, target=target)
write_parquet_atomic(result.stability, sm.output.stability, "fit_stability")
write_parquet_atomic(result.path, sm.output.path, "fit_stability_path")
write_parquet_atomic(ols, sm.output.ols, "fit_ols")
write_text_atomic(summary, sm.output.ols_summary)
log.info("stability:\n%s", result.stability)
log.info("compact model (%s): %s\n%s", result.basis, result.compact, summary)
