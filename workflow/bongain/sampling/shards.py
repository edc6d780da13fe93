"""Shards of a split and checkpointed batches: crash-safe, resumable sampling with identical output.

Two levels, both keyed by positions in the task table so that their union is exactly the unsharded run:

* **Shards** (``sampling.shard_prompts``): a split of ``P`` prompts is cut into ``ceil(P / S)`` shards
  of ``S`` consecutive task-table rows; each shard is its own Snakemake job and Parquet file
  (``{split}/shards/{shard}.parquet``, names ``0000``, ``0001``, ...) and :func:`merge_shards` joins them
  into ``{split}/samples.parquet`` after checking that every prompt of the task table is there exactly
  once with all ``N`` samples. The shard count comes from the config sizes alone (no checkpoints).
* **Batch checkpoints** (inside one sampling job): every finished batch of ``batch_prompts`` prompts is
  written atomically to ``.<output name>.partial/batch-<k>.parquet`` next to the job's output;
  a restarted job reuses the batches that are there (after checking them) and computes only the rest.
  The folder carries a fingerprint of everything that determines the samples; a different fingerprint
  (another config, model or code version) discards it. It is removed once the output is written.

Samples are a pure function of (seed, prompt id, sample index) and the logits of the batch a prompt is
in, so a shard must hold whole batches (``shard_prompts`` is a multiple of ``batch_prompts``, checked in
the config) for the merged file to be byte-identical to the unsharded one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from bongain.io import ArtifactError, read_parquet, write_parquet_atomic

log = logging.getLogger("bongain.sampling.shards")

SHARD_WIDTH = 4  # shard names: 0000, 0001, ... (more digits when there are more than 10^4 shards)
FINGERPRINT_FILE = "fingerprint.json"


class ShardError(RuntimeError):
    """The shards of a split do not add up to its task table."""


# --------------------------------------------------------------------------------------------------
# Shard arithmetic (used at DAG-build time: pure, no I/O)
# --------------------------------------------------------------------------------------------------


def n_shards(n_prompts: int, shard_prompts: int | None) -> int:
    """Shards of a split of ``n_prompts`` prompts (1 without sharding)."""
    if n_prompts < 0:
        raise ValueError(f"n_prompts must be >= 0, got {n_prompts}")
    if shard_prompts is None:
        return 1
    if shard_prompts < 1:
        raise ValueError(f"shard_prompts must be >= 1, got {shard_prompts}")
    return max(1, math.ceil(n_prompts / shard_prompts))


def shard_name(index: int) -> str:
    return f"{index:0{SHARD_WIDTH}d}"


def shard_names(n_prompts: int, shard_prompts: int | None) -> list[str]:
    return [shard_name(i) for i in range(n_shards(n_prompts, shard_prompts))]


def shard_rows(n_prompts: int, shard_prompts: int | None, shard: str | int) -> tuple[int, int]:
    """Task-table rows ``[start, stop)`` of one shard; raises for a shard that does not exist."""
    index = int(shard)
    count = n_shards(n_prompts, shard_prompts)
    if not 0 <= index < count or (isinstance(shard, str) and shard != shard_name(index)):
        raise ValueError(f"shard {shard!r} does not exist: this split has {count} shard(s)")
    if shard_prompts is None:
        return 0, n_prompts
    start = index * shard_prompts
    return start, min(start + shard_prompts, n_prompts)


# --------------------------------------------------------------------------------------------------
# Row checks shared by checkpoints and the merge
# --------------------------------------------------------------------------------------------------


def check_rows(df: pl.DataFrame, prompt_ids: Sequence[str], n: int, where: str) -> None:
    """``df`` holds exactly ``n`` samples (sample_idx 0..n-1, in order) of each of ``prompt_ids``, in order.

    Raises :class:`ShardError` starting with ``where`` and naming the missing / duplicated / unexpected
    prompt ids.
    """
    got = df.select("prompt_id", "sample_idx")
    expected = pl.DataFrame(
        {
            "prompt_id": [p for p in prompt_ids for _ in range(n)],
            "sample_idx": [j for _ in prompt_ids for j in range(n)],
        },
        schema={"prompt_id": pl.String, "sample_idx": pl.Int32},
    )
    if got.height == expected.height and got.cast(expected.schema).equals(expected):
        return
    counts = dict(got.group_by("prompt_id").len().iter_rows())
    wanted = set(prompt_ids)
    missing = [p for p in prompt_ids if p not in counts]
    unexpected = sorted(p for p in counts if p not in wanted)
    wrong = sorted(p for p, c in counts.items() if p in wanted and c != n)
    problems = []
    if missing:
        problems.append(f"missing prompt(s) {_ids(missing)}")
    if unexpected:
        problems.append(f"prompt(s) not in this range of the task table {_ids(unexpected)}")
    if wrong:
        problems.append(
            f"prompt(s) without exactly {n} samples (duplicated or incomplete) "
            f"{_ids(wrong)} (counts {[counts[p] for p in wrong[:10]]})"
        )
    if not problems:
        problems.append("rows are not in task-table order then sample_idx 0..N-1")
    raise ShardError(f"{where}: " + "; ".join(problems))


def _ids(ids: Sequence[str], limit: int = 10) -> str:
    shown = list(ids[:limit])
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"{shown}{more}"


# --------------------------------------------------------------------------------------------------
# Merge
# --------------------------------------------------------------------------------------------------


def merge_shards(
    shard_paths: Sequence[str | os.PathLike],
    tasks: pl.DataFrame,
    n: int,
    shard_prompts: int,
    *,
    cell: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The samples table of a split from its shard files, in task-table order then sample_idx.

    Shard ``i`` must hold exactly the rows ``[i*S, (i+1)*S)`` of the task table with ``n`` samples
    each; a prompt missing from every shard, present in two shards, or a shard file that is unreadable
    raises :class:`ShardError` / :class:`bongain.io.ArtifactError` naming the file and the prompt ids.
    ``cell`` (model, method, task, split) is checked against the shard's cell columns when given.
    """
    prompt_ids = tasks["prompt_id"].to_list()
    expected = n_shards(len(prompt_ids), shard_prompts)
    if len(shard_paths) != expected:
        raise ShardError(
            f"{len(prompt_ids)} prompts in shards of {shard_prompts} need {expected} shard file(s), "
            f"got {len(shard_paths)}: {[str(p) for p in shard_paths]}"
        )
    seen: dict[str, str] = {}
    frames = []
    for i, path in enumerate(shard_paths):
        df = read_parquet(path, "samples")
        if cell:
            for col, value in cell.items():
                bad = df.filter(pl.col(col) != value)
                if bad.height:
                    raise ShardError(f"{path}: column {col!r} is {bad[col][0]!r}, expected {value!r}")
        here = list(dict.fromkeys(df["prompt_id"].to_list()))
        dupes = [p for p in here if p in seen]
        if dupes:
            raise ShardError(
                f"{path}: prompt(s) {_ids(dupes)} already in {seen[dupes[0]]} (duplicated across shards)"
            )
        seen.update(dict.fromkeys(here, str(path)))
        start, stop = shard_rows(len(prompt_ids), shard_prompts, i)
        check_rows(df, prompt_ids[start:stop], n, f"{path} (shard {shard_name(i)}, task rows {start}-{stop})")
        frames.append(df)
    merged = pl.concat(frames, how="vertical").rechunk()
    check_rows(merged, prompt_ids, n, "merged shards")
    return merged


# --------------------------------------------------------------------------------------------------
# Batch checkpoints inside one job
# --------------------------------------------------------------------------------------------------


def partial_dir(output: str | os.PathLike) -> Path:
    """The checkpoint folder of a job output: ``<dir>/.<name>.partial``."""
    out = Path(output)
    return out.parent / f".{out.name}.partial"


def fingerprint(obj: Any) -> str:
    """A stable hash of a JSON-able description of everything that determines a job's output."""
    text = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _open_partial(folder: Path, fp: str) -> None:
    """Make ``folder`` a checkpoint folder for fingerprint ``fp``; discard it when it was for another."""
    marker = folder / FINGERPRINT_FILE
    if folder.exists():
        try:
            old = json.loads(marker.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            old = None
        if old != fp:
            log.warning("%s: checkpoints are from another configuration or version; discarding", folder)
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stray in folder.glob(".*.tmp"):  # a write that was interrupted: never a checkpoint
        stray.unlink(missing_ok=True)
    if not marker.exists():
        tmp = folder / f".{FINGERPRINT_FILE}.tmp"
        tmp.write_text(json.dumps({"fingerprint": fp}) + "\n")
        os.replace(tmp, marker)


def batch_path(folder: Path, index: int) -> Path:
    return folder / f"batch-{index:05d}.parquet"


def run_checkpointed(
    prompt_ids: Sequence[str],
    n: int,
    batch_prompts: int,
    folder: str | os.PathLike,
    fp: str,
    compute: Callable[[int, int], pl.DataFrame],
    *,
    schema: str = "samples",
) -> tuple[pl.DataFrame, int]:
    """All rows of ``prompt_ids`` (``n`` samples each), computed batch by batch with checkpoints.

    ``compute(start, stop)`` returns the rows of prompts ``[start, stop)``. Each finished batch is
    written atomically to ``folder``; batches already there (same fingerprint ``fp``, readable, with
    exactly the expected rows) are reused, anything else is recomputed. Returns the concatenated frame
    (identical to computing every batch now) and the number of batches reused.
    """
    if batch_prompts < 1:
        raise ValueError(f"batch_prompts must be >= 1, got {batch_prompts}")
    folder = Path(folder)
    _open_partial(folder, fp)
    frames: list[pl.DataFrame] = []
    reused = 0
    for k, start in enumerate(range(0, len(prompt_ids), batch_prompts)):
        stop = min(start + batch_prompts, len(prompt_ids))
        path = batch_path(folder, k)
        where = f"{path} (prompts {start}-{stop})"
        if path.exists():
            try:
                df = read_parquet(path, schema)
                check_rows(df, prompt_ids[start:stop], n, where)
            except (ArtifactError, ShardError) as err:
                log.warning("discarding bad checkpoint: %s", err)
                path.unlink(missing_ok=True)
            else:
                frames.append(df)
                reused += 1
                continue
        df = compute(start, stop)
        check_rows(df, prompt_ids[start:stop], n, f"computed batch {k} (prompts {start}-{stop})")
        write_parquet_atomic(df, path, schema)
        frames.append(read_parquet(path, schema))  # exactly what a resumed run would read back
    if not frames:
        raise ValueError("no prompts to sample")
    return pl.concat(frames, how="vertical").rechunk(), reused


def close_partial(folder: str | os.PathLike) -> None:
    """Remove a checkpoint folder once the job's output is safely written."""
    shutil.rmtree(folder, ignore_errors=True)
