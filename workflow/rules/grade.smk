rule grade:
    input:
        samples=f"{CELL_DIR}/{{split}}/samples.parquet",
        tasks=f"{RESULTS}/tasks/{{task}}/{{split}}.parquet",
    output:
        f"{CELL_DIR}/{{split}}/grades.parquet",
    log:
        log_path("grade", SPLIT),
    benchmark:
        benchmark_path("grade", SPLIT)
    conda:
        "../../envs/analysis.yaml"
    params:
        method=method_cfg,
        timeout_s=config["grading"]["timeout_s"],
        version=VERSION["grade"],
    script:
        "../scripts/grade.py"
