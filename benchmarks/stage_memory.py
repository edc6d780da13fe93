"""Peak memory and time of every stage, from Snakemake's per-job benchmark files.

    python benchmarks/stage_memory.py [results_dir]      # default: results

Every rule writes a ``benchmark:`` TSV under ``<results_dir>/benchmarks/<rule>/...`` (Snakemake measures
the job's process tree: max_rss in MB, wall seconds). This script prints, per rule: jobs, the largest
max_rss, the median wall time and the summed wall time; then the sample jobs' summed time per model (their
benchmark files sit under ``benchmarks/sample/<model>/``). Run it after ``snakemake --cores 2``. Snakemake
samples memory while a job runs, so the RSS of sub-second jobs is under-counted (often only the wrapper).
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

import polars as pl

from bongain.report.numbers import job_benchmarks


def collect(results: Path) -> pl.DataFrame:
    jobs = job_benchmarks(results)
    if jobs.is_empty():
        raise SystemExit(f"no benchmark files under {results / 'benchmarks'}: run the workflow first")
    return jobs


def summarise(df: pl.DataFrame) -> pl.DataFrame:
    return (
        df.group_by("rule")
        .agg(
            jobs=pl.len(),
            peak_rss_mb=pl.col("max_rss_mb").max(),
            median_s=pl.col("seconds").median(),
            total_s=pl.col("seconds").sum(),
        )
        .sort("peak_rss_mb", descending=True)
    )


def sample_by_model(jobs: pl.DataFrame) -> pl.DataFrame:
    """Jobs and summed wall time of the sampling jobs (``sample`` and ``sample_cell``) per model."""
    return (
        jobs.filter(pl.col("rule") == "sample")
        .group_by(model=pl.col("wildcards").str.split("/").list.first())
        .agg(jobs=pl.len(), total_s=pl.col("seconds").sum())
        .sort("model")
    )


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
    jobs = collect(results)
    table = summarise(jobs)
    print(
        f"# stage_memory  {datetime.date.today()}  {platform.machine()} {os.cpu_count()} cores  ({results})"
    )
    print("| stage | jobs | peak RSS (MB) | median wall (s) | total wall (s) |")
    print("|---|---:|---:|---:|---:|")
    for r in table.iter_rows(named=True):
        cells = [
            r["rule"],
            str(r["jobs"]),
            f"{r['peak_rss_mb']:.0f}",
            f"{r['median_s']:.1f}",
            f"{r['total_s']:.1f}",
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    print("| sampling jobs of model | jobs | total wall (s) |")
    print("|---|---:|---:|")
    for r in sample_by_model(jobs).iter_rows(named=True):
        print(f"| {r['model']} | {r['jobs']} | {r['total_s']:.1f} |")


if __name__ == "__main__":
    main()
