#!/usr/bin/env bash
# The test suite: `bash scripts/test.sh` (extra arguments go to pytest, e.g. -k coop or -m slow).
# Tests run in parallel processes (pytest-xdist): one per CPU core, at most 4 (each loads torch);
# PYTEST_WORKERS=N sets the number, PYTEST_WORKERS=0 runs them in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
workers=${PYTEST_WORKERS:-$(.venv/bin/python -c "import os; print(min(4, os.cpu_count() or 1))")}
exec .venv/bin/python -m pytest -q -n "$workers" -m "not slow" "$@"
