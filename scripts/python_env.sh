#!/usr/bin/env bash
# Which Python the protocol scripts run, sourced by them: $PYTHON when set, else this repository's .venv/bin/python
# (the quick start's environment, made by scripts/setup_env.sh) when it exists, else `python` on PATH.
# Sets REPO (the repository root) and PYTHON.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then
    PYTHON="$REPO/.venv/bin/python"
  else
    PYTHON=python
  fi
fi
