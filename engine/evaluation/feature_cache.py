"""On-disk store of image features, one file per entry, shared by concurrent jobs.

An entry is ``<root>/<key>.pt`` holding ``{"features": [N, D] tensor, "meta": {...}}``; ``key`` is a hex digest
of everything the features depend on (built by the caller, :mod:`trainers.feature_cache`). Files are written to a
temporary name and renamed into place, so a reader sees a whole entry or none. ``<key>.lock`` (an OS file lock,
released when its process dies) lets the first job that misses compute an entry while the others wait for it
and then read it, instead of all computing the same features. Entries load with ``weights_only=True``.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
from typing import Optional, Tuple

import torch
from filelock import FileLock

from engine.utils import atomic_torch_save

logger = logging.getLogger(__name__)

SUFFIX = ".pt"


class FeatureStore:
    def __init__(self, root: str):
        self.root = root

    def path(self, key: str) -> str:
        return os.path.join(self.root, key + SUFFIX)

    def load(self, key: str) -> Optional[dict]:
        """The entry ``{"features", "meta"}``, or None when absent or unreadable (an unreadable one is replaced)."""
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a damaged cache entry is recomputed, never trusted
            logger.warning("Feature cache entry %s is unreadable (%s: %s); it will be recomputed.", path,
                           type(e).__name__, e)
            return None
        if not isinstance(entry, dict) or not torch.is_tensor(entry.get("features")):
            logger.warning("Feature cache entry %s is not a feature file; it will be recomputed.", path)
            return None
        return entry

    def save(self, key: str, features: torch.Tensor, meta: dict) -> str:
        path = self.path(key)
        atomic_torch_save({"features": features.detach().cpu().contiguous(), "meta": meta}, path)
        return path

    @contextlib.contextmanager
    def lock(self, key: str):
        """Hold ``<key>.lock`` while computing ``key`` (other jobs wanting the same entry wait)."""
        os.makedirs(self.root, exist_ok=True)
        with FileLock(os.path.join(self.root, key + ".lock")):
            yield

    def entries(self):
        return sorted(glob.glob(os.path.join(self.root, "*" + SUFFIX)))

    def info(self) -> Tuple[int, int]:
        """``(entries, bytes)`` of the stored feature files."""
        files = self.entries()
        return len(files), sum(os.path.getsize(f) for f in files)

    def clear(self) -> Tuple[int, int]:
        """Remove every entry, lock and leftover temporary file; return what the entries held ``(entries, bytes)``."""
        removed = self.info()
        if not os.path.isdir(self.root):
            return removed
        for name in os.listdir(self.root):
            if name.endswith((SUFFIX, ".lock")) or name.startswith(".tmp-"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.root, name))
        return removed
