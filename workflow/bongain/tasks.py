"""Task definitions: generated arithmetic families and JSONL datasets, carved into disjoint splits.

Every task has one or more *sources* of questions (a generator, or JSONL files). Each source's
question space is put in a seeded order (a hash of ``seed`` and the question text, so it is
independent of library versions and of the file order), then consecutive blocks are carved from it
in the fixed order :data:`SPLITS` (``exemplars`` first, then ``verifier_train``, ``validation``,
``test``) among the splits that draw from that source. Blocks of one source never overlap, and
:func:`build_splits` checks that no question (and no prompt id) appears in two splits even when they
come from different files. Rules and formats are documented in ``docs/tasks.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from bongain.schemas import TASKS

#: The blocks carved from each source, in carving order. ``exemplars`` is the few-shot pool: never a split.
SPLITS: tuple[str, ...] = ("exemplars", "verifier_train", "validation", "test")
#: The splits that are written as task tables (TASKS schema).
EVAL_SPLITS: tuple[str, ...] = SPLITS[1:]
ANSWER_TYPES: tuple[str, ...] = ("number", "choice", "math")
GOLD_FORMATS: tuple[str, ...] = ("plain", "gsm8k")


# --------------------------------------------------------------------------------------------------
# Generated families
# --------------------------------------------------------------------------------------------------

QA = tuple[str, str]  # (question, gold)


def _add1() -> list[QA]:
    return [(f"What is {a} + {b}?", str(a + b)) for a in range(10) for b in range(10)]


def _sub1() -> list[QA]:
    return [(f"What is {a} - {b}?", str(a - b)) for a in range(10) for b in range(a + 1)]


def _mul1() -> list[QA]:
    return [(f"What is {a} * {b}?", str(a * b)) for a in range(10) for b in range(10)]


def _add2d1d() -> list[QA]:
    return [(f"What is {a} + {b}?", str(a + b)) for a in range(10, 100) for b in range(10)]


def _deccmp() -> list[QA]:
    """``i.d`` against ``i.ef`` (same integer part, one vs two decimals, never equal), both orders.

    The tricky cases are those where the longer decimal is the smaller number (0.7 vs 0.65).
    ``ef`` skips multiples of ten so that no pair is equal (0.5 vs 0.50) and every number is
    written in its shortest form; the gold is the larger number exactly as written in the question.
    """
    out: list[QA] = []
    for i in range(10):
        for d in range(1, 10):
            for ef in range(1, 100):
                if ef % 10 == 0:
                    continue
                x, y = f"{i}.{d}", f"{i}.{ef:02d}"
                larger = x if d * 10 > ef else y
                out.append((f"Which is larger: {x} or {y}?", larger))
                out.append((f"Which is larger: {y} or {x}?", larger))
    return out


#: generator name -> (enumerator of the whole question space, short description for the docs)
GENERATORS: dict[str, tuple[Callable[[], list[QA]], str]] = {
    "add1": (_add1, "a + b, a, b in 0..9 (100 questions)"),
    "sub1": (_sub1, "a - b, 0 <= b <= a <= 9 (55 questions)"),
    "mul1": (_mul1, "a * b, a, b in 0..9 (100 questions)"),
    "add2d1d": (_add2d1d, "a + b, a in 10..99, b in 0..9 (900 questions)"),
    "deccmp": (_deccmp, "larger of i.d and i.ef, both orders (16200 questions)"),
}


@cache
def generate(generator: str) -> tuple[QA, ...]:
    """The whole question space of a generator, in a fixed enumeration order, without duplicates."""
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; known: {sorted(GENERATORS)}")
    items = tuple(GENERATORS[generator][0]())
    assert len({q for q, _ in items}) == len(items), f"generator {generator} repeats a question"
    return items


# --------------------------------------------------------------------------------------------------
# JSONL datasets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One question of a JSONL file. ``line`` is 1-based; ``id`` is None without an ``id_key``."""

    line: int
    id: str | None
    question: str
    gold: str


def parse_gold(raw: str, gold_format: str) -> str:
    """The gold answer string from the raw answer field (``gsm8k``: text after the last ``####``)."""
    if gold_format == "plain":
        return raw.strip()
    if gold_format == "gsm8k":
        if "####" not in raw:
            return ""
        return raw.rsplit("####", 1)[1].replace(",", "").strip()
    raise ValueError(f"unknown gold_format {gold_format!r}; known: {list(GOLD_FORMATS)}")


def _field(obj: Mapping[str, object], key: str) -> str:
    value = obj.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value)


def load_jsonl(
    path: str | Path,
    question_key: str,
    answer_key: str,
    id_key: str | None = None,
    gold_format: str = "plain",
) -> list[Record]:
    """Read a JSONL dataset; every problem raises ValueError naming the file and the 1-based line.

    Errors: invalid JSON (or a line that is not an object), missing/empty question, missing/empty gold
    (after ``gold_format`` parsing), missing/empty or duplicate id (with ``id_key``), duplicate question.
    Blank lines are skipped.
    """
    p = Path(path)
    if gold_format not in GOLD_FORMATS:
        raise ValueError(f"unknown gold_format {gold_format!r}; known: {list(GOLD_FORMATS)}")
    if not p.is_file():
        raise ValueError(f"{p}: JSONL file does not exist")
    records: list[Record] = []
    seen_ids: dict[str, int] = {}
    seen_questions: dict[str, int] = {}
    with p.open(encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: invalid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            question = _field(obj, question_key).strip()
            if not question:
                raise ValueError(f"{where}: missing or empty question (key {question_key!r})")
            gold = parse_gold(_field(obj, answer_key), gold_format)
            if not gold:
                raise ValueError(f"{where}: missing or empty gold answer (key {answer_key!r}, {gold_format})")
            rid: str | None = None
            if id_key is not None:
                rid = _field(obj, id_key).strip()
                if not rid:
                    raise ValueError(f"{where}: missing or empty id (key {id_key!r})")
                if rid in seen_ids:
                    raise ValueError(f"{where}: duplicate id {rid!r} (first at line {seen_ids[rid]})")
                seen_ids[rid] = lineno
            if question in seen_questions:
                raise ValueError(f"{where}: duplicate question (first at line {seen_questions[question]})")
            seen_questions[question] = lineno
            records.append(Record(line=lineno, id=rid, question=question, gold=gold))
    if not records:
        raise ValueError(f"{p}: no records")
    return records


# --------------------------------------------------------------------------------------------------
# Task specs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """A task's config. Exactly one of ``generator`` and ``jsonl`` is set.

    ``jsonl`` maps every block of :data:`SPLITS` to a file; blocks mapped to the same file are carved
    from it as consecutive disjoint blocks. A single path in the config maps all blocks to it.
    """

    answer_type: str
    generator: str | None = None
    jsonl: tuple[tuple[str, str], ...] | None = None  # ((block, path), ...) in SPLITS order
    question_key: str = "question"
    answer_key: str = "answer"
    id_key: str | None = None
    gold_format: str = "plain"

    def __post_init__(self) -> None:
        if self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"unknown answer_type {self.answer_type!r}; known: {list(ANSWER_TYPES)}")
        if (self.generator is None) == (self.jsonl is None):
            raise ValueError("a task needs exactly one of 'generator' and 'jsonl'")
        if self.generator is not None and self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}; known: {sorted(GENERATORS)}")
        if self.jsonl is not None and sorted(b for b, _ in self.jsonl) != sorted(SPLITS):
            raise ValueError(f"'jsonl' must name a file for each of {list(SPLITS)}; got {self.jsonl}")
        if self.gold_format not in GOLD_FORMATS:
            raise ValueError(f"unknown gold_format {self.gold_format!r}; known: {list(GOLD_FORMATS)}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, object], base_dir: str | Path | None = None) -> TaskSpec:
        """Build from a YAML mapping; relative JSONL paths are resolved against ``base_dir``.

        ``jsonl`` is a path (all blocks carved from that file) or a mapping that names a file for each
        block of :data:`SPLITS` (blocks naming the same file are carved from it disjointly).
        """
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown task config key(s) {unknown}; known: {sorted(known)}")
        kwargs = dict(cfg)
        raw = kwargs.get("jsonl")
        if raw is not None:
            base = Path(base_dir) if base_dir is not None else None

            def resolve(x: object) -> str:
                q = Path(str(x))
                return str(base / q if base is not None and not q.is_absolute() else q)

            if isinstance(raw, Mapping):
                if sorted(raw) != sorted(SPLITS):
                    raise ValueError(
                        f"'jsonl' mapping must name a file for each of {list(SPLITS)}; got {dict(raw)}"
                    )
                kwargs["jsonl"] = tuple((b, resolve(raw[b])) for b in SPLITS)
            else:
                kwargs["jsonl"] = tuple((b, resolve(raw)) for b in SPLITS)
        return cls(**kwargs)  # type: ignore[arg-type]


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
    recs = load_jsonl(source, spec.question_key, spec.answer_key, spec.id_key, spec.gold_format)
    order = seeded_order([r.question for r in recs], seed)
    stem = Path(source).stem
    return [
        Item(f"{task}-{r.id}" if r.id is not None else f"{task}-{stem}-{r.line:05d}", r.question, r.gold)
        for r in (recs[i] for i in order)
    ]


def _check_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    missing = [b for b in SPLITS if b not in sizes]
    extra = sorted(set(sizes) - set(SPLITS))
    if missing or extra:
        raise ValueError(f"sizes must give exactly {list(SPLITS)}; missing {missing}, unknown {extra}")
    bad = {b: n for b, n in sizes.items() if not isinstance(n, int) or isinstance(n, bool) or n < 0}
    if bad:
        raise ValueError(f"sizes must be non-negative integers; got {bad}")
    return {b: int(sizes[b]) for b in SPLITS}


def build_splits(task: str, spec: TaskSpec, sizes: Mapping[str, int], seed: int) -> dict[str, pl.DataFrame]:
    """All blocks of a task (``exemplars`` and the three splits) as TASKS-schema frames.

    ``sizes`` must give all of :data:`SPLITS` (0 allowed): a block's position depends on the sizes of
    the blocks carved before it from the same source. Raises ValueError when a source is too small
    or when two blocks share a question or a prompt id.
    """
    sizes = _check_sizes(sizes)
    sources: dict[str, list[str]] = {}
    for block in SPLITS:
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
        from bongain.grading import normalize_number

        for b, items in blocks.items():
            for it in items:
                if normalize_number(it.gold) is None:
                    raise ValueError(
                        f"task {task!r} ({b}): gold {it.gold!r} of {it.prompt_id} is not a number "
                        "but answer_type is 'number'"
                    )
    return {b: _frame(task, b, blocks[b], spec.answer_type) for b in SPLITS}


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
    """One split (``verifier_train`` | ``validation`` | ``test``) as a TASKS-schema frame."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {list(EVAL_SPLITS)}")
    return build_splits(task, spec, sizes, seed)[split]


def fewshot_exemplars(task: str, spec: TaskSpec, k: int, seed: int) -> list[tuple[str, str]]:
    """The few-shot pool: the first ``k`` questions of the (first) source, as (question, gold).

    Equal to the ``exemplars`` block of :func:`build_splits` when ``sizes['exemplars'] == k``.
    """
    sizes = dict.fromkeys(SPLITS, 0) | {"exemplars": k}
    df = build_splits(task, spec, sizes, seed)["exemplars"]
    return list(zip(df["question"].to_list(), df["gold"].to_list(), strict=True))
