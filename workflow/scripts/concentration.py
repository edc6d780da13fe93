"""Snakemake adapter: finite-sample bound of the compact predictor and sample-size advice."""

import polars as pl

from bongain.fit.concentration import ConcentrationSettings, concentration_tables, worst_case_bound
from bongain.fit.sample_size import cell_data, sample_size_tables
from bongain.fit.table import cell_table, check_entropy_kinds
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "concentration")
features = pl.concat([read_parquet(p, "features") for p in sm.input.features])
gains = pl.concat([read_parquet(p, "gains") for p in sm.input.gains])
screened = [read_parquet(p, "features") for p in sm.input.screen_features]
check_entropy_kinds(pl.concat([features, *screened]), sm.params.fit["allow_mixed_entropy"])
ols = read_parquet(sm.input.ols, "fit_ols")
settings = ConcentrationSettings.from_config(sm.params.fit)
conc, terms = concentration_tables(
    features,
    cell_table(features, gains, sm.params.fit["target"]).select(["model", "method", "task", "gain"]),
    ols,
    sm.params.max_tokens,
    settings,
    screened=pl.concat(screened) if screened else None,
)
cells = [
    cell_data(tuple(key), read_parquet(s, "samples"), read_parquet(g, "grades"))
    for key, s, g in zip(sm.params.cells, sm.input.samples, sm.input.grades, strict=True)
]
size, check, _ = sample_size_tables(
    cells,
    ols,
    settings.n_prompts_grid,
    settings.n_samples_grid,
    worst_case_bound(features, ols, sm.params.max_tokens, settings),
    settings.delta,
    seed=sm.params.fit["seed"],
)
write_parquet_atomic(conc, sm.output.concentration, "fit_concentration")
write_parquet_atomic(terms, sm.output.terms, "fit_concentration_terms")
write_parquet_atomic(size, sm.output.sample_size, "fit_sample_size")
write_parquet_atomic(check, sm.output.sample_size_check, "fit_sample_size_check")
log.info("concentration:\n%s", conc)
log.info("sample size:\n%s", size)
log.info("sample-size check:\n%s", check)
