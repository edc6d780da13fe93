rule fit:
    input:
        features=cell_files("features.parquet"),
        gains=cell_files("gains.parquet"),
    output:
        predictions=f"{RESULTS}/fit/predictions.parquet",
        metrics=f"{RESULTS}/fit/metrics.parquet",
        coefficients=f"{RESULTS}/fit/coefficients.parquet",
    params:
        features=config.get("fit", {}).get("features"),
        version=VERSION["fit"],
    log:
        f"{RESULTS}/logs/fit.log",
    script:
        "../scripts/fit.py"
