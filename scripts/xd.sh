#!/usr/bin/env bash
# Cross-dataset transfer: train on ImageNet (all classes, 16 shots), then evaluate the saved model on each target
# (default: the 10 other base-to-new datasets). The ImageNet run is shared with scripts/dg.sh.
#
#   scripts/xd.sh TRAINER [SEED|all] [TARGET|all] [CFG] [KEY VALUE ...]
#
#   scripts/xd.sh MaPLe                                    # seeds 1 2 3, all 10 targets
#   DRY_RUN=1 scripts/xd.sh CoCoOp 1 caltech101
#
# Environment: DATA (dataset root, required), OUTPUT (default: output/ in the repository), DRY_RUN=1,
# PYTHON (default: .venv/bin/python when it exists, else python).
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: scripts/xd.sh TRAINER [SEED|all] [TARGET|all] [CFG] [KEY VALUE ...]" >&2
  exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/python_env.sh"
TRAINER=$1 SEED=${2:-all} TARGET=${3:-all} CFG=${4:-}
args=(--protocol xd --trainers "$TRAINER" --datasets "$TARGET" --seeds "$SEED")
[[ -n "$CFG" ]] && args+=(--config "$CFG")
[[ "${DRY_RUN:-0}" != 0 ]] && args+=(--dry-run)
[[ $# -gt 4 ]] && args+=(--opts "${@:5}")
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m tools.sweep "${args[@]}"
