# Models. Hub checkpoints (every `hub` model, and a pretrained reward model on the hub) are fetched by
# the local rule `download` (it runs inside the snakemake process: on a cluster the login node, which has
# the internet) into the hub cache (`hub.cache` -> HF_HOME); every other job reads it with
# HF_HUB_OFFLINE=1 (bongain.hub).
rule download:
    output:
        download_record("{download}"),
    log:
        log_path("download", "{download}"),
    conda:
        "../../envs/analysis.yaml"
    params:
        spec=lambda wildcards: HUB_DOWNLOADS[wildcards.download],
        cache=config["hub"]["cache"],
    script:
        "../scripts/download.py"


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
