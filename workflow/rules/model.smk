# Models. Hub checkpoints (every `hub` model, and a pretrained reward model on the hub) are fetched by
# the local rule `download` (it runs inside the snakemake process: on a cluster the login node, which has
# the internet) into the hub cache (`hub.cache` -> HF_HOME); every other job reads it with
# HF_HUB_OFFLINE=1 (bongain.hub).
HUB_DOWNLOADS = bhub.hub_downloads(config, bscoring.is_trained(config["reward_model"]))


wildcard_constraints:
    download=_alternatives(HUB_DOWNLOADS) if HUB_DOWNLOADS else "(?!)",


def download_record(name):
    return f"{RESULTS}/downloads/{name}.json"


def model_download(wildcards):
    """The download record of a hub model (none for a local or wheel model)."""
    name = f"model-{wildcards.model}"
    return [download_record(name)] if name in HUB_DOWNLOADS else []


def reward_model_download(wildcards):
    """The reward model's download record, when it comes from the hub."""
    name = bhub.REWARD_MODEL
    return [download_record(name)] if name in HUB_DOWNLOADS else []


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
