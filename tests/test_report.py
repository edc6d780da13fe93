from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bongain import report
from bongain.io import conform

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N = 3
CELLS = [("llama|1b", "base", "gsm8k"), ("qwen", "base", "gsm8k"), ("qwen", "dpo", "math")]
GAIN = {CELLS[0]: 0.1, CELLS[1]: 0.25, CELLS[2]: -0.05}


def _features() -> pl.DataFrame:
    rows = []
    for i, (m, me, t) in enumerate(CELLS):
        row: dict[str, object] = {"model": m, "method": me, "task": t, "n_prompts": 40, "n_samples": N}
        for j, c in enumerate(report.FEATURE_TABLE_COLUMNS):
            if c not in ("n_prompts", "n_samples"):
                row[c] = 0.1 * i + 0.01 * j
        rows.append(row)
    return conform(pl.DataFrame(rows), "features")


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
    return conform(pl.DataFrame(rows), "gains")


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
    return report.render_report(
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
    for name in (report.FIG_PRED_VS_ACTUAL, report.FIG_BON_CURVES):
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
    assert row[7] == "`results/cells/qwen/base/gsm8k/gains.parquet`"
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
    assert cols[1:-1] == [c for c in report.FEATURE_TABLE_COLUMNS if c not in ("n_prompts", "n_samples")]
    idx = md.index(lines[0])
    feat_rows = [ln for ln in md[idx:].splitlines()[2:5]]
    qwen_dpo = [c.strip() for c in feat_rows[2].strip().strip("|").split(" | ")]
    assert qwen_dpo[0] == "qwen/dpo/math"
    assert qwen_dpo[1] == "0.200"  # 0.1 * 2 + 0.01 * 0
    assert qwen_dpo[3] == "0.220"
    assert qwen_dpo[-1] == "`results/cells/qwen/dpo/math/features.parquet`"


def test_metrics_and_coefficients_tables(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    assert _row(md, "ridge (all features)") == ["ridge (all features)", "3", "1.000", "1.000", "0.033"]
    assert _row(md, "baseline (pass@1 only)") == ["baseline (pass@1 only)", "3", "n/a", "n/a", "0.133"]
    assert md.index("| ridge (all features) | 3") < md.index("| baseline (pass@1 only) | 3")
    assert _row(md, "pass1") == ["pass1", "0.012", "-0.020"]
    assert _row(md, "coverage") == ["coverage", "n/a", "n/a"]
    assert _row(md, "(intercept)") == ["(intercept)", "0.100", "0.100"]
    assert _row(md, "alpha (ridge penalty)") == ["alpha (ridge penalty)", "1.000", "31.623"]


def test_provenance(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    for p in (
        "results/cells/{model}/{method}/{task}/gains.parquet",
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
    for name in ("report.md", report.FIG_PRED_VS_ACTUAL, report.FIG_BON_CURVES):
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes(), name


def test_markdown_table_and_fmt() -> None:
    lines = report.markdown_table(["a", "b"], [["x|y", 1.23456], ["z", -0.0001]])
    assert lines == ["| a | b |", "|---|---:|", "| x\\|y | 1.235 |", "| z | 0.000 |"]
    assert report.fmt(float("nan")) == "n/a"
    assert report.fmt(None) == "n/a"
    assert report.fmt(7) == "7"
    with pytest.raises(ValueError):
        report.markdown_table(["a"], [[1, 2]])


def test_single_cell_and_many_cells_figures(tmp_path: Path) -> None:
    g = _gains()
    one = g.filter(pl.col("model") == "qwen", pl.col("method") == "dpo")
    assert report.plot_bon_curves(one, tmp_path / "one.png").read_bytes()[:8] == PNG_MAGIC
    many = pl.concat([g.with_columns(pl.lit(f"m{i}").alias("model")) for i in range(3)])
    assert report.plot_bon_curves(many, tmp_path / "many.png").read_bytes()[:8] == PNG_MAGIC
