"""Equivalence of extracted answers and safe grading of completions and sample tables.

Math answers are compared with Math-Verify under a wall-clock budget per comparison. Grading never
raises for a bad completion: :func:`grade_one` reports ``ok | no_answer | timeout | error``.
Rules in ``docs/tasks.md``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import polars as pl

from bongain.constants import ANSWER_TYPES, PROMPT_FORMATS
from bongain.grading.answers import extract_answer, normalize_choice, normalize_math, normalize_number
from bongain.schemas import GRADES

T = TypeVar("T")


class GradingTimeout(BaseException):
    """A comparison ran past its budget. BaseException so that Math-Verify's ``except Exception`` cannot
    swallow it."""


# --------------------------------------------------------------------------------------------------
# Equivalence
# --------------------------------------------------------------------------------------------------


def _silence_math_verify_warning() -> None:
    """We disable Math-Verify's own signal timeouts (ours wraps the whole call); drop its warning."""

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not record.getMessage().startswith("Timeout is disabled")

    for name in ("math_verify.parser", "math_verify.grader"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in log.filters):
            log.addFilter(_Drop())


def call_with_timeout(fn: Callable[[], T], timeout_s: float) -> T:
    """Run ``fn()``; raise :class:`GradingTimeout` when it takes longer than ``timeout_s`` seconds.

    In the main thread (the Snakemake script case) a SIGALRM interval timer interrupts ``fn`` (any
    outer timer is re-armed afterwards). Elsewhere ``fn`` runs in a daemon thread that is abandoned on
    timeout (it cannot be killed; it dies with the process).
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):

        def on_alarm(signum: int, frame: Any) -> None:
            raise GradingTimeout(f"ran past {timeout_s} s")

        old_handler = signal.signal(signal.SIGALRM, on_alarm)
        t0 = time.monotonic()
        old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
            if old_delay > 0:
                left = max(old_delay - (time.monotonic() - t0), 1e-3)
                signal.setitimer(signal.ITIMER_REAL, left, old_interval)

    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, fn()))
        except BaseException as err:
            box.append((False, err))

    worker = threading.Thread(target=target, daemon=True, name="bongain-grade")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive() or not box:
        raise GradingTimeout(f"ran past {timeout_s} s")
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _mv_parse(text: str) -> list[Any]:
    from math_verify import parse

    s = text if ("$" in text or "\\boxed" in text) else f"${text}$"
    parsed = parse(s, parsing_timeout=None)  # type: ignore[arg-type]
    return parsed if parsed else parse(text, parsing_timeout=None)  # type: ignore[arg-type]


def math_equal(answer: str, gold: str) -> bool:
    """Math-Verify equivalence of two answer strings (no timeout: see :func:`call_with_timeout`)."""
    from math_verify import verify

    _silence_math_verify_warning()
    if normalize_math(answer) == normalize_math(gold):
        return True
    g, a = _mv_parse(gold), _mv_parse(answer)
    if not g or not a:
        return False
    return bool(verify(g, a, timeout_seconds=None))


def is_correct(answer: str | None, gold: str, answer_type: str, timeout_s: float = 5.0) -> bool:
    """Whether ``answer`` is equivalent to ``gold``.

    number: Decimal equality after normalisation (ValueError when gold is not a number); choice:
    case-insensitive letter equality; math: Math-Verify, raising :class:`GradingTimeout` past
    ``timeout_s``.
    """
    if answer is None:
        return False
    if answer_type == "number":
        g = normalize_number(gold)
        if g is None:
            raise ValueError(f"gold {gold!r} is not a number")
        a = normalize_number(answer)
        return a is not None and Decimal(a) == Decimal(g)
    if answer_type == "choice":
        g = normalize_choice(gold)
        if g is None:
            raise ValueError(f"gold {gold!r} is not a choice letter A-E")
        return normalize_choice(answer) == g
    if answer_type == "math":
        return call_with_timeout(lambda: math_equal(answer, gold), timeout_s)
    raise ValueError(f"unknown answer_type {answer_type!r}; known: {list(ANSWER_TYPES)}")


# --------------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------------


def grade_one(
    completion: str, gold: str, answer_type: str, prompt_format: str, timeout_s: float = 5.0
) -> tuple[str | None, str, bool]:
    """(answer, status, correct) of one completion; never raises for a bad completion.

    status: ``ok`` (graded), ``no_answer`` (nothing extractable), ``timeout`` (the comparison ran past
    ``timeout_s``), ``error`` (extraction or comparison raised). ``correct`` is False unless ok.
    """
    try:
        answer = extract_answer(completion, answer_type, prompt_format)
    except Exception:
        return None, "error", False
    if answer is None:
        return None, "no_answer", False
    status, correct = compare(answer, gold, answer_type, timeout_s)
    return answer, status, correct


def compare(answer: str, gold: str, answer_type: str, timeout_s: float = 5.0) -> tuple[str, bool]:
    """(status, correct) of an extracted answer: :func:`is_correct` with timeouts and errors caught."""
    try:
        return "ok", is_correct(answer, gold, answer_type, timeout_s)
    except GradingTimeout:
        return "timeout", False
    except Exception:
        return "error", False


_SAMPLE_COLS = ("model", "method", "task", "split", "prompt_id", "sample_idx", "completion")


def grade_frame(
    samples: pl.DataFrame, tasks: pl.DataFrame, prompt_format: str, timeout_s: float = 5.0
) -> pl.DataFrame:
    """Grade every sample against its prompt's gold answer: a GRADES-schema frame in sample order.

    Raises ValueError when a column is missing, a prompt id repeats in ``tasks``, a sample's prompt id
    is not in ``tasks`` (or belongs to another task), or a gold does not fit its answer_type.
    Identical (answer, gold) pairs are compared once.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt_format {prompt_format!r}; known: {list(PROMPT_FORMATS)}")
    for name, df, cols in (
        ("samples", samples, _SAMPLE_COLS),
        ("tasks", tasks, ("task", "prompt_id", "gold", "answer_type")),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{name}: missing column(s) {missing}")
    dup = tasks.filter(pl.col("prompt_id").is_duplicated())["prompt_id"].unique().sort().to_list()
    if dup:
        raise ValueError(f"tasks: prompt_id(s) not unique: {dup[:5]}")
    for at in tasks["answer_type"].unique().to_list():
        if at not in ANSWER_TYPES:
            raise ValueError(f"tasks: unknown answer_type {at!r}; known: {list(ANSWER_TYPES)}")
    for pid, g, at in tasks.select("prompt_id", "gold", "answer_type").iter_rows():
        if at == "number" and normalize_number(g) is None:
            raise ValueError(f"tasks: gold {g!r} of prompt {pid} is not a number")
        if at == "choice" and normalize_choice(g) is None:
            raise ValueError(f"tasks: gold {g!r} of prompt {pid} is not a choice letter A-E")

    gold_of = tasks.select("prompt_id", pl.col("task").alias("_task"), pl.col("gold"), pl.col("answer_type"))
    joined = samples.select(_SAMPLE_COLS).join(gold_of, on="prompt_id", how="left", maintain_order="left")
    unknown = joined.filter(pl.col("gold").is_null())["prompt_id"].unique(maintain_order=True).to_list()
    if unknown:
        raise ValueError(f"sample prompt_id(s) not in the task table: {unknown[:5]}")
    other = joined.filter(pl.col("task") != pl.col("_task"))
    if other.height:
        pid, t, tt = other.select("prompt_id", "task", "_task").row(0)
        raise ValueError(f"sample prompt_id {pid} has task {t!r} but the task table says {tt!r}")

    answers: list[str | None] = []
    statuses: list[str] = []
    corrects: list[bool] = []
    cache: dict[tuple[str, str, str], tuple[str, bool]] = {}
    for completion, gold, at in joined.select("completion", "gold", "answer_type").iter_rows():
        try:
            answer = extract_answer(completion or "", at, prompt_format)
        except Exception:
            answer, status, correct = None, "error", False
        else:
            if answer is None:
                status, correct = "no_answer", False
            else:
                key = (answer, gold, at)
                if key not in cache:
                    cache[key] = compare(answer, gold, at, timeout_s)
                status, correct = cache[key]
        answers.append(answer)
        statuses.append(status)
        corrects.append(correct)

    out = joined.select("model", "method", "task", "split", "prompt_id", "sample_idx").with_columns(
        pl.Series("answer", answers, dtype=pl.String),
        pl.Series("status", statuses, dtype=pl.String),
        pl.Series("correct", corrects, dtype=pl.Boolean),
    )
    return out.select([pl.col(c).cast(t) for c, t in GRADES.polars_schema.items()])
