"""One joined per-sample view of a cell's split (``bongain view``): why did best-of-N pick this sample?

For one cell and split, :func:`joined_view` joins the stages' per-sample tables on (prompt_id,
sample_idx), one row per sample in the samples table's order: the question and gold answer (tasks table),
the completion and its generation statistics (samples), the extracted answer and its correctness (grades),
and every reward model's reward (``scores/<rm>.parquet``) with ``best_<rm>``: whether the sample has the
highest reward of its prompt under that reward model (best-of-N picks uniformly among those). A table that
does not match the samples one to one raises, naming the file.

The same join in polars, for a notebook (docs/artifacts.md)::

    import polars as pl
    d = "results/cells/smollm2-135m/base/add2d1d/test"
    keys = ["prompt_id", "sample_idx"]
    view = (
        pl.read_parquet(f"{d}/samples.parquet")
        .join(pl.read_parquet(f"{d}/grades.parquet").select(*keys, "answer", "correct"), on=keys)
        .join(pl.read_parquet(f"{d}/scores/verifier.parquet").select(*keys, "reward"), on=keys)
    )
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from bongain.io import ArtifactError, read_parquet

KEYS = ["prompt_id", "sample_idx"]
SAMPLE_COLUMNS = [
    "completion",
    "n_tokens",
    "finish_reason",
    "sum_logprob",
    "mean_logprob",
    "mean_entropy",
    "self_certainty",
]
GRADE_COLUMNS = ["answer", "status", "correct"]


def scored_rms(split_dir: Path, order: Sequence[str] = ()) -> list[str]:
    """The reward models with a scores file in ``split_dir/scores``: those of ``order`` first (in that
    order), then any other in name order."""
    present = sorted(p.stem for p in (split_dir / "scores").glob("*.parquet"))
    return [r for r in order if r in present] + [r for r in present if r not in order]


def _join(view: pl.DataFrame, table: pl.DataFrame, columns: list[str], path: Path) -> pl.DataFrame:
    """Left-join ``columns`` of ``table`` onto ``view`` by sample; the table must hold exactly the view's
    samples (``ArtifactError`` naming ``path`` otherwise)."""
    part = table.select(*KEYS, *columns)
    dup = part.group_by(KEYS).len().filter(pl.col("len") > 1)
    missing = view.select(KEYS).join(part.select(KEYS), on=KEYS, how="anti")
    extra = part.select(KEYS).join(view.select(KEYS), on=KEYS, how="anti")
    if dup.height or missing.height or extra.height or part.height != view.height:
        example = (missing if missing.height else extra if extra.height else dup).row(0, named=True)
        raise ArtifactError(
            f"{path}: does not hold the samples of the split one to one ({missing.height} missing, "
            f"{extra.height} extra, {dup.height} duplicated; e.g. prompt {example['prompt_id']!r} sample "
            f"{example['sample_idx']})"
        )
    return view.join(part, on=KEYS, how="left", maintain_order="left")


def joined_view(results: str | Path, cell: str, split: str = "test", rms: Sequence[str] = ()) -> pl.DataFrame:
    """The per-sample view of ``cell`` (``model/method/task``) and ``split`` of the run in ``results``.

    Columns: prompt_id, sample_idx, question, gold (when the tasks table exists), the samples' completion,
    n_tokens, finish_reason, sum_logprob, mean_logprob, mean_entropy, self_certainty, the grades' answer,
    status, correct, then per reward model with a scores file (``rms`` first, in that order)
    ``reward_<rm>`` and ``best_<rm>``.
    """
    results = Path(results)
    parts = cell.strip("/").split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"cell {cell!r}: expected model/method/task")
    split_dir = results / "cells" / cell.strip("/") / split
    samples_path = split_dir / "samples.parquet"
    samples = read_parquet(samples_path, "samples")
    view = samples.select(*KEYS)
    tasks_path = results / "tasks" / parts[2] / f"{split}.parquet"
    if tasks_path.exists():
        tasks = read_parquet(tasks_path, "tasks").select("prompt_id", "question", "gold")
        view = view.join(tasks, on="prompt_id", how="left", maintain_order="left")
        if view["question"].null_count():
            raise ArtifactError(f"{tasks_path}: has no row for some prompt of {samples_path}")
    view = _join(view, samples, SAMPLE_COLUMNS, samples_path)
    grades_path = split_dir / "grades.parquet"
    view = _join(view, read_parquet(grades_path, "grades"), GRADE_COLUMNS, grades_path)
    for rm in scored_rms(split_dir, rms):
        path = split_dir / "scores" / f"{rm}.parquet"
        scores = read_parquet(path, "scores").rename({"reward": f"reward_{rm}"})
        view = _join(view, scores, [f"reward_{rm}"], path)
        view = view.with_columns(
            (pl.col(f"reward_{rm}") == pl.col(f"reward_{rm}").max().over("prompt_id")).alias(f"best_{rm}")
        )
    return view
