rule prepare_model:
    output:
        f"{RESULTS}/models/{{model}}/manifest.json",
    log:
        f"{RESULTS}/logs/prepare_model/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_model/{{model}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        model=model_cfg,
        version=VERSION["model"],
    script:
        "../scripts/prepare_model.py"
