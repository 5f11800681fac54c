#!/usr/bin/env bash
# Few-shot classification (CoOp protocol): train and test on all classes with K shots per class. CoOp's epochs
# follow its recipe (1 shot: _ep50, 2/4 shots: _ep100, 8/16 shots: 200 epochs; ImageNet always _ep50) unless CFG
# is given. Nemesis follows the same recipe with the rn50_pun* configs, and the rn50_pun_fp* ones on Food101 and
# OxfordPets (the released code's omega 1 and PAN scale 50 there). RESTORE runs its base-to-new config without the
# per-dataset ratios, as its only released few-shot script (ratios 0.1 / 0.1, lambda 1; pass KEY VALUE pairs such
# as TRAINER.RESTORE.VIS_CALIB_R 0.15 to change them). The commands are built by experiments/protocols.py.
#
#   scripts/fewshot.sh TRAINER DATASET|all [SHOTS|all] [SEED|all] [CFG] [KEY VALUE ...]
#
#   scripts/fewshot.sh CoOp oxford_pets 16 1
#   scripts/fewshot.sh CoOp all                            # 11 datasets x shots 1 2 4 8 16 x seeds 1 2 3
#   DRY_RUN=1 scripts/fewshot.sh CoOp imagenet all 1
#
# Environment: DATA (dataset root, required), OUTPUT (default: output/ in the repository), DRY_RUN=1,
# PYTHON (default: .venv/bin/python when it exists, else python).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: scripts/fewshot.sh TRAINER DATASET|all [SHOTS|all] [SEED|all] [CFG] [KEY VALUE ...]" >&2
  exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/python_env.sh"
TRAINER=$1 DATASET=$2 SHOTS=${3:-all} SEED=${4:-all} CFG=${5:-}
args=(--protocol fewshot --trainers "$TRAINER" --datasets "$DATASET" --shots "$SHOTS" --seeds "$SEED")
[[ -n "$CFG" ]] && args+=(--config "$CFG")
[[ "${DRY_RUN:-0}" != 0 ]] && args+=(--dry-run)
[[ $# -gt 5 ]] && args+=(--opts "${@:6}")
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m tools.sweep "${args[@]}"
