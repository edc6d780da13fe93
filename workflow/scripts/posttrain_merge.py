"""Snakemake adapter: merge an adapter into a plain checkpoint and write its manifest."""

from pathlib import Path

from bongain.posttrain.merge import merge_adapter
from bongain.sampling.models import load_manifest
from bongain.smk import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm, "posttrain")
manifest = merge_adapter(load_manifest(sm.input.manifest), sm.input.adapter, Path(sm.output[0]).parent)
log.info("merged %s/%s: %s", sm.wildcards.model, sm.wildcards.recipe, manifest)
