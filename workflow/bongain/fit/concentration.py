"""Finite-sample concentration of the compact predictor, and sample-size advice.

Model (docs/statistics.md states it in full): a cell's validation prompts are n i.i.d. draws from the
task distribution and each prompt's N samples are drawn i.i.d. given the prompt, so the per-prompt
quantities q_1..q_n behind a feature (e.g. the modal share m_i, or 1/(c_i+1)) are i.i.d. and lie in a
known interval [lo, hi] of width w (which may depend on N and on the method's max_new_tokens T). The
feature's *population value* is its expectation at the same N.

* ``mean`` features (mean over prompts of q_i): Hoeffding, |f - E f| <= w sqrt(log(2/d) / (2n)).
* ``spread`` features (population SD over prompts of q_i): the population variance v of n values in an
  interval of width w changes by at most w^2/n when one value changes, so McDiarmid gives
  |v - E v| <= w^2 sqrt(log(2/d) / (2n)); with |sqrt(a) - sqrt(b)| <= sqrt(|a - b|) and the ddof = 0
  bias sigma (1 - sqrt(1 - 1/n)) <= sigma / n <= w / (2n):
  |f - sigma| <= w (log(2/d) / (2n))^(1/4) + w / (2n).

With the compact OLS coefficients beta (raw scale, held fixed) and |S| features, a union bound at
d = delta / |S| per feature gives, with probability >= 1 - delta,
|sum_j beta_j (f_j - E f_j)| <= sum_j |beta_j| eps_j.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from bongain.constants import CELL_KEYS
from bongain.fit.stability import ols_predict
from bongain.io import conform
from bongain.schemas import FIT_CONCENTRATION, FIT_CONCENTRATION_TERMS

#: Feature -> kind of statistic over prompts ("mean" or "spread" = population SD).
FEATURE_KIND: dict[str, str] = {
    "agreement_spread": "spread",
    "pass1_spread": "spread",
}

MAX_PROMPTS = 10**12


@dataclass(frozen=True)
class ConcentrationSettings:
    delta: float = 0.05
    targets: tuple[float, ...] = (0.02, 0.05)
    n_prompts_grid: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
    n_samples_grid: tuple[int, ...] = (4, 8, 16, 32)
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, fit_cfg: Mapping[str, Any]) -> ConcentrationSettings:
        """From the complete ``fit`` config block (its ``concentration`` sub-block)."""
        c = fit_cfg["concentration"]
        return cls(
            delta=c["delta"],
            targets=tuple(c["targets"]),
            n_prompts_grid=tuple(c["n_prompts_grid"]),
            n_samples_grid=tuple(c["n_samples_grid"]),
            ranges={f: (float(r[0]), float(r[1])) for f, r in c["ranges"].items()},
        )


def feature_range(
    feature: str,
    n_samples: int,
    max_tokens: float | None = None,
    overrides: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[float, float] | None:
    """The range [lo, hi] of the per-prompt quantity behind ``feature`` at N = ``n_samples``.

    ``max_tokens`` is the method's max_new_tokens T (n_tokens in [0, T]). None when no range is known
    (entropy_mean / logprob_mean without an override, or a token feature without T).
    """
    if overrides and feature in overrides:
        lo, hi = overrides[feature]
        return float(lo), float(hi)
    N = int(n_samples)
    unit = {
        "agreement_mean",
        "agreement_spread",
        "pass1",
        "pass1_spread",
        "coverage",
        "answer_diversity",
        "maj_at_n",
        "truncation_rate",
        "ungradable_rate",
    }
    if feature in unit:
        return 0.0, 1.0
    if feature == "first_correct_pos":
        return 1.0 / (N + 1), 1.0
    if feature == "answer_entropy":
        return 0.0, math.log(N) if N > 1 else 0.0
    if feature in ("length_mean", "length_var"):
        if max_tokens is None or not math.isfinite(float(max_tokens)):
            return None
        T = float(max_tokens)
        if feature == "length_mean":
            return 0.0, T
        # sample variance (ddof = 1) of N values in [0, T] is at most T^2/4 * N/(N-1)
        return 0.0, (T * T / 4.0 * N / (N - 1)) if N > 1 else 0.0
    return None


def deviation_bound(kind: str, width: float, n: int | np.ndarray, d: float) -> np.ndarray:
    """eps such that |feature - population value| <= eps with probability >= 1 - d (n prompts)."""
    n = np.asarray(n, dtype=np.float64)
    base = math.log(2.0 / d) / (2.0 * n)
    if kind == "mean":
        return width * np.sqrt(base)
    if kind == "spread":
        return width * base**0.25 + width / (2.0 * n)
    raise ValueError(f"unknown feature kind {kind!r}")


def prediction_bound(
    coefs: Mapping[str, float],
    n: int | np.ndarray,
    n_samples: int,
    delta: float,
    max_tokens: float | None = None,
    overrides: Mapping[str, tuple[float, float]] | None = None,
) -> np.ndarray:
    """sum_j |beta_j| eps_j(delta / |S|) for raw-scale coefficients ``coefs`` (intercept excluded)."""
    feats = [f for f in coefs if f != "(intercept)"]
    n_arr = np.asarray(n, dtype=np.float64)
    total = np.zeros_like(n_arr)
    if not feats:
        return total
    d = delta / len(feats)
    for f in feats:
        rng = feature_range(f, n_samples, max_tokens, overrides)
        if rng is None:
            return np.full_like(n_arr, np.nan)
        total = total + abs(coefs[f]) * deviation_bound(
            FEATURE_KIND.get(f, "mean"), rng[1] - rng[0], n_arr, d
        )
    return total


def min_prompts(
    target: float,
    coefs: Mapping[str, float],
    n_samples: int,
    delta: float,
    max_tokens: float | None = None,
    overrides: Mapping[str, tuple[float, float]] | None = None,
) -> int | None:
    """The smallest n with prediction_bound <= target (None if not reached by MAX_PROMPTS or unbounded)."""

    def ok(n: int) -> bool:
        b = float(prediction_bound(coefs, n, n_samples, delta, max_tokens, overrides))
        return math.isfinite(b) and b <= target

    if ok(1):
        return 1
    hi = 2
    while not ok(hi):
        hi *= 2
        if hi > MAX_PROMPTS:
            return None
    lo = hi // 2  # not ok(lo), ok(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _coefs(ols: pl.DataFrame) -> dict[str, float]:
    return dict(zip(ols["feature"].to_list(), ols["coef"].to_list(), strict=True))


def concentration_tables(
    features: pl.DataFrame,
    gains_by_cell: pl.DataFrame,
    ols: pl.DataFrame,
    max_tokens: Mapping[str, float],
    settings: ConcentrationSettings = ConcentrationSettings(),
    screened: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(fit_concentration, fit_concentration_terms); the sample-size grid is :mod:`bongain.fit.sample_size`.

    ``features``: evaluated cells' feature rows; ``gains_by_cell``: (model, method, task, gain) per
    evaluated cell; ``ols``: the ``fit_ols`` table; ``max_tokens``: method -> max_new_tokens.
    """
    coefs = _coefs(ols)
    feats = [f for f in coefs if f != "(intercept)"]
    resid_rmse = float(ols["resid_rmse"][0])
    resid_max = float(ols["resid_max_abs"][0])
    delta = settings.delta
    d = delta / max(len(feats), 1)
    parts = [features.sort(CELL_KEYS).with_columns(pl.lit("evaluated").alias("status"))]
    if screened is not None and screened.height:
        parts.append(screened.sort(CELL_KEYS).with_columns(pl.lit("screened").alias("status")))
    allf = pl.concat(parts, how="diagonal_relaxed")
    allf = allf.join(gains_by_cell.select([*CELL_KEYS, "gain"]), on=CELL_KEYS, how="left")
    pred = ols_predict(ols, allf)
    cell_rows, term_rows = [], []
    for r, p in zip(allf.iter_rows(named=True), pred, strict=True):
        T = max_tokens.get(r["method"])
        n, N = int(r["n_prompts"]), int(r["n_samples"])
        total = 0.0
        for f in feats:
            rng = feature_range(f, N, T, settings.ranges)
            kind = FEATURE_KIND.get(f, "mean")
            eps = float(deviation_bound(kind, rng[1] - rng[0], n, d)) if rng else float("nan")
            contrib = abs(coefs[f]) * eps
            total += contrib
            term_rows.append(
                {
                    **{k: r[k] for k in CELL_KEYS},
                    "feature": f,
                    "kind": kind,
                    "range_lo": rng[0] if rng else float("nan"),
                    "range_hi": rng[1] if rng else float("nan"),
                    "coef": coefs[f],
                    "eps": eps,
                    "contribution": contrib,
                }
            )
        halves = [
            abs(coefs[f]) * (float(r[f"{f}_hi"]) - float(r[f"{f}_lo"])) / 2.0
            if r.get(f"{f}_lo") is not None and r.get(f"{f}_hi") is not None
            else float("nan")
            for f in feats
        ]
        gain = r["gain"]
        cell_rows.append(
            {
                **{k: r[k] for k in CELL_KEYS},
                "status": r["status"],
                "n_prompts": n,
                "n_samples": N,
                "delta": delta,
                "bound": total,
                "boot_halfwidth": float(np.sum(halves)) if feats else 0.0,
                "pred": float(p),
                "gain": gain,
                "abs_residual": None if gain is None else abs(gain - float(p)),
                "resid_rmse": resid_rmse,
                "resid_max_abs": resid_max,
            }
        )
    conc = conform(pl.DataFrame(cell_rows, schema=FIT_CONCENTRATION.polars_schema), "fit_concentration")
    terms = conform(
        pl.DataFrame(term_rows, schema=FIT_CONCENTRATION_TERMS.polars_schema), "fit_concentration_terms"
    )
    return conc, terms


def worst_case_bound(
    features: pl.DataFrame,
    ols: pl.DataFrame,
    max_tokens: Mapping[str, float],
    settings: ConcentrationSettings = ConcentrationSettings(),
) -> Callable[[int, int], float]:
    """(n, N) -> the bound, worst case over the evaluated cells (the largest max_new_tokens)."""
    coefs = _coefs(ols)
    tvals = [max_tokens[m] for m in features["method"].unique().to_list() if m in max_tokens]
    T_worst = max(tvals) if tvals else None

    def bound(n: int, N: int) -> float:
        return float(prediction_bound(coefs, n, N, settings.delta, T_worst, settings.ranges))

    return bound
