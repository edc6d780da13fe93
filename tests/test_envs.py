"""The conda env files in envs/ work with ``snakemake --sdm conda``, stay in step with pyproject.toml, and
the rules name the right one.

envs/analysis.yaml (the CPU stack) pip-installs exactly the runtime dependencies; envs/sampling.yaml (the
GPU stack of the rules that may run vLLM: sample, sample_cell and score) the ``gpu`` extra plus every runtime
dependency, each with the same version specifier as pyproject.toml, with a Python that pyproject.toml
allows. Neither installs bongain itself: Snakemake copies an env file to ``.snakemake/conda/<hash>.yaml``
before conda reads it, and conda runs pip in that file's folder, so a relative entry such as ``-e ../``
would name ``.snakemake/``, not the repository. The rule scripts import this checkout's package instead,
through the link ``workflow/scripts/bongain`` on the path Snakemake gives every rule script.

conda-forge is not reachable here, so what Snakemake does with the files is observed through a FAKE
``conda`` executable that records how Snakemake calls it (``--conda-create-envs-only``: nothing else runs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")
ENV_FILES = ("analysis", "sampling")


def normalize(requirement: str) -> tuple[str, str]:
    """(canonical project name, specifier without spaces) of a PEP 508 requirement string."""
    m = _NAME.match(requirement)
    assert m, requirement
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    return name, re.sub(r"\s+", "", m.group(3))


def requirement_map(requirements: list[str]) -> dict[str, str]:
    pairs = [normalize(r) for r in requirements]
    names = [n for n, _ in pairs]
    assert len(names) == len(set(names)), f"duplicate requirements: {requirements}"
    return dict(pairs)


@pytest.fixture(scope="module")
def project(repo) -> dict:
    return tomllib.loads((repo / "pyproject.toml").read_text())["project"]


def env_file(path: Path) -> tuple[list[str], list[str]]:
    """(conda dependencies, pip requirements) of a conda environment file."""
    env = yaml.safe_load(path.read_text())
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, dep
            pip += dep["pip"]
        else:
            conda.append(dep)
    return conda, pip


def local_entries(pip: list[str]) -> list[str]:
    """pip entries that name a place on disk instead of a package on an index (options such as ``-e``,
    paths, ``file:`` URLs): they resolve against the folder conda runs pip in."""
    return [r for r in pip if r.lstrip().startswith(("-", ".", "/", "~", "file:")) or "@ file:" in r]


@pytest.mark.parametrize("name", ENV_FILES)
def test_env_has_only_index_packages_and_an_allowed_python(repo, project, name):
    conda, pip = env_file(repo / "envs" / f"{name}.yaml")
    assert local_entries(pip) == [], f"envs/{name}.yaml: entries that resolve inside .snakemake/conda/"
    assert "pip" in conda
    python = [d for d in conda if d.startswith("python")]
    assert len(python) == 1, conda
    version = re.fullmatch(r"python\s*=+\s*(\d+)\.(\d+)(\.\*)?", python[0])
    assert version, python[0]
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"])
    assert (int(version[1]), int(version[2])) >= (int(minimum[1]), int(minimum[2]))


def test_gpu_env_python_is_one_vllm_and_the_slurm_plugin_share(repo):
    """vllm 0.33 pulls mistral_common, which caps numpy below 2.4 on Python 3.12 and older; the SLURM
    executor plugin >= 2.7.1 needs numpy >= 2.4.5. Both resolve together only on Python 3.13 (pip's
    resolver on PyPI, 2026-12-07; envs/install-venv.sh --gpu refuses an older Python for the same reason)."""
    conda, _ = env_file(repo / "envs" / "sampling.yaml")
    (python,) = [d for d in conda if d.startswith("python")]
    major, minor = re.fullmatch(r"python\s*=+\s*(\d+)\.(\d+)(\.\*)?", python).group(1, 2)
    assert (int(major), int(minor)) >= (3, 13), python


def test_install_script_refuses_a_gpu_env_on_an_older_python(repo, tmp_path):
    """``install-venv.sh --gpu`` stops before creating the venv when its Python is not 3.13, naming the
    version it got and how to choose another (this test's own Python, 3.11 or 3.12 here, stands in)."""
    if sys.version_info[:2] == (3, 13):
        pytest.skip("this Python is 3.13: the refusal needs another")
    res = subprocess.run(
        ["bash", str(repo / "envs" / "install-venv.sh"), "--gpu"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr
    assert (
        "needs Python 3.13" in res.stderr
        and f"Python {sys.version_info[0]}.{sys.version_info[1]}" in res.stderr
    )
    assert "PYTHON=" in res.stderr
    bad = subprocess.run(
        ["bash", str(repo / "envs" / "install-venv.sh"), "--gpus"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown option --gpus" in bad.stderr and "--vllm-cpu" in bad.stderr


def test_local_entries_are_detected():
    assert local_entries(["-e ../", ".", "../x", "pkg @ file:///x", "polars>=1.20", "-r req.txt"]) == [
        "-e ../",
        ".",
        "../x",
        "pkg @ file:///x",
        "-r req.txt",
    ]


def test_analysis_env_is_the_runtime_dependencies(repo, project):
    _, pip = env_file(repo / "envs" / "analysis.yaml")
    env, runtime = requirement_map(pip), requirement_map(project["dependencies"])
    assert env.keys() - runtime.keys() == set(), "in envs/analysis.yaml but not in pyproject.toml"
    assert runtime.keys() - env.keys() == set(), "in pyproject.toml but not in envs/analysis.yaml"
    assert {n: s for n, s in env.items() if runtime[n] != s} == {}, "specifiers differ from pyproject.toml"


def test_sampling_env_is_the_gpu_extra_plus_the_runtime(repo, project):
    _, pip = env_file(repo / "envs" / "sampling.yaml")
    env = requirement_map(pip)
    known = {
        **requirement_map(project["dependencies"]),
        **requirement_map(project["optional-dependencies"]["gpu"]),
    }
    assert env.keys() - known.keys() == set(), "in envs/sampling.yaml but not in pyproject.toml"
    assert known.keys() - env.keys() == set(), (
        "in pyproject.toml (runtime or gpu) but not in envs/sampling.yaml"
    )
    assert {n: s for n, s in env.items() if known[n] != s} == {}, "specifiers differ from pyproject.toml"


def test_slurm_plugin_pin_has_the_gpu_submission_fix(project):
    """Plugin versions before 2.7.1 add --ntasks-per-gpu=1 to every GPU job (fixed in 2.7.1)."""
    assert requirement_map(project["dependencies"])["snakemake-executor-plugin-slurm"] == ">=2.7.1"


RULE_ENV = re.compile(r"^\s*rule (\w+):\n(?:(?!^\s*rule ).*\n)*?\s*conda:\n\s*\"([^\"]+)\"", re.M)
LOCAL_RUN_RULES = {"download"}  # run: inside the snakemake process (its environment), no conda env


def test_vllm_rules_use_the_vllm_env(repo):
    """Every rule that runs a script names an env; the rules that can run vLLM (sample, sample_cell, score)
    name the one that has it."""
    text = "\n".join(p.read_text() for p in (repo / "workflow" / "rules").glob("*.smk"))
    rules = dict(RULE_ENV.findall(text))
    names = set(re.findall(r"^\s*rule (\w+):", text, re.M))
    assert names - LOCAL_RUN_RULES == set(rules), names - LOCAL_RUN_RULES - set(rules)
    for rule, env in rules.items():
        expected = "sampling" if rule in ("sample", "sample_cell", "score") else "analysis"
        assert env == f"../../envs/{expected}.yaml", (rule, env)
        assert (repo / "envs" / f"{expected}.yaml").is_file()


FAKE_CONDA = """#!{python}
# FAKE conda (conda-forge is not reachable here): records every call, answers what Snakemake asks.
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CONDA_LOG"], "a") as fh:
    fh.write(json.dumps({{"argv": args, "cwd": os.getcwd()}}) + "\\n")
if args[:2] == ["info", "--json"]:
    prefix = os.path.dirname(os.path.dirname(sys.argv[0]))
    print(json.dumps({{"conda_prefix": prefix, "platform": "linux-64"}}))
elif args[:1] == ["--version"]:
    print("conda 25.1.1")
elif args[:2] == ["config", "--get"]:
    print(json.dumps({{"get": {{"channel_priority": "strict"}}}}))
elif args[:2] == ["env", "create"]:
    os.makedirs(args[args.index("--prefix") + 1], exist_ok=True)
elif args[:1] != ["clean"]:
    sys.exit(f"fake conda: unexpected call {{args}}")
"""


def test_snakemake_sdm_conda_copies_the_env_files_under_dot_snakemake(repo, tmp_path):
    """``--sdm conda`` as Snakemake 9 runs it: each rule's env file is copied byte for byte to
    ``<workdir>/.snakemake/conda/<hash>*.yaml`` and conda creates the env from that copy. conda's pip
    installer runs pip in the env file's folder (conda/env/installers/pip.py), so relative pip entries
    resolve under ``.snakemake/conda/``: the env files must have none (checked above)."""
    bin_dir = tmp_path / "conda" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "conda"
    fake.write_text(FAKE_CONDA.format(python=sys.executable))
    fake.chmod(0o755)
    log, work = tmp_path / "calls.jsonl", tmp_path / "work"
    env = {**os.environ, "FAKE_CONDA_LOG": str(log), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        *(sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--cores", "1"),
        *("--sdm", "conda", "--conda-create-envs-only", "--directory", str(work)),
        *("--configfile", str(repo / "config" / "test.yaml")),
    ]
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    calls = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    creates = [c for c in calls if c[:2] == ["env", "create"]]
    assert len(creates) == len(ENV_FILES), calls  # one env per file the rules name
    copied = {}
    for c in creates:
        file = Path(c[c.index("--file") + 1])
        assert file.parent == work / ".snakemake" / "conda", file
        assert Path(c[c.index("--prefix") + 1]) == file.with_suffix(""), c
        copied[file.read_bytes()] = file
    for name in ENV_FILES:
        original = (repo / "envs" / f"{name}.yaml").read_bytes()
        assert original in copied, f"envs/{name}.yaml was not copied as it is"
        # where conda runs pip for this env, and where `-e ../` would have pointed
        pip_workdir = copied[original].parent
        assert (pip_workdir / "..").resolve() == work / ".snakemake" != repo


def test_rule_scripts_find_this_checkouts_package_without_an_install(repo, tmp_path):
    """Snakemake puts the scripts' folder on a rule script's sys.path; the link ``workflow/scripts/bongain``
    -> ``../bongain`` makes ``import bongain`` find this checkout's package there, in an environment that
    has no bongain installed (a conda env of envs/). Checked with no site-packages at all (python -S)."""
    scripts = repo / "workflow" / "scripts"
    assert (scripts / "bongain").is_symlink()
    assert (scripts / "bongain").resolve() == repo / "workflow" / "bongain"
    code = "import sys; sys.path.append(sys.argv[1]); import bongain.constants as c; print(c.__file__)"
    run = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 60}
    res = subprocess.run([sys.executable, "-S", "-c", code, str(scripts)], **run)
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()).resolve() == repo / "workflow" / "bongain" / "constants.py"
    bare = subprocess.run([sys.executable, "-S", "-c", "import bongain.constants"], **run)
    assert bare.returncode != 0  # without the scripts' folder there is no bongain to import here
