"""Snakemake adapter: N samples per prompt of one split (or shard) of one cell."""


def main() -> None:
    from bongain.hub import offline_jobs

    offline_jobs(snakemake.config["hub"]["cache"])  # noqa: F821  (before anything imports huggingface_hub)
    from bongain.threads import passive_openmp

    if snakemake.params.model["backend"] != "vllm":  # noqa: F821  (vLLM keeps its own OpenMP settings)
        passive_openmp()  # before anything imports torch
    import torch

    from bongain.io import read_parquet, write_parquet_atomic
    from bongain.sampling.models import load_manifest
    from bongain.sampling.split import finish, sample_split
    from bongain.smk import setup_logging

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


# vLLM's CPU engine (and a GPU engine after CUDA is initialised) starts its engine core as a spawned
# process, which runs this file again as a module (Snakemake points __file__ at it): nothing may run then,
# so everything, the snakemake object included, is inside main().
if __name__ == "__main__":
    main()
