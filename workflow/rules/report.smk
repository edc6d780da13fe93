rule report:
    input:
        features=cell_files("features.parquet"),
        gains=cell_files("gains.parquet"),
        predictions=f"{RESULTS}/fit/predictions.parquet",
        metrics=f"{RESULTS}/fit/metrics.parquet",
        coefficients=f"{RESULTS}/fit/coefficients.parquet",
    output:
        report=f"{RESULTS}/report/report.md",
        pred_fig=f"{RESULTS}/report/predicted_vs_actual.png",
        curves_fig=f"{RESULTS}/report/bon_curves.png",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        title=config.get("title", "bongain report"),
        summary=bconf.report_summary(config),
        version=VERSION["report"],
    script:
        "../scripts/report.py"
