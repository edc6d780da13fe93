"""vLLM reward models behind the :class:`bongain.scoring.offline.Verifier` protocol (vLLM 0.33 API).

* ``vllm_classify``: an outcome RM served by vLLM ``LLM.classify`` with
  ``PoolingParams(use_activation=False)`` (vLLM applies a sigmoid by default): reward = raw logit.
* ``vllm_prm``: a process RM served by vLLM ``LLM.encode(..., pooling_task="token_classify")``; step
  scores aggregated by :func:`bongain.scoring.rm_inputs.aggregate_steps`.

Inputs are built by :mod:`bongain.scoring.rm_inputs`, exactly as for the HF kinds.
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
    encode_conversations,
    length_limit,
    prm_sequences,
    questions_for,
    rm_conversation,
    step_tag_id,
)


def engine_max_len(llm: Any) -> int | None:
    """The engine's own context limit (``LLM.llm_engine.model_config.max_model_len``), if it exposes one."""
    cfg = getattr(getattr(llm, "llm_engine", None), "model_config", None)
    value = getattr(cfg, "max_model_len", None)
    return int(value) if value else None


#: Architectures each vLLM kind can serve: classify needs a sequence-classification head; token_classify
#: a per-token head (token classifiers, Qwen2.5-Math-PRM, token reward models).
HEAD_SUFFIXES = {
    "vllm_classify": ("ForSequenceClassification",),
    "vllm_prm": ("ForTokenClassification", "ForProcessRewardModel", "ForRewardModel"),
}


def check_head(cfg: Mapping[str, Any], kind: str, snapshot: str | None = None) -> None:
    """Refuse, before an engine starts, a checkpoint whose architecture has no head for ``kind``.

    vLLM would serve a causal LM as a pooling model by converting it (an embedding model, or a classifier
    whose head it cannot find), which fails late or scores with the wrong head."""
    from transformers import AutoConfig

    source = snapshot or cfg["model"]
    try:
        config = AutoConfig.from_pretrained(
            source,
            revision=None if snapshot else cfg["revision"],
            trust_remote_code=bool(cfg["trust_remote_code"]),
        )
    except (OSError, ValueError) as err:
        key = "reward_models.<name>.model"
        raise ValueError(f"config key '{key}': cannot read {source}: {err}") from err
    archs = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith(HEAD_SUFFIXES[kind]) for a in archs):
        raise ValueError(
            f"config key 'reward_models.<name>.model': {source} declares architectures {archs}, which "
            f"have no {'sequence' if kind == 'vllm_classify' else 'per-token'}-classification head; {kind} "
            f"needs a checkpoint whose architecture ends in {' or '.join(HEAD_SUFFIXES[kind])}"
        )


def pooling_engine_kwargs(
    cfg: Mapping[str, Any], snapshot: str | None = None, *, enforce_eager: bool | None = None
) -> dict[str, Any]:
    """Arguments of ``vllm.LLM`` for a reward model: its downloaded ``snapshot`` folder when there is one
    (bongain.hub.snapshot_path; no revision: the folder is that commit), else the block's ``model`` at its
    ``revision``.

    On vLLM's CPU build the KV cache is sized explicitly (``gpu_memory_utilization`` would be a fraction
    of the machine's RAM, see :func:`bongain.sampling.vllm.engine_kwargs`). ``enforce_eager`` (default:
    the block's ``enforce_eager``) skips torch.compile and CUDA graphs: the engine starts in seconds."""
    from bongain.sampling.vllm import CPU_KV_CACHE_GIB, engine_is_cpu

    opts = cfg
    kw: dict[str, Any] = {
        "model": snapshot or opts["model"],
        "runner": "pooling",
        "revision": None if snapshot else opts["revision"],
        "dtype": opts["dtype"],
        "trust_remote_code": bool(opts["trust_remote_code"]),
        "tensor_parallel_size": int(opts["tensor_parallel_size"]),
        "gpu_memory_utilization": float(opts["gpu_memory_utilization"]),
        "seed": 0,
    }
    if enforce_eager if enforce_eager is not None else opts.get("enforce_eager", False):
        kw["enforce_eager"] = True
    if opts["max_model_len"]:
        kw["max_model_len"] = int(opts["max_model_len"])
    if engine_is_cpu():
        kw["kv_cache_memory_bytes"] = int(CPU_KV_CACHE_GIB * 2**30)
    return kw


def make_pooling_engine(
    cfg: Mapping[str, Any], snapshot: str | None = None, *, enforce_eager: bool | None = None
) -> Any:
    """``vllm.LLM`` in pooling mode for a reward model (the only vLLM constructor call of this module),
    after :func:`check_head`."""
    import vllm

    from bongain.sampling.vllm import root_cause

    check_head(cfg, cfg.get("kind", "vllm_classify"), snapshot)
    kw = pooling_engine_kwargs(cfg, snapshot, enforce_eager=enforce_eager)
    try:
        return vllm.LLM(**kw)
    except Exception as err:  # vLLM raises ValueError, RuntimeError, pydantic errors, ...
        raise ValueError(
            f"config key 'reward_models.<name>.model': vLLM could not load {kw['model']}: {root_cause(err)}"
        ) from err


@dataclass
class VllmClassifyRM:
    """Outcome RM served by vLLM ``classify``; raw logit (``use_activation=False``), same inputs as HF."""

    llm: Any
    questions: Mapping[str, str]
    system_prompt: str | None = None
    name: str = "vllm_classify"
    max_tokens: int | None = None  # longer inputs are not scored (bongain.scoring.registry.score_split)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], questions: Mapping[str, str], llm: Any) -> VllmClassifyRM:
        return cls(
            llm=llm,
            questions=questions,
            system_prompt=cfg["system_prompt"],
            name=f"vllm_classify:{cfg['model']}",
            max_tokens=length_limit(cfg["max_model_len"], engine_max_len(llm)),
        )

    def encode(self, samples: pl.DataFrame) -> list[list[int]]:
        convs = [
            rm_conversation(q, c, self.system_prompt)
            for q, c in zip(questions_for(samples, self.questions), samples["completion"], strict=True)
        ]
        return encode_conversations(self.llm.get_tokenizer(), convs)

    def input_lengths(self, samples: pl.DataFrame) -> list[int]:
        return [len(s) for s in self.encode(samples)]

    def score(self, samples: pl.DataFrame, grades: pl.DataFrame) -> np.ndarray:
        from vllm import PoolingParams

        seqs = self.encode(samples)
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
    max_tokens: int | None = None  # longer inputs are not scored (bongain.scoring.registry.score_split)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], questions: Mapping[str, str], llm: Any) -> VllmProcessRM:
        return cls(
            llm=llm,
            questions=questions,
            aggregation=cfg["aggregation"],
            system_prompt=cfg["prm_system_prompt"],
            step_tag=cfg["step_tag"],
            step_separator=cfg["step_separator"],
            name=f"vllm_prm:{cfg['model']}:{cfg['aggregation']}",
            max_tokens=length_limit(cfg["max_model_len"], engine_max_len(llm)),
        )

    def input_lengths(self, samples: pl.DataFrame) -> list[int]:
        return [len(s) for s in prm_sequences(self, samples)]

    @property
    def tokenizer(self) -> Any:
        return self.llm.get_tokenizer()

    def step_scores(self, samples: pl.DataFrame) -> list[list[float]]:
        seqs = prm_sequences(self, samples)
        tag = step_tag_id(self.tokenizer, self.step_tag)
        outs = self.llm.encode(
            [{"prompt_token_ids": s} for s in seqs], pooling_task="token_classify", use_tqdm=False
        )
        if len(outs) != len(seqs):
            raise ValueError(f"vLLM encode returned {len(outs)} outputs for {len(seqs)} inputs")
        return [step_probabilities(o.outputs.data, s, tag) for o, s in zip(outs, seqs, strict=True)]

    def score(self, samples: pl.DataFrame, grades: pl.DataFrame) -> np.ndarray:
        return np.array([aggregate_steps(s, self.aggregation) for s in self.step_scores(samples)])
