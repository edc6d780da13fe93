"""Snakemake adapter: build one split of one task as Parquet."""

from bongain.io import write_parquet_atomic
from bongain.smk import setup_logging
from bongain.tasks.sources import TaskSpec
from bongain.tasks.splits import build_split

sm = snakemake  # noqa: F821
log = setup_logging(sm, "tasks")
spec = TaskSpec.from_config(sm.params.task)
df = build_split(sm.wildcards.task, spec, sm.wildcards.split, sm.params.sizes, sm.params.seed)
write_parquet_atomic(df, sm.output[0], "tasks")
log.info("%s/%s: %d prompts", sm.wildcards.task, sm.wildcards.split, df.height)
