"""Command line of :mod:`experiments.gpu_check`: ``python -m tools.gpu_check --help``."""
import sys

from experiments.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
