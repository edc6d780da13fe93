"""The sampler's KV-cache operations under Gemma 3's sliding-window cache.

The sampler prefills a shared prompt prefix once, repeats the cache per prompt and per sample
(``batch_repeat_interleave``) and drops finished rows (``batch_select_indices``). Gemma 3 mixes
sliding-window layers (a cache that keeps only the last ``sliding_window`` positions) with full-attention
layers. Here a tiny random Gemma 3 with a 4-token window samples completions longer than the window, with rows
that stop early; every recorded per-token log-probability, entropy and self-certainty must equal a
teacher-forced forward
of that sample's prompt + completion alone (no cache, no padding).

Result: exact in every case, including a shared prefix followed by suffixes of different lengths when the
padded batch is longer than the window (the sampler then does not share the prefix:
``loop.shared_prefix_length``).
"""

from __future__ import annotations

import pytest
import torch

from bongain.sampling import loop
from bongain.sampling.loop import SamplingParams, sample_batch

WINDOW = 4
EOS = frozenset({1, 2, 3, 4})  # ~8% of a random model's mass: rows finish at different steps


def tiny_gemma3(attn: str, window: int = WINDOW) -> torch.nn.Module:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(
        vocab_size=48,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=window,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        max_position_embeddings=128,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attn_implementation=attn,
    )
    model = Gemma3ForCausalLM(cfg).eval()
    return model.float()


def teacher_forced(
    model, prompt: list[int], completion: list[int]
) -> tuple[list[float], list[float], list[float]]:
    """Raw per-token logprob, entropy and self-certainty KL(U || p) of ``completion`` after ``prompt``, one
    full forward, batch 1."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(-1, torch.tensor(completion).unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    v = logp.shape[-1]
    selfcert = ((1 / v) * (-torch.log(torch.tensor(float(v))) - logp)).sum(-1)
    return chosen.tolist(), entropy.tolist(), selfcert.tolist()


PREFIX = [2, 10, 11, 12, 13, 14]

#: name -> (prompts, sliding window). Completions run up to 12 tokens, past every 4-token window.
CASES = {
    # the shared prefix is prefilled once and repeated; equal suffixes need no padding
    "shared prefix, equal suffixes": ([[*PREFIX, 20, 21, 22], [*PREFIX, 30, 31, 32]], WINDOW),
    # left padding only (no common prefix): pads precede every real token of the row
    "no shared prefix, different lengths": (
        [[5, 20, 21, 22, 23, 24, 25, 26], [6, 30], [7, 40, 41, 42]],
        WINDOW,
    ),
    "one prompt": ([[*PREFIX, 20, 21, 22, 23, 24, 25, 26]], WINDOW),
    # pads between the shared prefix and a short suffix, but the window covers the whole padded batch
    "shared prefix, different suffixes, window covers the batch": (
        [[*PREFIX, 20, 21, 22, 23, 24, 25, 26], [*PREFIX, 30], [*PREFIX, 40, 41, 42]],
        32,
    ),
}


def check_against_teacher_forcing(
    attn: str, prompts: list[list[int]], window: int, monkeypatch, decode_loop: str = "reference"
) -> None:
    """Reference loop: every step's per-row logprob, entropy and self-certainty equal a teacher-forced
    forward. Fast loop (it computes the statistics once per shared prefix row, so steps do not map to
    samples): each sample's summed logprob, entropy and self-certainty equal the teacher-forced sums."""
    model = tiny_gemma3(attn, window)
    n = 3
    seeds = [[1000 * i + j for j in range(n)] for i in range(len(prompts))]
    params = SamplingParams(n=n, temperature=1.0, top_p=1.0, max_new_tokens=12, stop=(), seed=0)

    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    real = loop.raw_token_stats

    def recording(logits, tokens):
        lp, h, sc = real(logits, tokens)
        calls.append((lp.clone(), h.clone(), sc.clone()))
        return lp, h, sc

    monkeypatch.setattr(loop, "raw_token_stats", recording)
    out = sample_batch(
        model,
        lambda ids: " ".join(map(str, ids)),
        prompts,
        seeds,
        params,
        pad_id=0,
        eos_ids=EOS,
        loop=decode_loop,
    )
    lengths = [c.n_tokens for c in out]
    # the test exercises what it claims: completions run past a 4-token window, rows leave the batch early
    assert max(lengths) == params.max_new_tokens > 2 * WINDOW
    assert min(lengths) < params.max_new_tokens
    if decode_loop == "fast":
        for c in out:
            want_lp, want_h, want_sc = teacher_forced(model, prompts[c.prompt_index], list(c.token_ids))
            assert c.sum_logprob == pytest.approx(sum(want_lp), abs=1e-3)
            assert c.sum_entropy == pytest.approx(sum(want_h), abs=1e-3)
            assert c.sum_selfcert == pytest.approx(sum(want_sc), abs=1e-3)
        return
    # rows alive at step t are those with more than t tokens, in completion order (the sampler keeps order)
    per_row: list[list[tuple[float, float, float]]] = [[] for _ in out]
    for step, (lp, h, sc) in enumerate(calls):
        alive = [r for r, k in enumerate(lengths) if k > step]
        assert len(alive) == lp.shape[0]
        for j, r in enumerate(alive):
            per_row[r].append((float(lp[j]), float(h[j]), float(sc[j])))
    for r, c in enumerate(out):
        want_lp, want_h, want_sc = teacher_forced(model, prompts[c.prompt_index], list(c.token_ids))
        got_lp, got_h, got_sc = (list(col) for col in zip(*per_row[r], strict=True))
        assert got_lp == pytest.approx(want_lp, abs=1e-4), f"row {r} (prompt {c.prompt_index})"
        assert got_h == pytest.approx(want_h, abs=1e-4), f"row {r} (prompt {c.prompt_index})"
        assert got_sc == pytest.approx(want_sc, abs=1e-4), f"row {r} (prompt {c.prompt_index})"
        assert c.sum_logprob == pytest.approx(sum(want_lp), abs=1e-3)
        assert c.sum_entropy == pytest.approx(sum(want_h), abs=1e-3)
        assert c.sum_selfcert == pytest.approx(sum(want_sc), abs=1e-3)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("decode_loop", ["reference", "fast"])
def test_sampled_logprobs_match_teacher_forcing_with_sliding_window(decode_loop, attn, case, monkeypatch):
    prompts, window = CASES[case]
    check_against_teacher_forcing(attn, prompts, window, monkeypatch, decode_loop)


@pytest.mark.parametrize("decode_loop", ["fast", "reference"])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_shared_prefix_with_padding_longer_than_the_window_is_exact(decode_loop, attn, monkeypatch):
    """A shared prefix followed by suffixes of different lengths, padded past the window: the sampler
    does not share the prefix then (pads between prefix and suffix would count as window slots), so the
    statistics stay those of each prompt alone."""
    prompts = [[*PREFIX, 20, 21, 22, 23, 24, 25, 26], [*PREFIX, 30], [*PREFIX, 40, 41, 42]]
    check_against_teacher_forcing(attn, prompts, WINDOW, monkeypatch, decode_loop)


def test_the_prefix_is_shared_unless_padding_would_cross_the_window():
    shared = [[*PREFIX, 20, 21], [*PREFIX, 30]]  # common prefix of 6 tokens, suffixes 2 and 1 long
    assert loop.shared_prefix_length(shared, None, 100) == len(PREFIX)  # no sliding window
    assert loop.shared_prefix_length(shared, 11, 3) == len(PREFIX)  # 8 + 3 tokens fit a window of 11
    assert loop.shared_prefix_length(shared, 10, 3) == 0  # 8 + 3 do not fit a window of 10
    equal = [[*PREFIX, 20], [*PREFIX, 30]]  # equal suffixes: no padding, always shared
    assert loop.shared_prefix_length(equal, 2, 100) == len(PREFIX)


def test_sliding_window_is_read_from_the_model_config(tiny_lm):
    assert loop.sliding_window(tiny_gemma3("eager", 7)) == 7
    assert loop.sliding_window(tiny_lm) is None  # Llama: no sliding-window layers
