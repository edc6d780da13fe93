# Cross-cell statistics (docs/statistics.md). Train on evaluated cells; screened cells contribute
# only their validation features and get ranked predictions. The comparison, the strategy fit and the
# reward-model tables read every reward model's gains; the single-target stages the PRIMARY_RM's.
FIT_CFG = config["fit"]
FIT_DIR = f"{RESULTS}/fit"
PRIMARY_GAINS = cell_files(f"gains/{PRIMARY_RM}.parquet")


rule fit:
    input:
        features=cell_files("features.parquet"),
        gains=rm_files("gains/{rm}.parquet"),
        screen_features=screen_files("features.parquet"),
    output:
        predictions=f"{FIT_DIR}/predictions.parquet",
        metrics=f"{FIT_DIR}/metrics.parquet",
        coefficients=f"{FIT_DIR}/coefficients.parquet",
        comparison=f"{FIT_DIR}/comparison.parquet",
        heldout=f"{FIT_DIR}/heldout.parquet",
        strategy=f"{FIT_DIR}/strategy_fit.parquet",
        rm_summary=f"{FIT_DIR}/rm_summary.parquet",
        rm_agreement=f"{FIT_DIR}/rm_agreement.parquet",
        curve=f"{FIT_DIR}/curve.parquet",
        curve_coverage=f"{FIT_DIR}/curve_coverage.parquet",
        screen=f"{FIT_DIR}/screen.parquet",
    log:
        log_path("fit"),
    benchmark:
        benchmark_path("fit")
    conda:
        "../../envs/analysis.yaml"
    params:
        fit=FIT_CFG,
        sizes=bconf.split_sizes(config),
        families=bconf.model_families(config),
        rms=list(REWARD_MODELS),
        primary=PRIMARY_RM,
        version=VERSION["fit"],
    script:
        "../scripts/fit.py"


rule stability:
    input:
        features=cell_files("features.parquet"),
        gains=PRIMARY_GAINS,
    output:
        stability=f"{FIT_DIR}/stability.parquet",
        path=f"{FIT_DIR}/stability_path.parquet",
        ols=f"{FIT_DIR}/ols.parquet",
        ols_summary=f"{FIT_DIR}/ols_summary.txt",
    log:
        log_path("stability"),
    benchmark:
        benchmark_path("stability")
    conda:
        "../../envs/analysis.yaml"
    params:
        fit=FIT_CFG,
        version=VERSION["stability"],
    script:
        "../scripts/stability.py"


rule concentration:
    input:
        features=cell_files("features.parquet"),
        gains=PRIMARY_GAINS,
        screen_features=screen_files("features.parquet"),
        ols=f"{FIT_DIR}/ols.parquet",
        samples=cell_files("validation/samples.parquet"),
        grades=cell_files("validation/grades.parquet"),
    output:
        concentration=f"{FIT_DIR}/concentration.parquet",
        terms=f"{FIT_DIR}/concentration_terms.parquet",
        sample_size=f"{FIT_DIR}/sample_size.parquet",
        sample_size_check=f"{FIT_DIR}/sample_size_check.parquet",
    log:
        log_path("concentration"),
    benchmark:
        benchmark_path("concentration")
    conda:
        "../../envs/analysis.yaml"
    params:
        fit=FIT_CFG,
        max_tokens={m: v["max_new_tokens"] for m, v in config["methods"].items()},
        cells=[[c.model, c.method, c.task] for c in CELLS],
        version=VERSION["concentration"],
    script:
        "../scripts/concentration.py"
