"""Carving a task's sources into disjoint blocks: seeded order, split tables, the few-shot pool.

Every task has one or more *sources* of questions (a generator, JSONL files, or the splits of a hub
dataset). Each source's question space is put in a seeded order (a hash of ``seed`` and the question
text, so it is independent of library versions and of the file order), then consecutive blocks are
carved from it in the fixed order :data:`BLOCKS` (``exemplars`` first, then ``verifier_train``,
``validation``, ``test``, ``posttrain``) among the splits that draw from that source. ``posttrain`` is
last, so giving it a size never moves a question of the other blocks. Blocks of one source never overlap, and
:func:`build_splits` checks that no question (and no prompt id) appears in two splits even when they
come from different files. Rules and formats are documented in ``docs/tasks.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bongain.constants import BLOCKS, POSTTRAIN, SAMPLED_SPLITS
from bongain.schemas import TASKS
from bongain.tasks.generators import generate
from bongain.tasks.sources import TaskSpec, load_hf_records, load_jsonl


@dataclass(frozen=True)
class Item:
    prompt_id: str
    question: str
    gold: str


def seeded_order(keys: Sequence[str], seed: int) -> list[int]:
    """A permutation of ``range(len(keys))``: sort by sha256(seed, key). Stable across versions."""
    digest = [hashlib.sha256(f"{seed}\x00{k}".encode()).digest() for k in keys]
    return sorted(range(len(keys)), key=lambda i: (digest[i], i))


def _source_items(task: str, spec: TaskSpec, source: str, seed: int) -> list[Item]:
    """The source's question space in seeded order, with prompt ids."""
    if spec.generator is not None:
        qa = generate(spec.generator)
        order = seeded_order([q for q, _ in qa], seed)
        # the id is the position in the permuted space: stable when split sizes change
        return [Item(f"{task}-{pos:05d}", qa[i][0], qa[i][1]) for pos, i in enumerate(order)]
    if spec.hf_dataset is not None:
        hf = spec.hf_dataset
        hf_split = next(split for block, split in hf.split if hf.source(block) == source)
        recs = load_hf_records(hf, hf_split)
        order = seeded_order([r.question for r in recs], seed)
        return [
            Item(
                f"{task}-{r.id}" if r.id is not None else f"{task}-{hf_split}-{r.line:05d}",
                r.question,
                r.gold,
            )
            for r in (recs[i] for i in order)
        ]
    recs = load_jsonl(source, spec.question_key, spec.answer_key, spec.id_key, spec.gold_format)
    order = seeded_order([r.question for r in recs], seed)
    stem = Path(source).stem
    return [
        Item(f"{task}-{r.id}" if r.id is not None else f"{task}-{stem}-{r.line:05d}", r.question, r.gold)
        for r in (recs[i] for i in order)
    ]


def _check_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    sizes = {POSTTRAIN: 0, **sizes}  # carved last: leaving it out moves nothing
    missing = [b for b in BLOCKS if b not in sizes]
    extra = sorted(set(sizes) - set(BLOCKS))
    if missing or extra:
        raise ValueError(f"sizes must give exactly {list(BLOCKS)}; missing {missing}, unknown {extra}")
    bad = {b: n for b, n in sizes.items() if not isinstance(n, int) or isinstance(n, bool) or n < 0}
    if bad:
        raise ValueError(f"sizes must be non-negative integers; got {bad}")
    return {b: int(sizes[b]) for b in BLOCKS}


def build_splits(task: str, spec: TaskSpec, sizes: Mapping[str, int], seed: int) -> dict[str, pl.DataFrame]:
    """All blocks of a task (``exemplars``, the evaluation splits, ``posttrain``) as TASKS-schema frames.

    ``sizes`` must give all of :data:`BLOCKS` (0 allowed; ``posttrain`` may be left out, meaning 0): a
    block's position depends on the sizes of the blocks carved before it from the same source. Raises
    ValueError when a source is too small or when two blocks share a question or a prompt id.
    """
    sizes = _check_sizes(sizes)
    sources: dict[str, list[str]] = {}
    for block in BLOCKS:
        if spec.hf_dataset is not None:
            src = spec.hf_dataset.source(block)
        else:
            src = f"generator:{spec.generator}" if spec.jsonl is None else dict(spec.jsonl)[block]
        sources.setdefault(src, []).append(block)
    blocks: dict[str, list[Item]] = {}
    for src, names in sources.items():
        items = _source_items(task, spec, src, seed)
        want = {b: sizes[b] for b in names}
        if sum(want.values()) > len(items):
            raise ValueError(
                f"task {task!r}: {src} has {len(items)} questions but the blocks drawn from it ask for "
                f"{want} = {sum(want.values())}"
            )
        start = 0
        for b in names:
            blocks[b] = items[start : start + sizes[b]]
            start += sizes[b]
    _check_disjoint(task, blocks)
    if spec.answer_type == "number":
        from bongain.grading.answers import normalize_number

        for b, items in blocks.items():
            for it in items:
                if normalize_number(it.gold) is None:
                    raise ValueError(
                        f"task {task!r} ({b}): gold {it.gold!r} of {it.prompt_id} is not a number "
                        "but answer_type is 'number'"
                    )
    return {b: _frame(task, b, blocks[b], spec.answer_type) for b in BLOCKS}


def _check_disjoint(task: str, blocks: Mapping[str, list[Item]]) -> None:
    owner_q: dict[str, str] = {}
    owner_id: dict[str, str] = {}
    for b, items in blocks.items():
        for it in items:
            for owner, key, what in (
                (owner_q, it.question, "question"),
                (owner_id, it.prompt_id, "prompt id"),
            ):
                if key in owner:
                    raise ValueError(
                        f"task {task!r}: {what} of {it.prompt_id} appears in both {owner[key]!r} and {b!r}"
                    )
                owner[key] = b


def _frame(task: str, block: str, items: Sequence[Item], answer_type: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "task": [task] * len(items),
            "split": [block] * len(items),
            "prompt_id": [it.prompt_id for it in items],
            "question": [it.question for it in items],
            "gold": [it.gold for it in items],
            "answer_type": [answer_type] * len(items),
        },
        schema=TASKS.polars_schema,
    )


def build_split(task: str, spec: TaskSpec, split: str, sizes: Mapping[str, int], seed: int) -> pl.DataFrame:
    """One split (``verifier_train`` | ``validation`` | ``test`` | ``posttrain``) as a TASKS-schema frame."""
    if split not in SAMPLED_SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {list(SAMPLED_SPLITS)}")
    return build_splits(task, spec, sizes, seed)[split]


def fewshot_exemplars(task: str, spec: TaskSpec, k: int, seed: int) -> list[tuple[str, str]]:
    """The few-shot pool: the first ``k`` questions of the (first) source, as (question, gold).

    Equal to the ``exemplars`` block of :func:`build_splits` when ``sizes['exemplars'] == k``.
    """
    sizes = dict.fromkeys(BLOCKS, 0) | {"exemplars": k}
    df = build_splits(task, spec, sizes, seed)["exemplars"]
    return list(zip(df["question"].to_list(), df["gold"].to_list(), strict=True))


def questions_after_blocks(
    task: str, spec: TaskSpec, sizes: Mapping[str, int], seed: int, k: int, block: str = "orm"
) -> pl.DataFrame:
    """Up to ``k`` questions of the source that holds the ``test`` block, carved after every block drawn
    from that source (so never an exemplar, verifier_train, validation, test or posttrain question, and
    nothing of the other blocks moves), as a TASKS-schema frame whose ``split`` is ``block``.

    Fewer than ``k`` come back when the source has fewer left (a generator's small answer space); the
    caller decides whether that is enough.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    sizes = _check_sizes(sizes)

    def source(b: str) -> str:
        if spec.hf_dataset is not None:
            return spec.hf_dataset.source(b)
        return f"generator:{spec.generator}" if spec.jsonl is None else dict(spec.jsonl)[b]

    src = source("test")
    start = sum(sizes[b] for b in BLOCKS if source(b) == src)
    items = _source_items(task, spec, src, seed)[start : start + k]
    return _frame(task, block, items, spec.answer_type)
