"""On-disk store of image features, one file per entry, shared by concurrent jobs.

An entry is ``<root>/<key>.pt`` (``key``: 64 hex digits) holding ``{"features": [N, D] tensor, "meta": {...}}``;
``key`` is a SHA-256 of everything the features depend on, built by the caller (:mod:`trainers.feature_cache`),
and ``meta`` repeats those parts. Files are written to a temporary name and renamed into place, so a reader sees a
whole entry or none. ``<key>.lock`` (an OS file lock, released when its process dies) lets the first job that
misses compute an entry while the others wait for it and then read it, instead of all computing the same features.

Nothing is trusted for being on disk: :meth:`FeatureStore.load` loads with ``weights_only=True`` and returns the
features only if the entry names its own key, its stored key parts equal the ones asked for, its features are
``[images, dim]`` of a floating dtype, all finite, and their checksum (SHA-256 over key, dtype, shape and bytes,
written with them) matches; otherwise it raises :class:`EntryError` saying why. The store writes, lists and clears
only its own names: entries, their locks and their writers' temporary files.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
from typing import List, Optional, Tuple

import torch
from filelock import FileLock

from engine.utils.checkpoint import atomic_torch_save, temp_target

SUFFIX = ".pt"
LOCK_SUFFIX = ".lock"
ENTRY_NAME = re.compile(r"[0-9a-f]{64}" + re.escape(SUFFIX) + r"\Z")
LOCK_NAME = re.compile(r"[0-9a-f]{64}" + re.escape(LOCK_SUFFIX) + r"\Z")
FEATURE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class EntryError(Exception):
    """A stored entry that must not be used; the message says why."""


def checksum(key: str, features: torch.Tensor) -> str:
    """SHA-256 over ``key``, the dtype, the shape and the bytes of ``features``."""
    t = features.detach().cpu().contiguous()
    h = hashlib.sha256(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def is_own_file(name: str) -> bool:
    """Whether ``name`` is one the store writes: an entry, its lock or its writer's temporary file."""
    target = temp_target(name)
    return bool(ENTRY_NAME.match(name) or LOCK_NAME.match(name) or (target and ENTRY_NAME.match(target)))


class FeatureStore:
    def __init__(self, root: str):
        self.root = root

    def path(self, key: str) -> str:
        return os.path.join(self.root, key + SUFFIX)

    def load(self, key: str, parts: dict, dim: int, dtype: Optional[torch.dtype] = None) -> Optional[torch.Tensor]:
        """The features ``[parts["images"], dim]`` (of ``dtype`` when given) of entry ``key``, None when there is
        none, or :class:`EntryError` when the file is unreadable or does not hold exactly what ``parts`` describe."""
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - damaged, truncated, not a torch file: never trusted
            raise EntryError(f"unreadable ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]})")
        if not isinstance(entry, dict) or not torch.is_tensor(entry.get("features")) or \
                not isinstance(entry.get("meta"), dict):
            raise EntryError("not a feature-cache entry")
        features, meta = entry["features"], entry["meta"]
        if meta.get("key") != key:
            raise EntryError(f"it names another key ({meta.get('key')!r}): a copied or renamed file")
        differ = sorted(k for k in parts if meta.get(k) != parts[k])
        if differ:
            raise EntryError(f"its stored key parts differ ({', '.join(differ)})")
        if features.dtype not in FEATURE_DTYPES or str(features.dtype) != meta.get("features_dtype") or \
                (dtype is not None and features.dtype != dtype):
            raise EntryError(f"features of dtype {features.dtype}, recorded {meta.get('features_dtype')}")
        if tuple(features.shape) != (parts["images"], dim):
            raise EntryError(f"features of shape {list(features.shape)} for {parts['images']} images of "
                             f"dimension {dim}")
        if not bool(torch.isfinite(features).all()):
            raise EntryError("non-finite features")
        if meta.get("checksum") != checksum(key, features):
            raise EntryError("its features do not match their checksum (altered or damaged)")
        return features

    def save(self, key: str, features: torch.Tensor, meta: dict) -> str:
        """Store ``features`` under ``key`` with ``meta`` (the key's parts); non-finite features are refused with
        :class:`EntryError`. A failed write raises (``OSError``/``FileWriteError``)."""
        features = features.detach().cpu().contiguous()
        if not bool(torch.isfinite(features).all()):
            raise EntryError("non-finite features are not stored")
        meta = dict(meta, key=key, features_dtype=str(features.dtype), checksum=checksum(key, features))
        path = self.path(key)
        atomic_torch_save({"features": features, "meta": meta}, path)
        return path

    @contextlib.contextmanager
    def lock(self, key: str):
        """Hold ``<key>.lock`` while computing ``key`` (other jobs wanting the same entry wait)."""
        os.makedirs(self.root, exist_ok=True)
        with FileLock(os.path.join(self.root, key + LOCK_SUFFIX)):
            yield

    def entries(self) -> List[str]:
        """Paths of the stored entries (files named ``<64 hex>.pt``; nothing else in the folder)."""
        if not os.path.isdir(self.root):
            return []
        return sorted(os.path.join(self.root, n) for n in os.listdir(self.root) if ENTRY_NAME.match(n))

    def info(self) -> Tuple[int, int]:
        """``(entries, bytes)`` of the stored feature files."""
        files = self.entries()
        return len(files), sum(os.path.getsize(f) for f in files)

    def clear(self) -> Tuple[int, int]:
        """Remove the store's own files (entries, locks, leftover temporary files), never another file in the
        folder; return what the entries held ``(entries, bytes)``."""
        removed = self.info()
        if not os.path.isdir(self.root):
            return removed
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if is_own_file(name) and os.path.isfile(path) and not os.path.islink(path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        return removed
