"""Snakemake adapter: a reward per sample from the cell's verifier."""

import polars as pl

from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging
from bongain.verifier import OfflineLogisticVerifier

sm = snakemake  # noqa: F821
log = setup_logging(sm, "score")
samples = read_parquet(sm.input.samples, "samples")
grades = read_parquet(sm.input.grades, "grades")
verifier = OfflineLogisticVerifier.from_table(read_parquet(sm.input.verifier, "verifier"))
rewards = verifier.score(samples, grades)
scores = samples.select("model", "method", "task", "split", "prompt_id", "sample_idx").with_columns(
    reward=pl.Series(rewards, dtype=pl.Float64), verifier=pl.lit(verifier.name)
)
write_parquet_atomic(scores, sm.output[0], "scores")
log.info("scored %d samples", scores.height)
