"""One sample job: N completions per prompt of every split a cell needs (or of one shard), checkpointed.

The rule script ``workflow/scripts/sample.py`` reads the inputs and calls :func:`sample_cell`: the model
is loaded once per job and serves every split of the cell (one output Parquet per split), so the fixed
per-job cost (start-up, imports, model load) is paid once per cell, not once per split. With
``sampling.shard_prompts`` a job samples one shard of one split (:func:`sample_split`). This module
formats the prompts (:mod:`bongain.sampling.prompts`), picks the backend
(:mod:`bongain.sampling.backends`) and writes finished batches under ``.<output>.partial/`` so that a
killed job resumes where it stopped (:mod:`bongain.sampling.shards`); a split whose output was already
written before the kill comes back from its checkpoints, since they are removed only once every output
of the job is written (:func:`finish`). Before a model is loaded, a GPU job checks that it got the GPUs its
config needs (:func:`bongain.preflight.check_job`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from bongain.preflight import check_job, sample_needs
from bongain.sampling.backends import Backend, load_backend
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
    backend: Backend | None = None,
) -> tuple[pl.DataFrame, int]:
    """The samples table of one split of one cell, and how many batches were resumed from checkpoints.

    ``cell`` holds the job's wildcards (model, method, task, split and, for a sharded job, shard: then
    only that shard's block of consecutive task-table rows is sampled). ``output`` is the job's output
    file; its checkpoint folder is removed once the caller has written it (:func:`finish`). ``backend``
    is a model already loaded by the job (:func:`sample_cell`); without it the model is loaded here.
    """
    if "shard" in cell:
        start, stop = shard_rows(tasks.height, sampling["shard_prompts"], cell["shard"])
        tasks = tasks.slice(start, stop - start)
    params = sampling_params(method, sampling)
    if backend is None:
        check_job(sample_needs(cell["model"], model_cfg, manifest))
        backend = load_backend(manifest, model_cfg, params.seed, cell["model"])
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


def sample_cell(
    tasks: Mapping[str, pl.DataFrame],
    cell: Mapping[str, str],
    *,
    manifest: Mapping[str, Any],
    model_cfg: Mapping[str, Any],
    method: Mapping[str, Any],
    task_cfg: Mapping[str, Any],
    sampling: Mapping[str, Any],
    sizes: Mapping[str, int],
    split_seed: int,
    outputs: Mapping[str, str],
    version: int,
    write: Callable[[pl.DataFrame, str], None],
    backend: Backend | None = None,
) -> dict[str, int]:
    """Sample every split of one cell with one loaded model: ``tasks`` and ``outputs`` map split -> task
    table and output file. Each split's table goes to ``write(df, path)`` as soon as it is done; returns
    split -> batches resumed from checkpoints. The samples of a split are exactly those of a job that
    samples that split alone (a sample depends only on the seed, its prompt id, its index and the logits).
    """
    if set(tasks) != set(outputs):
        raise ValueError(f"splits of tasks {sorted(tasks)} and outputs {sorted(outputs)} differ")
    if backend is None:
        check_job(sample_needs(cell["model"], model_cfg, manifest))
        backend = load_backend(manifest, model_cfg, sampling["seed"], cell["model"])
    reused = {}
    for split, output in outputs.items():
        df, reused[split] = sample_split(
            tasks[split],
            {**cell, "split": split},
            manifest=manifest,
            model_cfg=model_cfg,
            method=method,
            task_cfg=task_cfg,
            sampling=sampling,
            sizes=sizes,
            split_seed=split_seed,
            output=output,
            version=version,
            backend=backend,
        )
        write(df, output)
    return reused


def finish(*outputs: str) -> None:
    """Drop the job's batch checkpoints once all of its output files are written."""
    for output in outputs:
        close_partial(partial_dir(output))
