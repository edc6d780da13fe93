"""The offline verifier: signals, training, persistence, the single-class edge case."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from bongain.io import conform
from bongain.scoring.offline import OfflineLogisticVerifier, signal_frame, train_offline_verifier

SIGNALS = ("mean_logprob", "mean_entropy", "agreement")  # the reward_model.signals default


def tables(answers, correct, logprobs):
    """answers/correct/logprobs: lists of per-prompt lists."""
    rows_s, rows_g = [], []
    for i, (ans, cor, lps) in enumerate(zip(answers, correct, logprobs, strict=True)):
        for j, (a, c, lp) in enumerate(zip(ans, cor, lps, strict=True)):
            rows_s.append(
                dict(prompt_id=f"p{i}", sample_idx=j, mean_logprob=lp, mean_entropy=-lp / 2, n_tokens=2 + j)
            )
            rows_g.append(dict(prompt_id=f"p{i}", sample_idx=j, answer=a, correct=c))
    return pl.DataFrame(rows_s), pl.DataFrame(rows_g)


def test_agreement_signal():
    s, g = tables([["1", "1", "2", None]], [[True, True, False, False]], [[-1.0] * 4])
    sig = signal_frame(s, g)
    assert sig["agreement"].to_list() == pytest.approx([1 / 3, 1 / 3, 0.0, 0.0])
    assert sig["has_answer"].to_list() == [1.0, 1.0, 1.0, 0.0]


def test_signal_frame_keeps_sample_order():
    s, g = tables([["1", "2"], ["3", "3"]], [[True, False], [True, True]], [[-1.0, -2.0], [-3.0, -4.0]])
    sig = signal_frame(s.reverse(), g)
    assert sig["mean_logprob"].to_list() == [-4.0, -3.0, -2.0, -1.0]


def test_learns_that_confident_agreeing_samples_are_right():
    rng = np.random.default_rng(0)
    answers, correct, lps = [], [], []
    for _ in range(40):
        c = rng.random(6) < 0.4
        answers.append(["7" if x else str(rng.integers(0, 5)) for x in c])
        correct.append(c.tolist())
        lps.append(np.where(c, -0.2, -1.5) + rng.normal(0, 0.3, 6))
    s, g = tables(answers, correct, lps)
    v = train_offline_verifier(s, g, SIGNALS)
    assert v.coef[v.signals.index("mean_logprob")] > 0
    r = v.score(s, g)
    y = g["correct"].to_numpy()
    assert r[y].mean() > r[~y].mean()
    back = OfflineLogisticVerifier.from_table(v.to_table())
    np.testing.assert_allclose(back.score(s, g), r)
    conform(
        v.to_table().with_columns(model=pl.lit("m"), method=pl.lit("x"), task=pl.lit("t"), rm=pl.lit("r")),
        "verifier",
    )


def test_single_class_gives_constant_rewards():
    s, g = tables([["1", "2", "3"]], [[False, False, False]], [[-1.0, -2.0, -3.0]])
    v = train_offline_verifier(s, g, SIGNALS)
    assert np.all(v.coef == 0)
    r = v.score(s, g)
    assert np.ptp(r) == 0


def test_unknown_signal():
    s, g = tables([["1"]], [[True]], [[-1.0]])
    with pytest.raises(ValueError, match="unknown verifier signal"):
        train_offline_verifier(s, g, signals=("vibes",))
