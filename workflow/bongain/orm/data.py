"""Training data of the outcome reward model: labelled (question, completion) rows and preference pairs.

Rows come from two sources, both on questions that are never validation or test questions:

* **near misses** (:func:`near_misses`): for every question of the reward model's block, its gold answer
  (labelled correct) and ``k`` wrong answers close to it (labelled incorrect): the gold shifted by a few
  units of its last digit, single-digit edits, and the numbers of the question itself. They teach the
  model what a right answer is on many distinct questions at no sampling cost;
* **on-policy samples**: the cells' own graded samples of those questions (what the policies really write,
  formatting slips and all).

Everything here is pure and deterministic: candidates are ordered by a hash of (seed, question, candidate),
so the rows do not depend on set order, library versions or the machine.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

import polars as pl

from bongain.grading.answers import normalize_number

_QUESTION_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")
_LETTERS = "ABCDE"


def _rank(seed: int, question: str, candidate: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{question}\x00{candidate}".encode()).digest()


def _fmt(d: Decimal) -> str | None:
    """A decimal written the way the tasks write numbers (no exponent, no trailing zeros)."""
    return normalize_number(format(d, "f"))


def _digit_edits(text: str) -> set[str]:
    """Single edits of a number's digits: each digit +-1, one digit dropped, two adjacent digits swapped."""
    out: set[str] = set()
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    for i in digits:
        d = int(text[i])
        for nd in ((d + 1) % 10, (d - 1) % 10):
            out.add(text[:i] + str(nd) + text[i + 1 :])
        if len(digits) > 1:
            out.add(text[:i] + text[i + 1 :])
    for a, b in itertools.pairwise(digits):
        if b == a + 1 and text[a] != text[b]:
            out.add(text[:a] + text[b] + text[a] + text[b + 1 :])
    return out


def numeric_candidates(question: str, gold: str) -> set[str]:
    """Wrong-answer candidates for a numeric gold (normalised numbers, the gold itself excluded)."""
    g = normalize_number(gold)
    if g is None:
        return set()
    value = Decimal(g)
    exp = value.as_tuple().exponent
    unit = Decimal(1).scaleb(exp) if isinstance(exp, int) and exp < 0 else Decimal(1)
    raw: set[str] = {str(value + s * d * unit) for d in (1, 2, 3, 10) for s in (1, -1)}
    raw |= _digit_edits(g)
    raw |= set(_QUESTION_NUMBER.findall(question))
    out: set[str] = set()
    for c in raw:
        try:
            n = _fmt(Decimal(c))
        except InvalidOperation:
            continue
        if n is not None and n != g:
            out.add(n)
    return out


def near_misses(question: str, gold: str, answer_type: str, k: int, seed: int) -> list[str]:
    """Up to ``k`` wrong answers close to ``gold``, in a seeded order (the first ``k`` of a fixed ranking).

    ``number`` (and ``math`` with a numeric gold): see :func:`numeric_candidates`; ``choice``: the other
    letters A-E. Any other gold gives no candidates (the model then learns from on-policy samples only).
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if answer_type == "choice":
        cands = {c for c in _LETTERS if c != gold.strip().upper()}
    elif answer_type in ("number", "math"):
        cands = numeric_candidates(question, gold)
    else:
        raise ValueError(f"unknown answer_type {answer_type!r}")
    return sorted(cands, key=lambda c: _rank(seed, question, c))[:k]


def completion_text(answer: str) -> str:
    """A near-miss (or gold) answer written the way a few-shot policy writes it after ``A:``."""
    return answer if answer.startswith(" ") else f" {answer}"


class OrmDataError(ValueError):
    """The reward model's training data cannot be built or used; the message names the config key."""


def near_miss_rows(tasks: pl.DataFrame, k: int, seed: int) -> pl.DataFrame:
    """Per question of ``tasks`` (TASKS rows): the gold (correct) and up to ``k`` near misses (incorrect).

    Columns task, prompt_id, question, completion, correct, source (``gold`` | ``near_miss``); the
    label of a near miss is checked by the grader (:func:`bongain.grading.compare.is_correct`), so a
    candidate the grader would accept is labelled correct, never silently wrong.
    """
    from bongain.grading.answers import extract_answer
    from bongain.grading.compare import is_correct

    rows: list[tuple[str, str, str, str, bool, str]] = []
    for task, pid, question, gold, answer_type in tasks.select(
        "task", "prompt_id", "question", "gold", "answer_type"
    ).iter_rows():
        rows.append((task, pid, question, completion_text(gold), True, "gold"))
        for cand in near_misses(question, gold, answer_type, k, seed):
            text = completion_text(cand)
            ok = is_correct(extract_answer(text, answer_type, "fewshot"), gold, answer_type)
            rows.append((task, pid, question, text, ok, "near_miss"))
    return pl.DataFrame(
        rows,
        schema={
            "task": pl.String,
            "prompt_id": pl.String,
            "question": pl.String,
            "completion": pl.String,
            "correct": pl.Boolean,
            "source": pl.String,
        },
        orient="row",
    )


def preference_pairs(
    questions: Sequence[str], correct: Sequence[bool], n_pairs: int, seed: int
) -> list[tuple[int, int]]:
    """``n_pairs`` (chosen row, rejected row) pairs of the same question, seeded.

    Every incorrect row of a question that also has a correct row is paired once with one of that
    question's correct rows (drawn uniformly); the pairs are shuffled, then cycled (in the same order)
    when fewer than ``n_pairs`` exist, or cut. Raises :class:`OrmDataError` when no question has both.
    """
    import random

    by_q: dict[str, tuple[list[int], list[int]]] = {}
    for i, (q, c) in enumerate(zip(questions, correct, strict=True)):
        by_q.setdefault(q, ([], []))[0 if c else 1].append(i)
    rng = random.Random(seed)
    pairs = [(rng.choice(good), r) for good, bad in by_q.values() if good and bad for r in bad]
    if not pairs:
        raise OrmDataError("no question has both a correct and an incorrect row")
    rng.shuffle(pairs)
    reps = -(-n_pairs // len(pairs))
    return (pairs * reps)[:n_pairs]


def available_pairs(data: pl.DataFrame) -> int:
    """Distinct (chosen, rejected) pairs :func:`preference_pairs` draws from: the incorrect rows of the
    questions that also have a correct row."""
    per_q = data.group_by("question").agg(good=pl.col("correct").sum(), bad=(~pl.col("correct")).sum())
    return int(per_q.filter(pl.col("good") > 0)["bad"].sum())


def check_pairs(data: pl.DataFrame, n_pairs: int, key: str) -> None:
    """Refuse training data that cannot feed ``n_pairs`` distinct pairs (``steps x train_batch_size``):
    no correct row, no incorrect row, or too few distinct (question, wrong answer) pairs; the message names
    the config keys of block ``key`` (``reward_models.<name>``)."""
    n_good = int(data["correct"].sum()) if data.height else 0
    n_bad = data.height - n_good
    if n_good == 0 or n_bad == 0:
        raise OrmDataError(
            f"config key '{key}': the training data has {n_good} correct and {n_bad} incorrect rows; "
            f"the pairwise loss needs both (set {key}.negatives >= 1 on tasks whose answers have near "
            "misses: number, choice, or math with a numeric gold)"
        )
    have = available_pairs(data)
    if have < n_pairs:
        raise OrmDataError(
            f"config key '{key}.steps': {key}.steps x {key}.train_batch_size = {n_pairs} pairs, but the "
            f"training data has only {have} distinct (correct, incorrect) pairs on "
            f"{data['question'].n_unique()} distinct questions; raise {key}.max_questions_per_task or "
            f"{key}.negatives, or lower {key}.steps or {key}.train_batch_size"
        )


def check_disjoint(data: pl.DataFrame, tables: Mapping[str, pl.DataFrame], key: str) -> None:
    """Refuse training rows whose question (or prompt id) is also in one of ``tables`` (label -> TASKS
    frame: the validation and test split tables), naming the table and the first shared question."""
    questions = set(data["question"].to_list())
    ids = set(data["prompt_id"].to_list())
    for label, table in tables.items():
        shared = sorted(questions & set(table["question"].to_list()))
        shared_ids = sorted(ids & set(table["prompt_id"].to_list()))
        if shared or shared_ids:
            raise OrmDataError(
                f"config key '{key}': {len(shared)} training question(s) ({len(shared_ids)} prompt id(s)) "
                f"of the reward model are also in {label}, e.g. {(shared or shared_ids)[0]!r}"
            )


def training_data(
    questions: pl.DataFrame,
    tables: Mapping[str, pl.DataFrame],
    *,
    negatives: int,
    seed: int,
    n_pairs: int,
    key: str,
) -> pl.DataFrame:
    """The reward model's training rows (ORM_DATA) from its ``questions`` (TASKS rows carved after every
    block, :func:`bongain.tasks.splits.questions_after_blocks`): the gold and ``negatives`` near misses
    of each, checked disjoint from ``tables`` (validation and test) and able to feed ``n_pairs`` pairs."""
    from bongain.schemas import ORM_DATA

    rows = near_miss_rows(questions, negatives, seed)
    check_disjoint(rows, tables, key)
    check_pairs(rows, n_pairs, key)
    return rows.select(list(ORM_DATA.polars_schema))


#: The keys of an ``orm`` block each stage reads (its params: changing any other key reruns nothing).
DATA_KEYS: tuple[str, ...] = ("max_questions_per_task", "negatives", "seed", "steps", "train_batch_size")
TRAIN_KEYS: tuple[str, ...] = (
    "backbone",
    "steps",
    "train_batch_size",
    "learning_rate",
    "lora_r",
    "lora_alpha",
    "max_length",
    "threads",
    "seed",
)


def options(block: Mapping[str, object], keys: Sequence[str]) -> dict[str, object]:
    """The part of a complete ``orm`` block that a stage reads."""
    return {k: block[k] for k in keys}
