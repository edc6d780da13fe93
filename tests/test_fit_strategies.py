"""The per-strategy fit (bongain.fit.strategies): which strategy's gain the configured ridge ranks best."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from bongain.fit import compare, strategies
from bongain.fit.table import TARGETS
from bongain.io import conform
from test_fit import make_grid_cells

SETTINGS = compare.ComparisonSettings(n_boot=50, seed=3, n_perm=199)
COLS = ["coverage", "agreement_mean", "pass1"]


def with_strategy(gains: pl.DataFrame, name: str, values: pl.Expr) -> pl.DataFrame:
    col = f"gain_{name}"
    return gains.with_columns(values.alias(col)).with_columns(
        (pl.col(col) - 0.01).alias(f"{col}_lo"), (pl.col(col) + 0.02).alias(f"{col}_hi")
    )


def noise_by_cell(gains: pl.DataFrame, seed: int) -> pl.Expr:
    keys = gains.select("model", "method", "task").unique().sort(["model", "method", "task"])
    labels = [f"{a}/{b}/{c}" for a, b, c in keys.rows()]
    vals = np.random.default_rng(seed).normal(0.1, 0.05, len(labels))
    lookup = dict(zip(labels, vals.tolist(), strict=True))
    return pl.concat_str(["model", "method", "task"], separator="/").replace_strict(
        lookup, return_dtype=pl.Float64
    )


@pytest.mark.parametrize("models", [("m",), ("a", "b", "c")])
def test_bon_row_equals_the_headline_row_of_compare_predictors(models: tuple[str, ...]) -> None:
    features, gains = make_grid_cells(seed=13, models=models)
    comp, _ = compare.compare_predictors(features, gains, COLS, settings=SETTINGS)
    head = comp.filter(pl.col("headline")).row(0, named=True)
    out = strategies.strategy_fit(features, gains, COLS, settings=SETTINGS)
    assert conform(out, "fit_strategy").equals(out)
    bon = out.filter(pl.col("strategy") == "bon").row(0, named=True)
    assert bon["scheme"] == head["scheme"] and bon["n_folds"] == head["n_folds"]
    assert bon["n_cells"] == head["n_cells"] and bon["n_perm"] == head["n_perm"]
    assert bon["null_kind"] == head["null_kind"] and bon["features"] == head["features"]
    for col in ("spearman", "perm_p", "null_q95", "noise_ceiling"):
        assert bon[col] == pytest.approx(head[col], abs=1e-12), col
    assert bon["gain_mean"] == pytest.approx(gains.filter(pl.col("k") == 1)["gain"].mean())
    assert out["strategy"].to_list() == list(TARGETS)
    assert out.filter(pl.col("fit_target"))["strategy"].to_list() == ["bon"]


def test_a_strategy_without_a_gain_in_every_cell_is_skipped_with_a_reason() -> None:
    features, gains = make_grid_cells(seed=13)
    gains = with_strategy(gains, "maj", pl.col("gain") * 0.5)
    gains = with_strategy(gains, "selfcert", pl.lit(None, dtype=pl.Float64))
    out = strategies.strategy_fit(features, gains, COLS, settings=SETTINGS, target="maj")
    sc = out.filter(pl.col("strategy") == "selfcert").row(0, named=True)
    assert "gain_selfcert" in sc["skipped"] and "self-certainty" in sc["skipped"]
    assert sc["spearman"] is None and sc["n_cells"] is None and not sc["best"]
    maj = out.filter(pl.col("strategy") == "maj").row(0, named=True)
    assert maj["skipped"] is None and maj["fit_target"]
    # the same ranking (gain halved): the same Spearman and null as bon; the tie goes to bon (first)
    bon = out.filter(pl.col("strategy") == "bon").row(0, named=True)
    assert maj["spearman"] == pytest.approx(bon["spearman"]) and maj["perm_p"] == bon["perm_p"]
    assert out.filter(pl.col("best"))["strategy"].to_list() == ["bon"]


def test_best_is_the_highest_spearman_and_p_values_are_in_range() -> None:
    features, gains = make_grid_cells(seed=13)
    # bon: pure noise; maj: the signal; bom: a noisier signal
    signal = pl.col("gain")
    gains = with_strategy(gains, "maj", signal)
    gains = with_strategy(gains, "bom", signal + 0.5 * noise_by_cell(gains, 1))
    gains = gains.with_columns(gain=noise_by_cell(gains, 2))
    out = strategies.strategy_fit(features, gains, COLS, settings=SETTINGS)
    done = out.filter(pl.col("skipped").is_null())
    assert set(done["strategy"]) == {"bon", "maj", "bom"}
    top = done.sort("spearman", descending=True, maintain_order=True)["strategy"][0]
    assert out.filter(pl.col("best"))["strategy"].to_list() == [top] == ["maj"]
    b = int(out["n_perm"][0])
    for p in done["perm_p"]:
        assert 1.0 / (b + 1) - 1e-12 <= p <= 1.0
    assert done.filter(pl.col("strategy") == "maj")["perm_p"][0] < 0.05


def test_no_fittable_strategy_raises() -> None:
    features, gains = make_grid_cells(seed=13)
    gains = gains.with_columns(gain=pl.lit(None, dtype=pl.Float64))
    with pytest.raises(ValueError, match="no strategy"):
        strategies.strategy_fit(features, gains, COLS, settings=SETTINGS)
