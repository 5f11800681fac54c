#!/usr/bin/env bash
# Base-to-new generalisation (CoCoOp protocol): train on the base half of the classes with 16 shots, then
# evaluate the saved model on the new half. Runs from anywhere; the commands are built by experiments/protocols.py.
#
#   scripts/base2new.sh TRAINER DATASET|all [SEED|all] [CFG] [KEY VALUE ...]
#
#   scripts/base2new.sh CoOp oxford_pets 1                 # one seed
#   scripts/base2new.sh MaPLe all                          # 11 datasets x seeds 1 2 3
#   DRY_RUN=1 scripts/base2new.sh CoCoOp dtd all           # print the commands only
#
# Environment: DATA (dataset root, required), OUTPUT (default: output/ in the repository), DRY_RUN=1,
# PYTHON (default: .venv/bin/python when it exists, else python). Finished runs are skipped; unfinished ones
# resume from their last checkpoint.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: scripts/base2new.sh TRAINER DATASET|all [SEED|all] [CFG] [KEY VALUE ...]" >&2
  exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/python_env.sh"
TRAINER=$1 DATASET=$2 SEED=${3:-all} CFG=${4:-}
args=(--protocol base2new --trainers "$TRAINER" --datasets "$DATASET" --seeds "$SEED")
[[ -n "$CFG" ]] && args+=(--config "$CFG")
[[ "${DRY_RUN:-0}" != 0 ]] && args+=(--dry-run)
[[ $# -gt 4 ]] && args+=(--opts "${@:5}")
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m tools.sweep "${args[@]}"
