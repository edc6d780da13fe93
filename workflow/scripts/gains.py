"""Snakemake adapter: the cell's real best-of-k curve on the test split."""

import polars as pl

from bongain.gains import compute_gains
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "gains")
w = sm.wildcards
df = compute_gains(
    read_parquet(sm.input.grades, "grades"), read_parquet(sm.input.scores, "scores"), seed=sm.params.seed
).with_columns(model=pl.lit(w.model), method=pl.lit(w.method), task=pl.lit(w.task))
write_parquet_atomic(df, sm.output[0], "gains")
log.info("gain %.4f (pass@1 %.4f)", df["gain"][0], df["pass_at_k"][0])
