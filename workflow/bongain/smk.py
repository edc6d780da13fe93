"""Glue for Snakemake ``script:`` adapters: logging to the rule's log file."""

from __future__ import annotations

import logging
import sys
from typing import Any


def setup_logging(snakemake: Any, name: str) -> logging.Logger:
    """Send logging and stderr of a script to the rule's ``log:`` file (or stderr outside Snakemake)."""
    log_files = list(getattr(snakemake, "log", []) or [])
    if log_files:
        fh = open(log_files[0], "a", buffering=1)
        sys.stderr = fh
        handler: logging.Handler = logging.StreamHandler(fh)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return logging.getLogger(f"bongain.{name}")
