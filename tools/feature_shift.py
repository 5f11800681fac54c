"""Command line of :mod:`experiments.feature_shift`: ``python -m tools.feature_shift --help``."""
import sys

from experiments.feature_shift import main

if __name__ == "__main__":
    sys.exit(main())
