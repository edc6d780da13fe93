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
from bongain.report.format import fmt

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
#: gains columns that do not depend on the reward model
RM_FREE_PREFIXES = ("n_prompts", "n_samples", "k", "pass_at_k", "maj_at_k", "selfcert", "gain_oracle")
RM_FREE_PREFIXES += ("gain_maj", "gain_selfcert", "n_boot", "ci_level")


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
    n_rms = len(cfg["reward_models"])
    kinds = [rm["kind"] for rm in cfg["reward_models"].values()]
    assert counts["gains"] == counts["score"] == n_cells * n_rms
    assert counts["train_verifier"] == n_cells * kinds.count("offline_logistic")
    # a reward model of kind orm is trained once for the study, not per cell
    per_study = {counts.get(rule, 0) for rule in ("orm_data", "orm_train", "orm_merge")}
    assert per_study == {kinds.count("orm")}
    assert counts["fit"] == counts["report"] == 1


def test_dry_run_lists_one_score_job_per_cell_and_reward_model(repo, tmp_path):
    """The test config has two reward models: one train_verifier, score and gains job per (cell, reward
    model), each writing its own file; the cross-cell stages run once."""
    cfg = load_config(repo / "config" / "test.yaml")
    rms = list(cfg["reward_models"])
    assert len(rms) == 2
    res = smk(
        repo, "-n", "--cores", "1", "--configfile", str(repo / "config" / "test.yaml"), workdir=tmp_path
    )
    out = res.stdout + res.stderr
    counts = job_counts(out)
    n_cells = len(cells(cfg))
    assert counts["train_verifier"] == counts["score"] == counts["gains"] == n_cells * len(rms)
    assert counts["fit"] == counts["report"] == counts["stability"] == 1
    for c in cells(cfg):
        for rm in rms:
            for path in (f"verifier/{rm}.parquet", f"test/scores/{rm}.parquet", f"gains/{rm}.parquet"):
                assert f"results/test/cells/{c.slug}/{path}" in out, path


def test_two_reward_models_with_one_name_fail_before_any_job(repo, tmp_path):
    """A config file that names one reward model twice (YAML would keep the last silently) is refused by
    the workflow before anything runs, naming the key; nothing is written."""
    lines = (repo / "config" / "test.yaml").read_text().splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("  confidence:"))
    lines.insert(at + 1, "  verifier: { kind: offline_logistic, C: 3.0 }")
    bad = tmp_path / "dup.yaml"
    bad.write_text("\n".join(lines) + "\n")
    res = smk(repo, "-n", "--cores", "1", "--configfile", str(bad), workdir=tmp_path, check=False)
    assert res.returncode != 0
    assert "config key 'reward_models.verifier': defined twice" in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


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
        for rm in cfg["reward_models"]:
            sc = read_parquet(d / "test" / "scores" / f"{rm}.parquet", "scores")
            assert sc.height == sizes["test"] * n and sc["reward"].is_finite().all()
            assert set(sc["rm"]) == {rm}
            v = read_parquet(d / "verifier" / f"{rm}.parquet", "verifier")
            assert v["signal"].to_list()[:-1] == cfg["reward_models"][rm]["signals"]
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
        per_rm = {rm: read_parquet(d / "gains" / f"{rm}.parquet", "gains") for rm in cfg["reward_models"]}
        for rm, gn in per_rm.items():
            assert set(gn["rm"]) == {rm}
            assert gn["k"].to_list() == list(range(1, n + 1))
            for col in ("pass_at_k", "bon_at_k", "maj_at_k", "selfcert_at_k"):
                assert gn[col].is_between(0.0, 1.0).all(), col
            assert gn["selfcert_at_k"][0] == pytest.approx(gn["pass_at_k"][0], abs=1e-12)
            assert gn["pass_at_k"].diff().drop_nulls().min() >= -1e-12  # pass@k never decreases in k
            assert gn["gain"][0] == pytest.approx(gn["bon_at_k"][-1] - gn["pass_at_k"][0], abs=1e-12)
            assert gn["gain_oracle"][0] == pytest.approx(gn["pass_at_k"][-1] - gn["pass_at_k"][0], abs=1e-12)
            assert gn["gain"][0] <= gn["gain_oracle"][0] + 1e-12
        # the columns no reward model enters are the same in every reward model's file
        rm_free = [c for c in per_rm["verifier"].columns if c.startswith(RM_FREE_PREFIXES)]
        assert per_rm["verifier"].select(rm_free).equals(per_rm["confidence"].select(rm_free))
    preds = read_parquet(e2e / "fit" / "predictions.parquet", "fit_predictions")
    assert preds.height == len(cells(cfg))
    read_parquet(e2e / "fit" / "metrics.parquet", "fit_metrics")
    strat = read_parquet(e2e / "fit" / "strategy_fit.parquet", "fit_strategy")
    comp = read_parquet(e2e / "fit" / "comparison.parquet", "fit_comparison")
    head = comp.filter(pl.col("headline"))
    # one headline per target: the oracle gap and each reward model's best-of-N gain
    assert head.select("target", "rm").rows() == [
        ("oracle", None),
        ("bon", "verifier"),
        ("bon", "confidence"),
    ]
    assert head.filter(pl.col("fit_target")).select("target", "rm").rows() == [("bon", "verifier")]
    for (target, rm), rows in comp.group_by(["target", "rm"], maintain_order=True):
        assert set(rows["predictor"]) >= {"ridge", "gap", "baseline"}, (target, rm)
        assert rows.filter(pl.col("scheme") == "raw")["predictor"].to_list() == ["baseline", "gap"]
    strat_rows = strat.select("strategy", "rm").rows()
    assert strat_rows[:3] == [("oracle", None), ("bon", "verifier"), ("bon", "confidence")]
    for row in head.iter_rows(named=True):
        same = strat.filter((pl.col("strategy") == row["target"]) & (pl.col("rm").eq_missing(row["rm"])))
        assert same["spearman"][0] == pytest.approx(row["spearman"], nan_ok=True)
    assert strat["best"].sum() <= 1
    summary = read_parquet(e2e / "fit" / "rm_summary.parquet", "fit_rm_summary")
    assert summary["rm"].to_list() == ["verifier", "confidence"]
    agreement = read_parquet(e2e / "fit" / "rm_agreement.parquet", "fit_rm_agreement")
    assert agreement.select("a", "b").rows() == [
        ("oracle", "verifier"),
        ("oracle", "confidence"),
        ("verifier", "confidence"),
    ]
    report = (e2e / "report" / "report.md").read_text()
    assert "## Which strategy's gain the predictor ranks best" in report
    assert "## Where the gain comes from: headroom x reward-model efficiency" in report
    assert "### Do the reward models rank the cells alike?" in report
    assert "smollm2-135m" in report and "Spearman" in report
    for png in ("predicted_vs_actual.png", "bon_curves.png", "headroom.png"):
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
        read_parquet(e2e / "cells" / c.slug / "gains" / "verifier.parquet", "gains").row(-1, named=True)
        for c in cells(cfg)
    ]
    gains = sorted(r["gain"] for r in finals)
    halves = sorted((r["gain_hi"] - r["gain_lo"]) / 2 for r in finals)
    mid = len(halves) // 2
    median = halves[mid] if len(halves) % 2 else (halves[mid - 1] + halves[mid]) / 2
    line = re.search(
        r"gains under RM verifier \(.*?(\d+) cells\): (\S+) \.\. (\S+), median CI half-width (\S+)", out
    )
    assert int(line.group(1)) == len(finals)
    assert float(line.group(2)) == pytest.approx(gains[0], abs=5.001e-4)  # printed with 3 decimals
    assert float(line.group(3)) == pytest.approx(gains[-1], abs=5.001e-4)  # printed with 3 decimals
    assert float(line.group(4)) == pytest.approx(median, abs=5.001e-4)  # printed with 3 decimals
    comp = read_parquet(e2e / "fit" / "comparison.parquet", "fit_comparison")
    head = comp.filter(comp["headline"] & comp["fit_target"]).row(0, named=True)
    assert f"headline ({head['scheme']}" in out and "bon under RM verifier" in out
    assert re.search(r"headline .*ridge Spearman (\S+),", out).group(1) == fmt(head["spearman"])
    oracle = comp.filter(comp["headline"] & (comp["target"] == "oracle")).row(0, named=True)
    line = re.search(r"target \(.*\), oracle: ridge Spearman (\S+), permutation p = (\S+) ", out)
    assert line.groups() == (fmt(oracle["spearman"]), fmt(oracle["perm_p"]))
    summary = read_parquet(e2e / "fit" / "rm_summary.parquet", "fit_rm_summary")
    for r in summary.iter_rows(named=True):
        assert f"RM {r['rm']}: mean gain {fmt(r['gain_mean'])}" in out
    assert "trivial baseline (validation gap, same procedure)" in out
    assert "oracle gap (pass@N minus pass@1" in out
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
    # samples + grades per split; per reward model (2): verifier, scores, gains; features, scaling
    assert len(tables_before) == 2 * 3 + 3 * 2 + 2
    before = {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("samples.parquet"))}
    other_files = [
        p for o in others for p in (e2e / "cells" / o.model / o.method / o.task).rglob("*.parquet")
    ]
    mtimes = [p.stat().st_mtime_ns for p in other_files]
    shutil.rmtree(d)
    work = e2e.parents[1]
    names = [f"gains/{rm}.parquet" for rm in cfg["reward_models"]] + ["features.parquet", "scaling.parquet"]
    targets = [str((d / name).relative_to(work)) for name in names]
    config = ["--configfile", str(repo / "config" / "test.yaml")]
    res = smk(repo, *targets, "--cores", "2", *config, workdir=work)
    counts = job_counts(res.stdout + res.stderr)
    assert counts == {
        "sample_cell": 1,  # the cell's three splits, one job
        "grade": 3,
        "train_verifier": 2,  # one per reward model
        "score": 2,
        "gains": 2,
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


@pytest.mark.slow
def test_one_reward_model_reruns_alone(repo, e2e, tmp_path):
    """One reward model's files of one cell removed: only its score and gains jobs run, and every other
    file (the other reward model's, the cell's other stages, the other cells) is untouched; its tables come
    back equal. A change to one reward model's block reruns that reward model's jobs only (dry run)."""
    cfg = load_config(repo / "config" / "test.yaml")
    target_cell = cells(cfg)[-1]
    d = e2e / "cells" / target_cell.slug
    mine = [d / "test" / "scores" / "confidence.parquet", d / "gains" / "confidence.parquet"]
    before = {p: pl.read_parquet(p) for p in mine}
    others = [p for p in sorted((e2e / "cells").rglob("*.parquet")) if p not in mine]
    mtimes = [p.stat().st_mtime_ns for p in others]
    for p in mine:
        p.unlink()
    work = e2e.parents[1]
    config = ["--configfile", str(repo / "config" / "test.yaml")]
    res = smk(repo, str(mine[1].relative_to(work)), "--cores", "2", *config, workdir=work)
    assert job_counts(res.stdout + res.stderr) == {"score": 1, "gains": 1}
    for p in mine:
        assert pl.read_parquet(p).equals(before[p]), p
    assert [p.stat().st_mtime_ns for p in others] == mtimes

    changed = tmp_path / "changed.yaml"
    changed.write_text(
        (repo / "config" / "test.yaml")
        .read_text()
        .replace("signals: [mean_logprob, n_tokens] }", "signals: [mean_logprob, n_tokens], C: 0.5 }")
    )
    res = smk(repo, "-n", "--cores", "1", "--configfile", str(changed), workdir=work)
    out = res.stdout + res.stderr
    counts = job_counts(out)
    n_cells = len(cells(cfg))
    assert counts["train_verifier"] == counts["score"] == counts["gains"] == n_cells, counts
    outputs = [ln for ln in out.splitlines() if ln.strip().startswith("output:")]
    assert any("scores/confidence.parquet" in ln for ln in outputs)
    assert not any(
        f"{what}/verifier.parquet" in ln for ln in outputs for what in ("verifier", "scores", "gains")
    )
    # stability and concentration read the first reward model's gains only: not rerun
    assert not {"stability", "concentration", "sample_cell", "grade", "features"} & set(counts)


@pytest.mark.slow
def test_view_joins_every_stage_per_sample(repo, e2e, capsys):
    """`bongain view` on the tiny run: one row per sample of the split, with the completion, answer,
    correctness, length, logprob, entropy, self-certainty and every reward model's reward, and no nulls
    where the stages wrote values; the rewards and answers are those of the stages' own files."""
    from bongain.cli import main
    from bongain.report.view import joined_view

    cfg = load_config(repo / "config" / "test.yaml")
    c = cells(cfg)[0]
    view = joined_view(e2e, c.slug, "test", list(cfg["reward_models"]))
    samples = read_parquet(e2e / "cells" / c.slug / "test" / "samples.parquet", "samples")
    assert view.height == samples.height == cfg["splits"]["test"] * cfg["sampling"]["n"]
    assert view.select("prompt_id", "sample_idx").equals(samples.select("prompt_id", "sample_idx"))
    must = ["question", "gold", "completion", "n_tokens", "finish_reason", "mean_logprob", "mean_entropy"]
    must += ["self_certainty", "status", "correct", "reward_verifier", "reward_confidence"]
    must += ["best_verifier", "best_confidence"]
    assert view.select(must).null_count().sum_horizontal()[0] == 0
    grades = read_parquet(e2e / "cells" / c.slug / "test" / "grades.parquet", "grades")
    assert view["answer"].null_count() == grades["answer"].null_count()  # null only where none was extracted
    assert view["correct"].to_list() == grades["correct"].to_list()
    for rm in cfg["reward_models"]:
        scores = read_parquet(e2e / "cells" / c.slug / "test" / "scores" / f"{rm}.parquet", "scores")
        assert view[f"reward_{rm}"].to_list() == scores["reward"].to_list()
        assert view.group_by("prompt_id").agg(pl.col(f"best_{rm}").any())[f"best_{rm}"].all()
    args = ["view", c.slug, "--configfile", str(repo / "config" / "test.yaml"), "--results", str(e2e)]
    assert main([*args, "--rows", "-1"]) == 0
    out = capsys.readouterr().out
    assert f"{view.height} samples" in out and "reward_confidence" in out
    prompt = view["prompt_id"][0]
    assert main([*args, "--prompt", prompt]) == 0
    assert view["question"][0][:20] in capsys.readouterr().out
    assert main([*args, "--prompt", "nope"]) == 1
    # the polars snippet of docs/artifacts.md, run on this cell, gives the same rows and rewards
    text = (repo / "docs" / "artifacts.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace(
        '"results/cells/smollm2-135m/base/add2d1d/test"', repr(str(e2e / "cells" / c.slug / "test"))
    )
    code = code.replace('("verifier",)', repr(tuple(cfg["reward_models"])))
    scope: dict = {}
    exec(code, scope)
    snippet = scope["view"]
    assert snippet.height == view.height
    for rm in cfg["reward_models"]:
        assert snippet[f"reward_{rm}"].to_list() == view[f"reward_{rm}"].to_list()
