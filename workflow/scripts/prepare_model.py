"""Snakemake adapter: materialise a model checkpoint and write its manifest."""

from pathlib import Path

from bongain.sampling.models import prepare_model
from bongain.smk import setup_logging

log = setup_logging(snakemake, "prepare_model")  # noqa: F821
out = Path(snakemake.output[0])  # noqa: F821
manifest = prepare_model(snakemake.params.model, out.parent)  # noqa: F821
log.info("model %s ready: %s", snakemake.wildcards.model, manifest)  # noqa: F821
