"""``python -m tools.pretrain_toyclip``: the command line of :mod:`experiments.pretrain_toyclip`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from clip import toyclip
from experiments import pretrain_toyclip as library
from experiments.pretrain_toyclip import check_out, pretrain, rescore
from tools.cli import int_at_least


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.pretrain_toyclip",
                                     description=library.__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int_at_least(1), default=1300)
    parser.add_argument("--batch-size", type=int_at_least(2), default=128, help="pairs per contrastive batch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int_at_least(0), default=50)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--threads", type=int_at_least(1), default=2, help="torch CPU threads (results depend on it)")
    parser.add_argument("--log-every", type=int_at_least(1), default=25)
    parser.add_argument("--out", default=str(toyclip.DEFAULT_PATH))
    parser.add_argument("--rescore", action="store_true",
                        help="re-evaluate the checkpoint at --out zero-shot on every toy benchmark; no training")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_out(Path(args.out), args.rescore)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if args.rescore:
        rescore(Path(args.out))
        return 0
    pretrain(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
