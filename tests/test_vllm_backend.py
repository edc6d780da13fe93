"""The vLLM backend: contract tests through the sampling fake (tests/fakes/vllm_fake.py: a fake LM whose
next-token logits the tests recompute independently, so seeds, n, EOS, stop strings and raw-vs-processed
logprobs are checked against what vLLM's semantics give), the sample job's vLLM branch end to end, and
the exact entropy rescoring run for real with a tiny random Llama on CPU. vLLM itself never runs here."""

from __future__ import annotations

import math
import sys

import numpy as np
import polars as pl
import pytest
import torch

from bongain.config import ConfigError, complete_block
from bongain.io import conform
from bongain.sampling.loop import SamplingParams, completions_frame, sample_batch, sample_seed
from bongain.sampling.prompts import format_prompt, tokenize_prompt
from bongain.sampling.vllm import (
    engine_kwargs,
    make_engine,
    make_sampling_params,
    map_finish_reason,
    request_seed,
    rescore_entropy,
    rescore_stats,
    sample_vllm,
    sum_logprob,
    tokens_prompts,
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


def test_sample_vllm_contract(fake_vllm, checkpoint):
    tok = build_tokenizer()
    prompts, token_ids = chat_prompts(tok)
    pids = [f"add1-{i:05d}" for i in range(3)]
    p = params()
    cfg = vllm_model({"logprobs": 4, "prompts_per_call": 2})
    comps = sample_vllm(checkpoint, cfg, token_ids, pids, p)

    (llm,) = fake_vllm.LLM.instances
    calls = [c for name, c in llm.calls if name == "generate"]
    assert [len(c["prompts"]) for c in calls] == [2, 1]  # chunked: prompts_per_call
    sent = [pr for c in calls for pr in c["prompts"]]
    sps = [sp for c in calls for sp in c["sampling_params"]]
    # TokensPrompt with exactly the CPU backend's token ids: one BOS, not two
    assert sent == tokens_prompts(token_ids)
    for pr in sent:
        ids = pr["prompt_token_ids"]
        assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
    # one request per prompt, seeded from the global prompt id
    assert [sp.seed for sp in sps] == [request_seed(p.seed, pid, p.n) for pid in pids]
    assert all(sp.n == 4 and sp.logprobs == 4 and sp.stop == ["\n"] and sp.max_tokens == 16 for sp in sps)
    assert all(sp.temperature == 0.7 and sp.top_p == 0.95 and sp.top_k == 0 for sp in sps)

    assert [(c.prompt_index, c.sample_idx) for c in comps] == [(i, j) for i in range(3) for j in range(4)]
    vocab = len(tok)
    for c in comps:
        assert c.seed == sps[c.prompt_index].seed + c.sample_idx
        prompt = token_ids[c.prompt_index]
        # raw logprobs (T=1, full vocabulary), recomputed from the fake LM, not the sampling distribution
        raw = [
            log_softmax(vllm_fake.fake_next_logits(prompt + list(c.token_ids[:t]), vocab, tok.eos_token_id))
            for t in range(c.n_tokens)
        ]
        assert c.sum_logprob == pytest.approx(math.fsum(r[t] for r, t in zip(raw, c.token_ids, strict=True)))
        exact = math.fsum(float(-(np.exp(r) * r).sum()) for r in raw)
        assert 0 <= c.sum_entropy <= exact + 1e-9  # topk_lower is a lower bound of the raw entropy
        assert math.isnan(c.sum_selfcert)  # top-k logprobs cannot give the full-vocabulary self-certainty
        if c.finish_reason == "eos":
            assert c.token_ids[-1] == tok.eos_token_id and tok.eos_token not in c.text
        elif c.finish_reason == "length":
            assert c.n_tokens == p.max_new_tokens
    reasons = {c.finish_reason for c in comps}
    assert {"eos", "length"} <= reasons, reasons
    # the stored seed reproduces the sample on its own (vLLM: child i of seed s is seed s + i)
    llm2 = vllm_fake.LLM(checkpoint["path"])
    for c in comps:
        sp = make_sampling_params(p, c.seed, 4)
        sp.n = 1
        (ro,) = llm2.generate(tokens_prompts([token_ids[c.prompt_index]]), sp)
        assert ro.outputs[0].token_ids == list(c.token_ids)
    # the prompts matter: another prompt under the same seed samples something else
    assert [c.token_ids for c in comps[:4]] != [c.token_ids for c in comps[4:8]]

    cols = completions_frame(comps, prompts, pids)
    df = pl.DataFrame(cols).with_columns(
        model=pl.lit("m"), method=pl.lit("chat"), task=pl.lit("add1"), split=pl.lit("test")
    )
    out = conform(df, "samples")
    assert out.height == 12 and out["n_tokens"].min() >= 1
    assert out["self_certainty"].dtype == pl.Float64 and out["self_certainty"].null_count() == 12
    np.testing.assert_allclose(out["mean_logprob"], out["sum_logprob"] / out["n_tokens"])


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def test_stop_strings_and_large_n(fake_vllm, checkpoint):
    """A stop string ends a sample (cut from the text); N > 4 gives N distinct seeded samples."""
    tok = build_tokenizer()
    _, token_ids = chat_prompts(tok)
    p = SamplingParams(n=12, temperature=1.0, top_p=1.0, max_new_tokens=24, stop=("the",), seed=3)
    comps = sample_vllm(checkpoint, vllm_model({"logprobs": 2}), token_ids[:1], ["q"], p)
    assert len(comps) == 12 and len({c.seed for c in comps}) == 12
    assert len({c.token_ids for c in comps}) > 6
    stopped = [c for c in comps if c.finish_reason == "stop"]
    assert stopped, [c.finish_reason for c in comps]
    for c in stopped:
        full = tok.decode(list(c.token_ids), skip_special_tokens=True)
        assert c.text == full[: full.find("the")]  # cut at the stop string, which the last token completed
        assert "the" not in tok.decode(list(c.token_ids[:-1]), skip_special_tokens=True)


def test_processed_logprobs_differ_from_raw(fake_vllm, checkpoint):
    """What the engine's logprobs_mode changes: bongain keeps vLLM's default (raw) and its sums match the
    raw values; processed ones (after temperature and top-p) would give other sums."""
    tok = build_tokenizer()
    _, token_ids = chat_prompts(tok)
    assert "logprobs_mode" not in engine_kwargs(checkpoint, vllm_model({})["vllm"])
    sp = vllm_fake.SamplingParams(n=2, seed=5, temperature=0.5, top_p=0.9, max_tokens=8, logprobs=0)
    raw = vllm_fake.LLM(checkpoint["path"]).generate(tokens_prompts(token_ids[:1]), sp)[0]
    proc = vllm_fake.LLM(checkpoint["path"], logprobs_mode="processed_logprobs").generate(
        tokens_prompts(token_ids[:1]), sp
    )[0]
    for a, b in zip(raw.outputs, proc.outputs, strict=True):
        assert a.token_ids == b.token_ids  # the same draw
        assert sum_logprob(a) != pytest.approx(sum_logprob(b))
        assert sum_logprob(b) > sum_logprob(a)  # sharpened, truncated distribution


def test_sample_job_vllm_branch(fake_vllm, checkpoint, tmp_path):
    """The sample job (bongain.sampling.split.sample_split) on a vllm model, through the fake."""
    from bongain.sampling.split import sample_split

    tasks = pl.DataFrame(
        {
            "prompt_id": [f"add1-{i:05d}" for i in range(5)],
            "question": [*QUESTIONS, "what is 1 + 1 ?", "what is 6 - 2 ?"],
            "answer": ["7", "10", "8", "2", "4"],
        }
    )
    model_cfg = vllm_model({"tensor_parallel_size": 2, "logprobs": 3, "prompts_per_call": 2})
    method = {**CHAT, "top_p": 0.95, "fewshot_k": 0}
    sampling = {"n": 6, "seed": 7, "batch_prompts": 2, "shard_prompts": None, "threads": 1}
    kw = {
        "manifest": checkpoint,
        "model_cfg": model_cfg,
        "method": method,
        "task_cfg": {"generator": "add1", "answer_type": "number"},
        "sampling": sampling,
        "sizes": {"exemplars": 0, "verifier_train": 0, "validation": 0, "test": 5},
        "split_seed": 0,
        "version": 1,
    }
    cell = {"model": "m", "method": "chat", "task": "add1", "split": "test"}
    df, reused = sample_split(tasks, cell, output=str(tmp_path / "a.parquet"), **kw)
    out = conform(df, "samples")
    assert out.height == 30 and reused == 0
    (engine,) = vllm_fake.LLM.instances  # one engine for the job's three batches
    assert engine.tensor_parallel_size == 2
    gens = [c for name, c in engine.calls if name == "generate"]
    assert [len(c["prompts"]) for c in gens] == [2, 2, 1]
    seeds = out.group_by("prompt_id", maintain_order=True).agg(pl.col("seed"))
    for pid, s in zip(seeds["prompt_id"], seeds["seed"], strict=True):
        base = request_seed(7, pid, 6)
        assert s.to_list() == [base + i for i in range(6)]
    assert out["sample_idx"].to_list() == list(range(6)) * 5
    assert set(out["finish_reason"]) <= {"eos", "stop", "length"}
    # same inputs, fresh engine: byte-identical samples
    again, _ = sample_split(tasks, cell, output=str(tmp_path / "b.parquet"), **kw)
    assert conform(again, "samples").equals(out)


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


def test_double_bos_pitfall_and_fix(fake_vllm, checkpoint):
    llm = vllm_fake.LLM(checkpoint["path"])
    tok = llm.get_tokenizer()
    prompts, token_ids = chat_prompts(tok)
    sp = vllm_fake.SamplingParams(n=1, logprobs=0)
    bos = tok.bos_token_id
    (raw,) = llm.generate(prompts[:1], sp)  # the pitfall: a templated string gets a second BOS
    assert raw.prompt_token_ids[:2] == [bos, bos]
    (fixed,) = llm.generate(prompts[:1], sp, tokenization_kwargs={"add_special_tokens": False})
    (ours,) = llm.generate(tokens_prompts(token_ids[:1]), sp)
    msgs = [{"role": "system", "content": CHAT["system_prompt"]}, {"role": "user", "content": QUESTIONS[0]}]
    (chat,) = llm.chat(msgs, sp)
    assert fixed.prompt_token_ids == ours.prompt_token_ids == chat.prompt_token_ids == token_ids[0]
    assert ours.prompt_token_ids[1] != bos


def test_logprobs_semantics(fake_vllm, checkpoint):
    llm = vllm_fake.LLM(checkpoint["path"])
    (none,) = llm.generate([{"prompt_token_ids": [1, 5]}], vllm_fake.SamplingParams(n=2))
    c = none.outputs[0]
    assert c.cumulative_logprob is None and c.logprobs is None
    with pytest.raises(ValueError, match="logprobs must be set"):
        sum_logprob(c)
    (zero,) = llm.generate([{"prompt_token_ids": [1, 5]}], vllm_fake.SamplingParams(n=2, logprobs=0))
    c = zero.outputs[1]
    # logprobs=0: only the sampled token per position, and the sum
    assert all(list(pos) == [t] for pos, t in zip(c.logprobs, c.token_ids, strict=True))
    assert sum_logprob(c) == pytest.approx(
        math.fsum(pos[t].logprob for pos, t in zip(c.logprobs, c.token_ids, strict=True))
    )


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
