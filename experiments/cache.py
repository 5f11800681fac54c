"""The evaluation image-feature cache on disk (trainers/feature_cache.py): what it holds, and clearing it.

    python -m tools.cache --info [--cache-dir DIR]    entries and bytes in <DIR>/features
    python -m tools.cache --clear [--cache-dir DIR]   remove them (they are recomputed when needed)

--clear removes only the cache's own files: entries (``<64 hex digits>.pt``), their ``.lock`` files and leftover
temporary files of their writers; any other file in the folder stays.

DIR is the weights cache directory, resolved as runs resolve it: --cache-dir (a run's MODEL.BACKBONE.CACHE_DIR),
else $CLIP_CACHE_DIR, else ~/.cache/clip.
"""
from __future__ import annotations

import argparse
import sys

import torch


def describe(path: str) -> str:
    try:
        meta = torch.load(path, map_location="cpu", weights_only=True).get("meta", {})
    except Exception as e:  # noqa: BLE001 - a damaged entry is listed, not fatal
        return f"unreadable ({type(e).__name__})"
    return (f"{meta.get('backbone', '?')} {meta.get('precision', '?')} on {meta.get('device', '?')}, "
            f"{meta.get('dataset', '?')}, {meta.get('images', '?')} images, {meta.get('created', '?')}")


def main(argv=None) -> int:
    from engine.evaluation.feature_cache import FeatureStore
    from trainers.feature_cache import feature_cache_dir

    parser = argparse.ArgumentParser(prog="python -m tools.cache", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--info", action="store_true", help="print the entries and their total size")
    action.add_argument("--clear", action="store_true",
                        help="remove the entries, their locks and temporary files (nothing else)")
    parser.add_argument("--cache-dir", default="", help="the weights cache directory (default: $CLIP_CACHE_DIR, "
                                                        "else ~/.cache/clip)")
    parser.add_argument("-v", "--verbose", action="store_true", help="with --info, describe each entry")
    args = parser.parse_args(argv)
    store = FeatureStore(feature_cache_dir(args.cache_dir))
    if args.info:
        n, size = store.info()
        print(f"{store.root}: {n} entries, {size} bytes ({size / 2**20:.1f} MiB)")
        if args.verbose:
            for path in store.entries():
                print(f"  {path}: {describe(path)}")
    else:
        n, size = store.clear()
        print(f"{store.root}: removed {n} entries ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
