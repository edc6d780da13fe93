"""One sample job: N completions per prompt of one split (or shard) of one cell, checkpointed per batch.

The rule script ``workflow/scripts/sample.py`` reads the inputs and calls :func:`sample_split`; this
module formats the prompts (:mod:`bongain.sampling.prompts`), picks the backend
(:mod:`bongain.sampling.backends`) and writes finished batches under ``.<output>.partial/`` so that a
killed job resumes where it stopped (:mod:`bongain.sampling.shards`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import polars as pl

from bongain.sampling.backends import load_backend
from bongain.sampling.loop import SamplingParams, completions_frame
from bongain.sampling.prompts import format_prompt, stop_strings, tokenize_prompt
from bongain.sampling.shards import close_partial, fingerprint, partial_dir, run_checkpointed, shard_rows
from bongain.tasks.sources import TaskSpec
from bongain.tasks.splits import fewshot_exemplars

log = logging.getLogger("bongain.sample")


def sampling_params(method: Mapping[str, Any], sampling: Mapping[str, Any]) -> SamplingParams:
    """The sampling parameters of a method under the config's ``sampling`` block."""
    return SamplingParams(
        n=sampling["n"],
        temperature=method["temperature"],
        top_p=method["top_p"],
        max_new_tokens=method["max_new_tokens"],
        stop=stop_strings(method),
        seed=sampling["seed"],
    )


def sample_split(
    tasks: pl.DataFrame,
    cell: Mapping[str, str],
    *,
    manifest: Mapping[str, Any],
    model_cfg: Mapping[str, Any],
    method: Mapping[str, Any],
    task_cfg: Mapping[str, Any],
    sampling: Mapping[str, Any],
    sizes: Mapping[str, int],
    split_seed: int,
    output: str,
    version: int,
) -> tuple[pl.DataFrame, int]:
    """The samples table of one split of one cell, and how many batches were resumed from checkpoints.

    ``cell`` holds the job's wildcards (model, method, task, split and, for a sharded job, shard: then
    only that shard's block of consecutive task-table rows is sampled). ``output`` is the job's output
    file; its checkpoint folder is removed once the caller has written it (:func:`finish`).
    """
    if "shard" in cell:
        start, stop = shard_rows(tasks.height, sampling["shard_prompts"], cell["shard"])
        tasks = tasks.slice(start, stop - start)
    params = sampling_params(method, sampling)
    backend = load_backend(manifest, model_cfg, params.seed)
    spec = TaskSpec.from_config(dict(task_cfg))
    exemplars = fewshot_exemplars(cell["task"], spec, sizes["exemplars"], split_seed)
    prompts = [format_prompt(q, dict(method), exemplars, backend.tokenizer) for q in tasks["question"]]
    ids = tasks["prompt_id"].to_list()
    token_ids = [tokenize_prompt(p, dict(method), backend.tokenizer) for p in prompts]
    batch_prompts = sampling["batch_prompts"]
    log.info("%s: %d prompts x %d samples", "/".join(cell.values()), len(prompts), params.n)

    def sample_rows(start: int, stop: int) -> pl.DataFrame:
        """Samples of prompts [start, stop): one checkpointed batch."""
        completions = backend.sample(
            prompts[start:stop], token_ids[start:stop], ids[start:stop], params, batch_prompts=batch_prompts
        )
        return pl.DataFrame(
            completions_frame(completions, prompts[start:stop], ids[start:stop])
        ).with_columns(
            model=pl.lit(cell["model"]),
            method=pl.lit(cell["method"]),
            task=pl.lit(cell["task"]),
            split=pl.lit(cell["split"]),
        )

    fp = fingerprint([dict(cell), prompts, ids, params, batch_prompts, dict(manifest), version])
    return run_checkpointed(ids, params.n, batch_prompts, partial_dir(output), fp, sample_rows)


def finish(output: str) -> None:
    """Drop the job's batch checkpoints once its output file is written."""
    close_partial(partial_dir(output))
