"""Time of one decode step's draw (token, logprob, entropy, self-certainty of every row) by row chunk size.

    python benchmarks/bench_draw.py [--rows 128] [--repeats 5] [--threads T]

For each vocabulary size (SmolLM2: 49,152 logits a row; Gemma 3: 262,144) it times
:func:`bongain.sampling.loop._draw_shared` on ``--rows`` rows of random bf16 logits, one sample per row
(the long workload once every sample has its own row), T = 0.7, top_p = 1, with the rows in one piece and
in the chunks of the default ``DRAW_CHUNK_LOGITS``. The results are checked equal value for value. The
best of ``--repeats`` counts; runs are interleaved.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import torch

from bongain.sampling import loop

VOCABS = {"smollm2 (49,152)": 49152, "gemma3 (262,144)": 262144}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    default_chunk = loop.DRAW_CHUNK_LOGITS
    print(
        f"# bench_draw  {datetime.date.today()}  {platform.machine()} {os.cpu_count()} cores  "
        f"torch {torch.__version__} threads={args.threads}  rows={args.rows}  best of {args.repeats}"
    )
    print(f"{'vocabulary':18s} {'chunk rows':>10s} {'ms per draw':>12s}")
    for name, vocab in VOCABS.items():
        gen = torch.Generator().manual_seed(0)
        logits = (torch.randn(args.rows, vocab, generator=gen) * 3).bfloat16()
        node = torch.arange(args.rows)
        u = torch.rand(args.rows, generator=gen, dtype=torch.float64)
        chunks = {"whole": 1 << 62, "default": default_chunk}
        best: dict[str, float] = {}
        results = {}
        for _ in range(args.repeats):
            for label, size in chunks.items():
                loop.DRAW_CHUNK_LOGITS = size
                t0 = time.perf_counter()
                results[label] = loop._draw_shared(logits, node, u, 0.7, 1.0)
                best[label] = min(best.get(label, float("inf")), time.perf_counter() - t0)
        loop.DRAW_CHUNK_LOGITS = default_chunk
        same = all(torch.equal(a, b) for a, b in zip(results["whole"], results["default"], strict=True))
        if not same:
            raise SystemExit(f"{name}: chunked draw differs from the whole draw")
        for label in chunks:
            rows = args.rows if label == "whole" else max(1, default_chunk // vocab)
            print(f"{name:18s} {rows:10d} {best[label] * 1e3:12.1f}")


if __name__ == "__main__":
    main()
