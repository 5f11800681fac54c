"""Seed-free runs: a run whose result cannot depend on the seed is executed once per dataset and split.

A zero-shot method (``FACTS.zero_shot`` on its trainer class: ZeroshotCLIP, ZeroshotCLIP2) trains nothing. Its
accuracy is a function of the backbone's weights, the class names, the templates and the test images, none of which
the seed touches (the few-shot draw only changes the training set, which it never reads). The exception is a
``random:`` backbone, whose weights are drawn from the seed: those runs keep one run per seed.

- :func:`experiments.protocols.expand` builds a seed-free run for the FIRST requested seed only, in the usual layout
  (``.../ZeroshotCLIP/<cfg>/seed1``); a sweep over seeds 1 2 3 therefore evaluates zero-shot CLIP once.
- :mod:`experiments.results` shows it as one row like every method (its mean over seeds is that one value), with
  "1 (seed-free)" in the Seeds column and no missing-seed warning.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import yaml

RANDOM_PREFIX = "random:"


def backbone_of(config_file: Path, cli_backbone: Optional[str] = None, opts: Sequence[str] = ()) -> str:
    """The backbone a run will load: ``--backbone``, else ``MODEL.BACKBONE.NAME`` in the opts, else the YAML's."""
    if cli_backbone:
        return str(cli_backbone)
    pairs = dict(zip(opts[0::2], opts[1::2]))
    if "MODEL.BACKBONE.NAME" in pairs:
        return str(pairs["MODEL.BACKBONE.NAME"])
    loaded = yaml.safe_load(Path(config_file).read_text()) or {}
    return str(((loaded.get("MODEL") or {}).get("BACKBONE") or {}).get("NAME") or "")


def is_seed_free(zero_shot: bool, backbone: Optional[str]) -> bool:
    """True when a run's result cannot depend on its seed: a zero-shot method on non-random weights."""
    return bool(zero_shot) and not str(backbone or "").startswith(RANDOM_PREFIX)
