"""The evaluation image-feature cache on disk (trainers/feature_cache.py): what it holds, and clearing it.

    python -m tools.cache --info [--cache-dir DIR]    entries and bytes in <DIR>/features
    python -m tools.cache --clear [--cache-dir DIR]   remove them (they are recomputed when needed)

--clear removes only the cache's own files: entries (``<64 hex digits>.pt``), their ``.lock`` files and leftover
temporary files of their writers; any other file in the folder stays.

DIR is the weights cache directory, resolved as runs resolve it: --cache-dir (a run's MODEL.BACKBONE.CACHE_DIR),
else $CLIP_CACHE_DIR, else ~/.cache/clip.
"""
from __future__ import annotations


import torch


def describe(path: str) -> str:
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True).get("meta", {})
    except Exception as e:  # noqa: BLE001 - a damaged entry is listed, not fatal
        return f"unreadable ({type(e).__name__})"
    return (f"{meta.get('backbone', '?')} {meta.get('precision', '?')} on {meta.get('device', '?')}, "
            f"{meta.get('dataset', '?')}, {meta.get('images', '?')} images, {meta.get('created', '?')}")
