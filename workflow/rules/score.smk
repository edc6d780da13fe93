# The scorers: `reward_models` maps a name to a scorer block (bongain.scoring.registry); every evaluated
# cell is scored by each, one job and one file per (cell, split, reward model), so adding, changing or
# rerunning one reward model leaves the others' files alone. A per-cell trained scorer (offline_logistic)
# is trained per (cell, reward model) by train_verifier on verifier_train; pretrained reward models read
# the question texts from the tasks table instead.


rule train_verifier:
    input:
        samples=f"{CELL_DIR}/verifier_train/samples.parquet",
        grades=f"{CELL_DIR}/verifier_train/grades.parquet",
    output:
        f"{CELL_DIR}/verifier/{{rm}}.parquet",
    log:
        log_path("train_verifier", f"{CELL}/{{rm}}"),
    benchmark:
        benchmark_path("train_verifier", f"{CELL}/{{rm}}")
    wildcard_constraints:
        rm=_alternatives(TRAINED_RMS),
    conda:
        "../../envs/analysis.yaml"
    params:
        reward_model=lambda wildcards: REWARD_MODELS[wildcards.rm],
        version=VERSION["verifier"],
    script:
        "../scripts/train_verifier.py"


rule score:
    input:
        unpack(bscoring.score_inputs(REWARD_MODELS, RESULTS)),
        rm_download=reward_model_download,
    output:
        f"{CELL_DIR}/{{split}}/scores/{{rm}}.parquet",
    log:
        log_path("score", f"{SPLIT}/{{rm}}"),
    benchmark:
        benchmark_path("score", f"{SPLIT}/{{rm}}")
    conda:
        "../../envs/sampling.yaml"
    resources:
        **job_placement(
            lambda wildcards: bscoring.score_gpus(REWARD_MODELS[wildcards.rm])
        ),
    params:
        reward_model=lambda wildcards: REWARD_MODELS[wildcards.rm],
        version=VERSION["score"],
    script:
        "../scripts/score.py"
