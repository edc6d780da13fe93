"""Snakemake adapter: extract and grade the answer of every sample."""

from bongain.grading.compare import grade_frame
from bongain.io import read_parquet, write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "grade")
samples = read_parquet(sm.input.samples, "samples")
tasks = read_parquet(sm.input.tasks, "tasks")
grades = grade_frame(samples, tasks, sm.params.method["prompt_format"], sm.params.timeout_s)
write_parquet_atomic(grades, sm.output[0], "grades")
counts = dict(grades.group_by("status").len().iter_rows())
log.info("graded %d samples: %s; accuracy %.3f", grades.height, counts, grades["correct"].mean())
