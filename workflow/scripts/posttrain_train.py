"""Snakemake adapter: train one LoRA adapter and write its training log."""

from bongain.io import read_parquet, write_parquet_atomic
from bongain.posttrain.train import train_adapter
from bongain.sampling.models import load_manifest
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "posttrain")
p = sm.params
train_log = train_adapter(
    start_path=load_manifest(sm.input.manifest)["path"],
    data=read_parquet(sm.input.data, "posttrain_data"),
    recipe=sm.wildcards.recipe,
    recipe_cfg=p.recipe,
    lora=p.lora,
    threads=p.threads,  # the configured count, not Snakemake's (--cores may lower it): results depend on it
    dtype=p.dtype,
    adapter_dir=sm.output.adapter,
    model=sm.wildcards.model,
    device=p.device,  # posttrain.device: cpu, or gpu (pre-flight check, then CUDA)
)
write_parquet_atomic(train_log, sm.output.log, "posttrain_log")
log.info(
    "%s/%s: %d steps, loss %.4f -> %.4f, %.1f s",
    sm.wildcards.model,
    sm.wildcards.recipe,
    train_log.height,
    train_log["loss"][0],
    train_log["loss"][-1],
    train_log["wall_s"][-1],
)
