"""Command line of :mod:`experiments.corruption`: ``python -m tools.corruption --help``."""
import sys

from experiments.corruption import main

if __name__ == "__main__":
    sys.exit(main())
