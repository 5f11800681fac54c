"""One live run per output directory: an OS file lock (``filelock``) plus a note saying who holds it.

The lock is ``<output>/.run.lock``, held with ``flock``, so the operating system releases it when its process dies,
however it dies. The note ``<output>/.run.lock.json`` (pid, host, start time, command) is written after the lock is
taken and removed on a clean exit; a note found by a process that got the lock therefore belongs to a run that
died, and is reported as taken over. (On network file systems without ``flock`` support, ``filelock`` falls back
to what the file system offers; use a local or lock-capable file system for output directories.)
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time

from filelock import FileLock, Timeout

from engine.errors import RunLockedError

logger = logging.getLogger(__name__)

LOCK_FILE = ".run.lock"
NOTE_FILE = ".run.lock.json"


def _read_note(path: str) -> dict:
    try:
        with open(path) as f:
            note = json.load(f)
        return note if isinstance(note, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(note: dict) -> str:
    if not note:
        return "a process that left no note"
    started = note.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {note.get('pid', '?')} on {note.get('host', '?')}, started {when}"


class RunLock:
    """``with RunLock(output_dir):`` - refuse with :class:`RunLockedError` while another live run holds it."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.lock_path = os.path.join(output_dir, LOCK_FILE)
        self.note_path = os.path.join(output_dir, NOTE_FILE)
        self._lock = FileLock(self.lock_path)
        self.taken_over = None

    def acquire(self) -> "RunLock":
        os.makedirs(self.output_dir, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise RunLockedError(
                f"{self.output_dir} is in use by another run ({_describe(_read_note(self.note_path))}). Wait for it "
                "to finish, stop it, or choose another --output-dir.") from None
        self.taken_over = _read_note(self.note_path) if os.path.exists(self.note_path) else None
        from engine.utils.checkpoint import atomic_write_text

        note = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": sys.argv}
        atomic_write_text(json.dumps(note) + "\n", self.note_path)
        return self

    def warn_if_taken_over(self) -> None:
        """Log (once logging is set up) that the lock was left by a run that died."""
        if self.taken_over is not None:
            logger.warning("Taking over %s from a run that ended without releasing it (%s); its saved epochs are "
                           "kept and this run resumes from them.", self.output_dir, _describe(self.taken_over))

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        try:
            os.remove(self.note_path)
        except FileNotFoundError:
            pass
        self._lock.release()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
