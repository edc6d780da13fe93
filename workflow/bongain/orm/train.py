"""Train the study's outcome reward model (kind ``orm``) and merge it into a plain checkpoint.

The backbone (a prepared checkpoint, ``reward_models.<name>.backbone``) is loaded as
``AutoModelForSequenceClassification`` with one output; LoRA adapters on every linear layer plus the
score head (PEFT ``SEQ_CLS`` keeps the head trainable and saves it with the adapter) are trained with
TRL's ``RewardTrainer`` on (correct, incorrect) pairs of the same question (the pairwise loss
``-log sigmoid(r_chosen - r_rejected)``). The model reads a conversation rendered by a fixed template
(:data:`ORM_CHAT_TEMPLATE`: ``Q: <question>`` / ``A: <completion>`` / ``Correct?``), which is saved with
the tokenizer so that the ``hf_sequence_classification`` scorer renders exactly what training saw.

Conventions of the post-training code (:mod:`bongain.posttrain.train`): seeded (LoRA and head
initialisation, pair order), a fixed thread count, float32 on the CPU, ``full_determinism``; a step with a
non-finite loss or gradient norm stops training with :class:`~bongain.posttrain.train.TrainingDiverged`
naming the config keys; the adapter folder is written under a temporary name and renamed, so a failed or
killed job never leaves a half-written adapter (and never touches the previous one before success).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from bongain.orm.data import OrmDataError, check_pairs, preference_pairs
from bongain.posttrain.merge import save_checkpoint_atomic
from bongain.posttrain.train import TrainingDiverged, _log_callback, _losses
from bongain.schemas import ORM_LOG

logger = logging.getLogger("bongain.orm")

#: How the reward model reads a (question, completion): the bare question, the completion, a prompt for
#: the judgement. Every backbone gets this template (saved with the merged checkpoint's tokenizer).
ORM_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}Q: {{ m['content'] }}{{ '\\n' }}"
    "{% elif m['role'] == 'assistant' %}A: {{ m['content'] }}{{ '\\n' }}"
    "{% endif %}{% endfor %}Correct?"
)


def load_tokenizer(path: str | Path, trust_remote_code: bool = False) -> Any:
    """The backbone's tokenizer with :data:`ORM_CHAT_TEMPLATE` and a pad token (its eos when it has none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    tok.chat_template = ORM_CHAT_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_classifier(path: str | Path, tok: Any, trust_remote_code: bool = False) -> Any:
    """The backbone as a one-output sequence classifier in float32 (the head initialised from the global
    torch seed: call after seeding)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    cfg = AutoConfig.from_pretrained(str(path), num_labels=1, trust_remote_code=trust_remote_code)
    cfg.pad_token_id = tok.pad_token_id
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), config=cfg, dtype=torch.float32, trust_remote_code=trust_remote_code
    )
    model.config.get_text_config().pad_token_id = tok.pad_token_id
    return model


def encode_rows(tok: Any, questions: list[str], completions: list[str]) -> list[list[int]]:
    """Token ids of each (question, completion) exactly as the ``hf_sequence_classification`` scorer
    builds them (:func:`bongain.scoring.rm_inputs.encode_conversations`)."""
    from bongain.scoring.rm_inputs import encode_conversations, rm_conversation

    convs = [rm_conversation(q, c) for q, c in zip(questions, completions, strict=True)]
    return encode_conversations(tok, convs)


def lora_config(opts: Mapping[str, Any]) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=opts["lora_r"],
        lora_alpha=opts["lora_alpha"],
        lora_dropout=0.0,
        target_modules="all-linear",
        bias="none",
        task_type="SEQ_CLS",
    )


def train_orm(
    *,
    backbone_path: str | Path,
    data: pl.DataFrame,
    opts: Mapping[str, Any],
    rm: str,
    adapter_dir: str | Path,
    trust_remote_code: bool = False,
) -> pl.DataFrame:
    """Train reward model ``rm`` (complete block ``opts`` of kind ``orm``) from the checkpoint at
    ``backbone_path`` on ``data`` (ORM_DATA rows); write its adapter to ``adapter_dir`` atomically; return
    the training log (ORM_LOG). Raises :class:`~bongain.orm.data.OrmDataError` (too few pairs, rows longer
    than ``max_length``) or :class:`~bongain.posttrain.train.TrainingDiverged`, naming the keys."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    key = f"reward_models.{rm}"
    steps, batch, seed = opts["steps"], opts["train_batch_size"], opts["seed"]
    n_pairs = steps * batch
    check_pairs(data, n_pairs, key)
    torch.set_num_threads(opts["threads"])
    set_seed(seed, deterministic=True)
    tok = load_tokenizer(backbone_path, trust_remote_code)
    ids = encode_rows(tok, data["question"].to_list(), data["completion"].to_list())
    longest = max(len(x) for x in ids)
    if longest > opts["max_length"]:
        raise OrmDataError(
            f"config key '{key}.max_length': a training row has {longest} tokens, more than "
            f"{opts['max_length']}; raise it"
        )
    pairs = preference_pairs(data["question"].to_list(), data["correct"].to_list(), n_pairs, seed)
    dataset = Dataset.from_dict(
        {"chosen_ids": [ids[c] for c, _ in pairs], "rejected_ids": [ids[r] for _, r in pairs]}
    )
    model = load_classifier(backbone_path, tok, trust_remote_code)
    adapter_dir = Path(adapter_dir)
    adapter_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{adapter_dir.name}.", dir=adapter_dir.parent))
    args = RewardConfig(
        output_dir=str(work / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        learning_rate=opts["learning_rate"],
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        logging_steps=1,
        logging_nan_inf_filter=False,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        full_determinism=True,
        use_cpu=True,
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        max_length=None,  # checked above: TRL would drop longer pairs silently
        center_rewards_coefficient=None,
        disable_dropout=True,
        dataset_num_proc=None,
        activation_checkpointing=False,
    )
    wall: dict[int, float] = {}
    try:
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tok,
            peft_config=lora_config(opts),
            callbacks=[_log_callback(wall)],
        )
        try:
            trainer.train()
        except TrainingDiverged as err:
            raise TrainingDiverged(
                f"reward model {rm!r} diverged: {err}; lower {key}.learning_rate (now "
                f"{opts['learning_rate']}) or change {key}.seed. Losses so far: "
                f"{_losses(trainer.state.log_history)}"
            ) from None
        log = _log_frame(trainer.state.log_history, wall, rm, opts, data)
        staged = work / "adapter"
        trainer.model.save_pretrained(staged)
        tok.save_pretrained(staged)
        if adapter_dir.exists():
            shutil.rmtree(adapter_dir)
        os.replace(staged, adapter_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return log


def _log_frame(
    history: list[dict[str, Any]],
    wall: Mapping[int, float],
    rm: str,
    opts: Mapping[str, Any],
    data: pl.DataFrame,
) -> pl.DataFrame:
    rows = [h for h in history if "loss" in h and "step" in h]

    def col(name: str) -> list[float]:
        return [float(h.get(name, math.nan)) for h in rows]

    n = len(rows)
    return pl.DataFrame(
        {
            "rm": [rm] * n,
            "step": [int(h["step"]) for h in rows],
            "loss": col("loss"),
            "accuracy": col("accuracy"),
            "margin": col("margin"),
            "learning_rate": col("learning_rate"),
            "grad_norm": col("grad_norm"),
            "pairs_seen": [int(h["step"]) * opts["train_batch_size"] for h in rows],
            "n_rows": [data.height] * n,
            "n_questions": [data["question"].n_unique()] * n,
            "wall_s": [float(wall.get(int(h["step"]), math.nan)) for h in rows],
            "seed": [opts["seed"]] * n,
            "threads": [opts["threads"]] * n,
        },
        schema=ORM_LOG.polars_schema,
    )


def merge_orm(backbone: Mapping[str, Any], adapter_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Merge the adapter (and trained head) at ``adapter_dir`` into the backbone of manifest ``backbone``
    (``path``, ``trust_remote_code``): a plain float32 sequence-classification checkpoint at
    ``out_dir/hf`` with the adapter's tokenizer (:data:`ORM_CHAT_TEMPLATE`), and ``out_dir/manifest.json``;
    both written atomically. Returns the manifest."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    out_dir = Path(out_dir)
    trust = bool(backbone.get("trust_remote_code", False))
    tok = AutoTokenizer.from_pretrained(str(adapter_dir), trust_remote_code=trust)
    torch.manual_seed(0)  # the base head is replaced by the trained one; seeded anyway
    base = load_classifier(backbone["path"], tok, trust)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config.pad_token_id = tok.pad_token_id
    dest = save_checkpoint_atomic(merged, tok, out_dir)
    manifest = {
        "path": str(dest.resolve()),
        "dtype": "float32",
        "trust_remote_code": trust,
        "start": str(backbone["path"]),
        "adapter": str(Path(adapter_dir).resolve()),
    }
    staged = out_dir / ".manifest.json.tmp"
    staged.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(staged, out_dir / "manifest.json")
    return manifest
