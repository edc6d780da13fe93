"""SLURM: the profiles, ``bongain slurm-profile``, and a real run through the slurm executor.

The profile and command tests always run. The cluster test runs the tiny config (config/test.yaml) on a
real single-node SLURM cluster and is skipped unless BONGAIN_SLURM_TEST=1 and ``sinfo`` answers; CI
starts that cluster with .ci/slurm/start.sh (see .ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bongain import slurm
from bongain.cli import main
from bongain.config import cells, complete_block, load_config
from bongain.io import read_parquet
from bongain.sampling.backends import sample_gpus
from bongain.scoring.registry import score_gpus

GPU_RULES = ("sample", "score")  # rules whose jobs may ask for GPUs (their count comes from the config)
GPU_KEYS = {"mem_mb", "runtime", "cpus_per_gpu"}
KINDS = {
    "cpu": {"partition": "cpu", "account": None, "qos": None},
    "gpu": {"partition": "gpu", "account": None, "qos": None},
}


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def workflow_rules(repo: Path) -> set[str]:
    text = "\n".join(
        p.read_text() for p in [repo / "Snakefile", *(repo / "workflow" / "rules").glob("*.smk")]
    )
    return set(re.findall(r"^\s*rule (\w+):", text, flags=re.M))


# -- profiles --------------------------------------------------------------------------------------------


def test_workflow_profile_sets_rule_resources_but_no_gpus(repo):
    prof = load_yaml(repo / "profiles" / "default" / "config.yaml")
    # Only set-resources: a workflow profile replaces a user profile's key of the same name, so a
    # default-resources here would drop the cluster profile's partition and account.
    assert set(prof) == {"set-resources"}
    res = prof["set-resources"]
    for rule in GPU_RULES:
        assert GPU_KEYS <= set(res[rule]), rule
    for rule, values in res.items():
        # GPU counts and placement come from the rules (config-dependent); a fixed value here would win
        assert not {"gpu", "gres", "slurm_partition", "slurm_account", "qos"} & set(values), rule
        assert "cpus_per_task" not in values, rule  # it would override cpus_per_gpu
        assert isinstance(values["mem_mb"], int) and isinstance(values["runtime"], int), rule
    # Snakemake ignores set-resources of unknown rules: catch renamed or removed rules here.
    assert set(res) <= workflow_rules(repo)


def test_cluster_profile_template(repo):
    prof = slurm.load_template(repo / "profiles" / "slurm" / "config.yaml")
    assert prof["executor"] == "slurm"
    assert prof["retries"] >= 1 and prof["jobs"] >= 1 and prof["latency-wait"] >= 5
    assert "set-resources" not in prof
    assert {"slurm_partition", "slurm_account", "mem_mb", "runtime"} <= set(prof["default-resources"])
    assert "cpus_per_task" not in prof["default-resources"]


# -- placement of one job -----------------------------------------------------------------------------------


def test_placement_by_gpu_count():
    cfg = complete_block(
        "slurm", {"cpu": {"partition": "c", "qos": "low"}, "gpu": {"partition": "g", "account": "ga"}}
    )
    assert slurm.placement(cfg, 0) == {"gpu": 0, "slurm_partition": "c", "slurm_account": None, "qos": "low"}
    assert slurm.placement(cfg, 2) == {"gpu": 2, "slurm_partition": "g", "slurm_account": "ga", "qos": None}
    with pytest.raises(ValueError, match="-1 GPUs"):
        slurm.placement(cfg, -1)
    # off SLURM (no slurm block): only the GPU count, every other value None (Snakemake drops it)
    assert slurm.placement(complete_block("slurm", {}), 1) == {
        "gpu": 1,
        "slurm_partition": None,
        "slurm_account": None,
        "qos": None,
    }


def test_gpu_counts_come_from_the_config():
    vllm = {"backend": "vllm", "vllm": complete_block("models.*.vllm", {"tensor_parallel_size": 2})}
    assert sample_gpus(vllm) == 2
    assert sample_gpus({"backend": "transformers", "vllm": complete_block("models.*.vllm", {})}) == 0
    assert score_gpus(complete_block("reward_model", {})) == 0  # offline verifier
    rm = {"kind": "vllm_classify", "model": "x/rm", "tensor_parallel_size": 4}
    assert score_gpus(complete_block("reward_model", rm)) == 4
    hf = {"kind": "hf_sequence_classification", "model": "x/rm"}
    assert score_gpus(complete_block("reward_model", hf)) == 1
    assert score_gpus(complete_block("reward_model", {**hf, "device": "cpu"})) == 0


# -- bongain slurm-profile -------------------------------------------------------------------------------


def test_slurm_profile_writes_user_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    args = ["--cpu-partition", "cpu", "--gpu-partition", "gpu", "--account", "proj1", "--gpu-qos", "gq"]
    assert main(["slurm-profile", *args]) == 0
    path = tmp_path / "snakemake" / "slurm" / "config.yaml"
    assert str(path) in capsys.readouterr().out
    prof = load_yaml(path)
    assert prof["executor"] == "slurm" and prof["retries"] >= 1
    # CPU kind: every job's default; both kinds: the workflow config's slurm block
    assert prof["default-resources"]["slurm_partition"] == "cpu"
    assert prof["default-resources"]["slurm_account"] == "proj1"
    assert "qos" not in prof["default-resources"] and "slurm-qos" not in prof
    assert prof["config"] == {
        "slurm": {
            "cpu": {"partition": "cpu", "account": "proj1"},
            "gpu": {"partition": "gpu", "account": "proj1", "qos": "gq"},
        }
    }
    complete_block("slurm", prof["config"]["slurm"])  # what the profile passes validates
    assert "slurm-status-command" not in prof  # the plugin picks sacct where it works
    # an existing profile is kept unless --force
    assert main(["slurm-profile", "--partition", "other"]) == 2
    assert "--force" in capsys.readouterr().err
    assert load_yaml(path)["default-resources"]["slurm_partition"] == "cpu"
    # one shared partition (a cluster with a single partition) is still allowed
    assert main(["slurm-profile", "--partition", "other", "--force"]) == 0
    prof = load_yaml(path)
    assert prof["default-resources"]["slurm_partition"] == "other"
    assert prof["config"]["slurm"] == {"cpu": {"partition": "other"}, "gpu": {"partition": "other"}}
    assert "slurm_account" not in prof["default-resources"]


def test_slurm_profile_needs_both_partitions(tmp_path, capsys):
    args = ["slurm-profile", "--cpu-partition", "cpu", "--config-dir", str(tmp_path)]
    assert main(args) == 2
    assert "--gpu-partition" in capsys.readouterr().err
    assert not list(tmp_path.rglob("config.yaml"))


def test_slurm_profile_default_location(tmp_path):
    assert slurm.snakemake_config_dir({"HOME": str(tmp_path)}) == tmp_path / ".config" / "snakemake"
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "x")}
    assert slurm.snakemake_config_dir(env) == tmp_path / "x" / "snakemake"


def test_slurm_profile_options(tmp_path):
    path = slurm.write_profile(
        KINDS, name="ci", status_command="squeue", jobs=4, config_dir=tmp_path, force=False
    )
    assert path == tmp_path / "ci" / "config.yaml"
    prof = load_yaml(path)
    assert prof["slurm-status-command"] == "squeue" and prof["jobs"] == 4


@pytest.mark.parametrize(
    ("kinds", "kwargs"),
    [
        ({"partition": "gpu; rm -rf ~"}, {}),
        ({"partition": ""}, {}),
        ({"gpu_partition": "g"}, {}),
        ({"partition": "p", "account": "a b"}, {}),
        ({"partition": "p", "gpu_qos": "$(x)"}, {}),
        ({"partition": "p"}, {"name": "../x"}),
        ({"partition": "p"}, {"status_command": "sstat"}),
        ({"partition": "p"}, {"jobs": 0}),
    ],
)
def test_slurm_profile_rejects_bad_values(tmp_path, kinds, kwargs):
    with pytest.raises(slurm.ProfileError):
        slurm.write_profile(slurm.cluster_kinds(**kinds), config_dir=tmp_path, **kwargs)
    assert not list(tmp_path.rglob("config.yaml"))


def test_snakemake_finds_the_written_profile(repo, tmp_path):
    """The one documented step is enough for Snakemake to pick the profile up by name (dry run)."""
    slurm.write_profile(
        slurm.cluster_kinds(cpu_partition="cpu", gpu_partition="gpu", account="proj1"),
        config_dir=tmp_path / "snakemake",
    )
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    res = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--profile", "slurm", "-n"),
            *("--configfile", str(repo / "config" / "test.yaml"), "--directory", str(tmp_path / "w")),
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "slurm and workflow specific profile profiles/default" in out


# -- a real run on a single-node SLURM cluster ------------------------------------------------------------


def _sinfo_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


cluster = pytest.mark.skipif(
    os.environ.get("BONGAIN_SLURM_TEST") != "1" or not _sinfo_answers(),
    reason="needs a SLURM cluster: set BONGAIN_SLURM_TEST=1 with one running (.ci/slurm/start.sh)",
)


def node_memory_mb() -> int:
    out = subprocess.run(["scontrol", "-o", "show", "node"], capture_output=True, text=True, check=True)
    return min(int(m) for m in re.findall(r"\bRealMemory=(\d+)", out.stdout))


def single_node_resources(repo: Path, mem_cap: int) -> list[str]:
    """profiles/default's set-resources, shrunk to one small node: memory capped, one CPU per GPU.

    A command-line --set-resources replaces the workflow profile's whole block, so all of it is passed.
    """
    items = []
    for rule, values in load_yaml(repo / "profiles" / "default" / "config.yaml")["set-resources"].items():
        for key, value in values.items():
            if key == "mem_mb":
                value = min(value, mem_cap)
            elif key == "cpus_per_gpu":
                value = 1
            items.append(f"{rule}:{key}={value}")
    return items


def finished_jobs(run_uuid: str) -> list[dict[str, str]]:
    """SLURM's record of a run's jobs (kept MinJobAge seconds after they end): comment and TRES."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("JobName") == run_uuid:
            jobs.append(fields)
    return jobs


@pytest.fixture(scope="module")
def slurm_run(repo, tmp_path_factory):
    """The tiny config through the slurm executor with the project's profiles: the cluster profile as
    `bongain slurm-profile` writes it (partition debug, no account: there is no slurmdbd, squeue polls),
    and profiles/default's per-rule resources with memory capped to fit the node."""
    base = tmp_path_factory.mktemp("slurm")
    work, xdg = base / "work", base / "config"
    args = ["--partition", "debug", "--status-command", "squeue", "--config-dir", str(xdg / "snakemake")]
    assert main(["slurm-profile", *args]) == 0
    mem_cap = max(1000, min(3000, node_memory_mb() // 4))
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(xdg),
        "USER": os.environ.get("USER")
        or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip(),
        # jobs run with --export=ALL: the venv's snakemake and python must come first on PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    cmd = [
        *(sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile")),
        *("--directory", str(work), "--profile", "slurm"),
        *("--configfile", str(repo / "config" / "test.yaml")),
        *("--set-resources", *single_node_resources(repo, mem_cap)),
        # poll soon after submitting: the tiny jobs take seconds, not the 40 s the plugin assumes
        *("--slurm-init-seconds-before-status-checks", "2"),
    ]
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
    out = res.stdout + res.stderr
    if res.returncode != 0:
        logs = sorted((work / ".snakemake" / "slurm_logs").rglob("*.log"))
        tail = "\n".join(f"== {p}\n{p.read_text()[-1500:]}" for p in logs[-3:])
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{out[-8000:]}\n{tail}")
    run_uuid = re.search(r"SLURM run ID: (\S+)", out).group(1)
    return work / "results" / "test", out, run_uuid


@cluster
def test_slurm_run_artifacts(repo, slurm_run):
    results, _, _ = slurm_run
    cfg = load_config(repo / "config" / "test.yaml")
    report = (results / "report" / "report.md").read_text()
    assert "smollm2-135m" in report
    preds = read_parquet(results / "fit" / "predictions.parquet", "fit_predictions")
    assert preds.height == len(cells(cfg))
    for c in cells(cfg):
        gains = read_parquet(results / "cells" / c.model / c.method / c.task / "gains.parquet", "gains")
        assert gains["k"].to_list() == list(range(1, cfg["sampling"]["n"] + 1))


@cluster
def test_slurm_gpu_rules_ran_as_gpu_jobs(slurm_run):
    """Every job went through sbatch; sample and score jobs held the node's (fake) GPU, no other did."""
    _, out, run_uuid = slurm_run
    jobs = finished_jobs(run_uuid)
    assert jobs, f"no SLURM jobs named {run_uuid}"
    assert all(j["JobState"] == "COMPLETED" for j in jobs), {j["JobId"]: j["JobState"] for j in jobs}
    by_rule: dict[str, list[bool]] = {}
    for j in jobs:
        rule = re.match(r"rule_(\w+?)(_wildcards_|$)", j["Comment"]).group(1)
        gpu = "gpu" in j.get("TresPerJob", "")  # --gpus=1
        by_rule.setdefault(rule, []).append(gpu)
        if gpu:
            assert j.get("CpusPerTres") == "gres:gpu:1", j  # cpus_per_gpu, not cpus_per_task
    assert set(GPU_RULES) <= set(by_rule)
    for rule, gpu in by_rule.items():
        assert all(gpu) if rule in GPU_RULES else not any(gpu), (rule, gpu)
    submitted = int(re.search(r"(\d+) of (\d+) steps \(100%\) done", out).group(2))
    assert len(jobs) == submitted - 1  # every job but the local target rule 'all'
