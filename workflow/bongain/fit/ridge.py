"""The cross-cell fit: predict each cell's best-of-N gain from its validation-set output statistics.

Every predictor is a ridge regression on standardised features whose penalty is chosen by inner
leave-one-out CV (:class:`sklearn.linear_model.RidgeCV` with its efficient closed-form LOO). The input
is the cell table of :mod:`bongain.fit.table`. Evaluation is leave-one-cell-out (LOCO): each cell is
predicted by a model fitted on all the other cells only, with standardisation statistics, dropped
columns and penalty all computed from those other cells.

The baseline is the same procedure on ``pass1`` alone ("does the model's accuracy already tell you
the gain?").

Column handling inside each fit (training cells only):

* a column that is constant (zero variance) or holds a non-finite value is dropped; its coefficient is
  reported as NaN ("not fitted");
* if no column survives, the fit predicts the training mean gain and its ``alpha`` is NaN;
* a non-finite value of a kept column in a cell being *predicted* is replaced by the training mean
  (standardised value 0).

Everything is deterministic: cells are processed in (model, method, task) order.

Grouped schemes and the comparison of predictor sets with bootstrap CIs are in
:mod:`bongain.fit.compare`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats
from sklearn.linear_model import RidgeCV

from bongain.constants import CELL_KEYS
from bongain.fit.table import BASELINE_COLUMNS, FEATURE_COLUMNS, cell_table, design_matrix, usable_columns
from bongain.io import conform

#: Ridge penalty grid searched by the inner leave-one-out CV.
DEFAULT_ALPHAS: np.ndarray = np.logspace(-3, 3, 25)


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
    *,
    target: str = "bon",
) -> pl.DataFrame:
    """LOCO predictions of every cell's gain (schema ``fit_predictions``), ridge and pass1 baseline."""
    table = cell_table(features, gains, target)
    y = table["gain"].to_numpy().astype(np.float64)
    pred_ridge = loco_predict(design_matrix(table, feature_cols), y, alphas)
    pred_base = loco_predict(design_matrix(table, BASELINE_COLUMNS), y, alphas)
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
    *,
    target: str = "bon",
) -> pl.DataFrame:
    """Refit ridge and baseline on all cells; one row per feature plus '(intercept)' (``fit_coefficients``).

    A dropped feature (constant or non-finite across cells) has coef NaN.
    """
    table = cell_table(features, gains, target)
    y = table["gain"].to_numpy().astype(np.float64)
    rows = _coef_rows("ridge", fit_ridge(design_matrix(table, feature_cols), y, alphas), feature_cols)
    rows += _coef_rows(
        "baseline", fit_ridge(design_matrix(table, BASELINE_COLUMNS), y, alphas), BASELINE_COLUMNS
    )
    schema = {"predictor": pl.String, "feature": pl.String, "coef": pl.Float64, "alpha": pl.Float64}
    return conform(pl.DataFrame(rows, schema=schema), "fit_coefficients")


def run_fit(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    feature_cols: Sequence[str] | None = None,
    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
    *,
    target: str = "bon",
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(predictions, metrics, coefficients) of the cross-cell fit; needs at least 3 cells. ``target``:
    which strategy's gain is predicted (``fit.target``, :func:`bongain.fit.table.target_columns`)."""
    cols = list(FEATURE_COLUMNS if feature_cols is None else feature_cols)
    preds = leave_one_cell_out(features, gains, cols, alphas, target=target)
    return preds, metrics(preds), coefficients(features, gains, cols, alphas, target=target)


@dataclass(frozen=True)
class FoldSmoother:
    """One outer fold of the nested-CV ridge as linear maps of the training targets, one per penalty.

    For every candidate penalty ``a`` the ridge with an unpenalised intercept on the training cells'
    standardised columns is a linear smoother: fitted training values ``H_a y`` and held-out predictions
    ``P_a y``. The inner leave-one-out residual is ``(y - H_a y) / (1 - diag(H_a))`` (exact for any
    quadratic-penalty least squares), so the penalty :func:`fit_ridge` picks with ``RidgeCV`` and its
    prediction follow from matrix products; :func:`nested_predict_batch` applies them to many target
    vectors at once (the permutation null).
    """

    train: np.ndarray  # training row indices
    test: np.ndarray  # held-out row indices
    hat: np.ndarray | None  # (n_alpha, n_train, n_train); None when no column is usable
    hat_diag: np.ndarray | None  # (n_alpha, n_train)
    pred_map: np.ndarray | None  # (n_alpha, n_test, n_train)


def fold_smoother(
    X: np.ndarray, train: np.ndarray, test: np.ndarray, alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS
) -> FoldSmoother:
    """The :class:`FoldSmoother` of one outer fold (same column handling as :func:`fit_ridge`)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    Xtr = X[train]
    kept = usable_columns(Xtr)
    if not kept.any():
        return FoldSmoother(train=train, test=test, hat=None, hat_diag=None, pred_map=None)
    mean = Xtr[:, kept].mean(axis=0)
    scale = Xtr[:, kept].std(axis=0)
    Z = (Xtr[:, kept] - mean) / scale
    Zte = (X[np.ix_(test, np.flatnonzero(kept))] - mean) / scale
    Zte = np.where(np.isfinite(Zte), Zte, 0.0)
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    a = np.asarray(alphas, dtype=np.float64)[:, None]
    shrink = s**2 / (s**2 + a)  # (n_alpha, r)
    n_tr = train.size
    ones = np.full((n_tr, n_tr), 1.0 / n_tr)
    hat = ones[None] + np.einsum("ir,ar,jr->aij", U, shrink, U)
    coef_map = s / (s**2 + a)  # (n_alpha, r): coef = V diag(coef_map) U' y
    proj = Zte @ Vt.T  # (n_test, r)
    centre = np.eye(n_tr) - 1.0 / n_tr  # predictions use y centred on the training mean
    pred_map = (
        np.full((1, test.size, n_tr), 1.0 / n_tr)
        + np.einsum("tr,ar,jr->atj", proj, coef_map, U) @ centre[None]
    )
    return FoldSmoother(
        train=train, test=test, hat=hat, hat_diag=np.einsum("aii->ai", hat), pred_map=pred_map
    )


def nested_predict_batch(smoothers: Sequence[FoldSmoother], Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions (B x n) and the index of the picked penalty (B x n; -1: mean only).

    ``Y`` holds B target vectors (B x n). Row b equals what :func:`fit_ridge` fold by fold would
    predict for target ``Y[b]``; the penalty is the first one (grid order) with the smallest mean
    squared inner LOO residual, as ``RidgeCV`` picks it.
    """
    Y = np.atleast_2d(np.asarray(Y, dtype=np.float64))
    B, n = Y.shape
    pred = np.full((B, n), np.nan)
    pick = np.full((B, n), -1, dtype=np.int64)
    for sm in smoothers:
        ytr = Y[:, sm.train]  # (B, n_tr)
        if sm.hat is None:
            pred[:, sm.test] = ytr.mean(axis=1, keepdims=True)
            continue
        fitted = np.einsum("aij,bj->abi", sm.hat, ytr)
        with np.errstate(divide="ignore", invalid="ignore"):
            loo = (ytr[None] - fitted) / (1.0 - sm.hat_diag[:, None, :])
        mse = np.mean(loo**2, axis=2)  # (n_alpha, B)
        best = np.argmin(mse, axis=0)  # first minimum in grid order
        all_pred = np.einsum("atj,bj->abt", sm.pred_map, ytr)  # (n_alpha, B, n_test)
        pred[:, sm.test] = all_pred[best, np.arange(B)]
        pick[:, sm.test] = best[:, None]
    return pred, pick
