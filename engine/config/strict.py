"""Strict merging of YAML files and ``KEY VALUE`` lists into a yacs config.

yacs already refuses unknown keys, but with a bare ``KeyError``. Here every key is checked first, and an unknown
key fails with one message that names the closest valid keys and the file it came from.
"""
from __future__ import annotations

import difflib
from typing import Iterable, List, Sequence

import yaml
from yacs.config import CfgNode as CN


class ConfigError(ValueError):
    """A config file or command-line option that does not fit the config tree."""


def all_keys(cfg: CN, prefix: str = "") -> List[str]:
    """Every leaf key of ``cfg`` as a dotted path, e.g. ``OPTIM.LR``."""
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        keys.extend(all_keys(v, full + ".") if isinstance(v, CN) else [full])
    return keys


def _closest(key: str, valid: Sequence[str]) -> str:
    by_leaf = [v for v in valid if v.split(".")[-1] == key.split(".")[-1]]
    close = list(dict.fromkeys(difflib.get_close_matches(key, valid, n=3, cutoff=0.6) + by_leaf[:2]))
    return f" Closest valid keys: {', '.join(close)}." if close else ""


def check_keys(cfg: CN, keys: Iterable[str], source: str) -> None:
    valid = all_keys(cfg)
    valid_set = set(valid)
    nodes = {k.rsplit(".", 1)[0] for k in valid if "." in k}
    for key in keys:
        if key not in valid_set:
            what = "is a group, not a value" if key in nodes else "does not exist"
            raise ConfigError(f'Config key "{key}" from {source} {what}.{_closest(key, valid)}')


def _flatten(d: dict, prefix: str = "") -> List[str]:
    out = []
    for k, v in d.items():
        full = f"{prefix}{k}"
        out.extend(_flatten(v, full + ".") if isinstance(v, dict) and v else [full])
    return out


def merge_from_file(cfg: CN, path: str) -> None:
    """Merge a YAML file; unknown keys raise :class:`ConfigError` naming the file and the closest key."""
    try:
        with open(path) as f:
            loaded = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"Config file not found: {path}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of keys, got {type(loaded).__name__}.")
    check_keys(cfg, _flatten(loaded), f"file {path}")
    try:
        cfg.merge_from_other_cfg(CN(loaded))
    except (ValueError, KeyError) as e:
        raise ConfigError(f"In {path}: {e}") from None


def merge_from_list(cfg: CN, opts: Sequence[str]) -> None:
    """Merge trailing ``KEY VALUE`` pairs from the command line."""
    if len(opts) % 2:
        raise ConfigError(f"Options must be KEY VALUE pairs; got an odd number of items: {list(opts)}")
    check_keys(cfg, opts[0::2], "the command line")
    try:
        cfg.merge_from_list(list(opts))
    except (ValueError, KeyError, AssertionError) as e:
        raise ConfigError(f"Command-line options: {e}") from None
