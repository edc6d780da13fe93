# Statistics settings: the optional `statistics:` config block (see the config schema) overrides these.
STATISTICS = {
    "n_boot": 1000,
    "ci_level": 0.95,
    "weight": "softmax",
    "temperature": 1.0,
    **config.get("statistics", {}),
}


rule gains:
    input:
        grades=f"{CELL_DIR}/test/grades.parquet",
        scores=f"{CELL_DIR}/test/scores.parquet",
    output:
        f"{CELL_DIR}/gains.parquet",
    log:
        f"{RESULTS}/logs/gains/{{model}}/{{method}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gains/{{model}}/{{method}}/{{task}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        seed=config["sampling"].get("seed", 0),
        weight=STATISTICS["weight"],
        temperature=STATISTICS["temperature"],
        n_boot=STATISTICS["n_boot"],
        ci_level=STATISTICS["ci_level"],
        version=VERSION["gains"],
    script:
        "../scripts/gains.py"
