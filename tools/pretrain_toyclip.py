"""Command line of :mod:`experiments.pretrain_toyclip`: ``python -m tools.pretrain_toyclip --help``."""
import sys

from experiments.pretrain_toyclip import main

if __name__ == "__main__":
    sys.exit(main())
