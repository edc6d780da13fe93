rule fit:
    input:
        features=cell_files("features.parquet"),
        gains=cell_files("gains.parquet"),
    output:
        predictions=f"{RESULTS}/fit/predictions.parquet",
        metrics=f"{RESULTS}/fit/metrics.parquet",
        coefficients=f"{RESULTS}/fit/coefficients.parquet",
    log:
        f"{RESULTS}/logs/fit.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        features=config.get("fit", {}).get("features"),
        version=VERSION["fit"],
    script:
        "../scripts/fit.py"
