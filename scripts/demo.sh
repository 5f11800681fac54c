#!/usr/bin/env bash
# The main job on the embedded default: base-to-new on the toy benchmark with the tiny pretrained CLIP, for every
# trainer with a configs/trainers/<TRAINER>/toy.yaml, seeds 1-3, then the results table. No download, no GPU.
# Extra arguments go to `python -m tools.demo` (e.g. --trainers CoOp MaPLe --seeds 1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec .venv/bin/python -m tools.demo "$@"
