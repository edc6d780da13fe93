"""Where jobs run on SLURM: the cluster profile ``bongain slurm-profile`` writes, and each job's placement.

``bongain slurm-profile --cpu-partition C --gpu-partition G [--account A]`` fills the repository's template
(``profiles/slurm/config.yaml``) with the user's cluster settings and writes it to
``$XDG_CONFIG_HOME/snakemake/<name>/config.yaml`` (default ``~/.config/snakemake/slurm/config.yaml``),
where ``snakemake --profile <name>`` finds it.

Jobs are of two *kinds*: a job that asks for at least one GPU is a GPU job, every other job a CPU job. Each
kind has its own partition, and optionally its own account and QoS. The profile carries them twice:

* ``default-resources`` holds the CPU kind (``slurm_partition``, ``slurm_account``, ``qos``), so every rule
  that sets nothing itself runs on the CPU partition;
* ``config: {slurm: {cpu: {...}, gpu: {...}}}`` (the workflow config's ``slurm`` block) lets the rules
  whose GPU count depends on the config (``sample``, ``sample_cell``, ``score``, ``posttrain_train``) place
  each job by its kind with :func:`placement`: GPU jobs on the GPU partition with ``--gpus=N`` on one node
  (``--nodes=1``: tensor parallelism within one machine), the others on the CPU partition.

The template asks the executor for ``--requeue`` (``slurm-requeue: true``): a preempted or node-failed job
goes back to the queue with the same job id instead of ending as ``PREEMPTED``, a state the slurm executor
plugin (2.8) waits on for good. A partition whose ``PreemptMode`` is ``CANCEL`` cancels preempted jobs
whatever the flag; ``bongain slurm-profile`` warns about one (:func:`preempt_cancel_partitions`).

Per-rule memory and time stay in the workflow profile ``profiles/default``, which Snakemake applies on top;
GPU counts come from the rules themselves (``bongain.sampling.backends.sample_gpus``,
``bongain.scoring.registry.score_gpus``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "profiles" / "slurm" / "config.yaml"
STATUS_COMMANDS = ("sacct", "squeue")
KINDS = ("cpu", "gpu")
#: A kind's setting -> the Snakemake resource the slurm executor turns into an sbatch option
#: (``gpu_model`` makes ``--gpus=<model>:N``, so only GPU jobs get it; ``constraint`` is ``-C``).
RESOURCE_OF = {
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "qos",
    "constraint": "constraint",
    "gpu_model": "gpu_model",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Values passed to sbatch: no whitespace, quotes or shell metacharacters.
_SLURM_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,:+-]*$")


class ProfileError(ValueError):
    """A bad argument for the profile or a profile that must not be overwritten."""


def job_kind(gpus: int) -> str:
    """``gpu`` for a job that asks for at least one GPU, else ``cpu``."""
    if gpus < 0:
        raise ValueError(f"a job cannot ask for {gpus} GPUs")
    return "gpu" if gpus > 0 else "cpu"


def placement(slurm_cfg: Mapping[str, Any], gpus: int) -> dict[str, Any]:
    """Resources that place one job: ``gpu`` (its GPU count), ``nodes`` (1 for a GPU job: its GPUs on one
    machine, as tensor parallelism needs) and its kind's partition, account and QoS.

    ``slurm_cfg`` is the complete ``slurm`` config block; an unset setting is ``None`` (Snakemake drops a
    resource whose value is None, so the cluster's own default applies).
    """
    kind = slurm_cfg[job_kind(gpus)]
    placed = {
        "gpu": gpus,
        "nodes": 1 if gpus else None,
        **{res: kind[key] for key, res in RESOURCE_OF.items()},
    }
    if gpus == 0:
        placed["gpu_model"] = None  # the executor would ask for --gpus=<model>:0
    return placed


def placed_resources(slurm_cfg: Mapping[str, Any]) -> list[str]:
    """The resources :func:`placement` decides for this ``slurm`` block: ``gpu`` and ``nodes`` always, each
    sbatch setting only when some kind sets it (a rule that declared it would otherwise replace the
    cluster profile's default with nothing)."""
    return ["gpu", "nodes"] + [
        res for key, res in RESOURCE_OF.items() if any(slurm_cfg[k][key] for k in KINDS)
    ]


def snakemake_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user's Snakemake config folder, where ``--profile NAME`` looks for ``NAME/``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "snakemake"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    if not path.is_file():
        raise ProfileError(f"profile template {path} not found (pass --template)")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("default-resources"), dict):
        raise ProfileError(f"{path}: not a Snakemake profile with a 'default-resources' mapping")
    if "set-resources" in data:
        raise ProfileError(f"{path}: must not set 'set-resources' (profiles/default would replace it)")
    return data


def _check(option: str, value: str | None) -> None:
    if value is not None and not _SLURM_VALUE.match(value):
        raise ProfileError(f"{option} {value!r}: use letters, digits and _ . , : + - only")


def cluster_kinds(
    *,
    partition: str | None = None,
    cpu_partition: str | None = None,
    gpu_partition: str | None = None,
    account: str | None = None,
    cpu_account: str | None = None,
    gpu_account: str | None = None,
    qos: str | None = None,
    cpu_qos: str | None = None,
    gpu_qos: str | None = None,
    cpu_constraint: str | None = None,
    gpu_constraint: str | None = None,
    gpu_model: str | None = None,
) -> dict[str, dict[str, str | None]]:
    """Per-kind settings from the command's options: ``--cpu-X`` / ``--gpu-X`` win over the shared ``--X``.

    Both kinds need a partition (one shared ``--partition`` is allowed: a cluster with one partition).
    ``gpu_model`` (``--gpus=<model>:N``) and ``gpu_constraint`` (``-C``, node features such as a GPU
    memory size) pin the GPU jobs to the cards a config needs.
    """
    given = {
        "partition": (partition, cpu_partition, gpu_partition),
        "account": (account, cpu_account, gpu_account),
        "qos": (qos, cpu_qos, gpu_qos),
        "constraint": (None, cpu_constraint, gpu_constraint),
        "gpu_model": (None, None, gpu_model),
    }
    for key, (shared, cpu, gpu) in given.items():
        option = key.replace("gpu_model", "model")
        _check(f"--{option}", shared)
        _check(f"--cpu-{option}", cpu)
        _check(f"--gpu-{option}", gpu)
    kinds = {
        kind: {key: (values[1 + i] or values[0] or None) for key, values in given.items()}
        for i, kind in enumerate(KINDS)
    }
    for kind in KINDS:
        if not kinds[kind]["partition"]:
            raise ProfileError(f"no partition for {kind} jobs: pass --{kind}-partition (or --partition)")
    return kinds


def render_profile(
    template: dict[str, Any],
    kinds: Mapping[str, Mapping[str, str | None]],
    status_command: str | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """The template with the user's cluster settings filled in (the template is not modified).

    The CPU kind becomes the default resources of every job; both kinds go into the workflow config's
    ``slurm`` block, from which ``sample`` and ``score`` place each job by its GPU count. Without an
    account the plugin guesses one (or submits without, where the cluster allows it). ``status_command``:
    how the executor polls job states; the plugin picks ``sacct`` where it works, ``squeue`` is for
    clusters without an accounting database.
    """
    if status_command is not None and status_command not in STATUS_COMMANDS:
        raise ProfileError(f"--status-command must be one of {', '.join(STATUS_COMMANDS)}")
    if jobs is not None and jobs < 1:
        raise ProfileError("--jobs must be at least 1")
    profile = dict(template)
    resources = {k: v for k, v in template["default-resources"].items() if k not in RESOURCE_OF.values()}
    for key, res in RESOURCE_OF.items():
        if kinds["cpu"][key]:
            resources[res] = kinds["cpu"][key]
    profile["default-resources"] = resources
    # only the settings that are set: Snakemake's --config turns a YAML null into the string 'None'
    profile["config"] = {
        "slurm": {kind: {k: v for k, v in kinds[kind].items() if v} for kind in KINDS},
    }
    profile.pop("slurm-qos", None)  # QoS is per kind (a job resource), never one for every job
    if status_command:
        profile["slurm-status-command"] = status_command
    if jobs is not None:
        profile["jobs"] = jobs
    return profile


def profile_text(profile: dict[str, Any], template: Path = TEMPLATE) -> str:
    header = (
        f"# Snakemake cluster profile for bongain, written by `bongain slurm-profile` from {template}.\n"
        "# Use: snakemake --profile <this folder's name> [--configfile ...]. Per-rule memory and time come\n"
        "# from the workflow profile profiles/default in the repository, which Snakemake applies on top.\n"
        "# `config: slurm` places GPU jobs (vLLM sampling, a GPU reward model, GPU post-training) on the\n"
        "# GPU partition; a --config on the command line would replace it: put such overrides into a\n"
        "# --configfile.\n"
    )
    return header + yaml.safe_dump(profile, sort_keys=False, default_flow_style=False)


def write_profile(
    kinds: Mapping[str, Mapping[str, str | None]],
    *,
    name: str = "slurm",
    status_command: str | None = None,
    jobs: int | None = None,
    config_dir: Path | None = None,
    template: Path = TEMPLATE,
    force: bool = False,
) -> Path:
    """Write ``<config_dir>/<name>/config.yaml`` and return its path (``kinds``: :func:`cluster_kinds`).

    An existing file is only replaced with ``force`` (it may hold the user's own edits).
    """
    if not _NAME.match(name):
        raise ProfileError(f"profile name {name!r}: use letters, digits and _ . - only")
    profile = render_profile(load_template(template), kinds, status_command, jobs)
    target = (config_dir or snakemake_config_dir()) / name / "config.yaml"
    if target.exists() and not force:
        raise ProfileError(f"{target} exists; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(profile_text(profile, template))
    tmp.replace(target)
    return target


def preempt_cancel_partitions(scontrol_partitions: str, partitions: set[str]) -> dict[str, str]:
    """Partition -> its ``PreemptMode``, for each of ``partitions`` whose mode cancels preempted jobs.

    ``scontrol_partitions`` is the output of ``scontrol -o show partition`` (one line per partition). A
    job cancelled by preemption ends as ``PREEMPTED``, which the slurm executor plugin treats as still
    running: the run waits on it for good. ``--requeue`` (the profile's ``slurm-requeue``) helps where
    the mode is ``REQUEUE`` (it makes every job requeueable), not where it is ``CANCEL``.
    """
    found = {}
    for line in scontrol_partitions.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        name, mode = fields.get("PartitionName"), fields.get("PreemptMode", "")
        if name in partitions and "CANCEL" in mode.upper().split(","):
            found[name] = mode
    return found


def check_preemption(kinds: Mapping[str, Mapping[str, str | None]], timeout: float = 10.0) -> str | None:
    """A warning when a partition of the profile cancels preempted jobs (None: no such partition, or no
    ``scontrol`` here to ask)."""
    import shutil
    import subprocess

    if shutil.which("scontrol") is None:
        return None
    try:
        out = subprocess.run(
            ["scontrol", "-o", "show", "partition"], capture_output=True, text=True, timeout=timeout
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = preempt_cancel_partitions(out, {k["partition"] for k in kinds.values() if k["partition"]})
    if not found:
        return None
    listed = ", ".join(f"{p} (PreemptMode={m})" for p, m in sorted(found.items()))
    return (
        f"partition {listed} cancels preempted jobs: the slurm executor plugin keeps waiting on a job that "
        "ended PREEMPTED. Prefer a partition or QoS without preemption for GPU jobs; if a run hangs on "
        "one, stop snakemake and start it again (finished shards and checkpointed batches are kept)"
    )
