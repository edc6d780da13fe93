# Compute-optimal allocation of samples across the evaluated cells from the predicted gain curves,
# evaluated on the test split against uniform N (docs/statistics.md), with the PRIMARY_RM's rewards.


rule allocation:
    input:
        curve=f"{RESULTS}/fit/curve.parquet",
        grades=cell_files("test/grades.parquet"),
        scores=cell_files(f"test/scores/{PRIMARY_RM}.parquet"),
    output:
        allocation=f"{RESULTS}/fit/allocation.parquet",
        summary=f"{RESULTS}/fit/allocation_summary.parquet",
        bins=f"{RESULTS}/fit/allocation_bins.parquet",
    log:
        log_path("allocation"),
    benchmark:
        benchmark_path("allocation")
    conda:
        "../../envs/analysis.yaml"
    params:
        allocation=config["allocation"],
        seed=config["fit"]["seed"],
        version=VERSION["allocation"],
    script:
        "../scripts/allocation.py"
