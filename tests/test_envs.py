"""The conda env files in envs/ stay in step with pyproject.toml, and the rules name the right one.

envs/analysis.yaml (the CPU stack) pip-installs exactly the runtime dependencies; envs/sampling.yaml (the
GPU stack of the rules that may run vLLM: sample and score) the ``gpu`` extra plus every runtime
dependency, each with the same version specifier as pyproject.toml. Both install bongain itself
(``-e ../``) and pin a Python that pyproject.toml allows.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


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


def split_local(pip: list[str]) -> tuple[list[str], list[str]]:
    local = [r for r in pip if r.startswith("-e ") or r.startswith(".")]
    return [r for r in pip if r not in local], local


@pytest.mark.parametrize("name", ["analysis", "sampling"])
def test_env_installs_bongain_with_allowed_python(repo, project, name):
    conda, pip = env_file(repo / "envs" / f"{name}.yaml")
    _, local = split_local(pip)
    assert local == ["-e ../"], local  # the repository root, seen from envs/
    assert "pip" in conda
    python = [d for d in conda if d.startswith("python")]
    assert len(python) == 1, conda
    version = re.fullmatch(r"python\s*=+\s*(\d+)\.(\d+)(\.\*)?", python[0])
    assert version, python[0]
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"])
    assert (int(version[1]), int(version[2])) >= (int(minimum[1]), int(minimum[2]))


def test_analysis_env_is_the_runtime_dependencies(repo, project):
    _, pip = env_file(repo / "envs" / "analysis.yaml")
    reqs, _ = split_local(pip)
    env, runtime = requirement_map(reqs), requirement_map(project["dependencies"])
    assert env.keys() - runtime.keys() == set(), "in envs/analysis.yaml but not in pyproject.toml"
    assert runtime.keys() - env.keys() == set(), "in pyproject.toml but not in envs/analysis.yaml"
    assert {n: s for n, s in env.items() if runtime[n] != s} == {}, "specifiers differ from pyproject.toml"


def test_sampling_env_is_the_gpu_extra_plus_the_runtime(repo, project):
    _, pip = env_file(repo / "envs" / "sampling.yaml")
    reqs, _ = split_local(pip)
    env = requirement_map(reqs)
    known = {
        **requirement_map(project["dependencies"]),
        **requirement_map(project["optional-dependencies"]["gpu"]),
    }
    assert env.keys() - known.keys() == set(), "in envs/sampling.yaml but not in pyproject.toml"
    assert known.keys() - env.keys() == set(), (
        "in pyproject.toml (runtime or gpu) but not in envs/sampling.yaml"
    )
    assert {n: s for n, s in env.items() if known[n] != s} == {}, "specifiers differ from pyproject.toml"


def test_vllm_rules_use_the_vllm_env(repo):
    """Every rule names an env; the rules that can run vLLM (sample, sample_cell, score) name the one that
    has it."""
    text = "\n".join(p.read_text() for p in (repo / "workflow" / "rules").glob("*.smk"))
    rules = dict(
        re.findall(r"^\s*rule (\w+):\n(?:(?!^\s*rule ).*\n)*?\s*conda:\n\s*\"([^\"]+)\"", text, re.M)
    )
    names = set(re.findall(r"^\s*rule (\w+):", text, re.M))
    assert names == set(rules), names - set(rules)
    for rule, env in rules.items():
        expected = "sampling" if rule in ("sample", "sample_cell", "score") else "analysis"
        assert env == f"../../envs/{expected}.yaml", (rule, env)
        assert (repo / "envs" / f"{expected}.yaml").is_file()
