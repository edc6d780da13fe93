"""FAKE ``vllm`` package for whole jobs (the SLURM test puts ``tests/fakes/vllm_pkg`` on PYTHONPATH): it
re-exports tests/fakes/vllm_fake.py. Never installed; vLLM itself cannot run on the CI machine."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # tests/, for `fakes`

from fakes.vllm_fake import *  # noqa: F403
from fakes.vllm_fake import __version__  # noqa: F401
