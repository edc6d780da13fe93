"""Snakemake adapter: the training data of one (base model, recipe) from the tasks' posttrain splits."""

from transformers import AutoTokenizer

from bongain.io import read_parquet, write_parquet_atomic
from bongain.posttrain.data import recipe_dataset
from bongain.sampling.models import load_manifest
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "posttrain")
p = sm.params
manifest = load_manifest(sm.input.manifest)
tokenizer = AutoTokenizer.from_pretrained(manifest["path"], trust_remote_code=manifest["trust_remote_code"])
data = recipe_dataset(
    tasks=[read_parquet(f, "tasks") for f in sm.input.tasks],
    samples=[read_parquet(f, "samples") for f in sm.input.samples],
    grades=[read_parquet(f, "grades") for f in sm.input.grades],
    recipe_cfg=p.recipe,
    method=p.method,
    task_cfgs=p.tasks,
    sizes=p.sizes,
    split_seed=p.split_seed,
    tokenizer=tokenizer,
    model=sm.wildcards.model,
    recipe=sm.wildcards.recipe,
)
write_parquet_atomic(data, sm.output[0], "posttrain_data")
log.info("%s/%s: %d %s examples", sm.wildcards.model, sm.wildcards.recipe, data.height, p.recipe["kind"])
