"""Snakemake adapter: materialise a model checkpoint and write its manifest."""

import json
from pathlib import Path

from bongain.hub import offline_jobs

offline_jobs(snakemake.config["hub"]["cache"])  # noqa: F821

from bongain.sampling.models import prepare_model  # noqa: E402
from bongain.smk import setup_logging  # noqa: E402

log = setup_logging(snakemake, "prepare_model")  # noqa: F821
out = Path(snakemake.output[0])  # noqa: F821
records = snakemake.input.download  # noqa: F821
download = json.loads(Path(records[0]).read_text()) if records else None
manifest = prepare_model(snakemake.params.model, out.parent, download)  # noqa: F821
log.info("model %s ready: %s", snakemake.wildcards.model, manifest)  # noqa: F821
