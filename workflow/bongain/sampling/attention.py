"""The fast loop's attention: HF ``sdpa`` everywhere except one decode-step case it runs slowly on CPU.

In a decode step (one query token per row) of a grouped-query model, transformers' ``sdpa`` attention
packs the query heads of each KV head into one (rows x KV heads x group) query (``pack_gqa``) when the
step has an attention mask, but calls SDPA with ``enable_gqa=True`` (one query per head) when the mask is
dropped, which it does when no row of the batch is padded. On CPU the second path is the slower one:
128 rows of SmolLM2 (9 query heads, 3 KV heads) against 90 cached positions take 2.0 ms a layer against
1.4 ms packed (measured 2026-11-26, 2 threads). :func:`decode_attention` always packs in that case and
otherwise calls transformers' own ``sdpa_attention_forward``, so steps with padding, prefills and
models without grouped heads are computed exactly as before. Both are exact attention; packing changes
the sums at bf16 rounding level only.

:func:`fast_decode_attention` switches a model whose config asks for ``sdpa`` to this function (name
:data:`NAME`, with ``sdpa``'s mask function) for the duration of a ``with`` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

NAME = "bongain_sdpa"


def decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: (rows, heads, queries, dim) in, (rows, queries, heads,
    dim) out. An unmasked one-token step of a grouped-query layer runs packed; everything else goes to
    ``sdpa_attention_forward`` unchanged."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    rows, heads, queries, dim = query.shape
    if (
        queries != 1
        or attention_mask is not None
        or groups == 1
        or dropout
        or key.shape[1] * groups != heads
        or kwargs.get("softcap") is not None
        or kwargs.get("position_bias") is not None
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    packed = query.reshape(rows, key.shape[1], groups, dim)  # the query heads of each KV head as queries
    out = torch.nn.functional.scaled_dot_product_attention(packed, key, value, scale=scaling)
    return out.reshape(rows, 1, heads, dim), None


def _register() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(NAME, decode_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)


@contextlib.contextmanager
def fast_decode_attention(model: torch.nn.Module, enabled: bool = True) -> Iterator[bool]:
    """While open, a model configured for ``sdpa`` attends through :func:`decode_attention`; yields whether
    it was switched (a model on another implementation, e.g. ``eager`` or flash attention, is left
    alone). The config's implementation is restored on exit."""
    config = getattr(model, "config", None)
    original = getattr(config, "_attn_implementation", None)
    if not enabled or original != "sdpa":
        yield False
        return
    _register()
    config._attn_implementation = NAME
    try:
        yield True
    finally:
        config._attn_implementation = original
