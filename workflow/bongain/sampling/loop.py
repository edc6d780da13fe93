"""CPU/any-device sampling with HF transformers: N completions per prompt, prompt KV shared.

The loop is a lean replacement for ``model.generate``:

* each batch of prompts is prefilled once (left padding, explicit position ids);
* the prompt KV cache is repeated N times (``batch_repeat_interleave``), so N samples cost one prefill;
* decoding draws every token by inverse-CDF sampling with one uniform number from a counter-based
  random stream keyed by (seed, prompt_id, sample_idx): a sample does not depend on which other prompts
  share its batch, only on the model's logits;
* rows that hit a stop string, EOS or ``max_new_tokens`` leave the batch (``batch_select_indices``).

Per token it records the raw (temperature 1, full vocabulary) log-probability of the sampled token and
the entropy of the raw next-token distribution: the same quantities as vLLM's default ``raw_logprobs``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SamplingParams:
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    stop: tuple[str, ...]
    seed: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"sampling.n must be >= 1, got {self.n}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class Completion:
    prompt_index: int
    sample_idx: int
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str  # stop | eos | length
    sum_logprob: float
    sum_entropy: float
    seed: int

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)


def sample_seed(base_seed: int, prompt_id: str, sample_idx: int) -> int:
    """A 63-bit seed for one sample, a pure function of (base seed, global prompt id, sample index)."""
    h = hashlib.blake2b(f"{base_seed}\x1f{prompt_id}\x1f{sample_idx}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 1


def uniform_stream(seed: int) -> Iterator[float]:
    """Counter-based uniforms in [0, 1): the t-th value depends only on (seed, t)."""
    gen = np.random.Generator(np.random.Philox(key=seed))
    while True:
        yield from gen.random(16).tolist()


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; return (text, whether a stop string was found)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def choose_tokens(
    logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_p: float
) -> torch.Tensor:
    """Inverse-CDF sampling of one token per row from softmax(logits / T) restricted to the top-p nucleus.

    ``uniforms`` holds one U[0,1) per row. Tokens are ordered by descending probability (ties by id), so
    the nucleus is a prefix of that order; the same row logits and uniform give the same token.
    """
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:  # no nucleus: invert the CDF in token-id order, no sort needed
        sorted_p, order = probs, None
        cum = sorted_p.cumsum(dim=-1)
    else:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        cum = sorted_p.cumsum(dim=-1)
        keep = (cum - sorted_p) < top_p  # a token stays if the mass before it is below top_p
        sorted_p = sorted_p * keep
        cum = sorted_p.cumsum(dim=-1)
    target = uniforms.to(cum.dtype).unsqueeze(-1) * cum[:, -1:]
    pos = torch.searchsorted(cum, target, right=True).clamp(max=cum.shape[-1] - 1)
    # never land on a zero-probability token (possible only through rounding at the very end)
    last_nonzero = sorted_p.shape[-1] - 1 - (sorted_p.flip(-1) > 0).int().argmax(dim=-1, keepdim=True)
    pos = torch.minimum(pos, last_nonzero)
    return (order.gather(-1, pos) if order is not None else pos).squeeze(-1)


def raw_logprob_entropy(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``tokens`` and entropy (nats) under the raw softmax(logits)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return chosen, entropy


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids, mask


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix shared by all sequences, leaving at least one token of each."""
    limit = min(len(s) for s in seqs) - 1
    n = 0
    while n < limit and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n


@torch.inference_mode()
def sample_batch(
    model: torch.nn.Module,
    decode: Callable[[Sequence[int]], str],
    prompt_token_ids: Sequence[Sequence[int]],
    seeds: Sequence[Sequence[int]],
    params: SamplingParams,
    *,
    pad_id: int,
    eos_ids: frozenset[int],
    share_prefill: bool = True,
) -> list[Completion]:
    """Sample ``params.n`` completions for each prompt of one batch with one shared prefill.

    ``seeds[i][j]`` is the seed of sample j of prompt i. Returns completions in (prompt, sample) order.
    ``share_prefill=False`` is the naive baseline (benchmarks only): every sample prefills its own copy of
    the prompt, as ``generate(num_return_sequences=N)`` does.
    """
    n = params.n
    if not share_prefill:
        copies = [p for p in prompt_token_ids for _ in range(n)]
        flat_seeds = [[s] for row in seeds for s in row]
        once = SamplingParams(**{**params.__dict__, "n": 1})
        flat = _sample_batch(model, decode, copies, flat_seeds, once, pad_id, eos_ids, share_prefix=False)
        return [
            Completion(**{**c.__dict__, "prompt_index": i // n, "sample_idx": i % n})
            for i, c in enumerate(flat)
        ]
    return _sample_batch(model, decode, prompt_token_ids, seeds, params, pad_id, eos_ids, share_prefix=True)


def _sample_batch(
    model: torch.nn.Module,
    decode: Callable[[Sequence[int]], str],
    prompt_token_ids: Sequence[Sequence[int]],
    seeds: Sequence[Sequence[int]],
    params: SamplingParams,
    pad_id: int,
    eos_ids: frozenset[int],
    *,
    share_prefix: bool,
) -> list[Completion]:
    n, b = params.n, len(prompt_token_ids)
    shared = common_prefix_length(prompt_token_ids) if share_prefix else 0
    cache = None
    if shared > 0:  # prefill the tokens every prompt of the batch starts with once
        prefix = torch.tensor([prompt_token_ids[0][:shared]], dtype=torch.long)
        cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(b)
    ids, suffix_mask = _left_pad([p[shared:] for p in prompt_token_ids], pad_id)
    mask = torch.cat([torch.ones((b, shared), dtype=torch.long), suffix_mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    cache = out.past_key_values
    logits = out.logits[:, -1, :].repeat_interleave(n, dim=0)
    cache.batch_repeat_interleave(n)
    mask = mask.repeat_interleave(n, dim=0)
    next_pos = positions[:, -1].repeat_interleave(n) + 1

    rows = len(prompt_token_ids) * n
    streams = [uniform_stream(seeds[r // n][r % n]) for r in range(rows)]
    generated: list[list[int]] = [[] for _ in range(rows)]
    sum_lp = [0.0] * rows
    sum_h = [0.0] * rows
    reasons: list[str | None] = [None] * rows
    alive = list(range(rows))  # row ids still decoding, in cache order

    for step in range(params.max_new_tokens):
        u = torch.tensor([next(streams[r]) for r in alive], dtype=torch.float64)
        tokens = choose_tokens(logits, u, params.temperature, params.top_p)
        lp, h = raw_logprob_entropy(logits, tokens)
        keep: list[int] = []
        for j, r in enumerate(alive):
            tok = int(tokens[j])
            generated[r].append(tok)
            sum_lp[r] += float(lp[j])
            sum_h[r] += float(h[j])
            if tok in eos_ids:
                reasons[r] = "eos"
            elif params.stop and truncate_at_stop(decode(generated[r]), params.stop)[1]:
                reasons[r] = "stop"
            elif step == params.max_new_tokens - 1:
                reasons[r] = "length"
            else:
                keep.append(j)
        if not keep:
            break
        if len(keep) < len(alive):
            idx = torch.tensor(keep, dtype=torch.long)
            cache.batch_select_indices(idx)
            mask, next_pos, tokens = mask[idx], next_pos[idx], tokens[idx]
            alive = [alive[j] for j in keep]
        mask = torch.cat([mask, torch.ones((len(alive), 1), dtype=mask.dtype)], dim=1)
        out = model(
            input_ids=tokens.unsqueeze(-1),
            attention_mask=mask,
            position_ids=next_pos.unsqueeze(-1),
            past_key_values=cache,
            use_cache=True,
        )
        cache = out.past_key_values
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1

    result = []
    for r in range(rows):
        toks = generated[r]
        text_ids = toks[:-1] if reasons[r] == "eos" else toks
        text, _ = truncate_at_stop(decode(text_ids), params.stop)
        result.append(
            Completion(
                prompt_index=r // n,
                sample_idx=r % n,
                text=text,
                token_ids=tuple(toks),
                finish_reason=reasons[r] or "length",
                sum_logprob=sum_lp[r],
                sum_entropy=sum_h[r],
                seed=seeds[r // n][r % n],
            )
        )
    return result


def sample_prompts(
    model: torch.nn.Module,
    tokenizer: object,
    prompts: Sequence[str],
    prompt_token_ids: Sequence[Sequence[int]],
    prompt_ids: Sequence[str],
    params: SamplingParams,
    *,
    batch_prompts: int,
    progress: bool = True,
    share_prefill: bool = True,
) -> list[Completion]:
    """Sample ``params.n`` completions for every prompt, ``batch_prompts`` prompts per forward batch.

    Batches are formed in the given prompt order; ``Completion.prompt_index`` indexes ``prompts``.
    """
    from tqdm.auto import tqdm

    if not (len(prompts) == len(prompt_token_ids) == len(prompt_ids)):
        raise ValueError("prompts, prompt_token_ids and prompt_ids must have the same length")
    eos = getattr(tokenizer, "eos_token_id", None)
    eos_ids = frozenset([eos] if isinstance(eos, int) else (eos or []))
    pad = getattr(tokenizer, "pad_token_id", None)
    pad_id = pad if pad is not None else (min(eos_ids) if eos_ids else 0)

    def decode(ids: Sequence[int]) -> str:
        return tokenizer.decode(list(ids), skip_special_tokens=True)  # type: ignore[attr-defined]

    out: list[Completion] = []
    bar = tqdm(total=len(prompts) * params.n, unit="sample", disable=not progress, mininterval=2.0)
    for start in range(0, len(prompts), batch_prompts):
        stop = min(start + batch_prompts, len(prompts))
        seeds = [
            [sample_seed(params.seed, prompt_ids[i], j) for j in range(params.n)] for i in range(start, stop)
        ]
        batch = sample_batch(
            model,
            decode,
            prompt_token_ids[start:stop],
            seeds,
            params,
            pad_id=pad_id,
            eos_ids=eos_ids,
            share_prefill=share_prefill,
        )
        out.extend(
            Completion(
                prompt_index=c.prompt_index + start,
                sample_idx=c.sample_idx,
                text=c.text,
                token_ids=c.token_ids,
                finish_reason=c.finish_reason,
                sum_logprob=c.sum_logprob,
                sum_entropy=c.sum_entropy,
                seed=c.seed,
            )
            for c in batch
        )
        bar.update((stop - start) * params.n)
    bar.close()
    return out


def completions_frame(
    completions: Sequence[Completion], prompts: Sequence[str], prompt_ids: Sequence[str]
) -> dict[str, list]:
    """Columns of the samples table (without the cell/split columns) for a list of completions."""
    return {
        "prompt_id": [prompt_ids[c.prompt_index] for c in completions],
        "sample_idx": [c.sample_idx for c in completions],
        "prompt": [prompts[c.prompt_index] for c in completions],
        "completion": [c.text for c in completions],
        "n_tokens": [c.n_tokens for c in completions],
        "finish_reason": [c.finish_reason for c in completions],
        "sum_logprob": [c.sum_logprob for c in completions],
        "mean_logprob": [c.sum_logprob / max(c.n_tokens, 1) for c in completions],
        "mean_entropy": [c.sum_entropy / max(c.n_tokens, 1) for c in completions],
        "seed": [c.seed for c in completions],
    }
