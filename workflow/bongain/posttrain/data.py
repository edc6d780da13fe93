"""Training data of a recipe, built from the ``posttrain`` split only (never validation or test).

* ``sft``: one example per posttrain prompt: the prompt and the gold answer written as the model should
  answer (:func:`target`);
* ``rft``: the model's own correct samples of the posttrain prompts, one example per distinct completion;
* ``dpo``: pairs (correct, incorrect) of the model's own samples of the same prompt.

Every input row must come from the ``posttrain`` split; anything else is an error naming the artifact.
Prompts are formatted exactly as the sampler formats them (:func:`bongain.sampling.prompts.format_prompt`),
so the model learns on the prompts it will be evaluated with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from bongain.constants import POSTTRAIN
from bongain.schemas import POSTTRAIN_DATA


class PosttrainDataError(ValueError):
    """Training data cannot be built; the message names the artifact or config key."""


def target(answer: str, prompt_format: str, eos_token: str | None) -> str:
    """The completion text the model is trained to produce for an answer text.

    ``fewshot``: the answer after ``A:`` then the newline the sampler stops at (as the few-shot exemplars
    show it: ``A: 7\\n``); the answer text of a sample already carries its leading space, a gold does not.
    ``chat``: the answer then the end-of-turn (EOS) token the sampler stops at.
    """
    if prompt_format == "fewshot":
        text = answer if answer.startswith(" ") else f" {answer}"
        return f"{text}\n"
    if prompt_format == "chat":
        if not eos_token:
            raise PosttrainDataError("prompt_format 'chat' needs a tokenizer with an EOS token")
        return f"{answer}{eos_token}"
    raise PosttrainDataError(f"unknown prompt_format {prompt_format!r}")


def require_posttrain(df: pl.DataFrame, what: str) -> None:
    """Raise unless every row of ``df`` comes from the posttrain split."""
    bad = sorted(set(df["split"].unique().to_list()) - {POSTTRAIN})
    if bad:
        raise PosttrainDataError(
            f"{what}: rows from split(s) {bad}; post-training learns from the {POSTTRAIN!r} split only"
        )


def _frame(rows: list[dict[str, Any]], model: str, recipe: str, kind: str) -> pl.DataFrame:
    df = pl.DataFrame(
        rows,
        schema={
            "task": pl.String,
            "prompt_id": pl.String,
            "prompt": pl.String,
            "completion": pl.String,
            "sample_idx": pl.Int32,
            "rejected": pl.String,
            "rejected_sample_idx": pl.Int32,
        },
    )
    df = df.with_columns(model=pl.lit(model), recipe=pl.lit(recipe), kind=pl.lit(kind))
    return df.select(list(POSTTRAIN_DATA.columns)).cast(POSTTRAIN_DATA.polars_schema)  # type: ignore[arg-type]


def sft_examples(
    tasks: pl.DataFrame,
    prompts: Sequence[str],
    prompt_format: str,
    eos_token: str | None,
    *,
    model: str,
    recipe: str,
) -> pl.DataFrame:
    """One example per posttrain prompt: ``prompts[i]`` (formatted ``tasks`` row i) -> its gold answer."""
    require_posttrain(tasks, "task tables")
    if len(prompts) != tasks.height:
        raise ValueError(f"{len(prompts)} prompts for {tasks.height} task rows")
    rows = [
        {
            "task": r["task"],
            "prompt_id": r["prompt_id"],
            "prompt": p,
            "completion": target(r["gold"], prompt_format, eos_token),
            "sample_idx": None,
            "rejected": None,
            "rejected_sample_idx": None,
        }
        for r, p in zip(tasks.iter_rows(named=True), prompts, strict=True)
    ]
    return _frame(rows, model, recipe, "sft")


def graded_samples(samples: pl.DataFrame, grades: pl.DataFrame, what: str) -> pl.DataFrame:
    """Samples joined with their grades, posttrain split only, in (task, prompt_id, sample_idx) order."""
    require_posttrain(samples, f"{what} samples")
    require_posttrain(grades, f"{what} grades")
    keys = ["task", "prompt_id", "sample_idx"]
    df = samples.select([*keys, "prompt", "completion"]).join(
        grades.select([*keys, "status", "correct"]), on=keys, how="left", validate="1:1"
    )
    if df["status"].null_count():
        raise PosttrainDataError(f"{what}: {df['status'].null_count()} sample(s) have no grade")
    return df.sort(keys)


def rft_examples(
    samples: pl.DataFrame,
    grades: pl.DataFrame,
    prompt_format: str,
    eos_token: str | None,
    *,
    model: str,
    recipe: str,
) -> pl.DataFrame:
    """The correct samples, one example per distinct (prompt, completion) (the first sample kept)."""
    df = graded_samples(samples, grades, "rft").filter(pl.col("correct"))
    df = df.unique(subset=["task", "prompt_id", "completion"], keep="first", maintain_order=True)
    rows = [
        {
            "task": r["task"],
            "prompt_id": r["prompt_id"],
            "prompt": r["prompt"],
            "completion": target(r["completion"], prompt_format, eos_token),
            "sample_idx": r["sample_idx"],
            "rejected": None,
            "rejected_sample_idx": None,
        }
        for r in df.iter_rows(named=True)
    ]
    return _frame(rows, model, recipe, "rft")


def dpo_pairs(
    samples: pl.DataFrame,
    grades: pl.DataFrame,
    prompt_format: str,
    eos_token: str | None,
    *,
    max_pairs_per_prompt: int,
    model: str,
    recipe: str,
) -> pl.DataFrame:
    """Pairs (chosen = a correct sample, rejected = an incorrect one) of the same prompt.

    Per prompt, the distinct correct completions C and distinct incorrect ones R (graded ``ok`` and wrong,
    or without an answer; ``timeout`` / ``error`` samples are left out: their correctness is unknown), each
    in sample order; pair i is (C[i mod |C|], R[i mod |R|]) for i < min(max_pairs_per_prompt, max(|C|, |R|)).
    A prompt without a correct or without an incorrect sample gives no pair. Deterministic, no seed.
    """
    df = graded_samples(samples, grades, "dpo").filter(pl.col("status").is_in(["ok", "no_answer"]))
    rows: list[dict[str, Any]] = []
    for (task, pid), group in df.group_by(["task", "prompt_id"], maintain_order=True):
        prompt = group["prompt"][0]
        chosen = _distinct(group.filter(pl.col("correct")))
        rejected = _distinct(group.filter(~pl.col("correct")))
        if not chosen or not rejected:
            continue
        for i in range(min(max_pairs_per_prompt, max(len(chosen), len(rejected)))):
            (c_idx, c_text), (r_idx, r_text) = chosen[i % len(chosen)], rejected[i % len(rejected)]
            rows.append(
                {
                    "task": task,
                    "prompt_id": pid,
                    "prompt": prompt,
                    "completion": target(c_text, prompt_format, eos_token),
                    "sample_idx": c_idx,
                    "rejected": target(r_text, prompt_format, eos_token),
                    "rejected_sample_idx": r_idx,
                }
            )
    return _frame(rows, model, recipe, "dpo")


def _distinct(group: pl.DataFrame) -> list[tuple[int, str]]:
    """(sample_idx, completion) of the first sample of each distinct completion, in sample order."""
    seen: dict[str, int] = {}
    for idx, text in zip(group["sample_idx"], group["completion"], strict=True):
        seen.setdefault(text, idx)
    return [(idx, text) for text, idx in seen.items()]


def build_dataset(
    kind: str,
    *,
    tasks: pl.DataFrame,
    prompts: Sequence[str],
    samples: pl.DataFrame | None,
    grades: pl.DataFrame | None,
    method: Mapping[str, Any],
    eos_token: str | None,
    recipe_cfg: Mapping[str, Any],
    model: str,
    recipe: str,
) -> pl.DataFrame:
    """The training data of one (model, recipe): dispatch on the recipe's kind."""
    fmt = method["prompt_format"]
    if kind == "sft":
        return sft_examples(tasks, prompts, fmt, eos_token, model=model, recipe=recipe)
    if samples is None or grades is None:
        raise ValueError(f"recipe kind {kind!r} needs the model's posttrain samples and grades")
    if kind == "rft":
        return rft_examples(samples, grades, fmt, eos_token, model=model, recipe=recipe)
    if kind == "dpo":
        return dpo_pairs(
            samples,
            grades,
            fmt,
            eos_token,
            max_pairs_per_prompt=recipe_cfg["max_pairs_per_prompt"],
            model=model,
            recipe=recipe,
        )
    raise ValueError(f"unknown recipe kind {kind!r}; known: sft, rft, dpo")


def format_prompts(
    tasks: pl.DataFrame,
    method: Mapping[str, Any],
    task_cfgs: Mapping[str, Mapping[str, Any]],
    sizes: Mapping[str, int],
    split_seed: int,
    tokenizer: Any,
) -> list[str]:
    """Each task-table row's prompt under ``method``, with its task's few-shot exemplars: the text the
    sampler would show the model."""
    from bongain.sampling.prompts import format_prompt
    from bongain.tasks.sources import TaskSpec
    from bongain.tasks.splits import fewshot_exemplars

    exemplars = {
        task: fewshot_exemplars(
            task, TaskSpec.from_config(dict(task_cfgs[task])), sizes["exemplars"], split_seed
        )
        for task in tasks["task"].unique(maintain_order=True)
    }
    return [
        format_prompt(q, dict(method), exemplars[t], tokenizer)
        for t, q in zip(tasks["task"], tasks["question"], strict=True)
    ]


def recipe_dataset(
    *,
    tasks: Sequence[pl.DataFrame],
    samples: Sequence[pl.DataFrame],
    grades: Sequence[pl.DataFrame],
    recipe_cfg: Mapping[str, Any],
    method: Mapping[str, Any],
    task_cfgs: Mapping[str, Mapping[str, Any]],
    sizes: Mapping[str, int],
    split_seed: int,
    tokenizer: Any,
    model: str,
    recipe: str,
) -> pl.DataFrame:
    """The training data of (``model``, ``recipe``) from every task's posttrain table and, for rft / dpo,
    the model's graded posttrain samples; checked to be big enough for the recipe's steps."""
    from bongain.posttrain.train import check_enough_examples

    table = pl.concat(list(tasks))
    require_posttrain(table, "task tables")
    kind = recipe_cfg["kind"]
    prompts = format_prompts(table, method, task_cfgs, sizes, split_seed, tokenizer) if kind == "sft" else []
    data = build_dataset(
        kind,
        tasks=table,
        prompts=prompts,
        samples=pl.concat(list(samples)) if samples else None,
        grades=pl.concat(list(grades)) if grades else None,
        method=method,
        eos_token=tokenizer.eos_token,
        recipe_cfg=recipe_cfg,
        model=model,
        recipe=recipe,
    )
    source = f"the posttrain split ({sizes['posttrain']} prompts x {len(tasks)} task(s), splits.posttrain)"
    if kind != "sft":
        source += f" sampled with method {recipe_cfg['method']!r}"
    check_enough_examples(recipe, recipe_cfg, data.height, source)
    return data
