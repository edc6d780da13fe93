# The study's outcome reward models (reward_models.<rm>.kind: orm), each trained once per study and scored
# on every cell by the score rule. orm_data carves fresh questions after every block of each task (never a
# question of any split; checked against the validation and test tables) and writes their gold and
# near-miss answers, labelled by the grader; orm_train trains LoRA adapters plus the score head with TRL's
# RewardTrainer on (correct, incorrect) pairs and writes its training log; orm_merge merges them into a
# plain sequence-classification checkpoint with a manifest, which the score jobs load on the CPU.
# Each rule's params hold only the block keys it reads, so changing another key retrains nothing.

ORM_DIR = f"{RESULTS}/orm/{{rm}}"


rule orm_data:
    input:
        tables=[
            f"{RESULTS}/tasks/{task}/{split}.parquet"
            for task in config["tasks"]
            for split in ("validation", "test")
        ],
    output:
        f"{ORM_DIR}/dataset.parquet",
    log:
        log_path("orm_data", "{rm}"),
    benchmark:
        benchmark_path("orm_data", "{rm}")
    wildcard_constraints:
        rm=_alternatives(ORM_RMS),
    conda:
        "../../envs/analysis.yaml"
    params:
        opts=lambda w: borm_data.options(orm_block(w), borm_data.DATA_KEYS),
        tasks=config["tasks"],
        sizes=bconf.split_sizes(config),
        split_seed=config["splits"]["seed"],
        version=VERSION["orm"],
    script:
        "../scripts/orm_data.py"


rule orm_train:
    input:
        data=f"{ORM_DIR}/dataset.parquet",
        manifest=orm_backbone_manifest,
    output:
        adapter=directory(f"{ORM_DIR}/adapter"),
        log=f"{ORM_DIR}/train_log.parquet",
    log:
        log_path("orm_train", "{rm}"),
    benchmark:
        benchmark_path("orm_train", "{rm}")
    wildcard_constraints:
        rm=_alternatives(ORM_RMS),
    conda:
        "../../envs/analysis.yaml"
    threads: lambda w: REWARD_MODELS[w.rm]["threads"]
    resources:
        mem_mb=6000,
    params:
        opts=lambda w: borm_data.options(orm_block(w), borm_data.TRAIN_KEYS),
        version=VERSION["orm"],
    script:
        "../scripts/orm_train.py"


rule orm_merge:
    input:
        adapter=f"{ORM_DIR}/adapter",
        manifest=orm_backbone_manifest,
    output:
        f"{ORM_DIR}/manifest.json",
    log:
        log_path("orm_merge", "{rm}"),
    benchmark:
        benchmark_path("orm_merge", "{rm}")
    wildcard_constraints:
        rm=_alternatives(ORM_RMS),
    conda:
        "../../envs/analysis.yaml"
    resources:
        mem_mb=4000,
    params:
        version=VERSION["orm"],
    script:
        "../scripts/orm_merge.py"
