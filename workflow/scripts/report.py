"""Snakemake adapter: render the Markdown report with its figures."""

from pathlib import Path

import polars as pl

from bongain.fit.table import gains_by_rm
from bongain.io import read_parquet
from bongain.report.build import STATS_TABLES, render_report
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "report")
stats = {name: read_parquet(sm.input[name.removeprefix("fit_")], name) for name in STATS_TABLES}
rm_gains = gains_by_rm(pl.concat([read_parquet(p, "gains") for p in sm.input.gains]), sm.params.rms)
path = render_report(
    pl.concat([read_parquet(p, "features") for p in sm.input.features]),
    rm_gains[sm.params.primary],
    read_parquet(sm.input.predictions, "fit_predictions"),
    read_parquet(sm.input.metrics, "fit_metrics"),
    read_parquet(sm.input.coefficients, "fit_coefficients"),
    Path(sm.output.report).parent,
    title=sm.params.title,
    config_summary=sm.params.summary,
    stats=stats,
    grades=pl.concat([read_parquet(p, "grades") for p in sm.input.grades]),
    scaling=pl.concat([read_parquet(p, "scaling") for p in sm.input.scaling]),
    targets=tuple(sm.params.targets),
    recipes=sm.params.recipes,
    rm_gains=rm_gains,
)
log.info("report written to %s", path)
