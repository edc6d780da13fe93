"""The fast loop's decode attention (bongain.sampling.attention): exact attention in the packed case,
transformers' own sdpa in every other case, switched on and off cleanly."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from bongain.sampling.attention import NAME, decode_attention, fast_decode_attention


class Layer(torch.nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups, self.is_causal = groups, True


def brute_force(query, key, value, scaling, mask=None):
    """Attention in float64, every query head against its KV head (head h uses KV head h // groups)."""
    q, k, v = query.double(), key.double(), value.double()
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scores = q @ k.transpose(-1, -2) * scaling
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2)  # (rows, queries, heads, dim)


@pytest.mark.parametrize(("heads", "kv_heads", "length"), [(9, 3, 90), (4, 1, 7), (8, 2, 145)])
def test_unmasked_decode_step_is_exact_attention(heads, kv_heads, length):
    gen = torch.Generator().manual_seed(heads * length)
    rows, dim = 5, 16
    q = torch.randn(rows, heads, 1, dim, generator=gen)
    k = torch.randn(rows, kv_heads, length, dim, generator=gen)
    v = torch.randn(rows, kv_heads, length, dim, generator=gen)
    out, weights = decode_attention(Layer(heads // kv_heads), q, k, v, None, scaling=0.3)
    assert weights is None and out.shape == (rows, 1, heads, dim) and out.is_contiguous()
    torch.testing.assert_close(out.double(), brute_force(q, k, v, 0.3), rtol=1e-5, atol=1e-5)
    ref, _ = sdpa_attention_forward(Layer(heads // kv_heads), q, k, v, None, scaling=0.3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_every_other_case_is_transformers_sdpa_unchanged():
    """Masked steps, prefills (several queries) and models without grouped heads give exactly what
    ``sdpa_attention_forward`` gives."""
    gen = torch.Generator().manual_seed(0)
    rows, dim, length = 4, 16, 12
    mask = torch.ones(rows, 1, 1, length, dtype=torch.bool)
    mask[1, ..., :3] = False
    cases = [
        (Layer(3), torch.randn(rows, 6, 1, dim, generator=gen), 2, mask),  # masked decode step
        (Layer(3), torch.randn(rows, 6, length, dim, generator=gen), 2, None),  # prefill
        (Layer(1), torch.randn(rows, 2, 1, dim, generator=gen), 2, None),  # no grouped heads
    ]
    for layer, q, kv_heads, m in cases:
        k = torch.randn(rows, kv_heads, length, dim, generator=gen).bfloat16()
        v = torch.randn(rows, kv_heads, length, dim, generator=gen).bfloat16()
        got, _ = decode_attention(layer, q.bfloat16(), k, v, m, scaling=0.25)
        want, _ = sdpa_attention_forward(layer, q.bfloat16(), k, v, m, scaling=0.25)
        assert torch.equal(got, want)
    masked, _ = decode_attention(
        Layer(3), cases[0][1], *(torch.randn(rows, 2, length, dim) for _ in "kv"), mask
    )
    assert masked.shape == (rows, 1, 6, dim)


def test_fast_decode_attention_switches_sdpa_models_and_restores(tiny_lm, monkeypatch):
    from bongain.sampling import attention

    seen = []

    def spy(module, query, key, value, attention_mask, **kw):
        seen.append((query.shape[2], attention_mask is None))
        return decode_attention(module, query, key, value, attention_mask, **kw)

    monkeypatch.setattr(attention, "decode_attention", spy)
    model = copy.deepcopy(tiny_lm)
    assert model.config._attn_implementation == "sdpa"
    ids = torch.tensor([[5, 6, 7, 8, 9], [9, 10, 11, 12, 13]])
    with torch.inference_mode():
        out = model(input_ids=ids[:, :-1], use_cache=True)
        want = model(input_ids=ids[:, -1:], past_key_values=copy.deepcopy(out.past_key_values)).logits
        with fast_decode_attention(model) as switched:
            assert switched and model.config._attn_implementation == NAME
            assert all(layer.self_attn.config._attn_implementation == NAME for layer in model.model.layers)
            got = model(input_ids=ids[:, -1:], past_key_values=copy.deepcopy(out.past_key_values)).logits
        assert seen == [(1, True)] * 2  # both layers' unpadded one-token step: the packed case
        assert model.config._attn_implementation == "sdpa"
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        with pytest.raises(RuntimeError, match="inside"), fast_decode_attention(model):
            raise RuntimeError("inside")
        assert model.config._attn_implementation == "sdpa"
        with fast_decode_attention(model, enabled=False) as switched:
            assert not switched and model.config._attn_implementation == "sdpa"
        model.config._attn_implementation = "eager"
        with fast_decode_attention(model) as switched:
            assert not switched and model.config._attn_implementation == "eager"
