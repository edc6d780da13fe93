"""Real reward models behind the :class:`bongain.scoring.offline.Verifier` protocol (``name``, ``score``).

Kinds (``reward_model.kind`` in the config; :func:`bongain.scoring.offline.make_verifier` picks one):

* ``hf_sequence_classification``: an HF ``AutoModelForSequenceClassification`` outcome RM (Skywork-Reward-V2
  style). The reward is the raw logit ``logits[:, 0]`` of the conversation
  [user: question, assistant: completion].
* ``hf_prm``: an HF process RM (Qwen2.5-Math-PRM style, or any ``*ForTokenClassification`` model with two
  labels): steps joined by the step tag, step score = softmax(logits)[..., 1] at the tag positions.
* ``vllm_classify``: the same outcome RM served by vLLM ``LLM.classify`` with
  ``PoolingParams(use_activation=False)`` (vLLM applies a sigmoid by default).
* ``vllm_prm``: the process RM served by vLLM ``LLM.encode(..., pooling_task="token_classify")``.

Process-RM step scores are aggregated per sample by :func:`aggregate_steps` (min | last | prod).

Text handling shared by every kind: the conversation is rendered with the RM's chat template
(``tokenize=False``), the BOS text is stripped and the tokenizer adds its special tokens once
(:func:`encode_conversations`), so no input carries a double BOS. The RM sees the bare question from the
tasks table (not the few-shot or chat prompt the policy saw) and the completion with surrounding
whitespace stripped. HF batches are sorted by length (less padding); scores come back in row order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

AGGREGATIONS: tuple[str, ...] = ("min", "last", "prod")
RM_KINDS: tuple[str, ...] = (
    "offline_logistic",
    "hf_sequence_classification",
    "hf_prm",
    "vllm_classify",
    "vllm_prm",
)
PRM_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."

#: defaults of the ``reward_model`` config block (mirrored in the config schema)
RM_DEFAULTS: dict[str, Any] = {
    "kind": "offline_logistic",
    "revision": "main",
    "dtype": "bfloat16",
    "device": "auto",
    "trust_remote_code": False,
    "batch_size": 8,
    "pad_token": None,
    "attn_implementation": None,
    "system_prompt": None,
    "prm_system_prompt": PRM_SYSTEM_PROMPT,
    "step_separator": "\n\n",
    "step_tag": "<extra_0>",
    "aggregation": "last",
    "tensor_parallel_size": 1,
    "gpu_memory_utilization": 0.85,
    "max_model_len": None,
}


def rm_options(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    opts = {**RM_DEFAULTS, **(cfg or {})}
    if opts["kind"] not in RM_KINDS:
        raise ValueError(f"reward_model.kind must be one of {RM_KINDS}, got {opts['kind']!r}")
    if opts["kind"] != "offline_logistic" and not opts.get("model"):
        raise ValueError(f"reward_model.model is required for kind {opts['kind']!r}")
    if opts["aggregation"] not in AGGREGATIONS:
        raise ValueError(f"reward_model.aggregation must be one of {AGGREGATIONS}")
    return opts


# ------------------------------------------------------------------------------------------ pure helpers


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
            raise ValueError(f"reward_model.pad_token {pad_token!r} is not in the RM's vocabulary")
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
                "the reward model has no pad token: set reward_model.pad_token (never the end-of-turn token)"
            )
        return
    bad = sum(1 for s in sequences if s and s[-1] == pad_id)
    if bad:
        raise ValueError(
            f"pad token id {pad_id} is the last token of {bad} formatted input(s) (end-of-turn?): "
            "set reward_model.pad_token to a token that never ends an input"
        )


def _questions_for(samples: pl.DataFrame, questions: Mapping[str, str]) -> list[str]:
    missing = sorted({p for p in samples["prompt_id"].to_list() if p not in questions})
    if missing:
        raise ValueError(f"no question text for prompt id(s) {missing[:5]} (tasks table of another split?)")
    return [questions[p] for p in samples["prompt_id"].to_list()]


def _pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, side: str) -> tuple[Any, Any]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        sl = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[r, sl] = torch.tensor(list(s), dtype=torch.long)
        mask[r, sl] = 1
    return ids, mask


# ----------------------------------------------------------------------------------------- HF forwards


def score_sequences(
    model: Any,
    sequences: Sequence[Sequence[int]],
    *,
    pad_id: int | None,
    batch_size: int = 8,
    padding_side: str = "right",
) -> np.ndarray:
    """Raw logit ``logits[:, 0]`` of a sequence-classification RM for each token sequence (input order).

    Batches are formed by length; left padding gets explicit position ids so each row sees the positions
    it would see alone. ``model.config.pad_token_id`` must equal ``pad_id`` (HF pools at the rightmost
    token that is not the pad).
    """
    import torch

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be left or right, got {padding_side!r}")
    check_pad_id(pad_id, sequences)
    device = next(model.parameters()).device
    out = np.empty(len(sequences), dtype=np.float64)
    for batch in batches_by_length([len(s) for s in sequences], batch_size):
        ids, mask = _pad_batch(
            [sequences[i] for i in batch], pad_id if pad_id is not None else 0, padding_side
        )
        kw: dict[str, Any] = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        if padding_side == "left":
            kw["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(device)
        with torch.inference_mode():
            logits = model(**kw).logits[:, 0].float().cpu().numpy()
        out[batch] = logits
    return out


def prm_step_scores(
    model: Any,
    sequences: Sequence[Sequence[int]],
    tag_id: int,
    *,
    pad_id: int = 0,
    batch_size: int = 8,
) -> list[list[float]]:
    """Per-step P(correct) = softmax(logits)[..., 1] at the step-tag positions (right padding)."""
    import torch

    device = next(model.parameters()).device
    out: list[list[float]] = [[] for _ in sequences]
    for batch in batches_by_length([len(s) for s in sequences], batch_size):
        ids, mask = _pad_batch([sequences[i] for i in batch], pad_id, "right")
        with torch.inference_mode():
            res = model(input_ids=ids.to(device), attention_mask=mask.to(device))
            logits = res.logits if hasattr(res, "logits") else res[0]
            probs = torch.softmax(logits.float(), dim=-1)[..., 1].cpu()
        for r, i in enumerate(batch):
            n = len(sequences[i])
            at = ids[r, :n] == tag_id
            out[i] = probs[r, :n][at].tolist()
    return out


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_kwargs(opts: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    kw: dict[str, Any] = {
        "revision": opts["revision"],
        "dtype": getattr(torch, opts["dtype"]),
        "trust_remote_code": bool(opts["trust_remote_code"]),  # only when the config says so
    }
    if opts.get("attn_implementation"):
        kw["attn_implementation"] = opts["attn_implementation"]
    return kw


# ------------------------------------------------------------------------------------------- verifiers


@dataclass
class HFSequenceClassifierRM:
    """Outcome RM run with HF transformers; reward = raw logit of the [question, completion] chat."""

    model: Any
    tokenizer: Any
    questions: Mapping[str, str]
    batch_size: int = 8
    pad_token: str | None = None
    system_prompt: str | None = None
    padding_side: str = "right"
    name: str = "hf_sequence_classification"

    @classmethod
    def load(cls, cfg: Mapping[str, Any], questions: Mapping[str, str]) -> HFSequenceClassifierRM:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        opts = rm_options(cfg)
        kw = _load_kwargs(opts)
        tok = AutoTokenizer.from_pretrained(
            opts["model"], revision=opts["revision"], trust_remote_code=kw["trust_remote_code"]
        )
        model = AutoModelForSequenceClassification.from_pretrained(opts["model"], **kw)
        model.to(_device(opts["device"])).eval()
        return cls(
            model=model,
            tokenizer=tok,
            questions=questions,
            batch_size=int(opts["batch_size"]),
            pad_token=opts["pad_token"],
            system_prompt=opts["system_prompt"],
            name=f"hf_sequence_classification:{opts['model']}",
        )

    def encode(self, samples: pl.DataFrame) -> list[list[int]]:
        convs = [
            rm_conversation(q, c, self.system_prompt)
            for q, c in zip(_questions_for(samples, self.questions), samples["completion"], strict=True)
        ]
        return encode_conversations(self.tokenizer, convs)

    def score(self, samples: pl.DataFrame, grades: pl.DataFrame) -> np.ndarray:
        seqs = self.encode(samples)
        pad_id = resolve_pad_id(self.tokenizer, self.model.config, self.pad_token)
        if pad_id is not None:
            self.model.config.get_text_config().pad_token_id = pad_id
        return score_sequences(
            self.model, seqs, pad_id=pad_id, batch_size=self.batch_size, padding_side=self.padding_side
        )


@dataclass
class HFProcessRM:
    """Process RM run with HF transformers; reward = aggregated per-step P(correct)."""

    model: Any
    tokenizer: Any
    questions: Mapping[str, str]
    aggregation: str = "last"
    batch_size: int = 8
    system_prompt: str | None = PRM_SYSTEM_PROMPT
    step_tag: str = "<extra_0>"
    step_separator: str = "\n\n"
    name: str = "hf_prm"

    @classmethod
    def load(cls, cfg: Mapping[str, Any], questions: Mapping[str, str]) -> HFProcessRM:
        from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

        opts = rm_options(cfg)
        kw = _load_kwargs(opts)
        tok = AutoTokenizer.from_pretrained(
            opts["model"], revision=opts["revision"], trust_remote_code=kw["trust_remote_code"]
        )
        config = AutoConfig.from_pretrained(
            opts["model"], revision=opts["revision"], trust_remote_code=kw["trust_remote_code"]
        )
        archs = getattr(config, "architectures", None) or []
        # in-library token classifiers load by class; Qwen2.5-Math-PRM ships remote code for AutoModel
        auto = (
            AutoModelForTokenClassification
            if any(a.endswith("ForTokenClassification") for a in archs)
            else AutoModel
        )
        model = auto.from_pretrained(opts["model"], **kw)
        model.to(_device(opts["device"])).eval()
        return cls(
            model=model,
            tokenizer=tok,
            questions=questions,
            aggregation=opts["aggregation"],
            batch_size=int(opts["batch_size"]),
            system_prompt=opts["prm_system_prompt"],
            step_tag=opts["step_tag"],
            step_separator=opts["step_separator"],
            name=f"hf_prm:{opts['model']}:{opts['aggregation']}",
        )

    def step_scores(self, samples: pl.DataFrame) -> list[list[float]]:
        seqs = _prm_sequences(self, samples)
        pad = resolve_pad_id(self.tokenizer, self.model.config)
        return prm_step_scores(
            self.model,
            seqs,
            step_tag_id(self.tokenizer, self.step_tag),
            pad_id=pad if pad is not None else 0,
            batch_size=self.batch_size,
        )

    def score(self, samples: pl.DataFrame, grades: pl.DataFrame) -> np.ndarray:
        return np.array([aggregate_steps(s, self.aggregation) for s in self.step_scores(samples)])


def _prm_sequences(rm: Any, samples: pl.DataFrame) -> list[list[int]]:
    convs = [
        prm_conversation(
            q, c, system_prompt=rm.system_prompt, step_tag=rm.step_tag, separator=rm.step_separator
        )
        for q, c in zip(_questions_for(samples, rm.questions), samples["completion"], strict=True)
    ]
    return encode_conversations(rm.tokenizer, convs)


def make_pooling_engine(cfg: Mapping[str, Any]) -> Any:
    """``vllm.LLM`` in pooling mode for a reward model (the only vLLM constructor call of this module)."""
    import vllm

    opts = rm_options(cfg)
    kw: dict[str, Any] = {
        "model": opts["model"],
        "runner": "pooling",
        "revision": opts["revision"],
        "dtype": opts["dtype"],
        "trust_remote_code": bool(opts["trust_remote_code"]),
        "tensor_parallel_size": int(opts["tensor_parallel_size"]),
        "gpu_memory_utilization": float(opts["gpu_memory_utilization"]),
        "seed": 0,
    }
    if opts.get("max_model_len"):
        kw["max_model_len"] = int(opts["max_model_len"])
    return vllm.LLM(**kw)


@dataclass
class VllmClassifyRM:
    """Outcome RM served by vLLM ``classify``; raw logit (``use_activation=False``), same inputs as HF."""

    llm: Any
    questions: Mapping[str, str]
    system_prompt: str | None = None
    name: str = "vllm_classify"

    def score(self, samples: pl.DataFrame, grades: pl.DataFrame) -> np.ndarray:
        from vllm import PoolingParams

        convs = [
            rm_conversation(q, c, self.system_prompt)
            for q, c in zip(_questions_for(samples, self.questions), samples["completion"], strict=True)
        ]
        seqs = encode_conversations(self.llm.get_tokenizer(), convs)
        outs = self.llm.classify(
            [{"prompt_token_ids": s} for s in seqs],
            pooling_params=PoolingParams(use_activation=False),
            use_tqdm=False,
        )
        if len(outs) != len(seqs):
            raise ValueError(f"vLLM classify returned {len(outs)} outputs for {len(seqs)} inputs")
        return np.array([float(o.outputs.probs[0]) for o in outs], dtype=np.float64)


def step_probabilities(data: Any, token_ids: Sequence[int], tag_id: int) -> list[float]:
    """P(correct) per step from a vLLM ``token_classify`` output ``data`` of one input.

    ``data`` is ``[num_step_tags, num_labels]`` (STEP pooling) or ``[num_tokens, num_labels]`` (ALL
    pooling: the step-tag rows are selected here). Rows that are not probabilities (no activation) get
    a softmax.
    """
    arr = np.asarray(data.float().cpu().numpy() if hasattr(data, "cpu") else data, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"expected token_classify data of shape [rows, >=2 labels], got {arr.shape}")
    ids = np.asarray(token_ids)
    n_tags = int((ids == tag_id).sum())
    if arr.shape[0] == len(ids) and len(ids) != n_tags:
        arr = arr[ids == tag_id]
    elif arr.shape[0] != n_tags:
        raise ValueError(f"{arr.shape[0]} rows of token_classify data for {n_tags} step tags")
    if not (np.all(arr >= 0) and np.allclose(arr.sum(-1), 1.0, atol=1e-3)):
        arr = np.exp(arr - arr.max(-1, keepdims=True))
        arr = arr / arr.sum(-1, keepdims=True)
    return arr[:, 1].tolist()


@dataclass
class VllmProcessRM:
    """Process RM served by vLLM ``encode(pooling_task="token_classify")``."""

    llm: Any
    questions: Mapping[str, str]
    aggregation: str = "last"
    system_prompt: str | None = PRM_SYSTEM_PROMPT
    step_tag: str = "<extra_0>"
    step_separator: str = "\n\n"
    name: str = "vllm_prm"

    @property
    def tokenizer(self) -> Any:
        return self.llm.get_tokenizer()

    def step_scores(self, samples: pl.DataFrame) -> list[list[float]]:
        seqs = _prm_sequences(self, samples)
        tag = step_tag_id(self.tokenizer, self.step_tag)
        outs = self.llm.encode(
            [{"prompt_token_ids": s} for s in seqs], pooling_task="token_classify", use_tqdm=False
        )
        if len(outs) != len(seqs):
            raise ValueError(f"vLLM encode returned {len(outs)} outputs for {len(seqs)} inputs")
        return [step_probabilities(o.outputs.data, s, tag) for o, s in zip(outs, seqs, strict=True)]

    def score(self, samples: pl.DataFrame, grades: pl.DataFrame) -> np.ndarray:
        return np.array([aggregate_steps(s, self.aggregation) for s in self.step_scores(samples)])


def make_reward_model(
    cfg: Mapping[str, Any], questions: Mapping[str, str], *, engine: Any | None = None
) -> Any:
    """A reward-model verifier of a non-offline ``reward_model`` config (``engine``: a vLLM LLM to reuse)."""
    opts = rm_options(cfg)
    kind = opts["kind"]
    if kind == "hf_sequence_classification":
        return HFSequenceClassifierRM.load(opts, questions)
    if kind == "hf_prm":
        return HFProcessRM.load(opts, questions)
    llm = engine if engine is not None else make_pooling_engine(opts)
    if kind == "vllm_classify":
        return VllmClassifyRM(
            llm=llm,
            questions=questions,
            system_prompt=opts["system_prompt"],
            name=f"vllm_classify:{opts['model']}",
        )
    if kind == "vllm_prm":
        return VllmProcessRM(
            llm=llm,
            questions=questions,
            aggregation=opts["aggregation"],
            system_prompt=opts["prm_system_prompt"],
            step_tag=opts["step_tag"],
            step_separator=opts["step_separator"],
            name=f"vllm_prm:{opts['model']}:{opts['aggregation']}",
        )
    raise ValueError(f"{kind!r} is not a reward-model kind")
