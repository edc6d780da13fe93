# Sampling. Without sampling.shard_prompts, one sample_cell job samples every split of an evaluated cell with
# one loaded model (the fixed per-job cost of start-up, imports and model load is paid once per cell), and
# one sample job per split covers the rest: a screened cell's validation split and the posttrain split the
# rft / dpo recipes learn from (its own job, so that training starts before the cells are sampled). The
# samples of a split do not depend on which job drew them. With sampling.shard_prompts,
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


if not SHARD_PROMPTS:

    ruleorder: sample_cell > sample

    rule sample_cell:
        input:
            unpack(cell_task_tables),
            manifest=lambda w: model_manifest(cell_wildcards(w)),
        output:
            **{s: f"{RESULTS}/cells/{{cell}}/{s}/samples.parquet" for s in CELL_SPLITS},
        log:
            log_path("sample", "{cell}"),
        benchmark:
            benchmark_path("sample", "{cell}")
        wildcard_constraints:
            cell=_alternatives(c.slug for c in CELLS),
        conda:
            "../../envs/sampling.yaml"
        threads: config["sampling"]["threads"]
        resources:
            **job_placement(lambda w: sample_gpus(cell_wildcards(w))),
            mem_mb=4000,
        params:
            cell=lambda w: dict(cell_wildcards(w)),
            model=lambda w: model_cfg(cell_wildcards(w)),
            task=lambda w: task_cfg(cell_wildcards(w)),
            method=lambda w: method_cfg(cell_wildcards(w)),
            sampling=config["sampling"],
            sizes=bconf.split_sizes(config),
            split_seed=config["splits"]["seed"],
            version=VERSION["sample"],
        script:
            "../scripts/sample_cell.py"
