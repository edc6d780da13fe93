rule scaling:
    input:
        grades=f"{CELL_DIR}/test/grades.parquet",
    output:
        f"{CELL_DIR}/scaling.parquet",
    log:
        log_path("scaling", CELL),
    benchmark:
        benchmark_path("scaling", CELL)
    conda:
        "../../envs/analysis.yaml"
    params:
        extrapolate=config["statistics"]["coverage_extrapolate"],
        seed=config["sampling"]["seed"],
        n_boot=config["statistics"]["n_boot"],
        ci_level=config["statistics"]["ci_level"],
        version=VERSION["scaling"],
    script:
        "../scripts/scaling.py"
