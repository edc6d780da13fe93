"""Snakemake adapter: the cell's real best-of-k curve on the test split under one reward model, with
bootstrap intervals, the oracle gap and the reward model's efficiency and within-prompt AUC."""

import polars as pl

from bongain.cellstats.gains import compute_gains
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "gains")
w = sm.wildcards
p = sm.params
df = compute_gains(
    read_parquet(sm.input.grades, "grades"),
    read_parquet(sm.input.scores, "scores"),
    seed=p.seed,
    weight=p.weight,
    temperature=p.temperature,
    bom_threshold=p.bom_threshold,
    mob_subsample_fraction=p.mob_subsample_fraction,
    efficiency_gap_floor=p.efficiency_gap_floor,
    n_boot=p.n_boot,
    ci_level=p.ci_level,
    samples=read_parquet(sm.input.samples, "samples").select("prompt_id", "sample_idx", "self_certainty"),
).with_columns(model=pl.lit(w.model), method=pl.lit(w.method), task=pl.lit(w.task), rm=pl.lit(w.rm))
write_parquet_atomic(df, sm.output[0], "gains")
log.info(
    "%s: gain %.4f [%.4f, %.4f], oracle gap %.4f, efficiency %s, AUC %s (pass@1 %.4f)",
    w.rm,
    df["gain"][0],
    df["gain_lo"][0],
    df["gain_hi"][0],
    df["gain_oracle"][0],
    df["efficiency"][0],
    df["auc"][0],
    df["pass_at_k"][0],
)
if df["selfcert_at_k"].null_count():
    log.warning(
        "selfcert_at_k is null: some sample has no self_certainty (vLLM top-k entropy modes compute none; "
        "use entropy: hf_rescore, docs/backends.md)"
    )
