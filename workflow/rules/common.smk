import os
import re

from bongain import config as bconf
from bongain.constants import SAMPLED_SPLITS, SPLITS

# Fails before any job runs, naming the bad key; fills in every default (from the config schema) so that
# the rules below read a complete config. Snakemake's YAML reading keeps the last of two equal keys (two
# reward models with one name): the config files are read once more to refuse that.
bconf.check_config_files(workflow.configfiles)
bconf.validate_config(config)

from bongain import hub as bhub
from bongain import slurm as bslurm
from bongain.fit import screening as bscreen
from bongain.sampling import backends as bbackends
from bongain.orm import data as borm_data
from bongain.posttrain import recipes as bpt_recipes
from bongain.scoring import registry as bscoring

# Evaluated cells (`cells:`, every stage) and screened cells (`screen:`, validation pass + features only).
CELLS, SCREEN_CELLS = bscreen.split_cells(config)
RESULTS = config["results_dir"]
# The hub cache of every job (local ones and, through sbatch --export=ALL, cluster ones).
bhub.use_cache(config["hub"]["cache"])
# Wildcard patterns of one cell and of one split of a cell, and the cell's results folder.
CELL = "{model}/{method}/{task}"
SPLIT = f"{CELL}/{{split}}"
CELL_DIR = f"{RESULTS}/cells/{CELL}"
# The reward models (name -> scorer block); every evaluated cell is scored by each. PRIMARY_RM is the one
# the single-target fit stages use (fit.reward_model, else the first).
REWARD_MODELS = config["reward_models"]
PRIMARY_RM = bconf.primary_reward_model(config)
TRAINED_RMS = [name for name, rm in REWARD_MODELS.items() if bscoring.is_trained(rm)]
# Reward models trained once per study (kind orm: rules orm_data, orm_train, orm_merge in orm.smk).
ORM_RMS = bconf.orm_reward_models(config)
# The splits every evaluated cell samples: validation and test, plus verifier_train when some scorer is
# trained per cell on it.
CELL_SPLITS = SPLITS if TRAINED_RMS else ("validation", "test")
# Bump a stage's version when its code changes in a way that changes its output:
# Snakemake reruns the stage (params trigger) without watching imported modules.
VERSION = {
    "model": 1,
    "tasks": 2,
    "sample": 5,
    "grade": 1,
    "verifier": 2,
    "score": 2,
    "features": 3,
    "gains": 5,
    "scaling": 1,
    "fit": 6,
    "stability": 2,
    "concentration": 2,
    "allocation": 1,
    "report": 10,
    "posttrain": 1,
    "orm": 1,
}


def log_path(stage, pattern=None):
    """The log file of a rule: results/logs/<stage>/<pattern>.log, or results/logs/<stage>.log."""
    return (
        f"{RESULTS}/logs/{stage}/{pattern}.log"
        if pattern
        else f"{RESULTS}/logs/{stage}.log"
    )


def benchmark_path(stage, pattern=None):
    """The benchmark file of a rule (benchmarks/stage_memory.py reads the <stage> folder name)."""
    base = f"{RESULTS}/benchmarks/{stage}"
    return f"{base}/{pattern}.tsv" if pattern else f"{base}.tsv"


def job_placement(gpus):
    """``resources:`` placing each job by its GPU count (``gpus`` maps wildcards to an int): ``gpu``
    and, on SLURM, the partition, account, QoS, constraint and GPU model of its kind from the ``slurm``
    config block (bongain.slurm.placement). Only settings the block has for some kind become resources,
    so a cluster profile without the block keeps its own default partition and account for every job.
    """

    def resource(name):
        return lambda wildcards: bslurm.placement(config["slurm"], gpus(wildcards))[
            name
        ]

    return {name: resource(name) for name in bslurm.placed_resources(config["slurm"])}


def sample_gpus(wildcards):
    """GPUs of a sample job: the model's backend decides (vLLM: tensor_parallel_size; transformers: 0)."""
    return bbackends.sample_gpus(config["models"][wildcards.model])


def posttrain_gpus(wildcards):
    """GPUs of a posttrain_train job: one with posttrain.device gpu, else none (a CPU job)."""
    return 1 if config["posttrain"]["device"] == "gpu" else 0


def _alternatives(names):
    """A regex that matches exactly the given names (and nothing when there are none)."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!)"


wildcard_constraints:
    model=_alternatives(config["models"]),
    method=_alternatives(config["methods"]),
    task=_alternatives(config["tasks"]),
    split=_alternatives(SAMPLED_SPLITS),
    recipe=_alternatives(config["posttrain"]["recipes"]),
    rm=_alternatives(REWARD_MODELS),


class CellWildcards(dict):
    """The model, method and task of a ``{cell}`` wildcard (``model/method/task``), readable as
    attributes like the wildcards of a rule that names them separately."""

    __getattr__ = dict.__getitem__


def cell_wildcards(wildcards):
    model, method, task = wildcards.cell.split("/")
    return CellWildcards(model=model, method=method, task=task)


def cell_task_tables(wildcards):
    """The task tables of every split a ``{cell}`` job samples (rule sample_cell), named by split."""
    task = cell_wildcards(wildcards).task
    return {s: f"{RESULTS}/tasks/{task}/{s}.parquet" for s in CELL_SPLITS}


def model_cfg(wildcards):
    return config["models"][wildcards.model]


def method_cfg(wildcards):
    return config["methods"][wildcards.method]


def task_cfg(wildcards):
    return config["tasks"][wildcards.task]


def recipe_cfg(wildcards):
    return config["posttrain"]["recipes"][wildcards.recipe]


def start_manifest(wildcards):
    return bpt_recipes.start_manifest(RESULTS, wildcards.model, recipe_cfg(wildcards))


def posttrain_inputs(wildcards):
    """Every task's posttrain table; for rft / dpo also the method's samples and grades on it."""
    rc, tasks = recipe_cfg(wildcards), list(config["tasks"])
    return {
        "tasks": [f"{RESULTS}/tasks/{t}/posttrain.parquet" for t in tasks],
        "samples": bpt_recipes.sample_files(
            RESULTS, wildcards.model, rc, tasks, "samples"
        ),
        "grades": bpt_recipes.sample_files(
            RESULTS, wildcards.model, rc, tasks, "grades"
        ),
    }


def orm_block(wildcards):
    """The scorer block of an orm reward model (``{rm}``)."""
    return REWARD_MODELS[wildcards.rm]


def orm_backbone_manifest(wildcards):
    """The prepared checkpoint an orm reward model (``{rm}``) starts from (its backbone)."""
    return bpt_recipes.base_manifest(RESULTS, bconf.orm_backbone(config, wildcards.rm))


def model_manifest(wildcards):
    """The checkpoint a cell samples: the model as shipped (recipe none) or its post-trained variant."""
    recipe = config["methods"][wildcards.method]["recipe"]
    return bpt_recipes.checkpoint_manifest(RESULTS, wildcards.model, recipe)


def cell_files(name, cells=None):
    """``name`` under every evaluated cell (or under ``cells``)."""
    return [
        f"{RESULTS}/cells/{c.model}/{c.method}/{c.task}/{name}"
        for c in (CELLS if cells is None else cells)
    ]


def rm_files(pattern, rms=None):
    """``pattern`` (with ``{rm}``) under every evaluated cell, for every reward model (or ``rms``)."""
    return [
        f
        for rm in (REWARD_MODELS if rms is None else rms)
        for f in cell_files(pattern.format(rm=rm))
    ]


def grade_files():
    """Every grades.parquet the config samples: the CELL_SPLITS of evaluated cells, the validation
    split of screened cells.
    """
    evaluated = [f"{split}/grades.parquet" for split in CELL_SPLITS]
    return [f for name in evaluated for f in cell_files(name)] + screen_files(
        "validation/grades.parquet"
    )


def screen_files(name):
    """``name`` under every screened cell."""
    return cell_files(name, SCREEN_CELLS)


from bongain.sampling import shards as bshards

# Prompts per sampling shard (None: one sample job per split); shard counts come from the config sizes.
SHARD_PROMPTS = config["sampling"]["shard_prompts"]


wildcard_constraints:
    shard=r"\d\d\d\d+",


def shard_files(wildcards):
    """The shard files of one split, merged by rule merge_samples."""
    w = wildcards
    split_dir = f"{RESULTS}/cells/{w.model}/{w.method}/{w.task}/{w.split}"
    size = bconf.split_sizes(config)[w.split]
    return [
        f"{split_dir}/shards/{name}.parquet"
        for name in bshards.shard_names(size, SHARD_PROMPTS)
    ]


# Hub checkpoints (every `hub` model, and a pretrained reward model on the hub), fetched by the local rule
# `download` into the hub cache (`hub.cache` -> HF_HOME); other jobs read it with HF_HUB_OFFLINE=1.
HUB_DOWNLOADS = bhub.hub_downloads(config, TRAINED_RMS + ORM_RMS)


wildcard_constraints:
    download=_alternatives(HUB_DOWNLOADS) if HUB_DOWNLOADS else "(?!)",


def cluster_run_checks():
    """What a cluster run checks before its first job (the Snakefile's onstart): the hub cache when hub
    checkpoints are downloaded; the token held back from the jobs' environment."""
    if HUB_DOWNLOADS:
        problem = bhub.cluster_cache_problem(
            config["hub"]["cache"], config["hub"]["allow_home_cache"], os.environ
        )
        if problem:
            raise bconf.ConfigError(problem)
    bhub.hold_token()


def download_record(name):
    return f"{RESULTS}/downloads/{name}.json"


def model_download(wildcards):
    """The download record of a hub model (none for a local or wheel model)."""
    name = f"model-{wildcards.model}"
    return [download_record(name)] if name in HUB_DOWNLOADS else []


def reward_model_download(wildcards):
    """The download record of a score job's reward model (``{rm}``), when it comes from the hub."""
    name = bhub.reward_model_download(wildcards.rm)
    return [download_record(name)] if name in HUB_DOWNLOADS else []
