"""The line-per-epoch ``metrics.jsonl`` file and the clean-up of files a killed writer left behind."""
from __future__ import annotations

import json
import logging
import os
from typing import List

from engine.utils.checkpoint import TEMP_PREFIX, atomic_write_text

logger = logging.getLogger(__name__)


def remove_stale_temp_files(output_dir: str) -> List[str]:
    """Delete the ``.tmp-*`` files of atomic writes under ``output_dir`` (a run killed mid-write leaves one).

    Looks in the folder and its sub-folders (module checkpoints), skipping any that holds another run (its own
    lock file). Call it only while holding the output directory's lock: a live run's temporary files look the same.
    """
    from engine.utils.run_lock import LOCK_FILE

    removed = []
    for folder, dirs, files in os.walk(output_dir):
        dirs[:] = [d for d in dirs if not os.path.exists(os.path.join(folder, d, LOCK_FILE))]
        for name in files:
            if name.startswith(TEMP_PREFIX):
                path = os.path.join(folder, name)
                os.remove(path)
                removed.append(path)
    if removed:
        logger.info("Removed %d unfinished temporary file(s) of an interrupted run: %s", len(removed),
                    ", ".join(sorted(removed)))
    return removed


def append_line(path: str, record: dict) -> None:
    """Append one JSON line and flush it to disk (a kill leaves at most a partial last line)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def truncate_epoch_lines(path: str, last_epoch: int) -> None:
    """Keep the lines of epochs ``<= last_epoch`` (the restored checkpoint's); later ones will be re-run.

    A partial last line (a kill while appending) is dropped too, with a note in the log.
    """
    if not os.path.isfile(path):
        return
    kept, dropped = [], 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                dropped += 1
                continue
            if record.get("epoch", 0) <= last_epoch:
                kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        logger.warning("Dropped %d unreadable line(s) of %s (written when the run was killed).", dropped, path)
    atomic_write_text("".join(kept), path)
