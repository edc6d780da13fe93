import re

from bongain import config as bconf
from bongain.config import SPLITS

# Fails before any job runs, naming the bad key.
bconf.validate_config(config)

CELLS = bconf.cells(config)
RESULTS = config.get("results_dir", "results")
CELL_DIR = f"{RESULTS}/cells/{{model}}/{{method}}/{{task}}"
# Bump a stage's version when its code changes in a way that changes its output:
# Snakemake reruns the stage (params trigger) without watching imported modules.
VERSION = {
    "model": 1,
    "tasks": 1,
    "sample": 1,
    "grade": 1,
    "verifier": 1,
    "score": 1,
    "features": 1,
    "gains": 1,
    "fit": 1,
    "report": 1,
}


def _alternatives(names):
    return "|".join(re.escape(n) for n in sorted(names))


wildcard_constraints:
    model=_alternatives(config["models"]),
    method=_alternatives(config["methods"]),
    task=_alternatives(config["tasks"]),
    split=_alternatives(SPLITS),


def model_cfg(wildcards):
    return bconf.model(config, wildcards.model)


def method_cfg(wildcards):
    return bconf.method(config, wildcards.method)


def task_cfg(wildcards):
    return config["tasks"][wildcards.task]


def model_manifest(wildcards):
    return f"{RESULTS}/models/{wildcards.model}/manifest.json"


def cell_files(name):
    return [f"{RESULTS}/cells/{c.model}/{c.method}/{c.task}/{name}" for c in CELLS]
