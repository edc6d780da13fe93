rule train_verifier:
    input:
        samples=f"{CELL_DIR}/verifier_train/samples.parquet",
        grades=f"{CELL_DIR}/verifier_train/grades.parquet",
    output:
        f"{CELL_DIR}/verifier.parquet",
    log:
        f"{RESULTS}/logs/train_verifier/{{model}}/{{method}}/{{task}}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        verifier=config.get("verifier", {}),
        version=VERSION["verifier"],
    script:
        "../scripts/train_verifier.py"


rule score:
    input:
        samples=f"{CELL_DIR}/{{split}}/samples.parquet",
        grades=f"{CELL_DIR}/{{split}}/grades.parquet",
        verifier=f"{CELL_DIR}/verifier.parquet",
    output:
        f"{CELL_DIR}/{{split}}/scores.parquet",
    log:
        f"{RESULTS}/logs/score/{{model}}/{{method}}/{{task}}/{{split}}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        version=VERSION["score"],
    script:
        "../scripts/score.py"
