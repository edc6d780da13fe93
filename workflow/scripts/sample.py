"""Snakemake adapter: N samples per prompt of one split of one cell."""

import polars as pl
import torch

from bongain.io import read_parquet, write_parquet_atomic
from bongain.sampling.loop import SamplingParams, completions_frame, sample_prompts
from bongain.sampling.models import load_causal_lm, load_manifest
from bongain.sampling.prompts import format_prompt, stop_strings, tokenize_prompt
from bongain.sampling.shards import close_partial, fingerprint, partial_dir, run_checkpointed, shard_rows
from bongain.smk import setup_logging
from bongain.tasks.build import TaskSpec, fewshot_exemplars

sm = snakemake  # noqa: F821
log = setup_logging(sm, "sample")
torch.set_num_threads(sm.threads)
w, method, sampling = sm.wildcards, sm.params.method, sm.params.sampling

tasks = read_parquet(sm.input.tasks, "tasks")
if "shard" in w.keys():  # one shard: a block of consecutive task-table rows
    start, stop = shard_rows(tasks.height, sampling["shard_prompts"], w.shard)
    tasks = tasks.slice(start, stop - start)
# backend dispatch (docs/backends.md): vLLM needs only the tokenizer here; its engine starts on first use
model_cfg = sm.params.model  # also a params trigger: changing the model config reruns sampling
if model_cfg["backend"] == "vllm":
    from bongain.sampling.vllm import load_tokenizer, make_engine, sample_vllm

    model, tok = None, load_tokenizer(load_manifest(sm.input.manifest))
    _engine: list = []
else:
    model, tok = load_causal_lm(load_manifest(sm.input.manifest))
exemplars = fewshot_exemplars(
    w.task, TaskSpec.from_config(sm.params.task), sm.params.sizes["exemplars"], sm.params.split_seed
)
prompts = [format_prompt(q, method, exemplars, tok) for q in tasks["question"]]
params = SamplingParams(
    n=sampling["n"],
    temperature=method["temperature"],
    top_p=method["top_p"],
    max_new_tokens=method["max_new_tokens"],
    stop=stop_strings(method),
    seed=sampling.get("seed", 0),
)
log.info("%s: %d prompts x %d samples", "/".join(w), len(prompts), params.n)
ids, token_ids = tasks["prompt_id"].to_list(), [tokenize_prompt(p, method, tok) for p in prompts]
batch_prompts = sampling.get("batch_prompts", 8)


def sample_rows(start: int, stop: int) -> pl.DataFrame:
    """Samples of prompts [start, stop): one checkpointed batch."""
    if model is None:  # vllm backend: one engine for every batch of this job
        if not _engine:
            _engine.append(make_engine(manifest, model_cfg, seed=params.seed))
        completions = sample_vllm(
            manifest, model_cfg, token_ids[start:stop], ids[start:stop], params, engine=_engine[0]
        )
    else:
        completions = sample_prompts(
            model,
            tok,
            prompts[start:stop],
            token_ids[start:stop],
            ids[start:stop],
            params,
            batch_prompts=batch_prompts,
        )
    return pl.DataFrame(completions_frame(completions, prompts[start:stop], ids[start:stop])).with_columns(
        model=pl.lit(w.model), method=pl.lit(w.method), task=pl.lit(w.task), split=pl.lit(w.split)
    )


# finished batches survive a crash in .<output>.partial/; a restart reuses them (same fingerprint only)
partial = partial_dir(sm.output[0])
manifest = load_manifest(sm.input.manifest)
fp = fingerprint([dict(w.items()), prompts, ids, params, batch_prompts, manifest, sm.params.version])
df, reused = run_checkpointed(ids, params.n, batch_prompts, partial, fp, sample_rows)
write_parquet_atomic(df, sm.output[0], "samples")
close_partial(partial)
log.info("wrote %d samples (%d batch(es) resumed from checkpoints)", df.height, reused)
