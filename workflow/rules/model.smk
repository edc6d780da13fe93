rule prepare_model:
    output:
        f"{RESULTS}/models/{{model}}/manifest.json",
    log:
        log_path("prepare_model", "{model}"),
    benchmark:
        benchmark_path("prepare_model", "{model}")
    conda:
        "../../envs/analysis.yaml"
    params:
        model=model_cfg,
        version=VERSION["model"],
    script:
        "../scripts/prepare_model.py"
