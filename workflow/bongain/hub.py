"""Hub downloads in one local stage; every compute job reads the cache offline.

Rule ``download`` (a local rule: it runs inside the snakemake process, on a cluster the login node, which
has the internet) fetches every ``hub`` model and each hub reward model with :func:`download` into the cache
(``hub.cache`` -> ``HF_HOME``, else the environment's), keeping only what a checkpoint needs
(:func:`allow_patterns`: weights, tokenizer, config; not e.g. the ``original/*.pth`` copies of the Llama
repos). It records the commit the revision resolved to; ``prepare_model`` then points the model's manifest
at that snapshot, so the weights a job loads never move under it. Compute jobs call :func:`offline_jobs`
first: ``HF_HUB_OFFLINE=1``, so a missing file fails at once instead of downloading on a compute node.

A gated repository (Llama) needs a token: ``export HF_TOKEN=...`` before ``snakemake`` (huggingface_hub
reads it from the environment; nothing writes it to a file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping, MutableMapping
from pathlib import Path
from typing import Any

#: A checkpoint's files besides the weights: config, generation config, tokenizer and chat template.
CONFIG_FILES: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "chat_template.*",
)
#: Weights: safetensors; the PyTorch pickles only for a repository that has no safetensors.
WEIGHTS: tuple[str, ...] = ("*.safetensors", "*.safetensors.index.json")
FALLBACK_WEIGHTS: tuple[str, ...] = ("pytorch_model*.bin", "pytorch_model.bin.index.json")
#: Remote code (``trust_remote_code: true`` only).
CODE: tuple[str, ...] = ("*.py",)


def reward_model_download(name: str) -> str:
    """The download name of reward model ``name`` (an entry of ``reward_models``)."""
    return f"rm-{name}"


def allow_patterns(trust_remote_code: bool, weights: tuple[str, ...] = WEIGHTS) -> list[str]:
    """``snapshot_download(allow_patterns=...)`` of a checkpoint."""
    return [*CONFIG_FILES, *weights, *(CODE if trust_remote_code else ())]


def is_local_folder(name: str) -> bool:
    """Whether a reward model's ``model`` names a local folder (else a hub repository id)."""
    return Path(name).expanduser().is_dir()


def hub_downloads(config: Mapping[str, Any], trained: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """Download name -> {repo, revision, trust_remote_code}: every hub model, and every reward model that
    is a pretrained one on the hub (``rm-<name>``; the names in ``trained``, scorers trained per cell like
    the offline verifier, download nothing)."""
    out = {
        f"model-{slug}": {
            "repo": m["source"]["repo"],
            "revision": m["source"]["revision"],
            "trust_remote_code": bool(m["trust_remote_code"]),
        }
        for slug, m in config["models"].items()
        if m["source"]["kind"] == "hub"
    }
    for name, rm in config["reward_models"].items():
        if name not in trained and not is_local_folder(rm["model"]):
            out[reward_model_download(name)] = {
                "repo": rm["model"],
                "revision": rm["revision"],
                "trust_remote_code": bool(rm["trust_remote_code"]),
            }
    return out


def hub_cache_dir(cache: str | None) -> str | None:
    """The hub cache under ``HF_HOME`` = ``cache`` (None: huggingface_hub's default from the environment)."""
    return str(Path(cache).expanduser().resolve() / "hub") if cache else None


def _has_weights(path: Path) -> bool:
    return any(path.rglob("*.safetensors")) or any(path.rglob("pytorch_model*.bin"))


def download(
    spec: Mapping[str, Any],
    cache: str | None = None,
    *,
    snapshot_download: Callable[..., str] | None = None,
) -> dict[str, Any]:
    """Fetch one checkpoint (``spec`` from :func:`hub_downloads`) and return its record: repo, the
    revision asked for, the commit it resolved to, and the local snapshot folder.

    Safetensors are preferred; a repository without them is fetched again with the PyTorch weights. A
    snapshot with neither raises, naming the repository. ``snapshot_download`` defaults to
    huggingface_hub's (tests pass a fake; nothing else reaches the hub).
    """
    if snapshot_download is None:
        from huggingface_hub import snapshot_download
    kw = {"repo_id": spec["repo"], "revision": spec["revision"], "cache_dir": hub_cache_dir(cache)}
    trust = bool(spec["trust_remote_code"])
    path = Path(snapshot_download(**kw, allow_patterns=allow_patterns(trust)))
    if not _has_weights(path):
        path = Path(snapshot_download(**kw, allow_patterns=allow_patterns(trust, FALLBACK_WEIGHTS)))
    if not _has_weights(path):
        raise FileNotFoundError(
            f"hub repository {spec['repo']!r} at {spec['revision']!r}: no *.safetensors or "
            f"pytorch_model*.bin weights in {path}"
        )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"hub repository {spec['repo']!r} at {spec['revision']!r}: no config.json")
    return {"repo": spec["repo"], "revision": spec["revision"], "commit": path.name, "path": str(path)}


def write_record(record: Mapping[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(dict(record), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out)


def use_cache(cache: str | None, env: MutableMapping[str, str] | None = None) -> None:
    """Point ``HF_HOME`` at ``cache`` (when set) for this process and the jobs it starts."""
    env = os.environ if env is None else env
    if cache:
        env["HF_HOME"] = str(Path(cache).expanduser().resolve())


def offline_jobs(cache: str | None, env: MutableMapping[str, str] | None = None) -> None:
    """Environment of a compute job: the hub cache (``HF_HOME``) and ``HF_HUB_OFFLINE=1``.

    Call it before anything imports huggingface_hub (it reads the variables on import).
    """
    env = os.environ if env is None else env
    use_cache(cache, env)
    env["HF_HUB_OFFLINE"] = "1"
