"""Snakemake adapter: samples per cell planned from the predicted gain curves, judged on the test split."""

from bongain.fit.allocation import allocate_from_files
from bongain.io import write_parquet_atomic
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "allocation")
cfg = sm.params.allocation
allocation, summary, bins = allocate_from_files(
    sm.input.curve, list(sm.input.grades), list(sm.input.scores), cfg, seed=sm.params.seed
)
write_parquet_atomic(allocation, sm.output.allocation, "fit_allocation")
write_parquet_atomic(summary, sm.output.summary, "fit_allocation_summary")
write_parquet_atomic(bins, sm.output.bins, "fit_allocation_bins")
log.info("allocation:\n%s\nwithin cells by difficulty bins:\n%s", summary, bins)
