"""Snakemake adapter: a reward per sample from the configured verifier / reward model."""

import polars as pl

from bongain.io import read_parquet, write_parquet_atomic
from bongain.scoring.offline import make_verifier
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "score")
rm_cfg = sm.params.reward_model
samples = read_parquet(sm.input.samples, "samples")
grades = read_parquet(sm.input.grades, "grades")
inputs = dict(sm.input.items())
table = read_parquet(inputs["verifier"], "verifier") if "verifier" in inputs else None
questions = None
if "tasks" in inputs:
    tasks = read_parquet(inputs["tasks"], "tasks")
    questions = dict(zip(tasks["prompt_id"].to_list(), tasks["question"].to_list(), strict=True))
verifier = make_verifier(rm_cfg, verifier_table=table, questions=questions)
log.info("scoring %d samples with %s", samples.height, verifier.name)
rewards = verifier.score(samples, grades)
scores = samples.select("model", "method", "task", "split", "prompt_id", "sample_idx").with_columns(
    reward=pl.Series(rewards, dtype=pl.Float64), verifier=pl.lit(verifier.name)
)
write_parquet_atomic(scores, sm.output[0], "scores")
log.info("scored %d samples", scores.height)
