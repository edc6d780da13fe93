"""Coverage scaling of one cell: pass@k as a function of k, fitted and extrapolated beyond the measured N.

Two models of coverage(k) = pass@k on the test split:

* **power law** (Brown et al. 2024, "Large Language Monkeys"): ``coverage(k) = exp(a * k^b)`` with
  a < 0, b < 0. Then ``log(-log coverage(k)) = log(-a) + b log k`` is linear in log k, so (a, b) come from
  ordinary least squares on the points with 0 < pass@k < 1 (at least two).
* **beta-binomial** (Schaeffer et al. 2025; Kazdan et al. 2025): each prompt's success probability is
  drawn from Beta(alpha, beta), so its correct count is beta-binomial and
  ``coverage(k) = 1 - B(alpha, beta + k) / B(alpha, beta)``. (alpha, beta) maximise the beta-binomial
  likelihood of the per-prompt correct counts.

Held-out k: both models are fitted again on the first ``N // 2`` samples of every prompt only (the power
law on the unbiased pass@k of those samples, k <= N // 2; the beta-binomial on their counts) and judged
by the RMSE of their predictions against the unbiased pass@k of all N samples at k = N // 2 + 1 .. N.
Intervals of the full fits come from a bootstrap over prompts (refit on each resample, percentiles).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy import optimize, special

from bongain.cellstats.passk import pass_prompt_values

FloatArray = NDArray[np.float64]
FITS: tuple[str, ...] = ("power_law", "beta_binomial")
#: default of ``statistics.coverage_extrapolate``: k beyond N at which coverage is extrapolated
DEFAULT_EXTRAPOLATE: tuple[int, ...] = (16, 32, 64, 128, 256)


def power_law_fit(ks: Sequence[int], coverage: Sequence[float]) -> tuple[float, float]:
    """(a, b) of ``coverage(k) = exp(a k^b)`` by least squares of log(-log coverage) on log k.

    Points with coverage 0 or 1 carry no information on this scale and are left out; with fewer than
    two points left the fit is undefined (``nan, nan``).
    """
    k = np.asarray(ks, dtype=np.float64)
    c = np.asarray(coverage, dtype=np.float64)
    keep = (c > 0) & (c < 1)
    if keep.sum() < 2 or np.ptp(np.log(k[keep])) == 0:
        return float("nan"), float("nan")
    x, y = np.log(k[keep]), np.log(-np.log(c[keep]))
    b, intercept = np.polyfit(x, y, 1)
    return float(-np.exp(intercept)), float(b)


def power_law_predict(a: float, b: float, ks: Sequence[int] | NDArray) -> FloatArray:
    return np.exp(a * np.asarray(ks, dtype=np.float64) ** b)


def beta_binomial_fit(
    counts: Sequence[int], n: int, start: tuple[float, float] | None = None
) -> tuple[float, float]:
    """Maximum-likelihood (alpha, beta) of a beta-binomial for correct counts out of n per prompt.

    All-zero or all-n counts have no finite maximum (the likelihood keeps rising towards a point mass):
    then ``nan, nan``. Without overdispersion the maximum is at infinity (the binomial limit): the
    optimiser then stops at very large alpha and beta with the right ratio. ``start`` (alpha, beta)
    warm-starts the search (the bootstrap starts from the full fit).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.size == 0 or np.all(c == 0) or np.all(c == n):
        return float("nan"), float("nan")

    def nll(theta: FloatArray) -> float:
        al, be = np.exp(theta)
        return -float(np.sum(special.betaln(c + al, n - c + be) - special.betaln(al, be)))

    if start is None or not np.all(np.isfinite(start)):
        mean = np.clip(c.mean() / n, 1e-3, 1 - 1e-3)
        start = (mean, 1 - mean)
    x0 = np.log(np.asarray(start, dtype=np.float64))
    res = optimize.minimize(nll, x0, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10})
    al, be = np.exp(res.x)
    return float(al), float(be)


def beta_binomial_predict(alpha: float, beta: float, ks: Sequence[int] | NDArray) -> FloatArray:
    k = np.asarray(ks, dtype=np.float64)
    return 1.0 - np.exp(special.betaln(alpha, beta + k) - special.betaln(alpha, beta))


def _fit_predict(
    fit: str, correct: NDArray[np.bool_], ks: NDArray, start: tuple[float, float] | None = None
) -> FloatArray:
    """Coverage at ``ks`` from a fit of ``fit`` on the samples ``correct [P, n]``."""
    predict = power_law_predict if fit == "power_law" else beta_binomial_predict
    return predict(*_params(fit, correct, start), ks)


def _params(
    fit: str, correct: NDArray[np.bool_], start: tuple[float, float] | None = None
) -> tuple[float, float]:
    """The two parameters of ``fit`` on the samples ``correct [P, n]``."""
    n = correct.shape[1]
    counts = correct.sum(axis=1)
    if fit == "power_law":
        return power_law_fit(range(1, n + 1), pass_prompt_values(counts, n).mean(axis=0))
    return beta_binomial_fit(counts, n, start)


def scaling_table(
    grades: pl.DataFrame, extrapolate: Sequence[int], *, seed: int, n_boot: int, ci_level: float
) -> pl.DataFrame:
    """The COVERAGE table of one cell from its test grades (the caller adds model/method/task)."""
    from bongain.cellstats.features import check_layout, prompt_matrix

    n = check_layout(grades, "grades", ("correct",))
    df = grades.sort("prompt_id", "sample_idx")
    correct = prompt_matrix(df, "correct", n).astype(bool)
    rows = scaling_rows(correct, extrapolate, np.random.default_rng(seed), n_boot=n_boot, ci_level=ci_level)
    k = len(rows["k"])
    return pl.DataFrame(
        {**rows, "n_boot": [n_boot] * k, "ci_level": [float(ci_level)] * k},
        schema_overrides={"observed": pl.Float64},
    )


def scaling_rows(
    correct: NDArray[np.bool_],
    extrapolate: Sequence[int],
    rng: np.random.Generator,
    *,
    n_boot: int,
    ci_level: float,
) -> dict[str, list]:
    """Rows of the COVERAGE table for one cell: per fit, k = 1..N and every extrapolated k > N.

    ``correct [P, N]`` holds the test samples' correctness in sample order.
    """
    p, n = correct.shape
    ks = np.array(sorted({*range(1, n + 1), *(k for k in extrapolate if k > n)}), dtype=np.int64)
    observed = pass_prompt_values(correct.sum(axis=1), n).mean(axis=0)
    half = n // 2
    held_k = np.arange(half + 1, n + 1)
    boot_idx = rng.integers(0, p, size=(n_boot, p))
    alpha = (1 - ci_level) / 2
    rows: dict[str, list] = {
        k: []
        for k in (
            "fit",
            "param_1",
            "param_2",
            "k",
            "observed",
            "predicted",
            "predicted_lo",
            "predicted_hi",
            "heldout_predicted",
            "heldout_rmse",
        )
    }
    for fit in FITS:
        p1, p2 = _params(fit, correct)
        pred = _fit_predict(fit, correct, ks)
        with np.errstate(all="ignore"):
            boots = np.array([_fit_predict(fit, correct[i], ks, (p1, p2)) for i in boot_idx])
            lo = np.nanquantile(boots, alpha, axis=0) if n_boot else np.full(ks.size, np.nan)
            hi = np.nanquantile(boots, 1 - alpha, axis=0) if n_boot else np.full(ks.size, np.nan)
        if half >= 2:
            held = _fit_predict(fit, correct[:, :half], ks)
            rmse = float(np.sqrt(np.mean((held[held_k - 1] - observed[held_k - 1]) ** 2)))
        else:
            held, rmse = np.full(ks.size, np.nan), float("nan")
        for j, k in enumerate(ks):
            rows["fit"].append(fit)
            rows["param_1"].append(p1)
            rows["param_2"].append(p2)
            rows["k"].append(int(k))
            rows["observed"].append(float(observed[k - 1]) if k <= n else None)
            rows["predicted"].append(float(pred[j]))
            rows["predicted_lo"].append(float(lo[j]))
            rows["predicted_hi"].append(float(hi[j]))
            rows["heldout_predicted"].append(float(held[j]))
            rows["heldout_rmse"].append(rmse)
    return rows
