#!/usr/bin/env bash
# Domain generalisation: train on ImageNet (all classes, 16 shots), then evaluate the saved model on ImageNet-V2,
# -Sketch, -A and -R. The ImageNet run is the one of scripts/xd.sh (trained once for both).
#
#   scripts/dg.sh TRAINER [SEED|all] [TARGET|all] [CFG] [KEY VALUE ...]
#
#   scripts/dg.sh CoOp                                     # seeds 1 2 3, all 4 targets
#   DRY_RUN=1 scripts/dg.sh MaPLe 1 imagenet_sketch
#
# Environment: DATA (dataset root, required), OUTPUT (default: output/ in the repository), DRY_RUN=1,
# PYTHON (default: .venv/bin/python when it exists, else python).
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: scripts/dg.sh TRAINER [SEED|all] [TARGET|all] [CFG] [KEY VALUE ...]" >&2
  exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/python_env.sh"
TRAINER=$1 SEED=${2:-all} TARGET=${3:-all} CFG=${4:-}
args=(--protocol dg --trainers "$TRAINER" --datasets "$TARGET" --seeds "$SEED")
[[ -n "$CFG" ]] && args+=(--config "$CFG")
[[ "${DRY_RUN:-0}" != 0 ]] && args+=(--dry-run)
[[ $# -gt 4 ]] && args+=(--opts "${@:5}")
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m tools.sweep "${args[@]}"
