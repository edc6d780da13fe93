"""HF transformers reward models behind the :class:`bongain.scoring.offline.Verifier` protocol.

* ``hf_sequence_classification``: an HF ``AutoModelForSequenceClassification`` outcome RM (Skywork-Reward-V2
  style). The reward is the raw logit ``logits[:, 0]`` of the conversation
  [user: question, assistant: completion].
* ``hf_prm``: an HF process RM (Qwen2.5-Math-PRM style, or any ``*ForTokenClassification`` model with two
  labels): steps joined by the step tag, step score = softmax(logits)[..., 1] at the tag positions,
  aggregated per sample by :func:`bongain.scoring.rm_inputs.aggregate_steps` (min | last | prod).

Batches are sorted by length (less padding); scores come back in row order. Inputs are built by
:mod:`bongain.scoring.rm_inputs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from bongain.scoring.rm_inputs import (
    PRM_SYSTEM_PROMPT,
    aggregate_steps,
    batches_by_length,
    check_pad_id,
    encode_conversations,
    length_limit,
    model_max_positions,
    prm_sequences,
    questions_for,
    resolve_pad_id,
    rm_conversation,
    step_tag_id,
)


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


def check_prm_head(model: Any, tag_id: int, name: str) -> None:
    """Refuse a process RM whose head does not give 2 values per token (P(wrong), P(right)).

    Without ``trust_remote_code`` a remote-code PRM (Qwen2.5-Math-PRM) loads as its bare base model
    (``AutoModel`` finds a built-in ``Qwen2Model``): it returns hidden states, and softmax column 1 of
    those would be read as step scores, silently. One forward over the step tag tells.
    """
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        res = model(input_ids=torch.tensor([[tag_id]], device=device))
    bare = not hasattr(res, "logits") and hasattr(res, "last_hidden_state")
    out = res.logits if hasattr(res, "logits") else res[0]
    width = int(out.shape[-1])
    if bare or width != 2:
        what = "hidden states (a bare base model, no reward head)" if bare else f"{width} values per token"
        raise ValueError(
            f"config key 'reward_models.<name>.model': {name} loaded as {type(model).__name__}, which "
            f"outputs {what}; a process RM needs a 2-class head per token. For a remote-code PRM "
            "(Qwen2.5-Math-PRM) set reward_models.<name>.trust_remote_code: true; otherwise use a "
            "*ForTokenClassification model with 2 labels"
        )


def load_with_head(auto: Any, name: str, kw: Mapping[str, Any], what: str) -> Any:
    """``auto.from_pretrained(name, **kw)``, refusing a checkpoint that has no trained head.

    transformers fills weights a checkpoint lacks (a causal LM's checkpoint has no ``score`` layer) with
    fresh random values and only logs a warning: the rewards would be noise. Every weight must come from
    the checkpoint.
    """
    model, info = auto.from_pretrained(name, output_loading_info=True, **kw)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ValueError(
            f"config key 'reward_models.<name>.model': {name} has no trained {what} head: the checkpoint "
            f"lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} (transformers would "
            f"initialise them at random). Use a checkpoint saved as {type(model).__name__}"
        )
    return model


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _source(opts: Mapping[str, Any], snapshot: str | None) -> tuple[str, str | None]:
    """(what to load, its revision): the downloaded snapshot folder of a hub RM (no revision: the folder
    is that commit), else the block's ``model`` at its ``revision``."""
    return (snapshot, None) if snapshot else (opts["model"], opts["revision"])


def _load_kwargs(opts: Mapping[str, Any], revision: str | None) -> dict[str, Any]:
    import torch

    kw: dict[str, Any] = {
        "revision": revision,
        "dtype": getattr(torch, opts["dtype"]),
        "trust_remote_code": bool(opts["trust_remote_code"]),  # only when the config says so
    }
    if opts["attn_implementation"]:
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
    max_tokens: int | None = None  # longer inputs are not scored (bongain.scoring.registry.score_split)

    @classmethod
    def load(
        cls, cfg: Mapping[str, Any], questions: Mapping[str, str], snapshot: str | None = None
    ) -> HFSequenceClassifierRM:
        """The RM of a complete scorer block (``reward_models.<name>``), from its downloaded ``snapshot``
        folder when there is one (bongain.hub.snapshot_path)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        opts = cfg
        source, revision = _source(opts, snapshot)
        kw = _load_kwargs(opts, revision)
        tok = AutoTokenizer.from_pretrained(
            source, revision=revision, trust_remote_code=kw["trust_remote_code"]
        )
        model = load_with_head(AutoModelForSequenceClassification, source, kw, "sequence-classification")
        model.to(_device(opts["device"])).eval()
        return cls(
            model=model,
            tokenizer=tok,
            questions=questions,
            batch_size=int(opts["batch_size"]),
            pad_token=opts["pad_token"],
            system_prompt=opts["system_prompt"],
            name=f"hf_sequence_classification:{opts['model']}",
            max_tokens=length_limit(opts["max_model_len"], model_max_positions(model.config)),
        )

    def input_lengths(self, samples: pl.DataFrame) -> list[int]:
        return [len(s) for s in self.encode(samples)]

    def encode(self, samples: pl.DataFrame) -> list[list[int]]:
        convs = [
            rm_conversation(q, c, self.system_prompt)
            for q, c in zip(questions_for(samples, self.questions), samples["completion"], strict=True)
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
    max_tokens: int | None = None  # longer inputs are not scored (bongain.scoring.registry.score_split)

    @classmethod
    def load(
        cls, cfg: Mapping[str, Any], questions: Mapping[str, str], snapshot: str | None = None
    ) -> HFProcessRM:
        """As :meth:`HFSequenceClassifierRM.load`."""
        from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

        opts = cfg
        source, revision = _source(opts, snapshot)
        kw = _load_kwargs(opts, revision)
        tok = AutoTokenizer.from_pretrained(
            source, revision=revision, trust_remote_code=kw["trust_remote_code"]
        )
        config = AutoConfig.from_pretrained(
            source, revision=revision, trust_remote_code=kw["trust_remote_code"]
        )
        archs = getattr(config, "architectures", None) or []
        # in-library token classifiers load by class; Qwen2.5-Math-PRM ships remote code for AutoModel
        auto = (
            AutoModelForTokenClassification
            if any(a.endswith("ForTokenClassification") for a in archs)
            else AutoModel
        )
        model = (
            load_with_head(auto, source, kw, "token-classification")
            if auto is AutoModelForTokenClassification
            else auto.from_pretrained(source, **kw)
        )
        model.to(_device(opts["device"])).eval()
        check_prm_head(model, step_tag_id(tok, opts["step_tag"]), opts["model"])
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
            max_tokens=length_limit(opts["max_model_len"], model_max_positions(model.config)),
        )

    def input_lengths(self, samples: pl.DataFrame) -> list[int]:
        return [len(s) for s in prm_sequences(self, samples)]

    def step_scores(self, samples: pl.DataFrame) -> list[list[float]]:
        seqs = prm_sequences(self, samples)
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
