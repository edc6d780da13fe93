"""FAKE of ``huggingface_hub.snapshot_download`` (the hub is not reachable here): a few repositories with
the file lists of real ones, materialised in the real cache layout
``<cache_dir>/models--<org>--<name>/snapshots/<commit>/`` with files chosen by huggingface_hub's own
``filter_repo_objects`` (the function ``snapshot_download`` filters with), so a wrong ``allow_patterns``
downloads what it would download from the hub. Every call's arguments are recorded; like the real one it
refuses to work when ``HF_HUB_OFFLINE`` is set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub.utils import filter_repo_objects

LLAMA_FILES = [
    ".gitattributes",
    "LICENSE",
    "README.md",
    "USE_POLICY.md",
    "config.json",
    "generation_config.json",
    "model-00001-of-00004.safetensors",
    "model-00002-of-00004.safetensors",
    "model-00003-of-00004.safetensors",
    "model-00004-of-00004.safetensors",
    "model.safetensors.index.json",
    "original/consolidated.00.pth",  # the 16 GB copy for Meta's own code
    "original/params.json",
    "original/tokenizer.model",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
]
BIN_ONLY_FILES = [
    "config.json",
    "pytorch_model-00001-of-00002.bin",
    "pytorch_model-00002-of-00002.bin",
    "pytorch_model.bin.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "training_args.bin",
    "vocab.json",
    "merges.txt",
]
REMOTE_CODE_FILES = [
    "config.json",
    "configuration_qwen2_rm.py",
    "modeling_qwen2_rm.py",
    "model-00001-of-00001.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
]


@dataclass
class FakeHub:
    """repo id -> (commit of its default branch, file list)."""

    repos: dict[str, tuple[str, list[str]]]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def snapshot_download(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        cache_dir: str | None = None,
        allow_patterns: list[str] | None = None,
        ignore_patterns: list[str] | None = None,
        **kwargs: Any,
    ) -> str:
        self.calls.append(
            {
                "repo_id": repo_id,
                "revision": revision,
                "cache_dir": cache_dir,
                "allow_patterns": allow_patterns,
                "token": kwargs.get("token"),
            }
        )
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
            raise RuntimeError("FakeHub: HF_HUB_OFFLINE is set, snapshot_download cannot reach the hub")
        if repo_id not in self.repos:
            raise FileNotFoundError(f"FakeHub: repository {repo_id!r} not found")
        commit, files = self.repos[repo_id]
        if revision not in (None, "main", commit):
            raise FileNotFoundError(f"FakeHub: revision {revision!r} of {repo_id!r} not found")
        root = Path(cache_dir or Path(os.environ["HF_HOME"]) / "hub")
        snap = root / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
        for name in filter_repo_objects(
            files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns
        ):
            path = snap / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{repo_id}/{name}\n" if name != "config.json" else "{}\n")
        snap.mkdir(parents=True, exist_ok=True)
        return str(snap)
