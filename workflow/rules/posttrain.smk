# Post-training: one LoRA adapter per (base model, recipe) a cell samples from (methods.<m>.recipe), trained
# on the union of the tasks' posttrain splits. posttrain_data builds the training data (sft: gold answers;
# rft / dpo: the model's own graded samples of the posttrain split under the recipe's method, made by the
# sample and grade rules), posttrain_train trains the adapter with TRL + PEFT and writes its training log,
# posttrain_merge merges it into a plain checkpoint with a manifest that every sampling backend loads.
# A recipe with an init starts from that recipe's merged checkpoint (dpo on top of sft).
# posttrain_train runs on the CPU partition, or with `posttrain.device: gpu` on the GPU partition with one
# GPU (bongain.slurm.placement); posttrain_data and posttrain_merge stay on the CPU.

PT_DIR = f"{RESULTS}/posttrain/{{model}}/{{recipe}}"
PT_JOB = "{model}/{recipe}"


rule posttrain_data:
    input:
        unpack(posttrain_inputs),
        manifest=start_manifest,
    output:
        f"{PT_DIR}/dataset.parquet",
    log:
        log_path("posttrain_data", PT_JOB),
    benchmark:
        benchmark_path("posttrain_data", PT_JOB)
    conda:
        "../../envs/analysis.yaml"
    params:
        recipe=recipe_cfg,
        method=lambda w: config["methods"][recipe_cfg(w)["method"]],
        tasks=config["tasks"],
        sizes=bconf.split_sizes(config),
        split_seed=config["splits"]["seed"],
        version=VERSION["posttrain"],
    script:
        "../scripts/posttrain_data.py"


rule posttrain_train:
    input:
        data=f"{PT_DIR}/dataset.parquet",
        manifest=start_manifest,
    output:
        adapter=directory(f"{PT_DIR}/adapter"),
        log=f"{PT_DIR}/train_log.parquet",
    log:
        log_path("posttrain_train", PT_JOB),
    benchmark:
        benchmark_path("posttrain_train", PT_JOB)
    conda:
        "../../envs/analysis.yaml"
    threads: config["posttrain"]["threads"]
    resources:
        **job_placement(posttrain_gpus),
        mem_mb=6000,
    params:
        recipe=recipe_cfg,
        lora=config["posttrain"]["lora"],
        threads=config["posttrain"]["threads"],
        dtype=config["posttrain"]["dtype"],
        device=config["posttrain"]["device"],
        version=VERSION["posttrain"],
    script:
        "../scripts/posttrain_train.py"


rule posttrain_merge:
    input:
        adapter=f"{PT_DIR}/adapter",
        manifest=start_manifest,
    output:
        f"{PT_DIR}/manifest.json",
    log:
        log_path("posttrain_merge", PT_JOB),
    benchmark:
        benchmark_path("posttrain_merge", PT_JOB)
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=4000,
    params:
        version=VERSION["posttrain"],
    script:
        "../scripts/posttrain_merge.py"
