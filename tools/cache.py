"""Command line of :mod:`experiments.cache`: ``python -m tools.cache --help``."""
import sys

from experiments.cache import main

if __name__ == "__main__":
    sys.exit(main())
