"""Arguments shared by the command lines: a bad value is an argparse error (usage, one ``error:`` line, exit 2)."""
from __future__ import annotations

import argparse
import os
from typing import Callable, List, Optional


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def add_class_name_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """``--classname NAME`` (repeated) and ``--classnames-file FILE``: each flag takes exactly one value, so class
    names and image paths cannot swallow each other whatever their order. ``default`` says what no flag means."""
    parser.add_argument("--classname", action="append", default=[], metavar="NAME",
                        help=f"a class name; repeat the flag for each class (default: {default})")
    parser.add_argument("--classnames-file", default="", metavar="FILE",
                        help="a text file with one class name per line (blank lines skipped)")
    parser.add_argument("--classnames", nargs="*", default=None, help=argparse.SUPPRESS)



def class_names_from_args(args: argparse.Namespace) -> Optional[List[str]]:
    """The class names of ``--classnames-file`` then ``--classname``, or ``None`` when neither is given. Empty names
    and names that are existing files or folders (an image path given as a name) are refused."""
    if args.classnames is not None:
        raise ValueError("--classnames was replaced by --classname NAME (once per class) or --classnames-file FILE, "
                         "so that class names and image paths cannot be confused.")
    names: List[str] = []
    if args.classnames_file:
        if not os.path.isfile(args.classnames_file):
            raise FileNotFoundError(f"--classnames-file {args.classnames_file}: no such file.")
        with open(args.classnames_file, encoding="utf-8") as f:
            names += [line.strip() for line in f if line.strip()]
        if not names:
            raise ValueError(f"--classnames-file {args.classnames_file} holds no class names (one per line).")
    for name in args.classname:
        if not name.strip():
            raise ValueError("--classname is empty: every class needs a name (quote names with spaces).")
        if os.path.exists(name):
            raise ValueError(f"--classname {name!r} is an existing file or folder, not a class name: pass images as "
                             "inputs, and a file of class names with --classnames-file.")
        names.append(name.strip())
    return names or None
