"""Snakemake adapter: the cell's coverage-scaling fits (power law, beta-binomial) on the test split."""

import polars as pl

from bongain.cellstats.scaling import scaling_table
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "scaling")
w, p = sm.wildcards, sm.params
df = scaling_table(
    read_parquet(sm.input.grades, "grades"),
    p.extrapolate,
    seed=p.seed,
    n_boot=p.n_boot,
    ci_level=p.ci_level,
).with_columns(model=pl.lit(w.model), method=pl.lit(w.method), task=pl.lit(w.task))
write_parquet_atomic(df, sm.output[0], "scaling")
log.info("coverage fits:\n%s", df.group_by("fit", maintain_order=True).first())
