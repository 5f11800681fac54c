#!/usr/bin/env bash
# The test suite: `bash scripts/test.sh` (extra arguments go to pytest, e.g. -k coop or -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec .venv/bin/python -m pytest -q -m "not slow" "$@"
