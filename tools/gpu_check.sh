#!/usr/bin/env bash
# The GPU recipe: bf16 LoRA training, the vLLM teacher, lm-eval's vLLM backend and the vLLM judge, each run once
# on a small local model, with one table of pass/fail and throughput. The logic is in tools/gpu_check.py
# (standard library only); `tools/gpu_check.sh --help` lists the options.
# Exit status: 0 every selected path passed, 1 one failed, 2 bad arguments, 3 no CUDA device (all skipped).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# vLLM 0.33 supports Python 3.11 to 3.14; the GPU venv is made from this interpreter.
python="${NIFT_GPU_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, 15))' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "tools/gpu_check.sh: needs Python 3.11-3.14 (vLLM's range); set NIFT_GPU_PYTHON" >&2
  exit 2
fi
exec "$python" "$here/gpu_check.py" "$@"
