"""Snakemake adapter: join the shards of one split into samples.parquet, checking every prompt."""

from bongain.io import read_parquet, write_parquet_atomic
from bongain.sampling.shards import merge_shards
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "merge_samples")
w = sm.wildcards
tasks = read_parquet(sm.input.tasks, "tasks")
cell = {"model": w.model, "method": w.method, "task": w.task, "split": w.split}
df = merge_shards(list(sm.input.shards), tasks, sm.params.n, sm.params.shard_prompts, cell=cell)
write_parquet_atomic(df, sm.output[0], "samples")
log.info("%s: merged %d shard(s) into %d samples", "/".join(w), len(sm.input.shards), df.height)
