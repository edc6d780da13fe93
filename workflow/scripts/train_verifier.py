"""Snakemake adapter: train one reward model's offline verifier on the cell's verifier_train split."""

import polars as pl

from bongain.io import read_parquet, write_parquet_atomic
from bongain.scoring.offline import train_offline_verifier
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "train_verifier")
cfg, w = sm.params.reward_model, sm.wildcards
v = train_offline_verifier(
    read_parquet(sm.input.samples, "samples"),
    read_parquet(sm.input.grades, "grades"),
    signals=tuple(cfg["signals"]),
    C=cfg["C"],
)
table = v.to_table().with_columns(
    model=pl.lit(w.model), method=pl.lit(w.method), task=pl.lit(w.task), rm=pl.lit(w.rm)
)
write_parquet_atomic(table, sm.output[0], "verifier")
log.info(
    "verifier %s trained on %d samples (%.3f correct): %s",
    w.rm,
    v.n_train,
    v.train_positive_rate,
    dict(zip(v.signals, v.coef.round(3).tolist(), strict=True)),
)
