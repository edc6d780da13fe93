"""Complementary-pairs stability selection (CPSS) over the cell features, and the compact OLS model.

Stability selection as Shah & Samworth (2013) state it (after Meinshausen & Buehlmann 2010):

* the penalty grid is ``n_lambdas`` values, log-spaced from ``lambda_max`` (the smallest penalty that
  selects nothing on the full data, standardised features, centred gain) down to
  ``lambda_min_ratio * lambda_max``;
* B = ``n_boot`` seeded **complementary pairs**: each pair splits the cells at random into two disjoint
  halves of floor(n/2) cells (without replacement; with n odd one cell sits out). On each of the 2B
  half-samples the features are standardised with the half's own mean/SD (a column constant in the
  half is never selected), the gain is centred and the Lasso path is fitted
  (:func:`sklearn.linear_model.lasso_path`);
* the selector is the **union over the admissible penalties**: for the grid prefix lambda_max ..
  lambda_k, a feature is selected on a half-sample if the Lasso selects it at any of those penalties.
  The prefix is admissible when the mean size of that union over the 2B halves (q_hat) is at most
  ``max_selected`` (q); the admissible set is the longest admissible prefix;
* ``max_freq`` = the fraction of the 2B halves whose union selector contains the feature; the *stable
  set* = features with ``max_freq >= threshold`` (pi);
* ``ev_bound = q_hat^2 / ((2 pi - 1) p)`` bounds the expected number of falsely stable features under
  the exchangeability and better-than-random assumptions of Meinshausen-Buehlmann (Shah & Samworth,
  eq. 7, which hold for CPSS with this q_hat); ``bound_vacuous`` says when it is no guarantee: it is at
  least the number of stable features (at least 1 when none is stable), so it does not rule out that
  every stable feature is a false one.
* with fewer than 6 cells (halves of at most 2 cells, on which every usable standardised column is
  perfectly correlated with the centred gain) no feature is declared stable.

Compact model: the stable set when it is non-empty and small enough for the cells
(``|S| <= max(1, (n_cells - 1) // cells_per_feature)``), otherwise the strict core
(agreement_spread, first_correct_pos, length_var), restricted to usable (non-constant) columns and, when
still too large, to its most stable members. It is fitted by statsmodels OLS on the raw feature scale.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import statsmodels.api as sm
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import lasso_path

from bongain.fit.compare import STRICT_CORE
from bongain.fit.table import FEATURE_COLUMNS, cell_table, design_matrix, usable_columns
from bongain.io import conform
from bongain.schemas import FIT_OLS, FIT_STABILITY, FIT_STABILITY_PATH

_SELECT_TOL = 1e-10

#: Half-samples smaller than this (fewer than 6 cells) declare nothing stable.
MIN_HALF = 3


@dataclass(frozen=True)
class StabilitySettings:
    n_boot: int = 200
    threshold: float = 0.6
    n_lambdas: int = 25
    lambda_min_ratio: float = 0.01
    max_selected: int = 4
    cells_per_feature: int = 4
    seed: int = 0

    @classmethod
    def from_config(cls, fit_cfg: Mapping[str, Any]) -> StabilitySettings:
        """From the complete ``fit`` config block: its ``stability`` sub-block and the fit ``seed``."""
        return cls(**fit_cfg["stability"], seed=fit_cfg["seed"])


@dataclass(frozen=True)
class StabilityResult:
    stability: pl.DataFrame  # fit_stability
    path: pl.DataFrame  # fit_stability_path
    compact: list[str]
    basis: str


def _standardise(X: np.ndarray) -> np.ndarray:
    """Standardise usable columns; unusable (constant / non-finite) columns become 0."""
    Z = np.zeros_like(X)
    ok = usable_columns(X)
    if ok.any():
        Z[:, ok] = (X[:, ok] - X[:, ok].mean(axis=0)) / X[:, ok].std(axis=0)
    return Z


@dataclass(frozen=True)
class Frequencies:
    lambdas: np.ndarray  # (L,) decreasing
    freq: np.ndarray  # (p, L): fraction of half-samples selecting the feature at lambda_k
    mean_selected: np.ndarray  # (L,): mean number selected at lambda_k
    freq_union: np.ndarray  # (p, L): fraction of halves selecting it at any of lambda_0..lambda_k
    mean_union: np.ndarray  # (L,): mean size of that union (q_hat of the prefix)
    n_halves: int  # 2B


def complementary_halves(n: int, n_pairs: int, seed: int) -> np.ndarray:
    """(2 B, floor(n/2)) row indices: pairs of disjoint halves, rows 2b and 2b + 1 from one permutation."""
    if n < 2:
        raise ValueError(f"complementary pairs need at least 2 cells, got {n}")
    rng = np.random.default_rng(seed)
    h = n // 2
    out = np.empty((2 * n_pairs, h), dtype=np.int64)
    for b in range(n_pairs):
        perm = rng.permutation(n)
        out[2 * b] = np.sort(perm[:h])
        out[2 * b + 1] = np.sort(perm[h : 2 * h])
    return out


def selection_frequencies(X: np.ndarray, y: np.ndarray, settings: StabilitySettings) -> Frequencies:
    """Per-penalty and union selection frequencies over ``settings.n_boot`` complementary pairs."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, p = X.shape
    Z = _standardise(X)
    lam_max = float(np.max(np.abs(Z.T @ (y - y.mean()))) / n)
    if not lam_max > 0:
        lam_max = 1.0
    lambdas = lam_max * np.logspace(0.0, np.log10(settings.lambda_min_ratio), settings.n_lambdas)
    halves = complementary_halves(n, settings.n_boot, settings.seed)
    counts = np.zeros((p, lambdas.size))
    counts_u = np.zeros((p, lambdas.size))
    n_sel = np.zeros(lambdas.size)
    n_union = np.zeros(lambdas.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for idx in halves:
            Zb = _standardise(X[idx])
            yb = y[idx] - y[idx].mean()
            _, coefs, _ = lasso_path(Zb, yb, alphas=lambdas, max_iter=10_000, tol=1e-8)
            sel = np.abs(coefs) > _SELECT_TOL  # (p, L), alphas in the given (decreasing) order
            union = np.logical_or.accumulate(sel, axis=1)
            counts += sel
            counts_u += union
            n_sel += sel.sum(axis=0)
            n_union += union.sum(axis=0)
    m = halves.shape[0]
    return Frequencies(lambdas, counts / m, n_sel / m, counts_u / m, n_union / m, m)


def vacuous(ev_bound: float, n_stable: int) -> bool:
    """The error bound guarantees nothing: it allows every stable feature (or one, if none) to be false."""
    return not (np.isfinite(ev_bound) and ev_bound < max(n_stable, 1))


def max_compact_features(n_cells: int, cells_per_feature: int) -> int:
    """The most features the compact OLS may use with ``n_cells`` cells."""
    return max(1, min(n_cells - 2, (n_cells - 1) // max(cells_per_feature, 1)))


def stability_selection(
    features: pl.DataFrame,
    gains: pl.DataFrame,
    feature_cols: Sequence[str] = FEATURE_COLUMNS,
    settings: StabilitySettings = StabilitySettings(),
    *,
    target: str = "bon",
) -> StabilityResult:
    """Selection frequencies of every feature, the stable set, and the compact feature set."""
    if not 0.0 < settings.threshold <= 1.0:
        raise ValueError(f"stability threshold must be in (0, 1], got {settings.threshold}")
    table = cell_table(features, gains, target)
    cols = list(feature_cols)
    X = design_matrix(table, cols)
    y = table["gain"].to_numpy().astype(np.float64)
    fr = selection_frequencies(X, y, settings)
    p = len(cols)
    # longest admissible prefix of the grid (mean union size is non-decreasing along the grid)
    admissible = np.cumprod(fr.mean_union <= settings.max_selected + 1e-12).astype(bool)
    if admissible.any():
        last = int(np.flatnonzero(admissible)[-1])
        max_freq = fr.freq_union[:, last]
        lam_at = np.full(p, fr.lambdas[last])
        q_hat = float(fr.mean_union[last])
    else:
        max_freq = np.full(p, np.nan)
        lam_at = np.full(p, np.nan)
        q_hat = float("nan")
    # halves of 2 cells: every usable standardised column is +-(y centred), all tie, the pick is arbitrary
    stable = (max_freq >= settings.threshold) & (table.height // 2 >= MIN_HALF)
    pi = settings.threshold
    ev = q_hat**2 / ((2 * pi - 1) * p) if pi > 0.5 else float("nan")
    compact, basis = choose_compact(cols, max_freq, stable, X, table.height, settings.cells_per_feature)
    stab = pl.DataFrame(
        {
            "feature": cols,
            "max_freq": max_freq,
            "lambda_at_max": lam_at,
            "stable": stable,
            "in_compact": [c in compact for c in cols],
            "threshold": [pi] * p,
            "max_selected": [settings.max_selected] * p,
            "q_hat": [q_hat] * p,
            "ev_bound": [ev] * p,
            "bound_vacuous": [vacuous(ev, int(stable.sum()))] * p,
            "n_boot": [settings.n_boot] * p,
            "half_size": [table.height // 2] * p,
        },
        schema=FIT_STABILITY.polars_schema,
    )
    path_rows = [
        {
            "feature": c,
            "lambda": float(lam),
            "lambda_rel": float(lam / fr.lambdas[0]),
            "freq": float(fr.freq[j, li]),
            "mean_selected": float(fr.mean_selected[li]),
            "freq_union": float(fr.freq_union[j, li]),
            "mean_union": float(fr.mean_union[li]),
            "admissible": bool(admissible[li]),
        }
        for j, c in enumerate(cols)
        for li, lam in enumerate(fr.lambdas)
    ]
    path = pl.DataFrame(path_rows, schema=FIT_STABILITY_PATH.polars_schema)
    return StabilityResult(
        conform(stab, "fit_stability"), conform(path, "fit_stability_path"), compact, basis
    )


def choose_compact(
    cols: Sequence[str],
    max_freq: np.ndarray,
    stable: np.ndarray,
    X: np.ndarray,
    n_cells: int,
    cells_per_feature: int,
) -> tuple[list[str], str]:
    """(compact features, basis): the stable set if it fits, else the (truncated) strict core."""
    limit = max_compact_features(n_cells, cells_per_feature)
    usable = dict(zip(cols, usable_columns(X), strict=True))
    stable_set = [c for c, s in zip(cols, stable, strict=True) if s and usable[c]]
    if 1 <= len(stable_set) <= limit:
        return stable_set, "stable_set"
    freq = dict(zip(cols, np.nan_to_num(max_freq, nan=0.0), strict=True))
    core = [c for c in STRICT_CORE if usable.get(c, False)]
    if not core:  # no usable core column: fall back to the most stable usable features
        core = [c for c in cols if usable[c]]
    if len(core) > limit:
        keep = sorted(core, key=lambda c: (-freq.get(c, 0.0), core.index(c)))[:limit]
        core = [c for c in core if c in keep]
    return core, "strict_core"


_DATE_RE = re.compile(r"(Date:\s+)([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4})")
_TIME_RE = re.compile(r"(Time:\s+)(\d{2}:\d{2}:\d{2})")


def _scrub(text: str) -> str:
    """Blank statsmodels' Date/Time fields (same width) so the summary is reproducible."""
    text = _DATE_RE.sub(lambda m: m.group(1) + "-".rjust(len(m.group(2))), text)
    return _TIME_RE.sub(lambda m: m.group(1) + "-".rjust(len(m.group(2))), text)


def fit_ols(
    features: pl.DataFrame, gains: pl.DataFrame, compact: Sequence[str], basis: str, *, target: str = "bon"
) -> tuple[pl.DataFrame, str]:
    """(fit_ols table, summary text) of OLS gain ~ 1 + compact features (raw scale)."""
    table = cell_table(features, gains, target)
    cols = list(compact)
    y = table["gain"].to_numpy().astype(np.float64)
    X = design_matrix(table, cols) if cols else np.empty((table.height, 0))
    design = np.column_stack([np.ones(table.height), X])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.OLS(y, design).fit()
        ci = np.asarray(res.conf_int(alpha=0.05))
        summary = res.summary(yname="gain", xname=["(intercept)", *cols]).as_text()
        se, tv, pv = (np.asarray(a, dtype=np.float64) for a in (res.bse, res.tvalues, res.pvalues))
    resid = y - res.fittedvalues
    sd = X.std(axis=0) if cols else np.empty(0)
    names = ["(intercept)", *cols]
    k = len(names)
    out = pl.DataFrame(
        {
            "feature": names,
            "coef": np.asarray(res.params, dtype=np.float64),
            "se": se,
            "t": tv,
            "p_value": pv,
            "ci_lo": ci[:, 0],
            "ci_hi": ci[:, 1],
            "coef_std": np.r_[np.nan, np.asarray(res.params)[1:] * sd],
            "basis": [basis] * k,
            "n_cells": [table.height] * k,
            "df_resid": [float(res.df_resid)] * k,
            "r2": [float(res.rsquared)] * k,
            "resid_rmse": [float(np.sqrt(np.mean(resid**2)))] * k,
            "resid_max_abs": [float(np.max(np.abs(resid)))] * k,
        },
        schema=FIT_OLS.polars_schema,
    )
    header = (
        f"Compact OLS model of the best-of-N gain (basis: {basis}; features: {', '.join(cols) or 'none'}).\n"
        "Raw feature scale. Source: results/fit/ols.parquet. "
        "Date/Time fields blanked for reproducibility.\n\n"
    )
    return conform(out, "fit_ols"), header + _scrub(summary) + "\n"


def ols_predict(ols: pl.DataFrame, features: pl.DataFrame) -> np.ndarray:
    """The compact OLS prediction for each feature row."""
    coefs = dict(zip(ols["feature"].to_list(), ols["coef"].to_list(), strict=True))
    pred = np.full(features.height, coefs.get("(intercept)", 0.0), dtype=np.float64)
    for f, b in coefs.items():
        if f != "(intercept)":
            pred = pred + b * features[f].cast(pl.Float64).to_numpy()
    return pred
