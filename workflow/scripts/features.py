"""Snakemake adapter: the cell's validation-set output statistics (no rewards), with bootstrap intervals."""

import polars as pl

from bongain.cellstats.features import compute_features
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "features")
w = sm.wildcards
p = sm.params
feats = compute_features(
    read_parquet(sm.input.samples, "samples"),
    read_parquet(sm.input.grades, "grades"),
    seed=p.seed,
    n_boot=p.n_boot,
    ci_level=p.ci_level,
)
df = pl.DataFrame(
    [{"model": w.model, "method": w.method, "task": w.task, **feats, "entropy_kind": p.entropy_kind}]
)
write_parquet_atomic(df, sm.output[0], "features")
log.info("features: %s", feats)
