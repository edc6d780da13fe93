rule task_split:
    output:
        f"{RESULTS}/tasks/{{task}}/{{split}}.parquet",
    params:
        task=task_cfg,
        sizes=bconf.split_sizes(config),
        seed=config["splits"].get("seed", 0),
        version=VERSION["tasks"],
    log:
        f"{RESULTS}/logs/tasks/{{task}}/{{split}}.log",
    script:
        "../scripts/task_split.py"
