"""Sampling backends behind one interface, chosen by ``models.<slug>.backend`` (``docs/backends.md``).

* ``transformers`` (default, CPU or any torch device): :func:`bongain.sampling.loop.sample_prompts` with
  the fast decode loop;
* ``transformers_reference``: the same sampler with the original (reference) decode loop: same tokens,
  logprobs and entropies in float32, slower; kept to check the fast loop against;
* ``vllm`` (GPU): :func:`bongain.sampling.vllm.sample_vllm`. Only the tokenizer loads up front (it formats
  the prompts); the engine starts on the first batch and serves every later batch of the job.

Both return :class:`~bongain.sampling.loop.Completion` objects that become the same samples table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from bongain.sampling.loop import Completion, SamplingParams


class Backend(Protocol):
    """A loaded model that samples completions for a batch of prompts."""

    tokenizer: Any

    def sample(
        self,
        prompts: Sequence[str],
        prompt_token_ids: Sequence[Sequence[int]],
        prompt_ids: Sequence[str],
        params: SamplingParams,
        *,
        batch_prompts: int,
    ) -> list[Completion]: ...


class TransformersBackend:
    """HF transformers model sampled by bongain's own loop (shared prompt prefill, exact entropy)."""

    loop = "fast"

    def __init__(
        self, manifest: Mapping[str, Any], model_cfg: Mapping[str, Any], seed: int, model_key: str = "?"
    ) -> None:
        from bongain.sampling.models import load_causal_lm

        self.model, self.tokenizer = load_causal_lm(dict(manifest))

    def sample(
        self,
        prompts: Sequence[str],
        prompt_token_ids: Sequence[Sequence[int]],
        prompt_ids: Sequence[str],
        params: SamplingParams,
        *,
        batch_prompts: int,
    ) -> list[Completion]:
        from bongain.sampling.loop import sample_prompts

        return sample_prompts(
            self.model,
            self.tokenizer,
            prompts,
            prompt_token_ids,
            prompt_ids,
            params,
            batch_prompts=batch_prompts,
            loop=self.loop,
        )


class ReferenceTransformersBackend(TransformersBackend):
    """The transformers backend with the reference decode loop (``loop.LOOPS``)."""

    loop = "reference"


class VllmBackend:
    """vLLM engine, started on the first batch and reused for the job's later batches (with
    ``entropy: hf_rescore`` it is released after each batch, so that the HF copy fits on the GPU)."""

    def __init__(
        self, manifest: Mapping[str, Any], model_cfg: Mapping[str, Any], seed: int, model_key: str = "?"
    ) -> None:
        from bongain.sampling.vllm import load_tokenizer

        self.manifest, self.model_cfg, self.seed, self.model_key = manifest, model_cfg, seed, model_key
        self.tokenizer = load_tokenizer(manifest)
        self.engine: Any | None = None

    def sample(
        self,
        prompts: Sequence[str],
        prompt_token_ids: Sequence[Sequence[int]],
        prompt_ids: Sequence[str],
        params: SamplingParams,
        *,
        batch_prompts: int,
    ) -> list[Completion]:
        from bongain.sampling.vllm import make_engine, sample_vllm

        if self.engine is None:
            self.engine = make_engine(self.manifest, self.model_cfg, seed=self.seed, model_key=self.model_key)
        engine = self.engine
        if self.model_cfg["vllm"]["entropy"] == "hf_rescore":
            self.engine = None  # sample_vllm releases it before rescoring; the next batch starts another
        return sample_vllm(
            self.manifest,
            self.model_cfg,
            prompt_token_ids,
            prompt_ids,
            params,
            engine=engine,
            model_key=self.model_key,
        )


BACKENDS: dict[str, Callable[..., Backend]] = {
    "transformers": TransformersBackend,
    "transformers_reference": ReferenceTransformersBackend,
    "vllm": VllmBackend,
}


#: GPUs a sample job asks for, by backend: vLLM its tensor-parallel size, the transformers loop none (it
#: runs on the job's CPUs; a GPU would sit idle while the job holds it).
GPUS: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "transformers": lambda model_cfg: 0,
    "transformers_reference": lambda model_cfg: 0,
    "vllm": lambda model_cfg: int(model_cfg["vllm"]["tensor_parallel_size"]),
}


def sample_gpus(model_cfg: Mapping[str, Any]) -> int:
    """GPUs of a sample job of this (complete) model config: what its backend needs."""
    name = model_cfg["backend"]
    if name not in GPUS:
        raise ValueError(f"config key 'models.*.backend': unknown backend {name!r}; known: {sorted(GPUS)}")
    return GPUS[name](model_cfg)


def load_backend(
    manifest: Mapping[str, Any], model_cfg: Mapping[str, Any], seed: int, model_key: str = "?"
) -> Backend:
    """The backend that ``model_cfg["backend"]`` names, loaded for the prepared model ``manifest``
    (``model_key``: the model's key under ``models``, for error messages)."""
    name = model_cfg["backend"]
    if name not in BACKENDS:
        raise ValueError(
            f"config key 'models.*.backend': unknown backend {name!r}; known: {sorted(BACKENDS)}"
        )
    return BACKENDS[name](manifest, model_cfg, seed, model_key)
