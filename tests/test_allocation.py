"""Sample allocation across cells: exact against brute force, within budget, and evaluated honestly."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from bongain.fit.allocation import allocation_tables, plan


def brute(curves, prompts, budget):
    c, k = curves.shape
    best, arg = -np.inf, None
    for ns in itertools.product(range(1, k + 1), repeat=c):
        if sum(p * n for p, n in zip(prompts, ns, strict=True)) > budget * sum(prompts) + 1e-9:
            continue
        v = sum(p * curves[i, n - 1] for i, (p, n) in enumerate(zip(prompts, ns, strict=True)))
        if v > best + 1e-12:
            best, arg = v, ns
    return best, arg


@pytest.mark.parametrize("seed", range(20))
def test_plan_is_optimal_and_within_budget(seed):
    rng = np.random.default_rng(seed)
    c, k = rng.integers(1, 5), rng.integers(1, 6)
    curves = np.cumsum(rng.normal(0, 0.1, size=(c, k)), axis=1)  # not necessarily concave
    prompts = rng.integers(1, 6, size=c)
    budget = rng.uniform(1, k)
    got = plan(curves, prompts, budget)
    assert got.min() >= 1 and got.max() <= k
    assert (got * prompts).sum() <= budget * prompts.sum() + 1e-9
    value = sum(p * curves[i, n - 1] for i, (p, n) in enumerate(zip(prompts, got, strict=True)))
    want, _ = brute(curves, prompts, budget)
    assert value == pytest.approx(want, abs=1e-9)


def test_plan_moves_samples_to_the_cell_that_gains():
    # cell 0 saturates at k = 1 (gain 0 everywhere), cell 1 gains linearly: with 4 samples per prompt on
    # average the optimum gives cell 0 one sample and cell 1 seven
    curves = np.array([[0.0] * 8, [0.05 * (k - 1) for k in range(1, 9)]])
    assert plan(curves, [10, 10], 4).tolist() == [1, 7]
    with pytest.raises(ValueError, match="below one sample"):
        plan(curves, [10, 10], 0.5)


def curve_table(pred: dict, k_max: int) -> pl.DataFrame:
    rows = []
    for (m, me, t), values in pred.items():
        for k in range(1, k_max + 1):
            rows.append(
                {"model": m, "method": me, "task": t, "status": "evaluated", "k": k, "pred": values[k - 1]}
            )
    return pl.DataFrame(rows)


def test_allocation_beats_uniform_when_the_prediction_is_right_and_reports_an_interval():
    rng = np.random.default_rng(3)
    n, p = 8, 200
    # easy cell: every sample right or wrong per prompt (no gain from more samples)
    easy = np.repeat(rng.random((p, 1)) < 0.6, n, axis=1).astype(float)
    # hard cell: per-prompt best-of-k accuracy rises with k
    q = rng.uniform(0.05, 0.3, size=(p, 1))
    hard = 1 - (1 - q) ** np.arange(1, n + 1)
    bon = {("m", "a", "easy"): easy, ("m", "a", "hard"): hard}
    truth = {c: v.mean(axis=0) - v.mean(axis=0)[0] for c, v in bon.items()}
    alloc, summary = allocation_tables(curve_table(truth, n), bon, [2, 4], n_boot=300, ci_level=0.9, seed=0)
    for row in summary.iter_rows(named=True):
        assert row["samples_planned"] <= row["budget"] + 1e-9
        assert row["acc_planned"] > row["acc_uniform"] and row["diff_lo"] > 0
        assert row["acc_oracle"] >= row["acc_planned"] - 1e-12
    easy_rows = alloc.filter(pl.col("task") == "easy")
    assert easy_rows["n_planned"].to_list() == [1, 1]
    # a wrong prediction (the gains swapped) loses to uniform, and the table says so
    swapped = {("m", "a", "easy"): truth[("m", "a", "hard")], ("m", "a", "hard"): truth[("m", "a", "easy")]}
    _, bad = allocation_tables(curve_table(swapped, n), bon, [4], n_boot=300, ci_level=0.9, seed=0)
    assert bad["diff"][0] < 0 and bad["diff_hi"][0] < 0


def test_budget_outside_the_measured_n_names_the_limit():
    bon = {("m", "a", "t"): np.ones((3, 4))}
    with pytest.raises(ValueError, match=r"1\.\.4"):
        allocation_tables(
            curve_table({("m", "a", "t"): [0, 0, 0, 0]}, 4), bon, [5], n_boot=10, ci_level=0.9, seed=0
        )


def test_allocate_command_prints_the_plan(tmp_path, capsys):
    from bongain.cli import main
    from bongain.io import write_parquet_atomic

    rows = []
    for task, gains in (("flat", [0.0] * 4), ("steep", [0.0, 0.1, 0.2, 0.3])):
        for k, g in enumerate(gains, start=1):
            rows.append(
                {
                    "model": "m",
                    "method": "x",
                    "task": task,
                    "status": "screened",
                    "k": k,
                    "gain_k": None,
                    "pred": g,
                    "pred_lo": g - 0.1,
                    "pred_hi": g + 0.1,
                    "level": 0.9,
                    "covered": None,
                }
            )
    curve = pl.DataFrame(rows, schema_overrides={"gain_k": pl.Float64, "covered": pl.Boolean})
    write_parquet_atomic(curve, tmp_path / "fit" / "curve.parquet", "fit_curve")
    assert main(["allocate", "--budget", "2.5", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "samples per prompt used: 2.500" in out
    assert main(["allocate", "--budget", "2", "--results", str(tmp_path / "missing")]) == 1


# ------------------------------------------------------------------------------ within a cell, by bins


def test_prefix_bon_follows_each_order_and_averages_to_exact_best_of_k():
    from bongain.cellstats.passk import bon_prompt_values
    from bongain.fit.allocation import prefix_bon

    rng = np.random.default_rng(0)
    p, n, r = 5, 6, 4000
    rewards = rng.integers(0, 3, size=(p, n)).astype(float)  # ties on purpose
    correct = rng.random((p, n)) < 0.5
    order = np.argsort(rng.random((p, r, n)), axis=-1)
    acc, _ = prefix_bon(rewards, correct, order)
    for i in range(p):
        for j in range(3):
            seq = order[i, j]
            for m in range(1, n + 1):
                first = seq[:m]
                top = first[np.argmax(rewards[i, first])]  # first of the maxima along the order
                assert acc[i, j, m - 1] == correct[i, top]
    exact = bon_prompt_values(rewards, correct)
    se = np.sqrt(exact * (1 - exact) / r) + 1e-9
    assert np.all(np.abs(acc.mean(axis=1) - exact) < 5 * se + 1e-12)


def test_binned_allocation_spends_samples_on_the_hard_prompts():
    from bongain.fit.allocation import binned_allocation

    rng = np.random.default_rng(1)
    p, n = 200, 8
    hard = np.arange(p) % 2 == 1
    # easy prompts: every sample right and scored high; hard prompts: scored low, one in four right,
    # and the right ones score a little higher, so more samples help
    correct = np.where(hard[:, None], rng.random((p, n)) < 0.25, True)
    rewards = np.where(
        hard[:, None], 0.2 * correct + rng.normal(0, 0.1, (p, n)), 1.0 + rng.normal(0, 0.01, (p, n))
    )
    res = binned_allocation(rewards, correct, 3, pilot=1, n_bins=2, n_orders=16, rng=np.random.default_rng(2))
    for plan_ in res["plans"]:
        assert plan_.tolist()[0] > plan_.tolist()[1]  # bin 0 (low pilot reward) gets more samples
        assert plan_[1] == 1  # the easy bin stops at its pilot
    assert res["acc_planned"] > res["acc_uniform"] + 0.05
    assert res["samples_used"] <= 3 + 0.1
    with pytest.raises(ValueError, match=r"allocation\.pilot"):
        binned_allocation(rewards, correct, 1, pilot=2, n_bins=2, n_orders=2, rng=np.random.default_rng(0))


def test_binned_tables_rows_and_interval():
    from bongain.fit.allocation import binned_tables

    rng = np.random.default_rng(4)
    inputs = {("m", "x", "t"): (rng.normal(size=(40, 6)), rng.random((40, 6)) < 0.4)}
    out = binned_tables(inputs, [1, 2, 4, 9], pilot=2, n_bins=2, n_orders=8, n_boot=100, ci_level=0.9, seed=0)
    assert out["budget"].to_list() == [2, 4]  # 1 is below the pilot, 9 above N
    assert ((out["diff_lo"] <= out["diff"]) & (out["diff"] <= out["diff_hi"])).all()
    again = binned_tables(inputs, [2, 4], pilot=2, n_bins=2, n_orders=8, n_boot=100, ci_level=0.9, seed=0)
    assert again.equals(out)
