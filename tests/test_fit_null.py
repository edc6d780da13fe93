"""Permutation null, closed-form nested CV, grid-respecting bootstrap and noise ceiling (issue 9)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from bongain.fit import compare, null, ridge


def _grid(n_methods: int = 3, n_tasks: int = 5, models: tuple[str, ...] = ("m",)) -> pl.DataFrame:
    keys = [(m, f"me{i}", f"t{j}") for m in models for i in range(n_methods) for j in range(n_tasks)]
    return pl.DataFrame(
        {"model": [k[0] for k in keys], "method": [k[1] for k in keys], "task": [k[2] for k in keys]}
    )


def _folds(n: int, groups: np.ndarray | None = None) -> list[tuple[str, np.ndarray]]:
    if groups is None:
        return [(str(i), np.array([i])) for i in range(n)]
    return [(str(g), np.flatnonzero(groups == g)) for g in np.unique(groups)]


# --------------------------------------------------------------------------------------------------
# closed form vs the sklearn reference


@pytest.mark.parametrize("seed", range(8))
def test_closed_form_nested_cv_matches_sklearn_fold_by_fold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, p = 15, int(rng.integers(1, 18))
    X = rng.normal(size=(n, p))
    if seed % 3 == 0:
        X[:, -1] = 2.0  # a constant column is dropped in every fold
    if seed == 6:
        X[:, :] = 1.0  # nothing usable: the mean of the training cells
    y = 0.5 * X[:, 0] + rng.normal(size=n)
    groups = None if seed % 2 else np.repeat(np.arange(5), 3)
    folds = _folds(n, groups)
    ref_pred, ref_alpha = compare.grouped_predict(X, y, folds)  # sklearn RidgeCV per fold
    test = compare.heldout_permutation_test(X, y, folds, np.arange(n)[None])
    np.testing.assert_allclose(test.pred, ref_pred, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.isnan(test.alpha), np.isnan(ref_alpha))
    np.testing.assert_allclose(test.alpha[np.isfinite(ref_alpha)], ref_alpha[np.isfinite(ref_alpha)])
    # each permuted target is handled like an independent run of the sklearn procedure
    perm = np.stack([rng.permutation(n) for _ in range(3)])
    batch, _ = ridge.nested_predict_batch(
        [ridge.fold_smoother(X, np.setdiff1d(np.arange(n), r), r) for _, r in folds], y[perm]
    )
    for b in range(3):
        np.testing.assert_allclose(batch[b], compare.grouped_predict(X, y[perm[b]], folds)[0], atol=1e-9)


def test_changing_the_held_out_cell_moves_only_its_own_prediction_through_its_features() -> None:
    rng = np.random.default_rng(3)
    n = 12
    X = rng.normal(size=(n, 3))
    y = X @ np.array([0.4, -0.2, 0.1]) + 0.05 * rng.normal(size=n)
    folds = _folds(n)
    base = compare.heldout_permutation_test(X, y, folds, np.arange(n)[None]).pred
    X2 = X.copy()
    X2[4] += np.array([3.0, -2.0, 1.0])  # the held-out cell's own features change
    moved = compare.heldout_permutation_test(X2, y, folds, np.arange(n)[None]).pred
    assert abs(moved[4] - base[4]) > 0.5  # its prediction follows its features
    # and equals the fit on the other cells (which did not change) applied to the new features
    train = np.arange(n) != 4
    assert moved[4] == pytest.approx(ridge.fit_ridge(X[train], y[train]).predict(X2[4:5])[0], abs=1e-9)


# --------------------------------------------------------------------------------------------------
# permutations


def test_grid_permutations_are_the_full_level_group_once_each() -> None:
    t = _grid(3, 5)
    perms = null.null_permutations(t, n_perm=999, seed=0)
    assert perms.kind == "grid" and perms.exact
    assert perms.index.shape == (3 * 2 * 120 - 1, 15)  # 3! x 5! - identity
    assert len({tuple(r) for r in perms.index.tolist()}) == perms.index.shape[0]
    method = t["method"].to_numpy()
    task = t["task"].to_numpy()
    for row in perms.index[::37]:
        assert sorted(row.tolist()) == list(range(15))
        # cells of one task are sent to cells of one task, and cells of one method to one method
        for col in (method, task):
            for level in np.unique(col):
                assert len(set(col[row[col == level]].tolist())) == 1


def test_grid_permutations_are_sampled_when_the_group_is_large_and_cells_when_not_a_grid() -> None:
    t = _grid(4, 6)  # 4! x 6! = 17280 > 999 + 1
    perms = null.null_permutations(t, n_perm=50, seed=1)
    assert perms.kind == "grid" and not perms.exact and perms.index.shape == (50, 24)
    again = null.null_permutations(t, n_perm=50, seed=1)
    np.testing.assert_array_equal(perms.index, again.index)
    incomplete = t.head(23)
    p2 = null.null_permutations(incomplete, n_perm=50, seed=1)
    assert p2.kind == "cells" and p2.index.shape == (50, 23)
    tiny = _grid(1, 4)  # one factor: 4! permutations of the cells, enumerated
    p3 = null.null_permutations(tiny, n_perm=999, seed=0)
    assert p3.exact and p3.index.shape == (23, 4)


def test_perm_pvalue_formula() -> None:
    null_stats = np.array([0.1, 0.5, 0.5, -0.9, np.nan])
    assert null.perm_pvalue(null_stats, 0.5) == pytest.approx((1 + 2) / 6)
    assert null.perm_pvalue(null_stats, 0.6) == pytest.approx(1 / 6)
    assert null.perm_pvalue(null_stats, 0.5, "two-sided") == pytest.approx((1 + 3) / 6)
    assert math.isnan(null.perm_pvalue(null_stats, float("nan")))


def _simulate(rng: np.random.Generator, informative: bool) -> tuple[np.ndarray, np.ndarray]:
    n = 15
    X = rng.normal(size=(n, 3))
    noise = rng.normal(size=n)
    y = (1.0 * X[:, 0] + 0.5 * noise) if informative else noise
    return X, y


@pytest.mark.parametrize(
    "scheme", [pytest.param("leave_one_cell_out", marks=pytest.mark.slow), "leave_one_method_out"]
)
def test_heldout_pvalues_uniform_without_signal_and_small_with_it(scheme: str) -> None:
    # 200 seeded datasets at the default grid size (3 methods x 5 tasks), the exact grid null (719).
    t = _grid(3, 5)
    perms = null.null_permutations(t, n_perm=999, seed=0)
    groups = None if scheme == "leave_one_cell_out" else t["method"].to_numpy()
    folds = _folds(15, groups)
    rng = np.random.default_rng(2024)
    p_null = []
    rho_null = []
    for _ in range(200):
        X, y = _simulate(rng, informative=False)
        res = compare.heldout_permutation_test(X, y, folds, perms.index)
        p_null.append(res.p_value)
        rho_null.append(res.spearman)
    p_null = np.array(p_null)
    # the raw held-out Spearman is biased (LOO anti-correlation), the p-value is not
    assert np.median(rho_null) < -0.1
    assert np.mean(p_null <= 0.05) < 0.10
    assert stats.kstest(p_null, "uniform").pvalue > 0.001
    p_sig = []
    for _ in range(60):
        X, y = _simulate(rng, informative=True)
        p_sig.append(compare.heldout_permutation_test(X, y, folds, perms.index).p_value)
    assert np.mean(np.array(p_sig) <= 0.05) > 0.8


# --------------------------------------------------------------------------------------------------
# grid-respecting bootstrap


def test_cluster_bootstrap_draws_whole_tasks_and_methods() -> None:
    t = _grid(3, 5)
    boot = compare.cluster_bootstrap(t, n_boot=300, seed=4)
    assert boot.factors == ["method", "task"] and boot.kind == "clusters(method,task)"
    method = t["method"].to_numpy()
    task = t["task"].to_numpy()
    for r in boot.resamples:
        assert r.size == 15  # complete grid: 3 x 5 cells per resample
        cnt = np.bincount(r, minlength=15).reshape(3, 5)  # rows: methods, cols: tasks (sorted order)
        # a product of per-method and per-task draw counts: rank one, margins sum to 3 and 5
        m_counts = cnt.sum(axis=1) / max(cnt.sum(axis=0).max(), 1)
        assert np.linalg.matrix_rank(cnt) == 1
        assert cnt.sum() == 15 and np.all(m_counts >= 0)
    # every method is absent from some resample (P = (2/3)^3 each), which cell bootstraps almost never do
    missing_method = [any(np.all(method[r] != level) for r in boot.resamples) for level in np.unique(method)]
    assert all(missing_method)
    assert all(set(task[r]) <= set(task) for r in boot.resamples)


def test_cluster_bootstrap_single_factor_and_incomplete_grid() -> None:
    t = _grid(1, 6)
    boot = compare.cluster_bootstrap(t, n_boot=20, seed=0)
    assert boot.factors == ["task"] and all(r.size == 6 for r in boot.resamples)
    inc = _grid(3, 4).head(10)
    b2 = compare.cluster_bootstrap(inc, n_boot=50, seed=0)
    assert all(r.size > 0 for r in b2.resamples)
    rho, _tau, _mae = compare.resampled_metrics(np.arange(10.0), np.arange(10.0), b2.resamples)
    assert rho.shape == (50,) and np.all(rho[np.isfinite(rho)] > 0.999)


# --------------------------------------------------------------------------------------------------
# noise ceiling


def test_noise_ceiling_matches_a_direct_simulation_of_truth_and_measurement() -> None:
    # Truth drawn from a known distribution; the measured gains are truth + noise with known SEs. The
    # ceiling computed from one measured vector and the SEs alone must match the expected Spearman of
    # truth vs measurement (simulated directly, with fresh truths) within Monte-Carlo tolerance.
    rng = np.random.default_rng(5)
    n, sd_true = 15, 0.08
    se = rng.uniform(0.02, 0.06, n)
    direct = []
    ceilings = []
    for _ in range(300):
        truth = rng.normal(0.1, sd_true, n)
        measured = truth + rng.normal(0, 1, n) * se
        direct.append(stats.spearmanr(truth, measured).statistic)
        if len(ceilings) < 40:
            ceilings.append(null.noise_ceiling(measured, se, seed=len(ceilings), n_draws=400).spearman)
    assert np.mean(ceilings) == pytest.approx(np.mean(direct), abs=0.05)
    # no noise -> 1; overwhelming noise -> near 0
    g = rng.normal(size=n)
    assert null.noise_ceiling(g, np.zeros(n), seed=0).spearman == pytest.approx(1.0)
    assert null.noise_ceiling(g, np.full(n, 100.0), seed=0).spearman == 0.0
    assert null.noise_ceiling(g, np.full(n, 0.8), seed=0).spearman < 0.9


def test_gain_se_from_ci_half_width() -> None:
    se = null.gain_se(np.array([0.0]), np.array([2 * 1.959963984540054]), 0.95)
    assert se[0] == pytest.approx(1.0, rel=1e-9)


def test_headline_is_the_hardest_scheme_with_three_groups() -> None:
    h = compare.headline_scheme
    assert h({"leave_one_method_out": 3, "leave_one_task_out": 5}) == "leave_one_method_out"
    assert h({"leave_one_method_out": 2, "leave_one_task_out": 5}) == "leave_one_task_out"
    assert h({"leave_one_model_out": 3, "leave_one_method_out": 3}) == "leave_one_model_out"
    assert h({"leave_one_method_out": 2, "leave_one_cell_out": 4}) == "leave_one_cell_out"


def test_all_grid_permutations_enumerated_is_itertools_product() -> None:
    t = _grid(2, 3)
    perms = null.null_permutations(t, n_perm=999, seed=0)
    assert perms.index.shape[0] == math.factorial(2) * math.factorial(3) - 1
    expected = set()
    for pm in itertools.permutations(range(2)):
        for pt in itertools.permutations(range(3)):
            expected.add(tuple(pm[i] * 3 + pt[j] for i in range(2) for j in range(3)))
    expected.discard(tuple(range(6)))
    assert {tuple(r) for r in perms.index.tolist()} == expected


def test_grouped_ci_coverage_simulation_cluster_beats_cells_under_grid_effects() -> None:
    from bongain.fit.coverage_sim import simulate_ci_coverage

    r = simulate_ci_coverage(n_methods=3, n_tasks=5, n_sims=150, n_boot=300, effect_sd=2.0, seed=3)
    assert -1.0 < r.target < 1.0
    # 150 draws: SE of a coverage near 0.95 is ~0.018; the cell bootstrap ignores the shared method/task
    # effects and under-covers, the cluster bootstrap does not
    assert r.coverage_cluster >= 0.9
    assert r.coverage_cells < r.coverage_cluster - 0.05
    assert r.mean_width_cluster > r.mean_width_cells


# --------------------------------------------------------------------------------------------------
# family blocks: permutations map every family group onto a family group


def _family_grid(families: dict[str, str], n_methods: int = 1, n_tasks: int = 2) -> pl.DataFrame:
    t = _grid(n_methods, n_tasks, tuple(families))
    return t.with_columns(pl.col("model").replace_strict(families).alias("family"))


def _brute_force_family_maps(t: pl.DataFrame) -> set[tuple[int, ...]]:
    """Every cell map of (model perm in S_k) x (task perm) x (method perm) that sends each family group
    of cells onto a family group (checked on the cells, not on the family structure)."""
    models = sorted(set(t["model"].to_list()))
    methods = sorted(set(t["method"].to_list()))
    tasks = sorted(set(t["task"].to_list()))
    row = {k: i for i, k in enumerate(t.select("model", "method", "task").iter_rows())}
    fam = t["family"].to_numpy()
    groups = [np.flatnonzero(fam == f) for f in np.unique(fam)]
    out = set()
    for pm in itertools.permutations(models):
        mm = dict(zip(models, pm, strict=True))
        for pe in itertools.permutations(methods):
            me = dict(zip(methods, pe, strict=True))
            for pt in itertools.permutations(tasks):
                tt = dict(zip(tasks, pt, strict=True))
                idx = np.array(
                    [
                        row[(mm[m], me[e], tt[k])]
                        for m, e, k in t.select("model", "method", "task").iter_rows()
                    ]
                )
                if all(any(set(idx[g].tolist()) == set(h.tolist()) for h in groups) for g in groups):
                    out.add(tuple(idx.tolist()))
    return out


@pytest.mark.parametrize(
    ("families", "order"),
    [
        ({"a1": "A", "a2": "A", "b1": "B", "b2": "B"}, 2 * 2 * 2 * 2),  # 2! x (2!)^2 x 2! tasks
        ({"a1": "A", "a2": "A", "b": "B"}, 2 * 2),  # within A only x 2! tasks
        ({"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c": "C"}, 2 * 2 * 2 * 2),
    ],
)
def test_family_permutations_are_exactly_the_block_preserving_maps(
    families: dict[str, str], order: int
) -> None:
    t = _family_grid(families)
    perms = null.null_permutations(t, n_perm=999, seed=0)
    assert perms.kind == "grid-family" and perms.exact and perms.group_size == order
    got = {tuple(r) for r in perms.index.tolist()}
    assert len(got) == perms.index.shape[0] == order - 1
    assert got | {tuple(range(t.height))} == _brute_force_family_maps(t)


def test_sampled_family_permutations_map_family_and_model_groups_onto_groups() -> None:
    families = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C", "c2": "C"}
    t = _family_grid(families, n_methods=3, n_tasks=5)  # 3! 2^3 x 3! x 5! = 34560 > 1000
    perms = null.null_permutations(t, n_perm=200, seed=4)
    assert perms.kind == "grid-family" and not perms.exact and perms.group_size == 48 * 6 * 120
    again = null.null_permutations(t, n_perm=200, seed=4)
    np.testing.assert_array_equal(perms.index, again.index)
    cols = [t[c].to_numpy() for c in ("family", "model", "method", "task")]
    moved_family = False
    for row in perms.index:
        assert sorted(row.tolist()) == list(range(t.height))
        for col in cols:
            for level in np.unique(col):
                src = row[col == level]
                assert len(set(col[src].tolist())) == 1  # one group of the same kind
                assert src.size == np.sum(col == col[src[0]])  # all of it
        fam = cols[0]
        moved_family |= bool(np.any(fam[row] != fam))
    assert moved_family  # families do trade places


@pytest.mark.parametrize("families", [None, {"a": "A", "b": "B", "c": "C"}, {"a": "F", "b": "F", "c": "F"}])
def test_one_model_per_family_or_one_family_leaves_the_grid_null_unchanged(
    families: dict[str, str] | None,
) -> None:
    base = _grid(2, 3, ("a", "b", "c"))
    t = (
        base
        if families is None
        else base.with_columns(pl.col("model").replace_strict(families).alias("family"))
    )
    for n_perm in (999, 30):
        want = null.null_permutations(base, n_perm=n_perm, seed=2)
        got = null.null_permutations(t, n_perm=n_perm, seed=2)
        assert got.kind == "grid" and got.group_size == want.group_size
        np.testing.assert_array_equal(got.index, want.index)


def test_headline_prefers_families_then_models() -> None:
    h = compare.headline_scheme
    assert compare.HEADLINE_ORDER[0] == "leave_one_family_out"
    assert h({"leave_one_family_out": 3, "leave_one_model_out": 6}) == "leave_one_family_out"
    assert h({"leave_one_family_out": 2, "leave_one_model_out": 3}) == "leave_one_model_out"
