# Models. Hub checkpoints (every `hub` model, and a pretrained reward model on the hub) are fetched by
# the local rule `download` into the hub cache (`hub.cache` -> HF_HOME); every other job reads it with
# HF_HUB_OFFLINE=1 (bongain.hub). `download` runs inside the snakemake process (on a cluster the login
# node; `--until download task_split` makes it a step of its own, e.g. on a transfer node), as a `run:` so
# that it can use the hub token a cluster run keeps out of its jobs' environment (bongain.hub.hold_token).
rule download:
    output:
        download_record("{download}"),
    log:
        log_path("download", "{download}"),
    params:
        spec=lambda wildcards: HUB_DOWNLOADS[wildcards.download],
        cache=config["hub"]["cache"],
    run:
        bhub.fetch(params.spec, params.cache, output[0], log[0])


rule prepare_model:
    input:
        download=model_download,
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
