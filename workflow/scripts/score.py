"""Snakemake adapter: a reward per sample from one reward model (``reward_models.<rm>``)."""


def main() -> None:
    from bongain.hub import offline_jobs

    offline_jobs(snakemake.config["hub"]["cache"])  # noqa: F821  (before anything imports huggingface_hub)
    from bongain.hub import read_record, snapshot_path
    from bongain.io import read_parquet, write_parquet_atomic
    from bongain.scoring.registry import score_split
    from bongain.smk import setup_logging

    sm = snakemake  # noqa: F821
    log = setup_logging(sm, "score")
    inputs = dict(sm.input.items())
    samples = read_parquet(sm.input.samples, "samples")
    rm, block = sm.wildcards.rm, sm.params.reward_model
    # a hub RM: the snapshot its download recorded, never repo + revision
    records = list(sm.input.rm_download)
    snapshot = snapshot_path(read_record(records[0]), block["model"]) if records else None
    if "orm" in inputs:  # a reward model trained for this study: its merged checkpoint, next to the manifest
        from pathlib import Path

        snapshot = str(Path(inputs["orm"]).parent / "hf")
    where = f" from {snapshot}" if snapshot else ""
    log.info("scoring %d samples with %s (%s)%s", samples.height, rm, block["kind"], where)
    scores = score_split(
        block,
        samples,
        read_parquet(sm.input.grades, "grades"),
        verifier_table=read_parquet(inputs["verifier"], "verifier") if "verifier" in inputs else None,
        tasks=read_parquet(inputs["tasks"], "tasks") if "tasks" in inputs else None,
        rm=rm,
        snapshot=snapshot,
    )
    write_parquet_atomic(scores, sm.output[0], "scores")
    log.info("scored %d samples (%s)", scores.height, scores["verifier"][0] if scores.height else "-")


# vLLM's CPU engine (and a GPU engine after CUDA is initialised) starts its engine core as a spawned
# process, which runs this file again as a module (Snakemake points __file__ at it): nothing may run then,
# so everything, the snakemake object included, is inside main().
if __name__ == "__main__":
    main()
