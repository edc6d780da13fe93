"""Write the SLURM cluster profile into the user's Snakemake config folder.

``bongain slurm-profile --partition P --account A`` fills the repository's template
(``profiles/slurm/config.yaml``) with the user's cluster settings and writes it to
``$XDG_CONFIG_HOME/snakemake/<name>/config.yaml`` (default ``~/.config/snakemake/slurm/config.yaml``),
where ``snakemake --profile <name>`` finds it. Per-rule resources (GPUs, memory, time) are not part of
it: they stay in the workflow profile ``profiles/default``, which Snakemake applies on top.
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
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Values passed to sbatch: no whitespace, quotes or shell metacharacters.
_SLURM_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,:+-]*$")


class ProfileError(ValueError):
    """A bad argument for the profile or a profile that must not be overwritten."""


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


def render_profile(
    template: dict[str, Any],
    partition: str,
    account: str | None = None,
    qos: str | None = None,
    status_command: str | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """The template with the user's cluster settings filled in (the template is not modified).

    Without an account the plugin guesses one (or submits without, where the cluster allows it).
    ``status_command``: how the executor polls job states; the plugin picks ``sacct`` where it works,
    ``squeue`` is for clusters without an accounting database.
    """
    _check("--partition", partition)
    _check("--account", account)
    _check("--qos", qos)
    if not partition:
        raise ProfileError("--partition is required")
    if status_command is not None and status_command not in STATUS_COMMANDS:
        raise ProfileError(f"--status-command must be one of {', '.join(STATUS_COMMANDS)}")
    if jobs is not None and jobs < 1:
        raise ProfileError("--jobs must be at least 1")
    profile = dict(template)
    resources = dict(template["default-resources"])
    resources["slurm_partition"] = partition
    if account:
        resources["slurm_account"] = account
    else:
        resources.pop("slurm_account", None)
    profile["default-resources"] = resources
    if qos:
        profile["slurm-qos"] = qos
    if status_command:
        profile["slurm-status-command"] = status_command
    if jobs is not None:
        profile["jobs"] = jobs
    return profile


def profile_text(profile: dict[str, Any], template: Path = TEMPLATE) -> str:
    header = (
        f"# Snakemake cluster profile for bongain, written by `bongain slurm-profile` from {template}.\n"
        "# Use: snakemake --profile <this folder's name>. Per-rule resources (GPUs, memory, time) come\n"
        "# from the workflow profile profiles/default in the repository, which Snakemake applies on top.\n"
    )
    return header + yaml.safe_dump(profile, sort_keys=False, default_flow_style=False)


def write_profile(
    partition: str,
    account: str | None = None,
    *,
    name: str = "slurm",
    qos: str | None = None,
    status_command: str | None = None,
    jobs: int | None = None,
    config_dir: Path | None = None,
    template: Path = TEMPLATE,
    force: bool = False,
) -> Path:
    """Write ``<config_dir>/<name>/config.yaml`` and return its path.

    An existing file is only replaced with ``force`` (it may hold the user's own edits).
    """
    if not _NAME.match(name):
        raise ProfileError(f"profile name {name!r}: use letters, digits and _ . - only")
    profile = render_profile(load_template(template), partition, account, qos, status_command, jobs)
    target = (config_dir or snakemake_config_dir()) / name / "config.yaml"
    if target.exists() and not force:
        raise ProfileError(f"{target} exists; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(profile_text(profile, template))
    tmp.replace(target)
    return target
