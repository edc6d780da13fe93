"""Snakemake adapter: N samples per prompt of every split of one evaluated cell, one loaded model."""


def main() -> None:
    from bongain.hub import offline_jobs

    offline_jobs(snakemake.config["hub"]["cache"])  # noqa: F821  (before anything imports huggingface_hub)
    from bongain.threads import passive_openmp

    if snakemake.params.model["backend"] != "vllm":  # noqa: F821  (vLLM keeps its own OpenMP settings)
        passive_openmp()  # before anything imports torch
    import torch

    from bongain.io import read_parquet, write_parquet_atomic
    from bongain.sampling.models import load_manifest
    from bongain.sampling.split import finish, sample_cell
    from bongain.smk import setup_logging

    sm = snakemake  # noqa: F821
    log = setup_logging(sm, "sample")
    torch.set_num_threads(sm.threads)
    p = sm.params
    outputs = {split: path for split, path in sm.output.items()}
    reused = sample_cell(
        {split: read_parquet(sm.input[split], "tasks") for split in outputs},
        p.cell,
        manifest=load_manifest(sm.input.manifest),
        model_cfg=p.model,  # also a params trigger: changing the model config reruns sampling
        method=p.method,
        task_cfg=p.task,
        sampling=p.sampling,
        sizes=p.sizes,
        split_seed=p.split_seed,
        outputs=outputs,
        version=p.version,
        write=lambda df, path: write_parquet_atomic(df, path, "samples"),
    )
    finish(*outputs.values())
    log.info("wrote %s (batches resumed from checkpoints: %s)", ", ".join(outputs), reused)


# vLLM's CPU engine (and a GPU engine after CUDA is initialised) starts its engine core as a spawned
# process, which runs this file again as a module (Snakemake points __file__ at it): nothing may run then,
# so everything, the snakemake object included, is inside main().
if __name__ == "__main__":
    main()
