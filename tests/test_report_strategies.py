"""The strategy-comparison and coverage sections of the report, on tables built by the real stages."""

from __future__ import annotations

import numpy as np
import polars as pl

from bongain.cellstats.gains import compute_gains
from bongain.cellstats.scaling import scaling_table
from bongain.report.strategies import scaling_section, strategies_section, strategy_summary
from test_gains import make_tables, samples_with_certainty
from test_scaling import grades_from


def two_cells(certainty: dict[str, list[list[float]]] | None = None) -> pl.DataFrame:
    # cell a: the reward points at a wrong answer that is in the minority, the majority is right
    #   -> majority-type strategies beat best-of-N; cell b: the reward is perfect -> best-of-N is best
    ga, sa = make_tables(
        [["1", "1", "1", "2"], ["3", "3", "3", "4"]],
        [[True, True, True, False], [True, True, True, False]],
        [[0.1, 0.2, 0.3, 0.9], [0.1, 0.2, 0.3, 0.9]],
    )
    gb, sb = make_tables(
        [["1", "2", "2", "2"], ["3", "4", "4", "4"]],
        [[True, False, False, False], [True, False, False, False]],
        [[0.9, 0.1, 0.2, 0.3], [0.9, 0.1, 0.2, 0.3]],
    )
    out = []
    for task, (g, s) in {"a": (ga, sa), "b": (gb, sb)}.items():
        out.append(
            compute_gains(
                g,
                s,
                seed=0,
                n_boot=50,
                samples=samples_with_certainty(g, certainty[task]) if certainty else None,
            ).with_columns(model=pl.lit("m"), method=pl.lit("x"), task=pl.lit(task))
        )
    return pl.concat(out)


def test_strategy_summary_and_section():
    gains = two_cells()
    summary = strategy_summary(gains)
    best = dict(zip(summary["task"], summary["best"], strict=True))
    assert best["b"] == "bon_at_k"
    assert best["a"] in {"maj_at_k", "wmaj_at_k", "bom_at_k", "mob_at_k"}
    a = summary.filter(pl.col("task") == "a").row(0, named=True)
    assert a["bon_at_k"] == 0.0 and a["maj_at_k"] == 1.0 and a["pass_at_1"] == 0.75
    text = "\n".join(strategies_section(gains))
    assert "## Selection strategies" in text and "| m/x/a | 4 | 0.750 |" in text
    assert "best-of-N 1" in text  # cell b
    assert "self-certainty" in text and "| n/a |" in text  # no self-certainty recorded: n/a, never best


def test_self_certainty_in_the_strategy_comparison():
    # the model is most certain of a correct sample in every prompt of both cells: self-certainty is best
    certain = [[0.5, 0.6, 0.9, 0.1], [0.5, 0.6, 0.9, 0.1]]
    first = [[0.9, 0.1, 0.2, 0.3], [0.9, 0.1, 0.2, 0.3]]
    summary = strategy_summary(two_cells({"a": certain, "b": first}))
    a = summary.filter(pl.col("task") == "a").row(0, named=True)
    assert a["selfcert_at_k"] == 1.0 and a["best"] in {
        "maj_at_k",
        "wmaj_at_k",
        "bom_at_k",
        "mob_at_k",
        "selfcert_at_k",
    }
    b = summary.filter(pl.col("task") == "b").row(0, named=True)
    assert b["selfcert_at_k"] == 1.0 and b["bon_at_k"] == 1.0
    text = "\n".join(strategies_section(two_cells({"a": certain, "b": first})))
    assert "| 0.250 [" in text and "| n/a |" not in text


def test_scaling_section_lists_both_fits_per_cell():
    rng = np.random.default_rng(0)
    correct = rng.random((40, 8)) < rng.beta(1, 2, size=40)[:, None]
    cov = scaling_table(grades_from(correct), [64], seed=1, n_boot=20, ci_level=0.9).with_columns(
        model=pl.lit("m"), method=pl.lit("x"), task=pl.lit("t")
    )
    text = "\n".join(scaling_section(cov))
    assert "| m/x/t | beta_binomial |" in text and "| m/x/t | power_law |" in text
    assert "| 64 |" in text and "Mean held-out RMSE over cells: beta_binomial" in text
