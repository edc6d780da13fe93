"""Snakemake adapter: N samples per prompt of one split (or shard) of one cell."""

from bongain.hub import offline_jobs
from bongain.threads import passive_openmp

offline_jobs(snakemake.config["hub"]["cache"])  # noqa: F821  (before anything imports huggingface_hub)
passive_openmp()  # before anything imports torch

import torch  # noqa: E402

from bongain.io import read_parquet, write_parquet_atomic  # noqa: E402
from bongain.sampling.models import load_manifest  # noqa: E402
from bongain.sampling.split import finish, sample_split  # noqa: E402
from bongain.smk import setup_logging  # noqa: E402

sm = snakemake  # noqa: F821
log = setup_logging(sm, "sample")
torch.set_num_threads(sm.threads)
p = sm.params
df, reused = sample_split(
    read_parquet(sm.input.tasks, "tasks"),
    dict(sm.wildcards.items()),
    manifest=load_manifest(sm.input.manifest),
    model_cfg=p.model,  # also a params trigger: changing the model config reruns sampling
    method=p.method,
    task_cfg=p.task,
    sampling=p.sampling,
    sizes=p.sizes,
    split_seed=p.split_seed,
    output=sm.output[0],
    version=p.version,
)
write_parquet_atomic(df, sm.output[0], "samples")
finish(sm.output[0])
log.info("wrote %d samples (%d batch(es) resumed from checkpoints)", df.height, reused)
