"""Snakemake adapter: the training rows of one outcome reward model (reward_models.<rm>, kind orm)."""

import polars as pl

from bongain.io import read_parquet, write_parquet_atomic
from bongain.orm.data import training_data
from bongain.smk import setup_logging
from bongain.tasks.sources import TaskSpec
from bongain.tasks.splits import questions_after_blocks

sm = snakemake  # noqa: F821
log = setup_logging(sm, "orm")
p, rm = sm.params, sm.wildcards.rm
opts = p.opts
questions = pl.concat(
    [
        questions_after_blocks(
            task, TaskSpec.from_config(cfg), p.sizes, p.split_seed, opts["max_questions_per_task"]
        )
        for task, cfg in p.tasks.items()
    ]
)
for task, n in questions.group_by("task", maintain_order=True).len().iter_rows():
    log.info("%s: %d training questions after the blocks", task, n)
tables = {path: read_parquet(path, "tasks") for path in sm.input.tables}
data = training_data(
    questions,
    tables,
    negatives=opts["negatives"],
    seed=opts["seed"],
    n_pairs=opts["steps"] * opts["train_batch_size"],
    key=f"reward_models.{rm}",
)
write_parquet_atomic(data, sm.output[0], "orm_data")
log.info(
    "%s: %d rows (%d correct) on %d questions",
    rm,
    data.height,
    int(data["correct"].sum()),
    data["question"].n_unique(),
)
