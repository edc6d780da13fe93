rule features:
    input:
        samples=f"{CELL_DIR}/validation/samples.parquet",
        grades=f"{CELL_DIR}/validation/grades.parquet",
    output:
        f"{CELL_DIR}/features.parquet",
    log:
        log_path("features", CELL),
    benchmark:
        benchmark_path("features", CELL)
    conda:
        "../../envs/analysis.yaml"
    params:
        seed=config["sampling"]["seed"],
        n_boot=config["statistics"]["n_boot"],
        ci_level=config["statistics"]["ci_level"],
        entropy_kind=lambda w: bconf.entropy_kind(config, w.model),
        version=VERSION["features"],
    script:
        "../scripts/features.py"
