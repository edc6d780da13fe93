# Per-cell estimators on the test split, one job and one file per (cell, reward model); settings from the
# `statistics:` config block. The columns that do not depend on the reward model (pass@k, maj@k,
# self-certainty, the oracle gap) are the same in every reward model's file of a cell.
STATISTICS = config["statistics"]


rule gains:
    input:
        grades=f"{CELL_DIR}/test/grades.parquet",
        scores=f"{CELL_DIR}/test/scores/{{rm}}.parquet",
        samples=f"{CELL_DIR}/test/samples.parquet",
    output:
        f"{CELL_DIR}/gains/{{rm}}.parquet",
    log:
        log_path("gains", f"{CELL}/{{rm}}"),
    benchmark:
        benchmark_path("gains", f"{CELL}/{{rm}}")
    conda:
        "../../envs/analysis.yaml"
    params:
        seed=config["sampling"]["seed"],
        weight=STATISTICS["weight"],
        temperature=STATISTICS["temperature"],
        bom_threshold=STATISTICS["bom_threshold"],
        mob_subsample_fraction=STATISTICS["mob_subsample_fraction"],
        efficiency_gap_floor=STATISTICS["efficiency_gap_floor"],
        n_boot=STATISTICS["n_boot"],
        ci_level=STATISTICS["ci_level"],
        version=VERSION["gains"],
    script:
        "../scripts/gains.py"
