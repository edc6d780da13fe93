"""Snakemake adapter (local rule): fetch one hub checkpoint into the cache and write its record."""

from pathlib import Path

from bongain.hub import download, write_record
from bongain.smk import setup_logging

log = setup_logging(snakemake, "download")  # noqa: F821
record = download(snakemake.params.spec, snakemake.params.cache)  # noqa: F821
write_record(record, Path(snakemake.output[0]))  # noqa: F821
log.info("downloaded %s", record)
