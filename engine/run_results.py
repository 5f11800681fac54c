"""A run's ``results.json`` as the sweep sees it: a run is finished only when the file parses.

``train.py`` writes ``results.json`` atomically, but a copy, a full disk or an older version can leave half a file.
Such a file must not make the sweep skip the run forever, nor disappear: :func:`set_aside` renames it to
``results.json.corrupt-<UTC time>`` next to it, and the run is redone.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

RESULTS_FILE = "results.json"


def read_results(run_dir: Path) -> Optional[dict]:
    """The run's results as a dict; None when the file is absent, unreadable or not a JSON object."""
    try:
        data = json.loads((Path(run_dir) / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_finished(run_dir: Path) -> bool:
    """True when ``run_dir/results.json`` exists and parses as a JSON object."""
    return read_results(run_dir) is not None


def is_corrupt(run_dir: Path) -> bool:
    """True when ``run_dir/results.json`` exists but does not parse (the run is not finished)."""
    return (Path(run_dir) / RESULTS_FILE).is_file() and read_results(run_dir) is None


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<path>.corrupt-<YYYYmmddTHHMMSSZ>`` (``-2``, ``-3``, ... if taken); returns the new
    path. Nothing is deleted: the user can still read what was there."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target, n = path.with_name(f"{path.name}.corrupt-{stamp}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target
