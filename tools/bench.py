"""Command line of :mod:`experiments.bench`: ``python -m tools.bench --help``."""
import sys

from experiments.bench import main

if __name__ == "__main__":
    sys.exit(main())
