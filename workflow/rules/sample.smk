rule sample:
    input:
        tasks=f"{RESULTS}/tasks/{{task}}/{{split}}.parquet",
        manifest=model_manifest,
    output:
        f"{CELL_DIR}/{{split}}/samples.parquet",
    log:
        f"{RESULTS}/logs/sample/{{model}}/{{method}}/{{task}}/{{split}}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: config["sampling"].get("threads", 1)
    resources:
        mem_mb=4000,
    params:
        task=task_cfg,
        method=method_cfg,
        sampling=config["sampling"],
        sizes=bconf.split_sizes(config),
        split_seed=config["splits"].get("seed", 0),
        version=VERSION["sample"],
    script:
        "../scripts/sample.py"
