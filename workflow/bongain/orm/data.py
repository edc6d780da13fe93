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
from collections.abc import Sequence
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
