"""Command line of :mod:`experiments.predict`: ``python -m tools.predict --help``."""
import sys

from experiments.predict import main

if __name__ == "__main__":
    sys.exit(main())
