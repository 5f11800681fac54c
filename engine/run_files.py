"""The line-per-epoch ``metrics.jsonl`` file and the clean-up of files a killed writer left behind."""
from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import List

from engine.utils.checkpoint import atomic_write_text, temp_target, write_error

logger = logging.getLogger(__name__)


def run_folders(output_dir: str) -> List[str]:
    """The folders a run writes its checkpoints to: ``output_dir`` and each sub-folder that is a module checkpoint
    folder (named in ``checkpoints.json``'s modules, or holding Dassl's ``checkpoint`` / ``model*.pth.tar*``
    files), except one that holds another run (its own lock file)."""
    from engine.checkpoint_set import MANIFEST_FILE
    from engine.utils.run_lock import LOCK_FILE

    modules = set()
    with contextlib.suppress(OSError, ValueError, TypeError):
        with open(os.path.join(output_dir, MANIFEST_FILE)) as f:
            modules = {m for m in json.load(f).get("modules", []) if isinstance(m, str)}
    folders = [output_dir]
    with os.scandir(output_dir) as it:
        for entry in sorted(it, key=lambda e: e.name):
            if not entry.is_dir(follow_symlinks=False) or os.path.exists(os.path.join(entry.path, LOCK_FILE)):
                continue
            if entry.name in modules or any(n == "checkpoint" or (n.startswith("model") and ".pth.tar" in n)
                                            for n in os.listdir(entry.path)):
                folders.append(entry.path)
    return folders


def remove_stale_temp_files(output_dir: str) -> List[str]:
    """Delete the temporary files that this project's atomic writers left in the run's own folders
    (:func:`run_folders`; a run killed mid-write leaves one). Only names of the writers' exact form
    ``.tmp-<target>.<random>.part`` (:func:`engine.utils.checkpoint.temp_target`) that are plain files go; anything
    else, including a user's ``.tmp-*`` file and whatever lies deeper, is left alone.

    Call it only while holding the output directory's lock: a live run's temporary files look the same.
    """
    removed = []
    if not os.path.isdir(output_dir):
        return removed
    for folder in run_folders(output_dir):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if temp_target(name) is not None and os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)
                removed.append(path)
    if removed:
        logger.info("Removed %d unfinished temporary file(s) of an interrupted run: %s", len(removed),
                    ", ".join(sorted(removed)))
    return removed


def append_line(path: str, record: dict) -> None:
    """Append one JSON line and flush it to disk (a kill or a full disk leaves at most a partial last line, which
    :func:`truncate_epoch_lines` drops on resume). A failed write raises
    :class:`engine.utils.checkpoint.FileWriteError`."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise write_error(path, e) from e


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
