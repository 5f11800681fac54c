"""Command line of :mod:`experiments.export`: ``python -m tools.export --help``."""
import sys

from experiments.export import main

if __name__ == "__main__":
    sys.exit(main())
