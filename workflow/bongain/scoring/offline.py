"""Verifiers: anything that gives each sample a reward. Best-of-N returns the highest-reward sample.

The default, offline verifier is a logistic regression on per-sample generation signals, trained on the
labelled samples of the cell's ``verifier_train`` split (never on test). Its signals use only what a
reward model could see: the sample's own log-probabilities, entropies, length and its extracted answer
(agreement with the prompt's other samples), never the label.

A real reward model plugs in by implementing :class:`Verifier` (``name`` and ``score``); the ones in
:mod:`bongain.scoring.hf_rm` and :mod:`bongain.scoring.vllm_rm` do. :mod:`bongain.scoring.registry` picks
one from its ``reward_models.<name>`` config block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

SIGNALS: tuple[str, ...] = ("mean_logprob", "mean_entropy", "agreement", "n_tokens", "has_answer")
KEYS = ["prompt_id", "sample_idx"]


class Verifier(Protocol):
    name: str

    def score(self, samples: pl.DataFrame, grades: pl.DataFrame) -> np.ndarray:
        """One reward per row of ``samples`` (same order). ``grades`` may be used for the extracted
        ``answer`` only, never for ``correct``."""
        ...


def signal_frame(samples: pl.DataFrame, grades: pl.DataFrame) -> pl.DataFrame:
    """Per-sample signals, in the row order of ``samples``.

    agreement = (samples of the same prompt with the same non-null answer, excluding itself) / (N - 1);
    0 for a sample without an answer or when N = 1.
    """
    answers = grades.select([*KEYS, "answer"])
    df = samples.select([*KEYS, "mean_logprob", "mean_entropy", "n_tokens"]).join(
        answers, on=KEYS, how="left", maintain_order="left"
    )
    if df["answer"].len() != samples.height:
        raise ValueError("grades do not match samples one to one")
    n = pl.len().over("prompt_id")
    same = pl.len().over(["prompt_id", "answer"])
    return df.with_columns(
        agreement=pl.when(pl.col("answer").is_null() | (n <= 1))
        .then(0.0)
        .otherwise((same - 1).cast(pl.Float64) / (n - 1).cast(pl.Float64)),
        has_answer=pl.col("answer").is_not_null().cast(pl.Float64),
        n_tokens=pl.col("n_tokens").cast(pl.Float64),
    )


@dataclass(frozen=True)
class OfflineLogisticVerifier:
    signals: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    n_train: int
    train_positive_rate: float
    name: str = "offline_logistic"

    def score(self, samples: pl.DataFrame, grades: pl.DataFrame) -> np.ndarray:
        x = signal_frame(samples, grades).select(self.signals).to_numpy().astype(np.float64)
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def to_table(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "signal": [*self.signals, "(intercept)"],
                "mean": [*self.mean.tolist(), 0.0],
                "scale": [*self.scale.tolist(), 1.0],
                "coef": [*self.coef.tolist(), self.intercept],
                "n_train": [self.n_train] * (len(self.signals) + 1),
                "train_positive_rate": [self.train_positive_rate] * (len(self.signals) + 1),
            }
        )

    @classmethod
    def from_table(cls, table: pl.DataFrame) -> OfflineLogisticVerifier:
        body = table.filter(pl.col("signal") != "(intercept)")
        icpt = table.filter(pl.col("signal") == "(intercept)")
        if icpt.height != 1:
            raise ValueError("verifier table needs exactly one '(intercept)' row")
        return cls(
            signals=tuple(body["signal"].to_list()),
            mean=body["mean"].to_numpy(),
            scale=body["scale"].to_numpy(),
            coef=body["coef"].to_numpy(),
            intercept=float(icpt["coef"][0]),
            n_train=int(icpt["n_train"][0]),
            train_positive_rate=float(icpt["train_positive_rate"][0]),
        )


def train_offline_verifier(
    samples: pl.DataFrame,
    grades: pl.DataFrame,
    signals: tuple[str, ...],
    C: float = 1.0,
) -> OfflineLogisticVerifier:
    """Fit the logistic verifier on labelled samples (``grades.correct``).

    Signals are standardised with the training mean and std (std 0 -> 1). With a single class in the
    labels no boundary can be learned: all coefficients are 0 and every sample gets the same reward, so
    best-of-k reduces to a uniformly random pick (bon@k = pass@1).
    """
    unknown = [s for s in signals if s not in SIGNALS]
    if unknown:
        raise ValueError(f"unknown verifier signal(s) {unknown}; known: {list(SIGNALS)}")
    x = signal_frame(samples, grades).select(signals).to_numpy().astype(np.float64)
    y = (
        samples.select(KEYS)
        .join(grades.select([*KEYS, "correct"]), on=KEYS, how="left", maintain_order="left")["correct"]
        .fill_null(False)
        .to_numpy()
        .astype(int)
    )
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    rate = float(y.mean()) if y.size else 0.0
    if y.size == 0 or y.min() == y.max():
        coef = np.zeros(len(signals))
        p = min(max(rate, 1e-6), 1 - 1e-6)
        intercept = float(np.log(p / (1 - p)))
    else:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=C, solver="lbfgs", max_iter=1000)
        clf.fit((x - mean) / scale, y)
        coef = clf.coef_[0].astype(np.float64)
        intercept = float(clf.intercept_[0])
    return OfflineLogisticVerifier(
        signals=tuple(signals),
        mean=mean,
        scale=scale,
        coef=coef,
        intercept=intercept,
        n_train=int(y.size),
        train_positive_rate=rate,
    )
