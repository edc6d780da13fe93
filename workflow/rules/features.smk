rule features:
    input:
        samples=f"{CELL_DIR}/validation/samples.parquet",
        grades=f"{CELL_DIR}/validation/grades.parquet",
    output:
        f"{CELL_DIR}/features.parquet",
    log:
        f"{RESULTS}/logs/features/{{model}}/{{method}}/{{task}}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        version=VERSION["features"],
    script:
        "../scripts/features.py"
