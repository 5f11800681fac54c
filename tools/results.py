"""Command line of :mod:`experiments.results`: ``python -m tools.results --help``."""
import sys

from experiments.results import main

if __name__ == "__main__":
    sys.exit(main())
