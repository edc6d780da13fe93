"""CPU/any-device sampling with HF transformers: N completions per prompt, prompt KV shared.

The loop is a lean replacement for ``model.generate``:

* each batch of prompts is prefilled once (left padding, explicit position ids);
* the prompt KV cache is repeated N times (``batch_repeat_interleave``), so N samples cost one prefill;
* decoding draws every token by inverse-CDF sampling with one uniform number from a counter-based
  random stream keyed by (seed, prompt_id, sample_idx): a sample does not depend on which other prompts
  share its batch, only on the model's logits;
* rows that hit a stop string, EOS or ``max_new_tokens`` leave the batch (``batch_select_indices``).

That is the reference loop (``loop="reference"``). The default fast loop (:func:`_sample_batch_fast`)
draws the same tokens from the same uniforms but runs the model once per distinct (prompt, prefix)
instead of once per sample, finds stops by token id and preallocates the KV cache (docs/backends.md).
In bf16 a row's logits depend at rounding level on its batch, so the two loops can differ in rare
samples; in float32 they agree.

Per token it records the raw (temperature 1, full vocabulary) log-probability of the sampled token and
the entropy of the raw next-token distribution: the same quantities as vLLM's default ``raw_logprobs``;
and the self-certainty of the raw next-token distribution (Kang et al. 2025),
``KL(U || p) = -log V - (1/V) sum_j log p_j`` over the V logits (:func:`raw_token_stats`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from transformers.cache_utils import DynamicLayer

from bongain.sampling.attention import fast_decode_attention
from bongain.sampling.packed import packed_linears


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
    #: sum over generated tokens of the raw self-certainty KL(U || p_t) (nats); NaN where not computed
    #: (the vLLM backend's top-k entropy modes)
    sum_selfcert: float = math.nan

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


def uniform_block(seed: int, count: int) -> np.ndarray:
    """The first ``count`` values of :func:`uniform_stream` (same seed) as one array."""
    return np.random.Generator(np.random.Philox(key=seed)).random(count)


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; return (text, whether a stop string was found)."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _shifted(logits: torch.Tensor) -> torch.Tensor:
    """``z - max(z)`` per row, in float32: every sampling weight and statistic is computed from it."""
    z = logits.to(torch.float32, copy=True)
    return z.sub_(z.amax(dim=-1, keepdim=True))


def _sampling_weights(
    shifted: torch.Tensor, temperature: float, top_p: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per row: the (unnormalised) sampling weights in inversion order, their cumulative sums and the
    order (None: token-id order).

    Without a nucleus (``top_p = 1``) the weights are ``exp((z - max z) / T)`` in token-id order: no sort,
    no normalisation (the inversion scales the uniform by the row total instead). With a nucleus, tokens
    are ordered by descending probability (ties by id) and a token keeps its weight if the probability
    mass before it is below ``top_p``.
    """
    if top_p >= 1.0:
        weights = torch.div(shifted, temperature).exp_()
        return weights, weights.cumsum(dim=-1), None
    probs = torch.softmax(shifted / temperature, dim=-1)
    sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
    cum = sorted_p.cumsum(dim=-1)
    sorted_p = sorted_p * ((cum - sorted_p) < top_p)  # a token stays if the mass before it is below top_p
    return sorted_p, sorted_p.cumsum(dim=-1), order


def _invert(
    weights: torch.Tensor,
    cum: torch.Tensor,
    order: torch.Tensor | None,
    node: torch.Tensor,
    uniforms: torch.Tensor,
) -> torch.Tensor:
    """Inverse-CDF draw of one token per sample; sample i uses row ``node[i]`` and ``uniforms[i]``.

    The inversion runs as one batched ``searchsorted`` of a (rows x k) table of targets, where k is the
    most samples any row serves (sample i's target sits in row ``node[i]`` at its rank among that row's
    samples): no row is copied per sample.
    """
    rows, vocab = cum.shape
    if len(node) == rows and torch.equal(node, torch.arange(rows)):
        rank = torch.zeros(rows, dtype=torch.long)
    else:  # rank of each sample among the samples of its row, in sample order
        by_node = torch.sort(node, stable=True)
        first = torch.searchsorted(by_node.values, by_node.values)  # where each row's run starts
        rank = torch.empty_like(node)
        rank[by_node.indices] = torch.arange(len(node)) - first
    targets = torch.zeros((rows, int(rank.max()) + 1), dtype=cum.dtype)
    targets[node, rank] = uniforms.to(cum.dtype) * cum[node, vocab - 1]
    pos = torch.searchsorted(cum, targets, right=True).clamp(max=vocab - 1)[node, rank]
    # never land on a zero-weight token (possible only through rounding at the very end); the guard is
    # computed only when some sample landed on one (a position with weight > 0 is never past the last
    # non-zero one, so skipping it then changes nothing)
    if not bool((weights[node, pos] > 0).all()):
        last_nonzero = vocab - 1 - (weights.flip(-1) > 0).int().argmax(dim=-1)
        pos = torch.minimum(pos, last_nonzero[node])
    return order[node, pos] if order is not None else pos


def choose_tokens(
    logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_p: float
) -> torch.Tensor:
    """Inverse-CDF sampling of one token per row from softmax(logits / T) restricted to the top-p nucleus.

    ``uniforms`` holds one U[0,1) per row. Without a nucleus the CDF runs in token-id order; with one,
    tokens are ordered by descending probability (ties by id), so the nucleus is a prefix of that order.
    The same row logits and uniform give the same token.
    """
    weights, cum, order = _sampling_weights(_shifted(logits), temperature, top_p)
    return _invert(weights, cum, order, torch.arange(len(uniforms)), uniforms)


def _raw_stats(shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of ``s = z - max z``: ``log S`` with ``S = sum_j exp(s_j)`` (so ``log p_j = s_j - log S``),
    the entropy ``log S - sum_j exp(s_j) s_j / S`` and the self-certainty ``log S - mean_j s_j - log V``.

    Both statistics are sums of non-negative terms of the shifted logits (``S >= 1``, ``s_j <= 0``), so
    there is no cancellation between large numbers and the entropy is never negative.
    """
    e = torch.exp(shifted)
    total = e.sum(dim=-1)
    log_total = total.log()
    entropy = log_total - torch.linalg.vecdot(e, shifted) / total
    selfcert = log_total - shifted.mean(dim=-1) - math.log(shifted.shape[-1])
    return log_total, entropy, selfcert


#: logits per chunk of rows in :func:`_draw_shared` (8 MiB of float32): the dozen passes over a chunk's
#: full-vocabulary rows then hit the CPU cache instead of memory (Gemma 3 has 262,144 logits a row;
#: ``benchmarks/bench_draw.py`` times a draw whole and in these chunks)
DRAW_CHUNK_LOGITS = 1 << 21


def _draw_shared(
    logits: torch.Tensor, node: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_p: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`choose_tokens` and :func:`raw_token_stats` for samples whose logits are rows of
    ``logits`` (``node[i]`` is sample i's row): the per-row work (shift, weights, cumulative sums,
    normaliser, entropy, self-certainty) runs once per row, then every sample inverts its row's CDF with
    its own uniform. Equal, value for value, to those functions on ``logits[node]``: every operation is
    per row, so it also runs on chunks of rows (:data:`DRAW_CHUNK_LOGITS`) with the same values."""
    rows, vocab = logits.shape
    step = max(1, DRAW_CHUNK_LOGITS // vocab)
    if rows <= step:
        return _draw_rows(logits, node, uniforms, temperature, top_p)
    tokens = torch.empty(len(node), dtype=torch.long)
    stats = [torch.empty(len(node), dtype=torch.float32) for _ in range(3)]
    for start in range(0, rows, step):
        picked = ((node >= start) & (node < start + step)).nonzero().flatten()
        if len(picked) == 0:
            continue
        part = _draw_rows(
            logits[start : start + step], node[picked] - start, uniforms[picked], temperature, top_p
        )
        tokens[picked] = part[0]
        for whole, chunk in zip(stats, part[1:], strict=True):
            whole[picked] = chunk
    return tokens, *stats


def _draw_rows(
    logits: torch.Tensor, node: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_p: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_draw_shared` on all rows at once."""
    shifted = _shifted(logits)
    tokens = _invert(*_sampling_weights(shifted, temperature, top_p), node, uniforms)
    log_total, entropy, selfcert = _raw_stats(shifted)
    return tokens, shifted[node, tokens] - log_total[node], entropy[node], selfcert[node]


def raw_token_stats(
    logits: torch.Tensor, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probability of ``tokens``, entropy and self-certainty (nats) under the raw softmax(logits).

    Self-certainty (Kang et al. 2025) is the KL divergence from the uniform distribution over the V logits
    to p = softmax(logits): ``-log V - (1/V) sum_j log p_j = logsumexp(z) - mean_j z_j - log V``; 0 for a
    uniform p, large for a peaked one. Raw means temperature 1 and the full vocabulary (no top-p), like
    the log-probability and the entropy. All three come from :func:`_raw_stats`.
    """
    shifted = _shifted(logits)
    log_total, entropy, selfcert = _raw_stats(shifted)
    chosen = shifted.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - log_total
    return chosen, entropy, selfcert


def raw_entropy_selfcert(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy and self-certainty (nats) of the raw softmax over the last axis of ``logits`` (any
    leading shape): the formulas of :func:`raw_token_stats`, which the teacher-forced rescoring of vLLM
    samples (:func:`bongain.sampling.vllm.rescore_stats`) shares with both decode loops."""
    _, entropy, selfcert = _raw_stats(_shifted(logits))
    return entropy, selfcert


def raw_logprob_entropy(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``tokens`` and entropy (nats) under the raw softmax(logits)."""
    chosen, entropy, _ = raw_token_stats(logits, tokens)
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
    loop: str = "fast",
    stop_candidates: torch.Tensor | None = None,
) -> list[Completion]:
    """Sample ``params.n`` completions for each prompt of one batch with one shared prefill.

    ``seeds[i][j]`` is the seed of sample j of prompt i. Returns completions in (prompt, sample) order.
    ``share_prefill=False`` is the naive baseline (benchmarks only): every sample prefills its own copy of
    the prompt, as ``generate(num_return_sequences=N)`` does. ``loop`` picks the decode loop: ``fast``
    (:func:`_sample_batch_fast`) or ``reference`` (:func:`_sample_batch`, the original loop); both draw a
    sample's t-th token from the same uniform and record the same statistics. ``stop_candidates`` (fast
    loop) is the boolean table of :func:`stop_candidate_table`, computed here when not given.
    """
    n = params.n
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
    run = _sample_batch if loop == "reference" else _sample_batch_fast
    extra = {} if loop == "reference" else {"stop_candidates": stop_candidates}
    if not share_prefill:
        copies = [p for p in prompt_token_ids for _ in range(n)]
        flat_seeds = [[s] for row in seeds for s in row]
        once = SamplingParams(**{**params.__dict__, "n": 1})
        flat = run(model, decode, copies, flat_seeds, once, pad_id, eos_ids, share_prefix=False, **extra)
        return [
            Completion(**{**c.__dict__, "prompt_index": i // n, "sample_idx": i % n})
            for i, c in enumerate(flat)
        ]
    return run(model, decode, prompt_token_ids, seeds, params, pad_id, eos_ids, share_prefix=True, **extra)


LOOPS = ("fast", "reference")


def stop_candidate_table(
    decode: Callable[[Sequence[int]], str], vocab: int, stop: Sequence[str]
) -> torch.Tensor:
    """Boolean table over token ids: True where a token could complete a stop string.

    A token is a candidate when its text alone contains a character of some stop string, or is not
    plain text on its own (empty, or a partial UTF-8 sequence shown as U+FFFD). The fast loop decodes a
    row only at steps that drew a candidate; a final exact check (:func:`first_stop_prefix`) catches any
    stop string this table would miss, so the table changes speed, never results.
    """
    chars = set("".join(stop))
    if not chars:
        return torch.zeros(vocab, dtype=torch.bool)
    texts = (decode([t]) for t in range(vocab))
    return torch.tensor(
        [not text or "\ufffd" in text or not chars.isdisjoint(text) for text in texts], dtype=torch.bool
    )


def first_stop_prefix(
    token_ids: Sequence[int], decode: Callable[[Sequence[int]], str], stop: Sequence[str]
) -> int | None:
    """The fewest leading tokens whose decoded text contains a stop string (None: no prefix does)."""
    if not stop or not truncate_at_stop(decode(token_ids), stop)[1]:
        return None
    for i in range(1, len(token_ids) + 1):
        if truncate_at_stop(decode(token_ids[:i]), stop)[1]:
            return i
    return None  # pragma: no cover - the full text contains a stop string


class _PreallocLayer(DynamicLayer):
    """A DynamicLayer whose keys/values are views of buffers allocated once with room for every row and
    token to come: a decode step writes one slice instead of concatenating (copying) the whole cache, and
    new rows (samples leaving a shared prefix) are appended by copying only their own prefix."""

    def reserve(self, extra: int, rows: int) -> None:
        """Room for ``extra`` more positions and up to ``rows`` batch rows."""
        b, h, length, d = self.keys.shape
        self._bufs = []
        for t in (self.keys, self.values):
            buf = torch.empty((max(rows, b), h, length + extra, d), dtype=t.dtype, device=t.device)
            buf[:b, :, :length] = t
            self._bufs.append(buf)
        self._rows, self._length = b, length
        self._views()

    def _views(self) -> None:
        self.keys = self._bufs[0][: self._rows, :, : self._length]
        self.values = self._bufs[1][: self._rows, :, : self._length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        m = key_states.shape[-2]
        self._bufs[0][: self._rows, :, self._length : self._length + m] = key_states
        self._bufs[1][: self._rows, :, self._length : self._length + m] = value_states
        self._length += m
        self._views()
        return self.keys, self.values

    def append_rows(self, sources: torch.Tensor) -> None:
        """Add rows at the end of the batch, copies of rows ``sources``."""
        new = self._rows + len(sources)
        for buf in self._bufs:
            buf[self._rows : new, :, : self._length] = buf[sources, :, : self._length]
        self._rows = new
        self._views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        for buf in self._bufs:
            buf[: len(indices), :, : self._length] = buf[indices, :, : self._length]
        self._rows = len(indices)
        self._views()


def _reserve_cache(cache: Any, extra: int, rows: int) -> bool:
    """Preallocate every layer of ``cache`` when all are plain dynamic layers; False when they are not
    (then the cache grows by concatenation and gains rows by ``batch_select_indices``)."""
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return False
    for layer in layers:
        layer.__class__ = _PreallocLayer
        layer.reserve(extra, rows)
    return True


def _append_rows(cache: Any, sources: torch.Tensor, rows_now: int, preallocated: bool) -> None:
    """Append copies of cache rows ``sources`` at the end of the batch."""
    if preallocated:
        for layer in cache.layers:
            layer.append_rows(sources)
    else:
        cache.batch_select_indices(torch.cat([torch.arange(rows_now), sources]))


def sliding_window(model: torch.nn.Module) -> int | None:
    """The attention window of a model with sliding-window layers (Gemma 3: 512 tokens), else None.

    Read from ``config.sliding_window``; a config that declares ``layer_types`` without any
    ``sliding_attention`` layer, or sets ``use_sliding_window: false`` (Qwen2), has none.
    """
    cfg = getattr(model, "config", None)
    window = getattr(cfg, "sliding_window", None)
    if not isinstance(window, int) or window <= 0 or getattr(cfg, "use_sliding_window", True) is False:
        return None
    layer_types = getattr(cfg, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return None
    return window


def shared_prefix_length(
    prompt_token_ids: Sequence[Sequence[int]], window: int | None, max_new_tokens: int
) -> int:
    """How many leading tokens the prefill shares (0: none), given the model's sliding window.

    Sharing the common prefix pads the shorter suffixes *between* the prefix and the suffix. A
    sliding-window layer keeps the last ``window`` cache slots, pads included, so once the padded
    sequence (prefix + longest suffix + new tokens) is longer than the window a padded row would attend
    to fewer real tokens than the same prompt alone. Then the prefix is not shared (plain left padding,
    whose pads precede every real token, is exact). Equal suffix lengths need no padding: always shared.
    """
    shared = common_prefix_length(prompt_token_ids)
    if shared == 0 or window is None:
        return shared
    lengths = {len(p) for p in prompt_token_ids}
    if len(lengths) > 1 and max(lengths) + max_new_tokens > window:
        return 0
    return shared


def _prefill(
    model: torch.nn.Module,
    prompt_token_ids: Sequence[Sequence[int]],
    pad_id: int,
    share_prefix: bool,
    max_new_tokens: int,
) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward pass over a batch of prompts (the common prefix once, see
    :func:`shared_prefix_length`): cache, last logits, 2-D mask and the position of each prompt's last
    token."""
    b = len(prompt_token_ids)
    shared = (
        shared_prefix_length(prompt_token_ids, sliding_window(model), max_new_tokens) if share_prefix else 0
    )
    cache = None
    if shared > 0:
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
    return out.past_key_values, out.logits[:, -1, :], mask, positions[:, -1]


def _sample_batch_fast(
    model: torch.nn.Module,
    decode: Callable[[Sequence[int]], str],
    prompt_token_ids: Sequence[Sequence[int]],
    seeds: Sequence[Sequence[int]],
    params: SamplingParams,
    pad_id: int,
    eos_ids: frozenset[int],
    *,
    share_prefix: bool,
    stop_candidates: torch.Tensor | None = None,
) -> list[Completion]:
    """The lean decode loop: same prefill, tokens, stops and statistics as :func:`_sample_batch`.

    Samples that share their prompt and every token so far have the same KV cache and next-token logits,
    so the forward pass runs once per distinct (prompt, prefix) *node*, not once per sample: the batch
    starts with one row per prompt (no copy of the prompt cache per sample) and a node splits only when
    its samples draw different tokens (short, confident answers stay a few rows). Each sample still
    draws its own token from its own uniform and the node's logits, so samples are those of the
    reference loop. Per step it runs a fixed handful of tensor operations: uniforms come from a
    precomputed (rows x max_new_tokens) block, tokens and per-token statistics go into preallocated
    tables, EOS and stop candidates are looked up by token id (a sample is decoded only when it drew a
    stop candidate), and the KV cache is preallocated (:class:`_PreallocLayer`).
    """
    n, max_new = params.n, params.max_new_tokens
    cache, logits, mask, last_pos = _prefill(model, prompt_token_ids, pad_id, share_prefix, max_new)
    vocab = logits.shape[-1]
    rows = len(prompt_token_ids) * n
    preallocated = _reserve_cache(cache, max_new, rows)
    mask = torch.cat([mask, torch.ones((mask.shape[0], max_new), dtype=mask.dtype)], 1)
    mask = (
        torch.cat([mask, torch.ones((rows - mask.shape[0], mask.shape[1]), dtype=mask.dtype)])
        if rows > mask.shape[0]
        else mask
    )
    width = mask.shape[1] - max_new  # attention-mask columns in use
    next_pos = torch.cat([last_pos + 1, torch.zeros(max(rows - len(last_pos), 0), dtype=last_pos.dtype)])
    slots = len(prompt_token_ids)  # cache rows in use: nodes, plus nodes whose samples all finished

    flat_seeds = [seeds[r // n][r % n] for r in range(rows)]
    uniforms = torch.from_numpy(np.stack([uniform_block(s, max_new) for s in flat_seeds]))
    tokens_table = torch.zeros((rows, max_new), dtype=torch.long)
    lp_table = torch.zeros((rows, max_new), dtype=torch.float32)
    h_table = torch.zeros((rows, max_new), dtype=torch.float32)
    sc_table = torch.zeros((rows, max_new), dtype=torch.float32)
    is_eos = torch.zeros(vocab, dtype=torch.bool)
    is_eos[[t for t in eos_ids if 0 <= t < vocab]] = True
    if params.stop and stop_candidates is None:
        stop_candidates = stop_candidate_table(decode, vocab, params.stop)
    check_stop = params.stop and stop_candidates is not None
    if check_stop and stop_candidates.shape[0] < vocab:
        stop_candidates = torch.cat(
            [stop_candidates, torch.ones(vocab - stop_candidates.shape[0], dtype=torch.bool)]
        )

    lengths = [0] * rows
    reasons: list[str | None] = [None] * rows
    live = torch.arange(rows)  # the samples still decoding
    node = torch.arange(rows) // n  # the cache row (node) of each live sample
    for step in range(max_new):
        tokens, lp, h, sc = _draw_shared(logits, node, uniforms[live, step], params.temperature, params.top_p)
        tokens_table[live, step] = tokens
        lp_table[live, step] = lp
        h_table[live, step] = h
        sc_table[live, step] = sc
        done = is_eos[tokens]
        for r in live[done].tolist():
            reasons[r], lengths[r] = "eos", step + 1
        if check_stop:
            for j in (stop_candidates[tokens] & ~done).nonzero().flatten().tolist():
                r = int(live[j])
                if truncate_at_stop(decode(tokens_table[r, : step + 1].tolist()), params.stop)[1]:
                    reasons[r], lengths[r] = "stop", step + 1
                    done[j] = True
        if step == max_new - 1 or bool(done.all()):
            break
        keep = ~done
        live, tokens, parent = live[keep], tokens[keep], node[keep]
        # the next nodes: one per distinct (node, token) among the samples still decoding; a node's first
        # child keeps its cache row, the others get new rows (copies of the parent's)
        children, which = torch.unique(parent * vocab + tokens, return_inverse=True)
        c_parent, c_token = children // vocab, children % vocab
        first = torch.ones(len(children), dtype=torch.bool)
        first[1:] = c_parent[1:] != c_parent[:-1]
        row = c_parent.clone()
        extra = (~first).nonzero().flatten()
        if len(extra):
            row[extra] = torch.arange(slots, slots + len(extra))
            _append_rows(cache, c_parent[extra], slots, preallocated)
            mask[slots : slots + len(extra)] = mask[c_parent[extra]]
            next_pos[slots : slots + len(extra)] = next_pos[c_parent[extra]]
            slots += len(extra)
        node = row[which]
        used = torch.zeros(slots, dtype=torch.bool)
        used[row] = True
        step_tokens = torch.zeros(slots, dtype=torch.long)  # rows of finished nodes decode token 0
        step_tokens[row] = c_token
        if int(used.sum()) * 4 <= slots * 3:  # a quarter of the rows serve no sample: drop them
            kept = used.nonzero().flatten()
            cache.batch_select_indices(kept)
            renumber = torch.full((slots,), -1, dtype=torch.long)
            renumber[kept] = torch.arange(len(kept))
            node, step_tokens = renumber[node], step_tokens[kept]
            mask[: len(kept)], next_pos[: len(kept)] = mask[kept], next_pos[kept]
            slots = len(kept)
        width += 1
        out = model(
            input_ids=step_tokens.unsqueeze(-1),
            attention_mask=mask[:slots, :width],
            position_ids=next_pos[:slots].unsqueeze(-1),
            past_key_values=cache,
            use_cache=True,
        )
        logits = out.logits[:, -1, :]
        next_pos[:slots] += 1
    for r in range(rows):
        if reasons[r] is None:
            reasons[r], lengths[r] = "length", max_new

    result = []
    for r in range(rows):
        toks = tokens_table[r, : lengths[r]].tolist()
        reason = reasons[r]
        if params.stop:  # exact check: the earliest prefix whose text holds a stop string ends the sample
            body = toks[:-1] if reason in ("eos", "stop") else toks
            cut = first_stop_prefix(body, decode, params.stop)
            if cut is not None:
                toks, reason = toks[:cut], "stop"
        text_ids = toks[:-1] if reason == "eos" else toks
        text, _ = truncate_at_stop(decode(text_ids), params.stop)
        k = len(toks)
        sum_lp = sum_h = sum_sc = 0.0
        for a, b, c in zip(
            lp_table[r, :k].tolist(), h_table[r, :k].tolist(), sc_table[r, :k].tolist(), strict=True
        ):
            sum_lp += a  # float64 accumulation in token order, as the reference loop does
            sum_h += b
            sum_sc += c
        result.append(
            Completion(
                prompt_index=r // n,
                sample_idx=r % n,
                text=text,
                token_ids=tuple(toks),
                finish_reason=reason,
                sum_logprob=sum_lp,
                sum_entropy=sum_h,
                seed=flat_seeds[r],
                sum_selfcert=sum_sc,
            )
        )
    return result


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
    n = params.n
    cache, last_logits, mask, last_pos = _prefill(
        model, prompt_token_ids, pad_id, share_prefix, params.max_new_tokens
    )
    logits = last_logits.repeat_interleave(n, dim=0)
    cache.batch_repeat_interleave(n)
    mask = mask.repeat_interleave(n, dim=0)
    next_pos = last_pos.repeat_interleave(n) + 1

    rows = len(prompt_token_ids) * n
    streams = [uniform_stream(seeds[r // n][r % n]) for r in range(rows)]
    generated: list[list[int]] = [[] for _ in range(rows)]
    sum_lp = [0.0] * rows
    sum_h = [0.0] * rows
    sum_sc = [0.0] * rows
    reasons: list[str | None] = [None] * rows
    alive = list(range(rows))  # row ids still decoding, in cache order

    for step in range(params.max_new_tokens):
        u = torch.tensor([next(streams[r]) for r in alive], dtype=torch.float64)
        tokens = choose_tokens(logits, u, params.temperature, params.top_p)
        lp, h, sc = raw_token_stats(logits, tokens)
        keep: list[int] = []
        for j, r in enumerate(alive):
            tok = int(tokens[j])
            generated[r].append(tok)
            sum_lp[r] += float(lp[j])
            sum_h[r] += float(h[j])
            sum_sc[r] += float(sc[j])
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
                sum_selfcert=sum_sc[r],
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
    loop: str = "fast",
) -> list[Completion]:
    """Sample ``params.n`` completions for every prompt, ``batch_prompts`` prompts per forward batch.

    Batches are formed in the given prompt order; ``Completion.prompt_index`` indexes ``prompts``.
    ``loop``: ``fast`` (default) or ``reference`` (see :func:`sample_batch`).
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

    fast = loop == "fast"
    candidates = None
    if fast and params.stop:
        candidates = tokenizer_stop_candidates(tokenizer, model, params.stop)
    out: list[Completion] = []
    bar = tqdm(total=len(prompts) * params.n, unit="sample", disable=not progress, mininterval=2.0)
    with packed_linears(model, enabled=fast), fast_decode_attention(model, enabled=fast):
        for start in range(0, len(prompts), batch_prompts):
            stop = min(start + batch_prompts, len(prompts))
            seeds = [
                [sample_seed(params.seed, prompt_ids[i], j) for j in range(params.n)]
                for i in range(start, stop)
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
                loop=loop,
                stop_candidates=candidates,
            )
            out.extend(replace(c, prompt_index=c.prompt_index + start) for c in batch)
            bar.update((stop - start) * params.n)
    bar.close()
    return out


_CANDIDATES: dict[tuple[int, int, tuple[str, ...]], tuple[Any, torch.Tensor]] = {}


def tokenizer_stop_candidates(tokenizer: Any, model: torch.nn.Module, stop: tuple[str, ...]) -> torch.Tensor:
    """:func:`stop_candidate_table` of a tokenizer over the model's vocabulary (the token texts of
    :func:`token_texts`), remembered per tokenizer object and stop strings for the life of the process
    (the entry holds the tokenizer, so its id cannot be reused by another one)."""
    vocab = model.get_output_embeddings().weight.shape[0]
    key = (id(tokenizer), vocab, stop)
    if key not in _CANDIDATES or _CANDIDATES[key][0] is not tokenizer:
        texts = token_texts(tokenizer, vocab)
        _CANDIDATES[key] = (tokenizer, stop_candidate_table(lambda ids: texts[ids[0]], vocab, stop))
    return _CANDIDATES[key][1]


def token_texts(tokenizer: Any, vocab: int) -> list[str]:
    """``tokenizer.decode([t], skip_special_tokens=True)`` for every id below ``vocab``, in one call.

    A stock HF fast tokenizer (``TokenizersBackend`` whose ``decode``, ``batch_decode`` and ``_decode``
    are not overridden, and which does not clean up spaces) decodes exactly what its Rust backend
    decodes, so the texts come from the backend's ``decode_batch`` in one call (``batch_decode`` adds
    Python work per token, which a 262,144-token vocabulary feels in every sample job); any other
    tokenizer goes through its own ``batch_decode``, or ``decode`` token by token when it has none.
    """
    ids = [[t] for t in range(vocab)]
    try:
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:  # pragma: no cover - other transformers versions
        TokenizersBackend = None
    stock = (
        TokenizersBackend is not None
        and isinstance(tokenizer, TokenizersBackend)
        and all(
            getattr(type(tokenizer), name) is getattr(TokenizersBackend, name)
            for name in ("decode", "batch_decode", "_decode")
        )
        and not tokenizer.clean_up_tokenization_spaces
    )
    if stock:
        return tokenizer.backend_tokenizer.decode_batch(ids, skip_special_tokens=True)
    if hasattr(tokenizer, "batch_decode"):
        return tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [tokenizer.decode(t, skip_special_tokens=True) for t in ids]


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
        "self_certainty": [
            None if math.isnan(c.sum_selfcert) else c.sum_selfcert / max(c.n_tokens, 1) for c in completions
        ],
        "seed": [c.seed for c in completions],
    }
