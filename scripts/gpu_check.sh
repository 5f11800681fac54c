#!/usr/bin/env bash
# GPU check (tools/gpu_check.py): every trainer in both readings of fp16 (official; fp32 master weights), bf16 and amp
# on one CUDA GPU, offline, with the cosine drift of each against fp32 after 20 steps.
# `bash scripts/gpu_check.sh` (extra arguments go to python -m tools.gpu_check, e.g. --trainers CoOp MaPLe).
# Refuses with exit status 2 on a machine without a CUDA GPU; exit status 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec .venv/bin/python -m tools.gpu_check "$@"
