"""Snakemake adapter: train one outcome reward model (reward_models.<rm>, kind orm) and write its log."""

from bongain.io import read_parquet, write_parquet_atomic
from bongain.orm.train import train_orm
from bongain.sampling.models import load_manifest
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "orm")
manifest = load_manifest(sm.input.manifest)
train_log = train_orm(
    backbone_path=manifest["path"],
    data=read_parquet(sm.input.data, "orm_data"),
    opts=sm.params.opts,  # threads: the configured count, not Snakemake's (results depend on it)
    rm=sm.wildcards.rm,
    adapter_dir=sm.output.adapter,
    trust_remote_code=bool(manifest["trust_remote_code"]),
)
write_parquet_atomic(train_log, sm.output.log, "orm_log")
log.info(
    "%s: %d steps, loss %.4f -> %.4f, pair accuracy of the last step %.3f, %.1f s",
    sm.wildcards.rm,
    train_log.height,
    train_log["loss"][0],
    train_log["loss"][-1],
    train_log["accuracy"][-1],
    train_log["wall_s"][-1],
)
