"""Every benchmark that README or a benchmark's docstring documents runs in a quick form, as a user runs it.

Each script runs as its own process from the repository root (``python benchmarks/<script> ...``), so a
crash anywhere on the user's path (model preparation from the config schema's defaults, the default engines,
the contended mode's busy process) fails here; the test then checks that the lines the docs quote are
printed. Nothing here asserts a timing. ``stage_memory.py`` reads a real run's benchmark files: its test
lives with the end-to-end run in ``tests/test_workflow.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO

NUM = r"[0-9][0-9,.]*"

#: script -> (quick arguments, patterns every one of which must match a line of the output)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "bench_statistics.py": (
        ["--quick"],
        [
            r"^cell: 200 prompts x N = 16 = 3,200 samples$",
            rf"^issue 5 set: features \+ pass \+ bon \+ maj +{NUM} +\(target < 3 s\)$",
            rf"^exact kernel: {NUM} s",
        ],
    ),
    "grouped_ci_coverage.py": (
        ["--quick"],
        [
            rf"^effect_sd={sd}: nominal 0.95, .*cluster bootstrap coverage {NUM}"
            for sd in ("0.0", "1.0", "2.0")
        ],
    ),
    "null_calibration.py": (
        ["--quick"],
        [
            rf"^{scheme}, {kind}: median held-out Spearman -?{NUM}; P\(p <= 0.05\) = {NUM}; KS p"
            for scheme in ("leave_one_cell_out", "leave_one_method_out")
            for kind in ("uninformative", "informative")
        ],
    ),
    "bench_draw.py": (
        ["--rows", "8", "--repeats", "1"],
        [
            rf"^{vocab} +{rows} +{NUM}$"
            for vocab in (r"smollm2 \(49,152\)", r"gemma3 \(262,144\)")
            for rows in (8,)
        ],
    ),
    "bench_dag.py": (
        ["--models", "2", "--methods", "2", "--tasks", "2", "--repeats", "1"],
        [r"^cells: 8  jobs in DAG: \d+$", rf"^snakemake -n wall time: best {NUM} s"],
    ),
}


def run_benchmark(script: str, args: list[str], timeout: int = 900) -> str:
    res = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert res.returncode == 0, (
        f"{script} {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    return res.stdout


def assert_lines(out: str, patterns: list[str]) -> None:
    missing = [p for p in patterns if not re.search(p, out, re.M)]
    assert not missing, f"documented output lines missing: {missing}\noutput:\n{out}"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_quick_benchmark_runs_and_prints_its_lines(script):
    args, patterns = CASES[script]
    assert_lines(run_benchmark(script, args), patterns)


@pytest.mark.slow
def test_bench_sampling_quick_without_manifest():
    """The docstring's form: no --manifest, so the benchmark prepares the embedded model itself from the
    config schema's model block; idle and contended lines (with a smaller workload than --quick's)."""
    out = run_benchmark("bench_sampling.py", ["--quick", "--prompts", "2", "--n", "4"])
    assert_lines(
        out,
        [
            rf"^short: stage {NUM} samples/s, generate {NUM} samples/s, ratio {NUM}x$",
            rf"^long: stage {NUM} tok/s, generate {NUM} tok/s, ratio {NUM}x$",
            rf"^contended long: stage {NUM} tok/s, generate {NUM} tok/s, ratio {NUM}x$",
        ],
    )


@pytest.mark.slow
def test_bench_linear_on_a_prepared_manifest(embedded_manifest):
    """README's form: ``--manifest`` of a prepared model."""
    out = run_benchmark(
        "bench_linear.py", ["--rows", "1", "--repeats", "1", "--manifest", str(embedded_manifest)]
    )
    assert_lines(out, [r"^\S+: 211 linear layers, \d+ packed in", rf"^\S+ +1 +{NUM} +{NUM} +{NUM}x$"])
