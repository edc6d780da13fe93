"""A FAKE of the vLLM 0.33 offline API, importable as ``vllm`` (``sys.modules["vllm"] = vllm_fake``, or the
package shim ``tests/fakes/vllm_pkg`` on PYTHONPATH for a whole job).

It reproduces the *documented* structure and semantics (docs/vllm-and-reward-models.md, the only source of
truth here; vLLM itself was never run), not vLLM's numbers:

* ``LLM.generate`` *samples* from a fake language model: the next-token logits are
  :func:`fake_next_logits` of the whole context (prompt + tokens so far) over the model's tokenizer
  vocabulary, so different prompts give different completions. SamplingParams semantics: ``n`` children
  with ``index`` 0..n-1, child i drawn with its own generator seeded ``seed + i`` (so a request
  ``n=1, seed=s+i`` reproduces child i; without a seed, the engine seed and request number); temperature
  and top-p applied before drawing; EOS (the tokenizer's) or a ``stop_token_ids`` token ends a sample
  with ``finish_reason="stop"`` and ``stop_reason`` None / that id, the token kept in ``token_ids`` and
  left out of ``text``; a stop string ends it with ``stop_reason`` = the string, cut from ``text``;
  ``max_tokens`` gives ``"length"``. ``logprobs=None`` -> ``logprobs`` and ``cumulative_logprob`` None;
  ``logprobs=k`` -> the top-k entries plus the sampled token per position, with values from the engine's
  ``logprobs_mode``: ``raw_logprobs`` (default: full-vocabulary softmax at T=1) or ``processed_logprobs``
  (after temperature and top-p, renormalised). A raw string prompt is tokenised with
  ``add_special_tokens`` from ``tokenization_kwargs`` (default True: a chat-templated string gets a second
  BOS, as in vLLM); a ``TokensPrompt`` dict is taken as is.
* ``LLM.chat`` renders the template and tokenises with ``add_special_tokens=False``.
* ``LLM.classify`` returns ``probs = [sigmoid(logit)]`` by default and ``[logit]`` with
  ``PoolingParams(use_activation=False)``; the logit is :func:`fake_logit` of the prompt's token ids.
* ``LLM.encode`` needs ``pooling_task`` and the model's active task; ``token_classify`` returns softmaxed
  :func:`fake_token_logits` rows, at step tags only (STEP pooling, ``*ForProcessRewardModel``) or for every
  token (ALL pooling, ``*ForTokenClassification``).

Every call is appended to ``LLM.calls``; every engine to ``LLM.instances``.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

__version__ = "0.33.0+fake"
LOGPROBS_MODES = ("raw_logprobs", "processed_logprobs")

# EngineArgs that 0.33 accepts through **kwargs (subset the code under test may use); `task`, `swap_space`
# and `best_of` are gone in 0.33 and rejected like vLLM does
_ENGINE_KWARGS = {
    "max_model_len",
    "enable_prefix_caching",
    "max_num_seqs",
    "max_logprobs",
    "logprobs_mode",
    "kv_cache_memory_bytes",
}


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool = True
    metrics: Any = None
    num_cached_tokens: int = 0


@dataclass(kw_only=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    max_tokens: int | None = 16
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    logprob_token_ids: list[int] | None = None
    flat_logprobs: bool = False
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False


@dataclass(kw_only=True)
class PoolingParams:
    use_activation: bool | None = None
    dimensions: int | None = None


@dataclass
class ClassificationOutput:
    probs: list[float]


@dataclass
class ClassificationRequestOutput:
    request_id: str
    outputs: ClassificationOutput
    prompt_token_ids: list[int]
    finished: bool = True


@dataclass
class PoolingOutput:
    data: torch.Tensor


@dataclass
class PoolingRequestOutput:
    request_id: str
    outputs: PoolingOutput
    prompt_token_ids: list[int]
    num_cached_tokens: int = 0
    finished: bool = True


def fake_logit(token_ids: list[int]) -> float:
    """The fake outcome RM's raw logit: a deterministic function of the input tokens."""
    return (sum((j + 1) * t for j, t in enumerate(token_ids)) % 1000) / 100.0 - 5.0


def fake_token_logits(token_ids: list[int]) -> np.ndarray:
    """The fake token classifier's raw [num_tokens, 2] logits."""
    ids = np.asarray(token_ids, dtype=np.float64)
    pos = np.arange(len(ids), dtype=np.float64)
    return np.stack([np.sin(ids + pos), np.cos(0.5 * ids - pos)], axis=-1)


def fake_next_logits(context: list[int], vocab_size: int, eos_id: int | None) -> np.ndarray:
    """The fake LM's raw next-token logits after ``context``: a pseudo-random function of the last tokens,
    the context length and the prompt, with EOS ever more likely as the context grows."""
    key = zlib.crc32(np.asarray([*context[-3:], len(context)], dtype=np.int64).tobytes())
    key = zlib.crc32(np.asarray(context, dtype=np.int64).tobytes(), key)
    z = np.random.default_rng(key).normal(0.0, 2.0, vocab_size)
    if eos_id is not None:
        z[eos_id] = -2.0 + 0.25 * len(context)
    return z


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max()
    return z - math.log(float(np.exp(z).sum()))


def processed_logprobs(z: np.ndarray, temperature: float, top_p: float) -> np.ndarray:
    """Log-probabilities of the sampling distribution: temperature, then top-p (the smallest set of most
    likely tokens whose mass reaches top_p), renormalised; truncated tokens get -inf."""
    lp = _log_softmax(z / max(temperature, 1e-6))
    if top_p < 1.0:
        order = np.argsort(-lp, kind="stable")
        mass = np.cumsum(np.exp(lp[order]))
        keep = order[: int(np.searchsorted(mass, top_p) + 1)]
        out = np.full_like(lp, -np.inf)
        out[keep] = lp[keep] - math.log(float(np.exp(lp[keep]).sum()))
        return out
    return lp


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@dataclass
class LLM:
    model: str
    runner: str = "auto"
    convert: str = "auto"
    tokenizer: str | None = None
    trust_remote_code: bool = False
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    revision: str | None = None
    seed: int = 0
    gpu_memory_utilization: float = 0.92
    enforce_eager: bool = False
    pooler_config: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    instances: ClassVar[list[LLM]] = []

    def __init__(self, model: str, **kwargs: Any) -> None:
        named = {f for f in self.__dataclass_fields__ if f not in ("model", "extra", "calls")}
        unknown = set(kwargs) - named - _ENGINE_KWARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got unexpected keyword argument(s) {sorted(unknown)}")
        self.model = model
        for f in named:
            setattr(self, f, kwargs.get(f, self.__dataclass_fields__[f].default))
        self.extra = {k: v for k, v in kwargs.items() if k in _ENGINE_KWARGS}
        if self.extra.get("logprobs_mode", "raw_logprobs") not in LOGPROBS_MODES:
            raise ValueError(f"logprobs_mode must be one of {LOGPROBS_MODES}")
        self.calls = []
        self._next_request = 0
        self._tok: Any = None
        self.shut_down = False
        LLM.instances.append(self)

    def shutdown(self) -> None:
        """Release the engine (the fake only records it; later calls fail as on a dead engine)."""
        self.shut_down = True

    # ---------------------------------------------------------------------------------------- helpers
    @property
    def model_dir(self) -> Path:
        """A local folder as is; a hub id resolved in the local cache only (vLLM under HF_HUB_OFFLINE=1)."""
        if Path(self.model).is_dir():
            return Path(self.model)
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(repo_id=self.model, revision=self.revision or "main", local_files_only=True)
        )

    @property
    def max_model_len(self) -> int:
        """``max_model_len`` if given, else the model's ``max_position_embeddings`` (vLLM's default)."""
        if self.extra.get("max_model_len"):
            return int(self.extra["max_model_len"])
        cfg = json.loads((self.model_dir / "config.json").read_text())
        return int(cfg.get("max_position_embeddings", 2048))

    @property
    def llm_engine(self) -> Any:
        """``LLM.llm_engine.model_config.max_model_len``, the only engine attribute bongain reads."""
        from types import SimpleNamespace

        return SimpleNamespace(model_config=SimpleNamespace(max_model_len=self.max_model_len))

    def _check_length(self, ids: list[int]) -> None:
        if len(ids) > self.max_model_len:
            raise ValueError(
                f"The decoder prompt (length {len(ids)}) is longer than the maximum model length of "
                f"{self.max_model_len}."
            )

    @property
    def architecture(self) -> str:
        cfg = json.loads((self.model_dir / "config.json").read_text())
        return (cfg.get("architectures") or ["LlamaForCausalLM"])[0]

    @property
    def active_task(self) -> str:
        arch = self.architecture
        if arch.endswith("ForSequenceClassification"):
            return "classify"
        if arch.endswith(("ForProcessRewardModel", "ForTokenClassification", "ForRewardModel")):
            return "token_classify"
        return "generate"

    def get_tokenizer(self) -> Any:
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.tokenizer or str(self.model_dir))
        return self._tok

    def _prompt_ids(self, prompt: Any, tokenization_kwargs: dict | None) -> tuple[str | None, list[int]]:
        if isinstance(prompt, dict):
            return prompt.get("prompt"), [int(t) for t in prompt["prompt_token_ids"]]
        add = (tokenization_kwargs or {}).get("add_special_tokens", True)
        return prompt, list(self.get_tokenizer()(prompt, add_special_tokens=add).input_ids)

    def _request_id(self) -> str:
        rid = str(self._next_request)
        self._next_request += 1
        return rid

    # --------------------------------------------------------------------------------------- generate
    def generate(
        self,
        prompts: Any,
        sampling_params: SamplingParams | list[SamplingParams] | None = None,
        *,
        use_tqdm: bool = True,
        lora_request: Any = None,
        priority: Any = None,
        tokenization_kwargs: dict | None = None,
    ) -> list[RequestOutput]:
        if self.runner not in ("auto", "generate") or self.active_task != "generate":
            raise ValueError("LLM.generate() is only supported for generative models")
        prompts = [prompts] if isinstance(prompts, str | dict) else list(prompts)
        sps = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        if len(sps) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        self.calls.append(
            (
                "generate",
                {"prompts": prompts, "sampling_params": sps, "tokenization_kwargs": tokenization_kwargs},
            )
        )
        return [
            self._simulate(*self._prompt_ids(p, tokenization_kwargs), sp or SamplingParams())
            for p, sp in zip(prompts, sps, strict=True)
        ]

    def _simulate(self, prompt: str | None, prompt_ids: list[int], sp: SamplingParams) -> RequestOutput:
        max_lp = self.extra.get("max_logprobs", 20)
        if sp.logprobs is not None and max_lp != -1 and sp.logprobs > max_lp:
            raise ValueError(f"Requested sample logprobs of {sp.logprobs}, which is greater than max allowed")
        if self.shut_down:
            raise RuntimeError("the engine was shut down")
        self._check_length(prompt_ids)
        rid = self._request_id()
        tok = self.get_tokenizer()
        vocab, eos = len(tok), tok.eos_token_id
        mode = self.extra.get("logprobs_mode", "raw_logprobs")
        stops = [sp.stop] if isinstance(sp.stop, str) else list(sp.stop or [])
        outputs = []
        for i in range(sp.n):
            seed = sp.seed + i if sp.seed is not None else zlib.crc32(f"{self.seed}/{rid}/{i}".encode())
            rng = np.random.default_rng(seed)
            ids: list[int] = []
            positions: list[dict[int, Logprob]] = []
            finish, stop_reason, text = "length", None, None
            for _ in range(sp.max_tokens or 16):
                z = fake_next_logits(prompt_ids + ids, vocab, eos)
                proc = processed_logprobs(z, sp.temperature, sp.top_p)
                p = np.exp(proc)
                t = int(rng.choice(vocab, p=p / p.sum()))
                ids.append(t)
                shown = _log_softmax(z) if mode == "raw_logprobs" else proc
                if sp.logprobs is not None:
                    keep = [int(v) for v in np.argsort(-shown, kind="stable")[: sp.logprobs]] + [t]
                    positions.append(
                        {
                            v: Logprob(float(shown[v]), int((shown > shown[v]).sum()) + 1, tok.decode([v]))
                            for v in keep
                        }
                    )
                if t == eos or t in (sp.stop_token_ids or []):
                    finish, stop_reason = "stop", (None if t == eos else t)
                    break
                decoded = tok.decode(ids, skip_special_tokens=sp.skip_special_tokens)
                hit = [(decoded.find(x), x) for x in stops if x and x in decoded]
                if hit:
                    at, x = min(hit)
                    finish, stop_reason = "stop", x
                    text = decoded[: at + (len(x) if sp.include_stop_str_in_output else 0)]
                    break
            if text is None:
                text = tok.decode(ids, skip_special_tokens=sp.skip_special_tokens)
            logprobs = positions if sp.logprobs is not None else None
            cumulative = (
                math.fsum(pos[t].logprob for pos, t in zip(positions, ids, strict=True))
                if sp.logprobs is not None
                else None
            )
            outputs.append(CompletionOutput(i, text, ids, cumulative, logprobs, finish, stop_reason))
        return RequestOutput(rid, prompt, prompt_ids, None, outputs)

    def chat(
        self,
        messages: list[dict] | list[list[dict]],
        sampling_params: SamplingParams | list[SamplingParams] | None = None,
        use_tqdm: bool = True,
        lora_request: Any = None,
        priority: Any = None,
        chat_template: str | None = None,
        chat_template_content_format: str = "auto",
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: Any = None,
        chat_template_kwargs: dict | None = None,
        tokenization_kwargs: dict | None = None,
        mm_processor_kwargs: dict | None = None,
    ) -> list[RequestOutput]:
        convs = [messages] if messages and isinstance(messages[0], dict) else list(messages)
        tok = self.get_tokenizer()
        prompts = []
        for conv in convs:
            text = tok.apply_chat_template(
                conv,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                chat_template=chat_template,
                **(chat_template_kwargs or {}),
            )
            ids = tok(text, add_special_tokens=False).input_ids  # default_chat_tok_params
            prompts.append({"prompt": text, "prompt_token_ids": list(ids)})
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm)

    # ---------------------------------------------------------------------------------------- pooling
    def classify(
        self,
        prompts: Any,
        *,
        pooling_params: PoolingParams | None = None,
        use_tqdm: bool = True,
        lora_request: Any = None,
        tokenization_kwargs: dict | None = None,
    ) -> list[ClassificationRequestOutput]:
        if self.runner != "pooling" or self.active_task != "classify":
            raise ValueError("classify needs runner='pooling' and a sequence-classification model")
        prompts = [prompts] if isinstance(prompts, str | dict) else list(prompts)
        self.calls.append(("classify", {"prompts": prompts, "pooling_params": pooling_params}))
        activate = pooling_params is None or pooling_params.use_activation in (None, True)
        out = []
        for p in prompts:
            _, ids = self._prompt_ids(p, tokenization_kwargs)
            self._check_length(ids)
            logit = fake_logit(ids)
            prob = 1.0 / (1.0 + math.exp(-logit)) if activate else logit  # num_labels < 2: sigmoid
            out.append(ClassificationRequestOutput(self._request_id(), ClassificationOutput([prob]), ids))
        return out

    def encode(
        self,
        prompts: Any,
        pooling_params: PoolingParams | None = None,
        *,
        use_tqdm: bool = True,
        lora_request: Any = None,
        pooling_task: str | None = None,
        tokenization_kwargs: dict | None = None,
    ) -> list[PoolingRequestOutput]:
        if pooling_task is None:
            raise ValueError("pooling_task required for `LLM.encode`")
        if self.runner != "pooling":
            raise ValueError("encode needs runner='pooling'")
        if pooling_task != self.active_task:
            raise ValueError(
                f"pooling task {pooling_task!r} is not the model's active task {self.active_task!r}; "
                "set PoolerConfig(task=...)"
            )
        prompts = [prompts] if isinstance(prompts, str | dict) else list(prompts)
        self.calls.append(("encode", {"prompts": prompts, "pooling_task": pooling_task}))
        activate = pooling_params is None or pooling_params.use_activation in (None, True)
        step = self.architecture.endswith("ForProcessRewardModel")
        tag = self.get_tokenizer().convert_tokens_to_ids("<extra_0>")
        out = []
        for p in prompts:
            _, ids = self._prompt_ids(p, tokenization_kwargs)
            self._check_length(ids)
            rows = fake_token_logits(ids)
            if activate:
                rows = _softmax(rows)
            if step:  # STEP pooling: one row per step tag
                rows = rows[np.asarray(ids) == tag]
            out.append(PoolingRequestOutput(self._request_id(), PoolingOutput(torch.tensor(rows)), ids))
        return out


FakeLLM = LLM
