"""The written-down schema of every Parquet artifact.

One table per stage per cell. Each schema is an ordered mapping column -> (polars dtype, description).
Writers call :func:`bongain.io.write_parquet_atomic` with the schema name, which checks the frame against
it before anything touches disk; ``docs/artifacts.md`` is generated from this module
(``bongain schemas --markdown``) and a test keeps the two in sync.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from bongain.constants import CELL_KEYS

Column = tuple[pl.DataType | type[pl.DataType], str]

#: The per-cell statistics of the features table (and of its *_lo / *_hi bootstrap CI columns), in order.
FEATURE_STATISTICS: tuple[str, ...] = (
    "agreement_spread",
    "agreement_mean",
    "first_correct_pos",
    "length_var",
    "length_mean",
    "entropy_mean",
    "logprob_mean",
    "pass1",
    "pass1_spread",
    "coverage",
    "answer_diversity",
    "answer_entropy",
    "maj_at_n",
    "truncation_rate",
    "ungradable_rate",
)

_CELL_DESCRIPTIONS = {
    "model": "model slug from the config",
    "method": "method slug (inference configuration or post-training variant)",
    "task": "task slug",
}
CELL_COLUMNS: dict[str, Column] = {key: (pl.String, _CELL_DESCRIPTIONS[key]) for key in CELL_KEYS}


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
        "split": (pl.String, "verifier_train | validation | test | posttrain"),
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
        **{
            f"{feat}_{end}": (pl.Float64, f"{side} end of the bootstrap CI over prompts of {feat}")
            for feat in FEATURE_STATISTICS
            for end, side in (("lo", "lower"), ("hi", "upper"))
        },
        "n_boot": (pl.Int64, "resamples of the prompts behind the *_lo / *_hi percentile intervals"),
        "ci_level": (pl.Float64, "coverage level of the *_lo / *_hi intervals (e.g. 0.95)"),
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
        "wmaj_at_k": (
            pl.Float64,
            "reward-weighted majority vote over k-subsets (class score = sum of softmax-of-reward weights)",
        ),
        "wmaj_at_k_se": (pl.Float64, "Monte-Carlo standard error of wmaj_at_k (0 where computed exactly)"),
        **{
            f"{stat}_{end}": (pl.Float64, f"{side} end of the bootstrap CI over prompts of {stat}")
            for stat in ("pass_at_k", "bon_at_k", "maj_at_k", "wmaj_at_k", "gain")
            for end, side in (("lo", "lower"), ("hi", "upper"))
        },
        "n_boot": (pl.Int64, "resamples of the prompts behind the *_lo / *_hi percentile intervals"),
        "ci_level": (pl.Float64, "coverage level of the *_lo / *_hi intervals (e.g. 0.95)"),
    },
)

FIT_PREDICTIONS = TableSchema(
    name="fit_predictions",
    path="results/fit/predictions.parquet",
    description="Leave-one-cell-out predictions of each cell's gain.",
    columns={
        **CELL_COLUMNS,
        "gain": (pl.Float64, "the real gain (from gains.parquet)"),
        "pred_ridge": (
            pl.Float64,
            "ridge on fit.features (all features when unset), fitted without this cell",
        ),
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

FIT_COMPARISON = TableSchema(
    name="fit_comparison",
    path="results/fit/comparison.parquet",
    description="One row per (evaluation scheme, predictor): held-out rank/error metrics with percentile "
    "bootstrap CIs (cells resampled with replacement, seeded; one index matrix shared by all rows). "
    "Schemes that are not applicable (e.g. leave-one-model-out with one model) have no rows. Definitions "
    "in docs/statistics.md.",
    columns={
        "scheme": (
            pl.String,
            "leave_one_cell_out | leave_one_task_out | leave_one_method_out | leave_one_model_out",
        ),
        "predictor": (
            pl.String,
            "baseline (pass1) | ridge (fit.features) | all (every feature) | core (strict core) | "
            "core_entropy (core + entropy_mean)",
        ),
        "features": (pl.String, "comma-separated feature columns of the predictor"),
        "n_cells": (pl.Int64, "cells evaluated"),
        "n_folds": (pl.Int64, "held-out groups (outer folds)"),
        "spearman": (pl.Float64, "Spearman rho of held-out prediction vs real gain (NaN: constant)"),
        "spearman_lo": (pl.Float64, "lower percentile-bootstrap CI bound of spearman"),
        "spearman_hi": (pl.Float64, "upper percentile-bootstrap CI bound of spearman"),
        "kendall": (pl.Float64, "Kendall tau-b"),
        "kendall_lo": (pl.Float64, "lower CI bound of kendall"),
        "kendall_hi": (pl.Float64, "upper CI bound of kendall"),
        "mae": (pl.Float64, "mean absolute error"),
        "mae_lo": (pl.Float64, "lower CI bound of mae"),
        "mae_hi": (pl.Float64, "upper CI bound of mae"),
        "alpha_median": (pl.Float64, "median over outer folds of the ridge penalty picked by inner LOO CV"),
        "n_boot": (pl.Int64, "bootstrap resamples"),
        "ci_level": (pl.Float64, "confidence level of the CIs"),
    },
)

FIT_HELDOUT = TableSchema(
    name="fit_heldout",
    path="results/fit/heldout.parquet",
    description="One row per (evaluation scheme, predictor, cell): the cell's out-of-fold prediction "
    "(the rows behind fit_comparison).",
    columns={
        "scheme": (pl.String, "evaluation scheme"),
        "predictor": (pl.String, "predictor name"),
        **CELL_COLUMNS,
        "fold": (pl.String, "label of the held-out group that contained the cell"),
        "gain": (pl.Float64, "the real gain"),
        "pred": (pl.Float64, "prediction by the ridge fitted without the cell's group"),
        "alpha": (pl.Float64, "penalty chosen by the inner LOO CV of that fit (NaN: no usable column)"),
    },
)

FIT_CURVE = TableSchema(
    name="fit_curve",
    path="results/fit/curve.parquet",
    description="One row per (cell, k): the predicted gain curve gain@k = bon_at_k(k) - pass_at_k(1) with "
    "a jackknife+ prediction interval. Evaluated cells: leave-one-cell-out point prediction and an "
    "interval built from the other cells only (leave-two-out); screened cells: fit on all evaluated cells "
    "and a jackknife+ interval from the LOCO fits.",
    columns={
        **CELL_COLUMNS,
        "status": (pl.String, "evaluated | screened"),
        "k": (pl.Int64, "subset size, 1..K (K = smallest N of the evaluated cells)"),
        "gain_k": (pl.Float64, "real gain@k on the test split (null for screened cells)"),
        "pred": (pl.Float64, "predicted gain@k"),
        "pred_lo": (pl.Float64, "lower jackknife+ bound (-inf when too few cells for the level)"),
        "pred_hi": (pl.Float64, "upper jackknife+ bound (+inf when too few cells for the level)"),
        "level": (pl.Float64, "nominal coverage 1 - alpha of the interval"),
        "covered": (pl.Boolean, "pred_lo <= gain_k <= pred_hi (null for screened cells)"),
    },
)

FIT_CURVE_COVERAGE = TableSchema(
    name="fit_curve_coverage",
    path="results/fit/curve_coverage.parquet",
    description="Empirical coverage of the jackknife+ intervals of fit_curve on held-out evaluated cells: "
    "one row per k, plus one pooled row over k >= 2 (gain@1 is 0 identically).",
    columns={
        "scope": (pl.String, "k | pooled_k_ge_2"),
        "k": (pl.Int64, "subset size (null for the pooled row)"),
        "n_cells": (pl.Int64, "held-out cells (times k values for the pooled row)"),
        "level": (pl.Float64, "nominal coverage"),
        "coverage": (pl.Float64, "fraction of held-out cells whose real gain@k lies in the interval"),
        "mean_width": (pl.Float64, "mean interval width (inf when any interval is unbounded)"),
    },
)

FIT_SCREEN = TableSchema(
    name="fit_screen",
    path="results/fit/screen.parquet",
    description="One row per screened cell (validation pass only), ranked by predicted gain: ridge on "
    "fit.features trained on all evaluated cells, jackknife+ interval, and the cost the full evaluation "
    "would have added.",
    columns={
        **CELL_COLUMNS,
        "rank": (pl.Int64, "1 = largest predicted gain among screened cells"),
        "pred": (pl.Float64, "predicted gain (k = N)"),
        "pred_lo": (pl.Float64, "lower jackknife+ bound"),
        "pred_hi": (pl.Float64, "upper jackknife+ bound"),
        "level": (pl.Float64, "nominal coverage of the interval"),
        "frac_evaluated_below": (
            pl.Float64,
            "fraction of evaluated cells whose real gain is below pred",
        ),
        "n_prompts": (pl.Int64, "validation prompts of the screened cell"),
        "n_samples": (pl.Int64, "samples per prompt (N)"),
        "tokens_per_sample": (pl.Float64, "validation mean generated tokens per sample (length_mean)"),
        "avoided_prompts": (pl.Int64, "test + verifier_train prompts not sampled"),
        "avoided_tokens": (pl.Float64, "tokens_per_sample x avoided_prompts x N (estimate)"),
        "avoided_verifier_calls": (pl.Int64, "avoided_prompts x N samples the verifier would score/train on"),
    },
)

FIT_STABILITY = TableSchema(
    name="fit_stability",
    path="results/fit/stability.parquet",
    description="Bootstrap-Lasso stability selection: one row per feature (fit.stability; definitions in "
    "docs/statistics.md).",
    columns={
        "feature": (pl.String, "feature column"),
        "max_freq": (pl.Float64, "max over the admissible penalty grid of the selection frequency"),
        "lambda_at_max": (pl.Float64, "penalty (sklearn Lasso alpha, standardised features) of max_freq"),
        "stable": (pl.Boolean, "max_freq >= threshold"),
        "in_compact": (pl.Boolean, "feature of the compact OLS model"),
        "threshold": (pl.Float64, "stability threshold pi"),
        "max_selected": (pl.Int64, "q: admissible penalties select at most q features on average"),
        "ev_bound": (
            pl.Float64,
            "Meinshausen-Buehlmann bound q_hat^2 / ((2 pi - 1) p) on the expected number of falsely "
            "stable features (NaN for pi <= 0.5)",
        ),
        "n_boot": (pl.Int64, "bootstrap resamples B"),
    },
)

FIT_STABILITY_PATH = TableSchema(
    name="fit_stability_path",
    path="results/fit/stability_path.parquet",
    description="Selection frequency of every feature at every penalty of the grid: one row per "
    "(feature, lambda).",
    columns={
        "feature": (pl.String, "feature column"),
        "lambda": (pl.Float64, "Lasso penalty (sklearn alpha on standardised features, centred target)"),
        "lambda_rel": (pl.Float64, "lambda / lambda_max of the full data"),
        "freq": (pl.Float64, "fraction of bootstrap resamples in which the feature has a non-zero coef"),
        "mean_selected": (pl.Float64, "mean number of selected features at this lambda"),
        "admissible": (pl.Boolean, "mean_selected <= max_selected (enters max_freq)"),
    },
)

FIT_OLS = TableSchema(
    name="fit_ols",
    path="results/fit/ols.parquet",
    description="statsmodels OLS of the gain on the compact feature set (raw feature scale), one row per "
    "coefficient; the full summary text is results/fit/ols_summary.txt.",
    columns={
        "feature": (pl.String, "feature column or '(intercept)'"),
        "coef": (pl.Float64, "OLS coefficient on the raw feature (gain per feature unit)"),
        "se": (pl.Float64, "standard error (nonrobust)"),
        "t": (pl.Float64, "t statistic"),
        "p_value": (pl.Float64, "two-sided p-value"),
        "ci_lo": (pl.Float64, "lower 95% confidence bound"),
        "ci_hi": (pl.Float64, "upper 95% confidence bound"),
        "coef_std": (pl.Float64, "coef x feature SD (gain per SD; NaN for the intercept)"),
        "basis": (pl.String, "stable_set | strict_core (why these features; see docs/statistics.md)"),
        "n_cells": (pl.Int64, "cells fitted (same in every row)"),
        "df_resid": (pl.Float64, "residual degrees of freedom (same in every row)"),
        "r2": (pl.Float64, "in-sample R^2 (same in every row)"),
        "resid_rmse": (pl.Float64, "in-sample residual RMSE: the linear-approximation error"),
        "resid_max_abs": (pl.Float64, "in-sample max |residual|"),
    },
)

FIT_CONCENTRATION = TableSchema(
    name="fit_concentration",
    path="results/fit/concentration.parquet",
    description="One row per cell (evaluated and screened): the finite-sample bound on how far the compact "
    "OLS prediction from this cell's n prompts x N samples can be from its population value, at "
    "confidence 1 - delta, beside the linear-approximation residual. Derivation in docs/statistics.md.",
    columns={
        **CELL_COLUMNS,
        "status": (pl.String, "evaluated | screened"),
        "n_prompts": (pl.Int64, "validation prompts n"),
        "n_samples": (pl.Int64, "samples per prompt N"),
        "delta": (pl.Float64, "failure probability (union over the compact features)"),
        "bound": (pl.Float64, "sum_j |beta_j| eps_j (NaN: a feature has no stated range)"),
        "boot_halfwidth": (
            pl.Float64,
            "empirical analogue: sum_j |beta_j| x half-width of feature j's prompt-bootstrap CI "
            "(features' *_lo / *_hi columns; NaN when absent)",
        ),
        "pred": (pl.Float64, "compact OLS prediction from the cell's features"),
        "gain": (pl.Float64, "real gain (null for screened cells)"),
        "abs_residual": (pl.Float64, "|gain - pred| (null for screened cells)"),
        "resid_rmse": (pl.Float64, "in-sample residual RMSE of the compact OLS (all rows)"),
        "resid_max_abs": (pl.Float64, "in-sample max |residual| of the compact OLS (all rows)"),
    },
)

FIT_CONCENTRATION_TERMS = TableSchema(
    name="fit_concentration_terms",
    path="results/fit/concentration_terms.parquet",
    description="One row per (cell, compact feature): the per-feature deviation bound behind "
    "fit_concentration.",
    columns={
        **CELL_COLUMNS,
        "feature": (pl.String, "compact feature"),
        "kind": (pl.String, "mean (Hoeffding) | spread (McDiarmid on the variance)"),
        "range_lo": (pl.Float64, "lower end of the per-prompt quantity's range (NaN: no stated range)"),
        "range_hi": (pl.Float64, "upper end"),
        "coef": (pl.Float64, "OLS coefficient on the raw feature"),
        "eps": (pl.Float64, "deviation bound of the feature at confidence 1 - delta / |S|"),
        "contribution": (pl.Float64, "|coef| x eps"),
    },
)

FIT_SAMPLE_SIZE = TableSchema(
    name="fit_sample_size",
    path="results/fit/sample_size.parquet",
    description="Sample-size advice for the compact predictor: one row per (n prompts, N samples) of the "
    "grid (worst case over evaluated cells' per-prompt ranges), plus one row per (target, N) with the "
    "smallest n whose bound is <= target.",
    columns={
        "kind": (pl.String, "grid | target"),
        "n_prompts": (pl.Int64, "prompts n (grid row), or the smallest n for the target (null: unbounded)"),
        "n_samples": (pl.Int64, "samples per prompt N"),
        "target": (pl.Float64, "target prediction error (null for grid rows)"),
        "delta": (pl.Float64, "failure probability"),
        "bound": (pl.Float64, "bound on |predicted gain - population predicted gain| at (n, N)"),
    },
)

POSTTRAIN_DATA = TableSchema(
    name="posttrain_data",
    path="results/posttrain/{model}/{recipe}/dataset.parquet",
    description="The training data of one (base model, recipe) adapter, from the tasks' posttrain splits "
    "only: one row per example (sft, rft) or per preference pair (dpo).",
    columns={
        "model": (pl.String, "base model slug"),
        "recipe": (pl.String, "recipe slug (posttrain.recipes)"),
        "kind": (pl.String, "sft | rft | dpo"),
        "task": (pl.String, "task slug"),
        "prompt_id": (pl.String, "posttrain prompt id"),
        "prompt": (pl.String, "the formatted prompt, as the sampler formats it"),
        "completion": (
            pl.String,
            "target completion (sft: the gold; rft: a correct sample; dpo: the chosen one)",
        ),
        "sample_idx": (pl.Int32, "sample behind the completion (null for sft)"),
        "rejected": (pl.String, "dpo: the rejected (incorrect) completion; null otherwise"),
        "rejected_sample_idx": (pl.Int32, "dpo: sample behind the rejected completion; null otherwise"),
    },
)

POSTTRAIN_LOG = TableSchema(
    name="posttrain_log",
    path="results/posttrain/{model}/{recipe}/train_log.parquet",
    description="The training log of one adapter: one row per optimizer step.",
    columns={
        "model": (pl.String, "base model slug"),
        "recipe": (pl.String, "recipe slug"),
        "kind": (pl.String, "sft | rft | dpo"),
        "step": (pl.Int64, "optimizer step, 1-based"),
        "loss": (
            pl.Float64,
            "training loss of the step (TRL's: token cross-entropy for sft/rft, DPO loss for dpo)",
        ),
        "learning_rate": (pl.Float64, "learning rate of the step"),
        "grad_norm": (pl.Float64, "gradient norm before clipping (NaN when not logged)"),
        "examples_seen": (pl.Int64, "examples (or pairs) consumed up to this step: step x batch_size"),
        "n_examples": (pl.Int64, "examples (or pairs) in the training data (same in every row)"),
        "wall_s": (pl.Float64, "wall-clock seconds since training started, at the end of the step"),
        "seed": (pl.Int64, "training seed (same in every row)"),
        "threads": (pl.Int64, "torch threads (same in every row)"),
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
        POSTTRAIN_DATA,
        POSTTRAIN_LOG,
        FIT_PREDICTIONS,
        FIT_METRICS,
        FIT_COEFFICIENTS,
        FIT_COMPARISON,
        FIT_HELDOUT,
        FIT_CURVE,
        FIT_CURVE_COVERAGE,
        FIT_SCREEN,
        FIT_STABILITY,
        FIT_STABILITY_PATH,
        FIT_OLS,
        FIT_CONCENTRATION,
        FIT_CONCENTRATION_TERMS,
        FIT_SAMPLE_SIZE,
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
            out.append(f"| `{col}` | {dtype} | {desc.replace('|', chr(92) + '|')} |")
        out.append("")
    return "\n".join(out)
