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
RM_COLUMN: dict[str, Column] = {"rm": (pl.String, "reward model: its name under the config's reward_models")}


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
        "self_certainty": (
            pl.Float64,
            "mean over generated tokens of the raw next-token self-certainty KL(U || p) = -log V - mean_j "
            "log p_j (nats, Kang et al. 2025); null where not computed (vLLM top-k entropy modes)",
        ),
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
    path="results/cells/{model}/{method}/{task}/verifier/{rm}.parquet",
    description="The fitted offline verifier of one reward model (kind offline_logistic) in one cell: one "
    "row per input signal (standardisation + coefficient) and one row named '(intercept)'. Trained on the "
    "verifier_train split only.",
    columns={
        **CELL_COLUMNS,
        **RM_COLUMN,
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
    path="results/cells/{model}/{method}/{task}/{split}/scores/{rm}.parquet",
    description="A reward per sample from one reward model (one file per reward model, so each can be "
    "added or rerun alone). The pipeline scores the test split.",
    columns={
        **CELL_COLUMNS,
        **RM_COLUMN,
        "split": (pl.String, "split"),
        "prompt_id": (pl.String, "prompt id"),
        "sample_idx": (pl.Int32, "sample index"),
        "reward": (pl.Float64, "higher is better; only the order within a prompt matters"),
        "verifier": (pl.String, "which scorer produced it (kind, and the model of a pretrained RM)"),
        "score_status": (
            pl.String,
            "ok | too_long: the reward model's input (question + completion, templated) is longer than its "
            "token limit (reward_models.<rm>.max_model_len, else the model's); such a sample is not scored "
            "and gets a reward 1 below the lowest scored reward of the split, so best-of-N never picks it "
            "over a scored sample",
        ),
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
        "entropy_kind": (
            pl.String,
            "what entropy_mean is: exact (transformers; vllm hf_rescore) | topk_lower_k<k> | topk_mid_k<k> "
            "(vllm's top-k bound from k logprobs per token); the fit refuses to mix kinds",
        ),
    },
)

GAINS = TableSchema(
    name="gains",
    path="results/cells/{model}/{method}/{task}/gains/{rm}.parquet",
    description="The real best-of-k curve of the cell on the test split under one reward model (one file "
    "per reward model): one row per k = 1..N. The scalar target of the predictor is `gain` (the same in "
    "every row) = bon_at_k(N) - pass_at_k(1), or with fit.target: <t> the column `gain_<t>` = "
    "<t>_at_k(N) - pass_at_k(1). The columns that do not use the rewards (pass_at_k, maj_at_k, "
    "selfcert_at_k, gain_oracle, gain_maj, gain_selfcert, with their CIs) are the same in every reward "
    "model's file of a cell. Efficiency and AUC: docs/features.md.",
    columns={
        **CELL_COLUMNS,
        **RM_COLUMN,
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
        "bom_at_k": (
            pl.Float64,
            "Best-of-Majority over k-subsets: reward argmax among samples whose answer has at least "
            "statistics.bom_threshold * k votes (best-of-k when none has); docs/features.md",
        ),
        "bom_at_k_se": (pl.Float64, "Monte-Carlo standard error of bom_at_k (0 where computed exactly)"),
        "mob_at_k": (
            pl.Float64,
            "Majority-of-the-Bests over k-subsets: the modal answer of the exact best-of-m winner "
            "distribution, m = round(statistics.mob_subsample_fraction * k); docs/features.md",
        ),
        "mob_at_k_se": (pl.Float64, "Monte-Carlo standard error of mob_at_k (0 where computed exactly)"),
        "selfcert_at_k": (
            pl.Float64,
            "self-certainty best-of-k (Kang et al. 2025): the sample with the highest SAMPLES "
            "self_certainty, exact average over all k-subsets, ties broken uniformly as in bon_at_k; "
            "null (with its CI) when a sample's self_certainty is null (vLLM top-k entropy modes); "
            "docs/features.md",
        ),
        **{
            f"{stat}_{end}": (pl.Float64, f"{side} end of the bootstrap CI over prompts of {stat}")
            for stat in (
                "pass_at_k",
                "bon_at_k",
                "maj_at_k",
                "wmaj_at_k",
                "bom_at_k",
                "mob_at_k",
                "selfcert_at_k",
                "gain",
            )
            for end, side in (("lo", "lower"), ("hi", "upper"))
        },
        **{
            f"gain_{t}{end}": (
                pl.Float64,
                f"{t}_at_k(N) - pass_at_k(1) (the same in every row), the target of fit.target: {t}"
                if not end
                else f"{side} end of the bootstrap CI over prompts of gain_{t}",
            )
            for t in ("maj", "wmaj", "bom", "mob", "selfcert")
            for end, side in (("", ""), ("_lo", "lower"), ("_hi", "upper"))
        },
        "gain_oracle": (
            pl.Float64,
            "pass_at_k(N) - pass_at_k(1) (the same in every row): what best-of-N would gain with a perfect "
            "verifier (the fraction of prompts with a correct sample minus pass@1); the target of "
            "fit.target: oracle; does not depend on the reward model",
        ),
        "gain_oracle_lo": (pl.Float64, "lower end of the bootstrap CI over prompts of gain_oracle"),
        "gain_oracle_hi": (pl.Float64, "upper end of the bootstrap CI over prompts of gain_oracle"),
        "efficiency": (
            pl.Float64,
            "reward-model efficiency gain / gain_oracle (a ratio of means over prompts; at most 1); null "
            "when gain_oracle < gap_floor",
        ),
        "efficiency_lo": (
            pl.Float64,
            "lower end of the bootstrap CI over prompts of efficiency (the ratio recomputed per resample)",
        ),
        "efficiency_hi": (pl.Float64, "upper end of the bootstrap CI over prompts of efficiency"),
        "gap_floor": (pl.Float64, "statistics.efficiency_gap_floor: efficiency is null below this gap"),
        "auc": (
            pl.Float64,
            "within-prompt AUC: P(a correct sample's reward > an incorrect sample's of the same prompt), "
            "ties 1/2, averaged over the prompts with both kinds of sample; null when there is none",
        ),
        "auc_lo": (pl.Float64, "lower end of the bootstrap CI over prompts of auc"),
        "auc_hi": (pl.Float64, "upper end of the bootstrap CI over prompts of auc"),
        "auc_prompts": (pl.Int64, "test prompts with both correct and incorrect samples (behind auc)"),
        "n_boot": (pl.Int64, "resamples of the prompts behind the *_lo / *_hi percentile intervals"),
        "ci_level": (pl.Float64, "coverage level of the *_lo / *_hi intervals (e.g. 0.95)"),
    },
)

SCALING = TableSchema(
    name="scaling",
    path="results/cells/{model}/{method}/{task}/scaling.parquet",
    description="Coverage scaling of the cell on the test split (docs/features.md): pass@k fitted by a "
    "power law exp(a k^b) and by a beta-binomial over prompts, for k = 1..N and extrapolated k > N. One "
    "row per (fit, k).",
    columns={
        **CELL_COLUMNS,
        "fit": (pl.String, "power_law | beta_binomial"),
        "param_1": (pl.Float64, "power_law: a; beta_binomial: alpha (NaN when the fit is undefined)"),
        "param_2": (pl.Float64, "power_law: b; beta_binomial: beta (NaN when the fit is undefined)"),
        "k": (pl.Int64, "samples per prompt"),
        "observed": (pl.Float64, "unbiased pass@k of the N test samples (null for k > N)"),
        "predicted": (pl.Float64, "coverage at k of the fit on all N samples"),
        "predicted_lo": (pl.Float64, "lower end of the bootstrap interval (over prompts) of predicted"),
        "predicted_hi": (pl.Float64, "upper end of the bootstrap interval (over prompts) of predicted"),
        "heldout_predicted": (
            pl.Float64,
            "coverage at k of the same fit on the first N // 2 samples of every prompt only",
        ),
        "heldout_rmse": (
            pl.Float64,
            "RMSE of heldout_predicted against observed at k = N // 2 + 1 .. N (same in every row of a fit)",
        ),
        "n_boot": (pl.Int64, "bootstrap resamples of the prompts"),
        "ci_level": (pl.Float64, "level of the predicted_lo / predicted_hi interval"),
    },
)

FIT_PREDICTIONS = TableSchema(
    name="fit_predictions",
    path="results/fit/predictions.parquet",
    description="Leave-one-cell-out predictions of each cell's gain.",
    columns={
        **CELL_COLUMNS,
        "gain": (pl.Float64, "the real gain (from the gains tables of fit.reward_model)"),
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
    description="One row per (target, evaluation scheme, predictor): held-out rank/error metrics with "
    "grid-respecting percentile bootstrap CIs (whole tasks / methods / models resampled, seeded; one set of "
    "resamples shared by all rows), the permutation p-value of the Spearman with the null's 95% "
    "quantile, the noise ceiling of the target's measured gains, and the difference from the trivial "
    "baseline (the validation gap coverage - pass1 through the same procedure). Targets: the oracle gap "
    "(pass@N - pass@1), best-of-N's gain under every reward model, and fit.target when it is neither. "
    "The first two rows of a target (scheme `raw`) are the Spearman of pass1 and of the validation gap "
    "with the gain, without fitting. Schemes that are not applicable (e.g. leave-one-model-out with one "
    "model) have no rows. When every family has one model, the leave-one-family-out folds are the "
    "leave-one-model-out folds: its rows repeat the model rows' numbers (not refitted, not a second "
    "result) with `same_as` = leave_one_model_out. Definitions in docs/statistics.md.",
    columns={
        "target": (
            pl.String,
            "whose gain is predicted: oracle (pass@N - pass@1) | bon | maj | wmaj | bom | mob | selfcert "
            "(<target>_at_k(N) - pass@1 of the test split)",
        ),
        "rm": (pl.String, "the reward model of the target (null: oracle, maj, selfcert use none)"),
        "fit_target": (
            pl.Boolean,
            "the target of the single-target fit stages (fit.target under fit.reward_model)",
        ),
        "scheme": (
            pl.String,
            "raw (a single feature vs the gain, no fit) | leave_one_cell_out | leave_one_task_out | "
            "leave_one_method_out | leave_one_model_out | leave_one_family_out (whole base-model families "
            "held out)",
        ),
        "predictor": (
            pl.String,
            "baseline (pass1) | ridge (fit.features) | gap (the trivial baseline: validation_gap = "
            "coverage - pass1 of the validation split) | all (every feature) | core (strict core) | "
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
        "ci_kind": (pl.String, "what the bootstrap resamples: clusters(<factors>) or cells"),
        "perm_p": (
            pl.Float64,
            "permutation p-value of spearman: (1 + #{null >= observed}) / (n_perm + 1) (two-sided on |rho| "
            "for the raw row); the whole nested CV is rerun on every permutation",
        ),
        "null_q95": (pl.Float64, "95% quantile of the null Spearman (of |rho| for the raw row)"),
        "alternative": (pl.String, "greater (held-out rows) | two-sided (raw row)"),
        "n_perm": (pl.Int64, "null statistics B behind perm_p"),
        "null_kind": (
            pl.String,
            "grid (levels of each grid factor permuted) | grid-family (the same, models permuted only "
            "within their family and families only among families with as many models) | cells (cells "
            "permuted); '(exact)': every non-identity permutation used once",
        ),
        "noise_ceiling": (
            pl.Float64,
            "expected Spearman of the true gains with the measured ones, from each cell's gain CI width",
        ),
        "noise_ceiling_kendall": (pl.Float64, "the same for Kendall tau-b"),
        "mae_floor": (pl.Float64, "expected MAE of the true gains against the measured ones"),
        "delta_trivial": (
            pl.Float64,
            "spearman minus the trivial predictor's (gap) under the same scheme and target; null for raw "
            "rows and the gap rows",
        ),
        "delta_trivial_lo": (
            pl.Float64,
            "lower end of the paired percentile-bootstrap CI of delta_trivial (the same resamples of cells)",
        ),
        "delta_trivial_hi": (pl.Float64, "upper end of the paired CI of delta_trivial"),
        "headline": (
            pl.Boolean,
            "a headline row (one per target): the ridge under the hardest scheme with >= 3 groups (else "
            "LOCO; family, model, method, task in that order; a `same_as` scheme never)",
        ),
        "same_as": (
            pl.String,
            "the scheme whose folds this row's scheme repeats (leave_one_model_out for family rows when "
            "every family has one model: identical numbers, counted once); null otherwise",
        ),
    },
)

FIT_HELDOUT = TableSchema(
    name="fit_heldout",
    path="results/fit/heldout.parquet",
    description="One row per (target, evaluation scheme, predictor, cell): the cell's out-of-fold "
    "prediction (the rows behind fit_comparison).",
    columns={
        "target": (pl.String, "whose gain is predicted (as in fit_comparison)"),
        "rm": (pl.String, "the reward model of the target (null: none enters it)"),
        "scheme": (pl.String, "evaluation scheme"),
        "predictor": (pl.String, "predictor name"),
        **CELL_COLUMNS,
        "fold": (pl.String, "label of the held-out group that contained the cell"),
        "gain": (pl.Float64, "the real gain"),
        "pred": (pl.Float64, "prediction by the ridge fitted without the cell's group"),
        "alpha": (pl.Float64, "penalty chosen by the inner LOO CV of that fit (NaN: no usable column)"),
    },
)

FIT_STRATEGY = TableSchema(
    name="fit_strategy",
    path="results/fit/strategy_fit.parquet",
    description="One row per target: the oracle gap, then each selection strategy (fit.target values, in "
    "that order), once per reward model for a strategy that uses the rewards: the configured ridge "
    "(fit.features) evaluated under the headline held-out scheme of fit_comparison with that gain "
    "(accuracy at k = N minus pass@1) as the target: held-out Spearman, its permutation p-value and "
    "null 95% quantile (the comparison's permutations) and the noise ceiling of those gains. "
    "`best` marks the target the predictor ranks best. A strategy without a gain for every "
    "cell (selfcert where no self-certainty was recorded) is `skipped`. p-values are not corrected for "
    "the number of targets, and all strategies select from the same samples. Definitions in "
    "docs/statistics.md.",
    columns={
        "strategy": (
            pl.String,
            "oracle | bon | maj | wmaj | bom | mob | selfcert (target: gain_oracle | gain | gain_<strategy>)",
        ),
        "rm": (pl.String, "the reward model whose rewards the strategy uses (null: oracle, maj, selfcert)"),
        "scheme": (pl.String, "the headline evaluation scheme of fit_comparison (same for every row)"),
        "predictor": (pl.String, "ridge (the configured fit.features)"),
        "features": (pl.String, "comma-separated feature columns of the predictor"),
        "n_cells": (pl.Int64, "cells evaluated (null: skipped)"),
        "n_folds": (pl.Int64, "held-out groups (outer folds) of the scheme"),
        "gain_mean": (pl.Float64, "mean over cells of the strategy's gain"),
        "spearman": (pl.Float64, "Spearman rho of held-out prediction vs the strategy's gain (nested CV)"),
        "perm_p": (
            pl.Float64,
            "one-sided permutation p-value of spearman: (1 + #{null >= observed}) / (n_perm + 1), the whole "
            "nested CV rerun on every permutation; not corrected for the number of strategies",
        ),
        "null_q95": (pl.Float64, "95% quantile of the null Spearman"),
        "n_perm": (pl.Int64, "null statistics B behind perm_p (the permutations of fit_comparison)"),
        "null_kind": (pl.String, "grid | grid-family | cells, as in fit_comparison"),
        "noise_ceiling": (
            pl.Float64,
            "expected Spearman of the strategy's true gains with the measured ones (from their CI widths)",
        ),
        "fit_target": (
            pl.Boolean,
            "the target the single-target fit stages predict (fit.target under fit.reward_model)",
        ),
        "best": (
            pl.Boolean,
            "the evaluated strategy with the highest spearman (ties: the first in this table's order)",
        ),
        "skipped": (pl.String, "why the strategy was not evaluated; null when it was"),
    },
)

FIT_RM_SUMMARY = TableSchema(
    name="fit_rm_summary",
    path="results/fit/rm_summary.parquet",
    description="One row per reward model: how much of the cells' headroom (oracle gap, pass@N - pass@1) "
    "its best-of-N realises, and how well it orders the samples of a prompt (within-prompt AUC), over the "
    "evaluated cells. Intervals: percentile intervals over the comparison's cluster bootstrap of cells "
    "(the per-cell values held fixed). Definitions in docs/statistics.md.",
    columns={
        "rm": (pl.String, "reward model (its name under reward_models)"),
        "n_cells": (pl.Int64, "evaluated cells"),
        "gain_mean": (pl.Float64, "mean over cells of best-of-N's gain (bon@N - pass@1)"),
        "gain_oracle_mean": (pl.Float64, "mean over cells of the oracle gap (pass@N - pass@1)"),
        "pooled_efficiency": (
            pl.Float64,
            "gain_mean / gain_oracle_mean: the share of all cells' headroom the reward model realises",
        ),
        "pooled_efficiency_lo": (pl.Float64, "lower end of the cluster-bootstrap CI of pooled_efficiency"),
        "pooled_efficiency_hi": (pl.Float64, "upper end of the cluster-bootstrap CI of pooled_efficiency"),
        "efficiency_median": (
            pl.Float64,
            "median over cells of the per-cell efficiency (gains' efficiency; cells with an oracle gap of "
            "at least gap_floor)",
        ),
        "n_efficiency": (pl.Int64, "cells with an efficiency (oracle gap >= gap_floor)"),
        "gap_floor": (pl.Float64, "statistics.efficiency_gap_floor"),
        "auc_mean": (pl.Float64, "mean over cells of the within-prompt AUC (cells that have one)"),
        "auc_mean_lo": (pl.Float64, "lower end of the cluster-bootstrap CI of auc_mean"),
        "auc_mean_hi": (pl.Float64, "upper end of the cluster-bootstrap CI of auc_mean"),
        "auc_median": (pl.Float64, "median over cells of the within-prompt AUC"),
        "n_auc": (
            pl.Int64,
            "cells with a within-prompt AUC (a test prompt with correct and incorrect samples)",
        ),
        "n_boot": (pl.Int64, "bootstrap resamples"),
        "ci_level": (pl.Float64, "level of the intervals"),
        "ci_kind": (pl.String, "what the bootstrap resamples: clusters(<factors>) or cells"),
    },
)

FIT_RM_AGREEMENT = TableSchema(
    name="fit_rm_agreement",
    path="results/fit/rm_agreement.parquet",
    description="One row per pair of gains over the evaluated cells: the oracle gap (`oracle`) and each "
    "reward model's best-of-N gain. Do the reward models rank the cells alike, and like the headroom? "
    "Spearman over cells with a percentile interval over the comparison's cluster bootstrap of cells.",
    columns={
        "a": (pl.String, "oracle | a reward model"),
        "b": (pl.String, "a reward model"),
        "n_cells": (pl.Int64, "evaluated cells"),
        "spearman": (pl.Float64, "Spearman rho over cells of a's and b's gains (NaN: one is constant)"),
        "spearman_lo": (pl.Float64, "lower end of the cluster-bootstrap CI of spearman"),
        "spearman_hi": (pl.Float64, "upper end of the cluster-bootstrap CI of spearman"),
        "n_boot": (pl.Int64, "bootstrap resamples"),
        "ci_level": (pl.Float64, "level of the interval"),
        "ci_kind": (pl.String, "what the bootstrap resamples: clusters(<factors>) or cells"),
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
    "one row per k, then two rows counted per cell over k >= 2 (gain@1 is 0 identically): the mean over "
    "cells of the fraction of their k covered, and the fraction of cells whose whole curve is covered.",
    columns={
        "scope": (pl.String, "k | per_cell_k_ge_2 | whole_curve"),
        "k": (pl.Int64, "subset size (null for the per-cell rows)"),
        "n_cells": (pl.Int64, "held-out cells (each cell counts once)"),
        "level": (pl.Float64, "nominal coverage (per k; the whole_curve row is simultaneous, so lower)"),
        "coverage": (
            pl.Float64,
            "k rows: fraction of held-out cells whose real gain@k lies in the interval; per_cell_k_ge_2: "
            "mean over cells of the fraction of their k >= 2 covered; whole_curve: fraction of cells with "
            "every k >= 2 covered",
        ),
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
    description="Complementary-pairs stability selection (Shah & Samworth 2013): one row per feature "
    "(fit.stability; definitions in docs/statistics.md).",
    columns={
        "feature": (pl.String, "feature column"),
        "max_freq": (
            pl.Float64,
            "fraction of the 2B half-samples whose union over the admissible penalties selects the feature",
        ),
        "lambda_at_max": (
            pl.Float64,
            "smallest admissible penalty (sklearn Lasso alpha, standardised features): the union runs from "
            "lambda_max down to it",
        ),
        "stable": (pl.Boolean, "max_freq >= threshold"),
        "in_compact": (pl.Boolean, "feature of the compact OLS model"),
        "threshold": (pl.Float64, "stability threshold pi"),
        "max_selected": (pl.Int64, "q: the union over admissible penalties selects at most q on average"),
        "q_hat": (pl.Float64, "mean size of the union selector over the 2B half-samples"),
        "ev_bound": (
            pl.Float64,
            "bound q_hat^2 / ((2 pi - 1) p) on the expected number of falsely stable features "
            "(Shah & Samworth eq. 7; NaN for pi <= 0.5)",
        ),
        "bound_vacuous": (
            pl.Boolean,
            "ev_bound >= max(1, number of stable features): the bound does not rule out that every "
            "stable feature is false",
        ),
        "n_boot": (pl.Int64, "complementary pairs B (2B half-samples without replacement)"),
        "half_size": (pl.Int64, "cells per half-sample, floor(n/2)"),
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
        "freq": (pl.Float64, "fraction of the 2B half-samples in which the feature has a non-zero coef"),
        "mean_selected": (pl.Float64, "mean number of selected features at this lambda"),
        "freq_union": (
            pl.Float64,
            "fraction of half-samples selecting the feature at any penalty from lambda_max down to this one",
        ),
        "mean_union": (pl.Float64, "mean size of that union"),
        "admissible": (pl.Boolean, "mean_union <= max_selected on the whole prefix (enters max_freq)"),
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
    description="Sample-size advice for the compact predictor: one row per (n prompts, N samples). The "
    "predicted error comes from each evaluated cell's measured between-prompt and within-prompt "
    "variance (docs/statistics.md); the Hoeffding/McDiarmid bound is the worst case beside it.",
    columns={
        "n_prompts": (pl.Int64, "validation prompts n"),
        "n_samples": (pl.Int64, "samples per prompt N"),
        "predicted_sd": (
            pl.Float64,
            "root mean over evaluated cells of s_b^2 / n + s_w^2 / (n N): the compact prediction's "
            "sampling SD",
        ),
        "predicted_err95": (pl.Float64, "1.96 x predicted_sd (normal 95% half-width)"),
        "between_share": (pl.Float64, "share of the predicted variance from the between-prompt part"),
        "delta": (pl.Float64, "failure probability of the bound"),
        "bound": (
            pl.Float64,
            "worst-case bound on |predicted gain - population predicted gain| at (n, N) (Hoeffding / "
            "McDiarmid, union over the compact features; widest ranges over the evaluated cells)",
        ),
        "n_cells": (pl.Int64, "evaluated cells behind predicted_sd"),
    },
)

FIT_SAMPLE_SIZE_CHECK = TableSchema(
    name="fit_sample_size_check",
    path="results/fit/sample_size_check.parquet",
    description="Check of the predicted error by subsampling the measured cells: one row per check "
    "(n/2 prompts; n/4 prompts; n/2 prompts x N/2 samples), predicted vs observed SD of the compact "
    "prediction from disjoint parts (docs/statistics.md).",
    columns={
        "check": (pl.String, "n/2, N | n/4, N | n/2, N/2"),
        "n_cells": (pl.Int64, "cells with enough prompts (>= 2 per part) for the check"),
        "n_prompts": (pl.Int64, "prompts per part (median over cells)"),
        "n_samples": (pl.Int64, "samples per prompt in each part (median over cells)"),
        "n_splits": (pl.Int64, "random disjoint splits per cell"),
        "predicted_sd": (pl.Float64, "root mean over cells of the predicted variance at the part's size"),
        "observed_sd": (pl.Float64, "root mean over cells of the observed variance between disjoint parts"),
        "ratio": (pl.Float64, "predicted_sd / observed_sd"),
    },
)

FIT_ALLOCATION = TableSchema(
    name="fit_allocation",
    path="results/fit/allocation.parquet",
    description="Samples per prompt planned for each evaluated cell at each budget from the predicted gain "
    "curves (bongain.fit.allocation; docs/statistics.md), with the measured best-of-k accuracy on the "
    "test split at the planned and at the uniform N. One row per (budget, cell).",
    columns={
        **CELL_COLUMNS,
        "budget": (pl.Int64, "average samples per prompt over all cells (the uniform N)"),
        "n_prompts": (pl.Int64, "test prompts of the cell (its weight in the budget)"),
        "n_planned": (pl.Int64, "planned N of the cell (from the predicted curve)"),
        "pred_gain": (pl.Float64, "predicted gain@n_planned (leave-one-cell-out curve)"),
        "bon_planned": (pl.Float64, "measured best-of-k accuracy at k = n_planned (test split)"),
        "bon_uniform": (pl.Float64, "measured best-of-k accuracy at k = budget (test split)"),
        "n_oracle": (pl.Int64, "N of the same optimisation on the measured curves (in-sample upper bound)"),
    },
)

FIT_ALLOCATION_SUMMARY = TableSchema(
    name="fit_allocation_summary",
    path="results/fit/allocation_summary.parquet",
    description="Per budget: test-split accuracy of the planned allocation, of uniform N = budget and of "
    "the oracle plan, over all evaluated cells weighted by prompts; the planned - uniform difference with "
    "a bootstrap interval over test prompts within cells.",
    columns={
        "budget": (pl.Int64, "average samples per prompt"),
        "n_cells": (pl.Int64, "evaluated cells planned together"),
        "acc_planned": (pl.Float64, "accuracy of the planned allocation"),
        "acc_uniform": (pl.Float64, "accuracy of uniform N = budget"),
        "acc_oracle": (pl.Float64, "accuracy of the plan made on the measured curves (in-sample bound)"),
        "diff": (pl.Float64, "acc_planned - acc_uniform"),
        "diff_lo": (pl.Float64, "lower end of the bootstrap interval of diff"),
        "diff_hi": (pl.Float64, "upper end of the bootstrap interval of diff"),
        "samples_planned": (pl.Float64, "samples per prompt the plan uses (<= budget)"),
        "n_boot": (pl.Int64, "bootstrap resamples"),
        "ci_level": (pl.Float64, "level of the interval"),
    },
)

FIT_ALLOCATION_BINS = TableSchema(
    name="fit_allocation_bins",
    path="results/fit/allocation_bins.parquet",
    description="Within each evaluated cell: samples per difficulty bin of prompts from a pilot charged to "
    "the budget, planned on one half of the test prompts and scored on the other (halves swapped), "
    "against uniform N = budget. One row per (cell, budget); docs/statistics.md.",
    columns={
        **CELL_COLUMNS,
        "budget": (pl.Int64, "average samples per prompt, pilot included (the uniform N)"),
        "pilot": (pl.Int64, "pilot samples per prompt; their mean reward is the difficulty score"),
        "n_bins": (pl.Int64, "difficulty bins (quantiles of the score on the planning half)"),
        "n_prompts": (pl.Int64, "test prompts of the cell"),
        "plan_half_a": (pl.String, "N per bin (lowest score first) planned on half a, applied to half b"),
        "plan_half_b": (pl.String, "N per bin planned on half b, applied to half a"),
        "acc_planned": (pl.Float64, "cross-fitted best-of-N accuracy of the binned plan"),
        "acc_uniform": (pl.Float64, "best-of-N accuracy of uniform N = budget (same sample orders)"),
        "diff": (pl.Float64, "acc_planned - acc_uniform"),
        "diff_lo": (pl.Float64, "lower end of the bootstrap interval over prompts of diff"),
        "diff_hi": (pl.Float64, "upper end of the bootstrap interval over prompts of diff"),
        "samples_used": (pl.Float64, "samples per prompt the plan used on the scored halves"),
        "n_orders": (pl.Int64, "random sample orders per prompt (Monte Carlo over pilots and draws)"),
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

ORM_DATA = TableSchema(
    name="orm_data",
    path="results/orm/{rm}/dataset.parquet",
    description=(
        "The training rows of an outcome reward model (kind orm), one per (question, completion): per "
        "question carved after every block of its task (never a split's question), its gold answer "
        "(correct) and near-miss wrong answers; labels from the grader."
    ),
    columns={
        "task": (pl.String, "task slug"),
        "prompt_id": (pl.String, "question id (<task>-<position in the seeded source order>)"),
        "question": (pl.String, "question text (what the reward model reads)"),
        "completion": (pl.String, "answer as a few-shot policy writes it after 'A:' (leading space)"),
        "correct": (pl.Boolean, "the grader's label of the completion"),
        "source": (pl.String, "gold | near_miss"),
    },
)

ORM_LOG = TableSchema(
    name="orm_log",
    path="results/orm/{rm}/train_log.parquet",
    description="The training log of an outcome reward model (kind orm): one row per optimizer step.",
    columns={
        "rm": (pl.String, "reward-model name (reward_models.<rm>)"),
        "step": (pl.Int64, "optimizer step, 1-based"),
        "loss": (pl.Float64, "pairwise loss -log sigmoid(r_chosen - r_rejected), mean over the batch"),
        "accuracy": (pl.Float64, "share of the batch's pairs with r_chosen > r_rejected"),
        "margin": (pl.Float64, "mean r_chosen - r_rejected of the batch"),
        "learning_rate": (pl.Float64, "learning rate of the step"),
        "grad_norm": (pl.Float64, "gradient norm before clipping (NaN when not logged)"),
        "pairs_seen": (pl.Int64, "pairs consumed up to this step: step x train_batch_size"),
        "n_rows": (pl.Int64, "rows in the training data (same in every row)"),
        "n_questions": (pl.Int64, "distinct questions in the training data (same in every row)"),
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
        SCALING,
        POSTTRAIN_DATA,
        POSTTRAIN_LOG,
        ORM_DATA,
        ORM_LOG,
        FIT_PREDICTIONS,
        FIT_METRICS,
        FIT_COEFFICIENTS,
        FIT_COMPARISON,
        FIT_HELDOUT,
        FIT_STRATEGY,
        FIT_RM_SUMMARY,
        FIT_RM_AGREEMENT,
        FIT_CURVE,
        FIT_CURVE_COVERAGE,
        FIT_SCREEN,
        FIT_STABILITY,
        FIT_STABILITY_PATH,
        FIT_OLS,
        FIT_CONCENTRATION,
        FIT_CONCENTRATION_TERMS,
        FIT_SAMPLE_SIZE,
        FIT_SAMPLE_SIZE_CHECK,
        FIT_ALLOCATION,
        FIT_ALLOCATION_SUMMARY,
        FIT_ALLOCATION_BINS,
    )
}


def markdown() -> str:
    """Render every schema as Markdown (the text of docs/artifacts.md)."""
    out = [
        "# Artifacts",
        "",
        "Every stage writes one Parquet file per cell (per cell and split, per cell and reward model, per "
        "task split, or one for the fit). ",
        "Generated from `workflow/bongain/schemas.py` by `bongain schemas --markdown`; do not edit by hand.",
        "",
        "## One joined per-sample view",
        "",
        "The per-sample tables of a cell's split share the keys (prompt_id, sample_idx): samples, grades and "
        "one scores file per reward model. `bongain view <model>/<method>/<task> [split]` prints them joined "
        "(one row per sample; `--out file.parquet` writes it; `bongain.report.view.joined_view`); in polars:",
        "",
        "```python",
        "import polars as pl",
        "",
        'd, keys = "results/cells/smollm2-135m/base/add2d1d/test", ["prompt_id", "sample_idx"]',
        'view = pl.read_parquet(f"{d}/samples.parquet").join(',
        '    pl.read_parquet(f"{d}/grades.parquet").select(*keys, "answer", "correct"), on=keys',
        ")",
        'for rm in ("verifier",):  # every reward model: results/cells/<cell>/<split>/scores/<rm>.parquet',
        '    scores = pl.read_parquet(f"{d}/scores/{rm}.parquet")',
        '    view = view.join(scores.select(*keys, pl.col("reward").alias(f"reward_{rm}")), on=keys)',
        "```",
        "",
    ]
    for s in ALL.values():
        out += [f"## {s.name}", "", f"`{s.path}`", "", s.description, "", "| column | type | meaning |"]
        out.append("|---|---|---|")
        for col, (dtype, desc) in s.columns.items():
            out.append(f"| `{col}` | {dtype} | {desc.replace('|', chr(92) + '|')} |")
        out.append("")
    return "\n".join(out)
