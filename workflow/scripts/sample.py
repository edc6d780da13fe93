"""Snakemake adapter: N samples per prompt of one split of one cell."""

import polars as pl
import torch

from bongain.io import read_parquet, write_parquet_atomic
from bongain.models import load_causal_lm, load_manifest
from bongain.prompts import format_prompt, stop_strings, tokenize_prompt
from bongain.sampling import SamplingParams, completions_frame, sample_prompts
from bongain.smk import setup_logging
from bongain.tasks import TaskSpec, fewshot_exemplars

sm = snakemake  # noqa: F821
log = setup_logging(sm, "sample")
torch.set_num_threads(sm.threads)
w, method, sampling = sm.wildcards, sm.params.method, sm.params.sampling

tasks = read_parquet(sm.input.tasks, "tasks")
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
completions = sample_prompts(
    model,
    tok,
    prompts,
    [tokenize_prompt(p, method, tok) for p in prompts],
    tasks["prompt_id"].to_list(),
    params,
    batch_prompts=sampling.get("batch_prompts", 8),
)
df = pl.DataFrame(completions_frame(completions, prompts, tasks["prompt_id"].to_list())).with_columns(
    model=pl.lit(w.model), method=pl.lit(w.method), task=pl.lit(w.task), split=pl.lit(w.split)
)
write_parquet_atomic(df, sm.output[0], "samples")
log.info("wrote %d samples", df.height)
