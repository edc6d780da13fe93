"""Snakemake adapter: finite-sample bound of the compact predictor and sample-size advice."""

import polars as pl

from bongain.fit.concentration import ConcentrationSettings, concentration_tables
from bongain.fit.table import cell_table
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "concentration")
features = pl.concat([read_parquet(p, "features") for p in sm.input.features])
gains = pl.concat([read_parquet(p, "gains") for p in sm.input.gains])
screened = [read_parquet(p, "features") for p in sm.input.screen_features]
conc, terms, size = concentration_tables(
    features,
    cell_table(features, gains).select(["model", "method", "task", "gain"]),
    read_parquet(sm.input.ols, "fit_ols"),
    sm.params.max_tokens,
    ConcentrationSettings.from_config(sm.params.fit),
    screened=pl.concat(screened) if screened else None,
)
write_parquet_atomic(conc, sm.output.concentration, "fit_concentration")
write_parquet_atomic(terms, sm.output.terms, "fit_concentration_terms")
write_parquet_atomic(size, sm.output.sample_size, "fit_sample_size")
log.info("concentration:\n%s", conc)
log.info("sample size:\n%s", size)
