"""Command line of :mod:`experiments.nemesis_plots`: ``python -m tools.nemesis_plots --help``."""
import sys

from experiments.nemesis_plots import main

if __name__ == "__main__":
    sys.exit(main())
