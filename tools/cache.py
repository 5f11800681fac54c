"""``python -m tools.cache``: the command line of :mod:`experiments.cache`."""
from __future__ import annotations

import argparse
import sys

from experiments import cache as library
from experiments.cache import describe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.cache", description=library.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--info", action="store_true", help="print the entries and their total size")
    action.add_argument("--clear", action="store_true",
                        help="remove the entries, their locks and temporary files (nothing else)")
    parser.add_argument("--cache-dir", default="", help="the weights cache directory (default: $CLIP_CACHE_DIR, "
                                                        "else ~/.cache/clip)")
    parser.add_argument("-v", "--verbose", action="store_true", help="with --info, describe each entry")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from engine.evaluation.feature_cache import FeatureStore
    from trainers.feature_cache import feature_cache_dir

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
