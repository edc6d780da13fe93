"""Hub downloads in one local stage; every compute job reads the cache offline and never sees the token.

Rule ``download`` (a local rule: it runs inside the snakemake process, on a cluster the login node) fetches
every ``hub`` model and each hub reward model with :func:`download` into the cache (``hub.cache`` ->
``HF_HOME``, else the environment's), keeping only what a checkpoint needs (:func:`allow_patterns`:
weights, tokenizer, config; not e.g. the ``original/*.pth`` copies of the Llama repos). It records the
commit the revision resolved to and the snapshot folder; ``prepare_model`` points the model's manifest at
that snapshot and a score job loads the reward model from it (:func:`snapshot_path`), so the weights a job
loads never move under it. It can run as a step of its own where the internet is (a transfer node):
``snakemake --until download task_split``. Compute jobs call :func:`offline_jobs` first:
``HF_HUB_OFFLINE=1``, so a missing file fails at once instead of downloading on a compute node.

On a cluster the cache must be on a file system the compute nodes see, and big enough:
:func:`cluster_cache_problem` refuses a cache under ``$HOME`` (where quotas are small) unless
``hub.allow_home_cache`` says so. A gated repository (Llama) needs a token: ``HF_TOKEN`` in the
environment of the command that downloads. Before a cluster run submits its first job,
:func:`hold_token` takes the token out of the snakemake process's environment (every job is submitted
with ``sbatch --export=ALL``, i.e. with that environment) and keeps it for the in-process ``download``
jobs only; nothing writes it to a file.
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
    token: str | None = None,
) -> dict[str, Any]:
    """Fetch one checkpoint (``spec`` from :func:`hub_downloads`) and return its record: repo, the
    revision asked for, the commit it resolved to, and the local snapshot folder.

    Safetensors are preferred; a repository without them is fetched again with the PyTorch weights. A
    snapshot with neither raises, naming the repository. ``snapshot_download`` defaults to
    huggingface_hub's (tests pass a fake; nothing else reaches the hub). ``token``: the hub token held by
    :func:`hold_token` (None: huggingface_hub's own lookup, ``HF_TOKEN`` or its token file).
    """
    if snapshot_download is None:
        from huggingface_hub import snapshot_download
    kw = {"repo_id": spec["repo"], "revision": spec["revision"], "cache_dir": hub_cache_dir(cache)}
    if token:
        kw["token"] = token
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


def read_record(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def fetch(
    spec: Mapping[str, Any],
    cache: str | None,
    out: str | Path,
    log_file: str | Path,
    *,
    snapshot_download: Callable[..., str] | None = None,
) -> dict[str, Any]:
    """The ``download`` job: :func:`download` with the held token, the record written to ``out`` and a
    line per step appended to ``log_file`` (it runs inside the snakemake process: no logging set-up)."""
    with open(log_file, "a") as log:
        where = hub_cache_dir(cache) or "the environment's hub cache"
        log.write(f"downloading {spec['repo']} at {spec['revision']} into {where}\n")
        try:
            record = download(spec, cache, snapshot_download=snapshot_download, token=held_token())
        except Exception as err:
            log.write(f"failed: {type(err).__name__}: {err}\n")
            raise
        write_record(record, Path(out))
        log.write(f"record: {json.dumps(record, sort_keys=True)}\n")
    return record


def snapshot_path(record: Mapping[str, Any] | None, model: str) -> str:
    """The folder a job loads a hub checkpoint from: the snapshot its download record names (checked to
    hold a config.json), or ``model`` itself when there is no record (a local folder)."""
    if record is None:
        return model
    if record["repo"] != model:
        raise ValueError(f"download record of {record['repo']!r} does not belong to {model!r}")
    path = Path(record["path"])
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path}: the downloaded snapshot of {model!r} has no config.json (hub cache moved or pruned?); "
            "rerun its download job"
        )
    return str(path)


def use_cache(cache: str | None, env: MutableMapping[str, str] | None = None) -> None:
    """Point ``HF_HOME`` (and the hub cache inside it) at ``cache`` (when set) for this process and the
    jobs it starts."""
    env = os.environ if env is None else env
    if cache:
        env["HF_HOME"] = str(Path(cache).expanduser().resolve())
        env["HF_HUB_CACHE"] = str(Path(env["HF_HOME"]) / "hub")


#: Environment variables huggingface_hub reads a token from.
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_held: dict[str, str] = {}


def hold_token(env: MutableMapping[str, str] | None = None) -> bool:
    """Take the hub token out of ``env`` (the snakemake process's environment, which every SLURM job
    inherits through ``sbatch --export=ALL``) and keep it in this process for :func:`fetch`. Returns
    whether a token was found."""
    env = os.environ if env is None else env
    found = False
    for name in TOKEN_VARIABLES:
        value = env.pop(name, None)
        if value and not found:
            _held["token"] = value
            found = True
    return found


def held_token() -> str | None:
    """The token :func:`hold_token` took, else the environment's (a local run keeps it there)."""
    return _held.get("token") or next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None)


def offline_jobs(cache: str | None, env: MutableMapping[str, str] | None = None) -> None:
    """Environment of a compute job: the hub cache (``HF_HOME``), ``HF_HUB_OFFLINE=1``, and no hub token.

    Call it before anything imports huggingface_hub (it reads the variables on import).
    """
    env = os.environ if env is None else env
    use_cache(cache, env)
    env["HF_HUB_OFFLINE"] = "1"
    for name in TOKEN_VARIABLES:
        env.pop(name, None)


# -- where the checkpoints go ------------------------------------------------------------------------------


def cache_location(cache: str | None, env: Mapping[str, str]) -> tuple[Path, str]:
    """The folder the hub snapshots land in, and what chose it: ``hub.cache`` (its ``hub/``), else
    ``HF_HUB_CACHE``, else ``HF_HOME`` (its ``hub/``), else huggingface_hub's default
    ``~/.cache/huggingface/hub``."""
    home = Path(env.get("HOME") or Path.home())
    if cache:
        return Path(cache).expanduser().resolve() / "hub", "hub.cache"
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser().resolve(), "HF_HUB_CACHE"
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser().resolve() / "hub", "HF_HOME"
    return (home / ".cache" / "huggingface" / "hub").resolve(), "default"


def cluster_cache_problem(cache: str | None, allow_home: bool, env: Mapping[str, str]) -> str | None:
    """Why the hub cache of a cluster run is refused (None: it is not).

    Compute nodes must see the cache and it must hold every checkpoint (about 16 GB per 7-8B model):
    a cache under ``$HOME`` (also huggingface_hub's default, when neither ``hub.cache`` nor ``HF_HOME`` is
    set) is refused unless ``hub.allow_home_cache`` is true.
    """
    if allow_home:
        return None
    location, chosen = cache_location(cache, env)
    home = Path(env.get("HOME") or Path.home()).expanduser().resolve()
    if not location.is_relative_to(home):
        return None
    what = {
        "hub.cache": f"hub.cache puts the hub checkpoints in {location}",
        "HF_HUB_CACHE": f"hub.cache is not set and HF_HUB_CACHE puts the hub checkpoints in {location}",
        "HF_HOME": f"hub.cache is not set and HF_HOME puts the hub checkpoints in {location}",
        "default": (
            "hub.cache is not set, nor HF_HOME or HF_HUB_CACHE, so the hub checkpoints would go to "
            f"huggingface_hub's default {location}"
        ),
    }[chosen]
    return (
        f"config key 'hub.cache': {what}, under your home folder {home}: home quotas are usually too small "
        "for the checkpoints (about 16 GB per 7-8B model). Set hub.cache (or HF_HOME) to a folder on a "
        "shared scratch or project file system that the compute nodes see, or set "
        "hub.allow_home_cache: true if your home can hold them"
    )
