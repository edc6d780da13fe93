"""Which (base model, recipe) adapters a config needs, and where their checkpoints and inputs lie.

A method names a recipe (``methods.<slug>.recipe``; ``none`` is the model as shipped). A recipe trains one
LoRA adapter per base model, starting from the base checkpoint or from the merged checkpoint of its
``init`` recipe (recipes chain: ``dpo`` on top of ``sft``). Paths here are the DAG's; every function is
pure (no file is read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bongain.constants import POSTTRAIN

NONE = "none"


def recipe_chain(recipes: Mapping[str, Any], name: str) -> list[str]:
    """``name`` and the recipes it starts from, innermost last: ``dpo`` -> ``["dpo", "sft"]``."""
    chain = [name]
    while recipes[chain[-1]]["init"] is not None:
        chain.append(recipes[chain[-1]]["init"])
    return chain


def needed_adapters(config: Mapping[str, Any], cells: Iterable[Any]) -> list[tuple[str, str]]:
    """Sorted (model, recipe) pairs the cells sample from, with every recipe they start from."""
    recipes = config["posttrain"]["recipes"]
    out: set[tuple[str, str]] = set()
    for cell in cells:
        recipe = config["methods"][cell.method]["recipe"]
        if recipe != NONE:
            out.update((cell.model, r) for r in recipe_chain(recipes, recipe))
    return sorted(out)


def base_manifest(results: str, model: str) -> str:
    return f"{results}/models/{model}/manifest.json"


def recipe_dir(results: str, model: str, recipe: str) -> str:
    """Folder of one adapter: dataset.parquet, adapter/, train_log.parquet, hf/, manifest.json."""
    return f"{results}/posttrain/{model}/{recipe}"


def checkpoint_manifest(results: str, model: str, recipe: str) -> str:
    """Manifest of the checkpoint a method with this recipe samples (the base model for ``none``)."""
    if recipe == NONE:
        return base_manifest(results, model)
    return f"{recipe_dir(results, model, recipe)}/manifest.json"


def start_manifest(results: str, model: str, recipe_cfg: Mapping[str, Any]) -> str:
    """Manifest of the checkpoint a recipe's training starts from."""
    return checkpoint_manifest(results, model, recipe_cfg["init"] or NONE)


def sample_files(
    results: str, model: str, recipe_cfg: Mapping[str, Any], tasks: Iterable[str], kind: str
) -> list[str]:
    """The ``posttrain`` split's samples (``kind='samples'``) or grades of the recipe's method, per task:
    what rft and dpo learn from (none for sft)."""
    if recipe_cfg["kind"] == "sft":
        return []
    method = recipe_cfg["method"]
    return [f"{results}/cells/{model}/{method}/{task}/{POSTTRAIN}/{kind}.parquet" for task in tasks]


def method_recipe_chains(config: Mapping[str, Any]) -> dict[str, list[list[str]]]:
    """Per method (config order): the recipes its checkpoint went through, innermost first, each as
    ``[recipe, kind]`` (``sft-dpo`` -> ``[["sft", "sft"], ["sft-dpo", "dpo"]]``); ``[]`` for the model as
    shipped. Plain lists, so that it can be a Snakemake param (what the report's recipe section reads)."""
    recipes = config.get("posttrain", {}).get("recipes", {})
    out: dict[str, list[list[str]]] = {}
    for slug, method in config["methods"].items():
        recipe = method.get("recipe", NONE)
        chain = [] if recipe == NONE else recipe_chain(recipes, recipe)[::-1]
        out[slug] = [[name, recipes[name]["kind"]] for name in chain]
    return out
