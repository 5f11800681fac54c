#!/usr/bin/env bash
# GPU check (tools/gpu_check.py): every trainer in fp16, bf16 and amp on one CUDA GPU, offline, about 5 minutes.
# `bash scripts/gpu_check.sh` (extra arguments go to python -m tools.gpu_check, e.g. --trainers CoOp MaPLe).
# Refuses with exit status 2 on a machine without a CUDA GPU; exit status 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec .venv/bin/python -m tools.gpu_check "$@"
