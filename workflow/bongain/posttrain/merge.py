"""Merge a trained LoRA adapter into its starting checkpoint: a plain HF checkpoint with a manifest.

The manifest has the same keys as the one of ``prepare_model`` (``path``, ``dtype``, ``trust_remote_code``)
plus where it came from, so every sampling backend loads a post-trained variant exactly like a shipped
model. Merged checkpoints of Gemma are Gemma derivatives (Gemma Terms of Use); they live under results/,
which git ignores.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bongain.sampling.models import _torch_dtype


def save_checkpoint_atomic(model: Any, tok: Any, out_dir: Path) -> Path:
    """Save ``model`` and ``tok`` as the plain checkpoint folder ``out_dir/hf``, written under a temporary
    name and renamed, so a killed job never leaves a half-written checkpoint; return the folder."""
    dest = out_dir / "hf"
    tmp = out_dir / ".hf.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def merge_adapter(start: Mapping[str, Any], adapter_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Merge ``adapter_dir`` into the checkpoint of manifest ``start``; write ``out_dir/hf`` and
    ``out_dir/manifest.json`` (both atomically); return the manifest."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    trust = bool(start["trust_remote_code"])
    base = AutoModelForCausalLM.from_pretrained(start["path"], dtype=torch.float32, trust_remote_code=trust)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged = merged.to(_torch_dtype(start["dtype"]))
    tok = AutoTokenizer.from_pretrained(start["path"], trust_remote_code=trust)
    dest = save_checkpoint_atomic(merged, tok, out_dir)
    manifest = {
        "path": str(dest.resolve()),
        "dtype": start["dtype"],
        "trust_remote_code": trust,
        "start": str(start["path"]),
        "adapter": str(Path(adapter_dir).resolve()),
    }
    staged = out_dir / ".manifest.json.tmp"
    staged.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(staged, out_dir / "manifest.json")
    return manifest
