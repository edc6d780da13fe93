"""Snakemake adapter: merge an outcome reward model's adapter into a plain checkpoint with a manifest."""

from pathlib import Path

from bongain.orm.train import merge_orm
from bongain.sampling.models import load_manifest
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "orm")
manifest = merge_orm(load_manifest(sm.input.manifest), sm.input.adapter, Path(sm.output[0]).parent)
log.info("merged %s: %s", sm.wildcards.rm, manifest)
