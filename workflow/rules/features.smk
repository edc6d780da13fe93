rule features:
    input:
        samples=f"{CELL_DIR}/validation/samples.parquet",
        grades=f"{CELL_DIR}/validation/grades.parquet",
    output:
        f"{CELL_DIR}/features.parquet",
    log:
        f"{RESULTS}/logs/features/{{model}}/{{method}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/{{model}}/{{method}}/{{task}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        seed=config["sampling"].get("seed", 0),
        n_boot=config.get("statistics", {}).get("n_boot", 1000),
        ci_level=config.get("statistics", {}).get("ci_level", 0.95),
        version=VERSION["features"],
    script:
        "../scripts/features.py"
