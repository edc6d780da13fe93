rule task_split:
    output:
        f"{RESULTS}/tasks/{{task}}/{{split}}.parquet",
    log:
        log_path("tasks", "{task}/{split}"),
    benchmark:
        benchmark_path("tasks", "{task}/{split}")
    conda:
        "../../envs/analysis.yaml"
    params:
        task=task_cfg,
        sizes=bconf.split_sizes(config),
        seed=config["splits"]["seed"],
        version=VERSION["tasks"],
    script:
        "../scripts/task_split.py"
