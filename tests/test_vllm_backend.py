"""The vLLM backend without vLLM: the pure parts (request seeds, engine arguments on the CPU and on a GPU,
finish reasons, top-k entropy bounds), the exact entropy rescoring run for real with a tiny random Llama,
and, through the fake (tests/fakes/vllm_fake.py), only what vLLM's CPU engine cannot show: tensor
parallelism and the GPU-memory handoff before ``hf_rescore``. Everything else about the backend runs on the
real engine in tests/test_vllm_engine.py (marker vllm_engine)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from bongain.config import ConfigError, complete_block
from bongain.sampling.loop import SamplingParams, sample_batch, sample_seed
from bongain.sampling.prompts import format_prompt, tokenize_prompt
from bongain.sampling.vllm import (
    engine_kwargs,
    make_engine,
    map_finish_reason,
    request_seed,
    rescore_entropy,
    rescore_stats,
    topk_entropy_bounds,
)
from fakes import vllm_fake
from fakes.tiny_tokenizer import build_tokenizer

CHAT = complete_block(
    "methods.*",
    {
        "prompt_format": "chat",
        "system_prompt": "answer with a number",
        "temperature": 0.7,
        "max_new_tokens": 12,
    },
)
QUESTIONS = ["what is 3 + 4 ?", "what is 2 * 5 ?", "what is 9 - 1 ?"]


def vllm_model(vllm_opts):
    """A vllm model config whose ``vllm`` block the config schema completed, as the pipeline does."""
    return {"backend": "vllm", "vllm": complete_block("models.*.vllm", vllm_opts)}


@pytest.fixture
def fake_vllm(monkeypatch):
    """``import vllm`` resolves to the fake for the duration of a test."""
    monkeypatch.setitem(sys.modules, "vllm", vllm_fake)
    vllm_fake.LLM.instances.clear()
    return vllm_fake


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random Llama causal LM + the tiny tokenizer saved as an HF checkpoint folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer()
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return {"path": str(path), "dtype": "float32", "trust_remote_code": False}


def params(n=4, seed=11):
    return SamplingParams(n=n, temperature=0.7, top_p=0.95, max_new_tokens=16, stop=("\n",), seed=seed)


def chat_prompts(tok):
    prompts = [format_prompt(q, CHAT, [], tok) for q in QUESTIONS]
    return prompts, [tokenize_prompt(p, CHAT, tok) for p in prompts]


# ------------------------------------------------------------------------------------------------ seeds


@pytest.mark.parametrize("n", [1, 3, 4, 8, 33])
def test_request_seeds_give_disjoint_child_blocks(n):
    pids = [f"task-{i:05d}" for i in range(2000)]
    seeds = [request_seed(5, p, n) for p in pids]
    assert seeds == [request_seed(5, p, n) for p in pids]  # a pure function of (base, prompt id, n)
    block = 1 << (n - 1).bit_length()
    assert all(s % block == 0 and 0 <= s and s + n - 1 < 2**63 for s in seeds)
    children = [s + i for s in seeds for i in range(n)]
    assert len(set(children)) == len(children)  # no two samples share a seed
    assert request_seed(6, pids[0], n) != seeds[0]
    assert (
        request_seed(5, pids[0], n)
        == (sample_seed(5, pids[0], 0) >> (n - 1).bit_length()) << (n - 1).bit_length()
    )


# ---------------------------------------------------------------------------------------------- engine


def test_make_engine_arguments(fake_vllm):
    manifest = {"path": "/models/x", "dtype": "bfloat16", "trust_remote_code": False}
    cfg = vllm_model({"tensor_parallel_size": 2, "max_model_len": 4096, "logprobs": 5})
    llm = make_engine(manifest, cfg, seed=3)
    assert isinstance(llm, vllm_fake.LLM)  # the fake rejects removed 0.33 args (task, swap_space, best_of)
    assert llm.runner == "generate" and llm.tensor_parallel_size == 2 and llm.seed == 3
    assert llm.dtype == "bfloat16" and llm.trust_remote_code is False
    assert llm.extra["enable_prefix_caching"] is True and llm.extra["max_model_len"] == 4096
    assert llm.extra["max_logprobs"] >= 5
    assert "max_model_len" not in engine_kwargs(manifest, vllm_model({})["vllm"])


def test_cpu_engine_arguments():
    """vLLM's CPU build: chunked prefill off (its seeded generators cannot be rewound), a step budget of at
    least the context length (vLLM's condition without chunked prefill), an explicit KV cache."""
    manifest = {"path": "/models/x", "dtype": "bfloat16"}
    short = engine_kwargs(manifest, vllm_model({"max_model_len": 1024})["vllm"], cpu=True, model_max_len=8192)
    assert short["enable_chunked_prefill"] is False and short["max_num_batched_tokens"] == 4096
    assert short["kv_cache_memory_bytes"] == 2 * 2**30
    long = engine_kwargs(manifest, vllm_model({"kv_cache_gib": 0.5})["vllm"], cpu=True, model_max_len=32768)
    assert long["max_num_batched_tokens"] == 32768 and long["kv_cache_memory_bytes"] == 2**29
    gpu = engine_kwargs(manifest, vllm_model({})["vllm"])  # a GPU engine keeps vLLM's own scheduling
    assert not {"enable_chunked_prefill", "max_num_batched_tokens", "kv_cache_memory_bytes"} & set(gpu)
    with pytest.raises(ValueError, match="context length"):
        engine_kwargs(manifest, vllm_model({})["vllm"], cpu=True, model_max_len=None)


def test_a_cpu_engine_with_chunked_prefill_is_refused():
    """Seeds the CPU engine cannot honour: an engine with chunked prefill on is refused before sampling,
    naming the model key (a stand-in object: only its scheduler config is read)."""
    from types import SimpleNamespace

    from bongain.sampling.vllm import EngineError, check_seeded_sampling

    def engine(chunked):
        sched = SimpleNamespace(enable_chunked_prefill=chunked)
        return SimpleNamespace(
            llm_engine=SimpleNamespace(vllm_config=SimpleNamespace(scheduler_config=sched))
        )

    with pytest.raises(EngineError, match=r"models\.m1: .*chunked prefill on.*cannot honour"):
        check_seeded_sampling(engine(True), "m1", cpu=True)
    check_seeded_sampling(engine(False), "m1", cpu=True)
    check_seeded_sampling(engine(True), "m1", cpu=False)  # a GPU engine rewinds its CUDA generators


def test_vllm_options_validation():
    assert vllm_model({})["vllm"]["entropy"] == "topk_lower"
    with pytest.raises(ConfigError, match=r"'models\.\*\.vllm\.logprobs'"):
        vllm_model({"entropy": "topk_mid", "logprobs": 0})
    assert vllm_model({"entropy": "hf_rescore", "logprobs": 0})["vllm"]["logprobs"] == 0
    with pytest.raises(ConfigError, match=r"'models\.\*\.vllm\.entropy'"):
        vllm_model({"entropy": "exact"})


# ------------------------------------------------------------------------------------------ the contract


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


@pytest.mark.parametrize(
    ("finish", "stop_reason", "ours"),
    [("stop", None, "eos"), ("stop", "\n", "stop"), ("stop", 128009, "eos"), ("length", None, "length")],
)
def test_finish_reason_mapping(finish, stop_reason, ours):
    assert map_finish_reason(finish, stop_reason) == ours


@pytest.mark.parametrize("finish", ["abort", "error", "repetition", None])
def test_incomplete_samples_raise(finish):
    with pytest.raises(ValueError, match="finish_reason"):
        map_finish_reason(finish, None)


# --------------------------------------------------------------------------------------------- entropy


def _position(p: np.ndarray, k: int, sampled: int) -> dict[int, vllm_fake.Logprob]:
    order = np.argsort(-p, kind="stable")
    rank = {int(t): r + 1 for r, t in enumerate(order)}
    keep = {int(t) for t in order[:k]} | {sampled}
    return {t: vllm_fake.Logprob(float(np.log(p[t])), rank[t], None) for t in keep}


@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_topk_bounds_contain_exact_entropy(k):
    rng = np.random.default_rng(k)
    vocab = 500
    for scale in (0.3, 1.0, 3.0, 8.0):
        for _ in range(25):
            z = rng.normal(0, scale, vocab)
            p = np.exp(z - z.max())
            p /= p.sum()
            exact = float(-(p * np.log(p)).sum())
            lo, hi = topk_entropy_bounds(_position(p, k, int(rng.integers(vocab))), k, vocab)
            assert lo - 1e-9 <= exact <= hi + 1e-9
    # a fully known distribution: both bounds are exact
    p = np.array([0.5, 0.3, 0.2])
    lo, hi = topk_entropy_bounds(_position(p, 3, 0), 3, 3)
    assert lo == pytest.approx(hi) == pytest.approx(float(-(p * np.log(p)).sum()))


@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_rescore_entropy_matches_the_cpu_sampler(tiny_lm, chunk):
    """The HF rescoring pass reproduces the entropies the CPU sampler recorded while sampling, with the
    LM head applied to at most ``chunk`` positions per row at a time."""
    prompts = [[5, 6, 7, 8, 9], [5, 6, 3]]
    p = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=7, stop=(), seed=2)
    seeds = [[sample_seed(2, f"p{i}", j) for j in range(3)] for i in range(2)]
    comps = sample_batch(tiny_lm, lambda ids: "", prompts, seeds, p, pad_id=0, eos_ids=frozenset([1]))
    seqs = [(prompts[c.prompt_index], c.token_ids) for c in comps]
    widths = []
    hook = tiny_lm.get_output_embeddings().register_forward_hook(
        lambda mod, args, out: widths.append(out.shape[-2])
    )
    try:
        for batch_size in (1, 4):
            ent = rescore_entropy(tiny_lm, seqs, batch_size=batch_size, pad_id=0, logits_chunk=chunk)
            assert [len(e) for e in ent] == [c.n_tokens for c in comps]
            for c, e in zip(comps, ent, strict=True):
                assert float(e.sum()) == pytest.approx(c.sum_entropy, abs=1e-4)
            # the same pass gives the exact self-certainty the CPU sampler records
            stats = rescore_stats(tiny_lm, seqs, batch_size=batch_size, pad_id=0, logits_chunk=chunk)
            for c, e, (h, sc) in zip(comps, ent, stats, strict=True):
                assert np.array_equal(h, e) and len(sc) == c.n_tokens
                assert float(sc.sum()) == pytest.approx(c.sum_selfcert, abs=1e-4)
    finally:
        hook.remove()
    assert widths and max(widths) <= chunk  # logits of at most `chunk` positions exist at once


def test_sample_vllm_with_hf_rescore(fake_vllm, checkpoint, monkeypatch):
    from bongain.sampling import vllm as bvllm
    from bongain.sampling.backends import VllmBackend
    from bongain.sampling.models import load_causal_lm

    loaded = bvllm._rescoring_model

    def rescoring_model(*args):  # the HF copy may only load once every engine is shut down
        assert all(e.shut_down for e in vllm_fake.LLM.instances), "engine alive while the HF copy loads"
        return loaded(*args)

    monkeypatch.setattr(bvllm, "_rescoring_model", rescoring_model)
    tok = build_tokenizer()
    _, token_ids = chat_prompts(tok)
    cfg = vllm_model({"entropy": "hf_rescore", "logprobs": 0, "rescore_batch_size": 3})
    backend = VllmBackend(checkpoint, cfg, seed=11)
    batches = [
        backend.sample([], token_ids[i : i + 1], [f"p{i}"], params(n=3), batch_prompts=1) for i in (0, 1)
    ]
    comps = [c for b in batches for c in b]
    # one engine per batch, each released before its rescoring; a released engine is never reused
    assert len(vllm_fake.LLM.instances) == 2 and all(e.shut_down for e in vllm_fake.LLM.instances)
    assert all(
        sp.logprobs == 0 for e in vllm_fake.LLM.instances for _, c in e.calls for sp in c["sampling_params"]
    )
    model, _ = load_causal_lm(checkpoint)
    for i, batch in enumerate(batches):
        stats = rescore_stats(model, [(token_ids[i], c.token_ids) for c in batch], batch_size=1)
        for c, (e, sc) in zip(batch, stats, strict=True):
            assert math.isfinite(c.sum_entropy) and c.sum_entropy == pytest.approx(float(e.sum()), abs=1e-4)
            # hf_rescore: the exact self-certainty, from the same rescoring pass
            assert c.sum_selfcert > 0 and c.sum_selfcert == pytest.approx(float(sc.sum()), abs=1e-4)
    assert len(comps) == 6


def test_user_instruction_goes_into_the_user_turn():
    """R1-distill style prompting: no system turn, the instruction after the question in the user turn."""
    tok = build_tokenizer()
    method = complete_block(
        "methods.*",
        {
            "prompt_format": "chat",
            "user_instruction": "please reason",
            "temperature": 0.6,
            "max_new_tokens": 8,
        },
    )
    text = format_prompt("what is 3 + 4 ?", method, [], tok)
    assert "<|system|>" not in text
    assert "<|user|> what is 3 + 4 ?\n\nplease reason <|eot|>" in text
