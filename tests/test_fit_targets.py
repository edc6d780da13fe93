"""The cross-cell tables over several targets: the oracle gap and every reward model's gain, the trivial
baseline, and the reward-model summary and agreement."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from bongain.fit import compare, reward_models, strategies, table
from bongain.io import conform
from test_fit import make_grid_cells

SETTINGS = compare.ComparisonSettings(n_boot=60, n_perm=99, seed=3)
COLS = ["coverage", "agreement_mean", "pass1"]


def two_reward_models(seed: int = 13) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """A grid of cells with an oracle gap above both reward models' gains; reward model b's gains are a's
    plus per-cell noise."""
    features, gains = make_grid_cells(seed=seed)
    rng = np.random.default_rng(seed)
    keys = gains.select("model", "method", "task").unique(maintain_order=True)
    extra = keys.with_columns(
        _gap=pl.Series(rng.uniform(0.05, 0.4, keys.height)),
        _noise=pl.Series(rng.normal(0, 0.05, keys.height)),
        _eff=pl.Series(rng.uniform(0.2, 0.9, keys.height)),
        _auc=pl.Series(rng.uniform(0.4, 0.9, keys.height)),
    )
    g = gains.drop("gain_oracle", "efficiency", "auc").join(
        extra, on=["model", "method", "task"], maintain_order="left"
    )

    def rm(name: str, gain: pl.Expr) -> pl.DataFrame:
        oracle = pl.col("gain").abs() + pl.col("_gap")
        return conform(
            g.with_columns(gain=gain)
            .with_columns(
                rm=pl.lit(name),
                gain_oracle=oracle,
                gain_oracle_lo=oracle - 0.04,
                gain_oracle_hi=oracle + 0.04,
                efficiency=pl.col("_eff"),
                auc=pl.col("_auc"),
                gap_floor=pl.lit(0.05),
            )
            .drop("_gap", "_noise", "_eff", "_auc"),
            "gains",
        )

    a = rm("a", pl.col("gain"))
    b = rm("b", pl.col("gain") + pl.col("_noise"))
    # the oracle gap does not depend on the reward model: the same in both tables
    b = b.drop("gain_oracle", "gain_oracle_lo", "gain_oracle_hi").join(
        a.select("model", "method", "task", "k", "gain_oracle", "gain_oracle_lo", "gain_oracle_hi"),
        on=["model", "method", "task", "k"],
        maintain_order="left",
    )
    return features, {"a": a, "b": conform(b, "gains")}


def _metrics(df: pl.DataFrame) -> pl.DataFrame:
    cols = ["scheme", "predictor", "spearman", "spearman_lo", "perm_p", "null_q95", "noise_ceiling"]
    return df.select(*cols, "delta_trivial", "delta_trivial_lo", "delta_trivial_hi", "headline")


def test_every_target_equals_its_own_single_target_comparison() -> None:
    """One call over the oracle gap and both reward models' gains gives, per target, exactly the rows of a
    separate comparison of that target (the same folds, permutations and resamples: they depend on the
    cells only), marked with its target and reward model."""
    features, by_rm = two_reward_models()
    targets = table.comparison_targets("bon", ["a", "b"])
    assert [t.label for t in targets] == ["oracle", "bon:a", "bon:b"]
    fit_target = table.make_target("bon", "b")
    comp, held = compare.compare_predictors(
        features, by_rm, COLS, settings=SETTINGS, targets=targets, fit_target=fit_target
    )
    assert conform(comp, "fit_comparison").equals(comp) and conform(held, "fit_heldout").equals(held)
    assert comp.select("target", "rm").unique(maintain_order=True).rows() == [
        ("oracle", None),
        ("bon", "a"),
        ("bon", "b"),
    ]
    assert comp.filter(pl.col("fit_target")).select("target", "rm").unique().rows() == [("bon", "b")]
    assert comp.filter(pl.col("headline")).height == 3
    for t in targets:
        rows = comp.filter((pl.col("target") == t.strategy) & pl.col("rm").eq_missing(t.rm))
        alone, _ = compare.compare_predictors(
            features, by_rm[t.rm or "a"], COLS, settings=SETTINGS, target=t.strategy
        )
        assert _metrics(rows).equals(_metrics(alone)), t.label
    # the oracle gap is the same whichever reward model's table it is read from
    oracle_b, _ = compare.compare_predictors(features, by_rm["b"], COLS, settings=SETTINGS, target="oracle")
    assert _metrics(oracle_b).equals(_metrics(comp.filter(pl.col("target") == "oracle")))


def test_trivial_baseline_rows_and_the_difference_from_them() -> None:
    features, by_rm = two_reward_models(seed=21)
    comp, _ = compare.compare_predictors(
        features, by_rm, COLS, settings=SETTINGS, targets=table.comparison_targets("bon", ["a", "b"])
    )
    cells = table.target_table(features, by_rm, table.Target("oracle"))
    gap = cells["coverage"].to_numpy() - cells["pass1"].to_numpy()
    np.testing.assert_allclose(cells["validation_gap"].to_numpy(), gap)
    for (target, rm), rows in comp.group_by(["target", "rm"], maintain_order=True):
        raw = rows.filter((pl.col("scheme") == "raw") & (pl.col("predictor") == "gap")).row(0, named=True)
        y = table.target_table(features, by_rm, table.make_target(target, rm or "a"))["gain"].to_numpy()
        assert raw["spearman"] == pytest.approx(stats.spearmanr(gap, y).statistic, abs=1e-12)
        assert raw["alternative"] == "two-sided" and raw["delta_trivial"] is None
        held = rows.filter(pl.col("scheme") != "raw")
        for scheme, part in held.group_by("scheme", maintain_order=True):
            trivial = part.filter(pl.col("predictor") == "gap").row(0, named=True)
            assert trivial["features"] == "validation_gap" and trivial["delta_trivial"] is None
            for r in part.filter(pl.col("predictor") != "gap").iter_rows(named=True):
                assert r["delta_trivial"] == pytest.approx(r["spearman"] - trivial["spearman"], abs=1e-12)
                assert r["delta_trivial_lo"] <= r["delta_trivial_hi"], (scheme, r["predictor"])


def test_strategy_fit_has_a_row_per_reward_model_and_the_oracle_gap() -> None:
    features, by_rm = two_reward_models()
    out = strategies.strategy_fit(
        features, by_rm, COLS, settings=SETTINGS, fit_target=table.make_target("bon", "b")
    )
    assert out.select("strategy", "rm").rows() == [
        ("oracle", None),
        ("bon", "a"),
        ("bon", "b"),
        ("maj", None),
        ("wmaj", "a"),
        ("wmaj", "b"),
        ("bom", "a"),
        ("bom", "b"),
        ("mob", "a"),
        ("mob", "b"),
        ("selfcert", None),
    ]
    assert out.filter(pl.col("fit_target")).select("strategy", "rm").rows() == [("bon", "b")]
    comp, _ = compare.compare_predictors(
        features, by_rm, COLS, settings=SETTINGS, targets=table.comparison_targets("bon", ["a", "b"])
    )
    for r in comp.filter(pl.col("headline")).iter_rows(named=True):
        row = out.filter((pl.col("strategy") == r["target"]) & pl.col("rm").eq_missing(r["rm"])).row(
            0, named=True
        )
        for col in ("spearman", "perm_p", "null_q95", "noise_ceiling"):
            assert row[col] == pytest.approx(r[col], abs=1e-12), (r["target"], r["rm"], col)


def test_rm_summary_and_agreement_by_hand() -> None:
    features, by_rm = two_reward_models()
    summary = reward_models.rm_summary(features, by_rm, SETTINGS)
    agreement = reward_models.rm_agreement(features, by_rm, SETTINGS)
    assert conform(summary, "fit_rm_summary").equals(summary)
    assert summary["rm"].to_list() == ["a", "b"]
    last = {
        rm: g.filter(pl.col("k") == g["k"].max()).sort("model", "method", "task") for rm, g in by_rm.items()
    }
    for r in summary.iter_rows(named=True):
        f = last[r["rm"]]
        gain, gap = f["gain"].to_numpy(), f["gain_oracle"].to_numpy()
        assert r["n_cells"] == f.height
        assert r["pooled_efficiency"] == pytest.approx(gain.sum() / gap.sum(), abs=1e-12)
        assert r["efficiency_median"] == pytest.approx(float(np.median(f["efficiency"].to_numpy())))
        assert r["auc_mean"] == pytest.approx(float(f["auc"].mean()))
        assert r["n_efficiency"] == r["n_auc"] == f.height
        assert r["pooled_efficiency_lo"] <= r["pooled_efficiency_hi"]
    assert agreement.select("a", "b").rows() == [("oracle", "a"), ("oracle", "b"), ("a", "b")]
    ab = agreement.filter((pl.col("a") == "a") & (pl.col("b") == "b")).row(0, named=True)
    expected = stats.spearmanr(last["a"]["gain"].to_numpy(), last["b"]["gain"].to_numpy()).statistic
    assert ab["spearman"] == pytest.approx(expected, abs=1e-12)
    assert -1 <= ab["spearman_lo"] <= ab["spearman_hi"] <= 1
    # a reward model compared with itself agrees perfectly
    same = reward_models.rm_agreement(
        features, {"a": by_rm["a"], "c": by_rm["a"].with_columns(rm=pl.lit("c"))}, SETTINGS
    )
    assert same.filter(pl.col("a") == "a")["spearman"][0] == pytest.approx(1.0)


def test_gains_of_several_reward_models_in_one_table_are_refused() -> None:
    features, by_rm = two_reward_models()
    both = pl.concat(list(by_rm.values()))
    with pytest.raises(ValueError, match="several reward models"):
        table.cell_table(features, both)
    assert list(table.gains_by_rm(both, ["b", "a"])) == ["b", "a"]
    with pytest.raises(ValueError, match="no tables of reward model"):
        table.gains_by_rm(both, ["a", "z"])
