#!/usr/bin/env bash
# Zero-shot CLIP ("a photo of a {}.") on all classes of each dataset; nothing is trained. Zero-shot accuracy does
# not depend on the seed, so one seed (1) is the default.
#
#   scripts/zeroshot.sh DATASET|all [SEED|all] [CFG] [KEY VALUE ...]
#
#   scripts/zeroshot.sh all                                # the 11 datasets and the 4 ImageNet variants
#   DRY_RUN=1 scripts/zeroshot.sh eurosat
#
# Environment: DATA (dataset root, required), OUTPUT (default: output/ in the repository), DRY_RUN=1,
# PYTHON (default: .venv/bin/python when it exists, else python).
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: scripts/zeroshot.sh DATASET|all [SEED|all] [CFG] [KEY VALUE ...]" >&2
  exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/python_env.sh"
DATASET=$1 SEED=${2:-1} CFG=${3:-}
args=(--protocol zeroshot --trainers ZeroshotCLIP --datasets "$DATASET" --seeds "$SEED")
[[ -n "$CFG" ]] && args+=(--config "$CFG")
[[ "${DRY_RUN:-0}" != 0 ]] && args+=(--dry-run)
[[ $# -gt 3 ]] && args+=(--opts "${@:4}")
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m tools.sweep "${args[@]}"
