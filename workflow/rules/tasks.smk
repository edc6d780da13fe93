rule task_split:
    output:
        f"{RESULTS}/tasks/{{task}}/{{split}}.parquet",
    log:
        f"{RESULTS}/logs/tasks/{{task}}/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tasks/{{task}}/{{split}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        task=task_cfg,
        sizes=bconf.split_sizes(config),
        seed=config["splits"].get("seed", 0),
        version=VERSION["tasks"],
    script:
        "../scripts/task_split.py"
