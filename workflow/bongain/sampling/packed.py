"""bf16 linear layers with their weights packed once for oneDNN, for the fast sampling loop on CPU.

``F.linear`` on a bf16 CPU tensor goes through oneDNN, which reorders ("packs") the weight into its
blocked layout on every call: a decode step reads and repacks every weight of the model whatever its
number of rows (SmolLM2-135M: 211 linear calls per step; the repacking is about a quarter of their time
at 128 rows, ``benchmarks/bench_linear.py``). :func:`packed_linears` packs each ``nn.Linear`` weight once
(``torch.ops.mkldnn._reorder_linear_weight``) and, while the context is open, runs the layer through
``torch.ops.mkldnn._linear_pointwise`` on the packed copy: the same oneDNN product without the per-call
reorder. A layer's packed copy is kept for the life of the layer and
made again only when its weight changes (another tensor, or an in-place update: ``Tensor._version``), so
a job that samples several splits packs once (about 0.2 s for SmolLM2 or Gemma 3).

The packing hint is :data:`PACK_ROWS` rows. On the project's machine (x86-64 with AMX) the packed
product equals ``F.linear`` bit for bit at every row count tested with that hint
(``tests/test_packed.py``); a hint of 1 row, tried while choosing, picks a kernel whose sums differ at
rounding level for larger batches. Other dtypes, devices, a torch without oneDNN, or one whose oneDNN
refuses to pack (the error is caught) keep ``F.linear``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from functools import partial

import torch

PACK_ROWS = 128  # the row count oneDNN packs for: bit-equal to F.linear here for 1 to 1,024 rows


def packing_available() -> bool:
    """True when this torch has oneDNN (mkldnn) and its linear packing ops."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return hasattr(torch.ops.mkldnn, "_linear_pointwise") and hasattr(
            torch.ops.mkldnn, "_reorder_linear_weight"
        )
    except RuntimeError:  # pragma: no cover - an op namespace that cannot be resolved
        return False


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (out x in, bf16, CPU) in oneDNN's layout for :data:`PACK_ROWS`-row products."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), PACK_ROWS)


def packed_linear(
    x: torch.Tensor, weight: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, from ``packed`` (:func:`pack_weight` of ``weight``) when ``x`` is
    contiguous. ``F.linear`` itself rounds differently for some non-contiguous inputs (e.g. the last
    position of a prefill, sliced for the LM head) than for a contiguous copy, so those keep
    ``F.linear``: the products stay those of ``F.linear`` either way."""
    if not x.is_contiguous():
        return torch.nn.functional.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


_PACKED: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple[int, int], torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def _packed_weight(layer: torch.nn.Linear) -> torch.Tensor:
    """The layer's packed weight, from the cache while the weight is the same tensor, unmodified."""
    key = (layer.weight.data_ptr(), layer.weight._version)
    cached = _PACKED.get(layer)
    if cached is None or cached[0] != key:
        cached = _PACKED[layer] = (key, pack_weight(layer.weight))
    return cached[1]


def _packable(module: torch.nn.Module) -> bool:
    w = getattr(module, "weight", None)
    return (
        type(module) is torch.nn.Linear
        and isinstance(w, torch.Tensor)
        and w.dtype == torch.bfloat16
        and w.device.type == "cpu"
        and (module.bias is None or module.bias.dtype == torch.bfloat16)
    )


@contextlib.contextmanager
def packed_linears(model: torch.nn.Module, enabled: bool = True) -> Iterator[int]:
    """Run every plain bf16 CPU ``nn.Linear`` of ``model`` from a packed copy of its weight while open;
    yields how many layers were packed (0: none, e.g. float32 weights or no oneDNN). On exit the layers
    run ``F.linear`` again; the packed copies stay cached for the next call (see the module docstring).
    The weights themselves are not touched."""
    layers = [m for m in model.modules() if _packable(m)] if enabled and packing_available() else []
    try:
        packed = [_packed_weight(m) for m in layers]
    except (RuntimeError, NotImplementedError):  # this oneDNN cannot pack these weights: F.linear
        layers, packed = [], []
    try:
        for m, p in zip(layers, packed, strict=True):
            m.forward = partial(packed_linear, weight=m.weight, packed=p, bias=m.bias)
        yield len(layers)
    finally:
        for m in layers:
            m.__dict__.pop("forward", None)
