rule train_verifier:
    input:
        samples=f"{CELL_DIR}/verifier_train/samples.parquet",
        grades=f"{CELL_DIR}/verifier_train/grades.parquet",
    output:
        f"{CELL_DIR}/verifier.parquet",
    params:
        verifier=config.get("verifier", {}),
        version=VERSION["verifier"],
    log:
        f"{RESULTS}/logs/train_verifier/{{model}}/{{method}}/{{task}}.log",
    script:
        "../scripts/train_verifier.py"


rule score:
    input:
        samples=f"{CELL_DIR}/{{split}}/samples.parquet",
        grades=f"{CELL_DIR}/{{split}}/grades.parquet",
        verifier=f"{CELL_DIR}/verifier.parquet",
    output:
        f"{CELL_DIR}/{{split}}/scores.parquet",
    params:
        version=VERSION["score"],
    log:
        f"{RESULTS}/logs/score/{{model}}/{{method}}/{{task}}/{{split}}.log",
    script:
        "../scripts/score.py"
