rule gains:
    input:
        grades=f"{CELL_DIR}/test/grades.parquet",
        scores=f"{CELL_DIR}/test/scores.parquet",
    output:
        f"{CELL_DIR}/gains.parquet",
    log:
        f"{RESULTS}/logs/gains/{{model}}/{{method}}/{{task}}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        seed=config["sampling"].get("seed", 0),
        version=VERSION["gains"],
    script:
        "../scripts/gains.py"
