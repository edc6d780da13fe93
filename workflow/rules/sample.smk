# Sampling. Without sampling.shard_prompts one job per split writes samples.parquet directly. With it,
# each split is cut into shards of shard_prompts task-table rows (count known from the config sizes):
# one job per shard writes {split}/shards/{shard}.parquet (kept, never temp: a rerun after a crash redoes
# only the missing shards) and merge_samples joins them into samples.parquet, checking every prompt.
# Inside a job, finished batches are checkpointed under .<output>.partial/ and reused on restart.

SAMPLE_OUTPUT = (
    f"{CELL_DIR}/{{split}}/shards/{{shard}}.parquet"
    if SHARD_PROMPTS
    else f"{CELL_DIR}/{{split}}/samples.parquet"
)
SAMPLE_JOB = f"{SPLIT}.shard{{shard}}" if SHARD_PROMPTS else SPLIT


rule sample:
    input:
        tasks=f"{RESULTS}/tasks/{{task}}/{{split}}.parquet",
        manifest=model_manifest,
    output:
        SAMPLE_OUTPUT,
    log:
        log_path("sample", SAMPLE_JOB),
    benchmark:
        benchmark_path("sample", SAMPLE_JOB)
    conda:
        "../../envs/sampling.yaml"
    threads: config["sampling"]["threads"]
    resources:
        **job_placement(sample_gpus),
        mem_mb=4000,
    params:
        model=model_cfg,
        task=task_cfg,
        method=method_cfg,
        sampling=config["sampling"],
        sizes=bconf.split_sizes(config),
        split_seed=config["splits"]["seed"],
        version=VERSION["sample"],
    script:
        "../scripts/sample.py"


if SHARD_PROMPTS:

    rule merge_samples:
        input:
            shards=shard_files,
            tasks=f"{RESULTS}/tasks/{{task}}/{{split}}.parquet",
        output:
            f"{CELL_DIR}/{{split}}/samples.parquet",
        log:
            log_path("merge_samples", SPLIT),
        benchmark:
            benchmark_path("merge_samples", SPLIT)
        conda:
            "../../envs/analysis.yaml"
        resources:
            mem_mb=2000,
        params:
            n=config["sampling"]["n"],
            shard_prompts=SHARD_PROMPTS,
            version=VERSION["sample"],
        script:
            "../scripts/merge_shards.py"
