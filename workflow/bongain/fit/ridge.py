"""The cross-cell fit: predict each cell's best-of-N gain from its validation-set output statistics.

One row of ``features`` (schema ``features``) per cell is the predictor input; the target is the cell's
``gain`` from ``gains`` (schema ``gains``; the same value in each of the cell's k rows). Every predictor
is a ridge regression on standardised features whose penalty is chosen by inner leave-one-out CV
(:class:`sklearn.linear_model.RidgeCV` with its efficient closed-form LOO). Evaluation is
leave-one-cell-out (LOCO): each cell is predicted by a model fitted on all the other cells only, with
standardisation statistics, dropped columns and penalty all computed from those other cells.

The baseline is the same procedure on ``pass1`` alone ("does the model's accuracy already tell you
the gain?").

Column handling inside each fit (training cells only):

* a column that is constant (zero variance) or holds a non-finite value is dropped; its coefficient is
  reported as NaN ("not fitted");
* if no column survives, the fit predicts the training mean gain and its ``alpha`` is NaN;
* a non-finite value of a kept column in a cell being *predicted* is replaced by the training mean
  (standardised value 0).

Everything is deterministic: cells are processed in (model, method, task) order; the only randomness
(bootstrap CIs of the metrics) comes from a seeded generator.

Beyond LOCO, :func:`compare_predictors` evaluates every predictor set (baseline, fit.features, all,
strict core, core + entropy) under grouped schemes (leave-one-cell/task/method/model-out) with nested CV
and percentile-bootstrap CIs of the metrics; see docs/statistics.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats
from sklearn.linear_model import RidgeCV

from bongain.cellstats import features
from bongain.constants import CELL_KEYS
from bongain.io import conform
from bongain.schemas import FIT_COMPARISON

#: Default predictor features: every Float64 column of the ``features`` schema (n_prompts / n_samples
#: are bookkeeping, not statistics), in schema order.
FEATURE_COLUMNS: list[str] = [c for c in features.FEATURE_COLUMNS if c not in ("n_prompts", "n_samples")]

BASELINE_COLUMNS: list[str] = ["pass1"]

#: Ridge penalty grid searched by the inner leave-one-out CV.
DEFAULT_ALPHAS: np.ndarray = np.logspace(-3, 3, 25)

#: A training column whose standard deviation is at most this (relative to max(1, |mean|)) is constant.
_CONSTANT_RTOL = 1e-12

MIN_CELLS = 3


@dataclass(frozen=True)
class RidgeFit:
    """A fitted ridge predictor on standardised features.

    Arrays have one entry per input column; entries of dropped columns are NaN.
    """

    mean: np.ndarray  # training mean per column
    scale: np.ndarray  # training standard deviation (ddof=0) per column
    coef: np.ndarray  # coefficient on the standardised column (target units per SD)
    intercept: float  # equals the training mean of y (standardised columns are centred)
    alpha: float  # penalty picked by inner LOO CV; NaN when no column was usable

    @property
    def kept(self) -> np.ndarray:
        """Boolean mask of the columns the fit uses."""
        return np.isfinite(self.coef)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict rows of ``X`` (same columns, same order as the training matrix)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        kept = self.kept
        z = (X[:, kept] - self.mean[kept]) / self.scale[kept]
        z = np.where(np.isfinite(z), z, 0.0)
        return self.intercept + z @ self.coef[kept]


def usable_columns(X: np.ndarray) -> np.ndarray:
    """Mask of columns that are finite everywhere and not constant."""
    X = np.asarray(X, dtype=np.float64)
    finite = np.all(np.isfinite(X), axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(finite, X.mean(axis=0), 0.0)
        std = np.where(finite, X.std(axis=0), 0.0)
    return finite & (std > _CONSTANT_RTOL * np.maximum(1.0, np.abs(mean)))


def fit_ridge(
    X: np.ndarray, y: np.ndarray, alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS
) -> RidgeFit:
    """Standardise ``X`` with its own mean/std and fit ridge with the penalty chosen by LOO CV.

    Constant or non-finite columns are dropped (coef NaN). ``y`` must be finite.
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64).ravel()
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    if y.size < 2:
        raise ValueError(f"fit_ridge needs at least 2 training rows, got {y.size}")
    if not np.all(np.isfinite(y)):
        raise ValueError("fit_ridge: the target y holds non-finite values")
    n_cols = X.shape[1]
    kept = usable_columns(X)
    mean = np.full(n_cols, np.nan)
    scale = np.full(n_cols, np.nan)
    coef = np.full(n_cols, np.nan)
    if not kept.any():
        return RidgeFit(mean=mean, scale=scale, coef=coef, intercept=float(y.mean()), alpha=float("nan"))
    Xk = X[:, kept]
    mean[kept] = Xk.mean(axis=0)
    scale[kept] = Xk.std(axis=0)
    Z = (Xk - mean[kept]) / scale[kept]
    model = RidgeCV(alphas=np.asarray(alphas, dtype=np.float64), fit_intercept=True)
    model.fit(Z, y)
    coef[kept] = model.coef_
    return RidgeFit(
        mean=mean, scale=scale, coef=coef, intercept=float(model.intercept_), alpha=float(model.alpha_)
    )


def cell_table(features: pl.DataFrame, gains: pl.DataFrame) -> pl.DataFrame:
    """Join each cell's feature row with its target gain, sorted by (model, method, task).

    The target is taken from the cell's row with the largest k (k = N). Raises ValueError on duplicated
    feature rows, on cells without gains, or on too few cells.
    """
    dup = features.group_by(CELL_KEYS).len().filter(pl.col("len") > 1)
    if dup.height:
        raise ValueError(f"features: duplicated cell rows: {dup.select(CELL_KEYS).rows()}")
    target = (
        gains.sort([*CELL_KEYS, "k"])
        .group_by(CELL_KEYS, maintain_order=True)
        .agg(pl.col("gain").last(), (pl.col("gain").max() - pl.col("gain").min()).alias("_range"))
    )
    uneven = target.filter(pl.col("_range") > 1e-12)
    if uneven.height:
        raise ValueError(
            f"gains: `gain` differs between the k rows of cell(s) {uneven.select(CELL_KEYS).rows()}"
        )
    target = target.drop("_range")
    missing = features.join(target, on=CELL_KEYS, how="anti")
    if missing.height:
        raise ValueError(f"no gains for cell(s) {missing.select(CELL_KEYS).rows()}")
    table = features.join(target, on=CELL_KEYS, how="inner").sort(CELL_KEYS)
    if table.height < MIN_CELLS:
        raise ValueError(
            f"the cross-cell fit needs at least {MIN_CELLS} cells (with features and gains), "
            f"got {table.height}"
        )
    if table["gain"].is_null().any() or not np.all(np.isfinite(table["gain"].to_numpy())):
        bad = table.filter(pl.col("gain").is_null() | pl.col("gain").is_nan()).select(CELL_KEYS).rows()
        raise ValueError(f"non-finite gain for cell(s) {bad}")
    return table


def _matrix(table: pl.DataFrame, feature_cols: Sequence[str]) -> np.ndarray:
    missing = [c for c in feature_cols if c not in table.columns]
    if missing:
        raise ValueError(f"unknown feature column(s) {missing}")
    if not feature_cols:
        raise ValueError("feature_cols is empty")
    return table.select([pl.col(c).cast(pl.Float64) for c in feature_cols]).to_numpy().astype(np.float64)


def loco_predict(
    X: np.ndarray, y: np.ndarray, alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS
) -> np.ndarray:
    """Leave-one-out predictions: row i predicted by a fit on all rows but i."""
    n = y.shape[0]
    pred = np.empty(n, dtype=np.float64)
    for i in range(n):
        train = np.arange(n) != i
        pred[i] = fit_ridge(X[train], y[train], alphas).predict(X[i : i + 1])[0]
    return pred


def leave_one_cell_out(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    feature_cols: Sequence[str] = FEATURE_COLUMNS,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
) -> pl.DataFrame:
    """LOCO predictions of every cell's gain (schema ``fit_predictions``), ridge and pass1 baseline."""
    table = cell_table(features, gains)
    y = table["gain"].to_numpy().astype(np.float64)
    pred_ridge = loco_predict(_matrix(table, feature_cols), y, alphas)
    pred_base = loco_predict(_matrix(table, BASELINE_COLUMNS), y, alphas)
    out = table.select(CELL_KEYS).with_columns(
        pl.Series("gain", y), pl.Series("pred_ridge", pred_ridge), pl.Series("pred_baseline", pred_base)
    )
    return conform(out, "fit_predictions")


def _is_constant(a: np.ndarray) -> bool:
    return a.size < 2 or bool(np.all(a == a[0]))


def rank_metrics(pred: np.ndarray, actual: np.ndarray) -> tuple[float, float, float]:
    """(Spearman rho, Kendall tau-b, MAE) of ``pred`` against ``actual``.

    A correlation is undefined (NaN) when either vector is constant or has fewer than 2 entries; MAE is
    NaN for an empty input.
    """
    pred = np.asarray(pred, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    mae = float(np.mean(np.abs(pred - actual))) if pred.size else float("nan")
    if _is_constant(pred) or _is_constant(actual):
        return float("nan"), float("nan"), mae
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        rho = float(stats.spearmanr(pred, actual).statistic)
        tau = float(stats.kendalltau(pred, actual, variant="b").statistic)
    return rho, tau, mae


def metrics(predictions: pl.DataFrame) -> pl.DataFrame:
    """One row per predictor (ridge, baseline): n_cells, Spearman, Kendall tau-b, MAE (``fit_metrics``).

    Correlations are NaN when the predictions (or the real gains) are all equal.
    """
    actual = predictions["gain"].to_numpy().astype(np.float64)
    rows = []
    for name, col in (("ridge", "pred_ridge"), ("baseline", "pred_baseline")):
        rho, tau, mae = rank_metrics(predictions[col].to_numpy().astype(np.float64), actual)
        rows.append(
            {"predictor": name, "n_cells": predictions.height, "spearman": rho, "kendall": tau, "mae": mae}
        )
    return conform(pl.DataFrame(rows, schema=_metrics_schema()), "fit_metrics")


def _metrics_schema() -> dict[str, type[pl.DataType]]:
    return {
        "predictor": pl.String,
        "n_cells": pl.Int64,
        "spearman": pl.Float64,
        "kendall": pl.Float64,
        "mae": pl.Float64,
    }


def _coef_rows(name: str, fit: RidgeFit, feature_cols: Sequence[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"predictor": name, "feature": col, "coef": float(c), "alpha": fit.alpha}
        for col, c in zip(feature_cols, fit.coef, strict=True)
    ]
    rows.append({"predictor": name, "feature": "(intercept)", "coef": fit.intercept, "alpha": fit.alpha})
    return rows


def coefficients(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    feature_cols: Sequence[str] = FEATURE_COLUMNS,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
) -> pl.DataFrame:
    """Refit ridge and baseline on all cells; one row per feature plus '(intercept)' (``fit_coefficients``).

    A dropped feature (constant or non-finite across cells) has coef NaN.
    """
    table = cell_table(features, gains)
    y = table["gain"].to_numpy().astype(np.float64)
    rows = _coef_rows("ridge", fit_ridge(_matrix(table, feature_cols), y, alphas), feature_cols)
    rows += _coef_rows("baseline", fit_ridge(_matrix(table, BASELINE_COLUMNS), y, alphas), BASELINE_COLUMNS)
    schema = {"predictor": pl.String, "feature": pl.String, "coef": pl.Float64, "alpha": pl.Float64}
    return conform(pl.DataFrame(rows, schema=schema), "fit_coefficients")


def run_fit(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    feature_cols: Sequence[str] | None = None,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(predictions, metrics, coefficients) of the cross-cell fit; needs at least 3 cells."""
    cols = list(FEATURE_COLUMNS if feature_cols is None else feature_cols)
    preds = leave_one_cell_out(features, gains, cols, alphas)
    return preds, metrics(preds), coefficients(features, gains, cols, alphas)


# --------------------------------------------------------------------------------------------------
# grouped evaluation schemes, predictor comparison, bootstrap CIs of the metrics

#: The paper's strict core and core + entropy.
STRICT_CORE: list[str] = ["agreement_spread", "first_correct_pos", "length_var"]
CORE_ENTROPY: list[str] = [*STRICT_CORE, "entropy_mean"]

#: Evaluation scheme -> the cell key whose levels are held out together (None: every cell alone).
SCHEMES: dict[str, str | None] = {
    "leave_one_cell_out": None,
    "leave_one_task_out": "task",
    "leave_one_method_out": "method",
    "leave_one_model_out": "model",
}

DEFAULT_N_BOOT = 1000
DEFAULT_CI_LEVEL = 0.95
DEFAULT_SEED = 0


def predictor_sets(configured: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Predictor name -> its feature columns, in report order.

    ``ridge`` is the configured feature list (``fit.features``; all features when unset), ``all`` every
    feature column, ``core`` the strict core, ``core_entropy`` the core plus ``entropy_mean``.
    """
    return {
        "baseline": list(BASELINE_COLUMNS),
        "ridge": list(FEATURE_COLUMNS if configured is None else configured),
        "all": list(FEATURE_COLUMNS),
        "core": list(STRICT_CORE),
        "core_entropy": list(CORE_ENTROPY),
    }


def scheme_folds(table: pl.DataFrame, scheme: str) -> list[tuple[str, np.ndarray]] | None:
    """The held-out folds of ``scheme`` as (group label, row indices), in sorted label order.

    None when the scheme is not applicable: fewer than 2 groups (e.g. leave-one-model-out with one
    model) or a fold that would leave fewer than 2 training cells.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown evaluation scheme {scheme!r}; known: {list(SCHEMES)}")
    key = SCHEMES[scheme]
    n = table.height
    if key is None:
        labels = [
            f"{m}/{me}/{t}" for m, me, t in zip(table["model"], table["method"], table["task"], strict=True)
        ]
    else:
        labels = table[key].cast(pl.String).to_list()
    levels = sorted(set(labels))
    if len(levels) < 2:
        return None
    arr = np.asarray(labels, dtype=object)
    folds = [(g, np.flatnonzero(arr == g)) for g in levels]
    if any(n - idx.size < 2 for _, idx in folds):
        return None
    return folds


def grouped_predict(
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[tuple[str, np.ndarray]],
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions and the penalty used for each row.

    Each fold's rows are predicted by :func:`fit_ridge` on the other rows only: standardisation,
    dropped columns and the penalty (inner LOO CV = the nested CV) never see the held-out group.
    """
    n = y.shape[0]
    pred = np.full(n, np.nan)
    alpha = np.full(n, np.nan)
    for _, idx in folds:
        train = np.ones(n, dtype=bool)
        train[idx] = False
        model = fit_ridge(X[train], y[train], alphas)
        pred[idx] = model.predict(X[idx])
        alpha[idx] = model.alpha
    return pred, alpha


def _ranks(a: np.ndarray) -> np.ndarray:
    return stats.rankdata(a, axis=-1, method="average")


def _rowwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    num = (a * b).sum(axis=-1)
    scale = np.maximum(np.abs(a).max(axis=-1), 1e-300) * np.maximum(np.abs(b).max(axis=-1), 1e-300)
    ok = den > 1e-12 * scale
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def batch_metrics(pred: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spearman, Kendall tau-b and MAE of each row of ``pred`` (B x n) against the same row of ``actual``.

    Vectorised equivalents of :func:`rank_metrics` (NaN correlation for a constant row).
    """
    pred = np.atleast_2d(np.asarray(pred, dtype=np.float64))
    actual = np.atleast_2d(np.asarray(actual, dtype=np.float64))
    mae = np.mean(np.abs(pred - actual), axis=-1)
    rho = _rowwise_corr(_ranks(pred), _ranks(actual))
    sp = np.sign(pred[:, :, None] - pred[:, None, :])
    sa = np.sign(actual[:, :, None] - actual[:, None, :])
    n = pred.shape[1]
    n0 = n * (n - 1) / 2.0
    concord = (sp * sa).sum(axis=(1, 2)) / 2.0
    ties_p = ((sp == 0).sum(axis=(1, 2)) - n) / 2.0
    ties_a = ((sa == 0).sum(axis=(1, 2)) - n) / 2.0
    den = np.sqrt((n0 - ties_p) * (n0 - ties_a))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(den > 0, concord / np.where(den > 0, den, 1.0), np.nan)
    return rho, tau, mae


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` resamples (with replacement) of ``n`` cells: a (n_boot x n) index matrix."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite ``values`` (NaN, NaN when none is finite)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    q = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(v, [q, 100.0 - q])
    return float(lo), float(hi)


def bootstrap_metric_cis(
    pred: np.ndarray, actual: np.ndarray, idx: np.ndarray, level: float
) -> dict[str, tuple[float, float]]:
    """Percentile CIs of Spearman / Kendall / MAE over the cell resamples ``idx`` (B x n).

    The held-out predictions are fixed; only which cells are scored is resampled.
    """
    rho, tau, mae = batch_metrics(np.asarray(pred)[idx], np.asarray(actual)[idx])
    return {
        "spearman": percentile_ci(rho, level),
        "kendall": percentile_ci(tau, level),
        "mae": percentile_ci(mae, level),
    }


@dataclass(frozen=True)
class ComparisonSettings:
    n_boot: int = DEFAULT_N_BOOT
    ci_level: float = DEFAULT_CI_LEVEL
    seed: int = DEFAULT_SEED


def compare_predictors(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    configured: Sequence[str] | None = None,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
    settings: ComparisonSettings = ComparisonSettings(),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fit_comparison, fit_heldout): every predictor set under every applicable evaluation scheme.

    One bootstrap index matrix (seeded) is shared by every scheme and predictor, so their CIs are
    paired.
    """
    table = cell_table(features, gains)
    y = table["gain"].to_numpy().astype(np.float64)
    idx = bootstrap_indices(table.height, settings.n_boot, settings.seed)
    comp_rows: list[dict[str, object]] = []
    held: list[pl.DataFrame] = []
    for scheme in SCHEMES:
        folds = scheme_folds(table, scheme)
        if folds is None:
            continue
        fold_of = np.empty(table.height, dtype=object)
        for label, rows in folds:
            fold_of[rows] = label
        for name, cols in predictor_sets(configured).items():
            pred, alpha = grouped_predict(_matrix(table, cols), y, folds, alphas)
            rho, tau, mae = rank_metrics(pred, y)
            ci = bootstrap_metric_cis(pred, y, idx, settings.ci_level)
            fin = alpha[np.isfinite(alpha)]
            comp_rows.append(
                {
                    "scheme": scheme,
                    "predictor": name,
                    "features": ",".join(cols),
                    "n_cells": table.height,
                    "n_folds": len(folds),
                    "spearman": rho,
                    "spearman_lo": ci["spearman"][0],
                    "spearman_hi": ci["spearman"][1],
                    "kendall": tau,
                    "kendall_lo": ci["kendall"][0],
                    "kendall_hi": ci["kendall"][1],
                    "mae": mae,
                    "mae_lo": ci["mae"][0],
                    "mae_hi": ci["mae"][1],
                    "alpha_median": float(np.median(fin)) if fin.size else float("nan"),
                    "n_boot": settings.n_boot,
                    "ci_level": settings.ci_level,
                }
            )
            held.append(
                table.select(CELL_KEYS).with_columns(
                    pl.lit(scheme).alias("scheme"),
                    pl.lit(name).alias("predictor"),
                    pl.Series("fold", fold_of.tolist(), dtype=pl.String),
                    pl.Series("gain", y),
                    pl.Series("pred", pred),
                    pl.Series("alpha", alpha),
                )
            )
    comparison = conform(pl.DataFrame(comp_rows, schema=_comparison_schema()), "fit_comparison")
    heldout = conform(pl.concat(held), "fit_heldout")
    return comparison, heldout


def _comparison_schema() -> dict[str, pl.DataType | type[pl.DataType]]:
    return FIT_COMPARISON.polars_schema
