"""Snakemake adapter: a reward per sample from the scorer that ``reward_model`` names."""

from bongain.hub import offline_jobs

offline_jobs(snakemake.config["hub"]["cache"])  # noqa: F821  (before anything imports huggingface_hub)

from bongain.hub import read_record, snapshot_path  # noqa: E402
from bongain.io import read_parquet, write_parquet_atomic  # noqa: E402
from bongain.scoring.registry import score_split  # noqa: E402
from bongain.smk import setup_logging  # noqa: E402

sm = snakemake  # noqa: F821
log = setup_logging(sm, "score")
inputs = dict(sm.input.items())
samples = read_parquet(sm.input.samples, "samples")
rm = sm.params.reward_model
records = list(sm.input.rm_download)  # a hub RM: the snapshot its download recorded, never repo + revision
snapshot = snapshot_path(read_record(records[0]), rm["model"]) if records else None
log.info("scoring %d samples with %s%s", samples.height, rm["kind"], f" from {snapshot}" if snapshot else "")
scores = score_split(
    rm,
    samples,
    read_parquet(sm.input.grades, "grades"),
    verifier_table=read_parquet(inputs["verifier"], "verifier") if "verifier" in inputs else None,
    tasks=read_parquet(inputs["tasks"], "tasks") if "tasks" in inputs else None,
    snapshot=snapshot,
)
write_parquet_atomic(scores, sm.output[0], "scores")
log.info("scored %d samples (%s)", scores.height, scores["verifier"][0] if scores.height else "-")
