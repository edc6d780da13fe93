# The scorer: the `reward_model` block names it (bongain.scoring.registry). A per-cell trained scorer
# (offline_logistic) is trained by train_verifier on verifier_train; pretrained reward models read the
# question texts from the tasks table instead.
REWARD_MODEL = config["reward_model"]


rule train_verifier:
    input:
        samples=f"{CELL_DIR}/verifier_train/samples.parquet",
        grades=f"{CELL_DIR}/verifier_train/grades.parquet",
    output:
        f"{CELL_DIR}/verifier.parquet",
    log:
        log_path("train_verifier", CELL),
    benchmark:
        benchmark_path("train_verifier", CELL)
    conda:
        "../../envs/analysis.yaml"
    params:
        reward_model=REWARD_MODEL,
        version=VERSION["verifier"],
    script:
        "../scripts/train_verifier.py"


rule score:
    input:
        unpack(bscoring.score_inputs(REWARD_MODEL, RESULTS)),
        rm_download=reward_model_download,
    output:
        f"{CELL_DIR}/{{split}}/scores.parquet",
    log:
        log_path("score", SPLIT),
    benchmark:
        benchmark_path("score", SPLIT)
    conda:
        "../../envs/sampling.yaml"
    resources:
        **job_placement(lambda wildcards: bscoring.score_gpus(REWARD_MODEL)),
    params:
        reward_model=REWARD_MODEL,
        version=VERSION["score"],
    script:
        "../scripts/score.py"
