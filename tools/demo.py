"""Command line of :mod:`experiments.demo`: ``python -m tools.demo --help``."""
import sys

from experiments.demo import main

if __name__ == "__main__":
    sys.exit(main())
