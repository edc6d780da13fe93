"""Configuration: load, validate against the JSON schema, cross-check, enumerate cells.

Every error is a :class:`ConfigError` whose message starts with the offending key in dotted form,
e.g. ``config key 'methods.chat-t07.temperature': -1 is less than or equal to the minimum of 0``.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from bongain.constants import SPLITS

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


def _schema_errors(config: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema())
    messages = []
    for err in sorted(
        validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message)
    ):
        key = _key(err.absolute_path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            for name in extra:
                full = f"{key}.{name}" if err.absolute_path else name
                messages.append(
                    f"config key '{full}': unknown key (allowed here: {sorted(err.schema['properties'])})"
                )
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
    cells = config.get("cells", "grid")
    if isinstance(cells, list):
        for i, cell in enumerate(cells):
            for kind in ("model", "method", "task"):
                name = cell.get(kind)
                if name is not None and name not in config.get(f"{kind}s", {}):
                    errors.append(
                        f"config key 'cells.{i}.{kind}': {name!r} is not defined under '{kind}s' "
                        f"(defined: {sorted(config.get(f'{kind}s', {}))})"
                    )
    sampling = config.get("sampling", {})
    shard, batch = sampling.get("shard_prompts"), sampling.get("batch_prompts", 8)
    if shard is not None and shard % batch:
        errors.append(
            f"config key 'sampling.shard_prompts': {shard} is not a multiple of sampling.batch_prompts "
            f"({batch}); shards must hold whole batches so that sharded samples equal unsharded ones"
        )
    for slug, model in config.get("models", {}).items():
        src = model.get("source", {})
        needs = {"wheel_gguf": ("package", "file"), "hub": ("repo",), "local": ("path",)}.get(
            src.get("kind"), ()
        )
        for field in needs:
            if field not in src:
                errors.append(
                    f"config key 'models.{slug}.source.{field}': required for kind {src.get('kind')!r}"
                )
    return errors


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` listing every problem, each naming its key."""
    errors = _schema_errors(config)
    if not errors:
        errors = _reference_errors(config)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML config file."""
    p = Path(path)
    try:
        with open(p) as fh:
            config = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from err
    if not isinstance(config, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    validate_config(config)
    return config


def cells(config: Mapping[str, Any]) -> list[Cell]:
    """The evaluated cells of a (validated) config, in a stable order.

    ``cells: grid`` is every model x method x task combination except those listed under ``screen:``
    (screened cells get only the validation pass); an explicit list is taken as it is.
    """
    spec = config.get("cells", "grid")
    if spec == "grid":  # every combination, less the cells that are only screened (``screen:``)
        screened = {(c.get("model"), c.get("method"), c.get("task")) for c in config.get("screen") or []}
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


def split_sizes(config: Mapping[str, Any]) -> dict[str, int]:
    s = config["splits"]
    return {"exemplars": s.get("exemplars", 8), **{name: s[name] for name in SPLITS}}


def method(config: Mapping[str, Any], slug: str) -> dict[str, Any]:
    m = dict(config["methods"][slug])
    m.setdefault("fewshot_k", 4)
    m.setdefault("system_prompt", None)
    m.setdefault("top_p", 1.0)
    return m


def model(config: Mapping[str, Any], slug: str) -> dict[str, Any]:
    m = dict(config["models"][slug])
    m.setdefault("backend", "transformers")
    m.setdefault("dtype", "bfloat16")
    m.setdefault("trust_remote_code", False)
    return m


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
        "verifier": config.get("verifier", {}).get("kind", "offline_logistic"),
        "sampling seed": config["sampling"].get("seed", 0),
    }
