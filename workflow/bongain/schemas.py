"""The written-down schema of every Parquet artifact.

One table per stage per cell. Each schema is an ordered mapping column -> (polars dtype, description).
Writers call :func:`bongain.io.write_parquet_atomic` with the schema name, which checks the frame against
it before anything touches disk; ``docs/artifacts.md`` is generated from this module
(``bongain schemas --markdown``) and a test keeps the two in sync.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

Column = tuple[pl.DataType | type[pl.DataType], str]

CELL_COLUMNS: dict[str, Column] = {
    "model": (pl.String, "model slug from the config"),
    "method": (pl.String, "method slug (inference configuration or post-training variant)"),
    "task": (pl.String, "task slug"),
}


@dataclass(frozen=True)
class TableSchema:
    name: str
    path: str
    description: str
    columns: dict[str, Column]

    @property
    def polars_schema(self) -> dict[str, pl.DataType | type[pl.DataType]]:
        return {name: dtype for name, (dtype, _) in self.columns.items()}


TASKS = TableSchema(
    name="tasks",
    path="results/tasks/{task}/{split}.parquet",
    description="One row per prompt of one split of one task.",
    columns={
        "task": (pl.String, "task slug"),
        "split": (pl.String, "verifier_train | validation | test"),
        "prompt_id": (
            pl.String,
            "stable id, unique within the task: '<task>-<i:05d>' (generated), '<task>-<id>' or "
            "'<task>-<file stem>-<line>' (JSONL)",
        ),
        "question": (pl.String, "the question text, without any prompt formatting"),
        "gold": (pl.String, "the reference answer as a string"),
        "answer_type": (pl.String, "number | choice | math: selects extraction and equivalence"),
    },
)

SAMPLES = TableSchema(
    name="samples",
    path="results/cells/{model}/{method}/{task}/{split}/samples.parquet",
    description="N sampled completions per prompt (rows sorted by prompt_id order of the task file, then "
    "sample_idx).",
    columns={
        **CELL_COLUMNS,
        "split": (pl.String, "which split the prompts come from"),
        "prompt_id": (pl.String, "id of the prompt in the task table"),
        "sample_idx": (pl.Int32, "0..N-1, the sample's position in generation order"),
        "prompt": (pl.String, "the fully formatted prompt text the model saw"),
        "completion": (pl.String, "generated text, stop string removed"),
        "n_tokens": (pl.Int32, "generated tokens, stop/EOS token included"),
        "finish_reason": (pl.String, "stop (stop string) | eos | length (max_new_tokens reached)"),
        "sum_logprob": (
            pl.Float64,
            "sum of raw (T=1, full-vocabulary) log-probabilities of the generated tokens",
        ),
        "mean_logprob": (pl.Float64, "sum_logprob / n_tokens"),
        "mean_entropy": (pl.Float64, "mean over generated tokens of the raw next-token entropy (nats)"),
        "seed": (pl.Int64, "seed of this sample's random stream"),
    },
)

GRADES = TableSchema(
    name="grades",
    path="results/cells/{model}/{method}/{task}/{split}/grades.parquet",
    description="The extracted answer of every sample and whether it matches the gold answer.",
    columns={
        **CELL_COLUMNS,
        "split": (pl.String, "split"),
        "prompt_id": (pl.String, "prompt id"),
        "sample_idx": (pl.Int32, "sample index"),
        "answer": (pl.String, "normalised extracted answer; null when none could be extracted"),
        "status": (pl.String, "ok | no_answer | timeout | error"),
        "correct": (pl.Boolean, "answer is equivalent to gold (false when status != ok)"),
    },
)

VERIFIER = TableSchema(
    name="verifier",
    path="results/cells/{model}/{method}/{task}/verifier.parquet",
    description="The fitted offline verifier: one row per input signal (standardisation + coefficient) "
    "and one row named '(intercept)'. Trained on the verifier_train split only.",
    columns={
        **CELL_COLUMNS,
        "signal": (pl.String, "input signal name, or '(intercept)'"),
        "mean": (pl.Float64, "training mean used to standardise the signal (0 for the intercept)"),
        "scale": (pl.Float64, "training standard deviation (1 for the intercept)"),
        "coef": (pl.Float64, "logistic-regression coefficient on the standardised signal"),
        "n_train": (pl.Int64, "labelled samples it was trained on"),
        "train_positive_rate": (pl.Float64, "fraction of correct samples in the training data"),
    },
)

SCORES = TableSchema(
    name="scores",
    path="results/cells/{model}/{method}/{task}/{split}/scores.parquet",
    description="A reward per sample from the cell's verifier / reward model.",
    columns={
        **CELL_COLUMNS,
        "split": (pl.String, "split"),
        "prompt_id": (pl.String, "prompt id"),
        "sample_idx": (pl.Int32, "sample index"),
        "reward": (pl.Float64, "higher is better; only the order within a prompt matters"),
        "verifier": (pl.String, "which verifier produced it"),
    },
)

FEATURES = TableSchema(
    name="features",
    path="results/cells/{model}/{method}/{task}/features.parquet",
    description="One row: the cell's output statistics from the validation split, computed without rewards. "
    "Definitions in docs/features.md.",
    columns={
        **CELL_COLUMNS,
        "n_prompts": (pl.Int64, "validation prompts"),
        "n_samples": (pl.Int64, "samples per prompt (N)"),
        "agreement_spread": (pl.Float64, "std over prompts of the modal-answer share"),
        "agreement_mean": (pl.Float64, "mean over prompts of the modal-answer share"),
        "first_correct_pos": (pl.Float64, "mean over prompts of E[first correct position]/(N+1)"),
        "length_var": (pl.Float64, "mean over prompts of within-prompt variance of n_tokens"),
        "length_mean": (pl.Float64, "mean n_tokens"),
        "entropy_mean": (pl.Float64, "mean over samples of mean token entropy"),
        "logprob_mean": (pl.Float64, "mean over samples of mean token logprob (confidence)"),
        "pass1": (pl.Float64, "mean over prompts of c_i/N"),
        "pass1_spread": (pl.Float64, "std over prompts of c_i/N"),
        "coverage": (pl.Float64, "fraction of prompts with at least one correct sample (pass@N)"),
        "answer_diversity": (pl.Float64, "mean over prompts of distinct answers / N"),
        "answer_entropy": (pl.Float64, "mean over prompts of the entropy (nats) of the answer distribution"),
        "maj_at_n": (pl.Float64, "majority-vote accuracy at N, ties broken uniformly"),
        "truncation_rate": (pl.Float64, "fraction of samples with finish_reason = length"),
        "ungradable_rate": (pl.Float64, "fraction of samples with no extractable answer"),
    },
)

GAINS = TableSchema(
    name="gains",
    path="results/cells/{model}/{method}/{task}/gains.parquet",
    description="The real best-of-k curve of the cell on the test split: one row per k = 1..N. The "
    "scalar target of the predictor is `gain` (the same in every row) = bon_at_k(N) - pass_at_k(1).",
    columns={
        **CELL_COLUMNS,
        "n_prompts": (pl.Int64, "test prompts"),
        "n_samples": (pl.Int64, "samples per prompt (N)"),
        "k": (pl.Int64, "subset size"),
        "pass_at_k": (pl.Float64, "unbiased pass@k (Chen et al. 2021)"),
        "bon_at_k": (pl.Float64, "best-of-k accuracy under the verifier, exact average over all k-subsets"),
        "maj_at_k": (pl.Float64, "majority-vote accuracy over k-subsets, ties broken uniformly"),
        "maj_at_k_se": (pl.Float64, "Monte-Carlo standard error of maj_at_k (0 where computed exactly)"),
        "gain": (pl.Float64, "bon_at_k(N) - pass_at_k(1)"),
    },
)

FIT_PREDICTIONS = TableSchema(
    name="fit_predictions",
    path="results/fit/predictions.parquet",
    description="Leave-one-cell-out predictions of each cell's gain.",
    columns={
        **CELL_COLUMNS,
        "gain": (pl.Float64, "the real gain (from gains.parquet)"),
        "pred_ridge": (pl.Float64, "ridge on all features, fitted without this cell"),
        "pred_baseline": (pl.Float64, "ridge on pass1 alone, fitted without this cell"),
    },
)

FIT_METRICS = TableSchema(
    name="fit_metrics",
    path="results/fit/metrics.parquet",
    description="Rank and error metrics of the held-out predictions, per predictor.",
    columns={
        "predictor": (pl.String, "ridge | baseline"),
        "n_cells": (pl.Int64, "cells evaluated"),
        "spearman": (pl.Float64, "Spearman rank correlation of prediction vs real gain"),
        "kendall": (pl.Float64, "Kendall tau-b"),
        "mae": (pl.Float64, "mean absolute error"),
    },
)

FIT_COEFFICIENTS = TableSchema(
    name="fit_coefficients",
    path="results/fit/coefficients.parquet",
    description="Coefficients of the predictors refitted on all cells (standardised features).",
    columns={
        "predictor": (pl.String, "ridge | baseline"),
        "feature": (pl.String, "feature name or '(intercept)'"),
        "coef": (pl.Float64, "coefficient on the standardised feature (gain units per SD)"),
        "alpha": (pl.Float64, "ridge penalty chosen by inner leave-one-out CV"),
    },
)

ALL: dict[str, TableSchema] = {
    s.name: s
    for s in (
        TASKS,
        SAMPLES,
        GRADES,
        VERIFIER,
        SCORES,
        FEATURES,
        GAINS,
        FIT_PREDICTIONS,
        FIT_METRICS,
        FIT_COEFFICIENTS,
    )
}


def markdown() -> str:
    """Render every schema as Markdown (the text of docs/artifacts.md)."""
    out = [
        "# Artifacts",
        "",
        "Every stage writes one Parquet file per cell (or one per task split / one for the fit). ",
        "Generated from `workflow/bongain/schemas.py` by `bongain schemas --markdown`; do not edit by hand.",
        "",
    ]
    for s in ALL.values():
        out += [f"## {s.name}", "", f"`{s.path}`", "", s.description, "", "| column | type | meaning |"]
        out.append("|---|---|---|")
        for col, (dtype, desc) in s.columns.items():
            out.append(f"| `{col}` | {dtype} | {desc} |")
        out.append("")
    return "\n".join(out)
