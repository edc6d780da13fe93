"""The real Snakemake workflow: lint, dry runs, and an end-to-end run with the real embedded model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from bongain.config import cells, load_config
from bongain.io import read_parquet

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def smk(
    repo: Path, *args: str, workdir: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(repo / "Snakefile"), *args]
    if workdir is not None:
        cmd += ["--directory", str(workdir)]
    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=1800)
    if check and res.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-8000:]}"
        )
    return res


def job_counts(text: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake run or dry run as {rule: count}."""
    lines = text[text.index("Job stats:") :].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_lint(repo):
    res = smk(repo, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in res.stdout + res.stderr


def test_dry_run_default_config(repo):
    res = smk(repo, "-n", "--forceall", "--cores", "2")  # --forceall: also with results present
    out = res.stdout + res.stderr
    cfg = load_config(repo / "config" / "config.yaml")
    n_cells, n_screened = len(cells(cfg)), len(cfg.get("screen") or [])
    assert n_cells >= 24
    counts = job_counts(out)
    # one sample_cell job per evaluated cell (its three splits); one sample job per other split: a screened
    # cell's validation split, and the posttrain split that rft and dpo learn from (sampled under their
    # method, the model as shipped) per model and task; one grade job per split
    posttrain_methods = {(r["method"]) for r in cfg["posttrain"]["recipes"].values() if r["kind"] != "sft"}
    n_posttrain = len(posttrain_methods) * len(cfg["models"]) * len(cfg["tasks"])
    assert counts["sample_cell"] == n_cells
    assert counts["sample"] == n_screened + n_posttrain
    assert counts["grade"] == 3 * n_cells + n_screened + n_posttrain
    assert counts["features"] == n_cells + n_screened
    assert counts["gains"] == counts["score"] == counts["train_verifier"] == n_cells
    assert counts["fit"] == counts["report"] == 1


def test_bad_config_fails_before_any_job(repo, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (repo / "config" / "test.yaml").read_text().replace("n: 4,", "n: 0,")
    bad.write_text(text)
    res = smk(repo, "-n", "--cores", "1", "--configfile", str(bad), check=False)
    assert res.returncode != 0
    assert "config key 'sampling.n'" in res.stdout + res.stderr


@pytest.fixture(scope="module")
def e2e(repo, tmp_path_factory):
    """Run the tiny config end to end (real model, real Snakemake) in a scratch working directory."""
    work = tmp_path_factory.mktemp("e2e")
    smk(repo, "--cores", "2", "--configfile", str(repo / "config" / "test.yaml"), workdir=work)
    return work / "results" / "test"


@pytest.mark.slow
def test_end_to_end_artifacts(repo, e2e):
    cfg = load_config(repo / "config" / "test.yaml")
    n, sizes = cfg["sampling"]["n"], cfg["splits"]
    for c in cells(cfg):
        d = e2e / "cells" / c.model / c.method / c.task
        for split in ("verifier_train", "validation", "test"):
            s = read_parquet(d / split / "samples.parquet", "samples")
            g = read_parquet(d / split / "grades.parquet", "grades")
            assert s.height == g.height == sizes[split] * n
            assert s.group_by("prompt_id").len()["len"].to_list() == [n] * sizes[split]
            assert s["finish_reason"].is_in(["stop", "eos", "length"]).all()
            assert (s["sum_logprob"] <= 0).all() and (s["mean_entropy"] >= 0).all()
            assert s["self_certainty"].null_count() == 0 and (s["self_certainty"] >= 0).all()
            assert g["status"].is_in(["ok", "no_answer", "timeout", "error"]).all()
        sc = read_parquet(d / "test" / "scores.parquet", "scores")
        assert sc.height == sizes["test"] * n and sc["reward"].is_finite().all()
        read_parquet(d / "verifier.parquet", "verifier")
        f = read_parquet(d / "features.parquet", "features")
        assert f.height == 1 and f["n_samples"][0] == n and f["n_prompts"][0] == sizes["validation"]
        for col in (
            "pass1",
            "coverage",
            "agreement_mean",
            "first_correct_pos",
            "maj_at_n",
            "answer_diversity",
        ):
            assert 0.0 <= f[col][0] <= 1.0, col
        gn = read_parquet(d / "gains.parquet", "gains")
        assert gn["k"].to_list() == list(range(1, n + 1))
        for col in ("pass_at_k", "bon_at_k", "maj_at_k", "selfcert_at_k"):
            assert gn[col].is_between(0.0, 1.0).all(), col
        assert gn["selfcert_at_k"][0] == pytest.approx(gn["pass_at_k"][0], abs=1e-12)
        assert gn["pass_at_k"].diff().drop_nulls().min() >= -1e-12  # pass@k never decreases in k
        assert gn["gain"][0] == pytest.approx(gn["bon_at_k"][-1] - gn["pass_at_k"][0], abs=1e-12)
    preds = read_parquet(e2e / "fit" / "predictions.parquet", "fit_predictions")
    assert preds.height == len(cells(cfg))
    read_parquet(e2e / "fit" / "metrics.parquet", "fit_metrics")
    strat = read_parquet(e2e / "fit" / "strategy_fit.parquet", "fit_strategy")
    head = read_parquet(e2e / "fit" / "comparison.parquet", "fit_comparison").filter(pl.col("headline"))
    bon = strat.filter(pl.col("strategy") == "bon").row(0, named=True)
    assert bon["spearman"] == pytest.approx(head["spearman"][0], nan_ok=True) and strat["best"].sum() <= 1
    report = (e2e / "report" / "report.md").read_text()
    assert "## Which strategy's gain the predictor ranks best" in report
    assert "smollm2-135m" in report and "Spearman" in report
    for png in ("predicted_vs_actual.png", "bon_curves.png"):
        assert (e2e / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_numbers_command_reads_the_run(repo, e2e, capsys):
    """``bongain numbers`` (what README quotes) prints the run's numbers; checked here against the gains
    tables and the fit comparison read directly."""
    import re

    from bongain.cli import main

    cfg = load_config(repo / "config" / "test.yaml")
    assert main(["numbers", "--configfile", str(repo / "config" / "test.yaml"), "--results", str(e2e)]) == 0
    out = capsys.readouterr().out
    finals = [
        read_parquet(e2e / "cells" / c.slug / "gains.parquet", "gains").row(-1, named=True)
        for c in cells(cfg)
    ]
    gains = sorted(r["gain"] for r in finals)
    halves = sorted((r["gain_hi"] - r["gain_lo"]) / 2 for r in finals)
    mid = len(halves) // 2
    median = halves[mid] if len(halves) % 2 else (halves[mid - 1] + halves[mid]) / 2
    line = re.search(r"gains \(.*?(\d+) cells\): (\S+) \.\. (\S+), median CI half-width (\S+)", out)
    assert int(line.group(1)) == len(finals)
    assert float(line.group(2)) == pytest.approx(gains[0], abs=5.001e-4)  # printed with 3 decimals
    assert float(line.group(3)) == pytest.approx(gains[-1], abs=5.001e-4)  # printed with 3 decimals
    assert float(line.group(4)) == pytest.approx(median, abs=5.001e-4)  # printed with 3 decimals
    comp = read_parquet(e2e / "fit" / "comparison.parquet", "fit_comparison")
    head = comp.filter(comp["headline"]).row(0, named=True)
    assert f"headline ({head['scheme']}" in out
    assert re.search(r"ridge Spearman (\S+),", out).group(1) == f"{head['spearman']:.3f}"
    assert "summed job time per stage" in out
    assert "recipes (" not in out  # test.yaml has no post-training recipe


@pytest.mark.slow
def test_stage_memory_benchmark_reads_the_run(repo, e2e):
    """``python benchmarks/stage_memory.py <results_dir>`` (README's form) on the run's benchmark files:
    one row per rule that ran, and the sampling jobs per model."""
    import re

    res = subprocess.run(
        [sys.executable, "benchmarks/stage_memory.py", str(e2e)], cwd=repo, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "| stage | jobs | peak RSS (MB) | median wall (s) | total wall (s) |" in out
    for rule in ("sample", "grade", "features", "gains", "report"):
        assert re.search(rf"^\| {rule} \| \d+ \| \d+ \| [\d.]+ \| [\d.]+ \|$", out, re.M), rule
    assert re.search(r"^\| smollm2-135m \| \d+ \| [\d.]+ \|$", out, re.M)


@pytest.mark.slow
def test_rerun_one_cell_is_byte_identical_and_touches_nothing_else(repo, e2e):
    """Remove one cell's folder and ask for its gains, features and scaling: only that cell's jobs run, every
    stage's table comes back equal (``DataFrame.equals``) and the samples byte for byte (same config,
    same seeds, CPU); then the cross-cell stages, forced to rerun, give equal tables too."""
    cfg = load_config(repo / "config" / "test.yaml")
    target_cell, *others = cells(cfg)
    d = e2e / "cells" / target_cell.model / target_cell.method / target_cell.task
    tables_before = {p.relative_to(d): pl.read_parquet(p) for p in sorted(d.rglob("*.parquet"))}
    # samples + grades per split; verifier, scores, features, gains, scaling
    assert len(tables_before) == 2 * 3 + 5
    before = {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("samples.parquet"))}
    other_files = [
        p for o in others for p in (e2e / "cells" / o.model / o.method / o.task).rglob("*.parquet")
    ]
    mtimes = [p.stat().st_mtime_ns for p in other_files]
    shutil.rmtree(d)
    work = e2e.parents[1]
    targets = [
        str((d / name).relative_to(work)) for name in ("gains.parquet", "features.parquet", "scaling.parquet")
    ]
    config = ["--configfile", str(repo / "config" / "test.yaml")]
    res = smk(repo, *targets, "--cores", "2", *config, workdir=work)
    counts = job_counts(res.stdout + res.stderr)
    assert counts == {
        "sample_cell": 1,  # the cell's three splits, one job
        "grade": 3,
        "train_verifier": 1,
        "score": 1,
        "gains": 1,
        "features": 1,
        "scaling": 1,
    }, counts
    after = {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("samples.parquet"))}
    assert set(after) == set(before) and len(after) == 3
    assert all(after[k] == before[k] for k in after)
    tables_after = {p.relative_to(d): pl.read_parquet(p) for p in sorted(d.rglob("*.parquet"))}
    assert set(tables_after) == set(tables_before)
    for name, df in tables_after.items():
        assert df.equals(tables_before[name]), name
    assert [p.stat().st_mtime_ns for p in other_files] == mtimes

    fit_dir = e2e / "fit"
    fit_before = {p.name: pl.read_parquet(p) for p in sorted(fit_dir.glob("*.parquet"))}
    assert len(fit_before) >= 10
    res = smk(repo, *config, "--cores", "2", "--forcerun", "fit", "stability", "concentration", workdir=work)
    assert {"fit", "stability", "concentration"} <= set(job_counts(res.stdout + res.stderr))
    for name, df in fit_before.items():
        assert pl.read_parquet(fit_dir / name).equals(df), name
