# The verifier: reward_model.kind selects it (default offline_logistic). Only the offline logistic
# verifier is trained per cell (train_verifier); pretrained reward models read the question texts from
# the tasks table instead.
from bongain.scoring import offline as bverifier

REWARD_MODEL = config.get("reward_model", {})


rule train_verifier:
    input:
        samples=f"{CELL_DIR}/verifier_train/samples.parquet",
        grades=f"{CELL_DIR}/verifier_train/grades.parquet",
    output:
        f"{CELL_DIR}/verifier.parquet",
    log:
        f"{RESULTS}/logs/train_verifier/{{model}}/{{method}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_verifier/{{model}}/{{method}}/{{task}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        verifier=config.get("verifier", {}),
        version=VERSION["verifier"],
    script:
        "../scripts/train_verifier.py"


rule score:
    input:
        unpack(bverifier.score_inputs(REWARD_MODEL, RESULTS)),
    output:
        f"{CELL_DIR}/{{split}}/scores.parquet",
    log:
        f"{RESULTS}/logs/score/{{model}}/{{method}}/{{task}}/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score/{{model}}/{{method}}/{{task}}/{{split}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    resources:
        gpu=bverifier.score_gpus(REWARD_MODEL),
    params:
        reward_model=REWARD_MODEL,
        version=VERSION["score"],
    script:
        "../scripts/score.py"
