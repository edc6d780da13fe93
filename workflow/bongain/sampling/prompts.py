"""Turn a question into the text the model sees, per method prompt format.

* ``fewshot``: ``k`` exemplars ``Q: <question>\\nA: <gold>`` separated by blank lines, then
  ``Q: <question>\\nA:``; generation stops at the first newline.
* ``chat``: the tokenizer's chat template with an optional system prompt and the question as the user
  turn (followed by the optional ``user_instruction`` after a blank line); generation stops at the
  template's end-of-turn token (EOS), and grading takes the last number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FEWSHOT_STOP: tuple[str, ...] = ("\n",)


def fewshot_prompt(question: str, exemplars: Sequence[tuple[str, str]]) -> str:
    shots = "".join(f"Q: {q}\nA: {a}\n\n" for q, a in exemplars)
    return f"{shots}Q: {question}\nA:"


def chat_messages(
    question: str, system_prompt: str | None, user_instruction: str | None = None
) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    user = f"{question}\n\n{user_instruction}" if user_instruction else question
    return [*msgs, {"role": "user", "content": user}]


def format_prompt(
    question: str,
    method: dict[str, Any],
    exemplars: Sequence[tuple[str, str]],
    tokenizer: Any | None = None,
) -> str:
    """The prompt string for one question under a method's prompt format."""
    fmt = method["prompt_format"]
    if fmt == "fewshot":
        return fewshot_prompt(question, exemplars[: method["fewshot_k"]])
    if fmt == "chat":
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("prompt_format 'chat' needs a tokenizer with a chat template")
        return tokenizer.apply_chat_template(
            chat_messages(question, method["system_prompt"], method["user_instruction"]),
            tokenize=False,
            add_generation_prompt=True,
        )
    raise ValueError(f"unknown prompt_format {fmt!r}")


def stop_strings(method: dict[str, Any]) -> tuple[str, ...]:
    return FEWSHOT_STOP if method["prompt_format"] == "fewshot" else ()


def tokenize_prompt(prompt: str, method: dict[str, Any], tokenizer: Any) -> list[int]:
    """Token ids of a formatted prompt. A chat-templated string already carries its special tokens, so
    none are added again (no double BOS)."""
    add_special = method["prompt_format"] != "chat"
    return list(tokenizer(prompt, add_special_tokens=add_special).input_ids)
