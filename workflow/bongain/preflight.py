"""Pre-flight check of a GPU job: did it get the GPUs its config needs? Fail at once, naming the config key.

A GPU job (sampling with vLLM, a reward model on a GPU, post-training with ``posttrain.device: gpu``)
describes what it needs as :class:`Need` records: GPUs (a vLLM model's tensor-parallel size), a dtype
(bfloat16 needs compute capability 8.0 or higher; vLLM needs 7.0), and the weights it puts on each GPU.
:func:`check_job` compares them, before any model is loaded, with

* the **allocation**: how many GPUs SLURM gave the job (its ``SLURM_*`` variables; nothing outside
  SLURM), and
* the **hardware**: the CUDA devices torch sees, their compute capability and memory (only where the job
  was allocated GPUs or torch sees some: a local run without GPUs has nothing to check),

and raises :class:`PreflightError` listing every problem, each naming the key to change. A wrong node then
fails in seconds with a clear message instead of minutes later inside vLLM or CUDA.

``BONGAIN_PREFLIGHT`` (environment of the snakemake command; SLURM jobs inherit it) chooses how much runs:
``full`` (default), ``allocation`` (skip the hardware part: for clusters whose GPUs are declared to SLURM
but absent, like the CI's, where jobs run on the CPU), ``off``.

The memory test is a floor, not an estimate: it refuses only when the weights alone exceed what the job
may use of a GPU (vLLM: ``gpu_memory_utilization`` of it; the KV cache needs more on top).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODES = ("full", "allocation", "off")
ENV_VAR = "BONGAIN_PREFLIGHT"
#: Bytes per value of the dtypes a config can name.
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
#: Lowest compute capability for bfloat16, and for vLLM at all (vLLM's own errors say the same).
BF16_CAPABILITY = (8, 0)
VLLM_CAPABILITY = (7, 0)
#: safetensors dtype codes of floating-point tensors (they are loaded in the configured dtype).
_FLOAT_CODES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
GIB = 1024**3


class PreflightError(RuntimeError):
    """The job did not get what its config needs; the message names the keys."""


@dataclass(frozen=True)
class Gpu:
    """One CUDA device as the job sees it."""

    name: str
    capability: tuple[int, int]
    memory_bytes: int


@dataclass(frozen=True)
class Need:
    """What one model of a GPU job needs, each part with the config key that sets it.

    ``weight_bytes`` is the model's weights in ``dtype`` (None: unknown, not checked), spread over
    ``shards`` GPUs (vLLM's tensor parallelism; 1 for a transformers model on one device); at most
    ``memory_fraction`` of each GPU may hold them (vLLM's ``gpu_memory_utilization``; 1.0 otherwise).
    """

    what: str
    gpus: int
    gpus_key: str
    dtype: str
    dtype_key: str
    weight_bytes: int | None = None
    shards: int = 1
    memory_fraction: float = 1.0
    memory_key: str | None = None
    vllm: bool = False


def mode(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    value = env.get(ENV_VAR, "full").strip().lower() or "full"
    if value not in MODES:
        raise PreflightError(f"environment variable {ENV_VAR}={value!r}: use one of {', '.join(MODES)}")
    return value


def allocated_gpus(env: Mapping[str, str] | None = None) -> int | None:
    """GPUs SLURM allocated to this job (step) on its node, from its environment; None outside SLURM or
    for a job without GPUs."""
    env = os.environ if env is None else env
    count = env.get("SLURM_GPUS_ON_NODE", "").strip()
    if count.isdigit():
        return int(count)
    for name in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        ids = [i for i in env.get(name, "").split(",") if i.strip()]
        if ids:
            return len(ids)
    return None


def probe_gpus() -> list[Gpu]:
    """The CUDA devices torch sees (none without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        gpus.append(Gpu(props.name, (props.major, props.minor), int(props.total_memory)))
    return gpus


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def problems(needs: Sequence[Need], allocated: int | None, gpus: Sequence[Gpu] | None) -> list[str]:
    """Every way the job's allocation (``allocated`` GPUs; None: unknown) and devices (``gpus``; None:
    not checked) fall short of ``needs``, each naming the config key."""
    out = []
    for need in needs:
        if allocated is not None and allocated < need.gpus:
            out.append(
                f"config key '{need.gpus_key}': {need.what} needs {need.gpus} GPU(s) on one node, but SLURM "
                f"allocated {allocated} to this job; the job's GPU request must match it (a --set-resources "
                "or profile that lowers `gpu` for this rule, or a partition limit, does not)"
            )
            continue
        if gpus is None:
            continue
        if len(gpus) < need.gpus:
            seen = ", ".join(g.name for g in gpus) or "none"
            out.append(
                f"config key '{need.gpus_key}': {need.what} needs {need.gpus} GPU(s), but this job sees "
                f"{len(gpus)} CUDA device(s) ({seen}): check the node's driver and that torch is a CUDA "
                f"build (envs/install-venv.sh --gpu), or set {ENV_VAR}=allocation where GPUs are declared to "
                "SLURM but absent"
            )
            continue
        used = gpus[: need.gpus]
        if need.vllm:
            old = [g for g in used if g.capability < VLLM_CAPABILITY]
            if old:
                g = old[0]
                out.append(
                    f"config key '{need.gpus_key}': {need.what} runs on vLLM, which needs compute capability "
                    f"{VLLM_CAPABILITY[0]}.{VLLM_CAPABILITY[1]} or higher; {g.name} has "
                    f"{g.capability[0]}.{g.capability[1]}: ask for newer cards (slurm.gpu.gpu_model or "
                    "slurm.gpu.constraint, bongain slurm-profile --gpu-model / --gpu-constraint)"
                )
                continue
        if need.dtype == "bfloat16":
            old = [g for g in used if g.capability < BF16_CAPABILITY]
            if old:
                g = old[0]
                out.append(
                    f"config key '{need.dtype_key}': bfloat16 needs compute capability 8.0 or higher; "
                    f"{g.name} has {g.capability[0]}.{g.capability[1]}: set {need.dtype_key}: float16 or ask "
                    "for newer cards (slurm.gpu.gpu_model or slurm.gpu.constraint)"
                )
        if need.weight_bytes:
            per_gpu = need.weight_bytes / need.shards
            smallest = min(used, key=lambda g: g.memory_bytes)
            budget = need.memory_fraction * smallest.memory_bytes
            if per_gpu > budget:
                share = (
                    f"{need.memory_fraction:g} of its {_gib(smallest.memory_bytes)}"
                    if need.memory_fraction < 1
                    else f"its {_gib(smallest.memory_bytes)}"
                )
                out.append(
                    f"config key '{need.memory_key or need.gpus_key}': {need.what} puts {_gib(per_gpu)} of "
                    f"{need.dtype} weights on each GPU ({_gib(need.weight_bytes)} over {need.shards}), more "
                    f"than {share} on {smallest.name}: spread it over more GPUs (tensor_parallel_size), "
                    "or ask for bigger cards (slurm.gpu.gpu_model or slurm.gpu.constraint)"
                )
    return out


def check_job(
    needs: Sequence[Need],
    env: Mapping[str, str] | None = None,
    probe: Callable[[], list[Gpu]] = probe_gpus,
) -> None:
    """Raise :class:`PreflightError` when the job's allocation or devices fall short of ``needs``."""
    env = os.environ if env is None else env
    how = mode(env)
    needs = [n for n in needs if n.gpus > 0]
    if how == "off" or not needs:
        return
    allocated = allocated_gpus(env)
    gpus = None
    if how == "full":
        seen = probe()
        # a local run without GPUs (no allocation, no device) has nothing to check: the engine decides
        gpus = seen if (seen or allocated is not None) else None
    found = problems(needs, allocated, gpus)
    if found:
        raise PreflightError(
            f"pre-flight check of this GPU job failed ({ENV_VAR}={how}):\n  - " + "\n  - ".join(found)
        )


# -- what a job needs ----------------------------------------------------------------------------------------


def _safetensors_bytes(path: Path, dtype_bytes: int | None) -> int:
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if dtype_bytes is not None and info["dtype"] in _FLOAT_CODES:
            numel = 1
            for d in info["shape"]:
                numel *= int(d)
            total += numel * dtype_bytes
        else:
            total += end - start
    return total


def checkpoint_weight_bytes(folder: str | Path, dtype: str) -> int | None:
    """Bytes the checkpoint's weights take in ``dtype``: from the safetensors headers (floating-point
    tensors converted; others, and every tensor for an unknown dtype such as vLLM's ``auto``, as stored),
    else the size of the PyTorch weight files; None when the folder has neither or a header cannot be read
    (the memory check is then left out; the pre-flight check never fails a job over its own parsing)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if files:
        try:
            return sum(_safetensors_bytes(f, DTYPE_BYTES.get(dtype)) for f in files)
        except (struct.error, ValueError, KeyError, TypeError):
            return None  # not a readable safetensors file: size unknown (loading the model will say why)
    bins = sorted(folder.glob("pytorch_model*.bin"))
    return sum(f.stat().st_size for f in bins) or None


def sample_needs(model: str, model_cfg: Mapping[str, Any], manifest: Mapping[str, Any]) -> list[Need]:
    """A sample job's needs: a vLLM model's engine (and, with ``entropy: hf_rescore``, the same model on
    one GPU for the exact entropies); none for the transformers backend (a CPU job). ``manifest`` is the
    checkpoint the job loads (its folder and the dtype the engine gets)."""
    if model_cfg["backend"] != "vllm":
        return []
    key = f"models.{model}"
    opts = model_cfg["vllm"]
    dtype = str(manifest.get("dtype", "auto"))
    weights = checkpoint_weight_bytes(manifest["path"], dtype)
    needs = [
        Need(
            what=f"model {model!r} on vLLM",
            gpus=int(opts["tensor_parallel_size"]),
            gpus_key=f"{key}.vllm.tensor_parallel_size",
            dtype=dtype,
            dtype_key=f"{key}.dtype",
            weight_bytes=weights,
            shards=int(opts["tensor_parallel_size"]),
            memory_fraction=float(opts["gpu_memory_utilization"]),
            memory_key=f"{key}.vllm.tensor_parallel_size",
            vllm=True,
        )
    ]
    if opts["entropy"] == "hf_rescore":
        needs.append(
            Need(
                what=f"model {model!r} rescored with transformers on one GPU (entropy: hf_rescore)",
                gpus=1,
                gpus_key=f"{key}.vllm.entropy",
                dtype=dtype,
                dtype_key=f"{key}.dtype",
                weight_bytes=weights,
                memory_key=f"{key}.vllm.entropy",
            )
        )
    return needs


def score_needs(
    rm: Mapping[str, Any], gpus: int, checkpoint: str | None, key: str = "reward_models.<name>"
) -> list[Need]:
    """A score job's needs: a pretrained reward model on ``gpus`` GPUs (bongain.scoring.registry
    .score_gpus); ``checkpoint`` is its local folder (the downloaded snapshot), if known; ``key`` the
    block's config key (``reward_models.<name>``)."""
    if gpus == 0:
        return []
    weights = checkpoint_weight_bytes(checkpoint, rm["dtype"]) if checkpoint else None
    vllm = rm["kind"].startswith("vllm_")
    return [
        Need(
            what=f"reward model {rm['model']!r} ({rm['kind']})",
            gpus=gpus,
            gpus_key=f"{key}.tensor_parallel_size" if vllm else f"{key}.device",
            dtype=rm["dtype"],
            dtype_key=f"{key}.dtype",
            weight_bytes=weights,
            shards=gpus if vllm else 1,
            memory_fraction=float(rm["gpu_memory_utilization"]) if vllm else 1.0,
            memory_key=f"{key}.tensor_parallel_size" if vllm else f"{key}.device",
            vllm=vllm,
        )
    ]


def posttrain_needs(model: str, device: str, checkpoint: str, dtype: str) -> list[Need]:
    """A post-training job's needs with ``posttrain.device: gpu``: one GPU holding the starting
    checkpoint's weights in the training ``dtype``."""
    if device != "gpu":
        return []
    return [
        Need(
            what=f"post-training of model {model!r}",
            gpus=1,
            gpus_key="posttrain.device",
            dtype=dtype,
            dtype_key="posttrain.device",
            weight_bytes=checkpoint_weight_bytes(checkpoint, dtype),
            memory_key="posttrain.device",
        )
    ]
