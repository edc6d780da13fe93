# Per-cell estimators on the test split; settings from the `statistics:` config block.
STATISTICS = config["statistics"]


rule gains:
    input:
        grades=f"{CELL_DIR}/test/grades.parquet",
        scores=f"{CELL_DIR}/test/scores.parquet",
        samples=f"{CELL_DIR}/test/samples.parquet",
    output:
        f"{CELL_DIR}/gains.parquet",
    log:
        log_path("gains", CELL),
    benchmark:
        benchmark_path("gains", CELL)
    conda:
        "../../envs/analysis.yaml"
    params:
        seed=config["sampling"]["seed"],
        weight=STATISTICS["weight"],
        temperature=STATISTICS["temperature"],
        bom_threshold=STATISTICS["bom_threshold"],
        mob_subsample_fraction=STATISTICS["mob_subsample_fraction"],
        n_boot=STATISTICS["n_boot"],
        ci_level=STATISTICS["ci_level"],
        version=VERSION["gains"],
    script:
        "../scripts/gains.py"
