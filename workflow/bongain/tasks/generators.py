"""Built-in arithmetic families: each enumerates its whole question space in a fixed order.

The seeded order and the carving into blocks happen in :mod:`bongain.tasks.splits`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

QA = tuple[str, str]  # (question, gold)


def _add1() -> list[QA]:
    return [(f"What is {a} + {b}?", str(a + b)) for a in range(10) for b in range(10)]


def _sub1() -> list[QA]:
    """The inverses of ``add1``: a - b with a 1-digit subtrahend and a 1-digit result (a <= 18)."""
    return [(f"What is {b + d} - {b}?", str(d)) for b in range(10) for d in range(10)]


def _mul1() -> list[QA]:
    return [(f"What is {a} * {b}?", str(a * b)) for a in range(10) for b in range(10)]


def _add2d1d() -> list[QA]:
    return [(f"What is {a} + {b}?", str(a + b)) for a in range(10, 100) for b in range(10)]


def _sub2d1d() -> list[QA]:
    """a - b with a 2-digit minuend and a 1-digit subtrahend: the inverses of ``add2d1d`` with a >= 10."""
    return [(f"What is {a} - {b}?", str(a - b)) for a in range(10, 100) for b in range(10)]


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
    "sub1": (_sub1, "a - b with 0 <= b <= 9 and 0 <= a - b <= 9 (100 questions)"),
    "mul1": (_mul1, "a * b, a, b in 0..9 (100 questions)"),
    "add2d1d": (_add2d1d, "a + b, a in 10..99, b in 0..9 (900 questions)"),
    "sub2d1d": (_sub2d1d, "a - b, a in 10..99, b in 0..9 (900 questions)"),
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
