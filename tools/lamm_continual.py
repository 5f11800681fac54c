"""Command line of :mod:`experiments.lamm_continual`: ``python -m tools.lamm_continual --help``."""
import sys

from experiments.lamm_continual import main

if __name__ == "__main__":
    sys.exit(main())
