rule grade:
    input:
        samples=f"{CELL_DIR}/{{split}}/samples.parquet",
        tasks=f"{RESULTS}/tasks/{{task}}/{{split}}.parquet",
    output:
        f"{CELL_DIR}/{{split}}/grades.parquet",
    log:
        f"{RESULTS}/logs/grade/{{model}}/{{method}}/{{task}}/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/grade/{{model}}/{{method}}/{{task}}/{{split}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        method=method_cfg,
        timeout_s=config.get("grading", {}).get("timeout_s", 5),
        version=VERSION["grade"],
    script:
        "../scripts/grade.py"
