"""vLLM 0.33 generation backend: writes the same samples table as the CPU sampler
(:mod:`bongain.sampling.loop`).

Written against the API brief ``docs/vllm-and-reward-models.md`` (shared docs); see ``docs/backends.md``.
The structure keeps the GPU-only part thin:

* :func:`make_engine` is the only place that constructs ``vllm.LLM`` (``vllm`` is imported lazily, so this
  module imports on machines without it);
* everything else is pure: building ``SamplingParams``, per-prompt request seeds, turning
  ``RequestOutput``/``CompletionOutput`` objects into :class:`bongain.sampling.loop.Completion`, top-k entropy
  bounds, and the exact entropy rescoring with an HF model (:func:`rescore_entropy`, runs on CPU too).

Conventions (all documented in ``docs/backends.md``):

* **Prompts** go in as ``TokensPrompt`` dicts holding exactly the token ids the CPU backend feeds its model
  (:func:`bongain.sampling.prompts.tokenize_prompt`): a chat-templated prompt never gets a second BOS,
  a few-shot prompt gets the tokenizer's BOS once.
* **Seeds.** One request per prompt with ``SamplingParams(n=N, seed=s)``; vLLM gives child ``i`` the seed
  ``s + i``. ``s`` is :func:`request_seed`: the 63-bit hash ``sample_seed(base, prompt_id, 0)`` with its low
  ``ceil(log2 N)`` bits cleared, so each prompt owns an aligned block of ``2**ceil(log2 N)`` seeds and the
  children of two prompts never share a seed (unless the two 63-bit hashes collide on all upper bits).
  The ``seed`` column stores the child's seed ``s + i``.
* **Logprobs.** ``logprobs=k`` (k >= 0) is always set: vLLM leaves ``cumulative_logprob`` None otherwise.
  Values are the default ``raw_logprobs`` (T=1, full vocabulary), like the CPU backend's.
* **Entropy** (``models.<m>.vllm.entropy``): ``topk_lower`` (default) sums per token the lower bound
  ``H_k + r * (-log p_k)`` from the top-k logprobs; ``topk_mid`` the midpoint of that and the upper bound
  ``H_k + r * log((V - m) / r)``; ``hf_rescore`` recomputes the exact entropy of every generated position
  with an HF forward pass over prompt + completion after generation.
* **Self-certainty** (``KL(U || p)`` over the full vocabulary,
  :func:`bongain.sampling.loop.raw_token_stats`) needs every logit of every position, which the top-k
  logprobs do not give: with ``hf_rescore`` the same HF pass computes it exactly; with the top-k modes it
  is not computed (``sum_selfcert`` NaN, a null ``self_certainty`` column).
* **finish_reason**: ``"length"`` -> ``length``; ``"stop"`` with ``stop_reason`` None (EOS) or an int (a stop
  token id) -> ``eos``; ``"stop"`` with a string ``stop_reason`` (a stop string) -> ``stop``; anything else
  (``abort``, ``error``, ``repetition``) raises, so no partial sample is written silently.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from bongain.sampling.loop import Completion, SamplingParams, raw_entropy_selfcert, sample_seed

# --------------------------------------------------------------------------------------------- the seam


#: vLLM's own step budget (``max_num_batched_tokens``) of an ``LLM`` on its CPU platform.
CPU_BATCHED_TOKENS = 4096
#: KV cache of the CPU engine when ``vllm.kv_cache_gib`` is null (on the CPU engine
#: ``gpu_memory_utilization`` is a fraction of the machine's RAM, which vLLM refuses to reserve when other
#: processes hold memory).
CPU_KV_CACHE_GIB = 2.0


def engine_kwargs(
    manifest: Mapping[str, Any],
    opts: Mapping[str, Any],
    seed: int = 0,
    *,
    cpu: bool = False,
    model_max_len: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` for a prepared model (manifest) and its vllm options.

    ``cpu``: the engine is vLLM's CPU build. Its seeded requests sample with CPU ``torch.Generator``
    objects, and vLLM rewinds a request's generator (``set_offset``, CUDA generators only) whenever it
    discards the token sampled for a partially prefilled prompt, i.e. whenever chunked prefill splits a
    prompt because the step's token budget is spent: the engine then stops with "CPU Generator does not
    use offset". So on the CPU engine chunked prefill is off (a prompt is prefilled in one step or waits
    for the next) and the step budget is at least the context length (``model_max_len``: ``max_model_len``
    or the checkpoint's own), which vLLM requires without chunked prefill. The KV cache is sized
    explicitly (``kv_cache_gib``, default :data:`CPU_KV_CACHE_GIB`).
    """
    kw: dict[str, Any] = {
        "model": manifest["path"],
        "runner": "generate",
        "dtype": manifest.get("dtype", "auto"),
        "trust_remote_code": bool(manifest.get("trust_remote_code", False)),
        "tensor_parallel_size": int(opts["tensor_parallel_size"]),
        "gpu_memory_utilization": float(opts["gpu_memory_utilization"]),
        "seed": int(seed),
        "enable_prefix_caching": True,  # the N children of a request share the prompt's KV blocks
        "enforce_eager": bool(opts["enforce_eager"]),
        "max_logprobs": max(20, int(opts["logprobs"])),
    }
    if opts["max_model_len"]:
        kw["max_model_len"] = int(opts["max_model_len"])
    kv_gib = opts.get("kv_cache_gib")
    if kv_gib is None and cpu:
        kv_gib = CPU_KV_CACHE_GIB
    if kv_gib is not None:
        kw["kv_cache_memory_bytes"] = int(float(kv_gib) * 2**30)
    if cpu:
        max_len = int(opts["max_model_len"] or model_max_len or 0)
        if max_len < 1:
            raise ValueError(
                f"{manifest['path']}: the CPU engine needs the context length (vllm.max_model_len, or "
                "max_position_embeddings in the checkpoint's config) to size its step budget"
            )
        kw["enable_chunked_prefill"] = False
        kw["max_num_batched_tokens"] = max(CPU_BATCHED_TOKENS, max_len)
    return kw


def engine_is_cpu() -> bool:
    """Whether the installed vLLM runs on its CPU platform (vLLM's CPU build, no accelerator)."""
    try:
        from vllm.platforms import current_platform
    except ImportError:  # no vllm.platforms (a stand-in module): not the CPU engine
        return False
    return bool(current_platform.is_cpu())


def checkpoint_max_len(manifest: Mapping[str, Any]) -> int | None:
    """The checkpoint's own context length (``max_position_embeddings`` of its text config), if any."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(
            manifest["path"], trust_remote_code=bool(manifest.get("trust_remote_code", False))
        )
    except (OSError, ValueError):
        return None
    value = getattr(cfg.get_text_config(), "max_position_embeddings", None)
    return int(value) if value else None


class EngineError(RuntimeError):
    """vLLM could not serve a model: names the model key and the reason."""


def make_engine(
    manifest: Mapping[str, Any], model_cfg: Mapping[str, Any], seed: int = 0, *, model_key: str = "?"
) -> Any:
    """Construct ``vllm.LLM`` for the model (the only call into vLLM's constructor).

    A checkpoint vLLM cannot load raises :class:`EngineError` naming ``models.<model_key>`` and vLLM's
    reason (its own message is often several exceptions deep)."""
    import vllm

    check_engine_seed(seed, model_key)
    cpu = engine_is_cpu()
    kw = engine_kwargs(
        manifest,
        model_cfg["vllm"],
        seed,
        cpu=cpu,
        model_max_len=checkpoint_max_len(manifest) if cpu else None,
    )
    try:
        return vllm.LLM(**kw)
    except Exception as err:  # vLLM raises ValueError, RuntimeError, pydantic errors, ...
        raise EngineError(
            f"models.{model_key}: vLLM could not load the checkpoint {manifest['path']}: {root_cause(err)}"
        ) from err


#: vLLM seeds its engine processes with ``numpy.random.seed``, which takes 0 .. 2**32 - 1.
ENGINE_SEED_RANGE = range(2**32)


def check_engine_seed(seed: int, model_key: str = "?") -> None:
    """Refuse an engine seed vLLM cannot take (it would fail inside the engine core process, with a
    numpy message and no word of which setting). Request seeds are hashes below 2**63 and always fit."""
    if int(seed) not in ENGINE_SEED_RANGE:
        raise EngineError(
            f"models.{model_key}: sampling.seed = {seed} cannot seed a vLLM engine (it takes "
            f"0 .. {ENGINE_SEED_RANGE.stop - 1}); choose a seed in that range"
        )


def check_seeded_sampling(engine: Any, model_key: str = "?", cpu: bool | None = None) -> None:
    """Refuse, before anything is sampled, a CPU engine that would stop on a seeded request.

    :func:`make_engine` turns chunked prefill off on the CPU engine; an engine built elsewhere with it on
    would sample until a prompt is split across steps and then stop ("CPU Generator does not use
    offset"). bongain never drops the seeds instead: every sample must be reproducible from its seed.
    """
    sched = getattr(
        getattr(getattr(engine, "llm_engine", None), "vllm_config", None), "scheduler_config", None
    )
    if sched is None or not getattr(sched, "enable_chunked_prefill", False):
        return
    if cpu if cpu is not None else engine_is_cpu():
        raise EngineError(
            f"models.{model_key}: this vLLM CPU engine has chunked prefill on, so it cannot honour "
            "per-request seeds (it would stop with 'CPU Generator does not use offset' once a prompt is "
            "prefilled in two steps); build it with bongain.sampling.vllm.make_engine "
            "(enable_chunked_prefill=False on the CPU engine)"
        )


def root_cause(err: BaseException) -> str:
    """The innermost exception of a chain, as 'Type: message' (vLLM wraps the engine core's error)."""
    seen = err
    while seen.__cause__ is not None or (seen.__context__ is not None and not seen.__suppress_context__):
        seen = seen.__cause__ or seen.__context__
    outer = _short(f"{type(err).__name__}: {err}")
    inner = _short(f"{type(seen).__name__}: {seen}")
    return outer if seen is err else f"{outer} (caused by {inner})"


def _short(text: str, limit: int = 600) -> str:
    """One error message without vLLM's list of every supported architecture, at most ``limit`` chars."""
    text = text.split(" Supported architectures:")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_tokenizer(manifest: Mapping[str, Any]) -> Any:
    """The HF tokenizer of a prepared model (the same files vLLM loads), without loading weights."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        manifest["path"], trust_remote_code=bool(manifest.get("trust_remote_code", False))
    )


def vocab_size(manifest: Mapping[str, Any], tokenizer: Any | None = None) -> int:
    """Width V of the model's logits (config ``vocab_size``; ``len(tokenizer)`` if the config has none).

    The logit width can exceed the tokenizer's length (padded embeddings); using the larger value keeps
    the top-k entropy upper bound valid.
    """
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(
            manifest["path"], trust_remote_code=bool(manifest.get("trust_remote_code", False))
        )
        v = getattr(cfg.get_text_config(), "vocab_size", None)
    except (OSError, ValueError):
        v = None
    if v is None and tokenizer is not None:
        v = len(tokenizer)
    if v is None:
        raise ValueError(f"cannot tell the vocabulary size of {manifest['path']}")
    return int(v)


# ------------------------------------------------------------------------------------ pure conversions


def request_seed(base_seed: int, prompt_id: str, n: int) -> int:
    """Seed of the one vLLM request (``n`` children) of a prompt; child ``i`` samples with seed + i.

    The low ``ceil(log2 n)`` bits are cleared, so the seed blocks of different prompts are aligned and
    either identical (a 63-bit hash collision) or disjoint; all seeds stay below 2**63 (Int64 column).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    k = (n - 1).bit_length()
    return (sample_seed(base_seed, prompt_id, 0) >> k) << k


def make_sampling_params(params: SamplingParams, seed: int, logprobs: int) -> Any:
    """``vllm.SamplingParams`` of one prompt's request."""
    from vllm import SamplingParams as VllmSamplingParams

    return VllmSamplingParams(
        n=params.n,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=0,
        max_tokens=params.max_new_tokens,
        seed=seed,
        logprobs=logprobs,
        stop=list(params.stop) or None,
        include_stop_str_in_output=False,
        skip_special_tokens=True,
    )


def tokens_prompts(prompt_token_ids: Sequence[Sequence[int]]) -> list[dict[str, list[int]]]:
    """``TokensPrompt`` dicts: vLLM adds no special tokens to these (no double BOS)."""
    return [{"prompt_token_ids": [int(t) for t in ids]} for ids in prompt_token_ids]


def map_finish_reason(finish_reason: str | None, stop_reason: int | str | None) -> str:
    """vLLM (finish_reason, stop_reason) -> our stop | eos | length."""
    if finish_reason == "length":
        return "length"
    if finish_reason == "stop":
        return "stop" if isinstance(stop_reason, str) else "eos"
    raise ValueError(
        f"vLLM finished a sample with finish_reason={finish_reason!r} (stop_reason={stop_reason!r}); "
        "only 'stop' and 'length' give a complete sample"
    )


def token_logprobs(output: Any) -> list[float]:
    """Log-probability of each generated token, from ``CompletionOutput.logprobs``."""
    if output.logprobs is None:
        raise ValueError(
            "CompletionOutput.logprobs is None: SamplingParams.logprobs must be set (0 is enough)"
        )
    if len(output.logprobs) != len(output.token_ids):
        raise ValueError(
            f"{len(output.logprobs)} logprob positions for {len(output.token_ids)} generated tokens"
        )
    return [float(pos[tid].logprob) for pos, tid in zip(output.logprobs, output.token_ids, strict=True)]


def sum_logprob(output: Any) -> float:
    """Sum of the generated tokens' raw logprobs: ``cumulative_logprob``, or the per-token sum."""
    if output.cumulative_logprob is not None:
        return float(output.cumulative_logprob)
    return math.fsum(token_logprobs(output))


def topk_entropy_bounds(position: Mapping[int, Any], k: int, vocab_size: int) -> tuple[float, float]:
    """Lower and upper bound (nats) on one position's entropy from its top-k ``Logprob`` entries.

    ``position`` maps token id -> Logprob(logprob, rank, decoded_token): the top-k tokens plus the sampled
    one (so up to k + 1 entries). With known probabilities p_j (m entries), H_k = -sum p_j log p_j, tail
    mass r = 1 - sum p_j and p_k the smallest top-k probability, every unseen token has probability
    <= p_k, hence ``H_k + r * (-log p_k) <= H <= H_k + r * log((V - m) / r)``.
    """
    ps = [math.exp(lp.logprob) for lp in position.values()]
    topk = [math.exp(lp.logprob) for lp in position.values() if lp.rank is not None and 1 <= lp.rank <= k]
    h = -math.fsum(p * math.log(p) for p in ps if p > 0)
    r = max(0.0, 1.0 - math.fsum(ps))
    unseen = vocab_size - len(ps)
    if r <= 1e-12 or unseen <= 0:
        return h, h
    p_k = min(topk) if topk else min(ps)
    lower = h + r * -math.log(p_k) if p_k > 0 else h
    upper = h + r * math.log(unseen / r)
    return lower, max(lower, upper)


def sum_topk_entropy(output: Any, mode: str, k: int, vocab_size: int) -> float:
    """Sum over generated positions of the ``topk_lower`` or ``topk_mid`` entropy estimate."""
    if output.logprobs is None:
        raise ValueError("top-k entropy needs CompletionOutput.logprobs (SamplingParams.logprobs >= 1)")
    total = []
    for pos in output.logprobs:
        lo, hi = topk_entropy_bounds(pos, k, vocab_size)
        total.append(lo if mode == "topk_lower" else 0.5 * (lo + hi))
    return math.fsum(total)


def to_completions(
    request_outputs: Sequence[Any],
    request_seeds: Sequence[int],
    n: int,
    *,
    entropy: str,
    logprobs: int,
    vocab_size: int,
) -> list[Completion]:
    """Convert ``generate`` results (one ``RequestOutput`` per prompt, input order) to completions.

    ``Completion.prompt_index`` is the position in ``request_outputs``; samples are ordered by
    ``CompletionOutput.index``. With ``entropy="hf_rescore"`` ``sum_entropy`` and ``sum_selfcert`` are NaN
    until :func:`rescore_stats` fills them; with the top-k modes ``sum_selfcert`` stays NaN (not computable
    from top-k logprobs).
    """
    if len(request_outputs) != len(request_seeds):
        raise ValueError(f"{len(request_outputs)} request outputs for {len(request_seeds)} prompts")
    result: list[Completion] = []
    for i, (ro, seed) in enumerate(zip(request_outputs, request_seeds, strict=True)):
        outs = sorted(ro.outputs, key=lambda c: c.index)
        if [c.index for c in outs] != list(range(n)):
            raise ValueError(
                f"request {ro.request_id}: sample indices {[c.index for c in outs]}, expected 0..{n - 1}"
            )
        for c in outs:
            h = math.nan if entropy == "hf_rescore" else sum_topk_entropy(c, entropy, logprobs, vocab_size)
            result.append(
                Completion(
                    prompt_index=i,
                    sample_idx=int(c.index),
                    text=c.text,
                    token_ids=tuple(int(t) for t in c.token_ids),
                    finish_reason=map_finish_reason(c.finish_reason, c.stop_reason),
                    sum_logprob=sum_logprob(c),
                    sum_entropy=h,
                    seed=seed + int(c.index),
                )
            )
    return result


# ----------------------------------------------------------------------------- exact entropy (HF pass)


def rescore_entropy(
    model: Any,
    sequences: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    batch_size: int = 4,
    pad_id: int = 0,
    logits_chunk: int = 256,
) -> list[np.ndarray]:
    """Exact per-token entropy (nats) of the model's raw next-token distribution at each generated token
    (the entropy half of :func:`rescore_stats`)."""
    stats = rescore_stats(model, sequences, batch_size=batch_size, pad_id=pad_id, logits_chunk=logits_chunk)
    return [h for h, _ in stats]


def rescore_stats(
    model: Any,
    sequences: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    batch_size: int = 4,
    pad_id: int = 0,
    logits_chunk: int = 256,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exact per-token entropy and self-certainty (nats) of the model's raw next-token distribution at
    each generated token: one (entropy, self-certainty) pair of arrays per sequence.

    ``sequences`` holds (prompt token ids, completion token ids). For completion token t the logits z
    (V of them) are those after prompt + completion[:t]; ``H = logsumexp(z) - sum(softmax(z) * z)`` and
    self-certainty ``logsumexp(z) - mean(z) - log V`` (= ``-log V - mean_j log p_j``), in float32 by
    the formulas the CPU decode loops use (:func:`bongain.sampling.loop.raw_entropy_selfcert`).
    Rows are left-padded with explicit position ids and batched by length. The decoder runs once per
    batch; the LM head turns at most ``logits_chunk`` positions per row into float32 logits at a time
    (batch x 4096 positions x a 128k vocabulary would be ~10 GB at once), and only the last
    ``max completion length + 1`` positions at all.
    """
    import torch

    from bongain.scoring.rm_inputs import batches_by_length

    if logits_chunk < 1:
        raise ValueError(f"logits_chunk must be >= 1, got {logits_chunk}")
    device = next(model.parameters()).device
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    softcap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    result: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0))] * len(sequences)
    lengths = [len(p) + len(c) for p, c in sequences]
    for batch in batches_by_length(lengths, batch_size):
        full = [list(sequences[i][0]) + list(sequences[i][1]) for i in batch]
        comp_lens = [len(sequences[i][1]) for i in batch]
        width, keep = max(len(s) for s in full), max(comp_lens) + 1
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, s in enumerate(full):
            ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ent = torch.empty((len(batch), keep), dtype=torch.float32)
        cert = torch.empty((len(batch), keep), dtype=torch.float32)
        with torch.inference_mode():
            hidden = decoder(
                input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device)
            ).last_hidden_state[:, -keep:]
            for start in range(0, keep, logits_chunk):
                z = head(hidden[:, start : start + logits_chunk]).float()
                if softcap:
                    z = torch.tanh(z / softcap) * softcap
                h, sc = raw_entropy_selfcert(z)
                ent[:, start : start + logits_chunk] = h.cpu()
                cert[:, start : start + logits_chunk] = sc.cpu()
                del z, h, sc
        ent, cert = ent.numpy(), cert.numpy()
        for r, i in enumerate(batch):
            c = comp_lens[r]
            # kept position j predicts the token after it: completion tokens are predicted at keep-1-c..keep-2
            span = slice(keep - 1 - c, keep - 1)
            result[i] = (ent[r, span].astype(np.float64), cert[r, span].astype(np.float64))
    return result


def release_engine(engine: Any) -> None:
    """Free a vLLM engine's GPU memory before another model (the HF rescoring copy) loads.

    Shuts the engine down where it offers a ``shutdown()`` (its V1 engine core runs in a separate
    process), then collects and empties the CUDA cache. The caller must drop its own reference too.
    """
    shutdown = getattr(engine, "shutdown", None)
    if shutdown is None:
        shutdown = getattr(
            getattr(getattr(engine, "llm_engine", None), "engine_core", None), "shutdown", None
        )
    if callable(shutdown):
        shutdown()
    gc.collect()
    _empty_cuda_cache()


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------ the driver


def _seed_hint(err: BaseException) -> str:
    text = f"{err} {err.__cause__ or ''}"
    if "does not use offset" in text or "Generator" in text:
        return (
            " (a seeded request's generator could not be rewound: the CPU engine cannot honour seeds "
            "with chunked prefill, which bongain turns off there; see docs/backends.md, Seeds)"
        )
    return ""


def _chunks(n: int, size: int) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def sample_vllm(
    manifest: Mapping[str, Any],
    model_cfg: Mapping[str, Any],
    prompt_token_ids: Sequence[Sequence[int]],
    prompt_ids: Sequence[str],
    params: SamplingParams,
    *,
    engine: Any | None = None,
    tokenizer: Any | None = None,
    log: Any | None = None,
    model_key: str = "?",
) -> list[Completion]:
    """Sample ``params.n`` completions per prompt with vLLM; completions in (prompt, sample) order.

    Prompts go to ``generate`` ``prompts_per_call`` at a time (vLLM batches inside a call; the chunking
    bounds the Python ``Logprob`` objects alive at once). ``engine`` defaults to :func:`make_engine`.
    Every request is seeded (:func:`request_seed`); an engine that fails to honour a seed or stops
    mid-call raises :class:`EngineError` naming ``models.<model_key>``, and nothing is returned.
    """
    if len(prompt_token_ids) != len(prompt_ids):
        raise ValueError("prompt_token_ids and prompt_ids must have the same length")
    opts = model_cfg["vllm"]  # complete: the config schema fills its defaults
    if engine is None:
        engine = make_engine(manifest, model_cfg, seed=params.seed, model_key=model_key)
    check_seeded_sampling(engine, model_key)
    v = vocab_size(manifest, tokenizer)
    seeds = [request_seed(params.seed, pid, params.n) for pid in prompt_ids]
    out: list[Completion] = []
    for sl in _chunks(len(prompt_ids), int(opts["prompts_per_call"])):
        sps = [make_sampling_params(params, s, int(opts["logprobs"])) for s in seeds[sl]]
        try:
            ros = engine.generate(tokens_prompts(prompt_token_ids[sl]), sps, use_tqdm=False)
        except Exception as err:
            raise EngineError(
                f"models.{model_key}: vLLM failed while sampling prompts {sl.start}..{sl.stop - 1} "
                f"({prompt_ids[sl.start]} ...): {root_cause(err)}{_seed_hint(err)}"
            ) from err
        comps = to_completions(
            ros, seeds[sl], params.n, entropy=opts["entropy"], logprobs=int(opts["logprobs"]), vocab_size=v
        )
        out.extend(replace(c, prompt_index=c.prompt_index + sl.start) for c in comps)
        if log is not None:
            log.info("vllm: %d/%d prompts sampled", sl.stop, len(prompt_ids))
    if opts["entropy"] == "hf_rescore":
        # the engine holds most of the GPU: release it (a caller's engine too: it must not reuse it) and
        # only then load the HF copy, which is freed again before the next engine starts
        release_engine(engine)
        del engine
        out = _fill_rescored_entropy(manifest, prompt_token_ids, out, int(opts["rescore_batch_size"]))
    return out


def _rescoring_model(path: str, dtype: str, trust_remote_code: bool) -> tuple[Any, int]:
    """The HF causal LM of the sampled model, on the GPU when there is one, and a pad id."""
    import torch

    from bongain.sampling.models import load_causal_lm

    model, tok = load_causal_lm({"path": path, "dtype": dtype, "trust_remote_code": trust_remote_code})
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tok.pad_token_id if tok.pad_token_id is not None else 0


def _fill_rescored_entropy(
    manifest: Mapping[str, Any],
    prompt_token_ids: Sequence[Sequence[int]],
    completions: list[Completion],
    batch_size: int,
) -> list[Completion]:
    model, pad = _rescoring_model(
        str(manifest["path"]),
        manifest.get("dtype", "bfloat16"),
        bool(manifest.get("trust_remote_code", False)),
    )
    try:
        stats = rescore_stats(
            model,
            [(prompt_token_ids[c.prompt_index], c.token_ids) for c in completions],
            batch_size=batch_size,
            pad_id=pad,
        )
    finally:
        del model
        gc.collect()
        _empty_cuda_cache()
    return [
        replace(c, sum_entropy=float(h.sum()), sum_selfcert=float(sc.sum()))
        for c, (h, sc) in zip(completions, stats, strict=True)
    ]
