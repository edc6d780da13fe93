"""Which scorer gives each sample its reward: one registry over every reward-model ``kind``.

The config's ``reward_models`` block maps a name to a scorer block (``docs/backends.md``); every cell is
scored by each, into ``<split>/scores/<name>.parquet``. A block's ``kind``:

* ``offline_logistic`` (the default) is trained per cell by rule ``train_verifier`` on the labelled
  ``verifier_train`` split (:mod:`bongain.scoring.offline`); the score job reads the trained table;
* ``orm`` is an outcome reward model trained once per study (rules ``orm_data``, ``orm_train``,
  ``orm_merge``; :mod:`bongain.orm`); the score job loads its merged checkpoint
  (``orm/<name>/manifest.json``) as an ``hf_sequence_classification`` model on the CPU in float32;
* ``hf_sequence_classification`` and ``hf_prm`` run a pretrained reward model with HF transformers
  (:mod:`bongain.scoring.hf_rm`); ``vllm_classify`` and ``vllm_prm`` serve it with vLLM
  (:mod:`bongain.scoring.vllm_rm`); these read the split's tasks table for the question texts.

Each kind says what its score job needs, how many GPUs it asks for and how it is built; the rule file
``score.smk`` and the script ``score.py`` only look things up here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from bongain.constants import SCORE_STATUSES
from bongain.scoring.offline import OfflineLogisticVerifier, Verifier

log = logging.getLogger("bongain.score")


@dataclass(frozen=True)
class ScorerKind:
    """A reward-model ``kind``: what its score job reads, its GPUs, and how to build it."""

    trained: bool  # True: the cell's trained verifier table; False: the split's question texts
    gpus: Callable[[Mapping[str, Any]], int]
    build: Callable[..., Verifier]
    study_trained: bool = False  # True: trained once per study (orm/<name>/), no `model` in the config


def _offline(cfg: Mapping[str, Any], *, verifier_table: pl.DataFrame | None, **_: Any) -> Verifier:
    if verifier_table is None:
        raise ValueError("reward-model kind 'offline_logistic' needs the trained verifier table")
    return OfflineLogisticVerifier.from_table(verifier_table)


def _hf(class_name: str) -> Callable[..., Verifier]:
    def build(
        cfg: Mapping[str, Any], *, questions: Mapping[str, str], snapshot: str | None = None, **_: Any
    ) -> Verifier:
        from bongain.scoring import hf_rm

        return getattr(hf_rm, class_name).load(cfg, questions, snapshot)

    return build


def orm_scorer_block(cfg: Mapping[str, Any], checkpoint: str) -> dict[str, Any]:
    """The ``hf_sequence_classification`` block that scores with an ``orm`` block's merged
    ``checkpoint``: on the CPU, in float32 (the dtype it was trained and merged in), its ``batch_size``."""
    from bongain.config import complete_block

    return complete_block(
        "reward_models.*",
        {
            "kind": "hf_sequence_classification",
            "model": checkpoint,
            "device": "cpu",
            "dtype": "float32",
            "batch_size": cfg["batch_size"],
            "max_model_len": cfg["max_model_len"],
        },
    )


def _orm(
    cfg: Mapping[str, Any], *, questions: Mapping[str, str], snapshot: str | None = None, **_: Any
) -> Verifier:
    from bongain.scoring import hf_rm

    if snapshot is None:
        raise ValueError("reward-model kind 'orm' needs its merged checkpoint (orm/<name>/manifest.json)")
    scorer = hf_rm.HFSequenceClassifierRM.load(orm_scorer_block(cfg, snapshot), questions, None)
    scorer.name = "orm"  # not the checkpoint's path: the scores table does not depend on where results live
    return scorer


def _vllm(class_name: str) -> Callable[..., Verifier]:
    def build(
        cfg: Mapping[str, Any],
        *,
        questions: Mapping[str, str],
        engine: Any | None = None,
        snapshot: str | None = None,
        **_: Any,
    ) -> Verifier:
        from bongain.scoring import vllm_rm

        llm = engine if engine is not None else vllm_rm.make_pooling_engine(cfg, snapshot)
        return getattr(vllm_rm, class_name).from_config(cfg, questions, llm)

    return build


def _hf_gpus(cfg: Mapping[str, Any]) -> int:
    return 0 if cfg["device"] == "cpu" else 1


def _vllm_gpus(cfg: Mapping[str, Any]) -> int:
    return int(cfg["tensor_parallel_size"])


SCORERS: dict[str, ScorerKind] = {
    "offline_logistic": ScorerKind(trained=True, gpus=lambda cfg: 0, build=_offline),
    "orm": ScorerKind(False, lambda cfg: 0, _orm, study_trained=True),
    "hf_sequence_classification": ScorerKind(False, _hf_gpus, _hf("HFSequenceClassifierRM")),
    "hf_prm": ScorerKind(False, _hf_gpus, _hf("HFProcessRM")),
    "vllm_classify": ScorerKind(False, _vllm_gpus, _vllm("VllmClassifyRM")),
    "vllm_prm": ScorerKind(False, _vllm_gpus, _vllm("VllmProcessRM")),
}


def scorer_kind(cfg: Mapping[str, Any], key: str = "reward_models.<name>") -> ScorerKind:
    """The registry entry of a (complete) scorer block; an unknown kind names the key (``key``: the
    block's dotted config key, e.g. ``reward_models.verifier``)."""
    kind = cfg["kind"]
    if kind not in SCORERS:
        raise ValueError(f"config key '{key}.kind': unknown kind {kind!r}; known: {sorted(SCORERS)}")
    if not SCORERS[kind].trained and not SCORERS[kind].study_trained and not cfg["model"]:
        raise ValueError(f"config key '{key}.model': required for kind {kind!r}")
    return SCORERS[kind]


def make_scorer(
    cfg: Mapping[str, Any],
    *,
    verifier_table: pl.DataFrame | None = None,
    questions: Mapping[str, str] | None = None,
    engine: Any | None = None,
    snapshot: str | None = None,
) -> Verifier:
    """The scorer named by a complete scorer block (an entry of ``reward_models``).

    ``offline_logistic`` needs the trained ``verifier_table``; every pretrained kind needs ``questions``
    (prompt_id -> question text); ``engine`` lets a vLLM kind reuse an existing ``LLM``; ``snapshot`` is
    the folder a hub RM was downloaded to (its download record), loaded instead of repo and revision.
    """
    entry = scorer_kind(cfg)
    if not entry.trained and questions is None:
        raise ValueError(f"reward-model kind {cfg['kind']!r} needs the question texts (tasks table)")
    return entry.build(
        cfg, verifier_table=verifier_table, questions=questions, engine=engine, snapshot=snapshot
    )


def is_study_trained(cfg: Mapping[str, Any], key: str = "reward_models.<name>") -> bool:
    """Whether the scorer is trained once per study (kind ``orm``: rules orm_data, orm_train, orm_merge)."""
    return scorer_kind(cfg, key).study_trained


def is_trained(cfg: Mapping[str, Any], key: str = "reward_models.<name>") -> bool:
    """Whether the scorer is trained per cell (rule ``train_verifier`` on the ``verifier_train`` split)."""
    return scorer_kind(cfg, key).trained


def score_gpus(cfg: Mapping[str, Any]) -> int:
    """GPUs a score job asks for: vLLM kinds their tensor-parallel size, HF kinds one unless on CPU."""
    return scorer_kind(cfg).gpus(cfg)


def score_inputs(
    reward_models: Mapping[str, Mapping[str, Any]], results: str
) -> Callable[[Any], dict[str, str]]:
    """Input function of the ``score`` rule (wildcards model, method, task, split, rm): samples and grades,
    plus the reward model's trained verifier table (``verifier/<rm>.parquet``) or the split's tasks table
    (pretrained reward models need the question texts); an ``orm`` also its merged checkpoint's manifest
    (``orm/<rm>/manifest.json``)."""
    trained = {name: is_trained(cfg, f"reward_models.{name}") for name, cfg in reward_models.items()}
    per_study = {name: scorer_kind(cfg).study_trained for name, cfg in reward_models.items()}

    def inputs(wildcards: Any) -> dict[str, str]:
        cell = f"{results}/cells/{wildcards.model}/{wildcards.method}/{wildcards.task}"
        files = {
            "samples": f"{cell}/{wildcards.split}/samples.parquet",
            "grades": f"{cell}/{wildcards.split}/grades.parquet",
        }
        if trained[wildcards.rm]:
            files["verifier"] = f"{cell}/verifier/{wildcards.rm}.parquet"
        else:
            files["tasks"] = f"{results}/tasks/{wildcards.task}/{wildcards.split}.parquet"
        if per_study[wildcards.rm]:
            files["orm"] = f"{results}/orm/{wildcards.rm}/manifest.json"
        return files

    return inputs


def score_split(
    cfg: Mapping[str, Any],
    samples: pl.DataFrame,
    grades: pl.DataFrame,
    *,
    verifier_table: pl.DataFrame | None = None,
    tasks: pl.DataFrame | None = None,
    rm: str = "verifier",
    snapshot: str | None = None,
) -> pl.DataFrame:
    """The scores table of one split: a reward per sample from the scorer block ``cfg`` of reward model
    ``rm`` (its name under ``reward_models``, the ``rm`` column); row order kept. ``snapshot``: the
    downloaded folder of a hub RM (see :func:`make_scorer`). A reward model on GPUs first checks that the
    job got them (:func:`bongain.preflight.check_job`)."""
    from bongain.hub import is_local_folder
    from bongain.preflight import check_job, score_needs

    local = snapshot or (cfg["model"] if cfg["model"] and is_local_folder(cfg["model"]) else None)
    check_job(score_needs(cfg, score_gpus(cfg), local, key=f"reward_models.{rm}"))
    questions = None
    if tasks is not None:
        questions = dict(zip(tasks["prompt_id"].to_list(), tasks["question"].to_list(), strict=True))
    scorer = make_scorer(cfg, verifier_table=verifier_table, questions=questions, snapshot=snapshot)
    too_long = too_long_mask(scorer, samples)
    rewards = np.full(samples.height, np.nan)
    if not too_long.all():
        keep = pl.Series(~too_long)
        rewards[~too_long] = scorer.score(samples.filter(keep), grades)
    if too_long.any():
        rewards[too_long] = rewards[~too_long].min() - 1.0 if not too_long.all() else 0.0
        log.warning(
            "%d of %d samples are longer than the reward model's %d tokens: not scored (score_status "
            "too_long), ranked below every scored sample",
            int(too_long.sum()),
            samples.height,
            scorer.max_tokens,
        )
    return samples.select("model", "method", "task").with_columns(
        rm=pl.lit(rm, dtype=pl.String),
        split=samples["split"],
        prompt_id=samples["prompt_id"],
        sample_idx=samples["sample_idx"],
        reward=pl.Series(rewards, dtype=pl.Float64),
        verifier=pl.lit(scorer.name),
        score_status=pl.Series(np.where(too_long, SCORE_STATUSES[1], SCORE_STATUSES[0]), dtype=pl.String),
    )


def too_long_mask(scorer: Verifier, samples: pl.DataFrame) -> np.ndarray:
    """Which samples' reward-model inputs exceed the scorer's token limit (``max_tokens``; a scorer
    without one, like the offline verifier, reads every sample)."""
    limit = getattr(scorer, "max_tokens", None)
    if not limit:
        return np.zeros(samples.height, dtype=bool)
    return np.asarray(scorer.input_lengths(samples), dtype=np.int64) > int(limit)
