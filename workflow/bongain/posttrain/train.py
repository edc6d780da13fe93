"""Train one LoRA adapter with TRL + PEFT on a recipe's training data (seeded, fixed threads and dtype; on
the CPU, or on one CUDA GPU with ``posttrain.device: gpu``).

``sft`` and ``rft`` train with TRL's ``SFTTrainer`` on (prompt, completion) pairs, loss on the completion
tokens only; ``dpo`` with ``DPOTrainer`` on (prompt, chosen, rejected), the reference model being the
starting checkpoint (the adapter switched off).

Only what the loss needs is computed: both trainers score tokens through TRL's fused LM head, which on a
GPU projects only the positions that carry a label (the completion tokens) onto the vocabulary, but on a
CPU every position of the batch (the few-shot prompt included: dozens of positions per answer token, each a
262,144-wide product for Gemma 3). :func:`labelled_positions_only` gives the CPU the GPU's path: the same
per-token log-probabilities, from only the positions the loss reads (``tests/test_posttrain.py`` checks
the loss against the full output layer).

``dtype`` (config ``posttrain.dtype``) is the dtype of the frozen base weights and of the activations:
``float32`` (default), or ``bfloat16`` (the prepared checkpoints' own dtype: half the memory, but on the
project's CPU, without bf16 matrix units, training is several times slower; README: Post-training). The
LoRA weights, their gradients and the optimizer state stay in float32 either way (PEFT keeps adapters in
float32).

The training log (loss per step, examples used, wall time) is returned as a POSTTRAIN_LOG frame; a step
with a non-finite loss or gradient norm stops training with :class:`TrainingDiverged` (nothing is saved as
the adapter then). The adapter folder is written under a temporary name and renamed, so a killed job never
leaves a half-written adapter.

Reproducibility: the seed fixes the LoRA initialisation, the data order and dropout, and
``full_determinism`` makes torch use deterministic kernels (on CUDA also deterministic cuBLAS and cuDNN);
the thread count and the dtype are part of the config because float sums depend on them. A GPU run is
reproducible on the same GPU model, driver and library versions, and differs from a CPU run at rounding
level (other kernels, other summation orders).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from bongain.config import posttrain_size_problem
from bongain.preflight import check_job, posttrain_needs
from bongain.schemas import POSTTRAIN_LOG

logger = logging.getLogger("bongain.posttrain")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the recipe's config keys."""


class PosttrainSizeError(ValueError):
    """Too few training examples for the requested steps; the message names the config keys."""


def check_enough_examples(recipe: str, recipe_cfg: Mapping[str, Any], n_examples: int, source: str) -> None:
    """Raise :class:`PosttrainSizeError` when ``n_examples`` cannot feed the recipe's steps."""
    what = "pairs" if recipe_cfg["kind"] == "dpo" else "examples"
    problem = posttrain_size_problem(recipe, recipe_cfg, n_examples, f"training {what} in {source}")
    if problem:
        raise PosttrainSizeError(problem)


#: ``posttrain.dtype`` values: the dtype of the frozen base weights and activations while training
TRAIN_DTYPES = ("float32", "bfloat16")


def _load_trainable(path: str, tokenizer_only: bool = False, dtype: str = "float32") -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in TRAIN_DTYPES:
        raise ValueError(f"config key 'posttrain.dtype': one of {TRAIN_DTYPES}, got {dtype!r}")
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tokenizer_only:
        return None, tok
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model, tok


@contextlib.contextmanager
def labelled_positions_only() -> Iterator[None]:
    """While open, TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``, which both trainers put on
    the model) projects only the positions whose next-token label is not -100, on every device.

    TRL 1.16 takes that path (``compact``) only where Triton runs (CUDA, XPU) and otherwise scores every
    position, so that accelerators which compile per shape see one tile shape; a CPU compiles nothing. The
    per-token log-probabilities of the labelled positions are the same either way (rows of the same
    products; tested), and everything downstream of them (loss, DPO log-ratios, metrics) reads only those.
    """
    import trl.trainer.utils as trl_utils

    if not callable(getattr(trl_utils, "_use_triton", None)):  # pragma: no cover - another TRL
        raise RuntimeError(
            "trl.trainer.utils._use_triton is gone: this TRL's fused LM head differs from TRL 1.16's, which "
            "bongain pins (pyproject.toml); check labelled_positions_only against it"
        )
    saved = trl_utils._use_triton
    trl_utils._use_triton = lambda device: True  # only its 'compact' switch reads this name
    try:
        yield
    finally:
        trl_utils._use_triton = saved


def training_device(device: str) -> str:
    """The torch device of a training job: ``cuda`` for ``posttrain.device: gpu`` when the job sees a CUDA
    device (bongain.preflight refuses a GPU job without one unless BONGAIN_PREFLIGHT says otherwise),
    else ``cpu``."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"config key 'posttrain.device': {device!r} is not cpu or gpu")
    if device == "cpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def lora_config(lora: Mapping[str, Any]) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        bias="none",
        task_type="CAUSAL_LM",
    )


def _log_callback(wall: dict[int, float]) -> Any:
    """Records the wall time at the end of every step (``wall[step]``, seconds since the first step
    began) and stops training on a non-finite loss."""
    from transformers import TrainerCallback

    start = [time.monotonic()]

    class _Log(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            start[0] = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            wall[state.global_step] = time.monotonic() - start[0]

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            for key in ("loss", "grad_norm"):
                value = (logs or {}).get(key)
                if value is not None and not math.isfinite(float(value)):
                    raise TrainingDiverged(f"{key} {value} at step {state.global_step}")

    return _Log()


def train_adapter(
    *,
    start_path: str,
    data: pl.DataFrame,
    recipe: str,
    recipe_cfg: Mapping[str, Any],
    lora: Mapping[str, Any],
    threads: int,
    adapter_dir: str | Path,
    model: str,
    dtype: str = "float32",
    device: str = "cpu",
    all_positions: bool = False,
) -> pl.DataFrame:
    """Train the adapter of (``model``, ``recipe``) from the checkpoint at ``start_path`` on ``data``
    (POSTTRAIN_DATA rows) with base weights in ``dtype``; write it to ``adapter_dir`` atomically; return the
    training log.

    ``device`` is ``posttrain.device``: ``cpu``, or ``gpu`` (a GPU job: first the pre-flight check of the
    GPU it got, then training on CUDA; see :func:`training_device`). ``all_positions`` scores every
    position as TRL does on CPU (only to check :func:`labelled_positions_only` against).
    """
    import torch
    from datasets import Dataset
    from transformers import set_seed

    kind = recipe_cfg["kind"]
    check_enough_examples(recipe, recipe_cfg, data.height, "the training data")
    check_job(posttrain_needs(model, device, start_path, dtype))
    torch_device = training_device(device)
    logger.info("posttrain.device %s: training %s/%s on %s", device, model, recipe, torch_device)
    torch.set_num_threads(threads)
    seed = recipe_cfg["seed"]
    set_seed(seed, deterministic=True)
    net, tok = _load_trainable(start_path, dtype=dtype)
    adapter_dir = Path(adapter_dir)
    adapter_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{adapter_dir.name}.", dir=adapter_dir.parent))
    common = dict(
        output_dir=str(work / "trainer"),
        max_steps=recipe_cfg["steps"],
        per_device_train_batch_size=recipe_cfg["batch_size"],
        gradient_accumulation_steps=1,
        learning_rate=recipe_cfg["learning_rate"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=1,
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN (the filter hides it) for the guard
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        full_determinism=True,
        use_cpu=torch_device == "cpu",  # never a GPU the job was not meant to use
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        max_length=recipe_cfg["max_length"],
        activation_checkpointing=False,  # TRL turns it on by default; on CPU it only costs time
    )
    wall: dict[int, float] = {}
    callback = _log_callback(wall)
    try:
        if kind in ("sft", "rft"):
            from trl import SFTConfig, SFTTrainer

            dataset = Dataset.from_dict(
                {"prompt": data["prompt"].to_list(), "completion": data["completion"].to_list()}
            )
            trainer = SFTTrainer(
                model=net,
                args=SFTConfig(**common, completion_only_loss=True, packing=False, dataset_num_proc=None),
                train_dataset=dataset,
                processing_class=tok,
                peft_config=lora_config(lora),
                callbacks=[callback],
            )
        elif kind == "dpo":
            from trl import DPOConfig, DPOTrainer

            dataset = Dataset.from_dict(
                {
                    "prompt": data["prompt"].to_list(),
                    "chosen": data["completion"].to_list(),
                    "rejected": data["rejected"].to_list(),
                }
            )
            trainer = DPOTrainer(
                model=net,
                args=DPOConfig(**common, beta=recipe_cfg["beta"], dataset_num_proc=None),
                train_dataset=dataset,
                processing_class=tok,
                peft_config=lora_config(lora),
                callbacks=[callback],
            )
        else:
            raise ValueError(f"unknown recipe kind {kind!r}; known: sft, rft, dpo")
        try:
            with contextlib.nullcontext() if all_positions else labelled_positions_only():
                trainer.train()
        except TrainingDiverged as err:
            raise TrainingDiverged(
                f"recipe {recipe!r} on model {model!r} diverged: {err}; lower "
                f"posttrain.recipes.{recipe}.learning_rate (now {recipe_cfg['learning_rate']}) or change "
                f"posttrain.recipes.{recipe}.seed. Losses so far: {_losses(trainer.state.log_history)}"
            ) from None
        log = _log_frame(trainer.state.log_history, wall, model, recipe, recipe_cfg, data.height, threads)
        staged = work / "adapter"
        trainer.model.save_pretrained(staged)
        if adapter_dir.exists():
            shutil.rmtree(adapter_dir)
        os.replace(staged, adapter_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return log


def _losses(history: list[dict[str, Any]]) -> list[float]:
    return [float(h["loss"]) for h in history if "loss" in h]


def _log_frame(
    history: list[dict[str, Any]],
    wall: Mapping[int, float],
    model: str,
    recipe: str,
    recipe_cfg: Mapping[str, Any],
    n_examples: int,
    threads: int,
) -> pl.DataFrame:
    rows = [h for h in history if "loss" in h and "step" in h]
    return pl.DataFrame(
        {
            "model": [model] * len(rows),
            "recipe": [recipe] * len(rows),
            "kind": [recipe_cfg["kind"]] * len(rows),
            "step": [int(h["step"]) for h in rows],
            "loss": [float(h["loss"]) for h in rows],
            "learning_rate": [float(h.get("learning_rate", math.nan)) for h in rows],
            "grad_norm": [float(h.get("grad_norm", math.nan)) for h in rows],
            "examples_seen": [int(h["step"]) * recipe_cfg["batch_size"] for h in rows],
            "n_examples": [n_examples] * len(rows),
            "wall_s": [float(wall.get(int(h["step"]), math.nan)) for h in rows],
            "seed": [recipe_cfg["seed"]] * len(rows),
            "threads": [threads] * len(rows),
        },
        schema=POSTTRAIN_LOG.polars_schema,
    )
