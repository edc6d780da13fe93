from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bongain.constants import GRADE_STATUSES
from bongain.io import conform
from bongain.report.build import STATS_TABLES, render_report
from bongain.report.cells import FEATURE_TABLE_COLUMNS, grading_counts, grading_section
from bongain.report.figures import (
    FIG_BON_CURVES,
    FIG_CONCENTRATION,
    FIG_GAIN_CURVES,
    FIG_HEADROOM,
    FIG_PRED_VS_ACTUAL,
    FIG_STABILITY,
    gain_intervals,
    plot_bon_curves,
    plot_predicted_vs_actual,
)
from bongain.report.format import fmt, markdown_table
from bongain.schemas import ALL
from test_fit import complete

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N = 3
CELLS = [("llama|1b", "base", "gsm8k"), ("qwen", "base", "gsm8k"), ("qwen", "dpo", "math")]
GAIN = {CELLS[0]: 0.1, CELLS[1]: 0.25, CELLS[2]: -0.05}


def _features() -> pl.DataFrame:
    rows = []
    for i, (m, me, t) in enumerate(CELLS):
        row: dict[str, object] = {"model": m, "method": me, "task": t, "n_prompts": 40, "n_samples": N}
        for j, c in enumerate(FEATURE_TABLE_COLUMNS):
            if c not in ("n_prompts", "n_samples"):
                row[c] = 0.1 * i + 0.01 * j
        rows.append(row)
    return complete(pl.DataFrame(rows), "features")


def _gains() -> pl.DataFrame:
    rows = []
    for cell in CELLS:
        m, me, t = cell
        for k in range(1, N + 1):
            rows.append(
                {
                    "model": m,
                    "method": me,
                    "task": t,
                    "n_prompts": 60,
                    "n_samples": N,
                    "k": k,
                    "pass_at_k": 0.4 + 0.1 * (k - 1),
                    "bon_at_k": 0.4 + GAIN[cell] * (k - 1) / (N - 1),
                    "maj_at_k": 0.4 + 0.02 * (k - 1),
                    "maj_at_k_se": 0.0,
                    "gain": GAIN[cell],
                }
            )
    return complete(pl.DataFrame(rows), "gains")


def _predictions() -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "model": [c[0] for c in CELLS],
                "method": [c[1] for c in CELLS],
                "task": [c[2] for c in CELLS],
                "gain": [GAIN[c] for c in CELLS],
                "pred_ridge": [0.12, 0.2, -0.01],
                "pred_baseline": [0.05, 0.05, 0.05],
            }
        ),
        "fit_predictions",
    )


def _metrics() -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "predictor": ["baseline", "ridge"],
                "n_cells": [3, 3],
                "spearman": [float("nan"), 1.0],
                "kendall": [float("nan"), 1.0],
                "mae": [0.1333333, 0.0333333],
            }
        ),
        "fit_metrics",
    )


def _coefficients() -> pl.DataFrame:
    return conform(
        pl.DataFrame(
            {
                "predictor": ["ridge", "ridge", "ridge", "baseline", "baseline"],
                "feature": ["pass1", "coverage", "(intercept)", "pass1", "(intercept)"],
                "coef": [0.01234, float("nan"), 0.1, -0.02, 0.1],
                "alpha": [1.0, 1.0, 1.0, 31.6227766, 31.6227766],
            }
        ),
        "fit_coefficients",
    )


def _render(out: Path) -> Path:
    return render_report(
        _features(),
        _gains(),
        _predictions(),
        _metrics(),
        _coefficients(),
        out,
        title="BoN gains: test run",
        config_summary={"models": ["llama|1b", "qwen"], "N": N, "prompts": {"validation": 40, "test": 60}},
    )


def _row(md: str, first_cell: str) -> list[str]:
    for line in md.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if cells[0] == first_cell:
                return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report")
    path = _render(out)
    return path, path.read_text(encoding="utf-8")


def test_files_exist_and_pngs_valid(rendered: tuple[Path, str]) -> None:
    path, md = rendered
    assert path.name == "report.md"
    for name in (FIG_PRED_VS_ACTUAL, FIG_BON_CURVES):
        png = path.parent / name
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in md
        assert b"Software" not in png.read_bytes()


def test_title_and_summary(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    assert md.startswith("# BoN gains: test run\n")
    assert "- **cells** (model x method x task): 3" in md
    assert "- **N** (samples per prompt): 3" in md
    assert "- **validation prompts per cell** (features): 40" in md
    assert "- **test prompts per cell** (gains): 60" in md
    assert "- **prompts**: validation=40, test=60" in md
    assert "- **models**: llama\\|1b, qwen" in md


def test_gains_table(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    row = _row(md, "qwen/base/gsm8k")
    # cell, N, pass@1, bon@N, maj@N, pass@N, gain, source
    assert row[:7] == ["qwen/base/gsm8k", "3", "0.400", "0.650", "0.440", "0.600", "0.250"]
    assert row[7] == "[0.250, 0.250]"  # gain_lo / gain_hi (the fixture sets them to the gain)
    assert row[8] == "`results/cells/qwen/base/gsm8k/gains/0.parquet`"  # reward model "0" (the fixture's)
    # sorted by gain, descending; the pipe in a model name is escaped
    order = [
        md.index("| qwen/base/gsm8k | 3"),
        md.index("| llama\\|1b/base/gsm8k | 3"),
        md.index("| qwen/dpo/math | 3"),
    ]
    assert order == sorted(order)
    assert _row(md, "qwen/dpo/math")[6] == "-0.050"


def test_features_table(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    header = _row(md, "cell")  # first table with a 'cell' header is the gains table
    assert header[1] == "N"
    lines = [ln for ln in md.splitlines() if ln.startswith("| cell | agreement_spread")]
    assert len(lines) == 1
    cols = [c.strip() for c in lines[0].strip("|").split(" | ")]
    assert cols[-1] == "source"
    assert cols[1:-1] == [c for c in FEATURE_TABLE_COLUMNS if c not in ("n_prompts", "n_samples")]
    idx = md.index(lines[0])
    feat_rows = [ln for ln in md[idx:].splitlines()[2:5]]
    qwen_dpo = [c.strip() for c in feat_rows[2].strip().strip("|").split(" | ")]
    assert qwen_dpo[0] == "qwen/dpo/math"
    assert qwen_dpo[1] == "0.200"  # 0.1 * 2 + 0.01 * 0
    assert qwen_dpo[3] == "0.220"
    assert qwen_dpo[-1] == "`results/cells/qwen/dpo/math/features.parquet`"


def test_metrics_and_coefficients_tables(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    assert _row(md, "ridge (fit.features)") == ["ridge (fit.features)", "3", "1.000", "1.000", "0.033"]
    assert _row(md, "baseline (pass@1 only)") == ["baseline (pass@1 only)", "3", "n/a", "n/a", "0.133"]
    assert md.index("| ridge (fit.features) | 3") < md.index("| baseline (pass@1 only) | 3")
    assert _row(md, "pass1") == ["pass1", "0.012", "-0.020"]
    assert _row(md, "coverage") == ["coverage", "n/a", "n/a"]
    assert _row(md, "(intercept)") == ["(intercept)", "0.100", "0.100"]
    assert _row(md, "alpha (ridge penalty)") == ["alpha (ridge penalty)", "1.000", "31.623"]


def test_provenance(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    for p in (
        "results/cells/{model}/{method}/{task}/gains/{rm}.parquet",
        "results/cells/{model}/{method}/{task}/features.parquet",
        "results/fit/metrics.parquet",
        "results/fit/predictions.parquet",
        "results/fit/coefficients.parquet",
    ):
        assert f"`{p}`" in md
    for section in md.split("\n## ")[1:]:
        if "|---" in section:
            assert "Source:" in section


def test_two_renders_byte_identical(tmp_path: Path) -> None:
    a = _render(tmp_path / "a")
    b = _render(tmp_path / "b")
    for name in ("report.md", FIG_PRED_VS_ACTUAL, FIG_BON_CURVES):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes(), name


def test_markdown_table_and_fmt() -> None:
    lines = markdown_table(["a", "b"], [["x|y", 1.23456], ["z", -0.0001]])
    assert lines == ["| a | b |", "|---|---:|", "| x\\|y | 1.235 |", "| z | 0.000 |"]
    assert fmt(float("nan")) == "n/a"
    assert fmt(None) == "n/a"
    assert fmt(7) == "7"
    with pytest.raises(ValueError):
        markdown_table(["a"], [[1, 2]])


def test_single_cell_and_many_cells_figures(tmp_path: Path) -> None:
    g = _gains()
    one = g.filter(pl.col("model") == "qwen", pl.col("method") == "dpo")
    assert plot_bon_curves(one, tmp_path / "one.png").read_bytes()[:8] == PNG_MAGIC
    many = pl.concat([g.with_columns(pl.lit(f"m{i}").alias("model")) for i in range(3)])
    assert plot_bon_curves(many, tmp_path / "many.png").read_bytes()[:8] == PNG_MAGIC


# --------------------------------------------------------------------------------------------------
# statistics sections (tables produced by the real fit code on small synthetic cells)


def with_headroom(gains: pl.DataFrame, rm: str, seed: int) -> pl.DataFrame:
    """A reward model's gains tables with an oracle gap above the gain, an efficiency and an AUC per cell
    (the gains stage computes them; here made up per cell, consistent with each other)."""
    rng = np.random.default_rng(seed)
    cells = gains.select("model", "method", "task").unique(maintain_order=True)
    extra = cells.with_columns(
        gap_extra=pl.Series(rng.uniform(0.05, 0.3, cells.height)),
        auc=pl.Series(rng.uniform(0.4, 0.9, cells.height)),
    )
    oracle = pl.col("gain_oracle")
    return conform(
        gains.drop("auc", "gain_oracle")
        .join(extra, on=["model", "method", "task"], maintain_order="left")
        .with_columns(gain_oracle=pl.col("gain").abs() + pl.col("gap_extra"))
        .drop("gap_extra")
        .with_columns(
            rm=pl.lit(rm),
            gain_oracle_lo=oracle - 0.05,
            gain_oracle_hi=oracle + 0.05,
            efficiency=pl.col("gain") / oracle,
            efficiency_lo=pl.col("gain") / oracle - 0.2,
            efficiency_hi=pl.col("gain") / oracle + 0.1,
            gap_floor=pl.lit(0.05),
            auc_lo=pl.col("auc") - 0.1,
            auc_hi=pl.col("auc") + 0.05,
            auc_prompts=pl.lit(7, dtype=pl.Int64),
        ),
        "gains",
    )


@functools.cache
def _rm_gains() -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """The stats fixture's cells and two reward models' gains (the second: the first's gains shuffled)."""
    from test_fit import make_grid_cells

    features, gains = make_grid_cells(n_methods=2, n_tasks=3, seed=5)
    first = with_headroom(gains, "verifier", 1)
    per_cell = first.filter(pl.col("k") == 1).select("model", "method", "task", "gain", "gain_oracle")
    shuffled = per_cell.with_columns(gain=pl.Series(np.random.default_rng(2).permutation(per_cell["gain"])))
    second = (
        first.drop("gain")
        .join(shuffled.select("model", "method", "task", "gain"), on=["model", "method", "task"])
        .with_columns(rm=pl.lit("other"), efficiency=pl.col("gain") / pl.col("gain_oracle"))
    )
    return features, {"verifier": first, "other": conform(second, "gains")}


@functools.cache
def _stats_inputs() -> tuple[pl.DataFrame, pl.DataFrame, dict[str, pl.DataFrame]]:
    from bongain.fit import (
        compare,
        concentration,
        curve,
        reward_models,
        screening,
        stability,
        strategies,
        table,
    )

    features, rm_gains = _rm_gains()
    gains = rm_gains["verifier"]
    cols = ["coverage", "agreement_mean"]
    settings = compare.ComparisonSettings(n_boot=50)
    comp, _ = compare.compare_predictors(features, gains, cols, settings=settings)
    scr = features.head(1).with_columns(pl.lit("screened-task").alias("task"))
    cr = curve.predict_curves(features, gains, cols, screened=scr, level=0.8)
    cells = table.cell_table(features, gains)
    screen = screening.screening_table(
        scr,
        cr.screened_pred[:, -1],
        cr.screened_lo[:, -1],
        cr.screened_hi[:, -1],
        0.8,
        cells["gain"].to_numpy(),
        {"test": 10, "verifier_train": 6},
    )
    st = stability.stability_selection(features, gains, settings=stability.StabilitySettings(n_boot=20))
    ols, _ = stability.fit_ols(features, gains, st.compact, st.basis)
    c, terms = concentration.concentration_tables(
        features, cells.select(["model", "method", "task", "gain"]), ols, {"me0": 8, "me1": 8}, screened=scr
    )
    # allocation: per-prompt test samples synthesised for each cell of the grid
    from bongain.cellstats.passk import bon_prompt_values
    from bongain.fit import allocation

    rng = np.random.default_rng(7)
    n_k = int(cr.curve.filter(pl.col("status") == "evaluated")["k"].max())
    raw = {
        cell: (rng.normal(size=(12, n_k)), rng.random((12, n_k)) < 0.4)
        for cell in cells.select(["model", "method", "task"]).iter_rows()
    }
    bon = {cell: bon_prompt_values(r, c) for cell, (r, c) in raw.items()}
    across, summary = allocation.allocation_tables(cr.curve, bon, [2], n_boot=50, ci_level=0.9, seed=0)
    bins = allocation.binned_tables(raw, [2], pilot=1, n_bins=2, n_orders=4, n_boot=50, ci_level=0.9, seed=0)
    size = pl.DataFrame(
        {
            "n_prompts": [8, 16, 8, 16],
            "n_samples": [4, 4, 8, 8],
            "predicted_sd": [0.04, 0.028, 0.03, 0.021],
            "predicted_err95": [0.078, 0.055, 0.059, 0.041],
            "between_share": [0.5, 0.5, 0.6, 0.6],
            "delta": [0.05] * 4,
            "bound": [0.9, 0.6, 0.9, 0.6],
            "n_cells": [6] * 4,
        }
    )
    check = pl.DataFrame(
        {
            "check": ["n/2, N", "n/4, N", "n/2, N/2"],
            "n_cells": [6, 6, 6],
            "n_prompts": [25, 12, 25],
            "n_samples": [4, 4, 2],
            "n_splits": [50] * 3,
            "predicted_sd": [0.03, 0.04, 0.035],
            "observed_sd": [0.031, 0.045, 0.03],
            "ratio": [0.97, 0.89, 1.17],
        }
    )
    stats = {
        "fit_allocation": across,
        "fit_allocation_summary": summary,
        "fit_allocation_bins": bins,
        "fit_comparison": comp,
        "fit_rm_summary": reward_models.rm_summary(features, rm_gains, settings),
        "fit_rm_agreement": reward_models.rm_agreement(features, rm_gains, settings),
        "fit_strategy": strategies.strategy_fit(
            features,
            gains.with_columns(gain_maj=pl.col("gain") * 0.5, gain_selfcert=pl.lit(None, dtype=pl.Float64)),
            cols,
            settings=compare.ComparisonSettings(n_boot=50, n_perm=99),
        ),
        "fit_curve": cr.curve,
        "fit_curve_coverage": cr.coverage,
        "fit_screen": screen,
        "fit_stability": st.stability,
        "fit_stability_path": st.path,
        "fit_ols": ols,
        "fit_concentration": c,
        "fit_concentration_terms": terms,
        "fit_sample_size": conform(size, "fit_sample_size"),
        "fit_sample_size_check": conform(check, "fit_sample_size_check"),
    }
    assert set(stats) == set(STATS_TABLES)
    return features, gains, stats


def _render_stats(out: Path) -> Path:
    from bongain.fit import ridge

    features, gains, stats = _stats_inputs()
    preds, mets, coefs = ridge.run_fit(features, gains, ["coverage", "agreement_mean"])
    return render_report(
        features,
        gains,
        preds,
        mets,
        coefs,
        out,
        title="stats",
        config_summary={},
        stats=stats,
        rm_gains=_rm_gains()[1],
    )


@pytest.fixture(scope="module")
def rendered_stats(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = _render_stats(tmp_path_factory.mktemp("stats"))
    return path, path.read_text(encoding="utf-8")


STATS_FIGURES = (FIG_STABILITY, FIG_CONCENTRATION, FIG_GAIN_CURVES, FIG_HEADROOM)


def test_stats_sections_and_figures(rendered_stats: tuple[Path, str]) -> None:
    path, md = rendered_stats
    for heading in (
        "## Predictor comparison across evaluation schemes",
        "## Which strategy's gain the predictor ranks best",
        "## Predicted gain curves with prediction intervals",
        "## Screened cells (validation pass only)",
        "## Stability selection (complementary pairs)",
        "## Compact model (OLS, for inference)",
        "## Concentration of the compact predictor and sample-size advice",
    ):
        assert heading in md
    for name in STATS_FIGURES:
        png = path.parent / name
        assert png.read_bytes()[:8] == PNG_MAGIC and f"]({name})" in md
        assert b"Software" not in png.read_bytes()
    # every statistics table names its source file
    for name in STATS_TABLES:
        if name != "fit_heldout":
            assert f"`{ALL[name].path}`" in md, name
    assert "`results/fit/heldout.parquet`" in md
    for section in md.split("\n## ")[1:]:
        if "|---" in section:
            assert "Source:" in section


def _section(md: str, heading: str) -> str:
    start = md.index(heading)
    nxt = md.find("\n## ", start + 1)
    return md[start : nxt if nxt >= 0 else len(md)]


def test_stats_table_values(rendered_stats: tuple[Path, str]) -> None:
    _, md = rendered_stats
    _, _, stats = _stats_inputs()
    comp = (
        stats["fit_comparison"]
        .filter((pl.col("scheme") == "leave_one_task_out") & (pl.col("predictor") == "core"))
        .row(0, named=True)
    )
    row = _row(_section(md, "## Predictor comparison"), "leave-one-task-out")
    rows = [ln for ln in md.splitlines() if ln.startswith("| leave-one-task-out | ridge (strict core) |")]
    assert len(rows) == 1 and row[0] == "leave-one-task-out"
    cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
    assert cells[2:4] == [str(comp["n_cells"]), str(comp["n_folds"])]
    sp = [fmt(comp[k]) for k in ("spearman", "spearman_lo", "spearman_hi")]
    assert cells[4] == f"{sp[0]} [{sp[1]}, {sp[2]}]"
    assert cells[6].startswith(fmt(comp["mae"]))
    fit = stats["fit_strategy"]
    section = _section(md, "## Which strategy's gain")
    bon = fit.filter(pl.col("strategy") == "bon").row(0, named=True)
    row = _row(section, "best-of-N (fit.target, best)")  # maj ties (gain halved): bon, first, is best
    assert row[1:7] == [str(bon["n_cells"])] + [
        fmt(bon[k]) for k in ("gain_mean", "spearman", "perm_p", "null_q95", "noise_ceiling")
    ]
    assert _row(section, "self-certainty")[7].startswith("skipped: gain_selfcert is null")
    assert "Ranked best (highest held-out Spearman): best-of-N." in section
    pooled = stats["fit_curve_coverage"].filter(pl.col("scope") == "per_cell_k_ge_2").row(0, named=True)
    assert _row(md, "per cell, k >= 2")[3] == fmt(pooled["coverage"])
    assert _row(md, "per cell, k >= 2")[1] == "6"  # 2 methods x 3 tasks, each cell once
    scr = stats["fit_screen"].row(0, named=True)
    row = _row(_section(md, "## Screened cells"), "1")
    assert row[1] == "m/me0/screened-task" and row[2] == fmt(scr["pred"])
    assert row[7] == str(scr["avoided_verifier_calls"])
    ols = stats["fit_ols"].row(0, named=True)
    assert ols["feature"] == "(intercept)"
    row = _row(_section(md, "## Compact model"), "(intercept)")
    assert row[1:3] == [fmt(ols["coef"]), fmt(ols["se"])]
    conc = stats["fit_concentration"].sort(["status", "model", "method", "task"]).row(0, named=True)
    row = _row(_section(md, "## Concentration"), f"{conc['model']}/{conc['method']}/{conc['task']}")
    assert row[4] == fmt(conc["bound"])


def test_stats_render_byte_identical_and_gain_ci_columns(
    rendered_stats: tuple[Path, str], tmp_path: Path
) -> None:
    a = rendered_stats[0]
    b = _render_stats(tmp_path / "b")
    for name in ("report.md", FIG_PRED_VS_ACTUAL, *STATS_FIGURES):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes(), name
    # with gain_lo / gain_hi present the figure gains horizontal error bars (a different image)
    from bongain.fit import ridge

    features, gains, stats = _stats_inputs()
    preds = ridge.leave_one_cell_out(features, gains, ["coverage", "agreement_mean"])
    wide = gains.with_columns(
        (pl.col("gain") - 0.02).alias("gain_lo"), (pl.col("gain") + 0.03).alias("gain_hi")
    )
    plot_predicted_vs_actual(preds, tmp_path / "c.png", stats["fit_curve"], wide)
    assert (tmp_path / "c.png").read_bytes() != (a.parent / FIG_PRED_VS_ACTUAL).read_bytes()


def test_gain_intervals_helper() -> None:
    g = _gains().drop("gain_lo", "gain_hi")
    p = _predictions()
    assert gain_intervals(g, p) is None
    g2 = g.with_columns((pl.col("gain") - 0.1).alias("gain_lo"), (pl.col("gain") + 0.1).alias("gain_hi"))
    lo, hi = gain_intervals(g2, p)
    np.testing.assert_allclose(hi - lo, 0.2)


def test_unknown_stats_table_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown statistics"):
        render_report(
            _features(),
            _gains(),
            _predictions(),
            _metrics(),
            _coefficients(),
            tmp_path,
            title="x",
            config_summary={},
            stats={"bogus": pl.DataFrame()},
        )


def test_grading_counts_and_section(tmp_path):
    grades = pl.DataFrame(
        {
            "model": ["m"] * 5,
            "method": ["x"] * 5,
            "task": ["t"] * 5,
            "split": ["test", "test", "test", "validation", "validation"],
            "status": ["ok", "timeout", "no_answer", "ok", "error"],
        }
    )
    counts = grading_counts(grades)
    assert counts.filter(pl.col("split") == "test").select(GRADE_STATUSES).row(0) == (1, 1, 1, 0)
    assert counts.filter(pl.col("split") == "validation").select(GRADE_STATUSES).row(0) == (1, 0, 0, 1)
    text = "\n".join(grading_section(grades))
    assert "5 samples, 3 ungradable (1 no answer, 1 timeout, 1 error)" in text
    assert "| m/x/t | test | 1 | 1 | 1 | 0 |" in text
    with pytest.raises(ValueError, match="unknown status"):
        grading_counts(grades.with_columns(status=pl.lit("maybe")))


def test_headline_section_quotes_the_headline_row(rendered_stats: tuple[Path, str]) -> None:
    _, md = rendered_stats
    _, _, stats = _stats_inputs()
    comp = stats["fit_comparison"]
    head = comp.filter(pl.col("headline"))
    assert head.height == 1
    h = head.row(0, named=True)
    # 2 methods x 3 tasks: only the task scheme has 3 groups
    assert h["scheme"] == "leave_one_task_out" and h["predictor"] == "ridge"
    sec = _section(md, "## Headline")
    assert md.index("## Headline") < md.index("## Predictor comparison")
    assert "**leave-one-task-out**" in sec
    assert f"held-out Spearman **{fmt(h['spearman'])}**" in sec
    assert f"p = **{fmt(h['perm_p'])}**" in sec
    assert f"Spearman {fmt(h['noise_ceiling'])} against the measured gains" in sec
    raw = comp.filter(pl.col("scheme") == "raw").row(0, named=True)
    assert f"two-sided p = {fmt(raw['perm_p'])}" in sec
    row = _row(_section(md, "## Predictor comparison"), "pass@1 vs gain (no fit)")
    assert row[7] == fmt(raw["perm_p"])


def test_sample_size_advice_and_check_rows(rendered_stats: tuple[Path, str]) -> None:
    _, md = rendered_stats
    sec = _section(md, "## Concentration")
    assert "### Sample-size advice from measured variance" in sec
    # target 0.05 at N = 8: predicted 95% error 0.059 at n = 8, 0.041 at n = 16; the bound never reaches it
    rows = [ln for ln in sec.splitlines() if ln.startswith("| 0.050 | 8 |")]
    assert rows == ["| 0.050 | 8 | 16 | n/a |"]
    assert "| 16 | 0.055 (0.600) | 0.041 (0.600) |" in sec
    assert "| n/4, N | 6 | 12 | 4 | 0.040 | 0.045 | 0.890 |" in sec


@pytest.mark.parametrize("three_models", [False, True])
def test_comparison_and_headline_render_the_family_scheme(three_models: bool) -> None:
    from bongain.fit import compare
    from bongain.report.crosscell import comparison_section, headline_section
    from test_fit import make_grid_cells

    if three_models:  # a1, a2 in family A, b in B: two family folds of their own
        models, families = ("a1", "a2", "b"), {"a1": "A", "a2": "A", "b": "B"}
    else:  # one model per family: the family folds are the model folds
        models, families = ("gemma", "smol"), {"gemma": "Gemma", "smol": "SmolLM2"}
    features, gains = make_grid_cells(n_methods=1, n_tasks=3, models=models, seed=8)
    settings = compare.ComparisonSettings(n_boot=30, n_perm=30)
    comp, _ = compare.compare_predictors(features, gains, ["coverage"], settings=settings, families=families)
    sec = "\n".join(comparison_section(comp))
    fam_rows = [ln for ln in sec.splitlines() if ln.startswith("| leave-one-family-out")]
    assert len(fam_rows) == 6
    same = all("(= leave-one-model-out: one model per family)" in ln for ln in fam_rows)
    assert same is (not three_models)
    ridge = comp.filter((pl.col("scheme") == "leave_one_family_out") & (pl.col("predictor") == "ridge")).row(
        0, named=True
    )
    ridge_line = next(ln for ln in fam_rows if "| ridge (fit.features) |" in ln)
    assert f"| {fmt(ridge['perm_p'])} | {fmt(ridge['null_q95'])} |" in ridge_line
    # the family rows come after the model rows
    assert sec.index("| leave-one-model-out") < sec.index("| leave-one-family-out")
    head = "\n".join(headline_section(comp))
    assert "base-model family / model / method / task" in head
    # 2 families never head; 3 models (three_models) do, else the 3 tasks
    assert ("**leave-one-model-out**" if three_models else "**leave-one-task-out**") in head


def test_headline_shows_every_target_with_its_trivial_baseline() -> None:
    """The headline table has one row per target (the oracle gap, each reward model's gain) with the
    ridge's held-out Spearman, p, null quantile, ceiling, the trivial baseline and their difference, and a
    sentence per target saying whether the ridge beats chance and the trivial baseline."""
    from bongain.fit import compare, table
    from bongain.report.crosscell import headline_section

    features, rm_gains = _rm_gains()
    settings = compare.ComparisonSettings(n_boot=40, n_perm=99)
    targets = table.comparison_targets("bon", list(rm_gains))
    comp, _ = compare.compare_predictors(
        features,
        rm_gains,
        ["coverage", "agreement_mean"],
        settings=settings,
        targets=targets,
        fit_target=targets[1],
    )
    sec = "\n".join(headline_section(comp))
    heads = comp.filter(pl.col("headline"))
    assert heads.height == 3
    labels = [
        "headroom: oracle gap (pass@N - pass@1)",
        "best-of-N gain, RM verifier (fit.target)",
        "best-of-N gain, RM other",
    ]
    for label, r in zip(labels, heads.iter_rows(named=True), strict=True):
        row = _row(sec, label)
        gap = comp.filter(
            (pl.col("target") == r["target"])
            & pl.col("rm").eq_missing(r["rm"])
            & (pl.col("scheme") == r["scheme"])
            & (pl.col("predictor") == "gap")
        ).row(0, named=True)
        assert row[1] == f"{fmt(r['spearman'])} [{fmt(r['spearman_lo'])}, {fmt(r['spearman_hi'])}]"
        assert row[2:5] == [fmt(r["perm_p"]), fmt(r["null_q95"]), fmt(r["noise_ceiling"])]
        assert row[5] == f"{fmt(gap['spearman'])} (p = {fmt(gap['perm_p'])})"
        assert row[6].startswith(fmt(r["delta_trivial"]))
    assert sec.count("the ridge ranks the held-out cells") == 3
    assert "Configured target (fit.target): **best-of-N gain, RM verifier**" in sec
