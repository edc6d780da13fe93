"""Packed bf16 linear layers (bongain.sampling.packed): the same products as F.linear, swapped in and out
of a model cleanly, and the fast loop's samples unchanged by them."""

from __future__ import annotations

import copy

import pytest
import torch

from bongain.sampling import loop as loop_mod
from bongain.sampling.loop import SamplingParams, sample_prompts
from bongain.sampling.packed import pack_weight, packed_linear, packed_linears, packing_available

needs_packing = pytest.mark.skipif(not packing_available(), reason="this torch has no oneDNN linear packing")


@needs_packing
@pytest.mark.parametrize("rows", [1, 3, 8, 77, 128, 300, 1024])
def test_packed_linear_equals_f_linear_bit_for_bit(rows):
    """Every row count the loop can meet, 2-D / 3-D / non-contiguous inputs (the LM head's slice of a
    prefill), with and without bias, on the layer shapes of SmolLM2 (576 -> 192 / 576 / 1536,
    1536 -> 576) and Gemma 3 (640 -> 2048, 2048 -> 640)."""
    gen = torch.Generator().manual_seed(rows)
    for out_f, in_f in [(192, 576), (576, 576), (1536, 576), (576, 1536), (2048, 640), (640, 2048)]:
        w = torch.randn(out_f, in_f, generator=gen).to(torch.bfloat16)
        b = torch.randn(out_f, generator=gen).to(torch.bfloat16)
        packed = pack_weight(w)
        x = torch.randn(rows, 3, in_f, generator=gen).to(torch.bfloat16)
        for inp in (x[:, 0], x[:, :1], x[:, 1:], x[:, 2].unsqueeze(0)):
            for bias in (None, b):
                got = packed_linear(inp, w, packed, bias)
                want = torch.nn.functional.linear(inp, w, bias)
                assert got.shape == want.shape
                assert torch.equal(got, want), (out_f, in_f, tuple(inp.shape), bias is None)


def _bf16(model):
    return copy.deepcopy(model).to(torch.bfloat16)


@needs_packing
def test_packed_linears_swaps_every_linear_in_and_out(tiny_lm):
    model = _bf16(tiny_lm)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    with torch.inference_mode():
        want = model(input_ids=ids).logits
        with packed_linears(model) as n:
            assert n == len(linears) == 2 * 7 + 1  # q k v o gate up down per layer, and the LM head
            assert all("forward" in m.__dict__ for m in linears)
            got = model(input_ids=ids).logits
        assert torch.equal(got, want)
        assert not any("forward" in m.__dict__ for m in linears)
        with pytest.raises(RuntimeError, match="inside"), packed_linears(model):
            raise RuntimeError("inside")
        assert not any("forward" in m.__dict__ for m in linears)
        assert torch.equal(model(input_ids=ids).logits, want)


def test_packed_linears_leaves_float32_and_disabled_models_alone(tiny_lm):
    with packed_linears(tiny_lm) as n:
        assert n == 0
    with packed_linears(_bf16(tiny_lm), enabled=False) as n:
        assert n == 0


@needs_packing
@pytest.mark.slow
def test_fast_loop_samples_are_unchanged_by_packing(embedded_model, monkeypatch):
    """The real bf16 SmolLM2, short answers with a newline stop and longer ones with nucleus sampling:
    the fast loop draws the same samples with the same statistics with and without packed weights, so
    packing changes the sample stage's speed, not its output."""
    from bongain.sampling.prompts import fewshot_prompt

    model, tok = embedded_model
    shots = [("What is 2 + 3?", "5"), ("What is 4 + 4?", "8")]
    prompts = [fewshot_prompt(f"What is {a} + {b}?", shots) for a, b in [(3, 4), (12, 5), (7, 1), (2, 2)]]
    ids = [tok(x).input_ids for x in prompts]
    pids = [str(i) for i in range(len(prompts))]
    for p in (
        SamplingParams(n=6, temperature=0.7, top_p=1.0, max_new_tokens=8, stop=("\n",), seed=5),
        SamplingParams(n=4, temperature=1.0, top_p=0.9, max_new_tokens=24, stop=(), seed=6),
    ):
        packed = sample_prompts(model, tok, prompts, ids, pids, p, batch_prompts=4, progress=False)
        with monkeypatch.context() as m:
            m.setattr(loop_mod, "packed_linears", lambda model, enabled=True: packed_linears(model, False))
            plain = sample_prompts(model, tok, prompts, ids, pids, p, batch_prompts=4, progress=False)
        assert packed == plain


@needs_packing
def test_packed_copies_are_reused_until_the_weight_changes(tiny_lm):
    """A second context reuses the packed weights; an in-place update of a weight (an optimizer step) or
    a new weight tensor makes that layer pack again, so the products follow the weights."""
    from bongain.sampling import packed as packed_mod

    model = _bf16(tiny_lm)
    ids = torch.tensor([[5, 6, 7, 8]])
    head = model.lm_head
    with torch.inference_mode(), packed_linears(model):
        first = packed_mod._PACKED[head][1]
    with torch.inference_mode(), packed_linears(model):
        assert packed_mod._PACKED[head][1] is first
    with torch.no_grad():
        head.weight.mul_(2)
    with torch.inference_mode():
        want = model(input_ids=ids).logits
        with packed_linears(model):
            assert packed_mod._PACKED[head][1] is not first
            assert torch.equal(model(input_ids=ids).logits, want)
    head.weight = torch.nn.Parameter(head.weight.detach() * 0.5)
    with torch.inference_mode():
        want = model(input_ids=ids).logits
        with packed_linears(model):
            assert torch.equal(model(input_ids=ids).logits, want)


def test_a_oneDNN_that_refuses_to_pack_leaves_f_linear(tiny_lm, monkeypatch):
    from bongain.sampling import packed as packed_mod

    def refuse(weight):
        raise RuntimeError("mkldnn: unsupported")

    monkeypatch.setattr(packed_mod, "packing_available", lambda: True)
    monkeypatch.setattr(packed_mod, "pack_weight", refuse)
    model = _bf16(tiny_lm)
    with packed_linears(model) as n:
        assert n == 0
        assert not any("forward" in m.__dict__ for m in model.modules())
