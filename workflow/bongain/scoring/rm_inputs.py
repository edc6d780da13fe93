"""Reward-model inputs: conversations, token ids, step tags, padding, step aggregation (pure helpers).

Shared by the HF (:mod:`bongain.scoring.hf_rm`) and vLLM (:mod:`bongain.scoring.vllm_rm`) reward models.
The conversation is rendered with the RM's chat template (``tokenize=False``), the BOS text is stripped and
the tokenizer adds its special tokens once (:func:`encode_conversations`), so no input carries a double
BOS. The RM sees the bare question from the tasks table (not the few-shot or chat prompt the policy saw)
and the completion with surrounding whitespace stripped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

AGGREGATIONS: tuple[str, ...] = ("min", "last", "prod")
#: Qwen2.5-Math-PRM's system turn; the default of a reward-model block's ``prm_system_prompt`` (the config
#: schema repeats it, a test keeps the two equal).
PRM_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."


def aggregate_steps(step_scores: Sequence[float], how: str) -> float:
    """One reward from a process RM's step scores: ``min``, ``last`` or ``prod`` (search-and-learn)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown step aggregation {how!r}; known: {AGGREGATIONS}")
    if len(step_scores) == 0:
        raise ValueError("no step scores to aggregate (the step tag never reached the model?)")
    if how == "min":
        return float(min(step_scores))
    if how == "last":
        return float(step_scores[-1])
    return float(math.prod(step_scores))


def batches_by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Row indices grouped into batches of similar length (longest first, ties by index)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def split_steps(completion: str, separator: str = "\n\n") -> list[str]:
    """Reasoning steps of a completion: split on ``separator``, blank steps dropped (at least one step)."""
    steps = [s.strip() for s in completion.split(separator) if s.strip()]
    return steps or [completion.strip()]


def rm_conversation(question: str, completion: str, system_prompt: str | None = None) -> list[dict]:
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [
        *msgs,
        {"role": "user", "content": question},
        {"role": "assistant", "content": completion.strip()},
    ]


def prm_conversation(
    question: str, completion: str, *, system_prompt: str | None, step_tag: str, separator: str
) -> list[dict]:
    """Qwen2.5-Math-PRM input: steps joined by the step tag, plus one tag after the last step."""
    answer = step_tag.join(split_steps(completion, separator)) + step_tag
    msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*msgs, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def strip_bos(text: str, tokenizer: Any) -> str:
    bos = getattr(tokenizer, "bos_token", None)
    return text[len(bos) :] if bos and text.startswith(bos) else text


def encode_conversations(tokenizer: Any, conversations: Sequence[list[dict]]) -> list[list[int]]:
    """Token ids of each conversation: chat template as text, BOS text stripped, the tokenizer's own
    special tokens added once (the Skywork-Reward-V2 recipe)."""
    texts = [strip_bos(tokenizer.apply_chat_template(c, tokenize=False), tokenizer) for c in conversations]
    ids = [list(x) for x in tokenizer(texts, add_special_tokens=True)["input_ids"]]
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        for x in ids:
            if len(x) > 1 and x[0] == bos and x[1] == bos:
                raise ValueError("double BOS after templating: the chat template adds a BOS the strip missed")
    return ids


def step_tag_id(tokenizer: Any, step_tag: str) -> int:
    ids = tokenizer.encode(step_tag, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"step tag {step_tag!r} is not a single token for this tokenizer ({ids})")
    return int(ids[0])


def resolve_pad_id(tokenizer: Any, model_config: Any, pad_token: str | None = None) -> int | None:
    """The pad id to batch with: the configured ``pad_token``, else the model's, else the tokenizer's."""
    if pad_token is not None:
        pid = tokenizer.convert_tokens_to_ids(pad_token)
        if pid is None or pid == getattr(tokenizer, "unk_token_id", None):
            raise ValueError(f"reward_models.<name>.pad_token {pad_token!r} is not in the RM's vocabulary")
        return int(pid)
    text_cfg = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    for pid in (getattr(text_cfg, "pad_token_id", None), getattr(tokenizer, "pad_token_id", None)):
        if pid is not None:
            return int(pid)
    return None


def check_pad_id(pad_id: int | None, sequences: Sequence[Sequence[int]]) -> None:
    """HF sequence-classification pools at the rightmost token != pad: the pad must never be a
    sequence's real last token (e.g. pad = end-of-turn would read the logit one token early)."""
    if pad_id is None:
        if len(sequences) > 1:
            raise ValueError(
                "the reward model has no pad token: set reward_models.<name>.pad_token (never the "
                "end-of-turn token)"
            )
        return
    bad = sum(1 for s in sequences if s and s[-1] == pad_id)
    if bad:
        raise ValueError(
            f"pad token id {pad_id} is the last token of {bad} formatted input(s) (end-of-turn?): "
            "set reward_models.<name>.pad_token to a token that never ends an input"
        )


def questions_for(samples: pl.DataFrame, questions: Mapping[str, str]) -> list[str]:
    missing = sorted({p for p in samples["prompt_id"].to_list() if p not in questions})
    if missing:
        raise ValueError(f"no question text for prompt id(s) {missing[:5]} (tasks table of another split?)")
    return [questions[p] for p in samples["prompt_id"].to_list()]


def prm_sequences(rm: Any, samples: pl.DataFrame) -> list[list[int]]:
    convs = [
        prm_conversation(
            q, c, system_prompt=rm.system_prompt, step_tag=rm.step_tag, separator=rm.step_separator
        )
        for q, c in zip(questions_for(samples, rm.questions), samples["completion"], strict=True)
    ]
    return encode_conversations(rm.tokenizer, convs)


def length_limit(configured: int | None, model_limit: int | None) -> int | None:
    """Longest reward-model input in tokens: ``reward_models.<name>.max_model_len`` when set, else the
    model's."""
    return int(configured) if configured else (int(model_limit) if model_limit else None)


def model_max_positions(model_config: Any) -> int | None:
    """``max_position_embeddings`` of an HF config (its text config for multimodal ones), if any."""
    text_cfg = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    value = getattr(text_cfg, "max_position_embeddings", None)
    return int(value) if value else None
