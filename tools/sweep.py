"""Command line of :mod:`experiments.sweep`: ``python -m tools.sweep --help``."""
import sys

from experiments.sweep import main

if __name__ == "__main__":
    sys.exit(main())
