"""Answer extraction and normalisation of sampled completions.

Extraction depends on the prompt format: ``fewshot`` completions are read from their first line
(first number / letter), ``chat`` completions from their end (last ``\\boxed{}``, else last number /
letter). Extracted answers are normalised so that equal answers give equal strings: the answer string
is what majority voting and diversity statistics group on. Rules in ``docs/tasks.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from bongain.constants import ANSWER_TYPES, PROMPT_FORMATS

# A number inside text: optional minus (not a hyphen glued to a word/number), integer part with or
# without thousands commas, optional decimals; or a bare ".5". Not preceded by a word char or a dot.
_NUM = r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<![\w.])-?\.\d+"
_NUM_RE = re.compile(_NUM)
# For math answers without \boxed: a simple fraction a/b, else a number.
_MATH_RE = re.compile(r"(?<![\w.])-?\d+\s*/\s*\d+(?![\d.])|" + _NUM)
_NUM_FULL_RE = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+")
_LETTER_RE = re.compile(r"(?<![A-Za-z])([A-E])(?![A-Za-z])")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------


def normalize_number(text: str) -> str | None:
    """Canonical form of a plain number (``"+1,234.50"`` -> ``"1234.5"``, ``"-0"`` -> ``"0"``), or None."""
    s = text.strip()
    if not _NUM_FULL_RE.fullmatch(s):
        return None
    try:
        d = Decimal(s.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the regex only lets valid decimals through
        return None
    if d == 0:
        return "0"
    return format(d.normalize(), "f")


def normalize_math(text: str) -> str | None:
    """Strip ``$`` delimiters and collapse whitespace; plain numbers get their canonical form."""
    s = " ".join(text.strip().strip("$").split())
    if s.endswith("."):
        s = s[:-1].rstrip()
    if not s:
        return None
    return normalize_number(s) or s


def normalize_choice(text: str) -> str | None:
    """``"b"``, ``"(B)"``, ``" B. "`` -> ``"B"``; None unless exactly one letter A-E remains."""
    s = text.strip().strip("().:").strip().upper()
    return s if len(s) == 1 and s in "ABCDE" else None


# --------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces, in order."""
    out: list[str] = []
    for m in _BOXED_RE.finditer(text):
        depth, start = 1, m.end()
        for j in range(start, len(text)):
            c = text[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    out.append(text[start:j])
                    break
    return out


def _numbers(text: str) -> list[str]:
    return [n for n in (normalize_number(m.group(0)) for m in _NUM_RE.finditer(text)) if n is not None]


def _math_tokens(text: str) -> list[str]:
    out = []
    for m in _MATH_RE.finditer(text):
        tok = m.group(0)
        out.append(normalize_number(tok) or re.sub(r"\s+", "", tok))
    return out


def _letters(text: str) -> list[str]:
    return _LETTER_RE.findall(text)


def extract_answer(completion: str, answer_type: str, prompt_format: str) -> str | None:
    """The normalised answer in a completion, or None when there is none.

    fewshot: only the first line counts; the first number (number), first standalone capital A-E
    (choice), first ``\\boxed{}`` else first fraction/number (math).
    chat: the whole completion; the last ``\\boxed{}`` content is preferred when it holds an answer of
    the type, else the last number / standalone capital A-E / fraction-or-number.
    """
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}; known: {list(ANSWER_TYPES)}")
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt_format {prompt_format!r}; known: {list(PROMPT_FORMATS)}")
    if prompt_format == "fewshot":
        text = completion.split("\n", 1)[0]
        pick = 0
    else:
        text = completion
        pick = -1
    boxed = boxed_contents(text)
    box = boxed[pick] if boxed else None

    if answer_type == "math":
        if box is not None and normalize_math(box) is not None:
            return normalize_math(box)
        toks = _math_tokens(text)
        return toks[pick] if toks else None

    finder: Callable[[str], list[str]] = _numbers if answer_type == "number" else _letters
    if box is not None:
        inside = finder(box)
        if inside:
            return inside[pick]
    found = finder(text)
    return found[pick] if found else None
