"""Configuration: load, validate against the JSON schema, fill in defaults, cross-check, enumerate cells.

Every error is a :class:`ConfigError` whose message starts with the offending key in dotted form,
e.g. ``config key 'methods.chat-t07.temperature': -1 is less than or equal to the minimum of 0``.

Defaults live in one place, the schema (``default:`` of each key): :func:`validate_config` fills every
missing key that has one, in place, so that every other module reads a complete config with plain
indexing (``config["sampling"]["seed"]``), never ``.get(key, default)``.
"""

from __future__ import annotations

import copy
import importlib.resources
import math
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from bongain.constants import BLOCKS, SPLITS

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@dataclass(frozen=True, order=True)
class Cell:
    model: str
    method: str
    task: str

    @property
    def slug(self) -> str:
        return f"{self.model}/{self.method}/{self.task}"


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _key(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


#: Top-level blocks that were replaced, with what replaces them.
REPLACED_KEYS: dict[str, str] = {
    "verifier": (
        "replaced by 'reward_models' (name -> scorer block): write reward_models: "
        "{verifier: {kind: offline_logistic, signals: [...], C: ...}}"
    ),
    "reward_model": (
        "replaced by 'reward_models' (name -> scorer block; several reward models per study): move the "
        "block under a name, e.g. reward_models: {verifier: {kind: offline_logistic, signals: [...]}}"
    ),
}

#: What a reward-model (or any slug) name may be: a path component of its artifacts.
SLUG_HELP = (
    "a slug: lower-case letters, digits, '_', '.' and '-', starting with a letter or digit (it is a path "
    "component of the artifacts)"
)


def _fill_properties(
    validator: Any, properties: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[Any]:
    """The ``properties`` keyword, extended: a missing property that has a ``default`` gets a copy of it
    before its subschema is applied (so nested defaults of a defaulted block are filled too)."""
    if isinstance(instance, MutableMapping):
        for name, sub in properties.items():
            if name not in instance and isinstance(sub, Mapping) and "default" in sub:
                instance[name] = copy.deepcopy(sub["default"])
    check = jsonschema.Draft202012Validator.VALIDATORS["properties"]
    yield from check(validator, properties, instance, schema)


_FillingValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"properties": _fill_properties}
)


def fill_defaults(config: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Fill every missing key that has a schema default, in place (the config must be valid)."""
    _FillingValidator(load_schema()).validate(config)
    return config


def complete_block(block: str, value: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of one config block with its schema defaults filled in (for library callers and tests).

    ``block`` is a dotted path in the schema, ``*`` (or any name) standing for a slug: ``"fit"``,
    ``"reward_models.verifier"``, ``"models.*.vllm"``. The block is validated; an error names the key.
    """
    schema = load_schema()
    sub: Mapping[str, Any] = schema
    for part in block.split("."):
        if "$ref" in sub:  # "#/$defs/<name>"
            sub = schema["$defs"][sub["$ref"].rsplit("/", 1)[-1]]
        props = sub.get("properties", {})
        sub = props[part] if part in props and part != "*" else sub["additionalProperties"]
    out = copy.deepcopy(dict(value or {}))
    try:
        _FillingValidator({**sub, "$defs": schema.get("$defs", {})}).validate(out)
    except jsonschema.ValidationError as err:
        key = ".".join([block, *map(str, err.absolute_path)])
        raise ConfigError(f"config key '{key}': {err.message}") from err
    return out


def _schema_errors(config: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema())
    messages = [f"config key '{key}': {why}" for key, why in REPLACED_KEYS.items() if key in config]
    for err in sorted(
        validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message)
    ):
        key = _key(err.absolute_path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            for name in extra:
                if not err.absolute_path and name in REPLACED_KEYS:
                    continue  # named above, with its replacement
                full = f"{key}.{name}" if err.absolute_path else name
                messages.append(
                    f"config key '{full}': unknown key (allowed here: {sorted(err.schema['properties'])})"
                )
            continue
        if "propertyNames" in err.schema_path:  # a name (of a model, task, reward model, ...)
            why = "a reserved name" if err.validator == "not" else f"not a valid name; it must be {SLUG_HELP}"
            messages.append(f"config key '{key}.{err.instance}': {why}")
            continue
        if err.validator == "oneOf" and err.context:
            # report the most specific sub-error (e.g. which field of a task spec is wrong)
            best = jsonschema.exceptions.best_match(err.context)
            messages.append(f"config key '{key}': {best.message}")
            continue
        messages.append(f"config key '{key}': {err.message}")
    return messages


def _reference_errors(config: Mapping[str, Any]) -> list[str]:
    errors = []
    cells = config["cells"]
    if isinstance(cells, list):
        for i, cell in enumerate(cells):
            for kind in ("model", "method", "task"):
                name = cell.get(kind)
                if name is not None and name not in config.get(f"{kind}s", {}):
                    errors.append(
                        f"config key 'cells.{i}.{kind}': {name!r} is not defined under '{kind}s' "
                        f"(defined: {sorted(config.get(f'{kind}s', {}))})"
                    )
    sampling = config["sampling"]
    shard, batch = sampling["shard_prompts"], sampling["batch_prompts"]
    if shard is not None and shard % batch:
        errors.append(
            f"config key 'sampling.shard_prompts': {shard} is not a multiple of sampling.batch_prompts "
            f"({batch}); shards must hold whole batches so that sharded samples equal unsharded ones"
        )
    errors += _posttrain_errors(config)
    primary = config["fit"]["reward_model"]
    if primary is not None and primary not in config["reward_models"]:
        errors.append(
            f"config key 'fit.reward_model': {primary!r} is not defined under 'reward_models' "
            f"(defined: {list(config['reward_models'])})"
        )
    errors += _orm_errors(config)
    for slug, model in config.get("models", {}).items():
        src = model.get("source", {})
        needs = {
            "wheel_gguf": ("package", "file"),
            "gguf_chunks": ("chunks", "sha256", "file"),
            "hub": ("repo",),
            "local": ("path",),
        }.get(src.get("kind"), ())
        for field in needs:
            if field not in src:
                errors.append(
                    f"config key 'models.{slug}.source.{field}': required for kind {src.get('kind')!r}"
                )
    return errors


def _posttrain_errors(config: Mapping[str, Any]) -> list[str]:
    """Recipes named by methods exist; a recipe's init and method exist and agree; no init cycle; the
    posttrain split is big enough for each recipe's steps (exactly for sft; for rft / dpo against the most
    their samples can give: the real count is checked when the training data is built)."""
    recipes = config["posttrain"]["recipes"]
    methods = config["methods"]
    errors = []
    for slug, method in methods.items():
        if method["recipe"] != "none" and method["recipe"] not in recipes:
            errors.append(
                f"config key 'methods.{slug}.recipe': unknown recipe {method['recipe']!r} (defined under "
                f"'posttrain.recipes': {sorted(recipes)}; 'none' is the model as shipped)"
            )
    for name, recipe in recipes.items():
        key = f"posttrain.recipes.{name}"
        init = recipe["init"]
        if init is not None and init not in recipes:
            errors.append(
                f"config key '{key}.init': {init!r} is not a recipe under 'posttrain.recipes' (defined: "
                f"{sorted(recipes)}): the checkpoint this recipe starts from does not exist"
            )
        chain, cur = [name], init
        while cur in recipes and cur not in chain:
            chain.append(cur)
            cur = recipes[cur]["init"]
        if cur in chain:
            errors.append(
                f"config key '{key}.init': recipes start from each other in a cycle {[*chain, cur]}"
            )
        if recipe["method"] not in methods:
            errors.append(
                f"config key '{key}.method': {recipe['method']!r} is not defined under 'methods' "
                f"(defined: {sorted(methods)})"
            )
        elif methods[recipe["method"]]["recipe"] != (init or "none"):
            errors.append(
                f"config key '{key}.method': method {recipe['method']!r} samples recipe "
                f"{methods[recipe['method']]['recipe']!r}, but training starts from {init or 'none'!r} "
                f"(posttrain.recipes.{name}.init): the method must sample the checkpoint training starts from"
            )
        prompts = config["splits"]["posttrain"] * len(config["tasks"])
        n = config["sampling"]["n"]
        available, what = {  # exact for sft; for rft / dpo the most the samples can give
            "sft": (prompts, "sft examples (one per posttrain prompt)"),
            "rft": (prompts * n, "rft examples at most (posttrain prompts x sampling.n)"),
            "dpo": (
                prompts * min(recipe["max_pairs_per_prompt"], n - 1),
                "dpo pairs at most (posttrain prompts x min(max_pairs_per_prompt, sampling.n - 1))",
            ),
        }[recipe["kind"]]
        problem = posttrain_size_problem(name, recipe, available, what)
        if problem:
            errors.append(f"config key 'splits.posttrain': {problem}")
    return errors


def orm_backbone(config: Mapping[str, Any], name: str) -> str:
    """The model (a key under ``models``) whose prepared checkpoint reward model ``name`` (kind ``orm``)
    starts from: its ``backbone``, else the first model."""
    return config["reward_models"][name]["backbone"] or next(iter(config["models"]))


def orm_reward_models(config: Mapping[str, Any]) -> list[str]:
    """The names of the reward models of kind ``orm`` (trained once per study)."""
    return [name for name, rm in config["reward_models"].items() if rm["kind"] == "orm"]


def _orm_errors(config: Mapping[str, Any]) -> list[str]:
    errors = []
    for name in orm_reward_models(config):
        rm, key = config["reward_models"][name], f"reward_models.{name}"
        if rm["backbone"] is not None and rm["backbone"] not in config["models"]:
            errors.append(
                f"config key '{key}.backbone': {rm['backbone']!r} is not defined under 'models' "
                f"(defined: {sorted(config['models'])})"
            )
        most = rm["max_questions_per_task"] * len(config["tasks"]) * rm["negatives"]
        need = rm["steps"] * rm["train_batch_size"]
        if need > most:
            errors.append(
                f"config key '{key}.steps': steps x train_batch_size = {need} distinct pairs, but at most "
                f"max_questions_per_task x tasks x negatives = {most} exist; raise "
                f"{key}.max_questions_per_task or {key}.negatives, or lower {key}.steps"
            )
    return errors


def posttrain_size_problem(name: str, recipe: Mapping[str, Any], available: int, what: str) -> str | None:
    """Why ``available`` training examples are too few for recipe ``name``'s steps (None: enough)."""
    needed = recipe["steps"] * recipe["batch_size"]
    least = max(recipe["batch_size"], math.ceil(needed / recipe["max_epochs"]))
    if available >= least:
        return None
    return (
        f"posttrain split too small for recipe {name!r}: {available} {what}, but "
        f"posttrain.recipes.{name}.steps x batch_size = {recipe['steps']} x {recipe['batch_size']} = "
        f"{needed} needs at least {least} at max_epochs = {recipe['max_epochs']}; raise splits.posttrain "
        "or lower the steps"
    )


def validate_config(config: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Check ``config`` and fill in its defaults, in place; return it.

    Raises :class:`ConfigError` listing every problem, each naming its key; nothing is filled in then.
    Validating a completed config again changes nothing.
    """
    errors = _schema_errors(config)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    complete = fill_defaults(copy.deepcopy(dict(config)))
    for slug, model in complete["models"].items():
        if model["family"] is None:  # a model without a family is a family of its own
            model["family"] = slug
    errors = _reference_errors(complete)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    config.update(complete)
    return config


class _DuplicateKeyLoader(yaml.SafeLoader):
    """A safe loader that records every mapping key defined twice (YAML loaders keep the last silently)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int, int]] = []  # (dotted key, first line, second line), 1-based
        self._paths: dict[int, str] = {}


def _construct_mapping(loader: _DuplicateKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    here = loader._paths.get(id(node), "")
    seen: dict[Any, int] = {}
    for key_node, value_node in node.value:  # the mapping's own keys (a merge key '<<' may be overridden)
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        dotted = f"{here}.{key}" if here else str(key)
        if isinstance(value_node, yaml.MappingNode):
            loader._paths[id(value_node)] = dotted
        elif isinstance(value_node, yaml.SequenceNode):
            for i, item in enumerate(value_node.value):
                if isinstance(item, yaml.MappingNode):
                    loader._paths[id(item)] = f"{dotted}.{i}"
        line = key_node.start_mark.line + 1
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the constructor below reports it
            first = None
        if first is not None:
            loader.duplicates.append((dotted, first, line))
        else:
            try:
                seen[key] = line
            except TypeError:
                pass
    return loader.construct_mapping(node, deep=deep)  # flattens merge keys, then builds the dict


_DuplicateKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML config file; a key defined twice in one mapping (which YAML loaders resolve by silently
    keeping the last, e.g. two reward models with the same name) raises :class:`ConfigError` naming the key
    and both lines."""
    p = Path(path)
    try:
        with open(p) as fh:
            loader = _DuplicateKeyLoader(fh)
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from err
    if loader.duplicates:
        raise ConfigError(
            f"{p}: invalid configuration:\n  "
            + "\n  ".join(
                f"config key '{key}': defined twice (lines {a} and {b}); YAML would keep only the last, "
                "so rename or remove one"
                for key, a, b in loader.duplicates
            )
        )
    return data


def check_config_files(paths: Iterator[str | Path] | list[str | Path]) -> None:
    """Refuse config files that define a key twice (:func:`read_yaml`); the Snakefile calls it on the
    ``--configfile`` files before Snakemake's own (last-wins) reading is validated."""
    for path in paths:
        read_yaml(path)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML config file."""
    p = Path(path)
    config = read_yaml(p)
    if not isinstance(config, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    validate_config(config)
    return config


def cells(config: Mapping[str, Any]) -> list[Cell]:
    """The evaluated cells of a (validated) config, in a stable order.

    ``cells: grid`` is every model x method x task combination except those listed under ``screen:``
    (screened cells get only the validation pass); an explicit list is taken as it is.
    """
    spec = config["cells"]
    if spec == "grid":  # every combination, less the cells that are only screened (``screen:``)
        screened = {(c["model"], c["method"], c["task"]) for c in config["screen"]}
        return [
            Cell(m, me, t)
            for m in config["models"]
            for me in config["methods"]
            for t in config["tasks"]
            if (m, me, t) not in screened
        ]
    out = [Cell(c["model"], c["method"], c["task"]) for c in spec]
    dupes = sorted({c.slug for c in out if out.count(c) > 1})
    if dupes:
        raise ConfigError(f"config key 'cells': duplicate cell(s) {dupes}")
    return out


def entropy_kind(config: Mapping[str, Any], model: str) -> str:
    """What a cell's ``mean_entropy`` (and its ``entropy_mean`` feature) is for model ``model``.

    ``exact``: the full-vocabulary entropy (the transformers backend; vllm with ``entropy: hf_rescore``).
    ``topk_lower_k<k>`` / ``topk_mid_k<k>``: vllm's top-k lower bound or midpoint from ``vllm.logprobs``
    = k logprobs per token. Values of different kinds are not comparable.
    """
    m = config["models"][model]
    if m["backend"] != "vllm":
        return "exact"
    mode = m["vllm"]["entropy"]
    if mode == "hf_rescore":
        return "exact"
    return f"{mode}_k{int(m['vllm']['logprobs'])}"


def split_sizes(config: Mapping[str, Any]) -> dict[str, int]:
    """Prompts per task block (``exemplars`` and the sampled splits) of a validated config."""
    return {name: config["splits"][name] for name in BLOCKS}


def model_families(config: Mapping[str, Any]) -> dict[str, str]:
    """Model slug -> base-model family of a validated config (the unit of a leave-one-family-out fit)."""
    return {slug: model["family"] for slug, model in config["models"].items()}


def package_default_config() -> Path:
    """The embedded default config shipped in the repository."""
    return Path(str(importlib.resources.files("bongain"))).resolve().parents[1] / "config" / "config.yaml"


def report_summary(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the report states about the configuration (plain values only)."""
    return {
        "models": {
            k: v["source"].get("repo") or v["source"].get("file") or v["source"].get("path")
            for k, v in config["models"].items()
        },
        "methods": {k: v.get("description", v["prompt_format"]) for k, v in config["methods"].items()},
        "N (samples per prompt)": config["sampling"]["n"],
        "prompts per split": {k: config["splits"][k] for k in SPLITS},
        "scored by (reward_models)": {name: scorer_label(rm) for name, rm in config["reward_models"].items()},
        "sampling seed": config["sampling"]["seed"],
    }


def reward_model_names(config: Mapping[str, Any]) -> list[str]:
    """The reward models of a validated config, in config order."""
    return list(config["reward_models"])


def primary_reward_model(config: Mapping[str, Any]) -> str:
    """The reward model of the single-target fit stages and the report's per-cell sections:
    ``fit.reward_model``, else the first under ``reward_models``."""
    return config["fit"]["reward_model"] or reward_model_names(config)[0]


def scorer_label(reward_model: Mapping[str, Any]) -> str:
    """What scores the samples, as the report prints it: the kind, and the model of a pretrained RM."""
    kind = reward_model["kind"]
    return kind if reward_model["model"] is None else f"{kind} ({reward_model['model']})"
