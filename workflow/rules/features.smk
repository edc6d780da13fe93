rule features:
    input:
        samples=f"{CELL_DIR}/validation/samples.parquet",
        grades=f"{CELL_DIR}/validation/grades.parquet",
    output:
        f"{CELL_DIR}/features.parquet",
    params:
        version=VERSION["features"],
    log:
        f"{RESULTS}/logs/features/{{model}}/{{method}}/{{task}}.log",
    script:
        "../scripts/features.py"
