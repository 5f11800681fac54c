"""Command line of :mod:`experiments.plots`: ``python -m tools.plots --help``."""
import sys

from experiments.plots import main

if __name__ == "__main__":
    sys.exit(main())
