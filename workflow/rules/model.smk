rule prepare_model:
    output:
        f"{RESULTS}/models/{{model}}/manifest.json",
    params:
        model=model_cfg,
        version=VERSION["model"],
    log:
        f"{RESULTS}/logs/prepare_model/{{model}}.log",
    script:
        "../scripts/prepare_model.py"
